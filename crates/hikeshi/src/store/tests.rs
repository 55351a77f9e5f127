//! Tests of the incident database against real SQLite files.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use hikeshi_core::incident::{
    chain_evidence_digest, Actor, Campaign, CampaignKey, Change, Evidence, EvidenceCap, IncidentId,
    Limits, Observation, State, TimelineKind, EMPTY_EVIDENCE_DIGEST,
};
use hikeshi_core::Severity;
use jiff::Timestamp;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn t(minute: u32) -> Timestamp {
    at(&format!("2026-03-01T10:{minute:02}:00Z"))
}

fn key(addr: &str) -> CampaignKey {
    CampaignKey::for_addr(addr.parse().unwrap())
}

fn obs(addr: &str, sev: Severity, minute: u32, attempts: u64, users: &[&str]) -> Observation {
    let mut o = Observation::new(key(addr), "ssh-bruteforce", sev, t(minute), attempts);
    o.users = users.iter().map(|u| u.to_string()).collect();
    o.hosts = vec!["web1".into()];
    o
}

fn lines(from: u64, n: u64) -> Vec<Evidence> {
    (from..from + n)
        .map(|i| {
            let text = format!("Mar  1 10:00:00 web1 sshd[1]: Failed password for root from 203.0.113.7 port {i} ssh2");
            Evidence::new("/var/log/auth.log", i * 100, text.as_bytes())
        })
        .collect()
}

fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    (dir, path)
}

fn with_limits(limits: Limits) -> StoreOptions {
    StoreOptions { limits, ..StoreOptions::default() }
}

fn count(store: &Store, table: &str) -> i64 {
    store.conn().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn migrations_run_from_empty_and_reopening_is_idempotent() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    assert_eq!(schema::user_version(store.conn()).unwrap(), schema::latest_version(MIGRATIONS));
    assert_eq!(count(&store, "incidents"), 0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the database holds evidence: private");
    let journal: String = store.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(journal, "wal");
    let fk: i64 = store.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    drop(store);

    let mut store = Store::open(&path).unwrap();
    store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &["root"])).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.list_incidents(&IncidentFilter::default()).unwrap().len(), 1);
}

static WITH_OUTBOX: &[Migration] = &[
    MIGRATIONS[0],
    Migration {
        version: 2,
        name: "alert_outbox",
        sql: "CREATE TABLE alert_outbox (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    },
];

/// A build that knows only the first migration.
static ONLY_FIRST: &[Migration] = &[MIGRATIONS[0]];

fn open_v1(path: &Path) -> Result<Store, StoreError> {
    Store::open_with(path, StoreOptions { migrations: ONLY_FIRST, ..Default::default() })
}

static BROKEN_SECOND: &[Migration] = &[
    MIGRATIONS[0],
    Migration {
        version: 2,
        name: "broken",
        sql: "CREATE TABLE half (x INTEGER); CREATE TABLE oops (;",
    },
];

#[test]
fn further_migrations_apply_in_order_and_a_failing_one_applies_nothing() {
    let (_dir, path) = temp();
    drop(open_v1(&path).unwrap());

    let err =
        Store::open_with(&path, StoreOptions { migrations: BROKEN_SECOND, ..Default::default() })
            .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Migration { version: 2, .. }), "{err:?}");
    assert!(msg.contains(&path.display().to_string()) && msg.contains("broken"), "{msg}");
    let store = open_v1(&path).unwrap();
    assert_eq!(schema::user_version(store.conn()).unwrap(), 1);
    let half: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'half'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(half, 0, "the failed step left nothing behind");
    drop(store);

    let store =
        Store::open_with(&path, StoreOptions { migrations: WITH_OUTBOX, ..Default::default() })
            .unwrap();
    assert_eq!(schema::user_version(store.conn()).unwrap(), 2);
    store.conn().execute("INSERT INTO alert_outbox (body) VALUES ('x')", []).unwrap();
    drop(store);

    // Opened again by a build that knows only version 1: refused, not misread.
    let err = open_v1(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 2, known: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("newer hikeshi"), "{err}");
}

#[test]
fn another_programs_database_is_refused() {
    let (_dir, path) = temp();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE moz_places (id INTEGER);").unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("no hikeshi schema"), "{err}");
}

#[test]
fn further_attempts_from_the_same_source_update_the_open_incident() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let (a, c1) = store
        .open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &["root"]))
        .unwrap();
    let (b, c2) = store
        .open_or_update_incident(obs("203.0.113.7", Severity::Medium, 3, 4, &["admin", "root"]))
        .unwrap();
    let (other, c3) =
        store.open_or_update_incident(obs("198.51.100.9", Severity::Medium, 1, 1, &[])).unwrap();
    assert_eq!((c1, c2, c3), (Change::Opened, Change::Updated, Change::Opened));
    assert_eq!(a, b);
    assert_ne!(a, other);

    let detail = store.get_incident(a).unwrap();
    let c = &detail.incident.campaign;
    assert_eq!(c.attempts, 9);
    assert_eq!((c.first_seen, c.last_seen), (t(0), t(3)));
    assert_eq!(c.users.kept.iter().collect::<Vec<_>>(), ["admin", "root"]);
    assert_eq!(c.state, State::Detected);
    assert_eq!(detail.incident.phase, "Detection and Analysis");
    // One timeline row for the opening, none per further attempt.
    let kinds: Vec<_> = detail.timeline.iter().map(|e| e.entry.kind).collect();
    assert_eq!(kinds, [TimelineKind::Detected]);
    assert_eq!(store.find_open_incident(&key("203.0.113.7")).unwrap(), Some(a));
    assert_eq!(store.find_open_incident(&key("192.0.2.1")).unwrap(), None);

    // IPv6 addresses of one /64 are one campaign.
    let (v6a, _) =
        store.open_or_update_incident(obs("2001:db8:1:2::1", Severity::Low, 0, 1, &[])).unwrap();
    let (v6b, change) =
        store.open_or_update_incident(obs("2001:db8:1:2::ffff", Severity::Low, 1, 1, &[])).unwrap();
    assert_eq!((v6a, change), (v6b, Change::Updated));
}

#[test]
fn a_higher_severity_is_an_escalation_with_a_timeline_entry() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    let mut success = obs("203.0.113.7", Severity::Critical, 9, 1, &["deploy"]);
    success.rule = "success-after-failures".into();
    let (same, change) = store.open_or_update_incident(success).unwrap();
    assert_eq!(same, id);
    assert_eq!(change, Change::Escalated { from: Severity::Medium, to: Severity::Critical });
    let (_, lower) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Low, 10, 1, &[])).unwrap();
    assert_eq!(lower, Change::Updated);

    let detail = store.get_incident(id).unwrap();
    assert_eq!(detail.incident.campaign.severity, Severity::Critical);
    assert_eq!(detail.incident.campaign.rule, "ssh-bruteforce", "the rule that opened it");
    assert!(detail.incident.campaign.rules.kept.contains("success-after-failures"));
    let escalations: Vec<_> =
        detail.timeline.iter().filter(|e| e.entry.kind == TimelineKind::Escalated).collect();
    assert_eq!(escalations.len(), 1);
    assert!(escalations[0].entry.detail.contains("medium → critical"), "{:?}", escalations[0]);
    assert_eq!(escalations[0].entry.at, t(9));
}

