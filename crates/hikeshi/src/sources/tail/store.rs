//! Saved reading positions of followed files, advanced only by what the
//! daemon has handled.
//!
//! The tailer reads ahead of the daemon (lines wait in the channel), so a
//! cursor saved at the tailer's read position would lose the queued lines
//! in a crash. Instead the tailer *registers* what it is reading
//! ([`CursorStore::begin`], [`CursorStore::set_prefix`],
//! [`CursorStore::seal`]) and the daemon *commits* each line after handling
//! it ([`CursorStore::commit`]). Only committed positions are written to
//! disk, atomically (tmp + fsync + rename + fsync of the directory), at
//! most every `interval` ([`CursorStore::maybe_flush`]) and at shutdown
//! ([`CursorStore::flush`]). After a crash at most the lines handled since
//! the last flush are read again; none is skipped.
//!
//! One path can have several open *segments*: the file it named before a
//! rename rotation (still being finished while the writer reopens), the
//! new file, and after `copytruncate` a new generation of the same inode.
//! The saved cursor lists them oldest first, so a restart finishes each.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sources::cursor::FINGERPRINT_LEN;
use crate::sources::{Incoming, Payload, Position};

/// Errors of the cursor store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cursor directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("writing cursor {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// One saved segment of a followed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSegment {
    pub dev: u64,
    pub ino: u64,
    /// Offset just after the last committed line.
    pub offset: u64,
    /// Number of the next line (1-based).
    pub line: u64,
    /// How many leading bytes `fingerprint` covers.
    pub fingerprint_len: u64,
    /// SHA-256 (hex) of the first `fingerprint_len` bytes.
    pub fingerprint: String,
    /// Where the tailer stopped emitting this segment, once it moved on
    /// (rotated away or truncated): committed up to here means complete.
    pub sealed_end: Option<u64>,
}

/// The cursor file of one followed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedCursor {
    /// The followed path (for people reading the directory).
    pub path: String,
    /// Oldest first; the last one is the live file.
    pub segments: Vec<SavedSegment>,
}

#[derive(Debug)]
struct Segment {
    dev: u64,
    ino: u64,
    prefix: Vec<u8>,
    committed_end: u64,
    next_line: u64,
    sealed_end: Option<u64>,
}

impl Segment {
    fn complete(&self) -> bool {
        self.sealed_end.is_some_and(|end| self.committed_end >= end)
    }
}

#[derive(Debug, Default)]
struct Entry {
    segments: Vec<Segment>,
    dirty: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Arc<str>, Entry>,
    /// Paths of rotated files being finished after a restart, to the
    /// followed path whose cursor they belong to.
    aliases: HashMap<Arc<str>, Arc<str>>,
    last_flush: Option<Instant>,
}

/// The cursors of every followed file, shared by the tailer (which
/// registers segments) and the daemon (which commits handled lines).
#[derive(Debug)]
pub struct CursorStore {
    dir: PathBuf,
    interval: Duration,
    state: Mutex<State>,
    /// Serialises writers so two flushes never race on one file.
    flushing: Mutex<()>,
}

/// The cursor file name of `path`: a hash, so any path maps to one safe name.
pub fn cursor_file_name(path: &str) -> String {
    format!("{}.json", &blake3::hash(path.as_bytes()).to_hex()[..32])
}

