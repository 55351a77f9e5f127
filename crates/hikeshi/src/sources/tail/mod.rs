//! The file source of `hikeshi watch`: follows the files matching glob
//! patterns, as they are appended to, rotated, truncated, deleted and
//! re-created, and hands each complete line to the daemon as an
//! [`Incoming`] with its [`Position`](crate::sources::Position).
//!
//! - New lines are noticed through inotify on the directories the
//!   patterns walk through (a `MODIFY` event wakes the thread at once); a
//!   slow periodic rescan ([`RESCAN_EVERY`]) re-expands the globs and
//!   re-checks every file as a safety net (lost events, queue overflow,
//!   a truncation that regrew past our offset).
//! - Files are followed by identity (device, inode and their first bytes);
//!   see [`follow`] for rotation, `copytruncate` and deletion.
//! - Positions are saved by the [`CursorStore`] only once the daemon has
//!   committed the lines (see [`store`]), so a restart resumes exactly:
//!   nothing handled is read twice except what was handled since the
//!   last flush before a crash, and nothing is skipped.
//! - The channel is bounded: when it is full the source waits (the lines
//!   stay on disk) and checks its stop flag while waiting.
//!
//! Symlinks: a configured literal path may be a symlink (`/var/log/auth.log
//! -> /data/auth.log`) and is followed (its target's directory is watched
//! too); entries matched by a glob component are never followed when they
//! are symlinks.

pub mod follow;
pub mod pattern;
pub mod store;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::inotify;
use serde::{Deserialize, Serialize};

pub use follow::{Disconnected, TailCounters, Tailer};
pub use pattern::{HostPattern, PathPattern, PatternError};
pub use store::{CursorStore, SavedCursor, SavedSegment, StoreError};

use crate::sources::{Backlog, Incoming, Payload, SourceStats, FILE_BACKLOG_MAX};

/// How often the globs are re-expanded and every file re-checked even
/// without events.
pub const RESCAN_EVERY: Duration = Duration::from_secs(2);

/// Where to start a file that has no saved cursor and exists when the
/// source starts (files appearing later are always read from their
/// beginning, so a new file's first lines are not missed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Only lines written from now on (history is left to `hikeshi scan`).
    #[default]
    End,
    /// The whole file.
    Beginning,
}

/// One `[[watch.files]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Absolute paths, with globs (`/var/log/central/*/auth.log`).
    pub paths: Vec<String>,
    /// Where the host is in the path (`/var/log/central/{host}/auth.log`);
    /// otherwise the syslog header says.
    #[serde(default)]
    pub host_from_path: Option<String>,
    /// Where files without a cursor start: `"end"` (default) or `"beginning"`.
    #[serde(default)]
    pub start: StartAt,
    /// Lines longer than this are skipped and counted, never buffered whole.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_max_line_bytes() -> usize {
    hikeshi_core::parse::DEFAULT_MAX_LINE_LEN
}

impl FileSourceConfig {
    /// A config following `paths` with the defaults.
    pub fn new(paths: &[&str]) -> FileSourceConfig {
        FileSourceConfig {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            host_from_path: None,
            start: StartAt::End,
            max_line_bytes: default_max_line_bytes(),
        }
    }
}

/// Errors starting or running a file source.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("[[watch.files]] needs at least one path")]
    NoPaths,
    #[error("[[watch.files]] max_line_bytes must be at least 1")]
    MaxLine,
    #[error("inotify: {0}")]
    Inotify(std::io::Error),
    #[error("the file source thread panicked")]
    Panicked,
}

/// Asks a running [`FileSource`] to stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

impl StopHandle {
    /// Sets the stop flag and wakes the thread (it ends within a poll).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

/// A running file source: one thread following one `[[watch.files]]` entry.
#[derive(Debug)]
pub struct FileSource {
    thread: Option<JoinHandle<()>>,
    stopper: StopHandle,
    counters: Arc<TailCounters>,
}

const WATCH_MASK: inotify::WatchFlags = inotify::WatchFlags::MODIFY
    .union(inotify::WatchFlags::ATTRIB)
    .union(inotify::WatchFlags::CREATE)
    .union(inotify::WatchFlags::DELETE)
    .union(inotify::WatchFlags::MOVED_FROM)
    .union(inotify::WatchFlags::MOVED_TO)
    .union(inotify::WatchFlags::DELETE_SELF)
    .union(inotify::WatchFlags::MOVE_SELF)
    .union(inotify::WatchFlags::ONLYDIR);

struct Watches {
    fd: OwnedFd,
    by_wd: HashMap<i32, PathBuf>,
    watched: HashSet<PathBuf>,
    warned_full: bool,
}

impl Watches {
    /// Watches every directory the tailer names that is not watched yet.
    /// A directory that vanished is skipped (the next rescan retries).
    fn sync(&mut self, tailer: &Tailer) {
        for dir in tailer.watch_dirs() {
            if self.watched.contains(dir) {
                continue;
            }
            match inotify::add_watch(&self.fd, dir.as_path(), WATCH_MASK) {
                Ok(wd) => {
                    self.by_wd.insert(wd, dir.clone());
                    self.watched.insert(dir.clone());
                }
                Err(rustix::io::Errno::NOSPC) if !self.warned_full => {
                    self.warned_full = true;
                    tracing::warn!(dir = %dir.display(), "inotify watch limit reached (fs.inotify.max_user_watches); relying on the periodic rescan");
                }
                Err(_) => {}
            }
        }
    }
}

impl FileSource {
    /// Starts following `config`'s files. Directories are watched before
    /// this returns, so every line written afterwards is seen; files that
    /// exist now and have no cursor start per `config.start`. Items go to
    /// `tx` (blocking while it is full); counters to `stats`.
    pub fn spawn(
        config: &FileSourceConfig,
        store: Arc<CursorStore>,
        tx: SyncSender<Incoming>,
        stats: Arc<SourceStats>,
    ) -> Result<FileSource, TailError> {
        let counters = Arc::new(TailCounters::default());
        let mut tailer = Tailer::new(config, store.clone(), stats.clone(), counters.clone())?;
        tailer.prime();
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| TailError::Inotify(e.into()))?;
        let mut watches =
            Watches { fd, by_wd: HashMap::new(), watched: HashSet::new(), warned_full: false };
        watches.sync(&tailer);
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| TailError::Inotify(e.into()))?;
        let stopper = StopHandle { stop: Arc::new(AtomicBool::new(false)), wake: Arc::new(wake) };
        let thread_stopper = stopper.clone();
        let thread = std::thread::Builder::new()
            .name("hikeshi-tail".into())
            .spawn(move || run(tailer, watches, thread_stopper, tx, store, stats))
            .map_err(TailError::Inotify)?;
        Ok(FileSource { thread: Some(thread), stopper, counters })
    }

    /// A handle to stop the source from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stopper.clone()
    }

    /// Rotation, truncation, gap and long-line counters.
    pub fn counters(&self) -> Arc<TailCounters> {
        self.counters.clone()
    }

    /// Stops the thread and waits for it. The store is flushed on the way
    /// out; the daemon flushes it again after committing the lines still in
    /// the channel.
    pub fn stop(mut self) -> Result<(), TailError> {
        self.stopper.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(TailError::Panicked),
            _ => Ok(()),
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopper.stop();
            let _ = thread.join();
        }
    }
}

