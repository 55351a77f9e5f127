//! Where log lines come from: files (read once by `scan`, or followed by
//! `watch`), the systemd journal, a syslog receiver, stdin. Sources yield
//! raw bytes with their origin and never interpret them: that is the
//! core's job.
//!
//! Live sources run on their own threads and hand [`Incoming`] items to the
//! daemon over one bounded channel. A source whose data persists (a file,
//! the journal) blocks when the channel is full and falls behind (its lag
//! is visible in its [`SourceStats`]); a network source cannot make its
//! peers wait forever, so what it must drop it counts in `dropped`. A file
//! source also waits once [`FILE_BACKLOG_MAX`] of its lines are in the
//! daemon's hands ([`Backlog`]): its backlog costs nothing in the file and
//! memory in the daemon, while the channel keeps its full size for the
//! network sources' bursts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use jiff::Timestamp;

pub mod cursor;
pub mod journal;
pub mod lines;
pub mod syslog_server;
pub mod tail;

/// One unit of input from a live source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The source's name as configured (`file:/var/log/auth.log`,
    /// `journal`, `syslog-udp:127.0.0.1:5514`): said in status and evidence.
    pub source: Arc<str>,
    pub payload: Payload,
}

/// What a source read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One syslog-formatted line (a file line, a syslog message), without
    /// its line terminator.
    Line {
        bytes: Vec<u8>,
        /// Where it is in its file, for evidence and cursors (files only).
        position: Option<Position>,
        /// The host when the source knows it better than the syslog header
        /// (a central collector's `/var/log/central/<host>/auth.log`).
        host_hint: Option<Arc<str>>,
        /// The peer address of a network source.
        peer: Option<std::net::SocketAddr>,
        /// The line's place in its file source's [`Backlog`] (files only).
        backlog: Option<BacklogSlot>,
    },
    /// A record whose envelope the source already split (the journal).
    Record {
        time: Option<Timestamp>,
        host: Option<Vec<u8>>,
        process: Vec<u8>,
        pid: Option<u32>,
        message: Vec<u8>,
        /// The source's resume token (the journal cursor) after this record.
        cursor: Option<String>,
    },
}

/// Lines of one file source handed to the daemon at most: two of the
/// daemon's batches, so that the source reads the next batch while the
/// daemon works on one. `bench/watch-ingest.sh` measured the RSS of a
/// daemon 200,000 lines/s behind steps of megabytes with the whole channel
/// (65,536 items) as a file's backlog.
pub const FILE_BACKLOG_MAX: usize = 4 * crate::daemon::MAX_BATCH;

/// The lines a file source has handed over that are not dropped yet.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Lines handed over and still held.
    pub fn len(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one more line, until the slot is dropped.
    pub fn slot(&self) -> BacklogSlot {
        self.0.fetch_add(1, Ordering::AcqRel);
        BacklogSlot(Arc::clone(&self.0))
    }
}

/// One line of a [`Backlog`]: counted until it is dropped, by whoever
/// drops the item (the daemon after its batch, or on the way out).
#[derive(Debug)]
pub struct BacklogSlot(Arc<AtomicUsize>);

impl Drop for BacklogSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Clone for BacklogSlot {
    /// A copy of a line is one more line held.
    fn clone(&self) -> BacklogSlot {
        Backlog(Arc::clone(&self.0)).slot()
    }
}

impl PartialEq for BacklogSlot {
    /// Bookkeeping, not content: two lines are equal whatever they hold.
    fn eq(&self, _: &BacklogSlot) -> bool {
        true
    }
}

impl Eq for BacklogSlot {}

/// A line's place in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub path: Arc<str>,
    /// Device and inode of the file the line was read from.
    pub dev: u64,
    pub ino: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// 1-based line number within the file, when known.
    pub line: u64,
}

/// Counters a source keeps for `hikeshi status`. Shared with the daemon
/// through an `Arc`; updated with relaxed atomics (they are statistics).
#[derive(Debug, Default)]
pub struct SourceStats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    /// Items dropped because the daemon could not keep up (network sources).
    pub dropped: AtomicU64,
    /// Items refused (oversized, from a peer not allowed, malformed framing).
    pub rejected: AtomicU64,
    /// Errors (unreadable file, journalctl exited, ...), each also logged.
    pub errors: AtomicU64,
    /// Unix seconds of the last item read, 0 for never.
    pub last_read_unix: AtomicU64,
}

impl SourceStats {
    pub fn new() -> Arc<SourceStats> {
        Arc::new(SourceStats::default())
    }

    /// Counts one item of `bytes` bytes read at `now`.
    pub fn read(&self, bytes: usize, now: Timestamp) {
        self.lines.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_read_unix.store(now.as_second().max(0) as u64, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
