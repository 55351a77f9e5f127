//! `hikeshi incident list/show`, run as a program against a store seeded
//! through the library API.

use std::path::Path;
use std::process::Output;

use hikeshi::store;
use hikeshi_core::incident::{Actor, CampaignKey, Evidence, Observation, State, TimelineKind};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::hikeshi;

#[path = "support/data_dir.rs"]
mod data_dir;
use data_dir::DataDir;

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A data dir that does not exist yet.
fn env() -> DataDir {
    DataDir::new()
}

fn seed(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    let mut store = data_dir::open_capped(data, 4);
    let mut o = Observation::new(
        CampaignKey::for_addr("203.0.113.7".parse().unwrap()),
        "ssh-bruteforce",
        Severity::Medium,
        at("2026-03-01T10:00:00Z"),
        10,
    );
    o.users = vec!["root".into(), "admin".into()];
    o.hosts = vec!["web1".into()];
    o.evidence = (0..10u64)
        .map(|i| {
            let line = format!("Mar  1 10:00:{i:02} web1 sshd[9]: Failed password for root from 203.0.113.7 port 4{i} ssh2");
            Evidence::new("/var/log/auth.log", i * 90, line.as_bytes())
        })
        .collect();
    store.open_or_update_incident(o).unwrap();

    let mut o = Observation::new(
        CampaignKey::for_addr("2001:db8:1:2::5".parse().unwrap()),
        "ssh-bruteforce",
        Severity::High,
        at("2026-03-01T11:00:00Z"),
        3,
    );
    o.users = vec!["oracle\u{1b}]0;owned\u{7}\u{1b}[2J".into(), "\u{202e}toor".into()];
    o.evidence = vec![Evidence::new(
        "/var/log/auth.log",
        900,
        b"Invalid user \xff\x1b[31m from 2001:db8:1:2::5",
    )];
    let (second, _) = store.open_or_update_incident(o).unwrap();
    let lead = Actor::person("lead").unwrap();
    store
        .add_timeline(
            second,
            at("2026-03-01T11:01:00Z"),
            &Actor::Automatic,
            TimelineKind::Banned,
            "nft set hikeshi6",
        )
        .unwrap();
    store.set_state(second, State::Closed, at("2026-03-01T12:00:00Z"), &lead).unwrap();
}

