//! What is known about one file: the record a walk produces and a baseline
//! stores, and the comparison of two records of the same path.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::attrs::{Attr, AttrSet};
use super::path::display;

/// The type of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Symlink,
    BlockDev,
    CharDev,
    Fifo,
    Socket,
    Unknown,
}

impl FileType {
    /// A compact code for storage.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The inverse of [`FileType::code`].
    pub fn from_code(code: u8) -> Option<FileType> {
        use FileType::*;
        [File, Dir, Symlink, BlockDev, CharDev, Fifo, Socket, Unknown].get(code as usize).copied()
    }

    /// Decodes the type bits of a `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::File,
            0o040000 => FileType::Dir,
            0o120000 => FileType::Symlink,
            0o060000 => FileType::BlockDev,
            0o020000 => FileType::CharDev,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    fn symbol(self) -> char {
        match self {
            FileType::File => '-',
            FileType::Dir => 'd',
            FileType::Symlink => 'l',
            FileType::BlockDev => 'b',
            FileType::CharDev => 'c',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Unknown => '?',
        }
    }
}

/// A time stamp as the kernel gives it: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileTime {
    pub sec: i64,
    pub nsec: u32,
}

impl FileTime {
    fn render(self) -> String {
        match jiff::Timestamp::new(self.sec, self.nsec as i32) {
            Ok(ts) => ts.to_string(),
            Err(_) => format!("{}.{:09}", self.sec, self.nsec),
        }
    }
}

/// Everything recorded about one path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileRecord {
    /// Absolute path, raw bytes.
    pub path: Vec<u8>,
    /// The attributes the rule asked for; only these are compared.
    pub attrs: AttrSet,
    /// File type (always compared: a file replaced by a symlink matters).
    pub ftype: Option<FileType>,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: FileTime,
    pub ctime: FileTime,
    pub sha256: Option<[u8; 32]>,
    pub blake3: Option<[u8; 32]>,
    /// Symlink target, raw bytes.
    pub link_target: Option<Vec<u8>>,
    /// Extended attributes, sorted by name.
    pub xattrs: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Why the content (or part of the metadata) could not be read.
    pub unreadable: Option<String>,
}

impl FileRecord {
    /// Whether the setuid or setgid bit is set on a regular file.
    pub fn is_setid(&self) -> bool {
        self.ftype == Some(FileType::File) && self.mode & 0o6000 != 0
    }

    /// `-rwsr-xr-x`.
    pub fn mode_string(&self) -> String {
        mode_string(self.ftype.unwrap_or(FileType::Unknown), self.mode)
    }

    fn value(&self, attr: Attr) -> String {
        match attr {
            Attr::Perm => format!("{} ({:04o})", self.mode_string(), self.mode),
            Attr::Inode => self.ino.to_string(),
            Attr::Links => self.nlink.to_string(),
            Attr::Uid => self.uid.to_string(),
            Attr::Gid => self.gid.to_string(),
            Attr::Size => self.size.to_string(),
            Attr::Mtime => self.mtime.render(),
            Attr::Ctime => self.ctime.render(),
            Attr::FileType => {
                format!("{:?}", self.ftype.unwrap_or(FileType::Unknown)).to_lowercase()
            }
            Attr::LinkTarget => {
                self.link_target.as_deref().map(display).unwrap_or_else(|| "-".into())
            }
            Attr::Sha256 => self.hash_value(self.sha256.as_ref()),
            Attr::Blake3 => self.hash_value(self.blake3.as_ref()),
            Attr::Xattrs => match &self.xattrs {
                None => "-".into(),
                Some(list) => list
                    .iter()
                    .map(|(k, v)| format!("{}={}", display(k), hex(v)))
                    .collect::<Vec<_>>()
                    .join(","),
            },
        }
    }

    fn hash_value(&self, hash: Option<&[u8; 32]>) -> String {
        match (hash, &self.unreadable) {
            (Some(h), _) => hex(h),
            (None, Some(why)) => format!("(unreadable: {why})"),
            (None, None) => "-".into(),
        }
    }