#[test]
fn the_user_set_is_bounded_and_counts_what_it_drops() {
    let (_dir, path) = temp();
    let limits = Limits { max_users: 50, ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("user{i:03}")).collect();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 200, &[]);
    o.users = names;
    let (id, _) = store.open_or_update_incident(o).unwrap();
    let users = store.get_incident(id).unwrap().incident.campaign.users;
    assert_eq!(users.kept.len(), 50);
    assert_eq!(users.omitted, 150);

    // Across batches and a reopen, the kept names and the count persist.
    let mut other = Store::open_with(&path, with_limits(limits)).unwrap();
    other
        .open_or_update_incident(obs("203.0.113.7", Severity::Medium, 1, 2, &["user000", "zzz"]))
        .unwrap();
    drop(other);
    store
        .open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 1, &["zzz", "yyy"]))
        .unwrap();
    let users = Store::open(&path).unwrap().get_incident(id).unwrap().incident.campaign.users;
    assert_eq!(users.kept.len(), 50);
    assert!(users.kept.contains("user000") && !users.kept.contains("zzz"));
    assert_eq!(users.omitted, 153);
}

#[test]
fn names_seen_in_later_batches_are_kept_up_to_the_cap() {
    let (_dir, path) = temp();
    let limits = Limits { max_users: 3, ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Low, 0, 1, &["a"])).unwrap();
    store.open_or_update_incident(obs("203.0.113.7", Severity::Low, 1, 2, &["b", "a"])).unwrap();
    let mut batch = store.batch().unwrap();
    batch.open_or_update_incident(obs("203.0.113.7", Severity::Low, 2, 1, &["c"])).unwrap();
    batch.open_or_update_incident(obs("203.0.113.7", Severity::Low, 3, 1, &["d"])).unwrap();
    batch.commit().unwrap();
    drop(store);
    let c = Store::open(&path).unwrap().get_incident(id).unwrap().incident.campaign;
    assert_eq!(c.users.kept.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(c.users.omitted, 1);
    assert_eq!(c.hosts.kept.iter().collect::<Vec<_>>(), ["web1"]);
    assert_eq!(c.rules.kept.iter().collect::<Vec<_>>(), ["ssh-bruteforce"]);
}

#[test]
fn evidence_cap_keeps_first_and_latest_and_the_digest_covers_every_line() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(10), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let all = lines(0, 120);
    let mut id = None;
    // Three batches, several observations each, as a scan would.
    for chunk in all.chunks(40) {
        let mut batch = store.batch().unwrap();
        for part in chunk.chunks(7) {
            let mut o = obs("203.0.113.7", Severity::Medium, 0, part.len() as u64, &[]);
            o.evidence = part.to_vec();
            id = Some(batch.open_or_update_incident(o).unwrap().0);
        }
        batch.commit().unwrap();
    }
    let detail = store.get_incident(id.unwrap()).unwrap();
    let c = &detail.incident.campaign;
    assert_eq!(c.evidence_lines, 120);
    let expected =
        all.iter().fold(EMPTY_EVIDENCE_DIGEST, |d, e| chain_evidence_digest(&d, &e.sha256));
    assert_eq!(c.evidence_digest, expected, "the digest covers dropped lines too");
    let seqs: Vec<u64> = detail.evidence.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 115, 116, 117, 118, 119]);
    for kept in &detail.evidence {
        assert_eq!(kept.evidence, all[kept.seq as usize], "line {} intact", kept.seq);
    }
    // Packed: one chunk of records per incident per batch, not one row
    // per line; every line has its record.
    assert_eq!(count(&store, "evidence_lines"), 3);
    let recorded: i64 =
        store.conn().query_row("SELECT sum(lines) FROM evidence_lines", [], |r| r.get(0)).unwrap();
    assert_eq!(recorded, 120);
    assert_eq!(count(&store, "evidence_latest"), 1, "older rolling chunks were deleted");
    assert_eq!(count(&store, "evidence") + count(&store, "evidence_recent"), 0);
}

#[test]
fn many_latest_lines_in_one_commit_are_written_alike() {
    // Past 256 KiB of evidence text in one commit (a scan's end of file),
    // it is compressed on a thread of its own: the same rows result, for
    // every incident, and the older rolling chunks still go.
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(3_000), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let long = |addr: &str, from: u64, n: u64| -> Vec<Evidence> {
        (from..from + n)
            .map(|i| {
                let text = format!("Mar  1 10:00:00 web1 sshd[{i}]: Failed password for {} from {addr} port {i} ssh2", "x".repeat(150));
                Evidence::new("/var/log/auth.log", i * 300, text.as_bytes())
            })
            .collect()
    };
    let addrs = ["203.0.113.7", "203.0.113.8", "203.0.113.9"];
    let mut written: Vec<(IncidentId, Vec<Evidence>)> = Vec::new();
    for round in 0..2u64 {
        let mut batch = store.batch().unwrap();
        for (n, addr) in addrs.iter().enumerate() {
            let lines = long(addr, round * 2_000, 2_000);
            let mut o = obs(addr, Severity::Medium, 0, lines.len() as u64, &[]);
            o.evidence = lines.clone();
            let id = batch.open_or_update_incident(o).unwrap().0;
            if round == 0 {
                written.push((id, lines));
            } else {
                written[n].1.extend(lines);
            }
        }
        batch.commit().unwrap();
    }
    for (id, all) in &written {
        let detail = store.get_incident(*id).unwrap();
        let seqs: Vec<u64> = detail.evidence.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (0..1_500).chain(2_500..4_000).collect();
        assert_eq!(seqs, expected);
        for kept in &detail.evidence {
            assert_eq!(kept.evidence, all[kept.seq as usize], "line {} intact", kept.seq);
        }
        let records = store.evidence_records(*id).unwrap();
        assert_eq!(records.len(), 4_000, "every line has its record");
        for (record, e) in records.iter().zip(all) {
            assert_eq!((record.offset, record.sha256), (e.offset, e.sha256));
            let kept = record.seq < 1_500 || record.seq >= 2_500;
            assert_eq!(record.text_kept, kept, "line {}", record.seq);
        }
        assert_eq!(detail.incident.campaign.evidence_digest, digest_of_records(&records));
    }
    let latest_rows: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM evidence_latest WHERE last_seq < 2500", [], |r| r.get(0))
        .unwrap();
    assert_eq!(latest_rows, 0, "chunks that left the window were deleted");
}

