//! The runbook's scenario end to end (issue #5), with real programs only.
//!
//! NEEDS ROOT and network namespaces (CI runs it as root on Debian 12 with
//! openssh-server, openssh-client, sshpass, rsyslog, nftables, iproute2 and
//! python3-aiosmtpd installed).
//!
//! Each test builds a `Lab` of three network namespaces named
//! `hk-e2e-<pid>-<n>-{srv,atk,adm}`: the server (198.51.100.1,
//! 2001:db8::1 on a bridge), an attacker (198.51.100.66, 2001:db8::66) and
//! a legitimate administrator (198.51.100.77, 2001:db8::77), each joined to
//! the server's bridge by a veth pair. In the server namespace run:
//! - a real `rsyslogd` with its own configuration, whose local socket is in
//!   the lab's temp dir and which writes `<tmp>/central/server1/auth.log`
//!   (Debian's default `RSYSLOG_FileFormat`, host name `server1`);
//! - a real OpenSSH `sshd` (password and key authentication, root by key
//!   only) logging through syslog(3). syslog(3) always writes to
//!   `/dev/log`, so sshd runs in a private mount namespace whose `/dev` is a
//!   tmpfs of links to the real device nodes plus `/dev/log` pointing at the
//!   lab's rsyslogd (and whose `/run` holds sshd's privilege separation
//!   directory); the host's `/dev` and `/run` are never touched;
//! - a real SMTP server (aiosmtpd) on 127.0.0.1, delivering into a Maildir;
//! - hikeshi itself, banning through nftables in the server's firewall.
//!
//! The attacker tries wrong passwords for `admin` (an account that does not
//! exist) with `ssh` and `sshpass`; the administrator logs in as root with
//! an ed25519 key. The `Lab` guard kills every process it started and
//! deletes the namespaces (and with them every interface, rule and set) and
//! the temp dir, also when a test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hikeshi::exec;
use hikeshi_core::contain::BanTarget;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "support/output.rs"]
mod output;

#[path = "support/smtp.rs"]
mod smtp;
use smtp::Mail;

#[path = "support/command.rs"]
mod command;
use command::{must, text, CONNECT};

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");
const PYTHON: &str = "/usr/bin/python3";
const SSHD: &str = "/usr/sbin/sshd";
const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

const SERVER4: &str = "198.51.100.1";
const SERVER6: &str = "2001:db8::1";
const ATTACKER4: &str = "198.51.100.66";
const ATTACKER6: &str = "2001:db8::66";
const ADMIN4: &str = "198.51.100.77";
const ADMIN6: &str = "2001:db8::77";
/// The SMTP server's port on the server namespace's own loopback.
const SMTP_PORT: u16 = 2525;
/// The host name rsyslogd writes and the central directory is named after.
const HOST: &str = "server1";

/// How long anything the lab waits for may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// Runs in the server namespace: gives the program in `argv[3:]` a private
/// `/dev` whose `log` is the lab's rsyslogd socket (`argv[2]`) and a private
/// `/run` with sshd's privilege separation directory, then becomes that
/// program. `ip netns exec` already put us in a new mount namespace whose
/// mounts do not propagate back; making it private again costs nothing.
/// Every command is an argument vector.
const PRIVATE_DEV_LOG: &str = r#"
import os, subprocess, sys
tmp, sock, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
def mount(*args):
    subprocess.run(["mount", *args], check=True)
mount("--make-rprivate", "/")
host_dev = os.path.join(tmp, "host-dev")
os.makedirs(host_dev, exist_ok=True)
mount("--rbind", "/dev", host_dev)
mount("-t", "tmpfs", "-o", "mode=755", "hk-e2e-dev", "/dev")
for name in os.listdir(host_dev):
    if name == "log":
        continue  # the host's syslog socket (journald's, say) is not ours
    real = os.path.join(host_dev, name)
    os.symlink(os.readlink(real) if os.path.islink(real) else real, os.path.join("/dev", name))
os.symlink(sock, "/dev/log")
mount("-t", "tmpfs", "-o", "mode=755", "hk-e2e-run", "/run")
os.mkdir("/run/sshd", 0o755)
# PR_SET_CHILD_SUBREAPER survives execve: processes sshd's connections
# leave behind are reparented to sshd, which reaps them, not to init.
import ctypes
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
os.execv(argv[0], argv)
"#;

