//! The synchronous core of the file source: which files are followed, and
//! reading each one by identity across rotation, truncation, deletion and
//! re-creation. [`Tailer::check_path`] and [`Tailer::rescan`] do all the
//! work; the thread in the parent module only decides *when* (inotify
//! events, a slow periodic safety net), so tests can drive the core step
//! by step.
//!
//! Per followed path there is one *live* reading (the file the path names
//! now) and zero or more *finishing* readings, read first:
//! - a file renamed away by rotation, kept open because its writer may add
//!   a few lines before it reopens; dropped once the new file has data and
//!   the old one was read to its end after that (or after [`DRAIN_MAX`]);
//! - after a restart, a rotated sibling holding lines not yet read;
//! - after `copytruncate`, the copy (a sibling starting with the same
//!   bytes), from where we had stopped.
//!
//! Only complete lines are emitted; a last line without its newline is
//! held (bounded by `max_line_bytes`) until its newline arrives, or
//! emitted as it is when its file is finished for good.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::pattern::{HostPattern, PathPattern};
use super::store::{digest_hex, CursorStore, SavedSegment};
use super::{FileSourceConfig, StartAt, TailError};
use crate::sources::cursor::{siblings, FINGERPRINT_LEN};
use crate::sources::{Incoming, Payload, Position, SourceStats};

/// How long a file renamed away is still read at most.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);
/// Bytes read from one file before others get a turn.
const FAIR_SHARE: u64 = 4 * 1024 * 1024;
const READ_BLOCK: usize = 256 * 1024;

/// What the file source saw besides lines, for status and tests.
#[derive(Debug, Default)]
pub struct TailCounters {
    /// Files renamed (or deleted) away and replaced.
    pub rotations: AtomicU64,
    /// Files truncated in place (`copytruncate`).
    pub truncations: AtomicU64,
    /// Copies found after a truncation and finished.
    pub copies_finished: AtomicU64,
    /// Lines skipped for being longer than `max_line_bytes`.
    pub too_long: AtomicU64,
    /// Times lines were lost for sure: data we had seen in a file was
    /// truncated or rotated away before we read it, and no copy was found.
    pub gaps: AtomicU64,
    /// Saved positions whose file was not found again at a restart
    /// (deleted, compressed, or truncated without a copy): lines written
    /// between the last save and then may be missing (or there may have
    /// been none: it cannot be known).
    pub lost_files: AtomicU64,
    /// Files currently followed.
    pub files: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Where items go. Returns false when the receiver is gone (stop).
pub type Sink<'a> = dyn FnMut(Incoming) -> bool + 'a;

/// The receiver of the source's items disappeared or stop was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Live,
    /// A rotated file: read to its end, then sealed and closed.
    Finish,
    /// The file the path named before a rename or delete.
    Draining {
        since: Instant,
        drop_next: bool,
    },
}

#[derive(Debug)]
struct Reading {
    file: File,
    /// The path lines carry in their [`Position`].
    label: Arc<str>,
    dev: u64,
    ino: u64,
    /// Offset just after the last complete line.
    consumed: u64,
    /// Bytes read so far (`consumed` plus a held partial line).
    read_pos: u64,
    /// Number of the next line.
    line: u64,
    /// End of the last line emitted (where the daemon's commits stop: a
    /// skipped long line after it is never committed).
    emitted_end: u64,
    partial: Vec<u8>,
    /// Discarding the rest of a line longer than the limit.
    skipping: bool,
    /// The file's first bytes (up to the fingerprint length).
    prefix: Vec<u8>,
    /// The size seen at the last stat.
    last_size: u64,
    role: Role,
}

#[derive(Debug)]
struct Followed {
    key: Arc<str>,
    source: Arc<str>,
    host: Option<Arc<str>>,
    live: Option<Reading>,
    finishing: VecDeque<Reading>,
    /// Found by the first scan without a cursor: starts per `start`.
    fresh: bool,
    /// The symlink target's path, when the followed path is a symlink.
    target: Option<PathBuf>,
}