fn run(
    mut tailer: Tailer,
    mut watches: Watches,
    stopper: StopHandle,
    tx: SyncSender<Incoming>,
    store: Arc<CursorStore>,
    stats: Arc<SourceStats>,
) {
    let stop = stopper.stop.clone();
    let backlog = Backlog::default();
    let mut sink = |mut item: Incoming| -> bool {
        if let Payload::Line { backlog: slot, .. } = &mut item.payload {
            *slot = Some(backlog.slot());
        }
        let mut waits = 0u32;
        loop {
            // Past its backlog the file keeps the lines, not the daemon.
            let sent = if backlog.len() <= FILE_BACKLOG_MAX {
                tx.try_send(item)
            } else {
                Err(TrySendError::Full(item))
            };
            match sent {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    item = back;
                    // Yield first (the consumer is usually just behind),
                    // then sleep briefly so a stalled daemon costs no CPU.
                    if waits < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    waits = waits.saturating_add(1);
                }
            }
        }
    };
    let flush = |store: &CursorStore, now: bool| {
        let result = if now { store.flush() } else { store.maybe_flush() };
        if let Err(e) = result {
            crate::sources::SourceStats::add(&stats.errors);
            tracing::warn!(error = %e, "cannot save cursor");
        }
    };
    let mut alive = tailer.rescan(&mut sink).is_ok();
    watches.sync(&tailer);
    let mut next_rescan = Instant::now() + RESCAN_EVERY;
    let mut event_buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut entries: Vec<(PathBuf, OsString)> = Vec::new();
    while alive && !stopper.stop.load(Ordering::SeqCst) {
        // A file with more to read: only look for events, do not wait.
        let wait = if tailer.has_more() {
            Duration::ZERO
        } else {
            next_rescan.saturating_duration_since(Instant::now())
        };
        let timeout = rustix::event::Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        let mut fds =
            [PollFd::new(&watches.fd, PollFlags::IN), PollFd::new(&*stopper.wake, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        if stopper.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut rescan = Instant::now() >= next_rescan;
        entries.clear();
        let mut reader = inotify::Reader::new(&watches.fd, &mut event_buf);
        // Until AGAIN: the queue is drained.
        while let Ok(event) = reader.next() {
            let flags = event.events();
            if flags.contains(inotify::ReadFlags::QUEUE_OVERFLOW) {
                rescan = true;
                continue;
            }
            let Some(dir) = watches.by_wd.get(&event.wd()).cloned() else { continue };
            if flags.contains(inotify::ReadFlags::IGNORED) {
                watches.by_wd.remove(&event.wd());
                watches.watched.remove(&dir);
                rescan = true;
                continue;
            }
            let structural = inotify::ReadFlags::CREATE
                | inotify::ReadFlags::DELETE
                | inotify::ReadFlags::MOVED_FROM
                | inotify::ReadFlags::MOVED_TO
                | inotify::ReadFlags::DELETE_SELF
                | inotify::ReadFlags::MOVE_SELF;
            if flags.intersects(structural) {
                rescan = true;
            }
            if let Some(name) = event.file_name() {
                let name = OsString::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
                if !entries.iter().any(|(d, n)| *d == dir && *n == name) {
                    entries.push((dir, name));
                }
            }
        }
        let mut drained = [0u8; 8];
        let _ = rustix::io::read(&*stopper.wake, &mut drained);
        let result = if rescan {
            next_rescan = Instant::now() + RESCAN_EVERY;
            let result = tailer.rescan(&mut sink);
            watches.sync(&tailer);
            result
        } else {
            entries.iter().try_for_each(|(dir, name)| tailer.check_entry(dir, name, &mut sink))
        };
        let result = result.and_then(|()| tailer.continue_reading(&mut sink));
        alive = result.is_ok();
        flush(&store, false);
    }
    flush(&store, true);
}
