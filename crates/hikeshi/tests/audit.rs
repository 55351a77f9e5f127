//! `hikeshi audit verify|head` against a store written through the real
//! APIs, then tampered with directly in SQLite, as an intruder with the
//! file would (dropping the triggers that stand in the way).

use std::path::PathBuf;
use std::process::Output;

use hikeshi::contain::store::{insert_ban, remove_ban, NewBan};
use hikeshi::notify::outbox::{enqueue, NewMessage};
use hikeshi::notify::Channel;
use hikeshi::store::{self, Store, StoreError, StoreOptions};
use hikeshi_core::incident::{Actor, CampaignKey, Evidence, IncidentId, Observation, TimelineKind};
use hikeshi_core::lifecycle::Role;
use hikeshi_core::Severity;
use jiff::Timestamp;
use rusqlite::Connection;
use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::hikeshi;

#[path = "support/data_dir.rs"]
mod data_dir;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite { path: PathBuf::from("test"), source: e }
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
}

impl Env {
    fn db(&self) -> PathBuf {
        store::db_path(&self.data)
    }

    fn store(&self) -> Store {
        data_dir::open_capped(&self.data, 4)
    }

    /// A connection like the `sqlite3` shell's: without hikeshi's functions.
    fn intruder(&self) -> Connection {
        Connection::open(self.db()).unwrap()
    }

    fn verify(&self, extra: &[&str]) -> (Option<i32>, Value) {
        let mut args = vec!["audit", "verify", "--json"];
        args.extend_from_slice(extra);
        let out = hikeshi(&self.data, &args);
        (out.status.code(), serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }

    fn head(&self) -> String {
        let out = hikeshi(&self.data, &["audit", "head"]);
        assert!(out.status.success(), "{out:?}");
        stdout(&out).trim().to_string()
    }
}

/// A store with a normal history: a scan-like series of batches (two
/// attackers, evidence beyond the cap so rolling chunks come and go), a
/// ban applied then lifted, an alert queued and retried, notes, an
/// assignment, a close.
fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let env = Env { data, _tmp: tmp };
    let mut store = env.store();
    let base = at("2026-03-01T10:00:00Z");
    for batch in 0..5i64 {
        store
            .write(|b| {
                for (n, addr) in ["203.0.113.7", "198.51.100.9"].iter().enumerate() {
                    for i in 0..3i64 {
                        let t = base
                            .checked_add(jiff::SignedDuration::from_secs(batch * 60 + i))
                            .unwrap();
                        let sev = if batch == 3 && n == 0 {
                            Severity::Critical
                        } else {
                            Severity::Medium
                        };
                        let mut o = Observation::new(
                            CampaignKey::for_addr(addr.parse().unwrap()),
                            "ssh-bruteforce",
                            sev,
                            t,
                            1,
                        );
                        o.users = vec![format!("user{batch}{i}")];
                        o.evidence = vec![Evidence::new(
                            "/var/log/auth.log",
                            (batch * 10 + i) as u64,
                            format!("Failed password for user{batch}{i} from {addr}").as_bytes(),
                        )];
                        b.open_or_update_incident(o)?;
                    }
                }
                b.set_cursor("/var/log/auth.log", &batch.to_le_bytes())
            })
            .unwrap();
    }
    let t = at("2026-03-01T11:00:00Z");
    store
        .write(|b| {
            insert_ban(
                b.conn(),
                &NewBan {
                    address: "203.0.113.7".parse().unwrap(),
                    incident_id: Some(1),
                    reason: "ssh-bruteforce",
                    backend: "nftables",
                    created_at: t,
                    expires_at: None,
                    offence: 1,
                },
            )
            .map_err(sql)?;
            b.add_timeline(
                IncidentId(1),
                t,
                &Actor::Automatic,
                TimelineKind::Banned,
                "203.0.113.7",
            )?;
            b.set_state(
                IncidentId(1),
                hikeshi_core::incident::State::Contained,
                t,
                &Actor::Automatic,
            )
        })
        .unwrap();
    // Containment's own transaction on the store connection.
    remove_ban(store.conn_mut(), "203.0.113.7".parse().unwrap(), t, "lifted").unwrap();
    let message = NewMessage {
        incident_id: Some(1),
        alert_key: Some("incident-1-opened".into()),
        channel: Channel::Stdout,
        recipient: "-".into(),
        subject: "hikeshi: incident 1".into(),
        body: "203.0.113.7 is attacking".into(),
    };
    let id = enqueue(store.conn(), &message, t).unwrap().unwrap();
    store
        .conn()
        .execute("UPDATE alert_outbox SET attempts = 1, last_error = 'refused' WHERE id = ?1", [id])
        .unwrap();
    let alice = Actor::person("alice").unwrap();
    store
        .write(|b| {
            b.add_note(IncidentId(2), t, &alice, "scanner, no success").map_err(|e| sql_any(&e))?;
            b.assign(IncidentId(2), t, &alice, Role::IncidentManager, "alice")
                .map_err(|e| sql_any(&e))?;
            b.close_incident(IncidentId(2), t, &alice, "exposed port", "firewall")
                .map_err(|e| sql_any(&e))
        })
        .unwrap();
    store
        .add_evidence(
            IncidentId(1),
            t,
            &alice,
            Evidence::new("hikeshi accounts --root /", 0, b"{}"),
        )
        .unwrap();
    env
}