#[test]
fn the_line_that_escalates_is_kept_even_beyond_the_cap() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(4), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 50, &[]);
    o.evidence = lines(0, 50);
    let (id, _) = store.open_or_update_incident(o).unwrap();
    let mut success = obs("203.0.113.7", Severity::Critical, 5, 1, &[]);
    success.evidence =
        vec![Evidence::new("/var/log/auth.log", 9999, b"Accepted password for root")];
    store.open_or_update_incident(success).unwrap();
    let mut later = obs("203.0.113.7", Severity::Medium, 6, 5, &[]);
    later.evidence = lines(100, 5);
    store.open_or_update_incident(later).unwrap();

    let detail = store.get_incident(id).unwrap();
    assert_eq!(detail.incident.campaign.evidence_lines, 56);
    let accepted =
        detail.evidence.iter().find(|e| e.evidence.line == b"Accepted password for root");
    assert_eq!(accepted.map(|e| e.seq), Some(50));
}

#[test]
fn explicit_evidence_is_always_kept_and_in_the_timeline() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(0), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 3, &[]);
    o.evidence = lines(0, 3);
    let (id, _) = store.open_or_update_incident(o).unwrap();
    let ev = Evidence::new("/etc/ssh/sshd_config", 0, b"PermitRootLogin yes");
    let alice = Actor::person("alice").unwrap();
    assert_eq!(store.add_evidence(id, t(30), &alice, ev.clone()).unwrap(), 3);
    let detail = store.get_incident(id).unwrap();
    assert_eq!(detail.evidence.len(), 1);
    assert_eq!(detail.evidence[0].evidence, ev);
    assert_eq!(detail.incident.campaign.evidence_lines, 4);
    let last = detail.timeline.last().unwrap();
    assert_eq!((last.entry.kind, &last.entry.actor), (TimelineKind::EvidenceAdded, &alice));
    assert!(last.entry.detail.contains(&ev.sha256_hex()));
}

#[test]
fn state_changes_are_recorded_and_closing_frees_the_campaign() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::High, 0, 5, &[])).unwrap();
    let bob = Actor::person("bob").unwrap();
    store.set_state(id, State::Contained, t(1), &Actor::Automatic).unwrap();
    store.set_state(id, State::Closed, t(2), &bob).unwrap();
    let err = store.set_state(id, State::Analysing, t(3), &bob).unwrap_err();
    assert!(matches!(err, StoreError::Transition { .. }), "{err:?}");

    let detail = store.get_incident(id).unwrap();
    assert_eq!(detail.incident.campaign.state, State::Closed);
    let changes: Vec<_> = detail
        .timeline
        .iter()
        .filter(|e| e.entry.kind == TimelineKind::StateChanged)
        .map(|e| (e.entry.at, e.entry.actor.clone(), e.entry.detail.clone()))
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].0, t(2));
    assert_eq!(changes[1].1, bob);
    assert!(changes[1].2.starts_with("contained → closed"), "{}", changes[1].2);

    // The same attacker again: a new incident.
    let (again, change) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 9, 1, &[])).unwrap();
    assert_eq!(change, Change::Opened);
    assert_ne!(again, id);
    let open =
        store.list_incidents(&IncidentFilter { open_only: true, ..Default::default() }).unwrap();
    assert_eq!(open.iter().map(|i| i.id).collect::<Vec<_>>(), [again]);
    let closed = store
        .list_incidents(&IncidentFilter { state: Some(State::Closed), ..Default::default() })
        .unwrap();
    assert_eq!(closed.iter().map(|i| i.id).collect::<Vec<_>>(), [id]);
}

#[test]
fn closing_and_reopening_within_one_batch() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let mut batch = store.batch().unwrap();
    let (first, _) =
        batch.open_or_update_incident(obs("203.0.113.7", Severity::High, 0, 5, &[])).unwrap();
    batch.set_state(first, State::Closed, t(1), &Actor::Automatic).unwrap();
    let (second, change) =
        batch.open_or_update_incident(obs("203.0.113.7", Severity::High, 2, 5, &[])).unwrap();
    batch.commit().unwrap();
    assert_eq!(change, Change::Opened);
    assert_ne!(first, second);
    assert_eq!(store.get_incident(first).unwrap().incident.campaign.state, State::Closed);
    assert_eq!(store.get_incident(second).unwrap().incident.campaign.attempts, 5);
}

#[test]
fn a_missing_incident_is_a_clear_error() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let err = store.get_incident(IncidentId(42)).unwrap_err();
    assert!(matches!(err, StoreError::NoSuchIncident(IncidentId(42))));
    assert_eq!(err.to_string(), "there is no incident 42");
    let err = store
        .add_timeline(IncidentId(42), t(0), &Actor::Automatic, TimelineKind::Note, "x")
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchIncident(_)), "{err:?}");
    assert!(matches!(
        store.set_state(IncidentId(42), State::Closed, t(0), &Actor::Automatic),
        Err(StoreError::NoSuchIncident(_))
    ));
}

#[test]
fn a_failure_mid_batch_leaves_no_half_written_incident() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(100), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    store.write(|b| b.set_cursor("file:/var/log/auth.log", b"offset=0")).unwrap();
    // Inject a failure: the second evidence chunk of the batch fails, after
    // incidents, timeline rows and a first chunk were written.
    store
        .conn()
        .execute_batch(
            "CREATE TEMP TRIGGER inject BEFORE INSERT ON main.evidence_lines \
             WHEN (SELECT count(*) FROM main.evidence_lines) >= 1 \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let result: Result<(), StoreError> = store.write(|b| {
        let mut o = obs("203.0.113.7", Severity::Medium, 0, 3, &["root"]);
        o.evidence = lines(0, 3);
        b.open_or_update_incident(o)?;
        b.add_timeline(IncidentId(1), t(0), &Actor::Automatic, TimelineKind::AlertSent, "mail")?;
        let mut o = obs("198.51.100.9", Severity::Medium, 0, 3, &["admin"]);
        o.evidence = lines(3, 3);
        b.open_or_update_incident(o)?;
        b.set_cursor("file:/var/log/auth.log", b"offset=600")?;
        Ok(())
    });
    let err = result.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    for table in ["incidents", "timeline", "evidence_lines", "evidence_latest", "audit_log"] {
        assert_eq!(count(&store, table), 0, "{table} after rollback");
    }
    assert_eq!(store.cursor("file:/var/log/auth.log").unwrap().as_deref(), Some(&b"offset=0"[..]));

    // A batch dropped without commit (a crash, a `?` in the caller) too.
    store.conn().execute_batch("DROP TRIGGER temp.inject").unwrap();
    {
        let mut batch = store.batch().unwrap();
        batch.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 3, &[])).unwrap();
        batch.set_cursor("file:/var/log/auth.log", b"offset=999").unwrap();
    }
    assert_eq!(count(&store, "incidents"), 0);
    assert_eq!(store.cursor("file:/var/log/auth.log").unwrap().as_deref(), Some(&b"offset=0"[..]));

    // And the store still works afterwards.
    store
        .write(|b| {
            b.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 3, &[]))?;
            b.set_cursor("file:/var/log/auth.log", b"offset=300")
        })
        .unwrap();
    assert_eq!(count(&store, "incidents"), 1);
    assert_eq!(
        store.cursor("file:/var/log/auth.log").unwrap().as_deref(),
        Some(&b"offset=300"[..])
    );
}

