//! `hikeshi parse` end to end: the binary on real files, stdin, missing
//! files, hostile and broken input, every output format.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn cmd(&self) -> Command {
        #[allow(clippy::disallowed_methods)] // tests run the binary under test
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hikeshi"));
        cmd.arg("--data-dir").arg(self.dir.path().join("data"));
        cmd.env("HIKESHI_CONFIG", self.file("empty.toml", b""));
        cmd.env("TZ", "UTC");
        cmd
    }

    fn run(&self, args: &[&str], files: &[&Path]) -> Output {
        self.cmd().args(args).args(files).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/auth.log")
}

#[test]
fn summary_of_the_example_log() {
    let env = Env::new();
    let out = env.run(&["parse", "--format", "summary"], &[&example()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("mode normal"), "{text}");
    assert!(text.contains("unrecognised 0"), "{text}");
    let failed = text.lines().find(|l| l.trim_start().starts_with("failed_auth")).unwrap();
    assert!(failed.contains(" 60 "), "{failed}");
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn jsonl_has_every_field_and_marks_hostnames_unresolved() {
    let env = Env::new();
    let log = env.file(
        "auth.log",
        b"Jan 15 10:33:14 server1 sshd[2231]: Failed password for invalid user admin from 198.51.100.7 port 22 ssh2 from 203.0.113.9 port 4242 ssh2\n\
          Jan 15 10:33:15 server1 CRON[1]: (root) CMD (true)\n\
          Jan 15 10:33:16 server1 sshd[2232]: Invalid user x from bad.example.net port 5\n\
          Jan 15 10:33:17 server1 sshd[2233]: Disconnecting: Too many authentication failures [preauth]\n",
    );
    let out = env.run(&["parse", "--format", "jsonl"], &[&log]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3);
    let e = &events[0];
    assert_eq!(e["line"], 1);
    assert_eq!(e["file"], log.display().to_string());
    assert_eq!(e["time"].as_str().unwrap()[5..], *"01-15T10:33:14Z");
    assert_eq!(e["host"], "server1");
    assert_eq!(e["process"], "sshd");
    assert_eq!(e["pid"], 2231);
    assert_eq!(e["kind"], "failed_auth");
    assert_eq!(e["outcome"], "failure");
    assert_eq!(e["source"], "203.0.113.9");
    assert_eq!(e["user"], "admin from 198.51.100.7 port 22 ssh2");
    assert_eq!(e["port"], 4242);
    assert!(e.get("unresolved").is_none());
    assert_eq!(events[1]["source"], "bad.example.net");
    assert_eq!(events[1]["unresolved"], true);
    assert_eq!(events[2]["line"], 4);
    assert_eq!(events[2]["source"], serde_json::Value::Null);
    assert_eq!(events[2]["port"], serde_json::Value::Null);
    assert_eq!(events[2]["user"], serde_json::Value::Null);
}

#[test]
fn mode_comes_from_config_and_the_command_line_overrides_it() {
    let env = Env::new();
    let log = env.file(
        "a.log",
        b"Jan 15 10:33:14 h sshd[1]: Did not receive identification string from 203.0.113.5 port 4\n",
    );
    let outcome = |out: Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        v["outcome"].as_str().unwrap().to_string()
    };
    assert_eq!(outcome(env.run(&["parse", "--format", "jsonl"], &[&log])), "context");
    let config = env.file("c.toml", b"[parse]\nmode = \"ddos\"\n");
    let with_config = |extra: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("HIKESHI_CONFIG", &config).args(["parse", "--format", "jsonl"]).args(extra);
        cmd.arg(&log).output().unwrap()
    };
    assert_eq!(outcome(with_config(&[])), "failure");
    assert_eq!(outcome(with_config(&["--mode", "normal"])), "context");
    let bad = env.run(&["parse", "--mode", "fast"], &[&log]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("fast"), "{}", stderr(&bad));
}