fn sql_any(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::BadValue { path: PathBuf::from("test"), what: e.to_string() }
}

fn broken(env: &Env) -> Value {
    let (code, report) = env.verify(&[]);
    assert_eq!(code, Some(1), "verify must fail: {report}");
    report["broken"].clone()
}

#[test]
fn a_normal_history_verifies() {
    let env = env();
    let (code, report) = env.verify(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["broken"].is_null());
    let entries = report["entries"].as_u64().unwrap();
    // Every timeline and evidence row, every incident write, the ban and its
    // lifting, the alert and its retry are entries.
    assert!(entries > 40, "{report}");
    let c = env.intruder();
    let per_table = |t: &str| -> i64 {
        c.query_row("SELECT count(*) FROM audit_log WHERE tbl = ?1", [t], |r| r.get(0)).unwrap()
    };
    let timeline: i64 = c.query_row("SELECT count(*) FROM timeline", [], |r| r.get(0)).unwrap();
    assert_eq!(per_table("timeline"), timeline);
    assert_eq!(per_table("bans"), 2, "insert and lift");
    assert_eq!(per_table("alert_outbox"), 2, "queued and retried");
    assert!(per_table("evidence_latest") > 0 && per_table("evidence_lines") > 0);
    let deletes: i64 = c
        .query_row("SELECT count(*) FROM audit_log WHERE action = 'delete'", [], |r| r.get(0))
        .unwrap();
    assert!(deletes > 0, "rolling evidence chunks that left the window are chained deletions");
    // Incident rows: one entry per incident per batch, not per line.
    assert!(per_table("incidents") <= 2 * 5 + 6, "{}", per_table("incidents"));
    let text = stdout(&hikeshi(&env.data, &["audit", "verify"]));
    assert!(text.starts_with("audit trail ok"), "{text}");
}

