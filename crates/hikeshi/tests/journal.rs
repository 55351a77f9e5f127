//! The journal source on real journal files: records are written in
//! systemd's Journal Export Format, turned into journal files by
//! `systemd-journal-remote`, and read back through `journalctl --file` /
//! `--directory` by `hikeshi::sources::journal`. Needs no root (the files
//! are ours); needs systemd-journal-remote and journalctl (CI has both).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hikeshi::sources::journal::{
    parse_record_of, JournalConfig, JournalCursorStore, JournalError, JournalHandle, JournalSource,
};
use hikeshi::sources::{Incoming, Payload, SourceStats};
use hikeshi_core::event::{Kind, Outcome, Source};
use hikeshi_core::parse::{LineParser, Origin, ParseOptions, Parsed};
use jiff::Timestamp;

#[path = "support/journal_export.rs"]
mod journal_export;
use journal_export::{write_journal, Entry};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("journal")).unwrap();
        Env { dir }
    }

    fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    fn journal_file(&self, name: &str) -> PathBuf {
        self.journal_dir().join(name)
    }

    fn file_source(&self, name: &str) -> JournalSource {
        let config = JournalConfig { file: Some(self.journal_file(name)), ..Default::default() };
        JournalSource::new(&config, SourceStats::new()).unwrap()
    }

    fn dir_source(&self) -> JournalSource {
        let config = JournalConfig { directory: Some(self.journal_dir()), ..Default::default() };
        JournalSource::new(&config, SourceStats::new()).unwrap()
    }
}

fn read_all(source: &JournalSource, after: Option<&str>) -> Vec<Incoming> {
    let mut items = Vec::new();
    source.read_once(after, |item| items.push(item)).unwrap();
    items
}

fn messages(items: &[Incoming]) -> Vec<String> {
    items
        .iter()
        .map(|item| match &item.payload {
            Payload::Record { message, .. } => String::from_utf8_lossy(message).into_owned(),
            other => panic!("not a record: {other:?}"),
        })
        .collect()
}

fn cursor_of(item: &Incoming) -> String {
    match &item.payload {
        Payload::Record { cursor: Some(c), .. } => c.clone(),
        other => panic!("no cursor: {other:?}"),
    }
}

fn parse(items: &[Incoming]) -> Vec<Parsed> {
    let opts = ParseOptions::new(
        hikeshi_core::event::Mode::Normal,
        jiff::tz::TimeZone::UTC,
        "2026-01-16T00:00:00Z".parse().unwrap(),
    );
    let mut parser = LineParser::new(opts);
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let record = parse_record_of(&item.payload).unwrap();
        parser.push_record(record, Origin { line: n as u64 + 1, offset: 0 }, &mut out);
    }
    parser.finish(&mut out);
    out
}

const FAILED_ADMIN: &str =
    "Failed password for invalid user admin from 203.0.113.5 port 55214 ssh2";

