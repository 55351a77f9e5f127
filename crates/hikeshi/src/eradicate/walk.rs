//! A parallel, one-filesystem, never-following walk of directory trees:
//! what `hikeshi recent` and the setuid scan of `hikeshi persistence` use
//! instead of `find / -xdev`.
//!
//! Each directory is a rayon task: it is opened relative to its parent's
//! descriptor with `O_NOFOLLOW | O_DIRECTORY` (so a directory swapped for a
//! symlink is never entered), read with `getdents64`, and its entries are
//! `fstatat`ed relative to it. Directories on another device than their
//! root are skipped (`-xdev`), as are `proc`, `sys`, `dev` and `run` at the
//! top of each root. Unreadable directories are collected as errors, never
//! fatal.

use std::cmp::Ordering as CmpOrdering;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use globset::GlobSet;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use super::rootfs::Meta;

/// Top-level directories of every root that are never walked: kernel and
/// runtime views, not files an intruder leaves on disk.
pub const SKIPPED_TOP_DIRS: [&str; 4] = ["proc", "sys", "dev", "run"];

/// What to walk and what to leave out.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    pub roots: Vec<PathBuf>,
    /// Paths (files or directories, as walked: `/root/x`) matching any of
    /// these are skipped; a skipped directory is not entered.
    pub excludes: GlobSet,
    /// Also enter directories on other filesystems than their root's
    /// (default: stay on one filesystem, like `find -xdev`).
    pub all_filesystems: bool,
}

/// A regular file that the selector kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHit {
    pub path: PathBuf,
    pub meta: Meta,
}

/// A directory or file that could not be read.
#[derive(Debug)]
pub struct WalkError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// The result of [`walk`]: hits grouped by directory (directories in path
/// order, files by name within each; each file once), errors, counts.
#[derive(Debug, Default)]
pub struct WalkResult {
    pub hits: Vec<FileHit>,
    pub errors: Vec<WalkError>,
    pub files_seen: u64,
    pub dirs_seen: u64,
    /// Directories not entered because they are on another filesystem.
    pub other_filesystems: u64,
}

struct Shared<'a, F> {
    options: &'a WalkOptions,
    select: &'a F,
    /// One batch per directory that had hits: (directory, its hits).
    hits: Mutex<Vec<(PathBuf, Vec<FileHit>)>>,
    errors: Mutex<Vec<WalkError>>,
    files_seen: AtomicU64,
    dirs_seen: AtomicU64,
    other_filesystems: AtomicU64,
}