#[test]
fn timeline_and_evidence_rows_are_append_only() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 1, &[]);
    o.evidence = lines(0, 1);
    store.open_or_update_incident(o).unwrap();
    for sql in [
        "UPDATE timeline SET detail = 'forged'",
        "DELETE FROM timeline",
        "UPDATE evidence_lines SET data = x'00'",
        "DELETE FROM evidence_lines",
    ] {
        let err = store.conn().execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn a_locked_database_is_a_clear_error_within_the_timeout() {
    let (_dir, path) = temp();
    drop(Store::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let timeout = Duration::from_millis(300);
    let mut store =
        Store::open_with(&path, StoreOptions { busy_timeout: timeout, ..Default::default() })
            .unwrap();
    let started = Instant::now();
    let err =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 1, &[])).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("locked"), "{msg}");
    assert!(waited >= timeout / 2, "gave up after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(10), "waited {waited:?} for a {timeout:?} timeout");

    holder.execute_batch("COMMIT").unwrap();
    store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 1, &[])).unwrap();
}

#[test]
fn opening_a_database_locked_in_rollback_mode_is_a_clear_error() {
    // A database not yet in WAL mode (as another tool may leave it), held
    // by an exclusive transaction: even opening must wait, then say so.
    let (_dir, path) = temp();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE; CREATE TABLE x (y);")
        .unwrap();
    let err = Store::open_with(
        &path,
        StoreOptions { busy_timeout: Duration::from_millis(200), ..Default::default() },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn random_bytes_are_a_clear_error_naming_the_file() {
    let (_dir, path) = temp();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, junk).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
}

#[test]
fn a_truncated_database_is_a_clear_error_naming_the_file() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 2000, &[]);
    o.evidence = lines(0, 2000);
    store.open_or_update_incident(o).unwrap();
    drop(store); // checkpoints the WAL into the file
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 64 * 1024, "{len}");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 3).unwrap();
    drop(file);

    let outcome = Store::open(&path).and_then(|store| {
        store.get_incident(IncidentId(1))?;
        store.quick_check()
    });
    let err = outcome.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_directory_in_place_of_the_file_is_a_clear_error() {
    let (dir, _) = temp();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn hostile_names_and_lines_round_trip_byte_for_byte() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let hostile = "root\u{1b}[2J\u{7}\r\n\u{202e}from 192.0.2.1\0";
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 1, &[hostile]);
    o.hosts = vec!["web\u{1b}]0;pwned\u{7}".into()];
    o.evidence = vec![Evidence::new("/var/log/auth.log", 0, b"Failed for \xff\xfe\x1b[31m x")];
    let (id, _) = store.open_or_update_incident(o.clone()).unwrap();
    let detail = store.get_incident(id).unwrap();
    assert!(detail.incident.campaign.users.kept.contains(hostile));
    assert!(detail.incident.campaign.hosts.kept.contains(&o.hosts[0]));
    assert_eq!(detail.evidence[0].evidence, o.evidence[0]);
    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["evidence"][0]["line_hex"], "4661696c656420666f7220fffe1b5b33316d2078");
}

#[test]
fn another_writer_between_batches_is_seen() {
    // The store keeps incidents in memory between batches; a write by any
    // other connection (the daemon, `hikeshi incident close`) must win.
    let (_dir, path) = temp();
    let mut scanner = Store::open(&path).unwrap();
    let mut other = Store::open(&path).unwrap();
    let (id, _) =
        scanner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    other.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 1, 3, &[])).unwrap();
    scanner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 2, &[])).unwrap();
    assert_eq!(scanner.get_incident(id).unwrap().incident.campaign.attempts, 10);

    other.set_state(id, State::Closed, t(3), &Actor::person("lead").unwrap()).unwrap();
    let (next, change) =
        scanner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 4, 1, &[])).unwrap();
    assert_eq!(change, Change::Opened);
    assert_ne!(next, id);
    let closed = scanner.get_incident(id).unwrap().incident.campaign;
    assert_eq!((closed.state, closed.attempts), (State::Closed, 10));
}

/// Commits an empty batch: the store catches up with other writers.
fn catch_up(store: &mut Store) {
    store.batch().unwrap().commit().unwrap();
}

#[test]
fn another_writer_makes_the_cache_forget_only_the_incidents_it_changed() {
    // The daemon's owner keeps thousands of incidents in memory while its
    // containment worker moves one at a time to `contained`.
    let (_dir, path) = temp();
    let mut owner = Store::open(&path).unwrap();
    let mut worker = Store::open(&path).unwrap();
    let (banned, _) =
        owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    let (other, _) =
        owner.open_or_update_incident(obs("203.0.113.8", Severity::Medium, 0, 5, &[])).unwrap();
    assert!(owner.cache.holds(banned) && owner.cache.holds(other));

    worker.set_state(banned, State::Contained, t(1), &Actor::Automatic).unwrap();
    catch_up(&mut owner);
    assert!(!owner.cache.holds(banned), "changed by the worker: forgotten");
    assert!(owner.cache.holds(other), "untouched: still cached");
    // Read back as the worker left it, and the owner's update keeps it.
    owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 1, &[])).unwrap();
    let c = owner.get_incident(banned).unwrap().incident.campaign;
    assert_eq!((c.state, c.attempts), (State::Contained, 6));

    // Writes that touch no incident (bans, the outbox) forget nothing.
    worker
        .conn()
        .execute_batch("CREATE TABLE unrelated (x); INSERT INTO unrelated VALUES (1)")
        .unwrap();
    catch_up(&mut owner);
    assert!(owner.cache.holds(banned) && owner.cache.holds(other));
}

#[test]
fn an_incident_another_writer_opens_is_found_not_opened_twice() {
    let (_dir, path) = temp();
    let mut owner = Store::open(&path).unwrap();
    let mut scanner = Store::open(&path).unwrap();
    // The owner looked the campaign up and found nothing open.
    let mut batch = owner.batch().unwrap();
    assert_eq!(batch.find_open_incident(&key("203.0.113.9")).unwrap(), None);
    batch.commit().unwrap();
    let (opened, _) =
        scanner.open_or_update_incident(obs("203.0.113.9", Severity::Medium, 0, 5, &[])).unwrap();
    let (id, change) =
        owner.open_or_update_incident(obs("203.0.113.9", Severity::Medium, 1, 1, &[])).unwrap();
    assert_eq!((id, change), (opened, Change::Updated));
    assert_eq!(owner.get_incident(id).unwrap().incident.campaign.attempts, 6);
}

