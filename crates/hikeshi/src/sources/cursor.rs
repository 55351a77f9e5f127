//! Where reading a log file stopped last time, and how to go on from there
//! without losing or repeating a line across rotation and truncation.
//!
//! A cursor names a file by identity (device and inode) and by content
//! (a digest of its first bytes), never by path alone: logrotate renames
//! `auth.log` to `auth.log.1` (same inode) or copies and truncates it
//! (`copytruncate`: same inode, new content). On the next run [`plan`]
//! finds where the unread lines are now:
//!
//! - same file, grown: go on from the offset;
//! - renamed away: finish the rotated file (found among the siblings by
//!   inode and fingerprint) from the offset, then read the new file from 0;
//! - truncated (copytruncate): finish the copy (a sibling whose first bytes
//!   match the fingerprint) from the offset, then read the file from 0;
//! - replaced by unrelated content: read from 0.
//!
//! Only complete lines are consumed: a trailing line without its newline
//! may still be being written and is left for the next run.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many leading bytes identify a file's content.
pub const FINGERPRINT_LEN: u64 = 1024;

/// A saved reading position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub dev: u64,
    pub ino: u64,
    /// Byte offset just after the last complete line consumed.
    pub offset: u64,
    /// How many leading bytes `fingerprint` covers (less than
    /// [`FINGERPRINT_LEN`] when the file was shorter).
    pub fingerprint_len: u64,
    /// SHA-256 (hex) of the first `fingerprint_len` bytes.
    pub fingerprint: String,
}

/// One stretch of a file to read, from `start` to the end of its complete
/// lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    pub start: u64,
    /// Whether this is the live file (whose cursor is saved after reading)
    /// rather than a rotated predecessor that is only finished.
    pub live: bool,
}

/// What happened to the file since the cursor was saved, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// No cursor: first time this file is read.
    New,
    /// Same file, read on from the saved offset.
    Continued,
    /// Rotated by rename; the old file was found and is finished first.
    Rotated,
    /// Truncated in place; the copy was found and is finished first.
    Truncated,
    /// Rotated or truncated, and the old content was not found among the
    /// siblings (deleted or compressed): lines written between the last
    /// run and the rotation may be missing. Reported, never silent.
    LostPredecessor,
}

/// The reading plan for one log path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub segments: Vec<Segment>,
    pub continuity: Continuity,
}

/// Fingerprint of the first `len` bytes of `path` (or fewer if shorter).
fn fingerprint(path: &Path, len: u64) -> io::Result<(u64, String)> {
    let mut buf = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut buf)?;
    Ok((buf.len() as u64, hex(&Sha256::digest(&buf))))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// True if `path` starts with the content the cursor fingerprinted.
fn same_content(path: &Path, cursor: &Cursor) -> io::Result<bool> {
    let (len, digest) = fingerprint(path, cursor.fingerprint_len)?;
    Ok(len == cursor.fingerprint_len && digest == cursor.fingerprint)
}

/// Rotated siblings of `path`: `auth.log.1`, `auth.log-20260115`, ... in
/// the same directory. Compressed ones cannot be read on and are skipped.
pub(crate) fn siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let name = name.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let Some(other) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                return false;
            };
            other.len() > name.len()
                && other.starts_with(name.as_ref())
                && matches!(other.as_bytes()[name.len()], b'.' | b'-' | b'_')
                && ![".gz", ".xz", ".bz2", ".zst", ".lz4"].iter().any(|ext| other.ends_with(ext))
        })
        .collect();
    found.sort();
    found
}