#[test]
fn the_head_changes_with_every_write_and_a_kept_head_verifies() {
    let env = env();
    let first = env.head();
    assert_eq!(first.len(), 64);
    let out = hikeshi(&env.data, &["incident", "note", "1", "more", "--by", "bob"]);
    assert!(out.status.success(), "{out:?}");
    let second = env.head();
    assert_ne!(first, second);
    let out =
        hikeshi(&env.data, &["incident", "advance", "1", "--to", "eradicated", "--by", "bob"]);
    assert!(out.status.success(), "{out:?}");
    let third = env.head();
    assert_ne!(second, third);
    assert_eq!(env.verify(&["--head", &first]).0, Some(0));
    assert_eq!(env.verify(&["--head", &third]).0, Some(0));
    let json: Value =
        serde_json::from_slice(&hikeshi(&env.data, &["audit", "head", "--json"]).stdout).unwrap();
    assert_eq!(json["digest"], third);
    let out = hikeshi(&env.data, &["audit", "verify", "--head", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_empty_database_has_an_all_zero_head_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = hikeshi(&data, &["audit", "head"]);
    assert_eq!(stdout(&out).trim(), "0".repeat(64));
    assert_eq!(hikeshi(&data, &["audit", "verify"]).status.code(), Some(0));
}

#[test]
fn an_edited_timeline_detail_is_named() {
    let env = env();
    let c = env.intruder();
    // The append-only trigger stops a plain edit...
    assert!(c.execute("UPDATE timeline SET detail = 'nothing' WHERE id = 2", []).is_err());
    // ...so the intruder drops it.
    c.execute_batch(
        "DROP TRIGGER timeline_no_update; UPDATE timeline SET detail = 'nothing' WHERE id = 2",
    )
    .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "edited");
    assert_eq!(b["what"], "timeline row 2");
    let text = stdout(&hikeshi(&env.data, &["audit", "verify"]));
    assert!(text.contains("timeline row 2 was edited"), "{text}");
}

#[test]
fn an_edited_ban_and_incident_are_named() {
    let env = env();
    let c = env.intruder();
    // Without hikeshi's functions the audit trigger fails: drop it.
    assert!(c.execute("UPDATE bans SET reason = 'manual'", []).is_err());
    c.execute_batch("DROP TRIGGER bans_audit_update; UPDATE bans SET reason = 'manual'").unwrap();
    assert_eq!(broken(&env)["what"], "bans row 1");
    let env = self::env();
    env.intruder()
        .execute_batch(
            "DROP TRIGGER incidents_audit_update; UPDATE incidents SET attempts = 1 WHERE id = 1",
        )
        .unwrap();
    let b = broken(&env);
    assert_eq!((b["kind"].as_str(), b["what"].as_str()), (Some("edited"), Some("incidents row 1")));
}

#[test]
fn a_deleted_timeline_row_is_named() {
    let env = env();
    let c = env.intruder();
    assert!(c.execute("DELETE FROM timeline WHERE id = 3", []).is_err());
    c.execute_batch("DROP TRIGGER timeline_no_delete; DELETE FROM timeline WHERE id = 3").unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "deleted");
    assert_eq!(b["what"], "timeline row 3");
}

#[test]
fn an_inserted_timeline_row_is_named() {
    let env = env();
    let c = env.intruder();
    let insert = "INSERT INTO timeline (incident_id, at, actor, kind, detail) \
                  VALUES (1, '2026-03-01T12:00:00Z', 'person:mallory', 'note', 'all fine')";
    assert!(c.execute(insert, []).is_err(), "the audit trigger needs hikeshi's functions");
    c.execute_batch("DROP TRIGGER timeline_audit_insert").unwrap();
    c.execute(insert, []).unwrap();
    let id = c.last_insert_rowid();
    let b = broken(&env);
    assert_eq!(b["kind"], "inserted");
    assert_eq!(b["what"], format!("timeline row {id}"));
}

#[test]
fn swapped_timeline_rows_are_reordered() {
    let env = env();
    let c = env.intruder();
    c.execute_batch(
        "DROP TRIGGER timeline_no_update;
         CREATE TEMP TABLE t AS SELECT * FROM timeline WHERE id IN (1, 2);
         UPDATE timeline SET incident_id = (SELECT incident_id FROM t WHERE id = 2),
             at = (SELECT at FROM t WHERE id = 2), actor = (SELECT actor FROM t WHERE id = 2),
             kind = (SELECT kind FROM t WHERE id = 2), detail = (SELECT detail FROM t WHERE id = 2)
             WHERE id = 1;
         UPDATE timeline SET incident_id = (SELECT incident_id FROM t WHERE id = 1),
             at = (SELECT at FROM t WHERE id = 1), actor = (SELECT actor FROM t WHERE id = 1),
             kind = (SELECT kind FROM t WHERE id = 1), detail = (SELECT detail FROM t WHERE id = 1)
             WHERE id = 2;",
    )
    .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "reordered", "{b}");
    assert_eq!(b["what"], "timeline row 1");
}

