//! `hikeshi incident advance|note|assign|close|checklist`, run as a
//! program against a store seeded through the library API.

use std::path::{Path, PathBuf};
use std::process::Output;

use hikeshi::contain::store::{insert_ban, NewBan};
use hikeshi_core::incident::{
    Actor, CampaignKey, Evidence, IncidentId, Observation, State, TimelineKind,
};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::{hikeshi, hikeshi_env};

#[path = "support/data_dir.rs"]
mod data_dir;
use data_dir::{open, DataDir};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{out:?}");
    out
}

fn json(out: Output) -> Value {
    serde_json::from_slice(&ok(out).stdout).expect("valid JSON")
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A data dir with one incident (number 1) from 203.0.113.7.
fn env() -> DataDir {
    let env = DataDir::created();
    let mut store = open(&env.data);
    let mut o = Observation::new(
        CampaignKey::for_addr("203.0.113.7".parse().unwrap()),
        "ssh-bruteforce",
        Severity::High,
        at("2026-03-01T10:00:00Z"),
        12,
    );
    o.evidence = vec![Evidence::new("/var/log/auth.log", 0, b"Failed password for root")];
    let (id, _) = store.open_or_update_incident(o).unwrap();
    assert_eq!(id, IncidentId(1));
    env
}

fn timeline(data: &Path) -> Vec<Value> {
    let show = json(hikeshi(data, &["incident", "show", "1", "--json"]));
    show["timeline"].as_array().unwrap().clone()
}

#[test]
fn a_person_advances_with_name_and_time_and_an_automatic_move_says_so() {
    let env = env();
    let before = Timestamp::now();
    let out =
        ok(hikeshi(&env.data, &["incident", "advance", "1", "--to", "analysing", "--by", "alice"]));
    assert!(stdout(&out).contains("incident 1 is now analysing"), "{}", stdout(&out));
    // An automatic move, as a ban makes it.
    open(&env.data)
        .set_state(IncidentId(1), State::Contained, at("2026-03-01T10:05:00Z"), &Actor::Automatic)
        .unwrap();
    let moves: Vec<Value> =
        timeline(&env.data).into_iter().filter(|e| e["kind"] == "state_changed").collect();
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[0]["actor"], "person:alice");
    assert_eq!(moves[0]["detail"], "detected → analysing (Detection and Analysis)");
    let when: Timestamp = moves[0]["at"].as_str().unwrap().parse().unwrap();
    assert!(when >= before.checked_sub(jiff::SignedDuration::from_secs(1)).unwrap(), "{when}");
    assert_eq!(moves[1]["actor"], "hikeshi");
    assert_eq!(
        moves[1]["detail"],
        "analysing → contained (Containment, Eradication, and Recovery)"
    );
    let list = json(hikeshi(&env.data, &["incident", "list", "--json"]));
    assert_eq!(list[0]["state"], "contained");
}

#[test]
fn the_default_actor_is_the_invoking_user_sudo_first() {
    let env = env();
    ok(hikeshi_env(
        &env.data,
        &["incident", "note", "1", "looked at it"],
        &[("SUDO_USER", "carol"), ("USER", "root")],
    ));
    ok(hikeshi_env(
        &env.data,
        &["incident", "note", "1", "again"],
        &[("SUDO_USER", ""), ("USER", "dave")],
    ));
    let notes: Vec<Value> =
        timeline(&env.data).into_iter().filter(|e| e["kind"] == "note").collect();
    assert_eq!(notes[0]["actor"], "person:carol");
    assert_eq!(notes[0]["detail"], "looked at it");
    assert_eq!(notes[1]["actor"], "person:dave");
}

