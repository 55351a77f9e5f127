//! Recovery validation (`hikeshi verify`): after an incident, check that
//! the system works again: systemd units active, TCP ports answering,
//! commands succeeding, files matching a known hash, and monitoring
//! resumed (`hikeshi watch` running and healthy). Each check gives a
//! result with what was checked and why it failed; the report serialises
//! to canonical JSON with a SHA-256, ready to attach to an incident.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hikeshi_core::fim::record::hex;
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::VerifyCheck;
use crate::exec;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// The configured name, or the target.
    pub name: String,
    /// systemd, tcp, command, file or monitoring.
    pub kind: String,
    /// What was checked: the unit, address, command line or path.
    pub target: String,
    pub passed: bool,
    /// What was observed (why it failed).
    pub detail: String,
    pub duration_ms: u64,
}

/// The result of `hikeshi verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checked_at: Timestamp,
    pub host: String,
    pub results: Vec<CheckOutcome>,
    pub passed: usize,
    pub failed: usize,
    pub all_passed: bool,
}

impl VerifyReport {
    /// Canonical JSON (fields in declaration order, compact).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("report serialises")
    }

    /// `sha256:<hex>` over [`VerifyReport::to_canonical_json`].
    pub fn evidence_digest(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.to_canonical_json())))
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "hikeshi verify on {} at {}: {} passed, {} failed\n",
            self.host, self.checked_at, self.passed, self.failed
        );
        for r in &self.results {
            let mark = if r.passed { "ok  " } else { "FAIL" };
            out.push_str(&format!("  {mark} {} [{} {}]: {}\n", r.name, r.kind, r.target, r.detail));
        }
        out.push_str(if self.all_passed {
            "all checks passed: the system can be considered recovered\n"
        } else {
            "some checks failed: the system is not recovered\n"
        });
        out
    }
}

/// Runs every check in order, then appends `extra` (results computed
/// elsewhere, such as [`monitoring`]).
pub fn run(
    checks: &[VerifyCheck],
    extra: Vec<CheckOutcome>,
    checked_at: Timestamp,
    host: String,
) -> VerifyReport {
    let mut results: Vec<CheckOutcome> = checks.iter().map(run_one).collect();
    results.extend(extra);
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    VerifyReport {
        checked_at,
        host,
        passed,
        failed,
        all_passed: failed == 0 && passed > 0,
        results,
    }
}

/// The "monitoring resumed" check: `hikeshi watch` runs with this data
/// directory and its status has nothing to warn about. `status` is the
/// daemon's last status (if any), `running` whether it runs now.
pub fn monitoring(
    status: Option<&crate::daemon::status::DaemonStatus>,
    running: bool,
    warnings: &[crate::daemon::status::Warning],
) -> CheckOutcome {
    let started = Instant::now();
    let (passed, detail) = match status {
        Some(s) if running && warnings.is_empty() => (
            true,
            format!(
                "hikeshi watch runs (pid {}), {} sources, {} lines handled, no warnings",
                s.pid,
                s.sources.len(),
                s.totals.handled
            ),
        ),
        _ => (
            false,
            warnings
                .iter()
                .map(|w| format!("{}: {}", w.subject, w.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    CheckOutcome {
        name: "monitoring resumed".into(),
        kind: "monitoring".into(),
        target: "hikeshi watch".into(),
        passed,
        detail,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn run_one(check: &VerifyCheck) -> CheckOutcome {
    let started = Instant::now();
    let (kind, target, name, result) = match check {
        VerifyCheck::Systemd { unit, name } => ("systemd", unit.clone(), name, systemd(unit)),
        VerifyCheck::Tcp { address, name, timeout_seconds } => {
            ("tcp", address.clone(), name, tcp(address, Duration::from_secs(*timeout_seconds)))
        }
        VerifyCheck::Command { argv, name, timeout_seconds } => {
            ("command", argv.join(" "), name, command(argv, Duration::from_secs(*timeout_seconds)))
        }
        VerifyCheck::File { path, sha256, name } => {
            ("file", path.display().to_string(), name, file(path, sha256))
        }
    };
    let (passed, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    CheckOutcome {
        name: name.clone().unwrap_or_else(|| target.clone()),
        kind: kind.into(),
        target,
        passed,
        detail,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

fn systemd(unit: &str) -> Result<String, String> {
    if unit.is_empty() || unit.starts_with('-') {
        return Err(format!("`{unit}` is not a unit name"));
    }
    let output = exec::command("systemctl", ["is-active", "--", unit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e} (is systemd installed?)"))?;
    let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if output.status.success() && state == "active" {
        return Ok("active".into());
    }
    let mut detail = format!(
        "not active: systemctl says `{}`",
        if state.is_empty() { "nothing" } else { &state }
    );
    if !stderr.is_empty() {
        detail.push_str(&format!(" ({stderr})"));
    }
    Err(detail)
}

fn tcp(address: &str, timeout: Duration) -> Result<String, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{address}`: {e} (expected host:port)"))?
        .collect();
    let mut last = String::from("no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return Ok(format!("{addr} accepted a connection")),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(format!("no connection: {last}"))
}

fn command(argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty argv".into());
    };
    let mut child = exec::command(program, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    // Read stderr on a thread so a chatty program cannot block on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s and was killed", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for `{program}`: {e}")),
        }
    };
    let stderr = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let tail: String =
        stderr.trim().chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
    if status.success() {
        Ok("exit status 0".into())
    } else if tail.is_empty() {
        Err(format!("failed: {status}"))
    } else {
        Err(format!("failed: {status}: {tail}"))
    }
}

fn file(path: &std::path::Path, expected: &str) -> Result<String, String> {
    let expected = expected.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("expected hash `{expected}` is not 64 hex digits"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    let actual = hex(&hasher.finalize());
    if actual == expected {
        Ok(format!("sha256 {actual}"))
    } else {
        Err(format!("sha256 is {actual}, expected {expected}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(detail: &str) -> VerifyReport {
        VerifyReport {
            checked_at: Timestamp::from_second(1_700_000_000).unwrap(),
            host: "web1".into(),
            results: vec![CheckOutcome {
                name: "ssh".into(),
                kind: "tcp".into(),
                target: "127.0.0.1:22".into(),
                passed: false,
                detail: detail.into(),
                duration_ms: 3,
            }],
            passed: 0,
            failed: 1,
            all_passed: false,
        }
    }

    #[test]
    fn digest_is_sha256_of_the_canonical_json() {
        let r = report("refused");
        let json = r.to_canonical_json();
        assert_eq!(r.evidence_digest(), format!("sha256:{}", hex(&Sha256::digest(&json))));
        assert!(json.starts_with(b"{\"checked_at\":\"2023-11-14T22:13:20Z\",\"host\":\"web1\""));
        assert_ne!(report("timed out").evidence_digest(), r.evidence_digest());
        assert!(r.render_text().contains("FAIL ssh [tcp 127.0.0.1:22]: refused"));
        assert!(r.render_text().contains("not recovered"));
    }

    #[test]
    fn hostile_unit_names_are_refused_before_systemctl() {
        assert!(systemd("--help").unwrap_err().contains("not a unit name"));
        assert!(systemd("").is_err());
    }
}