fn last_seq(c: &Connection) -> i64 {
    c.query_row("SELECT max(seq) FROM audit_log", [], |r| r.get(0)).unwrap()
}

#[test]
fn an_edited_audit_entry_is_named() {
    let env = env();
    let c = env.intruder();
    assert!(c
        .execute("UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 5", [])
        .is_err());
    c.execute_batch(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET at = '2020-01-01T00:00:00Z' WHERE seq = 5",
    )
    .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "edited");
    assert_eq!(b["seq"], 5);
}

#[test]
fn a_deleted_audit_entry_is_named() {
    let env = env();
    let c = env.intruder();
    c.execute_batch("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 7")
        .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "deleted");
    assert_eq!(b["seq"], 8);
    assert!(b["detail"].as_str().unwrap().contains("entry 7 is missing"), "{b}");
}

#[test]
fn an_inserted_audit_entry_is_named() {
    let env = env();
    let c = env.intruder();
    // A forged entry slipped in after entry 10: the later ones renumbered.
    c.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET seq = -seq WHERE seq > 10;
         UPDATE audit_log SET seq = -seq + 1 WHERE seq < 0;
         INSERT INTO audit_log (seq, at, action, tbl, row_id, row_digest, prev, digest)
             SELECT 11, at, 'insert', 'timeline', 999, row_digest, digest, randomblob(32)
             FROM audit_log WHERE seq = 10;",
    )
    .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "inserted", "{b}");
    assert_eq!(b["seq"], 11);
}

#[test]
fn swapped_audit_entries_are_reordered() {
    let env = env();
    let c = env.intruder();
    c.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         CREATE TEMP TABLE e AS SELECT * FROM audit_log WHERE seq IN (4, 5);",
    )
    .unwrap();
    // Keep the numbers in place, swap what they say.
    c.execute_batch(
        "UPDATE audit_log SET at = (SELECT at FROM e WHERE seq = 5), action = (SELECT action FROM e WHERE seq = 5),
             tbl = (SELECT tbl FROM e WHERE seq = 5), row_id = (SELECT row_id FROM e WHERE seq = 5),
             row_digest = (SELECT row_digest FROM e WHERE seq = 5), prev = (SELECT prev FROM e WHERE seq = 5),
             digest = (SELECT digest FROM e WHERE seq = 5) WHERE seq = 4;
         UPDATE audit_log SET at = (SELECT at FROM e WHERE seq = 4), action = (SELECT action FROM e WHERE seq = 4),
             tbl = (SELECT tbl FROM e WHERE seq = 4), row_id = (SELECT row_id FROM e WHERE seq = 4),
             row_digest = (SELECT row_digest FROM e WHERE seq = 4), prev = (SELECT prev FROM e WHERE seq = 4),
             digest = (SELECT digest FROM e WHERE seq = 4) WHERE seq = 5;",
    )
    .unwrap();
    let b = broken(&env);
    assert_eq!(b["kind"], "reordered", "{b}");
    assert_eq!(b["seq"], 4);
}