/// Decides what to read of `path` given the cursor saved last time.
pub fn plan(path: &Path, saved: Option<&Cursor>) -> io::Result<Plan> {
    let meta = std::fs::metadata(path)?;
    let live = |start| Segment { path: path.to_path_buf(), start, live: true };
    let Some(cursor) = saved else {
        return Ok(Plan { segments: vec![live(0)], continuity: Continuity::New });
    };
    let same_inode = meta.dev() == cursor.dev && meta.ino() == cursor.ino;
    if same_inode && meta.len() >= cursor.offset && same_content(path, cursor)? {
        return Ok(Plan { segments: vec![live(cursor.offset)], continuity: Continuity::Continued });
    }
    // The file at `path` is no longer the one we were reading. Look for the
    // old content among its siblings: by inode after a rename, by
    // fingerprint after copytruncate.
    for sibling in siblings(path) {
        let Ok(smeta) = std::fs::metadata(&sibling) else { continue };
        if smeta.len() < cursor.offset {
            continue;
        }
        // A renamed file keeps its inode, a copy does not; both must still
        // start with the bytes we fingerprinted (inodes are reused).
        let renamed = smeta.dev() == cursor.dev && smeta.ino() == cursor.ino;
        if !same_content(&sibling, cursor).unwrap_or(false) {
            continue;
        }
        let continuity = if renamed { Continuity::Rotated } else { Continuity::Truncated };
        let old = Segment { path: sibling, start: cursor.offset, live: false };
        return Ok(Plan { segments: vec![old, live(0)], continuity });
    }
    Ok(Plan { segments: vec![live(0)], continuity: Continuity::LostPredecessor })
}

/// The cursor to save after consuming `path` up to `offset` (just after
/// the last complete line).
pub fn cursor_at(path: &Path, offset: u64) -> io::Result<Cursor> {
    let meta = std::fs::metadata(path)?;
    let (fingerprint_len, fingerprint) = fingerprint(path, FINGERPRINT_LEN.min(offset))?;
    Ok(Cursor { dev: meta.dev(), ino: meta.ino(), offset, fingerprint_len, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn first_read_starts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "a\n");
        let plan = plan(&log, None).unwrap();
        assert_eq!(plan.continuity, Continuity::New);
        assert_eq!(plan.segments, vec![Segment { path: log, start: 0, live: true }]);
    }

    #[test]
    fn grown_file_continues_at_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "line one\n");
        let cursor = cursor_at(&log, len(&log)).unwrap();
        append(&log, "line two\n");
        let plan = plan(&log, Some(&cursor)).unwrap();
        assert_eq!(plan.continuity, Continuity::Continued);
        assert_eq!(plan.segments[0].start, 9);
    }

    #[test]
    fn rename_rotation_finishes_the_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "old one\n");
        let cursor = cursor_at(&log, len(&log)).unwrap();
        append(&log, "old two, written before rotation\n");
        std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
        append(&log, "new one\n");
        let plan = plan(&log, Some(&cursor)).unwrap();
        assert_eq!(plan.continuity, Continuity::Rotated);
        assert_eq!(
            plan.segments,
            vec![
                Segment { path: dir.path().join("auth.log.1"), start: 8, live: false },
                Segment { path: log, start: 0, live: true },
            ]
        );
    }

    #[test]
    fn copytruncate_finishes_the_copy_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "old one\n");
        let cursor = cursor_at(&log, len(&log)).unwrap();
        append(&log, "old two\n");
        std::fs::copy(&log, dir.path().join("auth.log-20260115")).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
        append(&log, "new\n");
        let plan = plan(&log, Some(&cursor)).unwrap();
        assert_eq!(plan.continuity, Continuity::Truncated);
        assert_eq!(plan.segments[0].path, dir.path().join("auth.log-20260115"));
        assert_eq!(plan.segments[0].start, 8);
        assert_eq!(plan.segments[1], Segment { path: log, start: 0, live: true });
    }

    #[test]
    fn truncation_that_regrows_past_the_offset_is_not_mistaken_for_growth() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        append(&log, "first content\n");
        let cursor = cursor_at(&log, len(&log)).unwrap();
        std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
        append(&log, "different and longer content than before\n");
        let plan = plan(&log, Some(&cursor)).unwrap();
        assert_eq!(plan.continuity, Continuity::LostPredecessor);
        assert_eq!(plan.segments, vec![Segment { path: log, start: 0, live: true }]);
    }

    #[test]
    fn compressed_siblings_are_not_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        for name in ["auth.log.2.gz", "auth.log.1", "auth.logger", "other.log.1"] {
            append(&dir.path().join(name), "x\n");
        }
        append(&log, "x\n");
        assert_eq!(siblings(&log), vec![dir.path().join("auth.log.1")]);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(plan(&dir.path().join("nope.log"), None).is_err());
    }
}
