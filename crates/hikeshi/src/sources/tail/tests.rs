//! Tests of the file source: a seeded model of a log's life (appends,
//! partial lines, rotation, copytruncate, delete, restarts and crashes)
//! driving the synchronous core, and end-to-end tests of the inotify
//! thread (globs, hosts from paths, hostile files, symlinks, resume).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::sources::{Payload, SourceStats};

fn line_of(item: &Incoming) -> &[u8] {
    match &item.payload {
        Payload::Line { bytes, .. } => bytes,
        Payload::Record { .. } => panic!("a file source sends lines"),
    }
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(bytes).unwrap();
}

/// xorshift64*: a reproducible sequence from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MODEL_MAX_LINE: usize = 200;

/// The daemon's side of the model: a store, a synchronous tailer, the
/// items emitted but not yet handled, and the lines handled.
struct Daemon {
    store_dir: PathBuf,
    config: FileSourceConfig,
    store: Arc<CursorStore>,
    tailer: Tailer,
    counters: Arc<TailCounters>,
    pending: Vec<Incoming>,
    handled: Vec<Vec<u8>>,
    log: PathBuf,
    /// The live file had content at the last poll.
    seen_content: bool,
    /// The live file's identity at the last poll of this tailer.
    seen_file: Option<(u64, u64)>,
}

impl Daemon {
    fn start(
        config: &FileSourceConfig,
        store_dir: &Path,
    ) -> (Arc<CursorStore>, Tailer, Arc<TailCounters>) {
        let store = CursorStore::open(store_dir, Duration::from_secs(3600)).unwrap();
        let counters = Arc::new(TailCounters::default());
        let tailer =
            Tailer::new(config, store.clone(), SourceStats::new(), counters.clone()).unwrap();
        (store, tailer, counters)
    }

    fn new(config: FileSourceConfig, store_dir: PathBuf) -> Daemon {
        let (store, tailer, counters) = Daemon::start(&config, &store_dir);
        let log = PathBuf::from(&config.paths[0]);
        Daemon {
            store_dir,
            config,
            store,
            tailer,
            counters,
            pending: Vec::new(),
            handled: Vec::new(),
            log,
            seen_content: false,
            seen_file: None,
        }
    }

    fn poll(&mut self) {
        let meta = std::fs::metadata(&self.log).ok();
        self.seen_content = meta.as_ref().is_some_and(|m| m.len() > 0);
        self.seen_file = meta.map(|m| (m.dev(), m.ino()));
        let pending = &mut self.pending;
        self.tailer
            .rescan(&mut |item| {
                pending.push(item);
                true
            })
            .unwrap();
    }

    fn commit(&mut self, count: usize) {
        for item in self.pending.drain(..count) {
            self.store.commit_incoming(&item);
            self.handled.push(line_of(&item).to_vec());
        }
    }

    /// The daemon stops (or crashes) after handling `count` of the pending
    /// items and saving; the rest were never handled and must come again.
    fn restart(&mut self, count: usize) {
        self.commit(count);
        self.store.flush().unwrap();
        self.pending.clear();
        let (store, tailer, counters) = Daemon::start(&self.config, &self.store_dir);
        self.store = store;
        self.tailer = tailer;
        self.counters = counters;
        self.seen_file = None;
    }
}

/// The writer's side: a logger holding its file open (O_APPEND).
struct Writer {
    file: File,
    expected: Vec<Vec<u8>>,
    next: u64,
    partial: Option<Vec<u8>>,
    rotated: u64,
    /// The writer still has a renamed file open.
    on_old_file: bool,
}

impl Writer {
    fn open(log: &Path) -> File {
        OpenOptions::new().create(true).append(true).open(log).unwrap()
    }

    fn line(&mut self, rng: &mut Rng) -> Vec<u8> {
        self.next += 1;
        let mut line = format!("L{} ", self.next).into_bytes();
        // Hostile bytes pass through untouched.
        match rng.below(8) {
            0 => line.extend_from_slice(b"nul\0byte"),
            1 => line.extend_from_slice(b"bad \xff\xfe utf8"),
            2 => line.extend_from_slice(b"crlf\r"),
            _ => line.extend(std::iter::repeat_n(b'x', rng.below(60) as usize)),
        }
        line
    }

