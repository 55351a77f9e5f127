//! The parallel walk and hash: turns a rule set into the stream of file
//! records, in path order, that the diff and the baseline writer consume.
//!
//! One walker thread lists directories depth-first with entries sorted by
//! name (which yields [`path_cmp`](hikeshi_core::fim::path::path_cmp)
//! order) and numbers every path it wants examined. Worker threads `lstat`,
//! open, hash and re-`fstat` each path; the consumer puts their results back
//! in sequence order. A window caps how many paths are in flight, so memory
//! stays bounded on trees of millions of files however slow one big file is.
//!
//! Files are opened with `O_NOFOLLOW | O_NOATIME | O_NONBLOCK`: a path swapped
//! for a symlink or a FIFO between `lstat` and `open` cannot make us hash
//! something else or hang. Content is read with a large buffer rather than
//! mmap, because a file truncated while mapped would kill us with SIGBUS,
//! and a file changing during the scan is exactly what we must survive: if
//! the inode, size, mtime or ctime after hashing differ from the `lstat`
//! before, the path is examined once more and, if it still moves, reported
//! as "changed during scan".

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use hikeshi_core::fim::path::{display, join};
use hikeshi_core::fim::report::{IssueKind, ScanIssue};
use hikeshi_core::fim::{Attr, AttrSet, FileRecord, FileTime, FileType, RuleSet};
use sha2::Digest;
use thiserror::Error;

/// Paths examined or queued but not yet consumed, at most.
const WINDOW: usize = 8192;
/// Read buffer per worker.
const READ_BUF: usize = 512 * 1024;

/// One item of the scan, in path order.
#[derive(Debug)]
pub enum ScanEvent {
    /// A path and its attributes.
    Record(FileRecord),
    /// Something that went wrong for one path (never fatal).
    Issue(ScanIssue),
}

/// A failure of the scan machinery itself.
#[derive(Debug, Error)]
pub enum ScanError {
    #[error("a scan worker stopped unexpectedly; the scan is incomplete")]
    WorkerLost,
}

/// Running totals, readable while the scan goes on (for progress).
#[derive(Debug, Default)]
pub struct Counters {
    pub entries: AtomicU64,
    pub bytes_hashed: AtomicU64,
}

struct Outcome {
    record: Option<FileRecord>,
    issues: Vec<ScanIssue>,
}

struct Job {
    seq: u64,
    path: Vec<u8>,
    attrs: AttrSet,
}

/// Caps the number of paths in flight.
struct Window {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Window {
    fn acquire(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.0 >= WINDOW && !state.1 {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.1 {
            return false;
        }
        state.0 += 1;
        true
    }

    fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        self.changed.notify_one();
    }

    fn cancel(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_all();
    }
}

/// A running scan; iterate it to get events in path order.
pub struct Scan {
    results: Receiver<(u64, Outcome)>,
    pending: BTreeMap<u64, Outcome>,
    next: u64,
    ready: VecDeque<ScanEvent>,
    window: Arc<Window>,
    counters: Arc<Counters>,
}

impl Scan {
    /// Starts walking `rules` with `threads` hashing workers (at least one).
    pub fn start(rules: Arc<RuleSet>, threads: usize) -> Scan {
        let window = Arc::new(Window { state: Mutex::new((0, false)), changed: Condvar::new() });
        let counters = Arc::new(Counters::default());
        let (job_tx, job_rx) = sync_channel::<Job>(WINDOW);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, result_rx) = channel();
        for _ in 0..threads.max(1) {
            let jobs = Arc::clone(&job_rx);
            let results = result_tx.clone();
            let counters = Arc::clone(&counters);
            std::thread::spawn(move || worker(&jobs, &results, &counters));
        }
        let walker_window = Arc::clone(&window);
        std::thread::spawn(move || {
            let mut walker = Walker {
                rules: &rules,
                jobs: job_tx,
                results: result_tx,
                window: &walker_window,
                seq: 0,
            };
            walker.run();
        });
        Scan {
            results: result_rx,
            pending: BTreeMap::new(),
            next: 0,
            ready: VecDeque::new(),
            window,
            counters,
        }
    }

    /// Totals so far.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }
}

