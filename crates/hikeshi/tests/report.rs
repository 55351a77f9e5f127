//! `hikeshi report` and `hikeshi isms`: a realistic incident recorded
//! through the real store API with fixed timestamps, rendered in every
//! format and language and compared with committed snapshots
//! (`tests/snapshots/`); plus the program run end to end.

use std::path::{Path, PathBuf};

use hikeshi::contain::store::{insert_ban, NewBan};
use hikeshi::notify::outbox::{enqueue, NewMessage};
use hikeshi::notify::Channel;
use hikeshi::report::{assemble, Extras};
use hikeshi::store;
use hikeshi_core::incident::{
    Actor, CampaignKey, Evidence, IncidentId, Observation, State, TimelineKind,
};
use hikeshi_core::report::{self, Lang};
use hikeshi_core::Severity;
use jiff::Timestamp;

#[path = "support/cli.rs"]
mod cli;
use cli::hikeshi;

#[path = "support/data_dir.rs"]
mod data_dir;
use data_dir::{open, DataDir};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const GENERATED: &str = "2026-11-03T09:00:00Z";
const HOSTILE_USER: &str = "<script>alert(1)</script>";

fn env() -> DataDir {
    DataDir::created()
}

/// The runbook's scenario: password guessing from 203.0.113.5 against
/// server1, alerted by mail, banned, analysed, contained, eradicated,
/// recovered and closed, with root cause and preventive measures.
fn seed_full(data: &Path) -> IncidentId {
    let mut store = open(data);
    let addr = "203.0.113.5";
    let users = ["admin", "root", HOSTILE_USER, "admin", "test", "admin"];
    let mut o = Observation::new(
        CampaignKey::for_addr(addr.parse().unwrap()),
        "ssh-bruteforce",
        Severity::High,
        at("2026-11-01T10:33:14Z"),
        6,
    );
    o.first_seen = at("2026-11-01T10:32:04Z");
    o.hosts = vec!["server1".into()];
    o.users = users.iter().map(|u| u.to_string()).collect();
    o.users.dedup();
    o.evidence = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            // Every 14 s from 10:32:04: the last one is the opening line.
            let second = 4 + 14 * i;
            let line = format!(
                "Nov  1 10:{}:{:02} server1 sshd[{}]: Failed password for invalid user {user} from {addr} port {} ssh2",
                32 + second / 60,
                second % 60,
                2231 + i,
                55214 + i
            );
            Evidence::new("/var/log/auth.log", 4096 + i as u64 * 120, line.as_bytes())
        })
        .collect();
    let (id, _) = store.open_or_update_incident(o).unwrap();

    store
        .write(|b| -> Result<(), store::StoreError> {
            enqueue(
                b.conn(),
                &NewMessage {
                    incident_id: Some(id.0),
                    alert_key: None,
                    channel: Channel::Email,
                    recipient: "ir_team@example.com".into(),
                    subject: "Incident Alert".into(),
                    body: "Multiple failed SSH logins detected on server1".into(),
                },
                at("2026-11-01T10:33:14Z"),
            )
            .unwrap();
            insert_ban(
                b.conn(),
                &NewBan {
                    address: addr.parse().unwrap(),
                    incident_id: Some(id.0),
                    reason: "ssh-bruteforce",
                    backend: "nft",
                    created_at: at("2026-11-01T10:33:15Z"),
                    expires_at: Some(at("2026-11-02T10:33:15Z")),
                    offence: 1,
                },
            )
            .unwrap();
            Ok(())
        })
        .unwrap();
    // The outbox marks delivery itself when it sends; a test has no mail
    // server, so the delivery time is written as the deliverer would.
    store
        .conn()
        .execute(
            "UPDATE alert_outbox SET delivered_at = ?1, attempts = 1 WHERE incident_id = ?2",
            (at("2026-11-01T10:33:19Z").as_second(), id.0),
        )
        .unwrap();

    let alice = Actor::person("alice").unwrap();
    let bob = Actor::person("bob").unwrap();
    let timeline = [
        ("2026-11-01T10:40:00Z", &alice, TimelineKind::Assigned, "Incident Manager: alice"),
        ("2026-11-01T10:40:30Z", &alice, TimelineKind::Assigned, "Security Analyst: bob"),
        ("2026-11-01T10:52:00Z", &bob, TimelineKind::Note, "admin exists on server1 and had a password login; no success from 203.0.113.5 in auth.log"),
        ("2026-11-01T13:00:00Z", &bob, TimelineKind::RootCause, "Password authentication open to the Internet; weak password on admin"),
        ("2026-11-01T13:05:00Z", &alice, TimelineKind::PreventiveMeasure, "Keys only: PasswordAuthentication no, KbdInteractiveAuthentication no"),
        ("2026-11-01T13:06:00Z", &alice, TimelineKind::PreventiveMeasure, "SSH reachable only through the VPN"),
    ];
    for (when, who, kind, detail) in timeline {
        store.add_timeline(id, at(when), who, kind, detail).unwrap();
    }
    store.set_state(id, State::Analysing, at("2026-11-01T10:41:00Z"), &bob).unwrap();
    store.set_state(id, State::Contained, at("2026-11-01T10:45:00Z"), &bob).unwrap();
    store
        .add_evidence(
            id,
            at("2026-11-01T11:00:00Z"),
            &bob,
            Evidence::new(
                "hikeshi accounts",
                0,
                b"no new accounts, no UID 0 besides root, admin: password changed",
            ),
        )
        .unwrap();
    store.set_state(id, State::Eradicated, at("2026-11-01T11:10:00Z"), &bob).unwrap();
    store.set_state(id, State::Recovered, at("2026-11-01T12:00:00Z"), &bob).unwrap();
    store.set_state(id, State::Closed, at("2026-11-02T09:00:00Z"), &alice).unwrap();
    id
}

