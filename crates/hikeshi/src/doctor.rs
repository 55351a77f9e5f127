//! `hikeshi doctor`: proves a setup works before an incident needs it
//! (the runbook's Preparation phase).
//!
//! Each check looks at one thing the way hikeshi itself will use it (the
//! real parser reads the log files, the configured firewall backend adds
//! and removes a test element, lettre says EHLO to the SMTP server, the
//! store runs its integrity and audit checks) and gives a [`Check`]: ok,
//! warn or fail, a one-line finding, and for warn and fail a concrete fix.
//! Nothing here changes the system for long: the firewall test uses
//! documentation addresses that pass the allowlist, with a kernel timeout
//! where the backend has one, and removes them (and any object it had to
//! create) before returning; no alert is ever sent.

use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hikeshi_core::alert::Role;
use hikeshi_core::allowlist::Allowlist;
use hikeshi_core::detect::Rule;
use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions, DEFAULT_MAX_LINE_LEN};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;
use crate::contain::{self, BackendKind, BanEntry, Firewall, Permitted};
use crate::exec;
use crate::sources::journal::JournalSource;
use crate::sources::syslog_server::{ListenAddr, Transport};
use crate::sources::tail::{HostPattern, PathPattern};
use crate::sources::{Payload, SourceStats};

/// How much of the end of each log file is parsed.
pub const TAIL_BYTES: u64 = 64 * 1024;
/// sshd records asked of the journal.
pub const JOURNAL_PROBE_RECORDS: u64 = 200;
/// A source whose newest sshd line is older than this gets a warning.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a firewall test element may live if hikeshi died before
/// removing it (backends with kernel timeouts).
pub const TEST_BAN_TIMEOUT: Duration = Duration::from_secs(120);
/// Addresses the firewall test bans for a moment: documentation ranges
/// (RFC 5737, RFC 3849), which never send real traffic. The first of each
/// family that the allowlist permits and that is not banned already is used.
pub const TEST_ADDRESSES: [&str; 6] = [
    "192.0.2.255",
    "198.51.100.255",
    "203.0.113.255",
    "2001:db8::ffff",
    "2001:db8::fffe",
    "2001:db8::fffd",
];
/// The classic sshd log files looked at when no `[[watch.files]]` is set.
pub const CLASSIC_LOGS: [&str; 2] = ["/var/log/auth.log", "/var/log/secure"];

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    /// The tag printed before the finding, all the same width.
    pub fn tag(self) -> &'static str {
        match self {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
        }
    }
}

/// One finding: what was checked, what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// config, log, journal, syslog, firewall, smtp, webhook, alerts,
    /// data-dir, store, audit, team.
    pub area: &'static str,
    /// What in that area: a file, a setting, a backend, a role.
    pub subject: String,
    pub status: Status,
    /// One line.
    pub finding: String,
    /// For warn and fail: the setting to change, the package to install,
    /// the command to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(area: &'static str, subject: impl Into<String>, finding: impl Into<String>) -> Check {
        Check {
            area,
            subject: subject.into(),
            status: Status::Ok,
            finding: finding.into(),
            fix: None,
        }
    }

    pub fn warn(
        area: &'static str,
        subject: impl Into<String>,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            area,
            subject: subject.into(),
            status: Status::Warn,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        area: &'static str,
        subject: impl Into<String>,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            area,
            subject: subject.into(),
            status: Status::Fail,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check's result, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// How many checks had `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// The report as aligned text: one line per check, its fix indented
    /// below it, and a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            out.push_str(&format!(
                "{} {} {}: {}\n",
                check.status.tag(),
                check.area,
                one_line(&check.subject),
                one_line(&check.finding)
            ));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("       fix: {}\n", one_line(fix)));
            }
        }
        out.push_str(&format!(
            "{} ok, {} warning(s), {} failed\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }
}

/// Text from files, programs and the network may hold newlines or
/// terminal escapes: each finding stays on its line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The failed `config` check of a configuration file that cannot be
/// loaded (the error names the file, the line and the field).
pub fn config_load_failure(path: Option<&Path>, error: &anyhow::Error) -> Check {
    let subject = path.map_or_else(
        || crate::config::DEFAULT_CONFIG_PATH.to_string(),
        |p| p.display().to_string(),
    );
    Check::fail(
        "config",
        subject,
        format!("cannot be loaded: {error:#}"),
        "correct the setting at the line named (config/hikeshi.toml is the commented \
         example); no other check can run until the file loads",
    )
}

/// What the checks look at.
pub struct Doctor<'a> {
    pub config: &'a Config,
    pub config_path: Option<&'a Path>,
    pub data_dir: &'a Path,
    /// The time ages are measured against.
    pub now: Timestamp,
}

