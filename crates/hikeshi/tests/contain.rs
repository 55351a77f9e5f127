//! Containment against the real firewalls.
//!
//! NEEDS ROOT: every test builds its own pair of network namespaces
//! (`hk-fw-<pid>-<n>-s`, the server that runs hikeshi and a TCP listener,
//! and `hk-fw-<pid>-<n>-p`, the peer that connects), joined by a veth pair
//! with documentation addresses (192.0.2.0/24, 2001:db8:f::/64). Bans
//! are proven by a TCP connect from the peer failing, and lifted bans by
//! it working again. The `Lab` guard deletes both namespaces (and with
//! them every rule, set and interface), the listener, any fail2ban server
//! and the temp directory, also when a test fails.

use std::collections::BTreeSet;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hikeshi::exec;
use hikeshi_core::contain::BanTarget;

#[path = "support/output.rs"]
mod output;

#[path = "support/command.rs"]
mod command;
use command::{must, text, CONNECT};

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");
const PYTHON: &str = "/usr/bin/python3";
const PORT: &str = "2222";
const SERVER4: &str = "192.0.2.1";
const PEER4: &str = "192.0.2.2";
const SERVER6: &str = "2001:db8:f::1";
const PEER6: &str = "2001:db8:f::2";

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

const LISTENER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 2222))
s.listen(128)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    if len(held) > 64:
        held.pop(0).close()
"#;

const HOLD: &str = r#"
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
print("connected", flush=True)
time.sleep(60)
"#;