impl Iterator for Scan {
    type Item = Result<ScanEvent, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if let Some(outcome) = self.pending.remove(&self.next) {
                self.next += 1;
                self.window.release();
                self.ready.extend(outcome.issues.into_iter().map(ScanEvent::Issue));
                if let Some(record) = outcome.record {
                    self.counters.entries.fetch_add(1, Ordering::Relaxed);
                    self.ready.push_back(ScanEvent::Record(record));
                }
                continue;
            }
            match self.results.recv() {
                Ok((seq, outcome)) => {
                    self.pending.insert(seq, outcome);
                }
                Err(_) if self.pending.is_empty() => return None,
                Err(_) => {
                    self.pending.clear();
                    return Some(Err(ScanError::WorkerLost));
                }
            }
        }
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        // Stops the walker; workers stop when their results have nowhere to go.
        self.window.cancel();
    }
}

struct Walker<'a> {
    rules: &'a RuleSet,
    jobs: SyncSender<Job>,
    results: Sender<(u64, Outcome)>,
    window: &'a Window,
    seq: u64,
}

impl Walker<'_> {
    fn run(&mut self) {
        for root in self.rules.roots() {
            let root = root.as_bytes().to_vec();
            let meta = match std::fs::symlink_metadata(os_path(&root)) {
                Ok(meta) => meta,
                // A configured path that does not exist (e.g. /lib64 on some
                // systems) has no records; if the baseline had some, they
                // show up as removed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    if !self.issue(&root, IssueKind::Unreadable, e.to_string()) {
                        return;
                    }
                    continue;
                }
            };
            if self.rules.is_excluded(&root) {
                continue;
            }
            if let Some(attrs) = self.rules.rule_attrs(&root) {
                if !self.examine(root.clone(), attrs) {
                    return;
                }
            }
            if meta.is_dir() && self.rules.reaches_below(&root) && !self.descend(root) {
                return;
            }
        }
    }

    /// Depth-first walk below `top`; false if the scan was cancelled.
    fn descend(&mut self, top: Vec<u8>) -> bool {
        let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Entry>)> = Vec::new();
        match list(&top) {
            Ok(entries) => stack.push((top, entries.into_iter())),
            Err(e) => return self.issue(&top, IssueKind::UnlistableDir, e.to_string()),
        }
        loop {
            let next = match stack.last_mut() {
                None => return true,
                Some((dir, entries)) => {
                    entries.next().map(|(name, is_dir)| (join(dir, &name), is_dir))
                }
            };
            let Some((path, is_dir)) = next else {
                stack.pop();
                continue;
            };
            if self.rules.is_excluded(&path) {
                continue;
            }
            if let Some(attrs) = self.rules.rule_attrs(&path) {
                if !self.examine(path.clone(), attrs) {
                    return false;
                }
            }
            if is_dir && self.rules.reaches_below(&path) {
                match list(&path) {
                    Ok(entries) => stack.push((path, entries.into_iter())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        if !self.issue(&path, IssueKind::UnlistableDir, e.to_string()) {
                            return false;
                        }
                    }
                }
            }
        }
    }

    fn examine(&mut self, path: Vec<u8>, attrs: AttrSet) -> bool {
        if !self.window.acquire() {
            return false;
        }
        let seq = self.seq;
        self.seq += 1;
        self.jobs.send(Job { seq, path, attrs }).is_ok()
    }

    fn issue(&mut self, path: &[u8], kind: IssueKind, detail: String) -> bool {
        if !self.window.acquire() {
            return false;
        }
        let seq = self.seq;
        self.seq += 1;
        let outcome =
            Outcome { record: None, issues: vec![ScanIssue { path: display(path), kind, detail }] };
        self.results.send((seq, outcome)).is_ok()
    }
}

/// A directory entry: its name and whether it is a directory.
type Entry = (Vec<u8>, bool);