/// SHA-256 (hex) of `bytes`, the fingerprint format of [`crate::sources::cursor`].
pub fn digest_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl CursorStore {
    /// Opens (creating) the cursor directory `dir`, usually
    /// `<data dir>/cursors`. Cursors are written at most every `interval`.
    pub fn open(dir: &Path, interval: Duration) -> Result<Arc<CursorStore>, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::Dir { path: dir.to_path_buf(), source })?;
        Ok(Arc::new(CursorStore {
            dir: dir.to_path_buf(),
            interval,
            state: Mutex::new(State::default()),
            flushing: Mutex::new(()),
        }))
    }

    /// The directory holding the cursor files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cursor saved for `path`, if any and readable. A corrupt cursor
    /// file is reported and treated as absent (the file is then read per
    /// the `start` setting), never trusted.
    pub fn load(&self, path: &str) -> Option<SavedCursor> {
        let file = self.dir.join(cursor_file_name(path));
        let text = match std::fs::read(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(cursor = %file.display(), error = %e, "cannot read cursor");
                return None;
            }
        };
        match serde_json::from_slice::<SavedCursor>(&text) {
            Ok(saved) if saved.path == path => Some(saved),
            Ok(saved) => {
                tracing::warn!(cursor = %file.display(), other = %saved.path, "cursor belongs to another path; ignored");
                None
            }
            Err(e) => {
                tracing::warn!(cursor = %file.display(), error = %e, "corrupt cursor ignored");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tailer: `path` starts emitting a file (identity `dev`/`ino`) from
    /// `offset`, line number `line`. `alias` is the path lines will carry
    /// when it is not `path` (a rotated file finished after a restart).
    /// `prefix` is the file's first bytes as far as known.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &self,
        path: &Arc<str>,
        dev: u64,
        ino: u64,
        offset: u64,
        line: u64,
        prefix: &[u8],
        alias: Option<&Arc<str>>,
    ) {
        let mut state = self.lock();
        if let Some(alias) = alias {
            state.aliases.insert(alias.clone(), path.clone());
        }
        let entry = state.entries.entry(path.clone()).or_default();
        entry.segments.push(Segment {
            dev,
            ino,
            prefix: prefix[..prefix.len().min(FINGERPRINT_LEN as usize)].to_vec(),
            committed_end: offset,
            next_line: line,
            sealed_end: None,
        });
        Self::pop_complete(entry);
        entry.dirty = true;
    }

    /// Tailer: the first bytes (up to [`FINGERPRINT_LEN`]) of the newest
    /// unsealed segment of `path` with this identity, as read so far.
    pub fn set_prefix(&self, path: &Arc<str>, dev: u64, ino: u64, prefix: &[u8]) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(path) {
            if let Some(seg) = entry
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.dev == dev && s.ino == ino && s.sealed_end.is_none())
            {
                let len = prefix.len().min(FINGERPRINT_LEN as usize);
                if len > seg.prefix.len() {
                    seg.prefix = prefix[..len].to_vec();
                    entry.dirty = true;
                }
            }
        }
    }

    /// Tailer: no line beyond `end` will be emitted from the oldest
    /// unsealed segment of `path` with this identity (it was rotated away
    /// and finished, or truncated).
    pub fn seal(&self, path: &Arc<str>, dev: u64, ino: u64, end: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(path) {
            if let Some(seg) = entry
                .segments
                .iter_mut()
                .find(|s| s.dev == dev && s.ino == ino && s.sealed_end.is_none())
            {
                seg.sealed_end = Some(end.max(seg.committed_end));
            }
            Self::pop_complete(entry);
            entry.dirty = true;
        }
    }

    /// Daemon: the line at `position`, `len` bytes long (without its
    /// newline), has been handled. Call it for every file line, in the
    /// order received. Cheap (one uncontended lock); nothing is written
    /// until [`maybe_flush`](Self::maybe_flush) or [`flush`](Self::flush).
    pub fn commit(&self, position: &Position, len: usize) {
        let end = position.offset + len as u64 + 1;
        let mut state = self.lock();
        let key = match state.aliases.get(&position.path) {
            Some(key) => key.clone(),
            None => position.path.clone(),
        };
        let Some(entry) = state.entries.get_mut(&key) else { return };
        let Some(seg) = entry
            .segments
            .iter_mut()
            .find(|s| s.dev == position.dev && s.ino == position.ino && !s.complete())
        else {
            return;
        };
        if end > seg.committed_end {
            seg.committed_end = end;
            seg.next_line = position.line + 1;
            entry.dirty = true;
        }
        Self::pop_complete(entry);
    }

    /// Daemon: [`commit`](Self::commit) for an item of a file source
    /// (other items are ignored).
    pub fn commit_incoming(&self, item: &Incoming) {
        if let Payload::Line { bytes, position: Some(position), .. } = &item.payload {
            self.commit(position, bytes.len());
        }
    }

    /// Drops finished segments from the front: what remains is what a
    /// restart must still read.
    fn pop_complete(entry: &mut Entry) {
        while entry.segments.len() > 1 && entry.segments[0].complete() {
            entry.segments.remove(0);
        }
    }

    /// Writes the changed cursors if `interval` has passed since the last
    /// write. Returns how many files were written.
    pub fn maybe_flush(&self) -> Result<usize, StoreError> {
        {
            let state = self.lock();
            if state.last_flush.is_some_and(|t| t.elapsed() < self.interval) {
                return Ok(0);
            }
        }
        self.flush()
    }

    /// Writes every changed cursor now (at shutdown, after the daemon has
    /// committed the last line it handled).
    pub fn flush(&self) -> Result<usize, StoreError> {
        let _writer = self.flushing.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot: Vec<SavedCursor> = {
            let mut state = self.lock();
            state.last_flush = Some(Instant::now());
            state
                .entries
                .iter_mut()
                .filter(|(_, e)| e.dirty)
                .map(|(path, entry)| {
                    entry.dirty = false;
                    SavedCursor {
                        path: path.to_string(),
                        segments: entry
                            .segments
                            .iter()
                            .map(|s| SavedSegment {
                                dev: s.dev,
                                ino: s.ino,
                                offset: s.committed_end,
                                line: s.next_line,
                                fingerprint_len: s.prefix.len() as u64,
                                fingerprint: digest_hex(&s.prefix),
                                sealed_end: s.sealed_end,
                            })
                            .collect(),
                    }
                })
                .collect()
        };
        for saved in &snapshot {
            if let Err(e) = self.write_one(saved) {
                // Written next time instead.
                if let Some(entry) = self.lock().entries.get_mut(saved.path.as_str()) {
                    entry.dirty = true;
                }
                return Err(e);
            }
        }
        if !snapshot.is_empty() {
            let dir = File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| StoreError::Write { path: self.dir.clone(), source });
            dir?;
        }
        Ok(snapshot.len())
    }

    fn write_one(&self, saved: &SavedCursor) -> Result<(), StoreError> {
        let name = cursor_file_name(&saved.path);
        let target = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let err = |source| StoreError::Write { path: target.clone(), source };
        let body = serde_json::to_vec(saved).map_err(io::Error::from).map_err(err)?;
        let mut file = File::create(&tmp).map_err(err)?;
        file.write_all(&body).and_then(|()| file.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, &target).map_err(err)
    }
}