/// An incident that was only detected: everything people add is missing.
fn seed_bare(data: &Path) -> IncidentId {
    let mut store = open(data);
    let mut o = Observation::new(
        CampaignKey::for_addr("198.51.100.23".parse().unwrap()),
        "ssh-invalid-users",
        Severity::Medium,
        at("2026-11-05T02:00:00Z"),
        1,
    );
    o.evidence = vec![Evidence::new(
        "/var/log/auth.log",
        0,
        b"Nov  5 02:00:00 server1 sshd[77]: Invalid user oracle from 198.51.100.23 port 40000",
    )];
    store.open_or_update_incident(o).unwrap().0
}

/// Legitimate users: alice mistypes twice then logs in; carol once.
fn auth_log(dir: &Path) -> PathBuf {
    let path = dir.join("auth.log");
    std::fs::write(
        &path,
        "Nov  1 08:59:00 server1 sshd[100]: Failed password for alice from 198.51.100.7 port 50000 ssh2\n\
         Nov  1 08:59:20 server1 sshd[100]: Failed password for alice from 198.51.100.7 port 50000 ssh2\n\
         Nov  1 08:59:41 server1 sshd[100]: Accepted password for alice from 198.51.100.7 port 50000 ssh2\n\
         Nov  1 09:10:00 server1 sshd[101]: Failed password for carol from 198.51.100.8 port 50001 ssh2\n\
         Nov  1 09:10:09 server1 sshd[101]: Accepted password for carol from 198.51.100.8 port 50001 ssh2\n\
         Nov  1 10:32:04 server1 sshd[2231]: Failed password for invalid user admin from 203.0.113.5 port 55214 ssh2\n\
         Nov  1 10:32:24 server1 sshd[2232]: Failed password for invalid user root from 203.0.113.5 port 55215 ssh2\n\
         Nov  1 10:32:44 server1 sshd[2233]: Failed password for invalid user x from 203.0.113.5 port 55216 ssh2\n\
         Nov  1 10:33:04 server1 sshd[2234]: Failed password for invalid user admin from 203.0.113.5 port 55217 ssh2\n\
         Nov  1 10:33:24 server1 sshd[2235]: Failed password for invalid user test from 203.0.113.5 port 55218 ssh2\n",
    )
    .unwrap();
    // Yearless syslog times take the year of the file's modification.
    let mtime = filetime::FileTime::from_unix_time(at("2026-11-01T11:00:00Z").as_second(), 0);
    filetime::set_file_mtime(&path, mtime).unwrap();
    path
}

fn render_full(env: &DataDir) -> report::Report {
    let id = seed_full(&env.data);
    let extras = Extras { auth_logs: vec![auth_log(env.tmp.path())], ..Extras::default() };
    let input = assemble(&open(&env.data), id, &extras, at(GENERATED)).unwrap();
    report::build(&input)
}