#[test]
fn a_cut_tail_is_found_only_against_the_kept_head() {
    let env = env();
    let kept = env.head();
    // The intruder's note, then they remove it and its entry: the chain
    // that remains is whole, and every row matches it.
    let out = hikeshi(&env.data, &["incident", "note", "1", "mallory was here", "--by", "mallory"]);
    assert!(out.status.success());
    let kept_after = env.head();
    let c = env.intruder();
    let last = last_seq(&c);
    c.execute_batch(&format!(
        "DROP TRIGGER audit_log_no_delete; DROP TRIGGER timeline_no_delete;
         DELETE FROM timeline WHERE detail = 'mallory was here';
         DELETE FROM audit_log WHERE seq = {last};"
    ))
    .unwrap();
    assert_eq!(env.verify(&[]).0, Some(0), "invisible without the kept head");
    assert_eq!(env.verify(&["--head", &kept]).0, Some(0), "the older head is still there");
    let (code, report) = env.verify(&["--head", &kept_after]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["broken"]["kind"], "truncated");
    let text = stdout(&hikeshi(&env.data, &["audit", "verify", "--head", &kept_after]));
    assert!(text.contains("truncated") && text.contains(&kept_after), "{text}");
}

#[test]
fn rows_written_before_the_audit_trail_are_adopted() {
    // A database at schema version 3 (before the audit trail) with rows.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = store::db_path(&data);
    let old = &store::MIGRATIONS[..3];
    {
        let mut s =
            Store::open_with(&path, StoreOptions { migrations: old, ..StoreOptions::default() })
                .unwrap();
        let mut o = Observation::new(
            CampaignKey::for_addr("192.0.2.1".parse().unwrap()),
            "ssh-bruteforce",
            Severity::Low,
            at("2026-03-01T10:00:00Z"),
            1,
        );
        o.users = vec!["root".into()];
        o.evidence = vec![Evidence::new("/var/log/auth.log", 0, b"x")];
        s.open_or_update_incident(o).unwrap();
    }
    let s = Store::open(&path).unwrap();
    let report = s.audit_verify(None).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
    assert_eq!(report.entries, report.rows, "one adopt entry per existing row");
    assert!(s.audit_entries().unwrap().iter().all(|e| e.action == "adopt"));
}

#[test]
fn a_removed_user_name_is_found_per_incident() {
    let env = env();
    env.intruder()
        .execute("DELETE FROM incident_names WHERE incident_id = 1 AND kind = 'user' AND name = 'user00'", [])
        .unwrap();
    let b = broken(&env);
    assert_eq!(
        (b["kind"].as_str(), b["what"].as_str()),
        (Some("edited"), Some("incident_names row 1"))
    );
}

#[test]
fn a_real_scan_then_lifecycle_commands_verify_and_tampering_after_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("auth.log");
    let mut text = String::new();
    for i in 0..60u32 {
        let addr = if i % 2 == 0 { "203.0.113.5" } else { "198.51.100.66" };
        text.push_str(&format!(
            "Jan 15 10:{:02}:{:02} server1 sshd[{}]: Failed password for invalid user u{i} from {addr} port {} ssh2\n",
            i / 60,
            i % 60,
            1000 + i,
            40000 + i
        ));
    }
    std::fs::write(&log, text).unwrap();
    let out = hikeshi(&data, &["scan", log.to_str().unwrap()]);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{out:?}");
    let list: Value =
        serde_json::from_slice(&hikeshi(&data, &["incident", "list", "--json"]).stdout).unwrap();
    assert!(!list.as_array().unwrap().is_empty(), "the scan opened incidents");
    for args in [
        &["incident", "advance", "1", "--to", "analysing", "--by", "alice"][..],
        &["incident", "note", "1", "checked the source", "--by", "alice"],
        &[
            "incident",
            "close",
            "1",
            "--root-cause",
            "exposed ssh",
            "--preventive",
            "vpn",
            "--by",
            "alice",
        ],
    ] {
        let out = hikeshi(&data, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = hikeshi(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let c = Connection::open(store::db_path(&data)).unwrap();
    c.execute_batch(
        "DROP TRIGGER incidents_audit_update; UPDATE incidents SET severity = 'low' WHERE id = 1",
    )
    .unwrap();
    let out = hikeshi(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("incidents row 1 was edited"), "{}", stdout(&out));
}