    fn finish_partial(&mut self) {
        if let Some(mut line) = self.partial.take() {
            self.file.write_all(b" end\n").unwrap();
            line.extend_from_slice(b" end");
            self.expected.push(line);
        }
    }
}

fn run_model(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("auth.log");
    let mut writer = Writer {
        file: Writer::open(&log),
        expected: Vec::new(),
        next: 0,
        partial: None,
        rotated: 0,
        on_old_file: false,
    };
    let mut config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    config.start = StartAt::Beginning;
    config.max_line_bytes = MODEL_MAX_LINE;
    let mut daemon = Daemon::new(config, dir.path().join("cursors"));
    let mut trace = Vec::new();
    for _ in 0..80 {
        let op = rng.below(100);
        match op {
            0..=29 => {
                trace.push(format!("append@{}/{}", writer.next, daemon.handled.len()));
                writer.finish_partial();
                for _ in 0..=rng.below(4) {
                    let line = writer.line(&mut rng);
                    writer.file.write_all(&line).unwrap();
                    writer.file.write_all(b"\n").unwrap();
                    writer.expected.push(line);
                }
            }
            30..=34 => {
                trace.push(format!("too-long@{}/{}", writer.next, daemon.handled.len()));
                writer.finish_partial();
                writer
                    .file
                    .write_all(&vec![b'z'; MODEL_MAX_LINE + 1 + rng.below(300) as usize])
                    .unwrap();
                writer.file.write_all(b"\n").unwrap();
            }
            35..=41 if writer.partial.is_none() => {
                trace.push(format!("partial@{}/{}", writer.next, daemon.handled.len()));
                let line = writer.line(&mut rng);
                writer.file.write_all(&line).unwrap();
                writer.partial = Some(line);
            }
            42..=61 => {
                trace.push(format!("poll@{}/{}", writer.next, daemon.handled.len()));
                daemon.poll();
            }
            62..=69 => {
                trace.push(format!("commit@{}/{}", writer.next, daemon.handled.len()));
                let count = daemon.pending.len();
                daemon.commit(count);
            }
            70..=75 if !writer.on_old_file => {
                // logrotate `create`: rename, create the new file; the
                // writer keeps the old one until it reopens.
                trace.push(format!("rotate@{}/{}", writer.next, daemon.handled.len()));
                // A file created and renamed away before the tailer ever
                // looked (within a millisecond under inotify, or while
                // hikeshi was down with no cursor naming it) is not known.
                let current = std::fs::metadata(&log).map(|m| (m.dev(), m.ino())).ok();
                if daemon.seen_file != current {
                    daemon.poll();
                }
                writer.rotated += 1;
                std::fs::rename(&log, logs.join(format!("auth.log-{}", writer.rotated))).unwrap();
                File::create(&log).unwrap();
                writer.on_old_file = true;
                daemon.seen_content = false;
            }
            76..=80 if writer.on_old_file => {
                trace.push(format!("reopen@{}/{}", writer.next, daemon.handled.len()));
                writer.finish_partial();
                writer.file = Writer::open(&log);
                writer.on_old_file = false;
            }
            81..=85 if !writer.on_old_file && writer.partial.is_none() => {
                trace.push(format!("copytruncate@{}/{}", writer.next, daemon.handled.len()));
                // The copy is recognised by the first bytes the tailer
                // read; of a file it has read nothing of (truncated
                // before its first event was handled) it knows none.
                if !daemon.seen_content {
                    daemon.poll();
                }
                writer.rotated += 1;
                std::fs::copy(&log, logs.join(format!("auth.log.{}", writer.rotated))).unwrap();
                OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
                daemon.seen_content = false;
            }
            86..=88 if !writer.on_old_file && writer.partial.is_none() => {
                // Deleted once the daemon has handled its lines (lines
                // of a deleted file are gone for anyone after a crash),
                // then re-created.
                trace.push(format!("delete@{}/{}", writer.next, daemon.handled.len()));
                daemon.poll();
                let count = daemon.pending.len();
                daemon.commit(count);
                std::fs::remove_file(&log).unwrap();
                writer.file = Writer::open(&log);
                daemon.seen_content = false;
            }
            89..=94 => {
                trace.push(format!("restart@{}/{}", writer.next, daemon.handled.len()));
                let count = daemon.pending.len();
                daemon.restart(count);
            }
            95..=99 => {
                trace.push(format!("crash@{}/{}", writer.next, daemon.handled.len()));
                let count = rng.below(daemon.pending.len() as u64 + 1) as usize;
                daemon.restart(count);
            }
            _ => {}
        }
    }
    writer.finish_partial();
    if writer.on_old_file {
        writer.file = Writer::open(&log);
        let line = b"after reopen".to_vec();
        writer.file.write_all(b"after reopen\n").unwrap();
        writer.expected.push(line);
    }
    for _ in 0..3 {
        daemon.poll();
    }
    let count = daemon.pending.len();
    daemon.commit(count);
    let show = |lines: &[Vec<u8>]| {
        lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>()
    };
    assert_eq!(
        show(&daemon.handled),
        show(&writer.expected),
        "seed {seed}: handled lines differ from written lines; ops: {trace:?}"
    );
    assert_eq!(
        daemon.counters.gaps.load(Ordering::Relaxed),
        0,
        "seed {seed}: no line was lost, so no gap: {trace:?}"
    );
}