/// A directory's entries sorted by name, with "is a directory" from the
/// directory entry itself (no `stat`).
fn list(dir: &[u8]) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(os_path(dir))? {
        let entry = entry?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        entries.push((entry.file_name().as_bytes().to_vec(), is_dir));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn os_path(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

fn worker(jobs: &Mutex<Receiver<Job>>, results: &Sender<(u64, Outcome)>, counters: &Counters) {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let outcome = examine(&job.path, job.attrs, &mut buf, counters);
        if results.send((job.seq, outcome)).is_err() {
            return;
        }
    }
}

/// What one attempt at examining a path gave.
enum Attempt {
    Settled(Outcome),
    /// The file moved under us; the outcome is the best we saw.
    Raced(Outcome, String),
}

/// Examines `path`, retrying once if it changes while being read.
fn examine(path: &[u8], attrs: AttrSet, buf: &mut [u8], counters: &Counters) -> Outcome {
    match examine_once(path, attrs, buf, counters) {
        Attempt::Settled(outcome) => outcome,
        Attempt::Raced(..) => match examine_once(path, attrs, buf, counters) {
            Attempt::Settled(outcome) => outcome,
            Attempt::Raced(mut outcome, why) => {
                outcome.issues.push(ScanIssue {
                    path: display(path),
                    kind: IssueKind::ChangedDuringScan,
                    detail: why,
                });
                outcome
            }
        },
    }
}

fn record_from(path: &[u8], attrs: AttrSet, meta: &std::fs::Metadata) -> FileRecord {
    FileRecord {
        path: path.to_vec(),
        attrs,
        ftype: Some(FileType::from_mode(meta.mode())),
        mode: meta.mode() & 0o7777,
        ino: meta.ino(),
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        mtime: FileTime { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 },
        ctime: FileTime { sec: meta.ctime(), nsec: meta.ctime_nsec() as u32 },
        ..FileRecord::default()
    }
}

fn examine_once(path: &[u8], attrs: AttrSet, buf: &mut [u8], counters: &Counters) -> Attempt {
    let p = os_path(path);
    let meta = match std::fs::symlink_metadata(p) {
        Ok(meta) => meta,
        Err(e) => {
            let kind = if e.kind() == io::ErrorKind::NotFound {
                IssueKind::Vanished
            } else {
                IssueKind::Unreadable
            };
            return Attempt::Settled(Outcome {
                record: None,
                issues: vec![ScanIssue { path: display(path), kind, detail: e.to_string() }],
            });
        }
    };
    let mut record = record_from(path, attrs, &meta);
    let mut issues = Vec::new();
    let mut unreadable = |record: &mut FileRecord, what: &str, e: &io::Error| {
        let detail = format!("{what}: {e}");
        issues.push(ScanIssue {
            path: display(path),
            kind: IssueKind::Unreadable,
            detail: detail.clone(),
        });
        record.unreadable = Some(detail);
    };
    if meta.file_type().is_symlink() && attrs.contains(Attr::LinkTarget) {
        match std::fs::read_link(p) {
            Ok(target) => record.link_target = Some(target.into_os_string().into_vec()),
            Err(e) => unreadable(&mut record, "cannot read link", &e),
        }
    }
    if meta.is_file() && attrs.wants_content() {
        match hash_file(p, &meta, attrs, buf, counters) {
            Ok(Hashed::Consistent { sha256, blake3 }) => {
                record.sha256 = sha256;
                record.blake3 = blake3;
            }
            Ok(Hashed::Moved(why)) => {
                return Attempt::Raced(Outcome { record: Some(record), issues }, why);
            }
            // Gone between lstat and open, or replaced by a symlink (ELOOP
            // from O_NOFOLLOW): the path moved under us.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) =>
            {
                return Attempt::Raced(
                    Outcome { record: Some(record), issues },
                    format!("while opening: {e}"),
                );
            }
            Err(e) => unreadable(&mut record, "cannot read content", &e),
        }
    }
    if attrs.contains(Attr::Xattrs) {
        match read_xattrs(p) {
            Ok(list) => record.xattrs = Some(list),
            Err(e) => unreadable(&mut record, "cannot read xattrs", &e),
        }
    }
    Attempt::Settled(Outcome { record: Some(record), issues })
}

enum Hashed {
    Consistent { sha256: Option<[u8; 32]>, blake3: Option<[u8; 32]> },
    Moved(String),
}

fn open_for_hashing(path: &Path) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    match OpenOptions::new().read(true).custom_flags(base | libc::O_NOATIME).open(path) {
        // O_NOATIME is refused (EPERM) on files we do not own unless we
        // have CAP_FOWNER; reading them then may touch atime, nothing worse.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            OpenOptions::new().read(true).custom_flags(base).open(path)
        }
        other => other,
    }
}

fn hash_file(
    path: &Path,
    before: &std::fs::Metadata,
    attrs: AttrSet,
    buf: &mut [u8],
    counters: &Counters,
) -> io::Result<Hashed> {
    let mut file = open_for_hashing(path)?;
    let mut sha256 = attrs.contains(Attr::Sha256).then(sha2::Sha256::new);
    let mut blake3 = attrs.contains(Attr::Blake3).then(blake3::Hasher::new);
    let mut total = 0u64;
    let expected = before.size();
    loop {
        // Once the size `stat` gave is read, the EOF read is skipped: a
        // file that grew is caught by the size and time check below.
        if total == expected && total > 0 {
            break;
        }
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if let Some(h) = sha256.as_mut() {
            h.update(&buf[..n]);
        }
        if let Some(h) = blake3.as_mut() {
            h.update(&buf[..n]);
        }
    }
    counters.bytes_hashed.fetch_add(total, Ordering::Relaxed);
    let after = file.metadata()?;
    let same_inode = after.dev() == before.dev() && after.ino() == before.ino();
    if !same_inode {
        return Ok(Hashed::Moved("replaced while being read (new inode)".into()));
    }
    if after.size() != before.size()
        || total != after.size()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.ctime() != before.ctime()
        || after.ctime_nsec() != before.ctime_nsec()
    {
        return Ok(Hashed::Moved(format!(
            "modified while being read (size {} -> {}, {} bytes read)",
            before.size(),
            after.size(),
            total
        )));
    }
    Ok(Hashed::Consistent {
        sha256: sha256.map(|h| h.finalize().into()),
        blake3: blake3.map(|h| *h.finalize().as_bytes()),
    })
}