/// Calls `probe` every 200 ms until it gives a value, or fails the test
/// after `timeout` saying what was awaited and what the probe saw last.
fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("waited {timeout:?} for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A long-running program the lab started; killed and reaped on drop.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    /// Lets the daemon reap the processes it started (sshd is their
    /// subreaper, so none is left to init), killing those still running
    /// after a second (a connection the firewall cut mid-way waits for
    /// sshd's LoginGraceTime), then kills and reaps the daemon.
    fn stop(&mut self) {
        let start = Instant::now();
        let mut killed = false;
        while !children_of(self.child.id()).is_empty() && start.elapsed() < Duration::from_secs(4) {
            if !killed && start.elapsed() > Duration::from_secs(1) {
                for pid in descendants_of(self.child.id()) {
                    kill(pid, rustix::process::Signal::KILL);
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Every process below `pid`, children first.
fn descendants_of(pid: u32) -> Vec<u32> {
    let mut all = children_of(pid);
    let mut i = 0;
    while i < all.len() {
        let below = children_of(all[i]);
        all.extend(below);
        i += 1;
    }
    all
}

/// The processes whose parent is `pid`, from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| {
        let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let ppid: u32 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

/// What one password attempt of the attacker came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// sshd answered and refused the password.
    Refused,
    /// No SSH conversation took place (the connection was dropped or cut);
    /// ssh's complaint.
    Blocked(String),
}

/// The three namespaces and the server's programs; see the module doc.
struct Lab {
    server: String,
    attacker: String,
    admin: String,
    dir: tempfile::TempDir,
    daemons: Vec<Daemon>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first, so nothing keeps a namespace or a file alive.
        for daemon in self.daemons.iter_mut().rev() {
            daemon.stop();
        }
        for ns in [&self.server, &self.attacker, &self.admin] {
            let _ =
                exec::command("ip", ["netns", "del", ns.as_str()]).stderr(Stdio::null()).status();
        }
    }
}

impl Lab {
    /// Builds the namespaces and starts rsyslogd, sshd and aiosmtpd; returns
    /// once sshd's start is in the central auth.log and every server
    /// answers.
    fn start() -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = |role: &str| format!("hk-e2e-{pid}-{n}-{role}");
        // The guard exists before anything is created: whatever exists when
        // a step fails is removed.
        let mut lab = Lab {
            server: name("srv"),
            attacker: name("atk"),
            admin: name("adm"),
            dir: tempfile::Builder::new().prefix("hk-e2e-").tempdir().unwrap(),
            daemons: Vec::new(),
        };
        lab.build_network(pid, n);
        lab.write_server_files();
        lab.start_rsyslogd();
        lab.start_sshd();
        lab.start_smtp();
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn build_network(&mut self, pid: u32, n: usize) {
        for ns in [&self.server, &self.attacker, &self.admin] {
            must("ip", &["netns", "add", ns]);
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        let server = self.server.as_str();
        must("ip", &["-n", server, "link", "add", "br0", "type", "bridge"]);
        must("ip", &["-n", server, "addr", "add", &format!("{SERVER4}/24"), "dev", "br0"]);
        must("ip", &["-n", server, "addr", "add", &format!("{SERVER6}/64"), "dev", "br0", "nodad"]);
        must("ip", &["-n", server, "link", "set", "br0", "up"]);
        for (role, ns, addr4, addr6) in
            [("a", &self.attacker, ATTACKER4, ATTACKER6), ("m", &self.admin, ADMIN4, ADMIN6)]
        {
            // Interface names are at most 15 bytes.
            let outer = format!("e2e{}{n}{role}s", pid % 100_000);
            let inner = format!("e2e{}{n}{role}p", pid % 100_000);
            must(
                "ip",
                &[
                    "link", "add", &outer, "netns", server, "type", "veth", "peer", "name", &inner,
                    "netns", ns,
                ],
            );
            must("ip", &["-n", server, "link", "set", &outer, "master", "br0", "up"]);
            must("ip", &["-n", ns, "addr", "add", &format!("{addr4}/24"), "dev", &inner]);
            must("ip", &["-n", ns, "addr", "add", &format!("{addr6}/64"), "dev", &inner, "nodad"]);
            must("ip", &["-n", ns, "link", "set", &inner, "up"]);
        }
    }

    /// sshd's and rsyslogd's configurations, the host key, the admin's key.
    fn write_server_files(&self) {
        let tmp = self.dir.path().to_str().unwrap();
        for key in ["host_key", "admin_key"] {
            must(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", key, "-f", &self.path_str(key)],
            );
        }
        std::fs::create_dir(self.path("authorized_keys")).unwrap();
        std::fs::copy(self.path("admin_key.pub"), self.path("authorized_keys/root")).unwrap();
        // StrictModes no: the temp dir's modes are not a home directory's.
        let sshd_config = format!(
            "ListenAddress {SERVER4}:22\n\
             ListenAddress [{SERVER6}]:22\n\
             HostKey {tmp}/host_key\n\
             PidFile {tmp}/sshd.pid\n\
             UsePAM no\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             AuthorizedKeysFile {tmp}/authorized_keys/%u\n\
             StrictModes no\n\
             SyslogFacility AUTH\n\
             LogLevel INFO\n"
        );
        std::fs::write(self.path("sshd_config"), sshd_config).unwrap();
        std::fs::create_dir(self.path("rsyslog")).unwrap();
        let rsyslog_conf = format!(
            "global(workDirectory=\"{tmp}/rsyslog\" localHostname=\"{HOST}\")\n\
             module(load=\"imuxsock\" SysSock.Name=\"{tmp}/log.sock\")\n\
             auth,authpriv.* action(type=\"omfile\" file=\"{tmp}/central/{HOST}/auth.log\" \
             template=\"RSYSLOG_FileFormat\")\n"
        );
        std::fs::write(self.path("rsyslog.conf"), rsyslog_conf).unwrap();
    }

    /// Starts `argv` in the server namespace as a daemon of the lab, its
    /// output in `<tmp>/<name>.out`.
    fn spawn_in_server(&mut self, name: &'static str, argv: &[&str]) {
        let out = std::fs::File::create(self.path(&format!("{name}.out"))).unwrap();
        let mut args = vec!["netns", "exec", &self.server];
        args.extend_from_slice(argv);
        let child =
            exec::command("ip", args).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
        self.daemons.push(Daemon { name, child });
    }

    /// Fails the test if a daemon has exited, showing its output.
    fn assert_daemons_running(&mut self) {
        for daemon in &mut self.daemons {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                let out =
                    std::fs::read_to_string(self.dir.path().join(format!("{}.out", daemon.name)))
                        .unwrap_or_default();
                panic!("{} exited with {status}:\n{out}", daemon.name);
            }
        }
    }

    fn start_rsyslogd(&mut self) {
        let conf = self.path_str("rsyslog.conf");
        let pid = self.path_str("rsyslog.pid");
        self.spawn_in_server("rsyslogd", &[RSYSLOGD, "-n", "-f", &conf, "-i", &pid]);
        let socket = self.path("log.sock");
        eventually("rsyslogd's socket", DEADLINE, || {
            self.assert_daemons_running();
            if socket.exists() {
                Ok(())
            } else {
                Err("no socket yet".into())
            }
        });
    }

    fn start_sshd(&mut self) {
        let tmp = self.path_str("");
        let socket = self.path_str("log.sock");
        let config = self.path_str("sshd_config");
        self.spawn_in_server(
            "sshd",
            &[PYTHON, "-c", PRIVATE_DEV_LOG, &tmp, &socket, SSHD, "-D", "-f", &config],
        );
        // sshd's first words reach the central log through syslog: the
        // whole logging path works, with the host name the directory has.
        let listening = format!(" {HOST} sshd[");
        eventually("sshd's start in the central auth.log", DEADLINE, || {
            self.assert_daemons_running();
            let log = String::from_utf8_lossy(&self.auth_log()).into_owned();
            let ready = log.lines().any(|l| {
                l.contains(&listening)
                    && l.ends_with(&format!("Server listening on {SERVER4} port 22."))
            });
            if ready {
                Ok(())
            } else {
                Err(log)
            }
        });
        // sshd says it listens once it does: no probe connection is
        // needed (it would put lines of its own in the log).
    }

    fn start_smtp(&mut self) {
        let listen = format!("127.0.0.1:{SMTP_PORT}");
        let maildir = self.path_str("Maildir");
        let mut argv = vec![PYTHON];
        argv.extend(smtp::aiosmtpd_args(&listen, &maildir, &[]));
        self.spawn_in_server("aiosmtpd", &argv);
        eventually("aiosmtpd listening", DEADLINE, || {
            self.assert_daemons_running();
            if self.tcp_connects(&self.server, "127.0.0.1", SMTP_PORT) {
                Ok(())
            } else {
                Err("no".into())
            }
        });
    }

    /// Runs `program args` inside the namespace `ns`.
    fn run_in(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        let mut argv = vec!["netns", "exec", ns, program];
        argv.extend_from_slice(args);
        exec::command("ip", argv).output().unwrap()
    }

    /// Whether a TCP connection from namespace `ns` to `addr:port` opens.
    fn tcp_connects(&self, ns: &str, addr: &str, port: u16) -> bool {
        self.run_in(ns, PYTHON, &["-c", CONNECT, addr, &port.to_string(), "2"]).status.success()
    }

    /// The central log rsyslogd writes for server1.
    fn auth_log_path(&self) -> PathBuf {
        self.path(&format!("central/{HOST}/auth.log"))
    }

    fn auth_log(&self) -> Vec<u8> {
        std::fs::read(self.auth_log_path()).unwrap_or_default()
    }

    /// The lines of the central log that contain `needle`, with their
    /// byte offsets.
    fn log_lines_with(&self, needle: &str) -> Vec<(u64, String)> {
        let log = self.auth_log();
        let mut offset = 0;
        let mut found = Vec::new();
        for line in log.split_inclusive(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line);
            if text.ends_with('\n') && text.contains(needle) {
                found.push((offset, text.trim_end_matches('\n').to_string()));
            }
            offset += line.len() as u64;
        }
        found
    }

    /// One wrong password for `admin` from the attacker, as a brute-force
    /// tool would try it.
    fn attack_once(&self) -> Attempt {
        // `timeout` ends an attempt the firewall cut mid-conversation (a
        // dropped connection is otherwise retried for minutes).
        let out = self.run_in(
            &self.attacker,
            "timeout",
            &[
                "-k",
                "1",
                "5",
                "sshpass",
                "-p",
                "wrong-password",
                "ssh",
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=2",
                &format!("admin@{SERVER4}"),
                "true",
            ],
        );
        assert!(!out.status.success(), "a wrong password logged in: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("Permission denied") {
            Attempt::Refused
        } else {
            Attempt::Blocked(stderr)
        }
    }

    /// The administrator's key login as root; returns what the remote
    /// command printed.
    fn admin_login(&self) -> Result<String, String> {
        let key = self.path_str("admin_key");
        let out = self.run_in(
            &self.admin,
            "timeout",
            &[
                "-k",
                "1",
                "15",
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                &key,
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=5",
                &format!("root@{SERVER4}"),
                "echo logged-in-as-$(id -un)",
            ],
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(text(&out))
        }
    }

    /// hikeshi's configuration: the central log, nftables, one recipient
    /// at the lab's SMTP server. `extra` is appended.
    fn write_hikeshi_config(&self, extra: &str) {
        let tmp = self.dir.path().to_str().unwrap();
        let config = format!(
            r#"[watch.journal]
enabled = false

[[watch.files]]
paths = ["{tmp}/central/*/auth.log"]
host_from_path = "{tmp}/central/{{host}}/auth.log"

[contain]
backend = "nftables"
bantime = "1h"

[[team.members]]
role = "security_analyst"
name = "IR team"
email = "ir_team@example.com"

[alert.email]
server = "127.0.0.1"
port = {SMTP_PORT}
tls = "none"
from = "hikeshi <hikeshi@server1.example.com>"
timeout_secs = 5
{extra}"#
        );
        std::fs::write(self.path("hikeshi.toml"), config).unwrap();
    }

    fn hikeshi_args<'a>(
        &'a self,
        data: &'a str,
        config: &'a str,
        args: &[&'a str],
    ) -> Vec<&'a str> {
        let mut argv = vec!["--data-dir", data, "--config", config];
        argv.extend_from_slice(args);
        argv
    }

    /// Runs hikeshi to completion in the server namespace.
    fn hikeshi(&self, args: &[&str]) -> Output {
        let (data, config) = (self.path_str("data"), self.path_str("hikeshi.toml"));
        self.run_in(&self.server, BIN, &self.hikeshi_args(&data, &config, args))
    }

    fn hikeshi_json(&self, args: &[&str]) -> Value {
        let out = self.hikeshi(args);
        assert!(out.status.success(), "hikeshi {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    /// The addresses in one of hikeshi's nftables sets (`ban4`, `ban6`).
    fn banned(&self, set: &str) -> BTreeSet<BanTarget> {
        let out = self.run_in(&self.server, "nft", &["-j", "list", "set", "inet", "hikeshi", set]);
        if !out.status.success() {
            return BTreeSet::new();
        }
        hikeshi::contain::nft::set_elements(&out.stdout).unwrap()
    }

    /// The mails aiosmtpd delivered so far, oldest first.
    fn mails(&self) -> Vec<Mail> {
        smtp::mails(&self.path("Maildir"))
    }

    /// Starts `hikeshi watch` in the server namespace and waits for its
    /// ready line.
    fn start_watch(&self) -> Watch {
        let (data, config) = (self.path_str("data"), self.path_str("hikeshi.toml"));
        let mut argv = vec!["netns", "exec", &self.server, BIN];
        argv.extend(self.hikeshi_args(&data, &config, &["watch"]));
        let mut child =
            exec::command("ip", argv).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = output::collect(child.stderr.take().unwrap());
        let mut watch = Watch { child, stderr };
        watch.wait_ready();
        watch
    }
}

/// A running `hikeshi watch` and everything it wrote to stderr; killed on
/// drop if still running.
struct Watch {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Watch {
    const READY: &'static str = "hikeshi watch: ready";

    fn stderr(&self) -> String {
        output::text_of(&self.stderr)
    }

    fn wait_ready(&mut self) {
        eventually("`hikeshi watch: ready`", DEADLINE, || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "hikeshi watch exited with {status} before it was ready:\n{}",
                    self.stderr()
                );
            }
            let stderr = self.stderr();
            // The line may go on with a summary ("(sources: 1, ...)").
            if stderr.lines().any(|l| l.starts_with(Self::READY)) {
                Ok(())
            } else {
                Err(stderr)
            }
        });
    }

    /// SIGTERM, then waits (at most `DEADLINE`) for the exit.
    fn terminate(mut self) -> (ExitStatus, String) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = eventually("hikeshi watch to exit after SIGTERM", DEADLINE, || {
            self.child.try_wait().unwrap().ok_or_else(|| self.stderr())
        });
        (status, self.stderr())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The attacker's lines hikeshi must keep as evidence: every line in
/// which sshd reported a failure for `admin` from the attacker.
fn attacker_failure_lines(lab: &Lab) -> Vec<(u64, String)> {
    let mut lines: Vec<(u64, String)> = lab
        .log_lines_with(&format!("Invalid user admin from {ATTACKER4} port "))
        .into_iter()
        .chain(lab.log_lines_with(&format!(
            "Failed password for invalid user admin from {ATTACKER4} port "
        )))
        .collect();
    lines.sort();
    lines
}

/// Tries wrong passwords, one connection each (sshd logs two failures per
/// connection: "Invalid user" and "Failed password"), up to
/// `max_attempts` times or until an attempt is blocked; returns every
/// attempt's outcome.
fn brute_force(lab: &Lab, max_attempts: usize) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for _ in 0..max_attempts {
        let attempt = lab.attack_once();
        let blocked = matches!(attempt, Attempt::Blocked(_));
        attempts.push(attempt);
        if blocked {
            break;
        }
    }
    attempts
}

/// Checks the one incident against the central log: the attacker, the
/// host from the path, the user, and evidence that is the log's own bytes.
fn assert_one_incident_with_the_log_as_evidence(lab: &Lab) -> Value {
    let list = lab.hikeshi_json(&["incident", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "exactly one incident: {list:#?}");
    let incident = &list[0];
    assert_eq!(incident["key"]["subject"], ATTACKER4, "{incident:#}");
    assert_eq!(incident["rule"], "brute_force", "{incident:#}");
    assert_eq!(incident["hosts"]["kept"], serde_json::json!([HOST]), "{incident:#}");
    assert_eq!(incident["users"]["kept"], serde_json::json!(["admin"]), "{incident:#}");

    let id = incident["id"].to_string();
    let detail = lab.hikeshi_json(&["incident", "show", &id, "--json"]);
    let evidence = detail["evidence"].as_array().unwrap();
    assert_eq!(
        detail["evidence_lines"].as_u64().unwrap(),
        evidence.len() as u64,
        "every line is kept (far below evidence_max_lines): {detail:#}"
    );
    let log = lab.auth_log();
    let path = lab.auth_log_path();
    for kept in evidence {
        assert_eq!(Path::new(kept["file"].as_str().unwrap()), path, "{kept:#}");
        let offset = kept["offset"].as_u64().unwrap() as usize;
        let line = kept["line"].as_str().unwrap();
        assert_eq!(
            &log[offset..offset + line.len() + 1],
            format!("{line}\n").as_bytes(),
            "the evidence is the log's bytes at its offset: {kept:#}"
        );
        assert_eq!(kept["sha256"], hikeshi_core::incident::hex(&Sha256::digest(line)), "{kept:#}");
        assert!(line.contains(&format!(" {HOST} sshd[")), "{line}");
        assert!(line.contains(ATTACKER4), "only the attacker's lines: {line}");
    }
    // Every failure sshd reported for the attacker is evidence.
    let kept: BTreeSet<u64> = evidence.iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    let failures = attacker_failure_lines(lab);
    assert!(failures.len() >= 5, "{failures:#?}");
    for (offset, line) in &failures {
        assert!(kept.contains(offset), "missing from the evidence: {line}\n{detail:#}");
    }
    assert_eq!(incident["attempts"].as_u64().unwrap(), failures.len() as u64, "{incident:#}");
    detail
}

/// The one alert email: to the team member, naming the incident, the
/// attacker and the host.
fn assert_one_alert_email(lab: &Lab, incident_id: &Value) {
    let mails = lab.mails();
    assert_eq!(
        mails.len(),
        1,
        "exactly one email: {:?}",
        mails.iter().map(|m| &m.headers).collect::<Vec<_>>()
    );
    let mail = &mails[0];
    assert_eq!(mail.header("To"), ["ir_team@example.com"]);
    let subject = mail.header("Subject").concat();
    for needle in [&format!("Incident Alert #{incident_id}:"), ATTACKER4, HOST] {
        assert!(subject.contains(needle), "{needle:?} not in the subject {subject:?}");
    }
    for needle in [format!("#{incident_id}"), format!("Source:       {ATTACKER4}")] {
        assert!(mail.body.contains(&needle), "{needle:?} not in\n{}", mail.body);
    }
}

/// The attacker is in the ban set and cannot open a TCP connection to
/// sshd; the administrator still logs in with the key.
fn assert_contained(lab: &Lab) {
    let attacker: BanTarget = ATTACKER4.parse().unwrap();
    assert!(lab.banned("ban4").contains(&attacker), "{:?}", lab.banned("ban4"));
    assert!(!lab.tcp_connects(&lab.attacker, SERVER4, 22), "the banned attacker still connects");
    assert_eq!(lab.admin_login().unwrap(), "logged-in-as-root");
}

/// Waits until `hikeshi status --json` shows the daemon `watch` running
/// (its status is rewritten every few seconds) and `check` accepts what
/// it says; returns the status.
fn assert_status(lab: &Lab, watch: &Watch, check: impl Fn(&Value) -> Result<(), String>) -> Value {
    eventually("the daemon's status", DEADLINE, || {
        let out = lab.hikeshi(&["status", "--json"]);
        let status: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out)))?;
        if status["daemon"]["pid"] != watch.child.id() || status["running"] != true {
            return Err(format!("not this daemon's status yet: {status:#}"));
        }
        check(&status).map_err(|e| format!("{e}\n{status:#}"))?;
        if out.status.code() != Some(0) || status["warnings"] != serde_json::json!([]) {
            return Err(format!("the status needs attention: {}", text(&out)));
        }
        Ok(status)
    })
}

