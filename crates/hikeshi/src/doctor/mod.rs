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
//!
//! One submodule per area: `config`, `sources` (log files, the
//! journal, syslog receivers), `firewall`, `alerts` (SMTP, webhooks,
//! routing, the team) and `store` (the data directory, the store, the
//! audit trail).

mod alerts;
mod config;
mod firewall;
mod sources;
mod store;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;

pub use firewall::{backend_programs, exercise_firewall};
pub use sources::{check_bind, scan_lines, SshdLines};

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
    /// Whether `hikeshi watch` reads the journal: as set, or when unset,
    /// only if no file or syslog source is configured (as the daemon
    /// decides).
    pub fn journal_enabled(&self) -> bool {
        let watch = &self.config.watch;
        watch.journal.is_enabled(!watch.files.is_empty() || !watch.syslog.is_empty())
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use hikeshi_core::parse::ParseOptions;

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