#[test]
fn an_empty_store_lists_nothing() {
    let env = env();
    let out = hikeshi(&env.data, &["incident", "list"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "");
    assert_eq!(json(&hikeshi(&env.data, &["incident", "list", "--json"])), Value::Array(vec![]));
    assert!(store::db_path(&env.data).exists(), "the store was created in the data dir");
}

#[test]
fn list_shows_every_incident_and_filters_by_state() {
    let env = env();
    seed(&env.data);
    let all = json(&hikeshi(&env.data, &["incident", "list", "--json"]));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], 1);
    assert_eq!(all[0]["state"], "detected");
    assert_eq!(all[0]["severity"], "medium");
    assert_eq!(all[0]["key"]["kind"], "addr");
    assert_eq!(all[0]["key"]["subject"], "203.0.113.7");
    assert_eq!(all[0]["attempts"], 10);
    assert_eq!(all[0]["users"]["kept"], serde_json::json!(["admin", "root"]));
    assert_eq!(all[1]["key"]["subject"], "2001:db8:1:2::/64");
    assert_eq!(all[1]["state"], "closed");
    assert_eq!(all[1]["phase"], "Post-Incident Activity");

    let closed = json(&hikeshi(&env.data, &["incident", "list", "--state", "closed", "--json"]));
    assert_eq!(closed.as_array().unwrap().len(), 1);
    assert_eq!(closed[0]["id"], 2);
    let open = json(&hikeshi(&env.data, &["incident", "list", "--open", "--json"]));
    assert_eq!(open.as_array().unwrap().iter().map(|i| i["id"].clone()).collect::<Vec<_>>(), [1]);

    let text = stdout(&hikeshi(&env.data, &["incident", "list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("SEVERITY"), "{text}");
    assert!(lines[1].starts_with("1 ") && lines[1].contains("addr 203.0.113.7"), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
}

#[test]
fn show_gives_the_timeline_and_the_evidence_with_digests() {
    let env = env();
    seed(&env.data);
    let one = json(&hikeshi(&env.data, &["incident", "show", "1", "--json"]));
    assert_eq!(one["id"], 1);
    assert_eq!(one["rule"], "ssh-bruteforce");
    assert_eq!(one["evidence_lines"], 10);
    assert_eq!(one["timeline"][0]["kind"], "detected");
    assert_eq!(one["timeline"][0]["actor"], "hikeshi");
    let evidence = one["evidence"].as_array().unwrap();
    let seqs: Vec<_> = evidence.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 8, 9], "first two and latest two of ten");
    let first = &evidence[0];
    assert_eq!(first["file"], "/var/log/auth.log");
    assert_eq!(first["offset"], 0);
    let line = first["line"].as_str().unwrap();
    assert!(line.contains("port 40"), "{line}");
    let expected = Evidence::new("x", 0, line.as_bytes()).sha256_hex();
    assert_eq!(first["sha256"], expected);
    assert_eq!(first["line_hex"], Value::Null);

    let two = json(&hikeshi(&env.data, &["incident", "show", "#2", "--json"]));
    let kinds: Vec<_> =
        two["timeline"].as_array().unwrap().iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, ["detected", "banned", "state_changed"]);
    assert_eq!(two["timeline"][2]["actor"], "person:lead");
    assert_eq!(two["evidence"][0]["line_hex"].as_str().unwrap().len() % 2, 0);

    let text = stdout(&hikeshi(&env.data, &["incident", "show", "1"]));
    for needle in [
        "Incident 1",
        "detected (Detection and Analysis)",
        "Severity:     medium",
        "Source:       addr 203.0.113.7",
        "Users tried:  admin, root",
        "Attempts:     10",
        "10 line(s), 4 kept",
        "/var/log/auth.log:0  sha256 ",
        "... 6 line(s) not kept",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn hostile_names_and_lines_never_reach_the_terminal_raw() {
    let env = env();
    seed(&env.data);
    let out = hikeshi(&env.data, &["incident", "show", "2"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for raw in ['\u{1b}', '\u{7}', '\u{202e}', '\u{fffd}'] {
        assert!(!text.contains(raw), "raw {raw:?} printed:\n{text}");
    }
    assert!(text.contains("oracle\\u{1b}]0;owned\\u{7}\\u{1b}[2J"), "{text}");
    assert!(text.contains("\\u{202e}toor"), "{text}");
    assert!(text.contains("Invalid user \\xff\\u{1b}[31m from"), "{text}");

    let out = hikeshi(&env.data, &["incident", "show", "2", "--json"]);
    assert!(!out.stdout.iter().any(|b| *b == 0x1b || *b == 0x07), "raw control bytes in JSON");
    let two: Value = serde_json::from_slice(&out.stdout).unwrap();
    let users: Vec<_> =
        two["users"]["kept"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert!(users.contains(&"\u{202e}toor"), "the value itself is intact: {users:?}");
    assert!(!stdout(&out).contains('\u{202e}'));
}

#[test]
fn showing_a_missing_incident_is_an_error() {
    let env = env();
    seed(&env.data);
    let out = hikeshi(&env.data, &["incident", "show", "99"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("there is no incident 99"), "{err}");
    assert!(out.stdout.is_empty());

    let out = hikeshi(&env.data, &["incident", "show", "zero"]);
    assert_eq!(out.status.code(), Some(2));
    let out = hikeshi(&env.data, &["incident", "list", "--state", "opened"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("analysing"));
}

#[test]
fn a_corrupt_database_is_an_error_naming_the_file() {
    let env = env();
    std::fs::create_dir_all(&env.data).unwrap();
    let db = store::db_path(&env.data);
    std::fs::write(&db, vec![0xa5u8; 4096]).unwrap();
    let out = hikeshi(&env.data, &["incident", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&db.display().to_string()) && err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0xa5u8; 4096], "the file was left as it was");
}