#[test]
fn model_no_line_lost_or_repeated_across_rotation_truncation_and_restarts() {
    for seed in 1..=250 {
        run_model(seed);
    }
}

#[test]
fn a_cursor_is_never_saved_beyond_the_committed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"one\ntwo\nthree\n");
    let mut config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    config.start = StartAt::Beginning;
    let mut daemon = Daemon::new(config, dir.path().join("cursors"));
    daemon.poll();
    assert_eq!(daemon.pending.len(), 3);
    daemon.commit(1);
    daemon.store.flush().unwrap();
    let saved = daemon.store.load(log.to_str().unwrap()).unwrap();
    assert_eq!(saved.segments.len(), 1);
    assert_eq!(saved.segments[0].offset, 4, "just after `one\\n`");
    assert_eq!(saved.segments[0].line, 2);
    // A crash now: the restarted tailer gives `two` and `three` again.
    daemon.restart(0);
    daemon.poll();
    let lines: Vec<&[u8]> = daemon.pending.iter().map(line_of).collect();
    assert_eq!(lines, vec![&b"two"[..], b"three"]);
    // The positions are exact.
    let Payload::Line { position: Some(pos), .. } = &daemon.pending[1].payload else { panic!() };
    assert_eq!((pos.offset, pos.line), (8, 3));
}

#[test]
fn start_end_skips_history_but_a_cursor_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"old history\nhalf a li");
    let config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    let mut daemon = Daemon::new(config, dir.path().join("cursors"));
    daemon.poll();
    assert!(daemon.pending.is_empty(), "history is not replayed");
    append(&log, b"ne\nnew\n");
    daemon.poll();
    let lines: Vec<&[u8]> = daemon.pending.iter().map(line_of).collect();
    assert_eq!(
        lines,
        vec![&b"half a line"[..], b"new"],
        "the partial line at the end is read whole"
    );
    daemon.restart(2);
    append(&log, b"while down\n");
    daemon.poll();
    let lines: Vec<&[u8]> = daemon.pending.iter().map(line_of).collect();
    assert_eq!(lines, vec![&b"while down"[..]]);
}

#[test]
fn a_truncation_without_copy_reports_a_gap_only_when_unread_data_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"read\n");
    let mut config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    config.start = StartAt::Beginning;
    let mut daemon = Daemon::new(config, dir.path().join("cursors"));
    daemon.poll();
    // Truncated after everything was read: nothing lost.
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, b"x\n");
    daemon.poll();
    assert_eq!(daemon.counters.truncations.load(Ordering::Relaxed), 1);
    assert_eq!(daemon.counters.gaps.load(Ordering::Relaxed), 0);
    // A partial line seen but never completed, then truncated (no copy).
    append(&log, b"half");
    daemon.poll();
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    daemon.poll();
    assert_eq!(daemon.counters.gaps.load(Ordering::Relaxed), 1);
    let lines: Vec<&[u8]> = daemon.pending.iter().map(line_of).collect();
    assert_eq!(lines, vec![&b"read"[..], b"x"]);
}