#[test]
fn a_cache_that_missed_pruned_changes_starts_afresh() {
    let (_dir, path) = temp();
    let mut owner = Store::open(&path).unwrap();
    let mut other = Store::open(&path).unwrap();
    let (id, _) =
        owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    other.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 1, 3, &[])).unwrap();
    // As if many other changes had come and gone since the owner looked.
    other
        .conn()
        .execute_batch(
            "DELETE FROM incident_changes WHERE seq < (SELECT max(seq) FROM incident_changes)",
        )
        .unwrap();
    other.open_or_update_incident(obs("203.0.113.8", Severity::Medium, 1, 3, &[])).unwrap();
    catch_up(&mut owner);
    assert!(!owner.cache.holds(id), "everything forgotten");
    owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 1, &[])).unwrap();
    assert_eq!(owner.get_incident(id).unwrap().incident.campaign.attempts, 9);
}

#[test]
fn a_changed_incident_this_build_cannot_read_empties_the_cache() {
    // A row edited by hand (or by a newer hikeshi) with a subject kind
    // this build does not know: the cache cannot tell which campaign it
    // was, so it forgets everything rather than guess.
    let (_dir, path) = temp();
    let mut owner = Store::open(&path).unwrap();
    let other = Store::open(&path).unwrap();
    let (kept, _) =
        owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    let (edited, _) =
        owner.open_or_update_incident(obs("203.0.113.8", Severity::Medium, 0, 5, &[])).unwrap();
    other
        .conn()
        .execute("UPDATE incidents SET subject_kind = 'martian\u{1b}' WHERE id = ?1", [edited.0])
        .unwrap();
    catch_up(&mut owner);
    assert!(!owner.cache.holds(kept) && !owner.cache.holds(edited));
    // The readable incident goes on as before.
    let (id, change) =
        owner.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 1, 1, &[])).unwrap();
    assert_eq!((id, change), (kept, Change::Updated));
}

#[test]
fn the_list_of_changed_incidents_is_pruned_to_its_newest_rows() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    store
        .conn()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 140000) \
             INSERT INTO incident_changes (incident_id) SELECT 1 FROM n",
        )
        .unwrap();
    let newest: i64 =
        store.conn().query_row("SELECT max(seq) FROM incident_changes", [], |r| r.get(0)).unwrap();
    catch_up(&mut store);
    let (rows, oldest, after): (i64, i64, i64) = store
        .conn()
        .query_row("SELECT count(*), min(seq), max(seq) FROM incident_changes", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(after, newest, "the newest row stays: sequence numbers never go back");
    assert_eq!(rows, 65_536);
    assert_eq!(oldest, newest - 65_535);
}

#[test]
fn a_rolled_back_batch_leaves_nothing_in_memory_either() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[])).unwrap();
    {
        let mut batch = store.batch().unwrap();
        batch.open_or_update_incident(obs("203.0.113.7", Severity::High, 1, 100, &[])).unwrap();
    }
    store.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 1, &[])).unwrap();
    let c = store.get_incident(id).unwrap().incident.campaign;
    assert_eq!((c.attempts, c.severity), (6, Severity::Medium));
}

/// The digest an incident's records give when folded in order.
fn digest_of_records(records: &[EvidenceRecord]) -> hikeshi_core::incident::Sha256Digest {
    records.iter().fold(EMPTY_EVIDENCE_DIGEST, |d, r| chain_evidence_digest(&d, &r.sha256))
}

#[test]
fn every_line_has_a_record_with_its_file_offset_and_sha256() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(4), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let mut all = lines(0, 30);
    // Lines from another file in the middle (a rotated log, the journal).
    for (i, e) in all.iter_mut().enumerate().skip(10).take(5) {
        *e = Evidence::new("/var/log/auth.log.1", i as u64, &e.line);
    }
    let mut id = None;
    for chunk in all.chunks(12) {
        let mut batch = store.batch().unwrap();
        let mut o = obs("203.0.113.7", Severity::Medium, 0, chunk.len() as u64, &[]);
        o.evidence = chunk.to_vec();
        id = Some(batch.open_or_update_incident(o).unwrap().0);
        batch.commit().unwrap();
    }
    let id = id.unwrap();
    let records = store.evidence_records(id).unwrap();
    assert_eq!(records.len(), 30);
    for (record, e) in records.iter().zip(&all) {
        assert_eq!((&record.file, record.offset, record.sha256), (&e.file, e.offset, e.sha256));
    }
    let kept: Vec<u64> = records.iter().filter(|r| r.text_kept).map(|r| r.seq).collect();
    assert_eq!(kept, [0, 1, 28, 29]);
    let c = store.incident(id).unwrap().campaign;
    assert_eq!(digest_of_records(&records), c.evidence_digest, "the records prove the digest");
}

#[test]
fn attempts_and_attachments_in_one_batch_keep_consecutive_records() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(2), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let all = lines(0, 6);
    let doc = Evidence::new("hikeshi accounts --root /", 0, b"{\"findings\": []}");
    let id = store
        .write(|b| {
            let mut o = obs("203.0.113.7", Severity::Medium, 0, 2, &[]);
            o.evidence = all[..2].to_vec();
            let (id, _) = b.open_or_update_incident(o)?;
            b.record_attempt(id, t(1), Some("web1"), Some("root"), all[2].as_ref(), None)?;
            assert_eq!(b.add_evidence(id, t(2), &Actor::Automatic, doc.clone())?, 3);
            for e in &all[3..] {
                b.record_attempt(id, t(3), Some("web2"), Some("admin"), e.as_ref(), None)?;
            }
            Ok::<_, StoreError>(id)
        })
        .unwrap();
    let detail = store.get_incident(id).unwrap();
    let shown: Vec<(u64, &[u8])> =
        detail.evidence.iter().map(|e| (e.seq, &e.evidence.line[..])).collect();
    assert_eq!(shown, [(0, &all[0].line[..]), (3, &doc.line[..]), (6, &all[5].line[..])]);
    let records = store.evidence_records(id).unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(records[3].file, doc.file);
    assert_eq!(digest_of_records(&records), detail.incident.campaign.evidence_digest);
    let c = &detail.incident.campaign;
    assert_eq!(c.hosts.kept.iter().collect::<Vec<_>>(), ["web1", "web2"]);
    assert!(c.users.kept.contains("root") && c.users.kept.contains("admin"));
}

#[test]
fn a_latest_line_that_does_not_match_its_record_is_an_error() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(2), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let mut o = obs("203.0.113.7", Severity::Medium, 0, 5, &[]);
    o.evidence = lines(0, 5);
    let (id, _) = store.open_or_update_incident(o).unwrap();
    // The rolling table is not append-only: someone rewrites a text.
    let (chunk, data): (i64, Vec<u8>) = store
        .conn()
        .query_row("SELECT id, data FROM evidence_latest", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let forged = data.iter().map(|&b| if b == b'7' { b'8' } else { b }).collect::<Vec<u8>>();
    assert_ne!(forged, data);
    store.conn().execute("UPDATE evidence_latest SET data = ?1", [forged]).unwrap();
    let err = store.get_incident(id).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::BadValue { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("evidence_latest chunk {chunk}")) && msg.contains("SHA-256"),
        "{msg}"
    );
}