#[test]
fn full_incident_snapshots_in_every_format_and_language() {
    let env = env();
    let r = render_full(&env);
    for (lang, name) in [(Lang::En, "en"), (Lang::Ja, "ja"), (Lang::Both, "both")] {
        insta::assert_snapshot!(format!("full_md_{name}"), report::markdown(&r, lang));
        insta::assert_snapshot!(format!("full_html_{name}"), report::html(&r, lang));
        insta::assert_snapshot!(format!("full_json_{name}"), report::json(&r, lang));
    }
}

#[test]
fn full_incident_facts_come_from_the_record() {
    let env = env();
    let r = render_full(&env);
    let secs: Vec<Option<i64>> = r.metrics.iter().map(|m| m.seconds).collect();
    // First line 10:32:04 → opened 10:33:14; ban 10:33:15; recovered
    // 12:00:00; closed 2026-11-02 09:00:00.
    assert_eq!(secs, [Some(70), Some(1), Some(5206), Some(80_806)]);
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    let legit = r.lessons.legitimate.clone().expect("alice and carol logged in");
    assert_eq!((legit.sources, legit.max_failures_before_success), (2, 2));
    let advice = r.lessons.advice.clone().unwrap();
    assert_eq!((advice.maxretry, advice.separates), (4, true));
    assert_eq!(r.people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(r.people[0].roles, ["Incident Manager"]);
    assert_eq!(r.evidence.len(), 7);
    assert_eq!(r.evidence[6].controls, ["5.28", "8.5"], "attached by hikeshi accounts");
    let html = report::html(&r, Lang::Both);
    assert!(!html.contains(HOSTILE_USER), "attacker markup must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn bare_incident_shows_what_nobody_recorded_as_missing() {
    let env = env();
    let id = seed_bare(&env.data);
    let input = assemble(&open(&env.data), id, &Extras::default(), at(GENERATED)).unwrap();
    let r = report::build(&input);
    assert_eq!(
        r.missing,
        [
            "actions_taken",
            "root_cause",
            "preventive_measures",
            "people",
            "time_to_contain",
            "time_to_recover",
            "time_to_close"
        ]
    );
    insta::assert_snapshot!("bare_md_en", report::markdown(&r, Lang::En));
    insta::assert_snapshot!("bare_md_ja", report::markdown(&r, Lang::Ja));
}

#[test]
fn the_program_writes_each_format_to_a_file_or_stdout() {
    let env = env();
    seed_full(&env.data);
    let out_file = env.tmp.path().join("report.html");
    let out = hikeshi(
        &env.data,
        &["report", "1", "--format", "html", "--lang", "both", "--out", out_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("再発防止策"));

    let out = hikeshi(&env.data, &["report", "1", "--format", "json", "--lang", "ja"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incident_id"], 1);
    assert_eq!(v["lang"], "ja");
    assert_eq!(v["metrics"][1]["name"], "time_to_contain");
    assert_eq!(v["metrics"][1]["seconds"], 1);

    let out = hikeshi(&env.data, &["report", "1"]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# Incident report #1"), "{md}");
}

#[test]
fn the_program_refuses_an_unknown_incident_and_a_missing_log() {
    let env = env();
    seed_bare(&env.data);
    let out = hikeshi(&env.data, &["report", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains('9'), "{out:?}");
    let out = hikeshi(&env.data, &["report", "1", "--auth-log", "/nonexistent/auth.log"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/auth.log"), "{out:?}");
    let out = hikeshi(&env.data, &["report", "1", "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn isms_lists_evidence_per_control_and_the_runbook_correction() {
    let env = env();
    seed_full(&env.data);
    seed_bare(&env.data);
    let out = hikeshi(&env.data, &["isms", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let controls = v["controls"].as_array().unwrap();
    let numbers: Vec<&str> = controls.iter().map(|c| c["number"].as_str().unwrap()).collect();
    assert_eq!(
        numbers,
        ["5.24", "5.25", "5.26", "5.27", "5.28", "6.8", "8.5", "8.8", "8.15", "8.16", "8.20"]
    );
    let count = |n: &str| {
        controls.iter().find(|c| c["number"] == n).unwrap()["entries"].as_array().unwrap().len()
    };
    assert_eq!(count("6.8"), 1, "one alert");
    assert_eq!(count("8.20"), 1, "one ban");
    assert_eq!(count("5.27"), 3, "root cause and two preventive measures");
    assert_eq!(count("5.24"), 2, "two assignments");
    assert_eq!(count("8.16"), 2, "two detections");
    assert_eq!(v["runbook_corrections"][0]["runbook_cites"], "A.5.29");
    assert_eq!(v["runbook_corrections"][0]["correct_controls"][0], "6.8");

    let out = hikeshi(&env.data, &["isms", "--incident", "2"]);
    assert!(out.status.success(), "{out:?}");
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains("## A.8.23")
            || md.contains("| A.8.23 | vulnerability management | Web filtering |")
    );
    assert!(md.contains("## A.5.28 Collection of evidence"));
    assert!(!md.contains("#1 |"), "only incident 2");
    insta::assert_snapshot!("isms_incident_2_md", md);
}

#[test]
fn a_scanned_log_gives_a_report_from_what_the_pipeline_recorded() {
    let env = env();
    let log = env.tmp.path().join("auth.log");
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!(
            "Nov  1 10:3{i}:0{i} server1 sshd[22{i}]: Failed password for invalid user admin{i} from 203.0.113.5 port 5521{i} ssh2\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    let mtime = filetime::FileTime::from_unix_time(at("2026-11-01T11:00:00Z").as_second(), 0);
    filetime::set_file_mtime(&log, mtime).unwrap();
    let out = hikeshi(&env.data, &["scan", "--no-ban", "--quiet", log.to_str().unwrap()]);
    assert!(out.status.code().is_some_and(|c| c < 2), "{out:?}");

    let out = hikeshi(&env.data, &["report", "1", "--format", "json", "--lang", "en"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["attempts"], 10);
    assert_eq!(v["first_seen"], "2026-11-01T10:30:00Z");
    assert_eq!(v["evidence"].as_array().unwrap().len(), 10);
    assert_eq!(v["evidence"][0]["controls"], serde_json::json!(["5.28", "8.15"]));
    let missing: Vec<&str> =
        v["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    for field in ["root_cause", "preventive_measures", "people", "time_to_recover", "time_to_close"]
    {
        assert!(missing.contains(&field), "{field} not recorded: {missing:?}");
    }
    assert_eq!(v["lessons"]["attack"]["failures"], 10, "read back from the evidence");
    assert!(v["lessons"]["legitimate"].is_null());
    assert!(v["lessons"]["notes"][0].as_str().unwrap().contains("no successful login"));

    // Attaching the report completes the playbook's report step.
    let step_done = |data: &Path| {
        let out = hikeshi(data, &["incident", "checklist", "1", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let items = v["items"].as_array().unwrap().clone();
        let step = items.iter().find(|i| i["id"] == "post.report");
        step.unwrap_or_else(|| panic!("no post.report in {v:#}"))["done"] == true
    };
    assert!(!step_done(&env.data));
    let out = hikeshi(&env.data, &["report", "1", "--format", "html", "--attach"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("attached"), "{out:?}");
    assert!(step_done(&env.data));
    let out = hikeshi(&env.data, &["report", "7", "--attach"]);
    assert_eq!(out.status.code(), Some(2), "an unknown incident: {out:?}");
    assert!(out.stdout.is_empty(), "nothing is written when it cannot be attached");
}

#[test]
fn hardening_findings_become_suggested_measures_unless_already_recorded() {
    let env = env();
    seed_full(&env.data);
    let root = env.tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
    std::fs::write(root.join("etc/ssh/sshd_config"), "UsePAM yes\n").unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/sh\n",
    )
    .unwrap();
    let out = hikeshi(
        &env.data,
        &["report", "1", "--format", "json", "--harden-root", root.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let suggested: Vec<&str> = v["fields"]["suggested_measures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(suggested.iter().any(|s| s.contains("MaxAuthTries 3")), "{suggested:?}");
    assert!(
        suggested.iter().any(|s| s.contains("Incident #1: attackers tried root")),
        "{suggested:?}"
    );
    // alice already recorded "PasswordAuthentication no" as a measure.
    assert!(!suggested.iter().any(|s| s.contains("PasswordAuthentication no")), "{suggested:?}");
    let out = hikeshi(&env.data, &["report", "1", "--harden-root", root.to_str().unwrap()]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("Suggested measures (from the hardening audit; not yet recorded):"));
}
