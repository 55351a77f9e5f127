//! `hikeshi watch` against a real nftables: bans appear in hikeshi's set as
//! the lines arrive, a table someone deleted is set up again by the next
//! ban, allowlisted attackers are recorded and never banned; and a
//! firewall that refuses leaves the daemon running, the failure on the
//! incident, in the status and in a containment-failed alert.
//!
//! NEEDS ROOT: each test runs hikeshi inside its own network namespace
//! (`hk-wf-<pid>-<n>`), removed with everything in it by a guard, also
//! when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/output.rs"]
mod output;
use output::collect;

#[path = "support/command.rs"]
mod command;
use command::must;

#[path = "support/netns.rs"]
mod netns;
use netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");
const DEADLINE: Duration = Duration::from_secs(20);
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Lab {
    netns: Netns,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Lab {
    fn new(config: &str) -> Lab {
        let netns = Netns::new(format!(
            "hk-wf-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let lab = Lab {
            netns,
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
            stdout: Arc::default(),
            stderr: Arc::default(),
        };
        std::fs::create_dir(lab.path("logs")).unwrap();
        let config = format!(
            "[alert]\nstdout = true\n[[watch.files]]\npaths = [\"{}/logs/*.log\"]\n{config}",
            lab.dir.path().display()
        );
        std::fs::write(lab.path("hikeshi.toml"), config).unwrap();
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn in_netns(&self, program: &str, args: &[&str]) -> std::process::Command {
        self.netns.command(program, args)
    }

    fn hikeshi(&self, args: &[&str]) -> Output {
        let (data, config) = (self.path("data"), self.path("hikeshi.toml"));
        let mut argv =
            vec!["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()];
        argv.extend_from_slice(args);
        self.in_netns(BIN, &argv).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.hikeshi(args);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
    }

    fn start(&mut self) {
        let (data, config) = (self.path("data"), self.path("hikeshi.toml"));
        let argv =
            ["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap(), "watch"];
        let mut child = self
            .in_netns(BIN, &argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.stdout = collect(child.stdout.take().unwrap());
        self.stderr = collect(child.stderr.take().unwrap());
        self.daemon = Some(child);
        self.wait("the ready line", || self.stderr().contains(hikeshi::daemon::READY_LINE));
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn wait(&self, what: &str, check: impl Fn() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn banned(&self) -> String {
        let out =
            self.in_netns("nft", &["list", "set", "inet", "hikeshi", "ban4"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn attack(&self, addr: &str) {
        let now = jiff::Timestamp::now().strftime("%b %e %H:%M:%S").to_string();
        let mut lines = String::new();
        for pid in 0..5 {
            lines.push_str(&format!(
                "{now} server1 sshd[{}]: Failed password for invalid user admin from {addr} port {} ssh2\n",
                3000 + pid,
                50000 + pid
            ));
        }
        append(&self.path("logs/auth.log"), &lines);
    }

    fn stop(&mut self) -> i32 {
        let child = self.daemon.as_mut().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = child.wait().unwrap();
        self.daemon = None;
        std::thread::sleep(Duration::from_millis(50));
        status.code().unwrap_or(-1)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(child) = &mut self.daemon {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The namespace goes after the daemon, with the `netns` field.
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn bans_follow_the_log_survive_a_deleted_table_and_spare_the_allowlist() {
    let mut lab = Lab::new(
        "[contain]\nbackend = \"nftables\"\nkill_connections = false\n\
         [allowlist]\nnetworks = [\"198.51.100.128/25\"]\n",
    );
    lab.start();
    lab.attack("198.51.100.1");
    lab.wait("the first ban", || lab.banned().contains("198.51.100.1 "));

    // Someone deletes hikeshi's table: the next ban sets it up again.
    must("ip", &["netns", "exec", &lab.netns.name, "nft", "delete", "table", "inet", "hikeshi"]);
    lab.attack("198.51.100.2");
    lab.wait("the ban after the deletion", || lab.banned().contains("198.51.100.2 "));
    // ...and the next reconciliation (at the latest at the next start)
    // restores the first ban, which the store still holds.
    assert_eq!(lab.stop(), 0);
    lab.start();
    lab.wait("the first ban re-applied", || lab.banned().contains("198.51.100.1 "));

    // An allowlisted attacker: an incident, flagged, and no ban.
    lab.attack("198.51.100.200");
    let start = Instant::now();
    let incident = loop {
        let all = lab.json(&["incident", "list", "--json"]);
        if let Some(i) =
            all.as_array().unwrap().iter().find(|i| i["key"]["subject"] == "198.51.100.200")
        {
            break i.clone();
        }
        assert!(start.elapsed() < DEADLINE, "{all:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!lab.banned().contains("198.51.100.200"), "{}", lab.banned());
    let shown = lab.json(&["incident", "show", &incident["id"].to_string(), "--json"]);
    assert!(shown["state"] == "detected", "{shown:#}");
    assert_eq!(lab.stop(), 0);
    assert!(lab.stdout().contains("allowlisted"), "{}", lab.stdout());
}

#[test]
fn a_firewall_that_refuses_is_reported_and_detection_goes_on() {
    let mut lab = Lab::new(
        "[contain]\nbackend = \"nftables\"\nkill_connections = false\n\
         [contain.nftables]\nnft = \"/nonexistent/nft\"\nlibrary = false\n",
    );
    lab.start();
    lab.attack("203.0.113.1");
    lab.wait("the failed ban", || {
        lab.stderr().contains("203.0.113.1") && lab.stderr().contains("ERROR")
    });
    lab.attack("203.0.113.2");
    let start = Instant::now();
    let status = loop {
        let status = lab.json(&["status", "--json"]);
        if status["daemon"]["totals"]["bans_failed"] == 2 {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["daemon"]["totals"]["incidents_opened"], 2);
    assert!(status["warnings"].to_string().contains("2 bans failed"), "{status:#}");
    let shown = lab.json(&["incident", "show", "1", "--json"]);
    assert!(shown["timeline"].to_string().contains("ban_failed"), "{shown:#}");
    assert_eq!(shown["state"], "detected");
    lab.wait("the containment-failed alerts", || {
        lab.stdout().matches("containment FAILED").count() >= 2
    });
    assert_eq!(lab.stop(), 0);
}