#[test]
fn a_database_from_before_version_5_migrates_and_keeps_its_evidence() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(10), ..Limits::default() };
    let all = lines(0, 80);
    let write = |store: &mut Store, part: &[Evidence]| {
        let mut id = None;
        for batch_lines in part.chunks(20) {
            let mut batch = store.batch().unwrap();
            let mut o = obs("203.0.113.7", Severity::Medium, 0, batch_lines.len() as u64, &[]);
            o.evidence = batch_lines.to_vec();
            id = Some(batch.open_or_update_incident(o).unwrap().0);
            batch.commit().unwrap();
        }
        id.unwrap()
    };
    // Written by a build at schema version 4: the legacy tables.
    let old = StoreOptions { limits, migrations: &MIGRATIONS[..4], ..StoreOptions::default() };
    let id = write(&mut Store::open_with(&path, old).unwrap(), &all[..40]);

    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    assert_eq!(schema::user_version(store.conn()).unwrap(), schema::latest_version(MIGRATIONS));
    let seqs = |store: &Store| -> Vec<u64> {
        store.get_incident(id).unwrap().evidence.iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs(&store), [0, 1, 2, 3, 4, 35, 36, 37, 38, 39], "legacy lines readable");
    assert_eq!(count(&store, "evidence_recent"), 1);

    assert_eq!(write(&mut store, &all[40..]), id, "the same incident goes on");
    let detail = store.get_incident(id).unwrap();
    assert_eq!(seqs(&store), [0, 1, 2, 3, 4, 75, 76, 77, 78, 79]);
    for kept in &detail.evidence {
        assert_eq!(kept.evidence, all[kept.seq as usize], "line {} intact", kept.seq);
    }
    assert_eq!(count(&store, "evidence_recent"), 0, "the window left the legacy chunks");
    let c = &detail.incident.campaign;
    let expected =
        all.iter().fold(EMPTY_EVIDENCE_DIGEST, |d, e| chain_evidence_digest(&d, &e.sha256));
    assert_eq!((c.evidence_lines, c.evidence_digest), (80, expected));
    // Records: the legacy kept lines, then every line from the migration on.
    let records: Vec<u64> = store.evidence_records(id).unwrap().iter().map(|r| r.seq).collect();
    let mut expected_records: Vec<u64> = (0..5).collect();
    expected_records.extend(40..80);
    assert_eq!(records, expected_records);
    let report = store.audit_verify(None).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
}

#[test]
fn attempts_keep_users_and_hosts_up_to_the_cap_and_count_every_sighting_beyond() {
    let (_dir, path) = temp();
    let limits = Limits { max_users: 3, max_hosts: 1, ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let line = lines(0, 1).remove(0);
    let id = store
        .write(|b| {
            let (id, _) =
                b.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 1, &["a"]))?;
            for (user, host) in [("b", "web1"), ("b", "web1"), ("d", "web2"), ("d", "web2")] {
                b.record_attempt(id, t(1), Some(host), Some(user), line.as_ref(), None)?;
            }
            // A finding between attempts adds a user the attempts then see.
            b.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 2, 1, &["c"]))?;
            for user in ["c", "e", "a", "e"] {
                b.record_attempt(id, t(3), Some("web1"), Some(user), line.as_ref(), None)?;
            }
            Ok::<_, StoreError>(id)
        })
        .unwrap();
    let c = store.get_incident(id).unwrap().incident.campaign;
    assert_eq!(c.users.kept.iter().collect::<Vec<_>>(), ["a", "b", "d"]);
    // "c" twice (the finding's, an attempt's), "e" twice: every sighting
    // beyond the cap counts.
    assert_eq!(c.users.omitted, 4);
    assert_eq!(c.hosts.kept.iter().collect::<Vec<_>>(), ["web1"]);
    assert_eq!(c.hosts.omitted, 2, "web2 seen twice");
    assert_eq!(c.attempts, 10);
}

#[test]
fn past_its_name_budget_the_cache_lets_names_go_and_keeps_the_incidents() {
    let (_dir, path) = temp();
    // Room for 40 names: incidents of 20 users and a host each go over it
    // at the second one, well before the count cap.
    let options = StoreOptions::default().long_running(1024, 1_000, 40 * 64);
    let mut store = Store::open_with(&path, options).unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let open = |store: &mut Store, addrs: &[&str]| {
        let mut batch = store.batch().unwrap();
        let ids: Vec<IncidentId> = addrs
            .iter()
            .map(|a| {
                batch.open_or_update_incident(obs(a, Severity::Medium, 0, 5, &users)).unwrap().0
            })
            .collect();
        batch.commit().unwrap();
        ids
    };
    let first = open(&mut store, &["203.0.113.7"])[0];
    assert!(store.cache.holds_names(first), "21 names: within the budget, kept");
    let second = open(&mut store, &["203.0.113.8"])[0];
    assert!(store.cache.holds_names(second), "the incident used last keeps its names");
    assert!(!store.cache.holds_names(first), "the one used longest ago lets them go");
    assert!(store.cache.holds(first), "but stays cached");
    let ids = open(&mut store, &["203.0.113.9", "203.0.113.10"]);
    assert!(!store.cache.holds_names(second), "oldest first");
    assert_eq!(ids.iter().filter(|id| store.cache.holds_names(**id)).count(), 1);
    assert_eq!(store.cache.name_bytes(), 21 * 64, "until a quarter of the budget is free");
    assert_eq!(store.cache.len(), 4);
    // Let go, not lost: what needs them reads them back.
    let mut batch = store.batch().unwrap();
    assert_eq!(batch.campaign(first).unwrap().users.kept.len(), 20);
    batch.commit().unwrap();
}

#[test]
fn the_incident_cache_is_bounded_by_its_count_too() {
    let (_dir, path) = temp();
    let options = StoreOptions::default().long_running(1024, 2, 1 << 20);
    let mut store = Store::open_with(&path, options).unwrap();
    let open = |store: &mut Store, addrs: &[&str]| {
        let mut batch = store.batch().unwrap();
        for a in addrs {
            batch.open_or_update_incident(obs(a, Severity::Medium, 0, 5, &["root"])).unwrap();
        }
        batch.commit().unwrap();
    };
    open(&mut store, &["203.0.113.7", "203.0.113.8"]);
    assert_eq!(store.cache.len(), 2);
    open(&mut store, &["203.0.113.9"]);
    assert_eq!(store.cache.len(), 1, "over the count: the incidents this batch did not use go");
    open(&mut store, &["203.0.113.10", "203.0.113.11", "203.0.113.12"]);
    assert_eq!(store.cache.len(), 0, "one batch's own incidents over the count: emptied");
    let mut batch = store.batch().unwrap();
    let id = batch.find_open_incident(&key("203.0.113.8")).unwrap().expect("still open");
    assert_eq!(batch.campaign(id).unwrap().users.kept.len(), 1);
    batch.commit().unwrap();
}