#[test]
fn a_corrupt_cursor_is_ignored_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"a\n");
    let cursors = dir.path().join("cursors");
    std::fs::create_dir(&cursors).unwrap();
    let key = log.to_str().unwrap();
    std::fs::write(cursors.join(store::cursor_file_name(key)), b"{not json").unwrap();
    let store = CursorStore::open(&cursors, Duration::ZERO).unwrap();
    assert_eq!(store.load(key), None);
    // A cursor file naming another path (hash collision or copy) too.
    let other = SavedCursor { path: "/elsewhere".into(), segments: Vec::new() };
    std::fs::write(cursors.join(store::cursor_file_name(key)), serde_json::to_vec(&other).unwrap())
        .unwrap();
    assert_eq!(store.load(key), None);
}

#[test]
fn config_rejects_unknown_fields_and_reads_start() {
    let config: FileSourceConfig = toml::from_str(
        r#"paths = ["/var/log/central/*/auth.log"]
host_from_path = "/var/log/central/{host}/auth.log"
start = "beginning"
"#,
    )
    .unwrap();
    assert_eq!(config.start, StartAt::Beginning);
    assert_eq!(config.max_line_bytes, hikeshi_core::parse::DEFAULT_MAX_LINE_LEN);
    assert!(toml::from_str::<FileSourceConfig>("paths = [\"/a\"]\nstrat = \"end\"\n").is_err());
    assert!(toml::from_str::<FileSourceConfig>("paths = [\"/a\"]\nstart = \"middle\"\n").is_err());
    let store = CursorStore::open(tempfile::tempdir().unwrap().path(), Duration::ZERO).unwrap();
    let bad = FileSourceConfig::new(&["relative/auth.log"]);
    assert!(Tailer::new(&bad, store.clone(), SourceStats::new(), Default::default()).is_err());
    let none = FileSourceConfig::new(&[]);
    assert!(matches!(
        Tailer::new(&none, store, SourceStats::new(), Default::default()),
        Err(TailError::NoPaths)
    ));
}

// ----- The thread, through inotify -----

const WAIT: Duration = Duration::from_secs(10);

struct Running {
    source: Option<FileSource>,
    rx: Receiver<Incoming>,
    store: Arc<CursorStore>,
    stats: Arc<SourceStats>,
}

impl Running {
    fn spawn(config: &FileSourceConfig, cursors: &Path) -> Running {
        let store = CursorStore::open(cursors, Duration::from_millis(10)).unwrap();
        let (tx, rx) = sync_channel(1024);
        let stats = SourceStats::new();
        let source = FileSource::spawn(config, store.clone(), tx, stats.clone()).unwrap();
        Running { source: Some(source), rx, store, stats }
    }

    /// The next line, committed; panics after [`WAIT`].
    fn next(&self) -> Incoming {
        let item = self.rx.recv_timeout(WAIT).expect("a line within the wait");
        self.store.commit_incoming(&item);
        item
    }

    fn next_line(&self) -> Vec<u8> {
        line_of(&self.next()).to_vec()
    }

    fn stop(&mut self) {
        self.source.take().unwrap().stop().unwrap();
        while let Ok(item) = self.rx.try_recv() {
            self.store.commit_incoming(&item);
        }
        self.store.flush().unwrap();
    }

    fn counters(&self) -> Arc<TailCounters> {
        self.source.as_ref().unwrap().counters()
    }
}