/// The status counters of the central log's stream.
fn auth_log_stream(lab: &Lab, status: &Value) -> Result<Value, String> {
    let name = format!("file:{}", lab.auth_log_path().display());
    status["daemon"]["streams"]
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["name"] == name.as_str()))
        .cloned()
        .ok_or_else(|| format!("no stream {name}"))
}

/// Fails unless `value[key]` is `expected`.
fn expect(value: &Value, key: &str, expected: impl Into<Value>) -> Result<(), String> {
    let expected = expected.into();
    if value[key] == expected {
        Ok(())
    } else {
        Err(format!("{key} is {}, expected {expected}", value[key]))
    }
}

#[test]
fn the_lab_logs_sshd_through_rsyslog_under_the_servers_name() {
    let lab = Lab::start();
    assert_eq!(lab.admin_login().unwrap(), "logged-in-as-root");
    let attempts = brute_force(&lab, 2);
    assert_eq!(attempts, [Attempt::Refused, Attempt::Refused]);
    // Each attempt is in the central log, written by rsyslogd with the
    // server's name, as the runbook's alert example shows it.
    let failures = eventually("two failures in the central log", DEADLINE, || {
        let lines = lab.log_lines_with(&format!(" {HOST} sshd["));
        let failed: Vec<String> = lines
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| {
                l.contains(&format!(
                    "]: Failed password for invalid user admin from {ATTACKER4} port "
                ))
            })
            .collect();
        if failed.len() == 2 {
            Ok(failed)
        } else {
            Err(format!("{failed:#?}"))
        }
    });
    for line in &failures {
        assert!(line.ends_with(" ssh2"), "{line}");
    }
    let accepted = format!("Accepted publickey for root from {ADMIN4} port ");
    assert_eq!(
        lab.log_lines_with(&accepted).len(),
        1,
        "{}",
        String::from_utf8_lossy(&lab.auth_log())
    );
    assert_eq!(attacker_failure_lines(&lab).len(), 4);
}

