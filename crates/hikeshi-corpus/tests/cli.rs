//! The `hikeshi-corpus` binary: options reach the generator, errors are
//! clear and exit 2, a closed pipe is not an error, `--stats` is the
//! library's ground truth.

use std::io::Read;
use std::process::{Command, Output, Stdio};

use hikeshi_corpus::{Config, Generator};

fn corpus(args: &[&str]) -> Output {
    #[allow(clippy::disallowed_methods)] // tests run the binary under test
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hikeshi-corpus"));
    cmd.args(args).output().expect("hikeshi-corpus runs")
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hikeshi-corpus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn stdout_matches_the_library_byte_for_byte() {
    let out = corpus(&["--lines", "3000", "--seed", "9", "--ipv6-share", "0.3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut expected = Vec::new();
    let config = Config { lines: 3000, seed: 9, ipv6_share: 0.3, ..Config::default() };
    Generator::new(config).unwrap().write_to(&mut expected).unwrap();
    assert_eq!(out.stdout, expected);
}

#[test]
fn out_file_and_stats_report_the_ground_truth() {
    let dir = temp_dir();
    let path = dir.join("auth.log");
    let out = corpus(&["--lines", "5000", "--out", path.to_str().unwrap(), "--stats"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5000);
    let stats = String::from_utf8(out.stderr).unwrap();
    let value = |key: &str| -> u64 {
        let line = stats.lines().find(|l| l.split(' ').next() == Some(key)).unwrap();
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(value("lines"), 5000);
    assert_eq!(value("failed_password_lines"), text.matches("Failed password").count() as u64);
    assert!(value("kind.invalid_user") > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn envelopes_option_is_applied() {
    let out =
        corpus(&["--lines", "50", "--envelopes", "rfc5424", "--start", "2025-12-31T23:59:59Z"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.starts_with('<') && l.contains(">1 20")), "{text}");
    assert!(text.contains(" 2026-01-01T"), "the year rolls over: {text}");
}

#[test]
fn bad_options_exit_2_with_a_message_naming_the_problem() {
    for (args, expected) in [
        (&["--lines", "10", "--attack-share", "1.5"][..], "attack share"),
        (&["--lines", "10", "--envelopes", "classic,bogus"][..], "bogus"),
        (&["--lines", "10", "--rate", "0"][..], "lines per second"),
        (&["--lines", "10", "--attackers", "0"][..], "attacker"),
        (&["--lines", "10", "--start", "yesterday"][..], "--start"),
        (&["--lines", "ten"][..], "--lines"),
    ] {
        let out = corpus(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unwritable_output_file_is_named_in_the_error() {
    let out = corpus(&["--lines", "10", "--out", "/nonexistent-dir/auth.log"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent-dir/auth.log"), "{stderr}");
}

#[test]
fn an_endless_stream_stops_quietly_when_the_reader_goes_away() {
    #[allow(clippy::disallowed_methods)] // tests run the binary under test
    let mut child = Command::new(env!("CARGO_BIN_EXE_hikeshi-corpus"))
        .args(["--lines", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0u8; 1 << 20];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
