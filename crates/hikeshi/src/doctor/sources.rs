//! Where sshd's lines come from: `[[watch.files]]` (or the classic
//! files), `[watch.journal]` and `[[watch.syslog]]`.

use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions, DEFAULT_MAX_LINE_LEN};
use jiff::Timestamp;

use super::{
    age_text, effective_uid, file_kind, find_program, missing_program_fix, plural, Check, Doctor,
    Status, CLASSIC_LOGS, JOURNAL_PROBE_RECORDS, STALE_AFTER, TAIL_BYTES,
};
use crate::exec;
use crate::sources::journal::JournalSource;
use crate::sources::syslog_server::{ListenAddr, Transport};
use crate::sources::tail::{HostPattern, PathPattern};
use crate::sources::{Payload, SourceStats};

impl Doctor<'_> {
    // ---- log files -----------------------------------------------------

    /// Every `[[watch.files]]` pattern names files, each a readable regular
    /// file with recent sshd lines. Without any, the classic files.
    pub fn check_log_files(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let watch = &self.config.watch;
        if watch.files.is_empty() {
            if !watch.syslog.is_empty() {
                // Lines arrive over the network: the receivers' checks say
                // whether they can.
                return Vec::new();
            }
            return self.check_classic_logs();
        }
        for (i, entry) in watch.files.iter().enumerate() {
            if entry.paths.is_empty() {
                checks.push(Check::fail(
                    "log",
                    format!("watch.files[{i}]"),
                    "no paths",
                    "give paths = [\"/var/log/auth.log\"] or remove the entry",
                ));
            }
            if let Some(host) = &entry.host_from_path {
                if let Err(e) = HostPattern::new(host) {
                    checks.push(Check::fail(
                        "log",
                        format!("watch.files[{i}].host_from_path"),
                        e.to_string(),
                        "write it like \"/var/log/central/{host}/auth.log\"",
                    ));
                }
            }
            for raw in &entry.paths {
                let pattern = match PathPattern::new(raw) {
                    Ok(p) => p,
                    Err(e) => {
                        checks.push(Check::fail(
                            "log",
                            raw.clone(),
                            e.to_string(),
                            "give an absolute path; globs (*, ?, [..], {a,b}) are allowed",
                        ));
                        continue;
                    }
                };
                let files = pattern.expand().files;
                if files.is_empty() {
                    checks.push(self.no_file_check(raw, &pattern));
                    continue;
                }
                for file in files {
                    checks.push(self.check_log_file(&file, entry.max_line_bytes));
                }
            }
        }
        checks
    }

    fn no_file_check(&self, raw: &str, pattern: &PathPattern) -> Check {
        if pattern.is_literal() {
            if let Ok(meta) = std::fs::metadata(raw) {
                return Check::fail(
                    "log",
                    raw,
                    format!("is a {}, not a regular file", file_kind(&meta)),
                    "point [[watch.files]] paths at sshd's log file itself",
                );
            }
        }
        let mut fix = String::from(
            "correct the path in [[watch.files]]; sshd logs to the auth facility \
             (rsyslog writes /var/log/auth.log on Debian)",
        );
        if raw == "/var/log/auth.log" {
            fix = "Debian 12 has no auth.log unless rsyslog is installed: read the journal \
                   ([watch.journal] enabled = true) or `apt install rsyslog`"
                .into();
        }
        Check::fail(
            "log",
            raw,
            if pattern.is_literal() {
                "does not exist".to_string()
            } else {
                "matches no file".to_string()
            },
            fix,
        )
    }

    fn check_classic_logs(&self) -> Vec<Check> {
        let journal = self.journal_enabled();
        let present: Vec<&str> =
            CLASSIC_LOGS.iter().copied().filter(|p| Path::new(p).exists()).collect();
        if present.is_empty() {
            return vec![if journal {
                Check::ok(
                    "log",
                    "/var/log/auth.log",
                    "absent (Debian 12 without rsyslog); no [[watch.files]]: sshd's messages \
                     are read from the journal",
                )
            } else {
                Check::fail(
                    "log",
                    "/var/log/auth.log",
                    "absent, and no [[watch.files]], no [[watch.syslog]], [watch.journal] \
                     disabled: hikeshi has nothing to read",
                    "on Debian 12 set [watch.journal] enabled = true (sshd logs to the \
                     journal), or `apt install rsyslog` and add [[watch.files]] paths = \
                     [\"/var/log/auth.log\"]",
                )
            }];
        }
        let mut checks = Vec::new();
        for path in present {
            let mut check = self.check_log_file(Path::new(path), DEFAULT_MAX_LINE_LEN);
            if check.status == Status::Ok {
                check.finding.push_str(
                    "; not followed by `hikeshi watch` (no [[watch.files]]): `hikeshi scan` \
                     reads it when named",
                );
            }
            checks.push(check);
        }
        checks
    }

    /// One file: regular, readable, and what the parser finds in its end.
    pub fn check_log_file(&self, path: &Path, max_line_bytes: usize) -> Check {
        let subject = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                return Check::fail(
                    "log",
                    subject,
                    format!("cannot stat: {e}"),
                    "correct the path in [[watch.files]]",
                )
            }
        };
        if !meta.file_type().is_file() {
            return Check::fail(
                "log",
                subject,
                format!("is a {}, not a regular file", file_kind(&meta)),
                "point [[watch.files]] paths at sshd's log file itself",
            );
        }
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                return Check::fail(
                    "log",
                    subject,
                    format!("cannot be read by uid {}: {e}", effective_uid()),
                    format!(
                        "run hikeshi as root, or let its user read the file (Debian's auth.log \
                         is root:adm 0640: `usermod -aG adm USER`; owner is uid {} gid {}, \
                         mode {:03o})",
                        meta.uid(),
                        meta.gid(),
                        meta.mode() & 0o777
                    ),
                )
            }
        };
        if meta.len() == 0 {
            return Check::warn(
                "log",
                subject,
                "readable but empty",
                "if sshd should log here, check the syslog daemon's auth rule \
                 (`auth,authpriv.* /var/log/auth.log` in /etc/rsyslog.conf)",
            );
        }
        let tail = match read_tail(&mut file, meta.len()) {
            Ok(t) => t,
            Err(e) => {
                return Check::fail(
                    "log",
                    subject,
                    format!("cannot be read: {e}"),
                    "check the file system and the file's permissions",
                )
            }
        };
        let reference =
            meta.modified().ok().and_then(|t| Timestamp::try_from(t).ok()).unwrap_or(self.now);
        let found = scan_lines(&tail, self.options(reference, max_line_bytes));
        self.sshd_finding("log", subject, &found, "in its last 64 KiB")
    }

    fn options(&self, reference: Timestamp, max_line_bytes: usize) -> ParseOptions {
        let zone = self.config.parse.time_zone().unwrap_or(jiff::tz::TimeZone::UTC);
        let mut options = ParseOptions::new(self.config.parse.mode, zone, reference);
        options.max_line_len = max_line_bytes.max(1);
        options
    }

    fn sshd_finding(
        &self,
        area: &'static str,
        subject: String,
        found: &SshdLines,
        scope: &str,
    ) -> Check {
        if found.sshd == 0 {
            return Check::warn(
                area,
                subject,
                format!("readable, but no sshd lines {scope} ({} lines read)", found.lines),
                "is this sshd's log? sshd logs to the auth facility: check the syslog \
                 daemon's rule, or read the journal instead ([watch.journal])",
            );
        }
        let mut finding = format!(
            "{} {scope} ({} recognised)",
            plural(found.sshd, "sshd line"),
            found.recognised
        );
        if found.unrecognised > 0 {
            finding.push_str(&format!(
                ", {} of unknown shape",
                plural(found.unrecognised, "sshd line")
            ));
        }
        match found.newest {
            Some(newest) => {
                let age = self.now.duration_since(newest);
                let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
                finding.push_str(&format!(", newest {} ago", age_text(age)));
                if age > STALE_AFTER {
                    return Check::warn(
                        area,
                        subject,
                        finding,
                        "sshd has not logged here for over a day: did logging move (to the \
                         journal, to a new file after rotation)? check `systemctl status ssh` \
                         and the syslog daemon",
                    );
                }
            }
            None => finding.push_str(", none of them dated"),
        }
        Check::ok(area, subject, finding)
    }

    // ---- journal -------------------------------------------------------

    /// `[watch.journal]`: journalctl runs, the journal is readable, and it
    /// holds recent sshd records.
    pub fn check_journal(&self) -> Vec<Check> {
        let config = &self.config.watch.journal;
        if !self.journal_enabled() {
            return Vec::new();
        }
        let subject = match (&config.file, &config.directory) {
            (Some(f), _) => format!("file {}", f.display()),
            (None, Some(d)) => format!("directory {}", d.display()),
            (None, None) => "system journal".to_string(),
        };
        if let Some(path) = config.file.as_ref().or(config.directory.as_ref()) {
            if let Err(e) = std::fs::metadata(path).and_then(|m| {
                if m.is_dir() {
                    std::fs::read_dir(path).map(|_| ())
                } else {
                    std::fs::File::open(path).map(|_| ())
                }
            }) {
                return vec![Check::fail(
                    "journal",
                    subject,
                    format!("cannot be read: {e}"),
                    "correct [watch.journal] file/directory, or give hikeshi's user read access",
                )];
            }
        }
        if find_program(&config.journalctl).is_none() {
            return vec![Check::fail(
                "journal",
                subject,
                format!("program `{}` not found", config.journalctl),
                missing_program_fix(&config.journalctl, "[watch.journal] journalctl"),
            )];
        }
        let source = match JournalSource::new(config, SourceStats::new()) {
            Ok(s) => s,
            // Reported by check_config.
            Err(_) => return Vec::new(),
        };
        let (records, summary) = match source.probe(JOURNAL_PROBE_RECORDS) {
            Ok(found) => found,
            Err(e) => {
                return vec![Check::fail(
                    "journal",
                    subject,
                    format!("journalctl failed: {e}"),
                    "run the journalctl command shown by hand; the journal may be unreadable \
                     by this user (add it to group systemd-journal or adm) or corrupt",
                )]
            }
        };
        if records.is_empty() {
            let hint = if summary.stderr.is_empty() {
                String::new()
            } else {
                format!(" (journalctl: {})", summary.stderr)
            };
            return vec![Check::warn(
                "journal",
                subject,
                format!("readable, but holds no sshd records{hint}"),
                "check that sshd runs under one of [watch.journal] units and executables \
                 (`journalctl -u ssh -n 5`), and that this user may read the whole journal \
                 (root, or group systemd-journal/adm)",
            )];
        }
        let mut found = SshdLines::default();
        let mut parser = LineParser::new(self.options(self.now, usize::MAX));
        let mut events = Vec::new();
        for (i, item) in records.iter().enumerate() {
            if let Payload::Record { time, host, process, pid, message, .. } = &item.payload {
                let record = hikeshi_core::parse::Record {
                    time: *time,
                    host: host.as_deref(),
                    process,
                    pid: *pid,
                    message,
                };
                let origin = Origin { line: i as u64 + 1, offset: 0 };
                found.count(parser.push_record(record, origin, &mut events));
                if let Some(t) = time {
                    found.newest = found.newest.max(Some(*t));
                }
            }
        }
        found.lines = records.len() as u64;
        vec![self.sshd_finding("journal", subject, &found, "among the newest records")]
    }

    // ---- syslog receivers ------------------------------------------------

    /// `[[watch.syslog]]`: each listen address can be bound.
    pub fn check_syslog(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for entry in &self.config.watch.syslog {
            for listen in &entry.listen {
                let mut check = check_bind(listen);
                if check.status == Status::Ok
                    && !listen.addr.ip().is_loopback()
                    && entry.allowed_senders.is_empty()
                {
                    check = Check::warn(
                        "syslog",
                        listen.to_string(),
                        format!("{}; not loopback and any sender is accepted", check.finding),
                        "set allowed_senders = [\"192.0.2.0/24\"] (your log senders) in this \
                         [[watch.syslog]]: anyone who can reach the port could forge sshd lines",
                    );
                }
                checks.push(check);
            }
        }
        checks
    }
}