#[test]
fn sshd_records_become_events_and_forged_ones_are_ignored() {
    let env = Env::new();
    let entries = vec![
        Entry::sshd(0, 4242, FAILED_ADMIN),
        // The point: SYSLOG_IDENTIFIER is whatever the sender says.
        Entry::at(1)
            .with("_EXE", "/usr/bin/python3")
            .with("_COMM", "python3")
            .with("_PID", "999")
            .with("SYSLOG_IDENTIFIER", "sshd")
            .with("MESSAGE", "Failed password for root from 198.51.100.66 port 1 ssh2"),
        // Inside ssh.service (no pam_systemd) but not sshd: still forged.
        Entry::at(2)
            .with("_SYSTEMD_UNIT", "ssh.service")
            .with("_EXE", "/usr/bin/logger")
            .with("_PID", "998")
            .with("SYSLOG_IDENTIFIER", "sshd")
            .with("MESSAGE", "Failed password for root from 198.51.100.67 port 1 ssh2"),
        // OpenSSH 9.8+: the session program, moved to the session's scope.
        Entry::at(3)
            .with("_SYSTEMD_UNIT", "session-7.scope")
            .with("_EXE", "/usr/lib/openssh/sshd-session")
            .with("_PID", "5000")
            .with("SYSLOG_IDENTIFIER", "sshd-session")
            .with("MESSAGE", "Failed password for root from 203.0.113.9 port 40000 ssh2"),
        // Not UTF-8: journalctl writes MESSAGE as an array of bytes.
        Entry::sshd(
            4,
            4243,
            &b"Failed password for invalid user \xff\xfeadm from 203.0.113.6 port 2 ssh2"[..],
        ),
        // The sender exited before journald read its executable: the unit
        // is all there is.
        Entry::at(5)
            .with("_SYSTEMD_UNIT", "ssh.service")
            .with("_PID", "4244")
            .with("SYSLOG_IDENTIFIER", "sshd")
            .with("MESSAGE", "Invalid user oracle from 203.0.113.8 port 3"),
        // Another program altogether.
        Entry::at(6)
            .with("_SYSTEMD_UNIT", "cron.service")
            .with("_EXE", "/usr/sbin/cron")
            .with("SYSLOG_IDENTIFIER", "CRON")
            .with("MESSAGE", "pam_unix(cron:session): session opened for user root"),
    ];
    write_journal(&env.journal_file("remote.journal"), &entries);

    let source = env.file_source("remote.journal");
    let mut items = Vec::new();
    let summary = source.read_once(None, |item| items.push(item)).unwrap();
    assert_eq!(summary.records, 4, "{summary:?}");
    // journalctl's match drops python3 and cron; logger runs inside
    // ssh.service, passes the match and is refused by the trusted check.
    assert_eq!(summary.not_sshd, 1, "{summary:?}");
    assert_eq!(summary.malformed + summary.oversized, 0);
    assert!(items.iter().all(|i| &*i.source == source.name().as_ref()));
    let texts = messages(&items);
    assert!(!texts.iter().any(|m| m.contains("198.51.100.")), "{texts:?}");
    assert!(texts[2].contains('\u{fffd}'), "{texts:?}");

    let events = parse(&items);
    let got: Vec<_> = events
        .iter()
        .map(|p| {
            let e = &p.event;
            (
                e.kind,
                e.outcome,
                e.source.clone(),
                e.user.clone(),
                e.pid,
                e.host.as_deref().map(str::to_string),
                e.time,
                e.process.to_string(),
            )
        })
        .collect();
    let at = |s: i64| Timestamp::from_second(1_768_473_194 + s).unwrap();
    let addr = |a: &str| Some(Source::Addr(a.parse().unwrap()));
    let web1 = Some("web1".to_string());
    assert_eq!(
        got,
        vec![
            (
                Kind::FailedAuth,
                Outcome::Failure,
                addr("203.0.113.5"),
                Some("admin".into()),
                Some(4242),
                web1.clone(),
                at(0),
                "sshd".into()
            ),
            (
                Kind::FailedAuth,
                Outcome::Failure,
                addr("203.0.113.9"),
                Some("root".into()),
                Some(5000),
                web1.clone(),
                at(3),
                "sshd-session".into()
            ),
            (
                Kind::FailedAuth,
                Outcome::Failure,
                addr("203.0.113.6"),
                Some("\u{fffd}\u{fffd}adm".into()),
                Some(4243),
                web1.clone(),
                at(4),
                "sshd".into()
            ),
            (
                Kind::InvalidUser,
                Outcome::Failure,
                addr("203.0.113.8"),
                Some("oracle".into()),
                Some(4244),
                web1,
                at(5),
                "sshd".into()
            ),
        ]
    );
}

#[test]
fn without_the_trusted_filter_the_forgery_would_be_read() {
    // Proves the previous test's exclusion is the filter's doing: the
    // forged record is in the file, and an `_EXE=/usr/bin/python3` filter
    // returns it.
    let env = Env::new();
    let forged = Entry::at(1)
        .with("_EXE", "/usr/bin/python3")
        .with("SYSLOG_IDENTIFIER", "sshd")
        .with("MESSAGE", "Failed password for root from 198.51.100.66 port 1 ssh2");
    write_journal(&env.journal_file("f.journal"), &[forged]);
    let config = JournalConfig {
        file: Some(env.journal_file("f.journal")),
        units: vec![],
        executables: vec!["/usr/bin/python3".into()],
        ..Default::default()
    };
    let source = JournalSource::new(&config, SourceStats::new()).unwrap();
    assert_eq!(read_all(&source, None).len(), 1);
    let source = env.file_source("f.journal");
    assert_eq!(read_all(&source, None).len(), 0);
}