#[test]
fn new_host_directories_are_followed_with_the_host_from_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let central = dir.path().join("central");
    std::fs::create_dir_all(central.join("web1")).unwrap();
    append(&central.join("web1/auth.log"), b"history\n");
    let root = central.to_str().unwrap();
    let mut config = FileSourceConfig::new(&[&format!("{root}/*/auth.log")]);
    config.host_from_path = Some(format!("{root}/{{host}}/auth.log"));
    let mut running = Running::spawn(&config, &dir.path().join("cursors"));

    append(&central.join("web1/auth.log"), b"from web1\n");
    let item = running.next();
    assert_eq!(line_of(&item), b"from web1", "history is skipped (start = end)");
    let Payload::Line { host_hint, position, .. } = &item.payload else { panic!() };
    assert_eq!(host_hint.as_deref(), Some("web1"));
    assert_eq!(position.as_ref().unwrap().line, 2);

    // A host directory and its log appear later: read from the beginning.
    std::fs::create_dir(central.join("db.example")).unwrap();
    append(&central.join("db.example/auth.log"), b"first line of db\n");
    let item = running.next();
    assert_eq!(line_of(&item), b"first line of db");
    let Payload::Line { host_hint, .. } = &item.payload else { panic!() };
    assert_eq!(host_hint.as_deref(), Some("db.example"));

    // A hostile directory name gives no host hint, but its lines come.
    std::fs::create_dir(central.join("bad host")).unwrap();
    append(&central.join("bad host/auth.log"), b"x\n");
    let item = running.next();
    let Payload::Line { host_hint, .. } = &item.payload else { panic!() };
    assert_eq!(*host_hint, None);
    assert_eq!(item.source.as_ref(), format!("file:{root}/bad host/auth.log"));
    running.stop();
}

#[test]
fn rotation_by_rename_under_inotify_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"");
    let mut running = Running::spawn(
        &FileSourceConfig::new(&[log.to_str().unwrap()]),
        &dir.path().join("cursors"),
    );
    let mut old = OpenOptions::new().append(true).open(&log).unwrap();
    old.write_all(b"before\n").unwrap();
    assert_eq!(running.next_line(), b"before");
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    File::create(&log).unwrap();
    // The writer has not reopened yet: a late line goes to the old file.
    old.write_all(b"late in the old file\n").unwrap();
    assert_eq!(running.next_line(), b"late in the old file");
    append(&log, b"in the new file\n");
    assert_eq!(running.next_line(), b"in the new file");
    // Deleted and re-created.
    std::fs::remove_file(&log).unwrap();
    append(&log, b"recreated\n");
    assert_eq!(running.next_line(), b"recreated");
    assert!(running.counters().rotations.load(Ordering::Relaxed) >= 1);
    running.stop();
}

#[test]
fn a_restart_resumes_exactly_where_the_daemon_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"");
    let config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    let cursors = dir.path().join("cursors");
    let mut running = Running::spawn(&config, &cursors);
    append(&log, b"one\n");
    assert_eq!(running.next_line(), b"one");
    running.stop();
    append(&log, b"while stopped\n");
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, b"after rotation while stopped\n");
    let mut running = Running::spawn(&config, &cursors);
    assert_eq!(running.next_line(), b"while stopped");
    assert_eq!(running.next_line(), b"after rotation while stopped");
    running.stop();
}

#[test]
fn hostile_files_never_block_or_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let good = logs.join("good.log");
    append(&good, b"");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        logs.join("fifo.log"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::create_dir(logs.join("dir.log")).unwrap();
    std::os::unix::fs::symlink("loop.log", logs.join("loop.log")).unwrap();
    let pattern = format!("{}/*.log", logs.display());
    let literal_loop = logs.join("loop.log");
    let mut config = FileSourceConfig::new(&[&pattern, literal_loop.to_str().unwrap()]);
    config.max_line_bytes = 1024;
    let mut running = Running::spawn(&config, &dir.path().join("cursors"));

    // A 1 MiB line is skipped and counted; the next lines are fine.
    let mut huge = vec![b'A'; 1024 * 1024];
    huge.push(b'\n');
    append(&good, &huge);
    append(&good, b"after \x00 the \xff huge line\n");
    assert_eq!(running.next_line(), b"after \x00 the \xff huge line");
    assert_eq!(running.counters().too_long.load(Ordering::Relaxed), 1);
    assert!(running.stats.rejected.load(Ordering::Relaxed) >= 1);

    // The file replaced by a directory, then a FIFO: no hang, reported.
    std::fs::remove_file(&good).unwrap();
    std::fs::create_dir(&good).unwrap();
    append(&logs.join("other.log"), b"other file still read\n");
    assert_eq!(running.next_line(), b"other file still read");
    std::fs::remove_dir(&good).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &good,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    append(&logs.join("other.log"), b"still\n");
    assert_eq!(running.next_line(), b"still");
    // The symlink loop (a literal path) is an error counted once.
    assert!(running.stats.errors.load(Ordering::Relaxed) >= 1);
    running.stop();
}