/// What the parser made of a sample.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshdLines {
    pub lines: u64,
    /// Lines of sshd (recognised, ignored on purpose, or of unknown shape).
    pub sshd: u64,
    pub recognised: u64,
    pub unrecognised: u64,
    /// The time of the newest sshd event.
    pub newest: Option<Timestamp>,
}

impl SshdLines {
    fn count(&mut self, verdict: LineVerdict) {
        match verdict {
            LineVerdict::Recognised(_) => {
                self.sshd += 1;
                self.recognised += 1;
            }
            LineVerdict::SshdIgnored => self.sshd += 1,
            LineVerdict::SshdUnrecognised => {
                self.sshd += 1;
                self.unrecognised += 1;
            }
            LineVerdict::NotSshd | LineVerdict::Skipped(_) => {}
        }
    }
}

/// Parses `text` (complete lines) with the real parser.
pub fn scan_lines(text: &[u8], options: ParseOptions) -> SshdLines {
    let mut parser = LineParser::new(options);
    let mut events = Vec::new();
    let mut found = SshdLines::default();
    let mut offset = 0u64;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() && offset as usize >= text.len() {
            break;
        }
        found.lines += 1;
        let origin = Origin { line: i as u64 + 1, offset };
        found.count(parser.push_line(line, origin, &mut events));
        offset += line.len() as u64 + 1;
    }
    parser.finish(&mut events);
    found.newest = events.iter().map(|p| p.event.time).max();
    found
}