impl Doctor<'_> {
    /// Runs every check.
    pub fn run(&self) -> Report {
        let mut checks = Vec::new();
        checks.extend(self.check_config());
        checks.extend(self.check_log_files());
        checks.extend(self.check_journal());
        checks.extend(self.check_syslog());
        checks.extend(self.check_firewall());
        checks.extend(self.check_smtp());
        checks.extend(self.check_webhooks());
        checks.extend(self.check_alert_routing());
        checks.extend(self.check_data_dir());
        checks.extend(self.check_team());
        Report { checks }
    }

    // ---- configuration -------------------------------------------------

    /// The file loaded (it did, or we would not be here) and the settings
    /// serde cannot check on its own.
    pub fn check_config(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let subject = self
            .config_path
            .map_or_else(|| "(built-in defaults)".to_string(), |p| p.display().to_string());
        let config = self.config;
        let mut problems = Vec::new();
        if let Err(e) = config.parse.time_zone() {
            problems.push(Check::fail(
                "config",
                "parse.timezone",
                format!("{e:#}"),
                "set [parse] timezone to an IANA name such as \"UTC\" or \"Asia/Tokyo\"",
            ));
        }
        if let Err(e) = config.detect.validate() {
            problems.push(Check::fail(
                "config",
                "detect",
                e.to_string(),
                "set the [detect] value named to one in its range (see config/hikeshi.toml)",
            ));
        }
        if let Err(e) = config.contain.policy() {
            problems.push(Check::fail(
                "config",
                "contain",
                e,
                "write durations like \"10m\", \"1h\", \"7d\" with bantime <= max_bantime and \
                 multiplier >= 1",
            ));
        }
        let unknown: Vec<&String> =
            config.contain.ban_rules.iter().filter(|r| Rule::from_name(r).is_none()).collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
            problems.push(Check::fail(
                "config",
                "contain.ban_rules",
                format!("unknown rule(s) {unknown:?}"),
                format!("use rule names from: {}", known.join(", ")),
            ));
        }
        if let Err(e) = crate::notify::Notifier::from_config(&config.team, &config.alert, false) {
            problems.push(Check::fail(
                "config",
                "alert",
                e.to_string(),
                "correct the [alert]/[team] setting named; alerts cannot be sent until it is",
            ));
        }
        if config.watch.journal.enabled {
            if let Err(e) = config.watch.journal.validate() {
                problems.push(Check::fail(
                    "config",
                    "watch.journal",
                    e.to_string(),
                    "correct [watch.journal], or set enabled = false",
                ));
            }
        }
        for (i, entry) in config.watch.syslog.iter().enumerate() {
            if let Err(e) = entry.validate() {
                problems.push(Check::fail(
                    "config",
                    format!("watch.syslog[{i}]"),
                    e.to_string(),
                    "correct the [[watch.syslog]] entry",
                ));
            }
        }
        if let Some(path) = self.config_path {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o022 != 0 {
                    problems.push(Check::fail(
                        "config",
                        subject.clone(),
                        format!(
                            "writable by group or others (mode {mode:03o}): anyone who can \
                             write it can turn bans and alerts off"
                        ),
                        format!("chmod go-w {}", path.display()),
                    ));
                }
            }
        }
        if problems.is_empty() {
            checks.push(match self.config_path {
                Some(_) => Check::ok("config", subject, "loaded and valid"),
                None => Check::warn(
                    "config",
                    subject,
                    format!(
                        "no configuration file ({} does not exist): no team, no alerts",
                        crate::config::DEFAULT_CONFIG_PATH
                    ),
                    format!(
                        "install the commented example: install -D -m 640 config/hikeshi.toml \
                         {} and edit it (or pass --config FILE)",
                        crate::config::DEFAULT_CONFIG_PATH
                    ),
                ),
            });
        }
        checks.extend(problems);
        checks
    }

    // ---- log files -----------------------------------------------------

    /// Every `[[watch.files]]` pattern names files, each a readable regular
    /// file with recent sshd lines. Without any, the classic files.
    pub fn check_log_files(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let watch = &self.config.watch;
        if watch.files.is_empty() {
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
        let journal = self.config.watch.journal.enabled;
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
                    "absent, no [[watch.files]] configured and [watch.journal] disabled: \
                     hikeshi has nothing to read",
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
        if !config.enabled {
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

    // ---- firewall ------------------------------------------------------

    /// `[contain]`: the backend's programs exist, it can list its own
    /// objects, add a test element and remove it.
    pub fn check_firewall(&self) -> Vec<Check> {
        let contain = &self.config.contain;
        let kind = contain.backend;
        let subject = kind.name();
        if kind == BackendKind::None {
            return vec![Check::warn(
                "firewall",
                subject,
                "dry run: attacks are recorded and alerted, nothing will be banned",
                "set [contain] backend = \"nftables\" (or iptables, ipset, fail2ban)",
            )];
        }
        let mut checks = Vec::new();
        let missing: Vec<(&str, &str)> = backend_programs(&self.config.contain)
            .into_iter()
            .filter(|(_, program)| find_program(program).is_none())
            .collect();
        if let Some((setting, program)) = missing.first() {
            let names: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
            checks.push(Check::fail(
                "firewall",
                subject,
                format!("program(s) not found: {}", names.join(", ")),
                missing_program_fix(program, setting),
            ));
        } else {
            checks.push(match contain::backend(contain) {
                Err(e) => Check::fail(
                    "firewall",
                    subject,
                    e.to_string(),
                    "correct the [contain] setting named",
                ),
                Ok(mut firewall) => exercise_firewall(&mut *firewall, &self.allowlist(), contain),
            });
        }
        if contain.kill_connections && find_program(&contain.conntrack).is_none() {
            checks.push(Check::warn(
                "firewall",
                "conntrack",
                format!(
                    "program `{}` not found: a ban will not end the source's open sessions",
                    contain.conntrack
                ),
                missing_program_fix(&contain.conntrack, "[contain] conntrack"),
            ));
        }
        checks
    }

    fn allowlist(&self) -> Allowlist {
        self.config.allowlist.build(crate::host::own_addresses().unwrap_or_default())
    }

    // ---- alerts --------------------------------------------------------

    /// `[alert.email]`: connect, EHLO (STARTTLS and AUTH when configured).
    pub fn check_smtp(&self) -> Vec<Check> {
        let Some(email) = &self.config.alert.email else {
            return Vec::new();
        };
        let port = email.port.map_or_else(|| "default port".to_string(), |p| p.to_string());
        let subject = format!("{}:{port}", email.server);
        let sender = match crate::notify::email::EmailSender::from_config(email) {
            Ok(s) => s,
            Err(e) => {
                return vec![Check::fail(
                    "smtp",
                    subject,
                    e.to_string(),
                    "correct the [alert.email] setting named",
                )]
            }
        };
        let subject = sender.server().to_string();
        vec![match sender.test_connection() {
            Ok(()) => Check::ok(
                "smtp",
                subject,
                "connected, EHLO accepted (and STARTTLS/AUTH as configured); no mail sent",
            ),
            Err(e) => Check::fail(
                "smtp",
                subject.clone(),
                // The subject already names the server.
                e.strip_prefix(&format!("SMTP {subject}: ")).unwrap_or(&e).to_string(),
                "check [alert.email] server, port and tls against the mail server, and that \
                 it runs and a firewall lets this host reach it",
            ),
        }]
    }

    /// `[[alert.webhook]]`: each URL is one hikeshi can post to. Nothing
    /// is posted: a test message would page people.
    pub fn check_webhooks(&self) -> Vec<Check> {
        self.config
            .alert
            .webhook
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                let subject = crate::notify::webhook::redact_url(&hook.url);
                match crate::notify::webhook::WebhookSender::from_config(std::slice::from_ref(hook))
                {
                    Ok(_) => Check::ok(
                        "webhook",
                        subject,
                        "URL is valid (nothing posted: a test message would page people)",
                    ),
                    Err(e) => Check::fail(
                        "webhook",
                        subject,
                        e.to_string().replace("alert.webhook[0]", &format!("alert.webhook[{i}]")),
                        "give an http:// or https:// URL with a host",
                    ),
                }
            })
            .collect()
    }

    /// Every severity reaches someone: a team member by email (when
    /// `[alert.email]` is set), a webhook, or standard output.
    pub fn check_alert_routing(&self) -> Vec<Check> {
        let alert = &self.config.alert;
        let members = &self.config.team.members;
        let mut checks = Vec::new();
        if alert.email.is_none() && !members.is_empty() {
            checks.push(Check::warn(
                "alerts",
                "email",
                format!(
                    "{} team member(s) have email addresses but [alert.email] is not set: no \
                     email is sent",
                    members.len()
                ),
                "add [alert.email] with server and from (see config/hikeshi.toml)",
            ));
        }
        let mut unrouted = Vec::new();
        let mut routes = Vec::new();
        for severity in Severity::ALL {
            let by_email = if alert.email.is_some() {
                members.iter().filter(|m| m.receives.contains(&severity)).count()
            } else {
                0
            };
            let by_webhook =
                alert.webhook.iter().filter(|w| w.receives.contains(&severity)).count();
            let total = by_email + by_webhook + usize::from(alert.stdout);
            if total == 0 {
                unrouted.push(severity);
            }
            routes.push(format!("{severity}: {total}"));
        }
        let serious: Vec<&str> =
            unrouted.iter().filter(|s| **s >= Severity::High).map(|s| s.as_str()).collect();
        let names: Vec<&str> = unrouted.iter().map(|s| s.as_str()).collect();
        let fix = "add receives = [..] with these severities to a [[team.members]] (with \
                   [alert.email] set) or to an [[alert.webhook]]";
        checks.push(if !serious.is_empty() {
            Check::fail(
                "alerts",
                "severities",
                format!("nobody is alerted for: {}", names.join(", ")),
                fix,
            )
        } else if !unrouted.is_empty() {
            Check::warn(
                "alerts",
                "severities",
                format!("nobody is alerted for: {}", names.join(", ")),
                fix,
            )
        } else {
            Check::ok(
                "alerts",
                "severities",
                format!("receivers per severity: {}", routes.join(", ")),
            )
        });
        checks
    }

    // ---- data dir, store, audit ----------------------------------------

    /// The data directory: present (or creatable), a directory, writable,
    /// private; the store opens, passes quick_check, and its audit chain
    /// verifies.
    pub fn check_data_dir(&self) -> Vec<Check> {
        let dir = self.data_dir;
        let subject = dir.display().to_string();
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return vec![self.missing_data_dir(dir)];
            }
            Err(e) => {
                return vec![Check::fail(
                    "data-dir",
                    subject,
                    format!("cannot stat: {e}"),
                    "choose another --data-dir, or fix the permissions of its parents",
                )]
            }
        };
        if !meta.is_dir() {
            return vec![Check::fail(
                "data-dir",
                subject,
                format!("is a {}, not a directory", file_kind(&meta)),
                "choose another --data-dir (or HIKESHI_DATA_DIR)",
            )];
        }
        let mut checks = Vec::new();
        let probe = dir.join(format!(".hikeshi-doctor-{}", std::process::id()));
        let writable = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
        match writable {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return vec![Check::fail(
                    "data-dir",
                    subject,
                    format!("not writable by uid {}: {e}", effective_uid()),
                    format!(
                        "run hikeshi as the directory's owner (uid {}), or `chown USER {}`; \
                         a read-only file system needs another --data-dir",
                        meta.uid(),
                        dir.display()
                    ),
                )]
            }
        }
        let mode = meta.permissions().mode() & 0o777;
        checks.push(if mode & 0o077 != 0 {
            Check::warn(
                "data-dir",
                subject.clone(),
                format!("writable, but mode {mode:03o}: others can read the evidence it holds"),
                format!("chmod 700 {}", dir.display()),
            )
        } else {
            Check::ok("data-dir", subject.clone(), format!("writable, mode {mode:03o}"))
        });
        checks.extend(self.check_store());
        checks
    }

    fn missing_data_dir(&self, dir: &Path) -> Check {
        let subject = dir.display().to_string();
        let parent = dir.ancestors().skip(1).find(|p| p.exists()).unwrap_or(Path::new("/"));
        match access_writable(parent) {
            Ok(()) => Check::ok(
                "data-dir",
                subject,
                format!(
                    "does not exist yet; created (mode 0700) on first use ({} is writable)",
                    parent.display()
                ),
            ),
            Err(e) => Check::fail(
                "data-dir",
                subject,
                format!(
                    "does not exist and cannot be created: {} is not writable: {e}",
                    parent.display()
                ),
                format!(
                    "create it: `install -d -m 700 {}` as root, or choose another --data-dir",
                    dir.display()
                ),
            ),
        }
    }

    fn check_store(&self) -> Vec<Check> {
        let path = crate::store::db_path(self.data_dir);
        let subject = path.display().to_string();
        let existed = path.exists();
        let options = crate::store::StoreOptions::from_config(self.config);
        let store = match crate::store::Store::open_with(&path, options) {
            Ok(s) => s,
            Err(e) => {
                return vec![Check::fail(
                    "store",
                    subject,
                    e.to_string(),
                    "if another program's file is there, move it away; if the database is \
                     damaged, restore it from a backup",
                )]
            }
        };
        let mut checks = Vec::new();
        match store.quick_check() {
            Ok(()) => checks.push(Check::ok(
                "store",
                subject.clone(),
                if existed {
                    "opens, schema current, quick_check ok"
                } else {
                    "created (empty), quick_check ok"
                },
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "store",
                    subject.clone(),
                    e.to_string(),
                    "stop hikeshi, copy the file aside as evidence, then `sqlite3 hikeshi.db \
                     .recover` or restore a backup",
                ));
                return checks;
            }
        }
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                checks.push(Check::warn(
                    "store",
                    subject.clone(),
                    format!("mode {mode:03o}: others can read incidents and evidence"),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
        checks.push(match store.audit_verify(None) {
            Ok(report) => match report.broken {
                None => Check::ok(
                    "audit",
                    subject,
                    format!(
                        "chain of {} entries verifies ({} rows checked)",
                        report.entries, report.rows
                    ),
                ),
                Some(broken) => Check::fail(
                    "audit",
                    subject,
                    format!("the audit trail does not hold: {broken}"),
                    "the store was changed outside hikeshi: keep a copy as evidence, run \
                     `hikeshi audit verify` for details, and treat it as an incident",
                ),
            },
            Err(e) => Check::fail(
                "audit",
                subject,
                e.to_string(),
                "run `hikeshi audit verify` for details",
            ),
        });
        checks
    }

    // ---- team ----------------------------------------------------------

    /// The runbook's four roles each have a contact.
    pub fn check_team(&self) -> Vec<Check> {
        let members = &self.config.team.members;
        if members.is_empty() {
            return vec![Check::fail(
                "team",
                "[team]",
                "no team members: nobody is told about incidents and no report names a \
                 responsible person",
                "add a [[team.members]] (role, name, email) for each of incident_manager, \
                 security_analyst, system_administrator, communication_lead",
            )];
        }
        Role::ALL
            .iter()
            .map(|&role| {
                let holders: Vec<String> = members
                    .iter()
                    .filter(|m| m.role == role)
                    .map(|m| format!("{} <{}>", m.name, m.email))
                    .collect();
                if holders.is_empty() {
                    Check::warn(
                        "team",
                        role.title_en(),
                        "nobody has this role",
                        format!(
                            "add [[team.members]] role = \"{}\", name = \"..\", email = \"..\"",
                            role.as_str()
                        ),
                    )
                } else {
                    Check::ok("team", role.title_en(), holders.join(", "))
                }
            })
            .collect()
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

/// The programs a backend runs, with the setting that names each.
pub fn backend_programs(contain: &contain::ContainConfig) -> Vec<(&'static str, &str)> {
    let ipt = &contain.iptables;
    match contain.backend {
        BackendKind::Nftables => vec![("[contain.nftables] nft", contain.nftables.nft.as_str())],
        BackendKind::Iptables | BackendKind::Ipset => {
            let mut programs = vec![
                ("[contain.iptables] iptables", ipt.iptables.as_str()),
                ("[contain.iptables] ip6tables", ipt.ip6tables.as_str()),
                ("[contain.iptables] iptables_restore", ipt.iptables_restore.as_str()),
                ("[contain.iptables] ip6tables_restore", ipt.ip6tables_restore.as_str()),
            ];
            if contain.backend == BackendKind::Ipset {
                programs.push(("[contain.iptables] ipset", ipt.ipset.as_str()));
            }
            programs
        }
        BackendKind::Fail2ban => {
            vec![("[contain.fail2ban] client", contain.fail2ban.client.as_str())]
        }
        BackendKind::None => Vec::new(),
    }
}

/// What hikeshi owns in the firewall, for findings.
fn owned_objects(contain: &contain::ContainConfig) -> String {
    match contain.backend {
        BackendKind::Nftables => format!("table inet {}", contain.nftables.table),
        BackendKind::Iptables => {
            format!("chain {} (iptables and ip6tables)", contain.iptables.chain)
        }
        BackendKind::Ipset => format!(
            "ipsets {p}4 and {p}6 (chain {c})",
            p = contain.iptables.set_prefix,
            c = contain.iptables.chain
        ),
        BackendKind::Fail2ban => format!("fail2ban jail {}", contain.fail2ban.jail),
        BackendKind::None => "nothing".into(),
    }
}

/// Lists hikeshi's objects (creating them if missing), adds a test
/// element per address family, checks it is listed, removes it, checks it
/// is gone, and removes the objects again if it created them.
pub fn exercise_firewall(
    firewall: &mut dyn Firewall,
    allowlist: &Allowlist,
    contain: &contain::ContainConfig,
) -> Check {
    let subject = firewall.kind().name();
    let objects = owned_objects(contain);
    let privilege_fix = "run hikeshi as root (changing the firewall needs CAP_NET_ADMIN); if \
                         root fails too, check the error above (kernel modules, another firewall \
                         manager)";
    let (present, created) = match firewall.list() {
        Ok(present) => (present, false),
        Err(list_error) if firewall.kind() == BackendKind::Fail2ban => {
            return Check::fail(
                "firewall",
                subject,
                format!("cannot list {objects}: {list_error}"),
                format!(
                    "start fail2ban (`systemctl start fail2ban`) and define jail {} \
                     (see docs), or set [contain.fail2ban] jail",
                    contain.fail2ban.jail
                ),
            );
        }
        Err(_) => match firewall.setup().and_then(|()| firewall.list()) {
            Ok(present) => (present, true),
            Err(e) => {
                let _ = firewall.uninstall();
                return Check::fail(
                    "firewall",
                    subject,
                    format!("cannot create or list {objects}: {e}"),
                    privilege_fix,
                );
            }
        },
    };
    if firewall.kind() == BackendKind::Fail2ban {
        if let Err(e) = firewall.setup() {
            return Check::fail(
                "firewall",
                subject,
                format!("{objects}: {e}"),
                "start fail2ban and check the jail with `fail2ban-client status JAIL`",
            );
        }
        // A fail2ban ban runs the jail's actions (some send mail): the
        // jail is proven by answering, not by a test ban.
        return Check::ok(
            "firewall",
            subject,
            format!(
                "{objects} answers, {} ban(s) listed; no test ban (it would run the jail's \
                 actions)",
                present.len()
            ),
        );
    }
    let mut tests: Vec<Permitted> = Vec::new();
    for v4 in [true, false] {
        let chosen = TEST_ADDRESSES
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .filter(|a| a.is_ipv4() == v4 && !present.contains(a))
            .find_map(|a| Permitted::check(a, allowlist).ok());
        tests.extend(chosen);
    }
    let cleanup_objects = |firewall: &mut dyn Firewall| -> Result<(), String> {
        if !created {
            return Ok(());
        }
        // Only if nothing but our test was ever in them (a ban hikeshi
        // made meanwhile keeps its objects).
        match firewall.list() {
            Ok(left) if left.is_empty() => firewall.uninstall().map_err(|e| e.to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    if tests.is_empty() {
        let cleaned = cleanup_objects(firewall);
        return Check::warn(
            "firewall",
            subject,
            format!(
                "{objects} listed, but every test address ({}) is allowlisted or banned: \
                 adding was not tested{}",
                TEST_ADDRESSES.join(", "),
                cleaned.err().map(|e| format!("; cleanup failed: {e}")).unwrap_or_default()
            ),
            "remove the documentation ranges from [allowlist] networks to let doctor test bans",
        );
    }
    let addrs: Vec<IpAddr> = tests.iter().map(|p| p.addr()).collect();
    let entries: Vec<BanEntry> = tests
        .iter()
        .map(|&addr| BanEntry { addr, timeout: Some(TEST_BAN_TIMEOUT), refresh: false })
        .collect();
    let added = firewall.ban(&entries).map_err(|e| e.to_string()).and_then(|()| {
        let listed = firewall.list().map_err(|e| e.to_string())?;
        let missing: Vec<String> =
            addrs.iter().filter(|a| !listed.contains(a)).map(|a| a.to_string()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("added {} but the listing does not show it", missing.join(", ")))
        }
    });
    // Removed whatever happened above: nothing of the test may stay.
    let removed = firewall.unban(&addrs).map_err(|e| e.to_string()).and_then(|()| {
        let listed = firewall.list().map_err(|e| e.to_string())?;
        let left: Vec<String> =
            addrs.iter().filter(|a| listed.contains(a)).map(|a| a.to_string()).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} still listed after removal", left.join(", ")))
        }
    });
    let cleaned = cleanup_objects(firewall);
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    match (added, removed, cleaned) {
        (Ok(()), Ok(()), Ok(())) => {
            let mut finding = if created {
                format!(
                    "{objects} was missing: created, listed, test element(s) {} added and \
                     removed, then removed again (hikeshi creates it at the first ban)",
                    shown.join(", ")
                )
            } else {
                format!(
                    "{objects} listed ({} ban(s)), test element(s) {} added and removed",
                    present.len(),
                    shown.join(", ")
                )
            };
            if !firewall.expires_on_its_own() {
                finding.push_str("; bans end only when hikeshi removes them (run `hikeshi watch`)");
            }
            Check::ok("firewall", subject, finding)
        }
        (Err(e), _, _) => Check::fail(
            "firewall",
            subject,
            format!("cannot add a test element to {objects}: {e}"),
            privilege_fix,
        ),
        (Ok(()), Err(e), _) => Check::fail(
            "firewall",
            subject,
            format!("cannot remove test element(s) {}: {e}", shown.join(", ")),
            format!(
                "remove them by hand (`hikeshi unban {}`) and check the backend",
                shown.join(" ")
            ),
        ),
        (Ok(()), Ok(()), Err(e)) => Check::fail(
            "firewall",
            subject,
            format!("test passed, but {objects} (created for it) could not be removed: {e}"),
            "`hikeshi firewall uninstall` removes it",
        ),
    }
}

/// `program` as a path, or found on PATH, if it is an executable file.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// The Debian package of a program hikeshi runs.
pub fn debian_package(program: &str) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    Some(match name {
        "nft" => "nftables",
        "iptables" | "ip6tables" | "iptables-restore" | "ip6tables-restore" => "iptables",
        "ipset" => "ipset",
        "fail2ban-client" => "fail2ban",
        "conntrack" => "conntrack",
        "journalctl" => "systemd",
        "ss" | "ip" => "iproute2",
        _ => return None,
    })
}

fn missing_program_fix(program: &str, setting: &str) -> String {
    match debian_package(program) {
        Some(package) => format!(
            "`apt install {package}` (Debian package of {program}), or set {setting} to the \
             program's path"
        ),
        None => format!(
            "set {setting} to an installed program (a name on PATH or an absolute path); \
             `{program}` was not found"
        ),
    }
}

/// "1 sshd line", "3 sshd lines".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// An age to the minute (to the second under a minute): "45s", "10m",
/// "2h5m", "3d4h".
pub fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether this user may create entries in `dir` (also false on a
/// read-only file system, even for root).
fn access_writable(dir: &Path) -> std::io::Result<()> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        ParseOptions::new(
            hikeshi_core::Mode::default(),
            jiff::tz::TimeZone::UTC,
            "2026-03-01T00:00:00Z".parse().unwrap(),
        )
    }

    #[test]
    fn scan_lines_counts_sshd_lines_and_finds_the_newest() {
        let text = b"Feb 27 10:00:00 web1 CRON[1]: (root) CMD (true)\n\
Feb 27 10:00:01 web1 sshd[42]: Failed password for root from 192.0.2.7 port 4242 ssh2\n\
Feb 28 11:00:00 web1 sshd[43]: Accepted publickey for alice from 192.0.2.8 port 4243 ssh2: ED25519 SHA256:x\n\
Feb 28 11:00:01 web1 sshd[43]: Server listening on 0.0.0.0 port 22.\n";
        let found = scan_lines(text, options());
        assert_eq!(found.lines, 4);
        assert_eq!(found.sshd, 3);
        assert_eq!(found.recognised, 2);
        assert_eq!(found.newest, Some("2026-02-28T11:00:00Z".parse().unwrap()));
        let none = scan_lines(b"Feb 27 10:00:00 web1 CRON[1]: x\n\xff\xfe\0\n", options());
        assert_eq!((none.sshd, none.newest), (0, None));
    }

    #[test]
    fn findings_stay_on_one_line() {
        let report = Report {
            checks: vec![Check::fail("log", "/x\n[ ok ] forged", "a\x1b[31m\nb", "c\rd")],
        };
        let text = report.to_text();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("[FAIL] log /x [ ok ] forged: a [31m b\n"), "{text}");
        assert!(report.failed());
    }

    #[test]
    fn ages_are_coarse() {
        let text = |s| age_text(Duration::from_secs(s));
        assert_eq!(
            [text(0), text(59), text(60), text(659), text(3600), text(3 * 3600 + 120)],
            ["0s", "59s", "1m", "10m", "1h", "3h2m"]
        );
        assert_eq!([text(3 * 86_400 + 59), text(86_400 + 7200 + 60)], ["3d", "1d2h"]);
    }

    #[test]
    fn packages_of_programs() {
        assert_eq!(debian_package("/usr/sbin/nft"), Some("nftables"));
        assert_eq!(debian_package("ip6tables-restore"), Some("iptables"));
        assert_eq!(debian_package("fail2ban-client"), Some("fail2ban"));
        assert_eq!(debian_package("hikeshi-no-such"), None);
        assert!(find_program("sh").is_some());
        assert!(find_program("hikeshi-no-such-program").is_none());
        assert!(find_program("/nonexistent/nft").is_none());
    }

    #[test]
    fn team_roles_and_routing() {
        let config = Config::from_toml(
            r#"
[[team.members]]
role = "incident_manager"
name = "Aiko"
email = "aiko@example.com"
receives = ["high", "critical"]
[alert.email]
server = "127.0.0.1"
tls = "none"
from = "hikeshi@example.com"
"#,
            Path::new("x.toml"),
        )
        .unwrap();
        let doctor = Doctor {
            config: &config,
            config_path: None,
            data_dir: Path::new("/nonexistent"),
            now: Timestamp::UNIX_EPOCH,
        };
        let team = doctor.check_team();
        assert_eq!(team.len(), 4);
        assert_eq!(team[0].status, Status::Ok);
        assert!(team[1..].iter().all(|c| c.status == Status::Warn));
        assert!(team[3].fix.as_deref().unwrap().contains("communication_lead"));
        let routing = doctor.check_alert_routing();
        assert_eq!(routing.len(), 1);
        assert_eq!(routing[0].status, Status::Warn, "{routing:?}");
        assert!(routing[0].finding.contains("low, medium"), "{routing:?}");

        let empty = Config::default();
        let doctor = Doctor { config: &empty, ..doctor };
        assert_eq!(doctor.check_team()[0].status, Status::Fail);
        assert_eq!(doctor.check_alert_routing()[0].status, Status::Fail);
    }
}