/// Extended attributes sorted by name; none where the file system has none.
fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 64 * 1024];
    let len = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match rustix::fs::lgetxattr(path, OsStr::from_bytes(name), &mut value[..]) {
            Ok(n) => out.push((name.to_vec(), value[..n].to_vec())),
            // Removed between list and get: the file is changing; record
            // what is there now.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hikeshi_core::fim::{Groups, HashAlgo, Rule, Scope};

    fn attrs() -> AttrSet {
        Groups::predefined(HashAlgo::Sha256).parse("p+i+s+m+c+sha256+blake3+xattrs").unwrap()
    }

    fn bytes(p: &Path) -> Vec<u8> {
        p.as_os_str().as_bytes().to_vec()
    }

    #[test]
    fn file_modified_after_lstat_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"before").unwrap();
        let stale = std::fs::symlink_metadata(&path).unwrap();
        std::fs::write(&path, b"after, longer").unwrap();
        let mut buf = vec![0; 4096];
        match hash_file(&path, &stale, attrs(), &mut buf, &Counters::default()).unwrap() {
            Hashed::Moved(why) => assert!(why.contains("modified while being read"), "{why}"),
            Hashed::Consistent { .. } => panic!("a changed file was hashed as consistent"),
        }
    }

    #[test]
    fn file_replaced_after_lstat_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"same").unwrap();
        let stale = std::fs::symlink_metadata(&path).unwrap();
        std::fs::write(dir.path().join("g"), b"same").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        let mut buf = vec![0; 4096];
        match hash_file(&path, &stale, attrs(), &mut buf, &Counters::default()).unwrap() {
            Hashed::Moved(why) => assert!(why.contains("new inode"), "{why}"),
            Hashed::Consistent { .. } => panic!("a replaced file was hashed as consistent"),
        }
    }

    #[test]
    fn symlink_swapped_in_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let err = open_for_hashing(&path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn vanished_path_is_an_issue_without_a_record() {
        let outcome =
            examine(b"/nonexistent/hikeshi-test", attrs(), &mut [0; 16], &Counters::default());
        assert!(outcome.record.is_none());
        assert_eq!(outcome.issues[0].kind, IssueKind::Vanished);
    }

    #[test]
    fn hashes_match_reference_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        // A small buffer forces several reads.
        let outcome = examine(&bytes(&path), attrs(), &mut [0; 2], &Counters::default());
        let record = outcome.record.unwrap();
        assert_eq!(
            hikeshi_core::fim::record::hex(&record.sha256.unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(record.blake3.unwrap(), *blake3::hash(b"abc").as_bytes());
        assert_eq!(record.xattrs, Some(vec![]));
        assert!(outcome.issues.is_empty());
    }

    #[test]
    fn scan_yields_path_order_and_dropping_it_early_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "a-c", "a/b", "b"] {
            let p = dir.path().join(name);
            if name == "a" {
                std::fs::create_dir(&p).unwrap();
            } else {
                std::fs::write(&p, name).unwrap();
            }
        }
        let root = dir.path().to_str().unwrap().to_string();
        let rules = RuleSet::new(
            vec![Rule { path: root.clone(), attrs: attrs(), scope: Scope::Tree }],
            &[],
            HashAlgo::Sha256,
        )
        .unwrap();
        let rules = Arc::new(rules);
        let names: Vec<String> = Scan::start(Arc::clone(&rules), 3)
            .map(|e| match e.unwrap() {
                ScanEvent::Record(r) => display(&r.path)[root.len()..].to_string(),
                ScanEvent::Issue(i) => panic!("{i:?}"),
            })
            .collect();
        assert_eq!(names, vec!["", "/a", "/a/b", "/a-c", "/b"]);
        let mut scan = Scan::start(rules, 2);
        assert!(scan.next().is_some());
        drop(scan);
    }
}