/// Walks every root in parallel and returns the regular files for which
/// `select` (given their `lstat`) is true.
pub fn walk<F>(options: &WalkOptions, select: F) -> WalkResult
where
    F: Fn(&Meta) -> bool + Sync,
{
    let shared = Shared {
        options,
        select: &select,
        hits: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        files_seen: AtomicU64::new(0),
        dirs_seen: AtomicU64::new(0),
        other_filesystems: AtomicU64::new(0),
    };
    rayon::scope(|scope| {
        for root in &options.roots {
            let opened = rustix::fs::open(
                root.as_path(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .and_then(|fd| Ok((rustix::fs::fstat(&fd)?, fd)));
            match opened {
                Ok((st, fd)) => {
                    let dev = Meta::from_stat(&st).dev;
                    let shared = &shared;
                    scope.spawn(move |scope| walk_dir(scope, shared, fd, root.clone(), dev, true));
                }
                Err(e) => push_error(&shared, root.clone(), e.into()),
            }
        }
    });
    // Sorting directories, then names inside each, is much cheaper than
    // sorting every path against every other (they share long prefixes).
    let mut batches = shared.hits.into_inner().unwrap_or_else(|p| p.into_inner());
    batches.sort_by(|a, b| path_order(path_bytes(&a.0), path_bytes(&b.0)));
    // Nested roots (`--root / --root /home`) would list a directory twice.
    batches.dedup_by(|a, b| a.0 == b.0);
    let mut hits = Vec::with_capacity(batches.iter().map(|b| b.1.len()).sum());
    for (_, mut batch) in batches {
        batch.sort_unstable_by(|a, b| path_bytes(&a.path).cmp(path_bytes(&b.path)));
        hits.append(&mut batch);
    }
    let mut errors = shared.errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by(|a, b| path_order(path_bytes(&a.path), path_bytes(&b.path)));
    WalkResult {
        hits,
        errors,
        files_seen: shared.files_seen.into_inner(),
        dirs_seen: shared.dirs_seen.into_inner(),
        other_filesystems: shared.other_filesystems.into_inner(),
    }
}

fn push_error<F>(shared: &Shared<'_, F>, path: PathBuf, error: std::io::Error) {
    shared.errors.lock().unwrap_or_else(|p| p.into_inner()).push(WalkError { path, error });
}

fn walk_dir<'s, F>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'s, F>,
    fd: OwnedFd,
    path: PathBuf,
    dev: u64,
    is_root: bool,
) where
    F: Fn(&Meta) -> bool + Sync,
{
    shared.dirs_seen.fetch_add(1, Ordering::Relaxed);
    let fd = Arc::new(fd);
    // RawDir lends names from this buffer: no allocation per entry.
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut dir = RawDir::new(fd.as_fd(), &mut buf);
    let mut hits = Vec::new();
    let mut files = 0u64;
    let excludes = &shared.options.excludes;
    while let Some(entry) = dir.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                push_error(shared, path.clone(), e.into());
                break;
            }
        };
        let name = entry.file_name();
        let name_bytes = name.to_bytes();
        if name_bytes == b"." || name_bytes == b".." {
            continue;
        }
        if is_root && SKIPPED_TOP_DIRS.iter().any(|s| s.as_bytes() == name_bytes) {
            continue;
        }
        let child_path = || path.join(OsStr::from_bytes(name_bytes));
        if !excludes.is_empty() && excludes.is_match(child_path()) {
            continue;
        }
        match entry.file_type() {
            FileType::Directory => {
                let name = name.to_owned();
                let parent = Arc::clone(&fd);
                let child = child_path();
                scope.spawn(move |scope| {
                    let opened = rustix::fs::openat(
                        parent.as_fd(),
                        name.as_c_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .and_then(|fd| Ok((rustix::fs::fstat(&fd)?, fd)));
                    drop(parent);
                    match opened {
                        Ok((st, _))
                            if !shared.options.all_filesystems
                                && Meta::from_stat(&st).dev != dev =>
                        {
                            shared.other_filesystems.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((_, fd)) => walk_dir(scope, shared, fd, child, dev, false),
                        Err(e) => push_error(shared, child, e.into()),
                    }
                });
            }
            // Unknown: a filesystem without d_type; stat tells.
            FileType::RegularFile | FileType::Unknown => {
                let st = match rustix::fs::statat(fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    // Deleted between readdir and stat: not an error.
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => {
                        push_error(shared, child_path(), e.into());
                        continue;
                    }
                };
                let meta = Meta::from_stat(&st);
                match meta.file_type() {
                    FileType::RegularFile => {
                        files += 1;
                        if (shared.select)(&meta) {
                            hits.push(FileHit { path: child_path(), meta });
                        }
                    }
                    FileType::Directory => {
                        // Only reached for d_type Unknown: walk it like any directory.
                        if !shared.options.all_filesystems && meta.dev != dev {
                            shared.other_filesystems.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        match rustix::fs::openat(
                            fd.as_fd(),
                            name,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        ) {
                            Ok(child_fd) => {
                                let child = child_path();
                                scope.spawn(move |scope| {
                                    walk_dir(scope, shared, child_fd, child, dev, false)
                                });
                            }
                            Err(e) => push_error(shared, child_path(), e.into()),
                        }
                    }
                    _ => {}
                }
            }
            // Symlinks are never followed; devices, FIFOs and sockets are not files.
            _ => {}
        }
    }
    shared.files_seen.fetch_add(files, Ordering::Relaxed);
    if !hits.is_empty() {
        shared.hits.lock().unwrap_or_else(|p| p.into_inner()).push((path, hits));
    }
}

/// Orders paths as bytes with `/` first, so a directory's files come
/// together before `a-b` sorts between `a` and `a/b`. (Comparing bytes is
/// several times cheaper than `Path`'s component-wise `Ord`, which showed
/// in profiles of large listings.)
pub fn path_order(a: &[u8], b: &[u8]) -> CmpOrdering {
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return key(*x).cmp(&key(*y));
        }
    }
    a.len().cmp(&b.len())
}

/// The path of a hit as bytes (paths need not be UTF-8).
pub fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_directory_first() {
        let mut v: Vec<&[u8]> = vec![b"/a-b", b"/a/z", b"/a", b"/a/b/c", b"/b"];
        v.sort_by(|a, b| path_order(a, b));
        assert_eq!(v, [&b"/a"[..], b"/a/b/c", b"/a/z", b"/a-b", b"/b"]);
    }
}
