//! `hikeshi watch` end to end, with real processes: a followed file, stdin,
//! a syslog receiver fed by the real `logger`; signals (SIGTERM flushes
//! and exits 0, SIGHUP reloads or refuses a bad configuration); restarts
//! that resume exactly and alert nothing twice; `hikeshi status`; the
//! metrics endpoint; hostile lines; configurations that cannot start.
//! The firewall backend is `none` here; bans through nftables in a network
//! namespace are in `watch_e2e.rs`. Alerts go to stdout (`[alert] stdout`).

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hikeshi::exec;
use serde_json::Value;

#[path = "support/output.rs"]
mod output;
use output::collect;

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");
const DEADLINE: Duration = Duration::from_secs(20);

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A configuration with the `none` firewall, alerts on stdout, and
    /// `extra` appended.
    fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { dir };
        env.configure(extra);
        env
    }

    fn configure(&self, extra: &str) {
        let config = format!(
            "[contain]\nbackend = \"none\"\n[alert]\nstdout = true\n{extra}\n",
            extra = extra.replace("$DIR", &self.dir.path().display().to_string())
        );
        std::fs::write(self.path("hikeshi.toml"), config).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn argv<'a>(
        &self,
        data: &'a Path,
        config: &'a Path,
        args: &[&'a str],
    ) -> Vec<&'a std::ffi::OsStr> {
        let mut argv: Vec<&std::ffi::OsStr> =
            vec!["--data-dir".as_ref(), data.as_os_str(), "--config".as_ref(), config.as_os_str()];
        argv.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        argv
    }

    fn hikeshi(&self, args: &[&str]) -> Output {
        let (data, config) = (self.path("data"), self.path("hikeshi.toml"));
        exec::command(BIN, self.argv(&data, &config, args)).env("TZ", "UTC").output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.hikeshi(args);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}{}", text(&out.stdout), text(&out.stderr)))
    }

    /// Starts `hikeshi watch` and waits until it says it is ready.
    fn watch(&self, args: &[&str]) -> Daemon {
        let daemon = self.spawn_watch(args, Stdio::null());
        daemon.wait_for_stderr(hikeshi::daemon::READY_LINE);
        daemon
    }

    fn spawn_watch(&self, args: &[&str], stdin: Stdio) -> Daemon {
        let (data, config) = (self.path("data"), self.path("hikeshi.toml"));
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut child = exec::command(BIN, self.argv(&data, &config, &all))
            .env("TZ", "UTC")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Daemon { child, stdout, stderr }
    }

    /// Waits until `check` holds for `hikeshi status --json` (the daemon
    /// rewrites its status every two seconds).
    fn wait_status(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let status = self.json(&["status", "--json"]);
            if check(&status) {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}: {status:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn incidents(&self) -> Vec<Value> {
        self.json(&["incident", "list", "--json"]).as_array().unwrap().clone()
    }

    /// Waits until `check` holds for the incident list.
    fn wait_incidents(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let incidents = self.incidents();
            if check(&incidents) {
                return incidents;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}: {incidents:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `hikeshi watch`; killed if the test ends without stopping it.
struct Daemon {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Daemon {
    fn stdout(&self) -> String {
        text(&self.stdout.lock().unwrap())
    }

    fn stderr(&self) -> String {
        text(&self.stderr.lock().unwrap())
    }

    fn wait_for_stderr(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < DEADLINE,
                "no {needle:?} from hikeshi watch; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// SIGTERM, then the exit status (within the deadline).
    fn stop(mut self) -> (i32, String, String) {
        self.signal(rustix::process::Signal::TERM);
        let code = self.wait_exit();
        (code, self.stdout(), self.stderr())
    }

    fn wait_exit(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last bytes.
                std::thread::sleep(Duration::from_millis(50));
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < DEADLINE, "hikeshi watch did not exit:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failure line with the current time (the daemon bans and counts by
/// log time, which must be recent).
fn failed(pid: u32, addr: &str, user: &str) -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{} server1 sshd[{pid}]: Failed password for invalid user {user} from {addr} port {} ssh2\n",
        now.strftime("%b %e %H:%M:%S"),
        40000 + pid
    )
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn attempts(incident: &Value) -> u64 {
    incident["attempts"].as_u64().unwrap()
}

fn files_config(start: &str) -> String {
    format!("[[watch.files]]\npaths = [\"$DIR/logs/*.log\"]\nstart = \"{start}\"\n")
}

#[test]
fn a_followed_file_opens_one_incident_with_its_lines_and_one_alert() {
    let env = Env::new(&files_config("end"));
    let log = env.path("logs/auth.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    append(&log, failed(1, "203.0.113.5", "old").as_bytes()); // before the start: not read
    let daemon = env.watch(&[]);
    let before = std::fs::metadata(&log).unwrap().len();
    let mut written = String::new();
    for pid in 10..16 {
        written.push_str(&failed(pid, "203.0.113.5", "admin"));
    }
    append(&log, written.as_bytes());
    let incidents = env.wait_incidents("an incident of 6 attempts", |all| {
        all.len() == 1 && attempts(&all[0]) == 6
    });
    assert_eq!(incidents[0]["key"]["subject"], "203.0.113.5");
    assert_eq!(incidents[0]["rule"], "brute_force");

    // The evidence is the file's own lines, with their offsets and digests.
    let id = incidents[0]["id"].to_string();
    let shown = env.json(&["incident", "show", &id, "--json"]);
    let evidence = shown["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 6, "{shown:#}");
    let mut offset = before;
    for (item, line) in evidence.iter().zip(written.lines()) {
        assert_eq!(item["file"], log.display().to_string());
        assert_eq!(item["offset"], offset);
        assert_eq!(item["line"], line);
        use sha2::Digest;
        assert_eq!(item["sha256"], hex(&sha2::Sha256::digest(line.as_bytes())));
        offset += line.len() as u64 + 1;
    }

    // The status says what was read and parsed.
    let status = env.wait_status("6 lines read", |s| s["daemon"]["sources"][0]["lines"] == 6);
    assert_eq!(status["running"], true, "{status:#}");
    let stream = &status["daemon"]["streams"][0];
    assert_eq!(stream["name"], format!("file:{}", log.display()));
    assert_eq!((stream["sshd_lines"].as_u64(), stream["failures"].as_u64()), (Some(6), Some(6)));
    assert_eq!(stream["behind_bytes"], 0, "{status:#}");
    assert_eq!(status["daemon"]["sources"][0]["files"]["followed"], 1, "{status:#}");
    assert_eq!(status["open_incidents"].as_array().unwrap().len(), 1);
    assert_eq!(env.hikeshi(&["status"]).status.code(), Some(0));

    // One alert, for the incident that opened.
    let start = Instant::now();
    while !daemon.stdout().contains("Alert #") && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stdout, stderr) = daemon.stop();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("Alert #").count(), 1, "{stdout}");
    assert!(stdout.contains("203.0.113.5"), "{stdout}");

    // Stopped: status says so, with its own exit code.
    let stopped = env.hikeshi(&["status"]);
    assert_eq!(stopped.status.code(), Some(3), "{}", text(&stopped.stdout));
    assert!(text(&stopped.stdout).contains("NOT running"));

    // A restart reads nothing twice and alerts nothing again, and goes on
    // exactly where it stopped.
    let again = env.watch(&[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(attempts(&env.incidents()[0]), 6);
    append(&log, failed(20, "203.0.113.5", "admin").as_bytes());
    env.wait_incidents("the 7th attempt", |all| attempts(&all[0]) == 7);
    let (code, stdout, stderr) = again.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("Alert #"), "re-alerted: {stdout}");
}

#[test]
fn lines_written_while_stopped_are_read_and_counted_with_those_before() {
    let env = Env::new(&files_config("beginning"));
    let log = env.path("logs/auth.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let daemon = env.watch(&[]);
    for pid in 1..4 {
        append(&log, failed(pid, "198.51.100.7", "root").as_bytes());
    }
    env.wait_status("3 events", |s| s["daemon"]["totals"]["events"] == 3);
    assert_eq!(daemon.stop().0, 0);
    assert!(env.incidents().is_empty());
    for pid in 4..7 {
        append(&log, failed(pid, "198.51.100.7", "root").as_bytes());
    }
    let daemon = env.watch(&[]);
    // 3 before the stop and 3 while stopped: one attack of 6.
    let incidents =
        env.wait_incidents("the incident", |all| all.len() == 1 && attempts(&all[0]) == 6);
    assert_eq!(incidents[0]["key"]["subject"], "198.51.100.7");
    // The incident stays cached between batches, and the status says so.
    let status = env.wait_status("the cached incident", |s| {
        s["daemon"]["memory"]["incident_cache"].as_u64().is_some_and(|n| n >= 1)
    });
    let memory = &status["daemon"]["memory"];
    assert_eq!(memory["incident_cache_max"], 5_000, "{memory}");
    assert!(memory["incident_cache_name_bytes"].as_u64().unwrap() > 0, "{memory}");
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn sighup_reloads_the_configuration_and_refuses_a_bad_one() {
    let env = Env::new(&format!("{}[detect]\nmaxretry = 50\n", files_config("end")));
    let log = env.path("logs/auth.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let daemon = env.watch(&[]);
    for pid in 1..4 {
        append(&log, failed(pid, "198.51.100.20", "admin").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(env.incidents().is_empty());

    env.configure(&format!("{}[detect]\nmaxretry = 3\n", files_config("end")));
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_for_stderr("configuration reloaded");
    let start = Instant::now();
    while daemon.stderr().matches(hikeshi::daemon::READY_LINE).count() < 2 {
        assert!(start.elapsed() < DEADLINE, "{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in 10..13 {
        append(&log, failed(pid, "198.51.100.21", "admin").as_bytes());
    }
    env.wait_incidents("an incident under the new threshold", |all| {
        all.iter().any(|i| i["key"]["subject"] == "198.51.100.21")
    });

    // A broken file is refused: the daemon runs on with what it had.
    std::fs::write(env.path("hikeshi.toml"), "[detect]\nmaxretry = \"many\"\n").unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_for_stderr("reload refused");
    assert!(daemon.stderr().contains("maxretry"), "{}", daemon.stderr());
    // (The commands below read the configuration too.)
    env.configure(&format!("{}[detect]\nmaxretry = 3\n", files_config("end")));
    for pid in 20..23 {
        append(&log, failed(pid, "198.51.100.22", "admin").as_bytes());
    }
    env.wait_incidents("detection still running", |all| {
        all.iter().any(|i| i["key"]["subject"] == "198.51.100.22")
    });
    let status = env.wait_status("the refused reload", |s| s["daemon"]["reload_failures"] == 1);
    assert_eq!(status["daemon"]["reloads"], 1, "{status:#}");

    // A configuration that parses but cannot start (its syslog port is
    // taken): the daemon goes back to the one that ran.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    env.configure(&format!(
        "{}[detect]\nmaxretry = 3\n[[watch.syslog]]\nlisten = [\"tcp://127.0.0.1:{port}\"]\n",
        files_config("end")
    ));
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_for_stderr("going back to the previous one");
    env.configure(&format!("{}[detect]\nmaxretry = 3\n", files_config("end")));
    for pid in 30..33 {
        append(&log, failed(pid, "198.51.100.23", "admin").as_bytes());
    }
    env.wait_incidents("detection after going back", |all| {
        all.iter().any(|i| i["key"]["subject"] == "198.51.100.23")
    });
    let status = env.wait_status("two refused reloads", |s| s["daemon"]["reload_failures"] == 2);
    assert_eq!(status["daemon"]["reloads"], 1, "{status:#}");
    assert_eq!(status["running"], true);
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn stdin_is_a_source_and_its_end_stops_the_daemon() {
    let env = Env::new("");
    let mut daemon = env.spawn_watch(&["--stdin"], Stdio::piped());
    let mut stdin = daemon.child.stdin.take().unwrap();
    for pid in 1..7 {
        stdin.write_all(failed(pid, "2001:db8::66", "oracle").as_bytes()).unwrap();
    }
    drop(stdin);
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.stderr());
    // Only stdin: the journal is not read when another source is given.
    assert!(daemon.stderr().contains("(sources: 1,"), "{}", daemon.stderr());
    let incidents = env.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(attempts(&incidents[0]), 6);
    let shown = env.json(&["incident", "show", &incidents[0]["id"].to_string(), "--json"]);
    assert_eq!(shown["evidence"][0]["file"], "stdin");
    assert_eq!(daemon.stdout().matches("Alert #").count(), 1);
}

/// Sends `message` as sshd[`pid`] to a UDP syslog receiver with the real
/// `logger`.
fn logger(port: u16, pid: u32, message: &str) {
    let (port, id) = (port.to_string(), format!("--id={pid}"));
    let args = ["--server", "127.0.0.1", "--port", &port, "--udp", "--rfc3164"];
    let out = exec::command("logger", args)
        .args(["--tag", "sshd", &id, "-p", "auth.info", message])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn syslog_messages_sent_by_logger_are_detected() {
    let port = free_udp_port();
    let env = Env::new(&format!("[[watch.syslog]]\nlisten = [\"udp://127.0.0.1:{port}\"]\n"));
    let daemon = env.watch(&[]);
    for pid in 1..7 {
        let message =
            format!("Failed password for invalid user test from 192.0.2.{pid} port 5{pid} ssh2");
        logger(port, 100 + pid, &message);
    }
    // Six addresses of one /24 are not one attacker by default: nothing
    // opens, but every message was received and parsed.
    let status = env.wait_status("6 failures", |s| s["daemon"]["streams"][0]["failures"] == 6);
    let stream = &status["daemon"]["streams"][0];
    assert!(stream["name"].as_str().unwrap().starts_with("syslog-udp:127.0.0.1:"), "{status:#}");
    assert!(env.incidents().is_empty());
    for _ in 0..6 {
        logger(port, 77, "Failed password for root from 192.0.2.200 port 22 ssh2");
    }
    let incidents = env.wait_incidents("the incident", |all| all.len() == 1);
    assert_eq!(incidents[0]["key"]["subject"], "192.0.2.200");
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn hostile_lines_are_counted_and_never_stop_the_daemon() {
    let env = Env::new(&files_config("end"));
    let log = env.path("logs/auth.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let daemon = env.watch(&[]);
    let mut hostile = Vec::new();
    hostile.extend_from_slice(&vec![b'A'; 100_000]);
    hostile.push(b'\n');
    hostile.extend_from_slice(b"Nov 26 10:00:00 server1 sshd[1]: Failed password for \xff\xfe from 203.0.113.9 port 1 ssh2\n");
    hostile.extend_from_slice(b"Nov 26 10:00:00 server1 sshd[1]: Failed \0password\n");
    hostile.extend_from_slice(b"garbage without a header\n");
    append(&log, &hostile);
    for pid in 1..7 {
        let user = format!("evil\u{1b}[31m$(reboot);`id`{pid}");
        append(&log, failed(pid, "203.0.113.10", &user).as_bytes());
    }
    let incidents = env.wait_incidents("the incident", |all| {
        all.iter().any(|i| i["key"]["subject"] == "203.0.113.10")
    });
    let users =
        incidents.iter().find(|i| i["key"]["subject"] == "203.0.113.10").unwrap()["users"].clone();
    assert!(users.to_string().contains("evil"), "{users}");
    // The over-long line is refused by the reader (never buffered whole);
    // the NUL line and the line without a header are skipped by the parser.
    let status = env.wait_status("9 lines", |s| s["daemon"]["streams"][0]["lines"] == 9);
    assert_eq!(status["daemon"]["sources"][0]["rejected"], 1, "{status:#}");
    let stream = &status["daemon"]["streams"][0];
    assert_eq!(stream["skipped"], 2, "{status:#}");
    assert_eq!(stream["failures"], 7, "{status:#}");
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn the_metrics_endpoint_serves_the_status_on_loopback() {
    let env =
        Env::new(&format!("{}[watch]\nmetrics_listen = \"127.0.0.1:0\"\n", files_config("end")));
    let log = env.path("logs/auth.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let daemon = env.watch(&[]);
    append(&log, failed(1, "203.0.113.50", "admin").as_bytes());
    let start = Instant::now();
    let body = loop {
        let status = env.json(&["status", "--json"]);
        let addr = status["daemon"]["metrics"].as_str().unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_to_string(&mut answer).unwrap();
        if answer.contains("hikeshi_stream_failures_total{stream=") && answer.contains("} 1\n") {
            break answer;
        }
        assert!(start.elapsed() < DEADLINE, "{answer}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("hikeshi_up 1\n"));
    assert!(
        body.lines().any(|l| l.starts_with("hikeshi_source_lines_total{") && l.ends_with(" 1")),
        "{body}"
    );
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn configurations_that_cannot_run_say_why() {
    let cases: Vec<(String, &str)> = vec![
        ("[watch.journal]\nenabled = false\n".to_string(), "nothing to watch"),
        (
            format!("{}[watch]\nmetrics_listen = \"localhost\"\n", files_config("end")),
            "[watch] metrics_listen: \"localhost\" is not an address and port",
        ),
        (
            format!("{}[watch]\nsilent_after = \"soon\"\n", files_config("end")),
            "[watch] silent_after",
        ),
        (
            "[[watch.files]]\npaths = [\"relative/auth.log\"]\n".to_string(),
            "[[watch.files]] entry 1",
        ),
    ];
    for (config, expected) in cases {
        let env = Env::new(&config);
        let out = env.hikeshi(&["watch"]);
        assert_eq!(out.status.code(), Some(2), "{config}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expected), "{config}: {}", text(&out.stderr));
    }
    // A port another program holds stops the start, naming the source.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = Env::new(&format!("[[watch.syslog]]\nlisten = [\"tcp://127.0.0.1:{port}\"]\n"));
    let out = env.hikeshi(&["watch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("[[watch.syslog]] entry 1"), "{}", text(&out.stderr));
    // Never started: status says so.
    let status = env.hikeshi(&["status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(text(&status.stdout).contains("never started"), "{}", text(&status.stdout));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn verify_confirms_monitoring_resumed_only_while_the_daemon_is_healthy() {
    let env = Env::new(&files_config("end"));
    std::fs::create_dir_all(env.path("logs")).unwrap();
    let daemon = env.watch(&[]);
    let report = env.json(&["verify", "--json"]);
    let check = &report["results"][0];
    assert_eq!(check["kind"], "monitoring", "{report:#}");
    assert_eq!(check["passed"], true, "{report:#}");
    assert_eq!(report["all_passed"], true);
    assert_eq!(daemon.stop().0, 0);
    let out = env.hikeshi(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = report["results"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("hikeshi watch stopped at"), "{detail}");
}

#[path = "support/journal_export.rs"]
mod journal_export;

#[test]
fn the_journal_is_followed_and_its_cursor_resumes_exactly() {
    use journal_export::{write_journal, Entry};
    let env = Env::new("[watch.journal]\ndirectory = \"$DIR/journal\"\n");
    std::fs::create_dir(env.path("journal")).unwrap();
    let failures = |from: u32, to: u32| -> Vec<Entry> {
        (from..to)
            .map(|i| {
                Entry::sshd(
                    u64::from(i),
                    4000 + i,
                    format!("Failed password for invalid user web from 203.0.113.77 port {i} ssh2"),
                )
            })
            .collect()
    };
    let daemon = env.watch(&[]);
    // Only the journal: it is read by default when nothing else is given.
    assert!(daemon.stderr().contains("(sources: 1,"), "{}", daemon.stderr());
    write_journal(&env.path("journal/a.journal"), &failures(0, 6));
    let incidents =
        env.wait_incidents("the incident", |all| all.len() == 1 && attempts(&all[0]) == 6);
    let shown = env.json(&["incident", "show", &incidents[0]["id"].to_string(), "--json"]);
    assert!(shown["evidence"][0]["file"].as_str().unwrap().starts_with("journal:directory="));
    assert!(
        shown["evidence"][0]["line"].as_str().unwrap().ends_with(
            "web1 sshd[4000]: Failed password for invalid user web from 203.0.113.77 port 0 ssh2"
        ),
        "{shown:#}"
    );
    let (code, _, stderr) = daemon.stop();
    assert_eq!(code, 0, "{stderr}");

    // Records written while stopped are read after the saved cursor, and
    // none twice.
    write_journal(&env.path("journal/a.journal"), &failures(6, 8));
    let daemon = env.watch(&[]);
    env.wait_incidents("two more attempts", |all| attempts(&all[0]) == 8);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(attempts(&env.incidents()[0]), 8);
    assert_eq!(daemon.stop().0, 0);
}

#[test]
fn hostile_stdin_is_counted_and_loses_nothing_after_it() {
    let env = Env::new("[parse]\nmax_line_bytes = 4096\n");
    let mut daemon = env.spawn_watch(&["--stdin"], Stdio::piped());
    let mut stdin = daemon.child.stdin.take().unwrap();
    let mut hostile = vec![b'x'; 100_000];
    hostile.push(b'\n');
    hostile.extend_from_slice(b"Nov 26 10:00:00 h sshd[1]: Failed password for \xff\xfe\xfd from 203.0.113.9 port 1 ssh2\n");
    hostile.extend_from_slice(b"\0\0\0 sshd[2]: Failed \0 password\n");
    hostile.extend_from_slice(b"no header at all\r\n");
    stdin.write_all(&hostile).unwrap();
    for pid in 1..7 {
        let user = format!("root\u{1b}]0;pwned\u{7}`id`{pid}");
        stdin.write_all(failed(pid, "198.51.100.44", &user).as_bytes()).unwrap();
    }
    drop(stdin);
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.stderr());
    let incidents = env.incidents();
    let attack = incidents.iter().find(|i| i["key"]["subject"] == "198.51.100.44").unwrap();
    assert_eq!(attempts(attack), 6, "{incidents:#?}");
    let status = env.json(&["status", "--json"]);
    let stdin_source = &status["daemon"]["sources"][0];
    assert_eq!(stdin_source["name"], "stdin", "{status:#}");
    assert_eq!(stdin_source["rejected"], 1, "the over-long line: {status:#}");
}