/// One step of [`names_are_the_same_with_or_without_them_in_memory`].
#[derive(Debug, Clone)]
enum NameStep {
    Attempt {
        incident: usize,
        host: Option<u8>,
        user: Option<u8>,
    },
    Finding {
        incident: usize,
        users: Vec<u8>,
    },
    /// Something that needs the whole sets (an alert) mid-batch.
    Read {
        incident: usize,
    },
    Commit,
}

fn name_step() -> impl proptest::strategy::Strategy<Value = NameStep> {
    use proptest::prelude::*;
    let name = || proptest::option::weighted(0.9, 0u8..12);
    prop_oneof![
        8 => (0usize..3, name(), name())
            .prop_map(|(incident, host, user)| NameStep::Attempt { incident, host, user }),
        1 => (0usize..3, proptest::collection::vec(0u8..12, 0..4))
            .prop_map(|(incident, users)| NameStep::Finding { incident, users }),
        1 => (0usize..3).prop_map(|incident| NameStep::Read { incident }),
        2 => Just(NameStep::Commit),
    ]
}

/// Runs `steps` on three incidents; returns them as stored, and whether the
/// audit trail verifies.
fn run_name_steps(path: &Path, options: StoreOptions, steps: &[NameStep]) -> Vec<Campaign> {
    let mut store = Store::open_with(path, options).unwrap();
    let addrs = ["203.0.113.7", "203.0.113.8", "2001:db8::1"];
    let ids: Vec<IncidentId> = store
        .write(|b| {
            addrs
                .iter()
                .map(|a| Ok(b.open_or_update_incident(obs(a, Severity::Low, 0, 1, &["u0"]))?.0))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .unwrap();
    let line = lines(0, 1).remove(0);
    let mut batch = store.batch().unwrap();
    for step in steps {
        match step {
            NameStep::Attempt { incident, host, user } => {
                let host = host.map(|h| format!("host{h}"));
                let user = user.map(|u| format!("u{u}"));
                batch
                    .record_attempt(
                        ids[*incident],
                        t(1),
                        host.as_deref(),
                        user.as_deref(),
                        line.as_ref(),
                        None,
                    )
                    .unwrap();
            }
            NameStep::Finding { incident, users } => {
                let users: Vec<String> = users.iter().map(|u| format!("u{u}")).collect();
                let users: Vec<&str> = users.iter().map(String::as_str).collect();
                batch
                    .open_or_update_incident(obs(addrs[*incident], Severity::Low, 2, 1, &users))
                    .unwrap();
            }
            NameStep::Read { incident } => {
                batch.campaign(ids[*incident]).unwrap();
            }
            NameStep::Commit => {
                batch.commit().unwrap();
                batch = store.batch().unwrap();
            }
        }
    }
    batch.commit().unwrap();
    let report = store.audit_verify(None).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
    ids.iter().map(|id| store.incident(*id).unwrap().campaign).collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Attempts, findings and reads across batches give the same incidents
    /// (names kept, sightings beyond the caps, audit trail) whether the
    /// cache keeps the name sets in memory or lets them go after every
    /// batch and checks names against the database.
    #[test]
    fn names_are_the_same_with_or_without_them_in_memory(
        steps in proptest::collection::vec(name_step(), 0..60)
    ) {
        let limits = Limits { max_users: 5, max_hosts: 2, ..Limits::default() };
        let (_a, in_memory) = temp();
        let (_b, let_go) = temp();
        let expected = run_name_steps(&in_memory, with_limits(limits), &steps);
        let tight = with_limits(limits).long_running(1024, 1_000, 0);
        let got = run_name_steps(&let_go, tight, &steps);
        proptest::prop_assert_eq!(got, expected);
    }
}

#[test]
fn a_spray_against_an_incident_read_back_keeps_the_first_names_up_to_the_cap() {
    let (_dir, path) = temp();
    let limits = Limits { max_users: 300, ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Low, 0, 1, &["root"])).unwrap();
    drop(store);
    // Read back from the database: more distinct names in one batch than
    // wait to be checked, so its sets are read in part-way.
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let line = lines(0, 1).remove(0);
    store
        .write(|b| {
            for i in 0..1_000 {
                let user = format!("user{i:04}");
                b.record_attempt(id, t(1), Some("web1"), Some(&user), line.as_ref(), None)?;
                b.record_attempt(id, t(1), Some("web1"), Some("root"), line.as_ref(), None)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let c = store.incident(id).unwrap().campaign;
    assert_eq!(c.users.kept.len(), 300);
    assert!(c.users.kept.contains("root") && c.users.kept.contains("user0298"));
    assert!(!c.users.kept.contains("user0299"), "first seen, first kept");
    assert_eq!(c.users.omitted, 701, "every sighting beyond the cap");
    assert_eq!(c.hosts.kept.iter().collect::<Vec<_>>(), ["web1"]);
    assert_eq!(c.attempts, 2_001);
}

#[test]
fn a_name_row_of_an_unknown_kind_is_a_clear_error_when_the_names_are_read() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let (id, _) =
        store.open_or_update_incident(obs("203.0.113.7", Severity::Low, 0, 1, &["root"])).unwrap();
    store
        .conn()
        .execute(
            "INSERT INTO incident_names (incident_id, kind, name) VALUES (?1, 'us\u{7}er', 'x')",
            [id.0],
        )
        .unwrap();
    drop(store);
    let mut store = Store::open(&path).unwrap();
    let err = store.get_incident(id).unwrap_err().to_string();
    assert!(err.contains("unknown kind") && err.contains(DB_FILE_NAME), "{err}");
    // Read back lazily, the incident takes attempts (their names wait);
    // what needs all its names gets the error, and nothing is written.
    let names_before = count(&store, "incident_names");
    let line = lines(0, 1).remove(0);
    let mut batch = store.batch().unwrap();
    batch.record_attempt(id, t(1), Some("web1"), Some("admin"), line.as_ref(), None).unwrap();
    let err = batch.campaign(id).unwrap_err().to_string();
    assert!(err.contains("unknown kind"), "{err}");
    drop(batch);
    assert_eq!(count(&store, "incident_names"), names_before);
    assert_eq!(store.list_incidents(&IncidentFilter::default()).unwrap_err().to_string(), err);
}

/// An account incident and a source incident, each given `all` as
/// attempts in one batch, the account's records pointing to the
/// source's; returns (source, account).
fn shared_lines(store: &mut Store, all: &[Evidence]) -> (IncidentId, IncidentId) {
    store
        .write(|b| {
            let (source, _) =
                b.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 5, &[]))?;
            let account = Observation::new(
                CampaignKey::for_user("root"),
                "account_attack",
                Severity::Medium,
                t(0),
                5,
            );
            let (account, _) = b.open_or_update_incident(account)?;
            for line in all {
                let at = b.record_attempt(
                    source,
                    t(1),
                    Some("web1"),
                    Some("root"),
                    line.as_ref(),
                    None,
                )?;
                assert_eq!(at.incident, source);
                b.record_attempt(account, t(1), Some("web1"), None, line.as_ref(), Some(at))?;
            }
            Ok::<_, StoreError>((source, account))
        })
        .unwrap()
}

fn chunk_bytes(store: &Store, id: IncidentId) -> i64 {
    store
        .conn()
        .query_row(
            "SELECT sum(length(data)) FROM evidence_lines WHERE incident_id = ?1",
            [id.0],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_line_counted_in_two_incidents_has_its_digest_stored_once_and_proven_in_both() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(6), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let all = lines(0, 2_000);
    let (source, account) = shared_lines(&mut store, &all);
    for id in [source, account] {
        let records = store.evidence_records(id).unwrap();
        assert_eq!(records.len(), 2_000, "incident {id}: every line has its record");
        for (record, e) in records.iter().zip(&all) {
            assert_eq!((&record.file, record.offset, record.sha256), (&e.file, e.offset, e.sha256));
        }
        let detail = store.get_incident(id).unwrap();
        assert_eq!(digest_of_records(&records), detail.incident.campaign.evidence_digest);
        // The latest lines' texts are checked against the digests found
        // through the references.
        let shown: Vec<u64> = detail.evidence.iter().map(|e| e.seq).collect();
        assert_eq!(shown, [0, 1, 2, 1_997, 1_998, 1_999], "incident {id}");
    }
    // The account's records point to the source's: a few bytes a line
    // where the source's hold a 32-byte digest.
    let (source_bytes, account_bytes) = (chunk_bytes(&store, source), chunk_bytes(&store, account));
    assert!(source_bytes > 2_000 * 32, "{source_bytes}");
    assert!(account_bytes < 2_000 * 10, "{account_bytes}");
    let report = store.audit_verify(None).unwrap();
    assert!(report.broken.is_none(), "{report:?}");
}

#[test]
fn a_store_at_schema_6_repeats_the_digest() {
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(6), ..Limits::default() };
    let options = StoreOptions { migrations: &MIGRATIONS[..6], ..with_limits(limits) };
    let mut store = Store::open_with(&path, options).unwrap();
    let all = lines(0, 500);
    let (source, account) = shared_lines(&mut store, &all);
    assert!(chunk_bytes(&store, account) > 500 * 32);
    let records = store.evidence_records(account).unwrap();
    assert_eq!(
        records.iter().map(|r| r.sha256).collect::<Vec<_>>(),
        all.iter().map(|e| e.sha256).collect::<Vec<_>>()
    );
    drop(store);
    // Opening with this build migrates it; the old records still read.
    let store = Store::open(&path).unwrap();
    assert_eq!(schema::user_version(store.conn()).unwrap(), schema::latest_version(MIGRATIONS));
    assert_eq!(store.evidence_records(source).unwrap().len(), 500);
}

#[test]
fn a_reference_that_leads_nowhere_or_to_another_line_is_a_clear_error() {
    let (_dir, path) = temp();
    let mut store = Store::open(&path).unwrap();
    let all = lines(0, 3);
    let (source, _) = shared_lines(&mut store, &all);
    // Chunks written by hand, as damage (or a forger) would: one line of
    // a new incident pointing to `to`, read from `offset`.
    let forged = |store: &mut Store, to: RecordedLine, offset: u64| {
        let id = store
            .open_or_update_incident(obs("198.51.100.9", Severity::Medium, 0, 1, &[]))
            .unwrap()
            .0;
        let mut chunk = evidence::LinesChunk::default();
        chunk.push(0, "/var/log/auth.log", offset, evidence::Content::SameAs(to));
        store
            .conn()
            .execute(
                "INSERT INTO evidence_lines (incident_id, first_seq, last_seq, lines, data) \
                 VALUES (?1, 1000, 1000, 1, ?2)",
                rusqlite::params![id.0, chunk.data],
            )
            .unwrap();
        let err = store.evidence_records(id).unwrap_err().to_string();
        store.set_state(id, State::Closed, t(9), &Actor::Automatic).unwrap();
        err
    };
    let nowhere = forged(&mut store, RecordedLine { incident: IncidentId(999), seq: 0 }, 0);
    assert!(nowhere.contains("refers to incident 999 line 0, which has no record"), "{nowhere}");
    let elsewhere = forged(&mut store, RecordedLine { incident: source, seq: 1 }, 0);
    assert!(
        elsewhere.contains("which has a record of another line (/var/log/auth.log:100)"),
        "{elsewhere}"
    );
    assert!(elsewhere.contains("evidence_lines chunk"), "{elsewhere}");
}

#[test]
fn a_chunk_written_early_leaves_nothing_behind_for_a_large_commit() {
    // Lines of 100 KiB: every kept one fills a chunk, written at once, so
    // all of incident a's texts are written before the commit; b's latest
    // lines make the commit large enough to compress its texts apart.
    // Nothing empty may be left to compress or write: a chunk that filled
    // up on an incident's last line of a large commit used to crash it.
    let (_dir, path) = temp();
    let limits = Limits { evidence: EvidenceCap::from_max_lines(8), ..Limits::default() };
    let mut store = Store::open_with(&path, with_limits(limits)).unwrap();
    let big = |from: u64, n: u64| -> Vec<Evidence> {
        (from..from + n)
            .map(|i| {
                let mut text = format!("Failed password for root port {i} ").into_bytes();
                text.resize(100 << 10, b'x');
                Evidence::new("/var/log/auth.log", i << 20, &text)
            })
            .collect()
    };
    let (a_lines, b_lines) = (big(0, 4), big(100, 8));
    let (a, b) = store
        .write(|batch| {
            let (a, _) =
                batch.open_or_update_incident(obs("203.0.113.7", Severity::Medium, 0, 1, &[]))?;
            let (b, _) =
                batch.open_or_update_incident(obs("203.0.113.8", Severity::Medium, 0, 1, &[]))?;
            for (id, lines) in [(a, &a_lines), (b, &b_lines)] {
                for line in lines {
                    batch.record_attempt(id, t(1), Some("web1"), None, line.as_ref(), None)?;
                }
            }
            Ok::<_, StoreError>((a, b))
        })
        .unwrap();
    let shown = |id| -> Vec<Vec<u8>> {
        let detail = store.get_incident(id).unwrap();
        detail.evidence.into_iter().map(|e| e.evidence.line).collect()
    };
    assert_eq!(shown(a), a_lines.iter().map(|e| e.line.clone()).collect::<Vec<_>>());
    assert_eq!(shown(b), b_lines.iter().map(|e| e.line.clone()).collect::<Vec<_>>());
    let empty: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM evidence_lines WHERE lines = 0", [], |r| r.get(0))
        .unwrap();
    assert_eq!(empty, 0);
}