/// Opens `path` for reading without blocking (a FIFO) and checks that it
/// is a regular file.
fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, meta))
}

fn read_prefix(file: &File, upto: u64) -> io::Result<Vec<u8>> {
    let len = upto.min(FINGERPRINT_LEN) as usize;
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = file.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// The offset after the last newline of `file` and how many lines come
/// before it (the start of a file read from its end).
fn end_of_complete_lines(file: &File) -> io::Result<(u64, u64)> {
    let mut reader = io::BufReader::with_capacity(READ_BLOCK, file);
    let mut buf = vec![0; READ_BLOCK];
    let (mut pos, mut lines, mut after_last) = (0u64, 0u64, 0u64);
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((after_last, lines));
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        if let Some(last) = memchr::memrchr(b'\n', &buf[..n]) {
            after_last = pos + last as u64 + 1;
        }
        pos += n as u64;
    }
}

/// Where a saved segment's unread lines are now.
enum Located {
    Live,
    /// A rotated sibling; `renamed` when it is the same inode (its writer
    /// may still append), not a copy.
    Sibling {
        path: PathBuf,
        renamed: bool,
    },
    Lost,
}

fn starts_with_prefix(path: &Path, seg: &SavedSegment) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let Ok(prefix) = read_prefix(&file, seg.fingerprint_len) else { return false };
    prefix.len() as u64 == seg.fingerprint_len && digest_hex(&prefix) == seg.fingerprint
}

fn locate(path: &Path, seg: &SavedSegment) -> Located {
    let fits = |p: &Path, meta: &std::fs::Metadata, by_inode: bool| {
        meta.is_file()
            && meta.len() >= seg.offset
            && (!by_inode || (meta.dev() == seg.dev && meta.ino() == seg.ino))
            && starts_with_prefix(p, seg)
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if fits(path, &meta, true) {
            return Located::Live;
        }
    }
    let candidates = siblings(path);
    // A renamed file keeps its inode; a copy only its first bytes, which
    // identify it only if there are some.
    for by_inode in [true, false] {
        if !by_inode && seg.fingerprint_len == 0 {
            break;
        }
        for sibling in &candidates {
            let Ok(meta) = std::fs::metadata(sibling) else { continue };
            if fits(sibling, &meta, by_inode) {
                let renamed = meta.dev() == seg.dev && meta.ino() == seg.ino;
                return Located::Sibling { path: sibling.clone(), renamed };
            }
        }
    }
    Located::Lost
}

/// The file source's core, driven by [`super::FileSource`] or by tests.
#[derive(Debug)]
pub struct Tailer {
    patterns: Vec<PathPattern>,
    host_pattern: Option<HostPattern>,
    start: StartAt,
    max_line: usize,
    files: BTreeMap<PathBuf, Followed>,
    store: Arc<CursorStore>,
    stats: Arc<SourceStats>,
    counters: Arc<TailCounters>,
    buf: Vec<u8>,
    /// False until the first scan: files found then start per `start`,
    /// files appearing later are read from their beginning.
    started: bool,
    dirs: Vec<PathBuf>,
    /// Paths whose error was already reported (until they read fine).
    reported: HashSet<PathBuf>,
    /// Symlink targets of followed paths, to the followed path.
    targets: HashMap<PathBuf, PathBuf>,
    /// Paths that had more to read when their fair share was used up.
    more: BTreeSet<PathBuf>,
    fair_share_used: bool,
}