#[test]
fn hostile_names_and_empty_texts_are_refused_and_write_nothing() {
    let env = env();
    let before = timeline(&env.data).len();
    let out = hikeshi(&env.data, &["incident", "note", "1", "x", "--by", "eve\u{1b}[2J"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid --by name") && stderr(&out).contains("U+001B"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains('\u{1b}'), "the escape is not echoed raw");
    let out = hikeshi(&env.data, &["incident", "assign", "1", "incident-manager", "bob\u{202e}"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = hikeshi(&env.data, &["incident", "note", "1", "   "]);
    assert!(stderr(&out).contains("the note is empty"), "{}", stderr(&out));
    let out = hikeshi(&env.data, &["incident", "assign", "1", "janitor", "bob"]);
    assert!(stderr(&out).contains("unknown role"), "{}", stderr(&out));
    assert_eq!(timeline(&env.data).len(), before);
}

#[test]
fn invalid_transitions_are_refused_with_a_clear_message() {
    let env = env();
    let out = hikeshi(&env.data, &["incident", "advance", "1", "--to", "detected"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already in that state"), "{}", stderr(&out));
    let out = hikeshi(&env.data, &["incident", "advance", "1", "--to", "closed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--root-cause"), "{}", stderr(&out));
    let out = hikeshi(&env.data, &["incident", "advance", "1", "--to", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown state"), "{}", stderr(&out));
    let out = hikeshi(&env.data, &["incident", "advance", "7", "--to", "analysing"]);
    assert!(stderr(&out).contains("no incident 7"), "{}", stderr(&out));
    ok(hikeshi(
        &env.data,
        &["incident", "close", "1", "--root-cause", "weak password", "--preventive", "keys only"],
    ));
    let out = hikeshi(&env.data, &["incident", "advance", "1", "--to", "analysing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("closed incident is final"), "{}", stderr(&out));
    let out =
        hikeshi(&env.data, &["incident", "close", "1", "--root-cause", "a", "--preventive", "b"]);
    assert!(stderr(&out).contains("already in that state"), "{}", stderr(&out));
}

#[test]
fn closing_needs_both_texts_and_records_them() {
    let env = env();
    let out = hikeshi(&env.data, &["incident", "close", "1", "--root-cause", "weak password"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--preventive"), "{}", stderr(&out));
    let out = hikeshi(&env.data, &["incident", "close", "1", "--preventive", "keys only"]);
    assert!(stderr(&out).contains("--root-cause"), "{}", stderr(&out));
    let out =
        hikeshi(&env.data, &["incident", "close", "1", "--root-cause", " ", "--preventive", "k"]);
    assert!(stderr(&out).contains("closing needs a root cause"), "{}", stderr(&out));
    let out =
        hikeshi(&env.data, &["incident", "close", "1", "--root-cause", "r", "--preventive", ""]);
    assert!(stderr(&out).contains("closing needs preventive measures"), "{}", stderr(&out));
    assert_eq!(json(hikeshi(&env.data, &["incident", "list", "--json"]))[0]["state"], "detected");
    assert!(timeline(&env.data).iter().all(|e| e["kind"] != "root_cause"), "nothing was written");

    ok(hikeshi(
        &env.data,
        &[
            "incident",
            "close",
            "1",
            "--root-cause",
            "weak password on admin",
            "--preventive",
            "key-only SSH",
            "--by",
            "alice",
        ],
    ));
    let t = timeline(&env.data);
    let kinds: Vec<&str> = t.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["detected", "root_cause", "preventive_measure", "state_changed"]);
    assert_eq!(t[1]["detail"], "weak password on admin");
    assert_eq!(t[2]["detail"], "key-only SSH");
    assert_eq!(t[3]["detail"], "detected → closed (Post-Incident Activity)");
    assert!(t[1..].iter().all(|e| e["actor"] == "person:alice"));
}

#[test]
fn assign_records_role_and_person() {
    let env = env();
    ok(hikeshi(
        &env.data,
        &["incident", "assign", "1", "Incident Manager", "  Alice Smith ", "--by", "lead"],
    ));
    ok(hikeshi(&env.data, &["incident", "assign", "1", "security-analyst", "bob"]));
    let assigned: Vec<Value> =
        timeline(&env.data).into_iter().filter(|e| e["kind"] == "assigned").collect();
    assert_eq!(assigned[0]["detail"], "Incident Manager: Alice Smith");
    assert_eq!(assigned[0]["actor"], "person:lead");
    assert_eq!(assigned[1]["detail"], "Security Analyst: bob");
}

fn item<'a>(checklist: &'a Value, id: &str) -> &'a Value {
    checklist["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap()
}

#[test]
fn the_checklist_shows_what_is_done_with_its_proof_and_what_is_left() {
    let env = env();
    let fresh = json(hikeshi(&env.data, &["incident", "checklist", "1", "--json"]));
    assert_eq!(fresh["done"], 0);
    assert_eq!(fresh["state"], "detected");
    assert_eq!(fresh["csf_function"], "Detect");
    assert_eq!(fresh["total"].as_u64().unwrap() as usize, fresh["items"].as_array().unwrap().len());

    // Records made through the real store APIs.
    let mut store = open(&env.data);
    let ban_id = store
        .write(|b| {
            insert_ban(
                b.conn(),
                &NewBan {
                    address: "203.0.113.7".parse().unwrap(),
                    incident_id: Some(1),
                    reason: "ssh-bruteforce",
                    backend: "nftables",
                    created_at: at("2026-03-01T10:01:00Z"),
                    expires_at: None,
                    offence: 1,
                },
            )
            .map_err(|e| hikeshi::store::StoreError::Sqlite {
                path: PathBuf::from("test"),
                source: e,
            })
        })
        .unwrap();
    let t = at("2026-03-01T10:30:00Z");
    let admin = Actor::person("alice").unwrap();
    store
        .add_evidence(
            IncidentId(1),
            t,
            &admin,
            Evidence::new("hikeshi accounts --root /", 0, b"{}"),
        )
        .unwrap();
    store
        .add_evidence(
            IncidentId(1),
            t,
            &admin,
            Evidence::new("hikeshi verify --incident 1", 0, b"ok"),
        )
        .unwrap();
    store
        .add_evidence(IncidentId(1), t, &admin, Evidence::new("hikeshi fimcheck", 0, b"not fim"))
        .unwrap();
    store
        .add_timeline(
            IncidentId(1),
            t,
            &Actor::Automatic,
            TimelineKind::AlertSent,
            "mail to ir@example.com",
        )
        .unwrap();
    drop(store);
    ok(hikeshi(&env.data, &["incident", "assign", "1", "incident-manager", "alice"]));

    let c = json(hikeshi(&env.data, &["incident", "checklist", "1", "--json"]));
    let done: Vec<&str> = c["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["done"] == true)
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        done,
        [
            "detect.alert",
            "analysis.assign",
            "contain.block",
            "eradicate.accounts",
            "recover.validate"
        ]
    );
    let block = item(&c, "contain.block");
    assert_eq!(block["proof"]["source"], "ban");
    assert_eq!(block["proof"]["reference"], ban_id);
    assert_eq!(block["role"], "System Administrator");
    assert_eq!(item(&c, "eradicate.accounts")["proof"]["source"], "evidence");
    assert!(item(&c, "recover.integrity")["proof"].is_null(), "`hikeshi fimcheck` is not fim");
    assert_eq!(item(&c, "post.root_cause")["done"], false);

    let text = stdout(&ok(hikeshi(&env.data, &["incident", "checklist", "1"])));
    assert!(text.contains("5 of 12 steps done"), "{text}");
    assert!(text.contains("[x] contain.block"), "{text}");
    assert!(text.contains(&format!("done: ban {ban_id}")), "{text}");
    assert!(text.contains("[ ] recover.integrity"), "{text}");
    assert!(text.contains("left: hikeshi fim check --incident 1"), "{text}");
    assert!(text.contains("CSF 2.0: Detect"), "{text}");

    ok(hikeshi(&env.data, &["incident", "close", "1", "--root-cause", "r", "--preventive", "p"]));
    let c = json(hikeshi(&env.data, &["incident", "checklist", "1", "--json"]));
    assert_eq!(item(&c, "post.root_cause")["done"], true);
    assert_eq!(item(&c, "post.preventive")["done"], true);
    assert_eq!(c["csf_function"], "Identify");
}