/// The runbook's own automation is a cron job over the central log: one
/// `hikeshi scan` after the attack opens the incident, bans and alerts;
/// the next run finds nothing new and repeats nothing.
#[test]
fn a_cron_scan_of_the_central_log_opens_bans_and_alerts_once() {
    let lab = Lab::start();
    lab.write_hikeshi_config("");
    // Three connections: six failures, over maxretry (5).
    assert_eq!(brute_force(&lab, 3), [Attempt::Refused, Attempt::Refused, Attempt::Refused]);
    eventually("six failures in the central log", DEADLINE, || {
        let lines = attacker_failure_lines(&lab);
        if lines.len() == 6 {
            Ok(())
        } else {
            Err(format!("{lines:#?}"))
        }
    });
    let log = lab.auth_log_path();
    let log = log.to_str().unwrap();

    let out = lab.hikeshi(&["scan", "--format", "json", log]);
    assert_eq!(out.status.code(), Some(1), "an opened incident needs attention: {}", text(&out));
    let detail = assert_one_incident_with_the_log_as_evidence(&lab);
    assert_contained(&lab);
    eventually("the alert email", DEADLINE, || {
        if lab.mails().is_empty() {
            Err("no mail".into())
        } else {
            Ok(())
        }
    });
    assert_one_alert_email(&lab, &detail["id"]);

    // The next cron run: nothing new, nothing repeated, the ban stays.
    let out = lab.hikeshi(&["scan", "--format", "json", log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = assert_one_incident_with_the_log_as_evidence(&lab);
    assert_eq!(again["evidence"], detail["evidence"]);
    assert_contained(&lab);
    assert_eq!(lab.mails().len(), 1);
}

/// The scenario of issue #5: `hikeshi watch` follows the central log,
/// opens one incident with the log's lines as evidence, bans the attacker
/// in nftables while the administrator's key login still works, and sends
/// one email; stopped and restarted, it keeps the ban and repeats nothing.
#[test]
fn watch_contains_a_live_brute_force_and_a_restart_repeats_nothing() {
    let lab = Lab::start();
    lab.write_hikeshi_config("");
    let watch = lab.start_watch();
    let attacker: BanTarget = ATTACKER4.parse().unwrap();

    // Up to six wrong passwords; the first two connections (four
    // failures) are below maxretry and must reach sshd.
    let attempts = brute_force(&lab, 6);
    assert!(attempts.starts_with(&[Attempt::Refused, Attempt::Refused]), "{attempts:?}");
    eventually("the attacker in the ban set", DEADLINE, || {
        let banned = lab.banned("ban4");
        if banned.contains(&attacker) {
            Ok(())
        } else {
            Err(format!("{banned:?}\n{}", watch.stderr()))
        }
    });
    eventually("the attacker's TCP connect to sshd failing", DEADLINE, || {
        if lab.tcp_connects(&lab.attacker, SERVER4, 22) {
            Err("connects".into())
        } else {
            Ok(())
        }
    });
    // The log cannot grow any more from the attacker: wait until hikeshi
    // has every failure in the incident, and the alert is out.
    eventually("every failure in the incident", DEADLINE, || {
        let failures = attacker_failure_lines(&lab).len();
        let list = lab.hikeshi_json(&["incident", "list", "--json"]);
        let attempts = list[0]["attempts"].as_u64();
        if attempts == Some(failures as u64) {
            Ok(())
        } else {
            Err(format!("{failures} failures in the log, incidents: {list:#}\n{}", watch.stderr()))
        }
    });
    eventually("the alert email", DEADLINE, || {
        if lab.mails().is_empty() {
            Err(watch.stderr())
        } else {
            Ok(())
        }
    });
    let detail = assert_one_incident_with_the_log_as_evidence(&lab);
    assert_contained(&lab);
    assert_eq!(
        lab.log_lines_with(&format!("Accepted publickey for root from {ADMIN4} port ")).len(),
        1,
        "the administrator's login is in the log"
    );
    assert_one_alert_email(&lab, &detail["id"]);
    // What the daemon says it did: one incident, one ban, one alert, every
    // failure and the administrator's login read, nothing failed.
    let failures = attacker_failure_lines(&lab).len() as u64;
    assert_status(&lab, &watch, |status| {
        let totals = &status["daemon"]["totals"];
        expect(totals, "incidents_opened", 1)?;
        expect(totals, "bans_applied", 1)?;
        expect(totals, "bans_failed", 0)?;
        expect(totals, "alerts_sent", 1)?;
        expect(totals, "alerts_failed", 0)?;
        expect(status, "active_bans", 1)?;
        expect(&status["open_incidents"][0], "subject", ATTACKER4)?;
        let stream = auth_log_stream(&lab, status)?;
        expect(&stream, "failures", failures)?;
        expect(&stream, "successes", 1)
    });

    let (status, stderr) = watch.terminate();
    assert!(status.success(), "SIGTERM must end watch with 0, got {status}:\n{stderr}");

    let watch = lab.start_watch();
    // Time for anything a restart might wrongly repeat (re-reading the log,
    // re-alerting, re-banning).
    std::thread::sleep(Duration::from_secs(3));
    let again = assert_one_incident_with_the_log_as_evidence(&lab);
    assert_eq!(again["evidence"], detail["evidence"], "nothing was read twice");
    assert_eq!(again["attempts"], detail["attempts"]);
    assert_contained(&lab);
    assert_eq!(lab.mails().len(), 1, "nothing is re-alerted:\n{}", watch.stderr());
    // The restarted daemon resumed after the lines it had handled: it read
    // no failure again, and opened, banned and alerted nothing.
    assert_status(&lab, &watch, |status| {
        let totals = &status["daemon"]["totals"];
        for key in ["incidents_opened", "incidents_escalated", "ban_requests", "alerts_enqueued"] {
            expect(totals, key, 0)?;
        }
        expect(status, "active_bans", 1)?;
        expect(&auth_log_stream(&lab, status)?, "failures", 0)
    });
    // Still banned for the attacker's next try, after the restart.
    assert!(matches!(lab.attack_once(), Attempt::Blocked(_)));
    let (status, stderr) = watch.terminate();
    assert!(status.success(), "{status}:\n{stderr}");
}