impl Tailer {
    /// A tailer for `config`, registering with `store`. Reads nothing yet.
    pub fn new(
        config: &FileSourceConfig,
        store: Arc<CursorStore>,
        stats: Arc<SourceStats>,
        counters: Arc<TailCounters>,
    ) -> Result<Tailer, TailError> {
        let patterns =
            config.paths.iter().map(|p| PathPattern::new(p)).collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(TailError::NoPaths);
        }
        let host_pattern = config.host_from_path.as_deref().map(HostPattern::new).transpose()?;
        if config.max_line_bytes == 0 {
            return Err(TailError::MaxLine);
        }
        Ok(Tailer {
            patterns,
            host_pattern,
            start: config.start,
            max_line: config.max_line_bytes,
            files: BTreeMap::new(),
            store,
            stats,
            counters,
            buf: vec![0; READ_BLOCK],
            started: false,
            dirs: Vec::new(),
            reported: HashSet::new(),
            targets: HashMap::new(),
            more: BTreeSet::new(),
            fair_share_used: false,
        })
    }

    /// Directories to watch: those the patterns walk through, and the
    /// directories of symlinked files' targets.
    pub fn watch_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// True when some file has more to read right away (a busy file
    /// yields after its fair share so others get a turn).
    pub fn has_more(&self) -> bool {
        !self.more.is_empty()
    }

    /// Reads on in the files that had more, one fair share each.
    pub fn continue_reading(&mut self, sink: &mut Sink<'_>) -> Result<(), Disconnected> {
        let paths = std::mem::take(&mut self.more);
        paths.iter().try_for_each(|path| self.check(path, sink))
    }

    /// The followed paths.
    pub fn followed(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    fn report(&mut self, path: &Path, what: &str, error: &dyn std::fmt::Display) {
        if self.reported.insert(path.to_path_buf()) {
            bump(&self.stats.errors);
            tracing::warn!(path = %path.display(), error = %error, "{what}");
        }
    }

    /// Expands the patterns, starts following new matches, and checks
    /// every followed file (also verifying each file's first bytes, which
    /// catches a truncation that regrew past our offset).
    /// Expands the patterns and starts following new matches (reading
    /// nothing).
    fn discover(&mut self) {
        let mut dirs = Vec::new();
        let mut found = Vec::new();
        for pattern in &self.patterns {
            let expansion = pattern.expand();
            dirs.extend(expansion.dirs);
            found.extend(expansion.files);
        }
        self.targets.clear();
        for path in &found {
            if !self.files.contains_key(path) {
                self.follow(path.clone());
            }
            let target = std::fs::canonicalize(path).ok().filter(|t| t != path);
            if let Some(target) = &target {
                if let Some(parent) = target.parent() {
                    dirs.push(parent.to_path_buf());
                }
                self.targets.insert(target.clone(), path.clone());
            }
            if let Some(followed) = self.files.get_mut(path) {
                followed.target = target;
            }
        }
        dirs.sort();
        dirs.dedup();
        self.dirs = dirs;
    }

    /// Positions the files found now (per their cursor or `start`) without
    /// reading them, so lines written after this returns are all seen.
    pub fn prime(&mut self) {
        self.discover();
        let fresh: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, f)| f.fresh && f.live.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        for path in fresh {
            let Some(mut followed) = self.files.remove(&path) else { continue };
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                followed.fresh = false;
                let from_end = self.start == StartAt::End;
                followed.live = self.open_live(&path, &followed.key.clone(), from_end);
            }
            self.files.insert(path, followed);
        }
        self.started = true;
    }

    pub fn rescan(&mut self, sink: &mut Sink<'_>) -> Result<(), Disconnected> {
        self.discover();
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        let result = paths.iter().try_for_each(|path| self.check(path, sink));
        self.started = true;
        self.counters.files.store(self.files.len() as u64, Ordering::Relaxed);
        result
    }

    /// Checks one path after an event naming it: reads what was appended
    /// and notices rotation, truncation and deletion. Paths that are not
    /// followed are ignored (a rescan picks up new matches).
    pub fn check_path(&mut self, path: &Path, sink: &mut Sink<'_>) -> Result<(), Disconnected> {
        if self.files.contains_key(path) {
            self.check(path, sink)?;
        }
        Ok(())
    }

    /// Checks what an event in `dir` about entry `name` may concern: the
    /// followed file of that name, the followed symlink pointing at it, or
    /// else the followed files of `dir` still finishing a renamed file
    /// (whose new name we do not track).
    pub fn check_entry(
        &mut self,
        dir: &Path,
        name: &std::ffi::OsStr,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        let path = dir.join(name);
        if self.files.contains_key(&path) {
            return self.check(&path, sink);
        }
        if let Some(followed) = self.targets.get(&path).cloned() {
            return self.check(&followed, sink);
        }
        let finishing: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(p, f)| {
                !f.finishing.is_empty()
                    && (p.parent() == Some(dir)
                        || f.target.as_ref().and_then(|t| t.parent()) == Some(dir))
            })
            .map(|(p, _)| p.clone())
            .collect();
        finishing.iter().try_for_each(|p| self.check(p, sink))
    }

    fn follow(&mut self, path: PathBuf) {
        let key: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let host = match &self.host_pattern {
            None => None,
            Some(pattern) => match pattern.host(&path) {
                Ok(host) => host,
                Err(raw) => {
                    bump(&self.stats.rejected);
                    tracing::warn!(path = %path.display(), host = %String::from_utf8_lossy(&raw).escape_debug(), "host in path is not a valid host name; ignored");
                    None
                }
            },
        };
        let mut followed = Followed {
            source: Arc::from(format!("file:{key}")),
            key: key.clone(),
            host,
            live: None,
            finishing: VecDeque::new(),
            fresh: !self.started,
            target: None,
        };
        if let Some(saved) = self.store.load(&key) {
            followed.fresh = false;
            self.resume(&path, &mut followed, &saved.segments);
        }
        self.files.insert(path, followed);
    }

    /// Restarts from a saved cursor: each saved segment is found again
    /// (the live file, or a rotated sibling to finish) or reported lost.
    fn resume(&mut self, path: &Path, followed: &mut Followed, segments: &[SavedSegment]) {
        let mut found: Vec<Located> = segments.iter().map(|seg| locate(path, seg)).collect();
        // Two saved segments can lead to one file: a copy holds the
        // truncated file's lines and its own (read once, from the lower
        // offset), or an inode was reused (an empty file's cursor, with no
        // leading bytes to check, loses to one identified by content).
        let identity = |located: &Located| {
            let file = match located {
                Located::Live => path,
                Located::Sibling { path, .. } => path.as_path(),
                Located::Lost => return None,
            };
            std::fs::metadata(file).ok().map(|m| (m.dev(), m.ino()))
        };
        let identities: Vec<_> = found.iter().map(identity).collect();
        let rank = |seg: &SavedSegment, index: usize| {
            (seg.fingerprint_len > 0, std::cmp::Reverse(seg.offset), index)
        };
        for i in 0..found.len() {
            let Some(id) = identities[i] else { continue };
            let stronger = (0..found.len()).any(|j| {
                j != i && identities[j] == Some(id) && rank(&segments[j], j) > rank(&segments[i], i)
            });
            if stronger {
                found[i] = Located::Lost;
            }
        }
        for (index, (seg, located)) in segments.iter().zip(found).enumerate() {
            // A copy found means the file was truncated in place; if it
            // was then renamed away, its new content is read too. (Not
            // guessed for a file not found at all: its inode may have been
            // reused by an unrelated file.)
            let truncated_since = matches!(located, Located::Sibling { renamed: false, .. })
                && !segments[index + 1..]
                    .iter()
                    .any(|later| later.dev == seg.dev && later.ino == seg.ino);
            match located {
                Located::Live if followed.live.is_some() => {}
                Located::Live => {
                    match self.open_reading(
                        path,
                        followed.key.clone(),
                        seg.offset,
                        seg.line,
                        Role::Live,
                    ) {
                        Ok(reading) => {
                            self.store.begin(
                                &followed.key,
                                reading.dev,
                                reading.ino,
                                seg.offset,
                                seg.line,
                                &reading.prefix,
                                None,
                            );
                            followed.live = Some(reading);
                        }
                        Err(e) => self.report(path, "cannot open log file", &e),
                    }
                }
                Located::Sibling { path: sibling, renamed } => {
                    let label: Arc<str> = Arc::from(sibling.to_string_lossy().as_ref());
                    // A renamed file's writer may not have reopened yet.
                    let role = if renamed {
                        Role::Draining { since: Instant::now(), drop_next: false }
                    } else {
                        Role::Finish
                    };
                    match self.open_reading(&sibling, label.clone(), seg.offset, seg.line, role) {
                        Ok(reading) => {
                            tracing::info!(path = %path.display(), rotated = %sibling.display(), "finishing the rotated file first");
                            self.store.begin(
                                &followed.key,
                                reading.dev,
                                reading.ino,
                                seg.offset,
                                seg.line,
                                &reading.prefix,
                                Some(&label),
                            );
                            followed.finishing.push_back(reading);
                        }
                        Err(e) => self.report(&sibling, "cannot open rotated log file", &e),
                    }
                }
                Located::Lost => {
                    if seg.sealed_end != Some(seg.offset) {
                        bump(&self.counters.lost_files);
                        tracing::warn!(path = %path.display(), offset = seg.offset, "the file read last time is gone (deleted, compressed or truncated without a copy): lines written after the last saved position may be missing");
                    }
                }
            }
            // Truncated (the copy, if any, is queued) and then renamed
            // away: its new content is read from the beginning.
            if truncated_since {
                let queued =
                    |dev, ino| followed.finishing.iter().any(|r| r.dev == dev && r.ino == ino);
                let generation = siblings(path).into_iter().find(|sibling| {
                    std::fs::metadata(sibling).is_ok_and(|m| {
                        m.is_file()
                            && m.dev() == seg.dev
                            && m.ino() == seg.ino
                            && !queued(m.dev(), m.ino())
                    })
                });
                if let Some(sibling) = generation {
                    let label: Arc<str> = Arc::from(sibling.to_string_lossy().as_ref());
                    let role = Role::Draining { since: Instant::now(), drop_next: false };
                    match self.open_reading(&sibling, label.clone(), 0, 1, role) {
                        Ok(reading) => {
                            self.store.begin(
                                &followed.key,
                                reading.dev,
                                reading.ino,
                                0,
                                1,
                                &reading.prefix,
                                Some(&label),
                            );
                            followed.finishing.push_back(reading);
                        }
                        Err(e) => self.report(&sibling, "cannot open rotated log file", &e),
                    }
                }
            }
        }
    }

    fn open_reading(
        &mut self,
        path: &Path,
        label: Arc<str>,
        offset: u64,
        line: u64,
        role: Role,
    ) -> io::Result<Reading> {
        let (file, meta) = open_regular(path)?;
        let prefix = read_prefix(&file, offset)?;
        Ok(Reading {
            file,
            label,
            dev: meta.dev(),
            ino: meta.ino(),
            consumed: offset,
            read_pos: offset,
            emitted_end: offset,
            line,
            partial: Vec::new(),
            skipping: false,
            prefix,
            last_size: meta.len(),
            role,
        })
    }

    /// Starts reading the file `path` names now, as the live reading.
    fn open_live(&mut self, path: &Path, key: &Arc<str>, from_end: bool) -> Option<Reading> {
        let opened = open_regular(path).and_then(|(file, meta)| {
            let (offset, lines) = if from_end { end_of_complete_lines(&file)? } else { (0, 0) };
            let prefix = read_prefix(&file, offset)?;
            Ok(Reading {
                file,
                label: key.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
                consumed: offset,
                read_pos: offset,
                emitted_end: offset,
                line: lines + 1,
                partial: Vec::new(),
                skipping: false,
                prefix,
                last_size: meta.len(),
                role: Role::Live,
            })
        });
        match opened {
            Ok(reading) => {
                self.reported.remove(path);
                self.store.begin(
                    key,
                    reading.dev,
                    reading.ino,
                    reading.consumed,
                    reading.line,
                    &reading.prefix,
                    None,
                );
                Some(reading)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.report(path, "cannot read log file", &e);
                None
            }
        }
    }

    fn check(&mut self, path: &Path, sink: &mut Sink<'_>) -> Result<(), Disconnected> {
        let Some(mut followed) = self.files.remove(path) else { return Ok(()) };
        self.fair_share_used = false;
        let result = self.check_followed(path, &mut followed, sink);
        if self.fair_share_used {
            self.more.insert(path.to_path_buf());
        }
        self.files.insert(path.to_path_buf(), followed);
        result
    }

    fn check_followed(
        &mut self,
        path: &Path,
        followed: &mut Followed,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        // Identity and truncation are checked before reading, so bytes of
        // a truncated file that regrew are never read at the old offset.
        self.finish_old(followed, sink)?;
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Renamed or deleted: its writer may still add lines.
                if let Some(mut live) = followed.live.take() {
                    bump(&self.counters.rotations);
                    live.role = Role::Draining { since: Instant::now(), drop_next: false };
                    followed.finishing.push_back(live);
                }
                return Ok(());
            }
            Err(e) => {
                self.report(path, "cannot stat log file", &e);
                return Ok(());
            }
            Ok(meta) => {
                let same = followed
                    .live
                    .as_ref()
                    .is_some_and(|l| l.dev == meta.dev() && l.ino == meta.ino());
                if same {
                    let mut live = followed.live.take().expect("checked");
                    let result = if Self::was_truncated(&mut live) {
                        self.truncated(path, &mut live, followed, sink)
                    } else {
                        Ok(())
                    };
                    followed.live = Some(live);
                    result?;
                } else {
                    if let Some(mut old) = followed.live.take() {
                        bump(&self.counters.rotations);
                        old.role = Role::Draining { since: Instant::now(), drop_next: false };
                        followed.finishing.push_back(old);
                        // Its lines (and a truncation it went through) come
                        // before the new file's.
                        self.finish_old(followed, sink)?;
                    }
                    if !meta.is_file() {
                        self.report(
                            path,
                            "not a regular file; not read",
                            &"directory, FIFO or device",
                        );
                        return Ok(());
                    }
                    let from_end = followed.fresh && self.start == StartAt::End;
                    followed.fresh = false;
                    followed.live = self.open_live(path, &followed.key.clone(), from_end);
                }
            }
        }
        // Read the rotated copy (if truncation found one), then the live file.
        self.finish_old(followed, sink)?;
        if let Some(mut live) = followed.live.take() {
            let read = self.read_available(&mut live, followed, sink);
            let had_data = live.read_pos > 0;
            followed.live = Some(live);
            read?;
            if had_data {
                // The writer has moved to the new file: one more read of
                // the old ones gets their last lines.
                for old in &mut followed.finishing {
                    if let Role::Draining { drop_next, .. } = &mut old.role {
                        *drop_next = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// True when `reading`'s file shrank below what was read or its first
    /// bytes changed: it was truncated (`copytruncate`), maybe regrown.
    fn was_truncated(reading: &mut Reading) -> bool {
        let Ok(meta) = reading.file.metadata() else { return false };
        if meta.len() < reading.read_pos {
            return true;
        }
        let now = read_prefix(&reading.file, reading.prefix.len() as u64).unwrap_or_default();
        if now != reading.prefix {
            return true;
        }
        // Only sizes of the content we are reading count as seen.
        reading.last_size = meta.len().max(reading.last_size);
        false
    }

    /// `reading`'s file was truncated: finish its copy if one is found
    /// among the siblings of `path` (by its first bytes), then read the
    /// new content from the beginning.
    fn truncated(
        &mut self,
        path: &Path,
        reading: &mut Reading,
        followed: &Followed,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        bump(&self.counters.truncations);
        let unread_seen = reading.last_size.max(reading.read_pos) > reading.consumed;
        let mut copy = None;
        if !reading.prefix.is_empty() {
            let seg = SavedSegment {
                dev: reading.dev,
                ino: reading.ino,
                offset: reading.consumed,
                line: reading.line,
                fingerprint_len: reading.prefix.len() as u64,
                fingerprint: digest_hex(&reading.prefix),
                sealed_end: None,
            };
            for sibling in siblings(path) {
                let Ok(meta) = std::fs::metadata(&sibling) else { continue };
                let is_other = meta.dev() != reading.dev || meta.ino() != reading.ino;
                if is_other
                    && meta.is_file()
                    && meta.len() > reading.consumed
                    && starts_with_prefix(&sibling, &seg)
                {
                    copy = Some(sibling);
                    break;
                }
            }
        }
        let (key, consumed, line) = (followed.key.clone(), reading.consumed, reading.line);
        self.store.seal(&key, reading.dev, reading.ino, reading.emitted_end);
        if let Some(copy) = copy {
            let label: Arc<str> = Arc::from(copy.to_string_lossy().as_ref());
            match self.open_reading(&copy, label.clone(), consumed, line, Role::Finish) {
                Ok(mut old) => {
                    bump(&self.counters.copies_finished);
                    self.store.begin(
                        &key,
                        old.dev,
                        old.ino,
                        consumed,
                        line,
                        &old.prefix,
                        Some(&label),
                    );
                    while self.read_available(&mut old, followed, sink)? {}
                    self.emit_partial(&mut old, followed, sink)?;
                    self.store.seal(&key, old.dev, old.ino, old.emitted_end);
                }
                Err(e) => self.report(&copy, "cannot open the copy of a truncated log", &e),
            }
        } else if unread_seen {
            bump(&self.counters.gaps);
            tracing::warn!(path = %path.display(), offset = consumed, "log truncated before its last lines were read, and no copy found: lines lost");
        }
        reading.consumed = 0;
        reading.read_pos = 0;
        reading.emitted_end = 0;
        reading.line = 1;
        reading.partial.clear();
        reading.skipping = false;
        reading.prefix.clear();
        reading.last_size = 0;
        let alias = (reading.label != key).then(|| reading.label.clone());
        self.store.begin(&key, reading.dev, reading.ino, 0, 1, &[], alias.as_ref());
        Ok(())
    }

    /// Reads the finishing files; closes those that are done.
    fn finish_old(
        &mut self,
        followed: &mut Followed,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        let mut keep = VecDeque::new();
        let path = PathBuf::from(followed.key.as_ref());
        while let Some(mut old) = followed.finishing.pop_front() {
            // A renamed file may be truncated too (copytruncate, then
            // rotated away before we looked).
            let mut read = Ok(false);
            if old.role != Role::Finish && Self::was_truncated(&mut old) {
                read = self.truncated(&path, &mut old, followed, sink).map(|()| false);
            }
            // A file that cannot be read any more is finished as it is.
            if read.is_ok() {
                read = self.read_available(&mut old, followed, sink);
            }
            if read.is_err() {
                followed.finishing.push_front(old);
                followed.finishing.extend(keep);
                return read.map(|_| ());
            }
            let more = read.unwrap_or(false);
            let done = match old.role {
                Role::Finish => !more,
                Role::Draining { since, drop_next } => {
                    !more && (drop_next || since.elapsed() > DRAIN_MAX)
                }
                Role::Live => false,
            };
            if done {
                self.emit_partial(&mut old, followed, sink)?;
                self.store.seal(&followed.key, old.dev, old.ino, old.emitted_end);
            } else {
                keep.push_back(old);
            }
        }
        followed.finishing = keep;
        Ok(())
    }

    /// A file finished for good may end without a newline: that last line
    /// is complete now.
    fn emit_partial(
        &mut self,
        reading: &mut Reading,
        followed: &Followed,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        if reading.partial.is_empty() || reading.skipping {
            return Ok(());
        }
        let bytes = std::mem::take(&mut reading.partial);
        let len = bytes.len() as u64;
        self.emit(reading, followed, bytes, sink)?;
        reading.consumed += len;
        reading.line += 1;
        Ok(())
    }

    fn emit(
        &mut self,
        reading: &mut Reading,
        followed: &Followed,
        bytes: Vec<u8>,
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        // As the daemon's commit computes it (a final line without its
        // newline counts one byte more: harmless, nothing follows it).
        reading.emitted_end = reading.consumed + bytes.len() as u64 + 1;
        self.stats.read(bytes.len(), Timestamp::now());
        let item = Incoming {
            source: followed.source.clone(),
            payload: Payload::Line {
                bytes,
                position: Some(Position {
                    path: reading.label.clone(),
                    dev: reading.dev,
                    ino: reading.ino,
                    offset: reading.consumed,
                    line: reading.line,
                }),
                host_hint: followed.host.clone(),
                peer: None,
                backlog: None,
            },
        };
        if sink(item) {
            Ok(())
        } else {
            Err(Disconnected)
        }
    }

    /// Reads and emits what was appended. Returns whether more is left
    /// (the fair share was used up); read errors are reported and end the
    /// read.
    fn read_available(
        &mut self,
        reading: &mut Reading,
        followed: &Followed,
        sink: &mut Sink<'_>,
    ) -> Result<bool, Disconnected> {
        let mut budget = FAIR_SHARE;
        let mut buf = std::mem::take(&mut self.buf);
        let result = loop {
            let n = match reading.file.read_at(&mut buf, reading.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let label = PathBuf::from(reading.label.as_ref());
                    self.report(&label, "cannot read log file", &e);
                    break Ok(false);
                }
            };
            if n == 0 {
                break Ok(false);
            }
            let chunk = &buf[..n];
            if (reading.prefix.len() as u64) < FINGERPRINT_LEN
                && reading.read_pos == reading.prefix.len() as u64
            {
                let take = (FINGERPRINT_LEN as usize - reading.prefix.len()).min(n);
                reading.prefix.extend_from_slice(&chunk[..take]);
                self.store.set_prefix(&followed.key, reading.dev, reading.ino, &reading.prefix);
            }
            if let Err(e) = self.split_lines(reading, followed, chunk, sink) {
                break Err(e);
            }
            budget = budget.saturating_sub(n as u64);
            if budget == 0 {
                self.fair_share_used = true;
                break Ok(true);
            }
        };
        self.buf = buf;
        result
    }

    fn split_lines(
        &mut self,
        reading: &mut Reading,
        followed: &Followed,
        chunk: &[u8],
        sink: &mut Sink<'_>,
    ) -> Result<(), Disconnected> {
        let base = reading.read_pos;
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..newline];
            if reading.skipping || reading.partial.len() + piece.len() > self.max_line {
                self.too_long(reading);
            } else {
                let bytes = if reading.partial.is_empty() {
                    piece.to_vec()
                } else {
                    let mut whole = std::mem::take(&mut reading.partial);
                    whole.extend_from_slice(piece);
                    whole
                };
                // Counted before the send so a stop mid-chunk leaves the
                // reading consistent.
                reading.read_pos = base + newline as u64 + 1;
                self.emit(reading, followed, bytes, sink)?;
            }
            reading.partial.clear();
            reading.skipping = false;
            reading.consumed = base + newline as u64 + 1;
            reading.line += 1;
            start = newline + 1;
        }
        let rest = &chunk[start..];
        if !reading.skipping {
            if reading.partial.len() + rest.len() > self.max_line {
                reading.skipping = true;
                reading.partial = Vec::new();
            } else {
                reading.partial.extend_from_slice(rest);
            }
        }
        reading.read_pos = base + chunk.len() as u64;
        Ok(())
    }

    fn too_long(&self, reading: &Reading) {
        bump(&self.counters.too_long);
        bump(&self.stats.rejected);
        tracing::warn!(path = %reading.label, line = reading.line, max = self.max_line, "line too long; skipped");
    }
}
