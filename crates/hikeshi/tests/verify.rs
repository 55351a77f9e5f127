//! `hikeshi verify` end to end: real TCP listeners on loopback, real
//! programs, real files; systemd through `systemctl` (in CI there is no
//! running systemd, so the unit check must fail with a clear message).

use std::fs;
use std::net::TcpListener;
use std::process::Output;

use serde_json::Value;

/// Runs `verify --json` with `config`; the daemon check is off unless the
/// configuration says otherwise (see `monitoring_*` below).
fn run(config: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = if config.contains("[verify]") {
        config.to_string()
    } else {
        format!("[verify]\nmonitoring = false\n{config}")
    };
    fs::write(dir.path().join("hikeshi.toml"), config).unwrap();
    let out = hikeshi::exec::command(env!("CARGO_BIN_EXE_hikeshi"), Vec::<&str>::new())
        .arg("--config")
        .arg(dir.path().join("hikeshi.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["verify", "--json"])
        .output()
        .unwrap();
    (out, dir)
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn all_checks_passing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sshd_config");
    fs::write(&file, b"PermitRootLogin no\n").unwrap();
    // sha256 of "PermitRootLogin no\n"
    let digest = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(b"PermitRootLogin no\n"))
    };
    let config = format!(
        r#"
[[verify.check]]
type = "tcp"
address = "127.0.0.1:{port}"
name = "sshd port"
[[verify.check]]
type = "command"
argv = ["sh", "-c", "exit 0"]
[[verify.check]]
type = "file"
path = "{}"
sha256 = "sha256:{}"
"#,
        file.display(),
        digest.to_uppercase()
    );
    let (out, _dir) = run(&config);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["all_passed"], true);
    assert_eq!(r["passed"], 3);
    assert_eq!(r["results"][0]["name"], "sshd port");
    assert_eq!(r["results"][1]["kind"], "command");
    drop(listener);
}

#[test]
fn each_kind_of_failure_is_explained() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"changed").unwrap();
    let unit = format!("hikeshi-no-such-unit-{}.service", std::process::id());
    let config = format!(
        r#"
[[verify.check]]
type = "systemd"
unit = "{unit}"
[[verify.check]]
type = "tcp"
address = "127.0.0.1:{port}"
timeout_seconds = 2
[[verify.check]]
type = "command"
argv = ["sh", "-c", "echo broken >&2; exit 3"]
[[verify.check]]
type = "command"
argv = ["sleep", "20"]
timeout_seconds = 1
[[verify.check]]
type = "command"
argv = ["hikeshi-no-such-program"]
[[verify.check]]
type = "file"
path = "{f}"
sha256 = "{zero}"
[[verify.check]]
type = "file"
path = "{f}.missing"
sha256 = "{zero}"
[[verify.check]]
type = "tcp"
address = "no port here"
"#,
        f = file.display(),
        zero = "0".repeat(64)
    );
    let started = std::time::Instant::now();
    let (out, _dir) = run(&config);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["all_passed"], false);
    assert_eq!(r["failed"], 8);
    let details: Vec<&str> =
        r["results"].as_array().unwrap().iter().map(|x| x["detail"].as_str().unwrap()).collect();
    assert!(details[0].starts_with("not active: systemctl says"), "{}", details[0]);
    assert!(
        details[1].contains("no connection") && details[1].contains(&port.to_string()),
        "{}",
        details[1]
    );
    assert!(details[2].contains("broken") && details[2].contains('3'), "{}", details[2]);
    assert!(details[3].contains("timed out after 1s"), "{}", details[3]);
    assert!(details[4].contains("cannot run `hikeshi-no-such-program`"), "{}", details[4]);
    assert!(details[5].contains("expected 0000"), "{}", details[5]);
    assert!(details[6].contains("cannot open"), "{}", details[6]);
    assert!(details[7].contains("cannot resolve"), "{}", details[7]);
    assert!(started.elapsed().as_secs() < 15, "the timeout must kill the sleeping command");
}

#[test]
fn no_checks_is_an_error_and_text_output_has_the_digest() {
    let (out, _dir) = run("");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[[verify.check]]"));

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("c.toml"),
        "[verify]\nmonitoring = false\n[[verify.check]]\ntype = \"command\"\nargv = [\"true\"]\n",
    )
    .unwrap();
    let out = hikeshi::exec::command(env!("CARGO_BIN_EXE_hikeshi"), Vec::<&str>::new())
        .arg("--config")
        .arg(dir.path().join("c.toml"))
        .arg("verify")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok   true [command true]: exit status 0"), "{text}");
    assert!(text.contains("evidence digest: sha256:"), "{text}");
}

#[test]
fn monitoring_is_checked_by_default_and_fails_without_the_daemon() {
    let (out, _dir) = run("[verify]\n");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report(&out);
    let check = &report["results"][0];
    assert_eq!(check["kind"], "monitoring");
    assert_eq!(check["passed"], false);
    assert!(check["detail"].as_str().unwrap().contains("hikeshi watch has never run"), "{check}");
}