#[test]
fn a_missing_file_is_named_the_others_are_parsed_and_exit_is_2() {
    let env = Env::new();
    let good = env
        .file("good.log", b"Jan 15 10:33:14 h sshd[1]: Invalid user a from 203.0.113.5 port 4\n");
    let missing = env.dir.path().join("missing.log");
    let out = env.run(&["parse", "--format", "jsonl"], &[&missing, &good, env.dir.path()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("missing.log"), "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn stdin_is_read_with_dash_or_no_file() {
    let env = Env::new();
    for args in [&["parse", "--format", "jsonl", "-"][..], &["parse", "--format", "jsonl"][..]] {
        let mut child =
            env.cmd().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"h sshd[9]: Accepted password for alice from 192.0.2.10 port 5 ssh2\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!((v["file"].as_str(), v["kind"].as_str()), (Some("-"), Some("accepted")));
    }
}

#[test]
fn hostile_and_broken_lines_are_counted_never_fatal() {
    let env = Env::new();
    let mut data = Vec::new();
    data.extend(
        b"Jan 15 10:33:14 h sshd[1]: Invalid user \xff\xfe\x1b[31m from 203.0.113.5 port 4\r\n",
    );
    data.extend(vec![b'x'; 100_000]);
    data.push(b'\n');
    data.extend(b"Jan 15 10:33:14 h sshd[1]: Invalid\0user\n");
    data.extend(b"Jan 15 10:3\n");
    data.extend(b"\n");
    data.extend(b"Jan 15 10:33:14 h sshd[1]: Invalid user b from 203.0.113.5 port 4"); // no newline
    let log = env.file("bad.log", &data);
    let out = env.run(&["parse", "--format", "summary"], &[&log]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("lines read             6"), "{text}");
    assert!(
        text.contains(
            "skipped lines          4 (empty 1, too_long 1, nul_byte 1, malformed_envelope 1)"
        ),
        "{text}"
    );
    let out = env.run(&["parse", "--format", "text"], &[&log]);
    let text = stdout(&out);
    // The attacker's bytes are escaped, never written raw to a terminal.
    assert!(!text.contains('\x1b'), "{text}");
    // Invalid UTF-8 becomes U+FFFD; the escape character is shown escaped.
    assert!(text.contains("user=\"\u{fffd}\u{fffd}\\u{1b}[31m\""), "{text}");
    assert!(text.contains(":6: "), "{text}");
}

#[test]
fn summary_warns_when_sshd_lines_are_not_understood() {
    let env = Env::new();
    let line =
        b"Jan 15 10:33:14 h sshd-session[1]: Authentication refused for x: new wording in OpenSSH 12\n";
    let log = env.file("new.log", &line.repeat(20));
    let out = env.run(&["parse", "--format", "summary"], &[&log]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("WARNING"), "{text}");
    assert!(text.contains("only 0 of 20 sshd lines"), "{text}");
    assert!(
        text.contains("line 1: Jan 15 10:33:14 h sshd-session[1]: Authentication refused"),
        "{text}"
    );
    // Other formats warn on stderr.
    let out = env.run(&["parse", "--format", "jsonl"], &[&log]);
    assert!(stderr(&out).contains("WARNING"), "{}", stderr(&out));
}

#[test]
fn yearless_lines_take_the_year_before_the_file_was_written() {
    let env = Env::new();
    let log =
        env.file("old.log", b"Dec 31 23:59:59 h sshd[1]: Invalid user a from 203.0.113.5 port 4\n");
    // 2027-01-02T00:00:00Z
    let jan_2027 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_798_848_000);
    std::fs::File::options().write(true).open(&log).unwrap().set_modified(jan_2027).unwrap();
    let out = env.run(&["parse", "--format", "jsonl", "--timezone", "Asia/Tokyo"], &[&log]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["time"], "2026-12-31T14:59:59Z");
}