    /// The attributes that differ between `old` and `new` (same path): the
    /// file type always, then each attribute both records asked for.
    /// Content hashes are compared only for regular files.
    pub fn compare(old: &FileRecord, new: &FileRecord) -> Vec<AttrChange> {
        let mut changes = Vec::new();
        if old.ftype != new.ftype {
            changes.push(AttrChange::of(Attr::FileType, old, new));
        }
        let attrs = old.attrs.intersect(new.attrs);
        for attr in attrs.iter() {
            let differs = match attr {
                Attr::FileType => false,
                Attr::Perm => old.mode != new.mode,
                Attr::Inode => old.ino != new.ino,
                Attr::Links => old.nlink != new.nlink,
                Attr::Uid => old.uid != new.uid,
                Attr::Gid => old.gid != new.gid,
                // Directory sizes depend on the file system's bookkeeping.
                Attr::Size => old.size != new.size && new.ftype != Some(FileType::Dir),
                Attr::Mtime => old.mtime != new.mtime,
                Attr::Ctime => old.ctime != new.ctime,
                Attr::LinkTarget => old.link_target != new.link_target,
                Attr::Sha256 => old.sha256 != new.sha256,
                Attr::Blake3 => old.blake3 != new.blake3,
                Attr::Xattrs => old.xattrs != new.xattrs,
            };
            if differs {
                changes.push(AttrChange::of(attr, old, new));
            }
        }
        changes
    }
}

/// One attribute that changed, rendered old → new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttrChange {
    pub attr: Attr,
    pub old: String,
    pub new: String,
}

impl AttrChange {
    fn of(attr: Attr, old: &FileRecord, new: &FileRecord) -> AttrChange {
        AttrChange { attr, old: old.value(attr), new: new.value(attr) }
    }
}

/// `ls -l` style mode: type symbol and nine permission characters with
/// setuid/setgid/sticky folded in.
pub fn mode_string(ftype: FileType, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(ftype.symbol());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, ch)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            (true, false, _) => *ch,
            (false, false, _) => '-',
        });
    }
    s
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FileRecord {
        FileRecord {
            path: b"/usr/bin/x".to_vec(),
            attrs: AttrSet::of(&[Attr::Perm, Attr::Inode, Attr::Size, Attr::Mtime, Attr::Sha256]),
            ftype: Some(FileType::File),
            mode: 0o755,
            ino: 10,
            size: 3,
            sha256: Some([1; 32]),
            ..FileRecord::default()
        }
    }

    #[test]
    fn only_the_hash_sees_a_content_change_with_times_restored() {
        let old = base();
        let new = FileRecord { sha256: Some([2; 32]), ..base() };
        let changes = FileRecord::compare(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].attr, Attr::Sha256);
        assert_eq!(changes[0].old, "01".repeat(32));
    }

    #[test]
    fn unwatched_attributes_are_not_compared() {
        let new = FileRecord { uid: 1000, nlink: 7, ..base() };
        assert!(FileRecord::compare(&base(), &new).is_empty());
    }

    #[test]
    fn setuid_and_type_changes() {
        let new = FileRecord { mode: 0o4755, ..base() };
        let changes = FileRecord::compare(&base(), &new);
        assert_eq!(changes[0].old, "-rwxr-xr-x (0755)");
        assert_eq!(changes[0].new, "-rwsr-xr-x (4755)");
        assert!(new.is_setid());
        let link = FileRecord { ftype: Some(FileType::Symlink), ..base() };
        assert_eq!(FileRecord::compare(&base(), &link)[0].attr, Attr::FileType);
        assert_eq!(mode_string(FileType::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileType::File, 0o2644), "-rw-r-Sr--");
    }

    #[test]
    fn unreadable_hash_renders_the_reason() {
        let new =
            FileRecord { sha256: None, unreadable: Some("permission denied".into()), ..base() };
        let changes = FileRecord::compare(&base(), &new);
        assert_eq!(changes[0].new, "(unreadable: permission denied)");
    }
}