/// The last [`TAIL_BYTES`] of a file of `len` bytes, from the start of a
/// line.
fn read_tail(file: &mut std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(TAIL_BYTES as usize);
    file.take(TAIL_BYTES).read_to_end(&mut buf)?;
    if start > 0 {
        // The first line is cut: drop it.
        let cut = memchr_newline(&buf).map_or(buf.len(), |i| i + 1);
        buf.drain(..cut);
    }
    Ok(buf)
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Binds `listen` and lets go at once.
pub fn check_bind(listen: &ListenAddr) -> Check {
    let subject = listen.to_string();
    let result = match listen.transport {
        Transport::Udp => UdpSocket::bind(listen.addr).map(drop),
        Transport::Tcp => TcpListener::bind(listen.addr).map(drop),
    };
    match result {
        Ok(()) => Check::ok("syslog", subject, "can be bound"),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let user = port_user(listen);
            if user.as_deref().is_some_and(|u| u.contains("\"hikeshi\"")) {
                return Check::ok(
                    "syslog",
                    subject,
                    format!("in use by hikeshi itself (the daemon runs): {}", user.unwrap()),
                );
            }
            let who = user.map_or_else(String::new, |u| format!(" by {u}"));
            Check::fail(
                "syslog",
                subject,
                format!("already in use{who}"),
                "stop the other listener (rsyslog's imudp/imtcp?) or give [[watch.syslog]] \
                 another port",
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Check::fail(
            "syslog",
            subject,
            format!("cannot be bound: {e}"),
            "ports below 1024 need root (or CAP_NET_BIND_SERVICE): run as root or use a port \
             >= 1024 such as 5514",
        ),
        Err(e) => Check::fail(
            "syslog",
            subject,
            format!("cannot be bound: {e}"),
            "use an address of this host (`ip -br addr`) in [[watch.syslog]] listen",
        ),
    }
}

/// Who listens on `listen`'s port, as `ss -p` says (`users:(("rsyslogd",
/// pid=1,fd=5))`), if ss runs.
fn port_user(listen: &ListenAddr) -> Option<String> {
    let transport = match listen.transport {
        Transport::Udp => "-u",
        Transport::Tcp => "-t",
    };
    let port = format!(":{}", listen.addr.port());
    let out = exec::run("ss", ["-H", "-l", "-n", "-p", transport, "sport", "=", &port]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let users = text.lines().find_map(|l| l.find("users:(").map(|i| l[i..].trim().to_string()));
    users
        .or_else(|| text.lines().next().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")))
        .filter(|s| !s.is_empty())
}