#[test]
fn resuming_from_a_saved_cursor_yields_only_later_records() {
    let env = Env::new();
    let entries: Vec<Entry> = (0..6)
        .map(|i| {
            Entry::sshd(i, 100 + i as u32, format!("Invalid user u{i} from 203.0.113.{i} port 22"))
        })
        .collect();
    write_journal(&env.journal_file("r.journal"), &entries);
    let source = env.file_source("r.journal");
    let all = read_all(&source, None);
    assert_eq!(all.len(), 6);

    let store = JournalCursorStore::new(env.dir.path().join("data/cursors/journal"));
    store.save(&cursor_of(&all[2])).unwrap();
    let saved = store.load().unwrap().unwrap();
    let rest = read_all(&source, Some(&saved));
    assert_eq!(messages(&rest), messages(&all[3..]));
    let summary = source.read_once(Some(&cursor_of(&all[5])), |_| panic!("nothing after the end"));
    assert_eq!(summary.unwrap().records, 0);
    // `doctor`'s probe: the newest sshd records, newest last.
    let (newest, _) = source.probe(2).unwrap();
    assert_eq!(messages(&newest), messages(&all[4..]));
    assert_eq!(source.tail_cursor().unwrap(), Some(cursor_of(&all[5])));
}

#[test]
fn a_cursor_journalctl_refuses_is_a_clear_error() {
    let env = Env::new();
    write_journal(&env.journal_file("c.journal"), &[Entry::sshd(0, 1, FAILED_ADMIN)]);
    let err = env.file_source("c.journal").read_once(Some("garbage"), |_| {}).unwrap_err();
    assert!(matches!(err, JournalError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("cursor"), "{err}");
}

#[test]
fn missing_journalctl_and_missing_journal_are_clear_errors() {
    let env = Env::new();
    let config = JournalConfig {
        journalctl: "/nonexistent/hikeshi-journalctl".into(),
        file: Some(env.journal_file("x.journal")),
        ..Default::default()
    };
    let source = JournalSource::new(&config, SourceStats::new()).unwrap();
    let err = source.read_once(None, |_| {}).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/hikeshi-journalctl") && err.contains("cannot run"), "{err}");
    let (tx, _rx) = mpsc::sync_channel(1);
    let err = source.spawn(None, tx).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/hikeshi-journalctl"), "{err}");

    let err = env.file_source("x.journal").read_once(None, |_| {}).unwrap_err().to_string();
    assert!(err.contains("journalctl") && err.contains("No such file"), "{err}");
}

#[test]
fn oversized_records_are_skipped_and_counted() {
    let env = Env::new();
    let huge = format!("Failed password for {} from 203.0.113.1 port 1 ssh2", "x".repeat(8000));
    write_journal(
        &env.journal_file("o.journal"),
        &[Entry::sshd(0, 1, huge), Entry::sshd(1, 2, FAILED_ADMIN)],
    );
    let config = JournalConfig {
        file: Some(env.journal_file("o.journal")),
        max_record_bytes: 4096,
        ..Default::default()
    };
    let stats = SourceStats::new();
    let source = JournalSource::new(&config, Arc::clone(&stats)).unwrap();
    let mut items = Vec::new();
    let summary = source.read_once(None, |i| items.push(i)).unwrap();
    assert_eq!((summary.records, summary.oversized), (1, 1), "{summary:?}");
    assert_eq!(messages(&items), [FAILED_ADMIN]);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(stats.lines.load(Ordering::Relaxed), 1);
}

/// Receives until `n` items arrived or `timeout` passed.
fn receive(rx: &Receiver<Incoming>, n: usize, timeout: Duration) -> Vec<Incoming> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(item) => got.push(item),
            Err(_) => break,
        }
    }
    got
}

fn batch(from: u64, count: u64) -> Vec<Entry> {
    (from..from + count)
        .map(|i| {
            Entry::sshd(i, 1000 + i as u32, format!("Invalid user b{i} from 203.0.113.{i} port 22"))
        })
        .collect()
}

fn expected(from: u64, count: u64) -> Vec<String> {
    (from..from + count).map(|i| format!("Invalid user b{i} from 203.0.113.{i} port 22")).collect()
}

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `handle` runs a journalctl.
fn wait_for_child(handle: &JournalHandle) {
    let deadline = Instant::now() + WAIT;
    while handle.child_pid().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(handle.child_pid().is_some(), "journalctl was not started again");
}