/// Two namespaces, a listener, a data dir and a config; all removed on drop.
struct Lab {
    server: String,
    peer: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    fail2ban_socket: Option<String>,
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn ip(s: &str) -> BanTarget {
    s.parse().unwrap()
}

impl Lab {
    /// A lab whose hikeshi uses `contain_toml` as its `[contain]` section.
    fn new(contain_toml: &str) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let lab = Lab {
            server: format!("hk-fw-{pid}-{n}-s"),
            peer: format!("hk-fw-{pid}-{n}-p"),
            dir: tempfile::Builder::new().prefix("hk-fw-").tempdir().unwrap(),
            children: Vec::new(),
            fail2ban_socket: None,
        };
        // Interface names are at most 15 bytes.
        let veth_s = format!("fw{}{}s", pid % 100_000, n);
        let veth_p = format!("fw{}{}p", pid % 100_000, n);
        must("ip", &["netns", "add", &lab.server]);
        must("ip", &["netns", "add", &lab.peer]);
        must(
            "ip",
            &[
                "link",
                "add",
                &veth_s,
                "netns",
                &lab.server,
                "type",
                "veth",
                "peer",
                "name",
                &veth_p,
                "netns",
                &lab.peer,
            ],
        );
        for (ns, dev, a4, a6) in
            [(&lab.server, &veth_s, SERVER4, SERVER6), (&lab.peer, &veth_p, PEER4, PEER6)]
        {
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must("ip", &["-n", ns, "addr", "add", &format!("{a4}/24"), "dev", dev]);
            must("ip", &["-n", ns, "addr", "add", &format!("{a6}/64"), "dev", dev, "nodad"]);
            must("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        lab.write_config(contain_toml);
        let mut lab = lab;
        let listener = exec::command("ip", ["netns", "exec", &lab.server, PYTHON, "-c", LISTENER])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        lab.children.push(listener);
        assert!(lab.wait_connect(SERVER4, true), "listener never became reachable over IPv4");
        assert!(lab.wait_connect(SERVER6, true), "listener never became reachable over IPv6");
        lab
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn write_config(&self, contain_toml: &str) {
        std::fs::write(self.path("hikeshi.toml"), format!("[contain]\n{contain_toml}\n")).unwrap();
    }

    /// Runs `program args` inside the server namespace.
    fn server(&self, program: &str, args: &[&str]) -> Output {
        let mut argv = vec!["netns", "exec", &self.server, program];
        argv.extend_from_slice(args);
        exec::command("ip", argv).output().unwrap()
    }

    fn server_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.server(program, args);
        assert!(ok(&out), "{program} {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs hikeshi inside the server namespace with the lab's data dir
    /// and config.
    fn hikeshi(&self, args: &[&str]) -> Output {
        let data = self.path("data");
        let config = self.path("hikeshi.toml");
        let mut argv = vec!["--data-dir", &data, "--config", &config];
        argv.extend_from_slice(args);
        self.server(BIN, &argv)
    }

    fn hikeshi_ok(&self, args: &[&str]) -> String {
        let out = self.hikeshi(args);
        assert!(ok(&out), "hikeshi {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs hikeshi, which must exit with `code` (1: refused, 2: failed);
    /// returns its standard error.
    fn hikeshi_fails(&self, args: &[&str], code: i32) -> String {
        let out = self.hikeshi(args);
        assert_eq!(out.status.code(), Some(code), "hikeshi {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Whether a TCP connect from the peer to `server_addr` succeeds.
    fn connects(&self, server_addr: &str) -> bool {
        let out = exec::command(
            "ip",
            ["netns", "exec", &self.peer, PYTHON, "-c", CONNECT, server_addr, PORT, "1"],
        )
        .output()
        .unwrap();
        ok(&out)
    }

    /// Waits (up to 8 s) until connecting gives `expected`.
    fn wait_connect(&self, server_addr: &str, expected: bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            if self.connects(server_addr) == expected {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn nft_set(&self, table: &str, set: &str) -> BTreeSet<BanTarget> {
        let json = self.server_ok("nft", &["-j", "list", "set", "inet", table, set]);
        hikeshi::contain::nft::set_elements(json.as_bytes()).unwrap()
    }

    fn ruleset(&self) -> String {
        self.server_ok("nft", &["list", "ruleset"])
    }

    fn bans_json(&self, all: bool) -> Vec<serde_json::Value> {
        let mut args = vec!["bans", "--json"];
        if all {
            args.push("--all");
        }
        let out = self.hikeshi_ok(&args);
        serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap()
    }

    fn active_addresses(&self) -> Vec<String> {
        self.bans_json(false).iter().map(|b| b["address"].as_str().unwrap().to_string()).collect()
    }

    /// Starts a real fail2ban server in the server namespace with one jail
    /// (`hikeshi`, nftables-allports action, no filter: bans come only
    /// from `banip`).
    fn start_fail2ban(&mut self) -> String {
        let conf = self.path("f2b");
        std::fs::create_dir_all(&conf).unwrap();
        must(
            "cp",
            &[
                "-r",
                "/etc/fail2ban/action.d",
                "/etc/fail2ban/filter.d",
                "/etc/fail2ban/paths-common.conf",
                "/etc/fail2ban/paths-debian.conf",
                &conf,
            ],
        );
        let socket = self.path("f2b.sock");
        let pidfile = self.path("f2b.pid");
        let log = self.path("f2b.log");
        let empty = self.path("empty.log");
        std::fs::write(&empty, "").unwrap();
        std::fs::write(
            format!("{conf}/fail2ban.conf"),
            format!("[Definition]\nloglevel = INFO\nlogtarget = {log}\nsocket = {socket}\npidfile = {pidfile}\ndbfile = :memory:\n"),
        )
        .unwrap();
        std::fs::write(
            format!("{conf}/jail.conf"),
            format!(
                "[INCLUDES]\nbefore = paths-debian.conf\n[DEFAULT]\nbackend = polling\nbantime = 600\n\
                 [hikeshi]\nenabled = true\nfilter =\nlogpath = {empty}\n\
                 action = nftables-allports[name=hikeshi, protocol=tcp]\n"
            ),
        )
        .unwrap();
        self.fail2ban_socket = Some(socket.clone());
        self.server_ok(
            "fail2ban-server",
            &["-b", "-x", "-s", &socket, "-p", &pidfile, "-c", &conf],
        );
        socket
    }
}

impl Lab {
    /// Opens a TCP connection from the peer to the server's listener and
    /// keeps it open, tracked by conntrack as ESTABLISHED. (Connection
    /// tracking runs in a namespace only when a rule needs it, as on a real
    /// server whose firewall accepts ESTABLISHED traffic.)
    fn hold_established_connection(&mut self) {
        self.server_ok("nft", &["add", "table", "inet", "other"]);
        self.server_ok(
            "nft",
            &["add", "chain", "inet", "other", "c", "{ type filter hook input priority 0; }"],
        );
        self.server_ok(
            "nft",
            &["add", "rule", "inet", "other", "c", "ct", "state", "established", "accept"],
        );
        let mut hold =
            exec::command("ip", ["netns", "exec", &self.peer, PYTHON, "-c", HOLD, SERVER4, PORT])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(hold.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        self.children.push(hold);
        assert_eq!(line.trim(), "connected");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(socket) = &self.fail2ban_socket {
            let _ = self.server("fail2ban-client", &["-s", socket, "stop"]);
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes its interfaces, rules and sets.
        let _ = exec::run("ip", ["netns", "del", &self.server]);
        let _ = exec::run("ip", ["netns", "del", &self.peer]);
    }
}

fn set_of(addrs: &[&str]) -> BTreeSet<BanTarget> {
    addrs.iter().map(|a| ip(a)).collect()
}

// ---------------------------------------------------------------- nftables

#[test]
fn nftables_ban_blocks_and_unban_restores_v4_and_v6() {
    let lab = Lab::new("backend = \"nftables\"\nbantime = \"10m\"");
    // A table hikeshi does not own must come through untouched.
    lab.server_ok("nft", &["add", "table", "inet", "other"]);
    lab.server_ok("nft", &["add", "chain", "inet", "other", "c"]);
    lab.server_ok(
        "nft",
        &["add", "rule", "inet", "other", "c", "ip", "saddr", "198.51.100.9", "counter"],
    );

    let out = lab.hikeshi_ok(&["ban", PEER4, "--reason", "brute force", "--incident", "42"]);
    assert!(out.contains("banned 192.0.2.2 (nftables, 10m"), "{out}");
    assert!(lab.wait_connect(SERVER4, false), "IPv4 connect still works after the ban");
    assert!(lab.connects(SERVER6), "IPv6 must still work: only the v4 address is banned");
    assert_eq!(lab.nft_set("hikeshi", "ban4"), set_of(&[PEER4]));
    let ruleset = lab.ruleset();
    assert!(
        ruleset.contains("ip saddr @ban4 drop") && ruleset.contains("ip6 saddr @ban6 drop"),
        "{ruleset}"
    );

    lab.hikeshi_ok(&["ban", PEER6]);
    assert!(lab.wait_connect(SERVER6, false), "IPv6 connect still works after the ban");
    assert_eq!(lab.nft_set("hikeshi", "ban6"), set_of(&[PEER6]));

    let bans = lab.bans_json(false);
    assert_eq!(bans.len(), 2);
    assert_eq!(bans[0]["incident_id"], 42);
    assert_eq!(bans[0]["reason"], "brute force");
    assert_eq!(bans[0]["backend"], "nftables");

    let out = lab.hikeshi_ok(&["unban", PEER4, PEER6]);
    assert!(out.contains("unbanned 192.0.2.2") && out.contains("unbanned 2001:db8:f::2"), "{out}");
    assert!(lab.wait_connect(SERVER4, true));
    assert!(lab.wait_connect(SERVER6, true));
    assert!(lab.nft_set("hikeshi", "ban4").is_empty());
    assert!(lab.active_addresses().is_empty());
    let history = lab.bans_json(true);
    assert!(history.iter().all(|b| b["removed_reason"] == "manual unban"), "{history:?}");

    let other = lab.server_ok("nft", &["list", "table", "inet", "other"]);
    assert!(other.contains("ip saddr 198.51.100.9 counter"), "{other}");

    // Uninstall removes exactly hikeshi's table.
    lab.hikeshi_ok(&["firewall", "uninstall"]);
    let ruleset = lab.ruleset();
    assert!(!ruleset.contains("hikeshi"), "{ruleset}");
    assert!(ruleset.contains("table inet other"), "{ruleset}");
}

#[test]
fn nftables_ban_expires_in_the_kernel_and_extension_refreshes_it() {
    let lab = Lab::new("backend = \"nftables\"");
    lab.hikeshi_ok(&["ban", PEER4, "--for", "2s"]);
    assert!(lab.wait_connect(SERVER4, false));
    // No hikeshi runs now: the kernel ends the ban on its own.
    std::thread::sleep(Duration::from_secs(3));
    assert!(lab.connects(SERVER4), "ban did not expire in the kernel");
    assert!(lab.nft_set("hikeshi", "ban4").is_empty());
    // The store still lists it as active until reconcile closes it.
    let out = lab.hikeshi_ok(&["firewall", "reconcile", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["expired"], serde_json::json!([PEER4]), "{out}");
    assert!(lab.active_addresses().is_empty());

    // Extending a ban refreshes the kernel timeout.
    lab.hikeshi_ok(&["ban", PEER6, "--for", "3s"]);
    let out = lab.hikeshi_ok(&["ban", PEER6, "--for", "1h"]);
    assert!(out.contains("extended ban of 2001:db8:f::2"), "{out}");
    let json = lab.server_ok("nft", &["-j", "list", "set", "inet", "hikeshi", "ban6"]);
    assert!(json.contains("\"timeout\": 3600"), "{json}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!lab.connects(SERVER6), "the extended ban ended at its old time");

    // The element vanished behind hikeshi's back: extending still works
    // (the refresh's delete fails, hikeshi lists the set and retries).
    lab.server_ok("nft", &["delete", "element", "inet", "hikeshi", "ban6", "{ 2001:db8:f::2 }"]);
    let out = lab.hikeshi_ok(&["ban", PEER6, "--for", "2h"]);
    assert!(out.contains("extended ban of 2001:db8:f::2"), "{out}");
    let json = lab.server_ok("nft", &["-j", "list", "set", "inet", "hikeshi", "ban6"]);
    assert!(json.contains("\"timeout\": 7200"), "{json}");
}

#[test]
fn nftables_reconcile_restores_removes_and_leaves_foreign_rules() {
    let lab = Lab::new("backend = \"nftables\"");
    lab.server_ok("nft", &["add", "table", "inet", "other"]);
    lab.server_ok("nft", &["add", "set", "inet", "other", "s", "{ type ipv4_addr; }"]);
    lab.server_ok("nft", &["add", "element", "inet", "other", "s", "{ 192.0.2.2 }"]);
    lab.hikeshi_ok(&["ban", PEER4, PEER6, "--for", "1h"]);
    lab.hikeshi_ok(&["ban", "198.51.100.20", "--for", "1s"]);
    // Behind hikeshi's back: an element vanishes, a stranger appears.
    lab.server_ok("nft", &["delete", "element", "inet", "hikeshi", "ban4", "{ 192.0.2.2 }"]);
    lab.server_ok("nft", &["add", "element", "inet", "hikeshi", "ban6", "{ 2001:db8:f::99 }"]);
    assert!(lab.wait_connect(SERVER4, true));
    std::thread::sleep(Duration::from_millis(1500));

    let out = lab.hikeshi_ok(&["firewall", "reconcile", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["reapplied"], serde_json::json!([PEER4]), "{out}");
    assert_eq!(report["expired"], serde_json::json!(["198.51.100.20"]), "{out}");
    assert_eq!(report["removed_unknown"], serde_json::json!(["2001:db8:f::99"]), "{out}");
    assert!(lab.wait_connect(SERVER4, false), "reconcile did not re-apply the ban");
    assert_eq!(lab.nft_set("hikeshi", "ban4"), set_of(&[PEER4]));
    assert_eq!(lab.nft_set("hikeshi", "ban6"), set_of(&[PEER6]));
    assert_eq!(lab.nft_set("other", "s"), set_of(&[PEER4]), "a foreign set was touched");
    // The re-applied element carries the time the ban has left, not a new hour.
    let json = lab.server_ok("nft", &["-j", "list", "set", "inet", "hikeshi", "ban4"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let timeout = v["nftables"][1]["set"]["elem"][0]["elem"]["timeout"].as_u64().unwrap();
    assert!((3590..=3600).contains(&timeout), "{json}");

    // Flush lifts every ban but keeps the table; the foreign table stays.
    lab.hikeshi_ok(&["firewall", "flush"]);
    assert!(lab.nft_set("hikeshi", "ban4").is_empty());
    assert!(lab.active_addresses().is_empty());
    assert_eq!(lab.nft_set("other", "s"), set_of(&[PEER4]));
}

#[test]
fn allowlisted_addresses_are_refused_and_nothing_is_added() {
    let lab =
        Lab::new("backend = \"nftables\"\n[allowlist]\nnetworks = [\"198.51.100.0/24\", \"2001:db8:aa::/48\"]");
    for (addr, why) in [
        (SERVER4, "one of this host's own addresses"),
        (SERVER6, "one of this host's own addresses"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("198.51.100.7", "configured allowlist (198.51.100.0/24)"),
        ("2001:db8:aa::1", "configured allowlist (2001:db8:aa::/48)"),
        ("0.0.0.0", "not a peer"),
    ] {
        let out = lab.hikeshi(&["ban", addr]);
        assert_eq!(out.status.code(), Some(1), "{addr}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refused to ban") && stderr.contains(why), "{addr}: {stderr}");
    }
    // A batch with one allowlisted address bans the others only.
    let out = lab.hikeshi(&["ban", PEER4, SERVER4]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(lab.nft_set("hikeshi", "ban4"), set_of(&[PEER4]));
    assert!(lab.nft_set("hikeshi", "ban6").is_empty());
    assert_eq!(lab.active_addresses(), [PEER4]);
}

#[test]
fn repeat_offenders_get_longer_bans_across_restarts() {
    let lab =
        Lab::new("bantime = \"10m\"\nmultiplier = 3.0\nmax_bantime = \"1h\"\npermanent_after = 4");
    let mut lengths = Vec::new();
    for _ in 0..4 {
        // Each run is a fresh process: the offence count comes from the store.
        let out = lab.hikeshi_ok(&["ban", PEER4]);
        lengths.push(out);
        lab.hikeshi_ok(&["unban", PEER4]);
    }
    assert!(lengths[0].contains("10m") && lengths[0].contains("offence 1"), "{lengths:?}");
    assert!(lengths[1].contains("30m") && lengths[1].contains("offence 2"), "{lengths:?}");
    assert!(lengths[2].contains("1h") && lengths[2].contains("offence 3"), "{lengths:?}");
    assert!(lengths[3].contains("permanent") && lengths[3].contains("offence 4"), "{lengths:?}");
    lab.hikeshi_ok(&["ban", PEER4]);
    let json = lab.server_ok("nft", &["-j", "list", "set", "inet", "hikeshi", "ban4"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // An element without a timeout is listed as a plain string.
    assert_eq!(v["nftables"][1]["set"]["elem"], serde_json::json!([PEER4]), "{json}");
    assert_eq!(lab.bans_json(false)[0]["expires_at"], serde_json::Value::Null);
}

#[test]
fn ban_file_applies_many_addresses_in_one_batch_or_nothing() {
    let lab = Lab::new("backend = \"nftables\"");
    let mut list = String::from("# benchmark range, data only\n");
    for i in 0..5000u32 {
        list.push_str(&format!("198.18.{}.{}\n", i / 250, i % 250 + 1));
    }
    list.push_str("2001:db8:f::2\n");
    std::fs::write(lab.path("list.txt"), &list).unwrap();
    let out = lab.hikeshi_ok(&["ban", "--file", &lab.path("list.txt")]);
    assert!(out.contains("5001 banned, 0 unbanned, 0 refused (allowlisted), 0 failed"), "{out}");
    assert_eq!(lab.nft_set("hikeshi", "ban4").len(), 5000);
    assert_eq!(lab.nft_set("hikeshi", "ban6"), set_of(&[PEER6]));

    // One bad line: an error naming the file and line; nothing changes.
    std::fs::write(lab.path("bad.txt"), "198.51.100.1\n198.51.100.2; rm -rf /\n").unwrap();
    let out = lab.hikeshi(&["ban", "--file", &lab.path("bad.txt")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.txt:2: invalid address") && stderr.contains("nothing was banned"),
        "{stderr}"
    );
    assert!(!lab.nft_set("hikeshi", "ban4").contains(&ip("198.51.100.1")));
    assert_eq!(lab.active_addresses().len(), 5001);
}

// ---------------------------------------------------------------- bad input

#[test]
fn invalid_addresses_are_clear_errors_and_ban_nothing() {
    let lab = Lab::new("backend = \"nftables\"");
    for bad in
        ["192.0.2.300", "192.0.2.0/33", "example.com", "", "1.2.3.4 5.6.7.8", "::ffff:1.2.3.4.5"]
    {
        let out = lab.hikeshi(&["ban", PEER4, bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("invalid address") && stderr.contains("nothing was banned"),
            "{stderr}"
        );
    }
    let out = lab.hikeshi(&["ban", "--file", &lab.path("missing.txt")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.txt"), "{}", text(&out));
    assert!(lab.active_addresses().is_empty());
    assert!(lab.wait_connect(SERVER4, true));
}

#[test]
fn missing_firewall_binary_fails_cleanly_and_records_nothing() {
    // (`library = false`: the program, not libnftables, makes the change.)
    let lab = Lab::new("[contain.nftables]\nnft = \"/nonexistent/nft\"\nlibrary = false");
    let out = lab.hikeshi(&["ban", PEER4]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("containment FAILED for 192.0.2.2") && stderr.contains("/nonexistent/nft"),
        "{stderr}"
    );
    assert!(lab.active_addresses().is_empty(), "a failed ban was recorded as active");

    // The same with `nft` missing from PATH.
    lab.write_config("backend = \"nftables\"\n[contain.nftables]\nlibrary = false");
    let data = lab.path("data");
    let config = lab.path("hikeshi.toml");
    let out = lab.server(
        "env",
        &["PATH=/nonexistent", BIN, "--data-dir", &data, "--config", &config, "ban", PEER4],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run `nft`"), "{}", text(&out));
    assert!(lab.active_addresses().is_empty());

    for backend in ["iptables", "ipset", "fail2ban"] {
        lab.write_config(&format!(
            "backend = \"{backend}\"\n[contain.iptables]\niptables = \"/nonexistent/iptables\"\nipset = \"/nonexistent/ipset\"\n\
             [contain.fail2ban]\nclient = \"/nonexistent/fail2ban-client\""
        ));
        let out = lab.hikeshi(&["ban", PEER4]);
        assert_eq!(out.status.code(), Some(2), "{backend}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("/nonexistent/"),
            "{backend}: {}",
            text(&out)
        );
        assert!(lab.active_addresses().is_empty(), "{backend}");
    }
    assert!(lab.connects(SERVER4));
}

#[test]
fn a_firewall_that_rejects_the_batch_applies_nothing() {
    let lab = Lab::new("backend = \"nftables\"");
    // hikeshi's table exists with a `ban4` of the wrong type: nft rejects
    // the setup transaction.
    lab.server_ok("nft", &["add", "table", "inet", "hikeshi"]);
    lab.server_ok("nft", &["add", "set", "inet", "hikeshi", "ban4", "{ type ipv6_addr; }"]);
    let out = lab.hikeshi(&["ban", PEER4, PEER6]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("containment FAILED for 192.0.2.2")
            && stderr.contains("containment FAILED for 2001:db8:f::2"),
        "{stderr}"
    );
    assert!(stderr.contains("libnftables refused the change"), "{stderr}");
    assert!(stderr.contains("datatype mismatch"), "{stderr}");
    assert!(lab.active_addresses().is_empty());
    let ruleset = lab.ruleset();
    assert!(
        !ruleset.contains("ban6") && !ruleset.contains("2001:db8:f::2"),
        "half-applied: {ruleset}"
    );
    assert!(lab.connects(SERVER6));

    // A firewall program that fails every command.
    lab.write_config("[contain.nftables]\nnft = \"/bin/false\"\nlibrary = false");
    let out = lab.hikeshi(&["ban", PEER4]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`/bin/false -f -` failed"),
        "{}",
        text(&out)
    );
    assert!(lab.active_addresses().is_empty());

    // A table name that could smuggle nft syntax is refused before any command.
    lab.write_config("[contain.nftables]\ntable = \"x { }; flush ruleset\"");
    let out = lab.hikeshi(&["ban", PEER4]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nftables.table"), "{}", text(&out));
    assert!(lab.ruleset().contains("table inet hikeshi"));
}

// ---------------------------------------------------------------- networks

/// The peer's network (a /31 and a /127: the lab's server holds the
/// addresses next to the peer's) is banned as one entry and blocks the
/// peer; a network holding the server's own address is refused; unban
/// lifts it. `listed` shows what the backend holds.
fn network_bans_round(lab: &Lab, listed: impl Fn(&Lab) -> String) {
    const NET4: &str = "192.0.2.2/31";
    const NET6: &str = "2001:db8:f::2/127";
    let out = lab.hikeshi_ok(&["ban", NET4, NET6, "--for", "1h"]);
    assert!(
        out.contains("banned 192.0.2.2/31 (") && out.contains("banned 2001:db8:f::2/127 ("),
        "{out}"
    );
    assert!(lab.wait_connect(SERVER4, false), "the banned IPv4 network can still connect");
    assert!(lab.wait_connect(SERVER6, false), "the banned IPv6 network can still connect");
    let held = listed(lab);
    assert!(held.contains("192.0.2.2/31") && held.contains("2001:db8:f::2/127"), "{held}");
    let mut active = lab.active_addresses();
    active.sort();
    assert_eq!(active, ["192.0.2.2/31", "2001:db8:f::2/127"]);

    // The server's own /24 and /64: refused, nothing added.
    for own in ["192.0.2.0/24", "2001:db8:f::/64", "::ffff:192.0.2.0/120"] {
        let stderr = lab.hikeshi_fails(&["ban", own], 1);
        assert!(stderr.contains("one of this host's own addresses"), "{own}: {stderr}");
    }
    assert_eq!(lab.active_addresses().len(), 2);

    let out = lab.hikeshi_ok(&["unban", NET4, "2001:db8:f::3/127"]);
    assert!(out.contains("unbanned 192.0.2.2/31") && out.contains("unbanned 2001:db8:f::2/127"));
    assert!(lab.wait_connect(SERVER4, true));
    assert!(lab.wait_connect(SERVER6, true));
    let held = listed(lab);
    assert!(!held.contains("/31") && !held.contains("/127"), "{held}");
    assert!(lab.active_addresses().is_empty());
}

#[test]
fn nftables_bans_networks_as_interval_elements() {
    let lab = Lab::new("backend = \"nftables\"");
    network_bans_round(&lab, |lab| {
        let held: Vec<String> = ["net4", "net6"]
            .iter()
            .flat_map(|set| lab.nft_set("hikeshi", set))
            .map(|t| t.to_string())
            .collect();
        held.join(" ")
    });
    assert!(lab.nft_set("hikeshi", "ban4").is_empty() && lab.nft_set("hikeshi", "ban6").is_empty());

    // An interval set refuses a network overlapping one it holds: the
    // whole batch fails, clearly, and nothing of it is applied or recorded.
    lab.hikeshi_ok(&["ban", "198.51.100.0/24"]);
    let stderr = lab.hikeshi_fails(&["ban", "198.51.100.128/25", "203.0.113.0/24"], 2);
    assert!(stderr.contains("containment FAILED for 198.51.100.128/25"), "{stderr}");
    assert_eq!(lab.nft_set("hikeshi", "net4"), set_of(&["198.51.100.0/24"]));
    assert_eq!(lab.active_addresses(), ["198.51.100.0/24"]);
}

#[test]
fn iptables_and_ipset_ban_networks() {
    let lab = Lab::new("backend = \"iptables\"");
    network_bans_round(&lab, |lab| {
        iptables_chain(lab, "iptables") + &iptables_chain(lab, "ip6tables")
    });
    lab.hikeshi_ok(&["firewall", "uninstall"]);

    lab.write_config("backend = \"ipset\"");
    network_bans_round(&lab, |lab| {
        lab.server_ok("ipset", &["save", "hikeshin4"])
            + &lab.server_ok("ipset", &["save", "hikeshin6"])
    });
    assert!(iptables_chain(&lab, "ip6tables").contains("--match-set hikeshin6 src -j DROP"));
    lab.hikeshi_ok(&["firewall", "uninstall"]);
    let sets = lab.server_ok("ipset", &["list", "-n"]);
    assert!(!sets.contains("hikeshi"), "{sets}");
}

// ---------------------------------------------------------------- iptables

fn iptables_chain(lab: &Lab, program: &str) -> String {
    lab.server_ok(program, &["-w", "-S", "HIKESHI"])
}

#[test]
fn iptables_per_rule_backend() {
    let lab = Lab::new("backend = \"iptables\"");
    // A foreign INPUT rule hikeshi must not touch.
    lab.server_ok("iptables", &["-w", "-A", "INPUT", "-s", "198.51.100.9/32", "-j", "ACCEPT"]);
    lab.hikeshi_ok(&["ban", PEER4, PEER6, "--for", "1h"]);
    assert!(lab.wait_connect(SERVER4, false));
    assert!(lab.wait_connect(SERVER6, false));
    assert!(iptables_chain(&lab, "iptables").contains("-A HIKESHI -s 192.0.2.2/32 -j DROP"));
    assert!(iptables_chain(&lab, "ip6tables").contains("-A HIKESHI -s 2001:db8:f::2/128 -j DROP"));
    let input = lab.server_ok("iptables", &["-w", "-S", "INPUT"]);
    assert!(input.contains("-A INPUT -j HIKESHI"), "{input}");
    // Banning again adds no duplicate rule.
    lab.hikeshi_ok(&["ban", PEER4]);
    assert_eq!(iptables_chain(&lab, "iptables").matches("192.0.2.2/32").count(), 1);

    lab.hikeshi_ok(&["unban", PEER4, PEER6]);
    assert!(lab.wait_connect(SERVER4, true));
    assert!(lab.wait_connect(SERVER6, true));
    assert!(!iptables_chain(&lab, "iptables").contains("192.0.2.2"));

    // iptables rules have no timeout: reconcile removes ended bans.
    lab.hikeshi_ok(&["ban", PEER4, "--for", "1s"]);
    assert!(lab.wait_connect(SERVER4, false));
    std::thread::sleep(Duration::from_millis(1500));
    let out = lab.hikeshi_ok(&["firewall", "reconcile", "--json"]);
    assert!(out.contains(PEER4), "{out}");
    assert!(lab.wait_connect(SERVER4, true));

    // A rule deleted behind hikeshi's back comes back on reconcile.
    lab.hikeshi_ok(&["ban", PEER6, "--for", "1h"]);
    lab.server_ok("ip6tables", &["-w", "-D", "HIKESHI", "-s", "2001:db8:f::2/128", "-j", "DROP"]);
    assert!(lab.wait_connect(SERVER6, true));
    lab.hikeshi_ok(&["firewall", "reconcile"]);
    assert!(lab.wait_connect(SERVER6, false));

    // Uninstall removes the chain and the jump, and only those.
    lab.hikeshi_ok(&["firewall", "uninstall"]);
    let input = lab.server_ok("iptables", &["-w", "-S"]);
    assert!(!input.contains("HIKESHI"), "{input}");
    assert!(input.contains("-A INPUT -s 198.51.100.9/32 -j ACCEPT"), "{input}");
    assert!(!lab.server_ok("ip6tables", &["-w", "-S"]).contains("HIKESHI"));
    assert!(lab.wait_connect(SERVER6, true));
}

#[test]
fn ipset_backend_expires_in_the_kernel() {
    let lab = Lab::new("backend = \"ipset\"");
    lab.hikeshi_ok(&["ban", PEER4, PEER6, "--for", "1h"]);
    assert!(lab.wait_connect(SERVER4, false));
    assert!(lab.wait_connect(SERVER6, false));
    let saved = lab.server_ok("ipset", &["save", "hikeshi4"]);
    assert!(saved.contains("add hikeshi4 192.0.2.2 timeout"), "{saved}");
    assert!(lab.server_ok("ipset", &["save", "hikeshi6"]).contains("add hikeshi6 2001:db8:f::2"));
    assert!(iptables_chain(&lab, "iptables").contains("--match-set hikeshi4 src -j DROP"));

    lab.hikeshi_ok(&["unban", PEER4]);
    assert!(lab.wait_connect(SERVER4, true));
    assert!(!lab.connects(SERVER6));

    // A 2 s ban ends in the kernel with no hikeshi running.
    lab.hikeshi_ok(&["ban", PEER4, "--for", "2s"]);
    assert!(lab.wait_connect(SERVER4, false));
    std::thread::sleep(Duration::from_secs(3));
    assert!(lab.connects(SERVER4), "ipset entry did not expire");

    // Reconcile restores a deleted entry.
    lab.server_ok("ipset", &["del", "hikeshi6", PEER6]);
    assert!(lab.wait_connect(SERVER6, true));
    lab.hikeshi_ok(&["firewall", "reconcile"]);
    assert!(lab.wait_connect(SERVER6, false));

    lab.hikeshi_ok(&["firewall", "uninstall"]);
    let sets = lab.server_ok("ipset", &["list", "-n"]);
    assert!(!sets.contains("hikeshi"), "{sets}");
    assert!(!lab.server_ok("iptables", &["-w", "-S"]).contains("HIKESHI"));
    assert!(lab.wait_connect(SERVER6, true));
}

// ---------------------------------------------------------------- fail2ban

#[test]
fn fail2ban_backend_delegates_to_a_real_jail() {
    let mut lab = Lab::new("backend = \"fail2ban\"");
    let socket = lab.start_fail2ban();
    lab.write_config(&format!(
        "backend = \"fail2ban\"\n[contain.fail2ban]\nsocket = \"{socket}\"\njail = \"hikeshi\""
    ));
    lab.hikeshi_ok(&["ban", PEER4, PEER6]);
    assert!(lab.wait_connect(SERVER4, false), "fail2ban did not block IPv4");
    assert!(lab.wait_connect(SERVER6, false), "fail2ban did not block IPv6");
    let banned = lab.server_ok("fail2ban-client", &["-s", &socket, "get", "hikeshi", "banip"]);
    assert_eq!(hikeshi::contain::fail2ban::banned_list(&banned), set_of(&[PEER4, PEER6]));

    lab.hikeshi_ok(&["unban", PEER4]);
    assert!(lab.wait_connect(SERVER4, true));
    assert!(!lab.connects(SERVER6));

    // fail2ban forgot a ban (unbanned by hand): reconcile re-bans it, and
    // leaves alone a ban fail2ban holds on its own.
    lab.server_ok("fail2ban-client", &["-s", &socket, "set", "hikeshi", "unbanip", PEER6]);
    lab.server_ok("fail2ban-client", &["-s", &socket, "set", "hikeshi", "banip", "198.51.100.40"]);
    assert!(lab.wait_connect(SERVER6, true));
    let out = lab.hikeshi_ok(&["firewall", "reconcile", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["reapplied"], serde_json::json!([PEER6]), "{out}");
    assert_eq!(report["removed_unknown"], serde_json::json!([]), "{out}");
    assert!(lab.wait_connect(SERVER6, false));

    // Uninstall lifts hikeshi's bans only.
    lab.hikeshi_ok(&["firewall", "uninstall"]);
    assert!(lab.wait_connect(SERVER6, true));
    let banned = lab.server_ok("fail2ban-client", &["-s", &socket, "get", "hikeshi", "banip"]);
    assert_eq!(hikeshi::contain::fail2ban::banned_list(&banned), set_of(&["198.51.100.40"]));
    lab.hikeshi_ok(&["ban", PEER6]);

    // Allowlisted addresses never reach fail2ban.
    let out = lab.hikeshi(&["ban", SERVER4]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let banned = lab.server_ok("fail2ban-client", &["-s", &socket, "get", "hikeshi", "banip"]);
    assert!(!banned.contains(SERVER4), "{banned}");

    // A jail's action may hold single addresses only: a network is a
    // clear failure, and nothing reaches fail2ban or the record.
    let stderr = lab.hikeshi_fails(&["ban", "198.51.100.0/24"], 2);
    assert!(stderr.contains("bans single addresses only"), "{stderr}");
    let banned = lab.server_ok("fail2ban-client", &["-s", &socket, "get", "hikeshi", "banip"]);
    assert!(!banned.contains("198.51.100.0"), "{banned}");
    assert!(!lab.active_addresses().iter().any(|a| a.contains('/')));

    // A jail that does not exist: a clear failure, nothing recorded.
    lab.write_config(&format!(
        "backend = \"fail2ban\"\n[contain.fail2ban]\nsocket = \"{socket}\"\njail = \"nosuchjail\""
    ));
    let stderr = lab.hikeshi_fails(&["ban", "198.51.100.30"], 2);
    assert!(stderr.contains("containment FAILED for 198.51.100.30"), "{stderr}");
    assert!(!lab.active_addresses().contains(&"198.51.100.30".to_string()));
}

// ---------------------------------------------------------------- none, conntrack

#[test]
fn none_backend_records_and_changes_nothing() {
    let lab = Lab::new("backend = \"none\"");
    let out = lab.hikeshi_ok(&["ban", PEER4, PEER6]);
    assert!(out.contains("would ban 192.0.2.2 (none"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.connects(SERVER4) && lab.connects(SERVER6));
    assert_eq!(lab.ruleset().trim(), "", "the dry run changed the firewall");
    assert_eq!(lab.active_addresses(), [PEER4, PEER6]);
    assert_eq!(lab.bans_json(false)[0]["backend"], "none");
}

#[test]
fn ban_ends_established_connections_with_conntrack() {
    let mut lab = Lab::new("backend = \"nftables\"\nkill_connections = true");
    lab.hold_established_connection();
    let before = lab.server_ok("conntrack", &["-L", "-s", PEER4]);
    assert!(before.contains("ESTABLISHED"), "{before}");

    let out = lab.hikeshi_ok(&["ban", PEER4]);
    assert!(out.contains("ended 1 connection(s)"), "{out}");
    let after = lab.server("conntrack", &["-L", "-s", PEER4]);
    assert!(!String::from_utf8_lossy(&after.stdout).contains("ESTABLISHED"), "{}", text(&after));
}

/// The daemon ends a banned source's established connections too, on its
/// own thread after the ban is in place.
#[test]
fn watch_ends_established_connections_after_the_ban() {
    let mut lab = Lab::new("backend = \"nftables\"\nkill_connections = true");
    let log = lab.path("auth.log");
    std::fs::write(&log, "").unwrap();
    std::fs::write(
        lab.path("hikeshi.toml"),
        format!(
            "[contain]\nbackend = \"nftables\"\nkill_connections = true\n\
             [[watch.files]]\npaths = [\"{log}\"]\n"
        ),
    )
    .unwrap();
    lab.hold_established_connection();

    let (data, config) = (lab.path("data"), lab.path("hikeshi.toml"));
    let mut daemon = exec::command(
        "ip",
        ["netns", "exec", &lab.server, BIN, "--data-dir", &data, "--config", &config, "watch"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = output::collect(daemon.stderr.take().unwrap());
    lab.children.push(daemon);
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: {}",
                output::text_of(&stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("ready", &|| output::text_of(&stderr).contains("hikeshi watch: ready"));
    let now = jiff::Timestamp::now().strftime("%b %e %H:%M:%S").to_string();
    let mut lines = String::new();
    for i in 0..5 {
        lines.push_str(&format!(
            "{now} server1 sshd[{}]: Failed password for invalid user admin from {PEER4} port {} ssh2\n",
            7000 + i,
            51000 + i
        ));
    }
    std::fs::write(&log, lines).unwrap();
    wait("the ban", &|| lab.active_addresses() == [PEER4]);
    wait("the connection ended", &|| {
        output::text_of(&stderr).contains(&format!("ended 1 established connection(s) of {PEER4}"))
    });
    let after = lab.server("conntrack", &["-L", "-s", PEER4]);
    assert!(!String::from_utf8_lossy(&after.stdout).contains("ESTABLISHED"), "{}", text(&after));
}

/// The `i`-th line of a brute force that ended a minute ago: a failed
/// password for `user` ("root", "invalid user admin") from `addr`.
fn failed_password(i: i64, user: &str, addr: &str) -> String {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60 - i);
    format!(
        "{} server1 sshd[{}]: Failed password for {user} from {addr} port {} ssh2\n",
        at.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
        4000 + i,
        50000 + i
    )
}

/// The runbook's whole containment step from a log file: `hikeshi scan`
/// detects the peer's brute force, bans it in nftables (its next connect
/// fails), moves the incident to contained and records the ban on its
/// timeline; the allowlisted server address attacking too is only flagged.
#[test]
fn scan_bans_the_attacker_it_detects_and_records_it() {
    let lab = Lab::new("backend = \"nftables\"\nbantime = \"10m\"");
    assert!(lab.connects(SERVER4));
    let log: String = [(PEER4, "admin"), (SERVER4, "root")]
        .iter()
        .cycle()
        .take(12)
        .enumerate()
        .map(|(i, (addr, user))| failed_password(i as i64, &format!("invalid user {user}"), addr))
        .collect();
    let log_path = lab.path("auth.log");
    std::fs::write(&log_path, log).unwrap();

    let out = lab.hikeshi(&["scan", &log_path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(lab.wait_connect(SERVER4, false), "the detected attacker can still connect");
    assert_eq!(lab.nft_set("hikeshi", "ban4"), set_of(&[PEER4]));

    let incidents = report["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 2, "{report:#}");
    let attacker = incidents.iter().find(|i| i["subject"] == PEER4).unwrap();
    assert_eq!(attacker["state"], "contained", "{report:#}");
    assert_eq!(attacker["attempts"], 6);
    let own = incidents.iter().find(|i| i["subject"] == SERVER4).unwrap();
    assert!(own["allowlisted"].as_str().unwrap().contains("own addresses"), "{own}");
    assert_eq!(own["state"], "detected");

    let id = attacker["id"].to_string();
    let show = lab.hikeshi_ok(&["incident", "show", &id, "--json"]);
    let detail: serde_json::Value = serde_json::from_str(&show).unwrap();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"banned") && kinds.contains(&"state_changed"), "{kinds:?}");
    assert_eq!(detail["evidence"].as_array().unwrap().len(), 6, "every attempt is evidence");

    // A second run reads nothing new and changes nothing.
    let out = lab.hikeshi(&["scan", &log_path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["incidents"].as_array().unwrap().is_empty(), "{report:#}");
    assert_eq!(lab.active_addresses(), vec![PEER4.to_string()]);
}

/// An IPv6 host rotating through its /64, one failure per address: the
/// prefix rule bans the whole /64 as one element, and none of its
/// addresses one by one; without network bans, each address that shows
/// up after the prefix rule fired is banned on its own.
#[test]
fn scan_bans_an_ipv6_attackers_whole_prefix_once() {
    let lab = Lab::new("backend = \"nftables\"");
    let log: String =
        (1..=14i64).map(|i| failed_password(i, "root", &format!("2001:db8:aa:1::{i:x}"))).collect();
    let log_path = lab.path("auth.log");
    std::fs::write(&log_path, &log).unwrap();

    let out = lab.hikeshi(&["scan", &log_path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(lab.nft_set("hikeshi", "net6"), set_of(&["2001:db8:aa:1::/64"]));
    assert!(lab.nft_set("hikeshi", "ban6").is_empty());
    assert_eq!(lab.active_addresses(), ["2001:db8:aa:1::/64"]);
    let bans = lab.bans_json(false);
    assert!(bans[0]["reason"].as_str().unwrap().contains("prefix_brute_force"), "{bans:?}");

    // Without network bans: the address that tripped the rule and each
    // one after it.
    lab.hikeshi_ok(&["firewall", "uninstall"]);
    std::fs::remove_dir_all(lab.path("data")).unwrap();
    lab.write_config("backend = \"nftables\"\nban_networks = false");
    let out = lab.hikeshi(&["scan", &log_path, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(lab.nft_set("hikeshi", "net6").is_empty());
    let banned: Vec<String> =
        lab.nft_set("hikeshi", "ban6").iter().map(|t| t.to_string()).collect();
    assert_eq!(
        banned,
        [
            "2001:db8:aa:1::a",
            "2001:db8:aa:1::b",
            "2001:db8:aa:1::c",
            "2001:db8:aa:1::d",
            "2001:db8:aa:1::e"
        ]
    );
}