#[test]
fn a_file_the_tailer_may_not_read_is_reported_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cursors = dir.path().join("cursors");
    std::fs::create_dir(&cursors).unwrap();
    for path in [dir.path(), &logs, &cursors] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
    }
    let secret = logs.join("secret.log");
    append(&secret, b"");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let open = logs.join("open.log");
    append(&open, b"");
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut config = FileSourceConfig::new(&[&format!("{}/*.log", logs.display())]);
    config.start = StartAt::Beginning;
    // The tests run as root, which may read anything: the source runs on
    // a thread that gave up root (uid changes are per thread on Linux and
    // inherited by the threads it spawns).
    let spawned = std::thread::spawn(move || {
        if rustix::process::getuid().is_root() {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)).unwrap();
        }
        Running::spawn(&config, &cursors)
    });
    let mut running = spawned.join().unwrap();
    append(&secret, b"unreadable\n");
    append(&open, b"readable\n");
    assert_eq!(running.next_line(), b"readable");
    assert!(running.stats.errors.load(Ordering::Relaxed) >= 1, "the refused file is counted");
    running.stop();
}

#[test]
fn a_symlinked_log_path_is_followed_to_its_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("log")).unwrap();
    let target = dir.path().join("data/auth.log");
    append(&target, b"");
    let link = dir.path().join("log/auth.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut running = Running::spawn(
        &FileSourceConfig::new(&[link.to_str().unwrap()]),
        &dir.path().join("cursors"),
    );
    append(&target, b"via the link\n");
    let item = running.next();
    assert_eq!(line_of(&item), b"via the link");
    let Payload::Line { position, .. } = &item.payload else { panic!() };
    assert_eq!(position.as_ref().unwrap().path.as_ref(), link.to_str().unwrap());
    running.stop();
}

#[test]
fn stop_is_prompt_even_when_the_channel_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &b"line\n".repeat(100));
    let mut config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    config.start = StartAt::Beginning;
    let store = CursorStore::open(&dir.path().join("cursors"), Duration::ZERO).unwrap();
    let (tx, rx) = sync_channel(1);
    let source = FileSource::spawn(&config, store, tx, SourceStats::new()).unwrap();
    // Wait until it is blocked on the full channel.
    std::thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    source.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "stopped in {:?}", started.elapsed());
    assert_eq!(line_of(&rx.recv().unwrap()), b"line");
}

#[test]
fn a_file_backlog_stays_in_the_file_past_its_bound_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let total = 3 * FILE_BACKLOG_MAX;
    let text: String = (0..total).map(|i| format!("line {i}\n")).collect();
    append(&log, text.as_bytes());
    let mut config = FileSourceConfig::new(&[log.to_str().unwrap()]);
    config.start = StartAt::Beginning;
    let store = CursorStore::open(&dir.path().join("cursors"), Duration::ZERO).unwrap();
    // A channel with room for every line: only the backlog bound stops it.
    let (tx, rx) = sync_channel(total + 10);
    let source = FileSource::spawn(&config, store, tx, SourceStats::new()).unwrap();
    let mut held = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while held.len() < FILE_BACKLOG_MAX && std::time::Instant::now() < deadline {
        held.extend(rx.recv_timeout(Duration::from_millis(100)));
    }
    // Holding FILE_BACKLOG_MAX lines: the source waits with the rest.
    std::thread::sleep(Duration::from_millis(300));
    held.extend(rx.try_iter());
    assert!(
        (FILE_BACKLOG_MAX..=FILE_BACKLOG_MAX + 1).contains(&held.len()),
        "{} lines handed over, bound {FILE_BACKLOG_MAX}",
        held.len()
    );
    // Dropping them lets the rest come, in order, each line once.
    let mut seen: Vec<Vec<u8>> = held.drain(..).map(|item| line_of(&item).to_vec()).collect();
    while seen.len() < total && std::time::Instant::now() < deadline {
        if let Ok(item) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line_of(&item).to_vec());
        }
    }
    source.stop().unwrap();
    assert_eq!(seen.len(), total);
    for (i, line) in seen.iter().enumerate() {
        assert_eq!(line, format!("line {i}").as_bytes());
    }
}