#[test]
fn follow_a_directory_sees_records_in_new_files() {
    let env = Env::new();
    write_journal(&env.journal_file("a.journal"), &batch(0, 3));
    let source = env.dir_source();
    let (tx, rx) = mpsc::sync_channel(16);
    // No cursor: following starts after the newest entry at the time of
    // the call; the first batch is history. A file written right after
    // (before journalctl has even started, maybe) is followed.
    let handle = source.spawn(None, tx).unwrap();
    write_journal(&env.journal_file("b.journal"), &batch(10, 2));
    let got = receive(&rx, 2, WAIT);
    assert_eq!(messages(&got), expected(10, 2));
    assert_eq!(handle.last_cursor(), Some(cursor_of(&got[1])));
    // Appending to an existing file is seen too.
    write_journal(&env.journal_file("a.journal"), &batch(20, 1));
    assert_eq!(messages(&receive(&rx, 1, WAIT)), expected(20, 1));
    handle.stop();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "nothing more after stop");
}

#[test]
fn follow_from_a_cursor_then_survive_journalctl_being_killed() {
    let env = Env::new();
    write_journal(&env.journal_file("a.journal"), &batch(0, 4));
    let first = read_all(&env.dir_source(), None);
    let source = env.dir_source();
    let stats = Arc::clone(source.stats());
    let journal_stats = Arc::clone(source.journal_stats());
    let (tx, rx) = mpsc::sync_channel(16);
    let handle = source.spawn(Some(cursor_of(&first[1])), tx).unwrap();
    assert_eq!(messages(&receive(&rx, 2, WAIT)), expected(2, 2));

    let pid = handle.child_pid().expect("journalctl runs");
    hikeshi::exec::run("kill", ["-KILL", &pid.to_string()]).unwrap();
    let deadline = Instant::now() + WAIT;
    while journal_stats.restarts.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(journal_stats.restarts.load(Ordering::Relaxed), 1);
    assert_eq!(stats.errors.load(Ordering::Relaxed), 1);
    let new_pid = handle.child_pid();
    assert!(new_pid.is_some() && new_pid != Some(pid), "{new_pid:?}");
    assert_eq!(handle.last_cursor(), Some(cursor_of(&first[3])));

    // The restart resumed after the last delivered record: no repeats.
    assert!(rx.recv_timeout(Duration::from_millis(1500)).is_err(), "duplicate after restart");
    write_journal(&env.journal_file("b.journal"), &batch(10, 2));
    assert_eq!(messages(&receive(&rx, 2, WAIT)), expected(10, 2));
    handle.stop();
    // The killed child and its successor are gone (reaped, not zombies).
    for pid in [pid, new_pid.unwrap()] {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "journalctl {pid} still exists");
    }
}

#[test]
fn stop_is_prompt_while_blocked_on_a_full_channel() {
    let env = Env::new();
    write_journal(&env.journal_file("a.journal"), &batch(0, 5));
    let first = read_all(&env.dir_source(), None);
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = env.dir_source().spawn(Some(cursor_of(&first[0])), tx).unwrap();
    // One item fills the channel; the source now waits (the journal keeps
    // the rest).
    let deadline = Instant::now() + WAIT;
    while handle.last_cursor() != Some(cursor_of(&first[1])) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(handle.last_cursor(), Some(cursor_of(&first[1])), "blocked after one");
    let started = Instant::now();
    handle.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(messages(&receive(&rx, 5, Duration::from_millis(100))), expected(1, 1));
}

#[test]
fn following_an_empty_journal_starts_at_its_beginning() {
    let env = Env::new();
    // No journal file yet: journalctl sees an empty journal.
    let source = env.dir_source();
    assert_eq!(source.tail_cursor().unwrap(), None);
    let (tx, rx) = mpsc::sync_channel(16);
    let handle = source.spawn(None, tx).unwrap();
    write_journal(&env.journal_file("a.journal"), &batch(0, 2));
    assert_eq!(messages(&receive(&rx, 2, WAIT)), expected(0, 2));
    handle.stop();
}

#[test]
fn a_refused_cursor_while_following_falls_back_to_the_end() {
    let env = Env::new();
    write_journal(&env.journal_file("a.journal"), &batch(0, 2));
    let source = env.dir_source();
    let stats = Arc::clone(source.stats());
    let (tx, rx) = mpsc::sync_channel(16);
    let handle = source.spawn(Some("garbage".into()), tx).unwrap();
    let deadline = Instant::now() + WAIT;
    while stats.errors.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stats.errors.load(Ordering::Relaxed) >= 1);
    // Once the new journalctl exists it starts after the then newest entry.
    wait_for_child(&handle);
    write_journal(&env.journal_file("b.journal"), &batch(10, 1));
    assert_eq!(messages(&receive(&rx, 1, WAIT)), expected(10, 1), "no history, only new");
    assert_ne!(handle.last_cursor().as_deref(), Some("garbage"));
    handle.stop();
}
