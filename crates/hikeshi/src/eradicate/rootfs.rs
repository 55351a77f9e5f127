//! Reading files of an audited system under `--root DIR` safely.
//!
//! The tree may be a hostile disk image: `/etc/shadow` in it may be a
//! symlink to the host's `/etc/shadow`, `/etc/passwd` a FIFO that blocks
//! forever, a "crontab" a 10 GiB file. So every path is resolved by the
//! kernel *inside* the root (`openat2` with `RESOLVE_IN_ROOT`: absolute
//! links and `..` stay in the tree, as in a chroot), the last component is
//! never followed (`O_NOFOLLOW`), only regular files are read (`O_NONBLOCK`
//! so that opening a FIFO cannot block), and reads are bounded.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use thiserror::Error;

/// Files larger than this are not read whole (account files, crontabs,
/// units and keys are all far smaller).
pub const MAX_TEXT_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file under the root could not be read.
#[derive(Debug, Error)]
pub enum RootError {
    #[error("cannot open the audited root {root}: {source}")]
    Root {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} (under {root}): {source}")]
    Io {
        root: PathBuf,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} (under {root}) is a symbolic link to {target:?}: not followed")]
    Symlink { root: PathBuf, path: String, target: String },
    #[error("{path} (under {root}) is not a regular file ({kind})")]
    NotRegular { root: PathBuf, path: String, kind: &'static str },
    #[error("{path} (under {root}) is {size} bytes, more than the {max} bytes read")]
    TooLarge { root: PathBuf, path: String, size: u64, max: u64 },
}

impl RootError {
    /// True when the file simply does not exist (not an error for optional files).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RootError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// File metadata as `lstat` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub ctime: i64,
    pub ctime_nsec: u32,
}

impl Meta {
    /// Converts rustix's `Stat`, whose field types differ by architecture.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub fn from_stat(st: &rustix::fs::Stat) -> Meta {
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size.max(0) as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as u32,
            ctime: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as u32,
        }
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
}

fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "unknown type",
    }
}

/// An audited system's root directory, held open.
#[derive(Debug)]
pub struct RootFs {
    root: PathBuf,
    fd: OwnedFd,
}

/// Turns a path on the audited system (`/etc/passwd`) into one relative
/// to the root (`etc/passwd`); `RESOLVE_IN_ROOT` would accept either, but
/// a relative path keeps the intent plain.
fn relative(path: &str) -> &str {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

impl RootFs {
    /// Opens `root` (a directory).
    pub fn open(root: &Path) -> Result<RootFs, RootError> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootError::Root { root: root.to_path_buf(), source: e.into() })?;
        Ok(RootFs { root: root.to_path_buf(), fd })
    }

    /// The root as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io_error(&self, path: &str, e: impl Into<std::io::Error>) -> RootError {
        RootError::Io { root: self.root.clone(), path: path.to_string(), source: e.into() }
    }

    /// The parent directory of `path` (resolved inside the root) and the
    /// last component's name.
    fn parent<'p>(&self, path: &'p str) -> Result<(OwnedFd, &'p str), RootError> {
        let rel = relative(path);
        let (dir, name) = rel.rsplit_once('/').unwrap_or((".", rel));
        let fd = rustix::fs::openat2(
            &self.fd,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| self.io_error(path, e))?;
        Ok((fd, name))
    }

    /// `lstat` of `path` on the audited system.
    pub fn lstat(&self, path: &str) -> Result<Meta, RootError> {
        let (dir, name) = self.parent(path)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io_error(path, e))?;
        Ok(Meta::from_stat(&st))
    }

    /// The target of the symbolic link `path` (not followed).
    pub fn read_link(&self, path: &str) -> Result<Vec<u8>, RootError> {
        let (dir, name) = self.parent(path)?;
        let target =
            rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(|e| self.io_error(path, e))?;
        Ok(target.into_bytes())
    }

    /// Opens the regular file `path` for reading without following a link
    /// at the end, and returns it with its metadata.
    pub fn open_file(&self, path: &str) -> Result<(std::fs::File, Meta), RootError> {
        let (dir, name) = self.parent(path)?;
        let fd = match rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => {
                let target = self.read_link(path).unwrap_or_default();
                return Err(RootError::Symlink {
                    root: self.root.clone(),
                    path: path.to_string(),
                    target: String::from_utf8_lossy(&target).into_owned(),
                });
            }
            Err(e) => return Err(self.io_error(path, e)),
        };
        let meta = Meta::from_stat(&rustix::fs::fstat(&fd).map_err(|e| self.io_error(path, e))?);
        if meta.file_type() != FileType::RegularFile {
            return Err(RootError::NotRegular {
                root: self.root.clone(),
                path: path.to_string(),
                kind: kind_name(meta.file_type()),
            });
        }
        Ok((std::fs::File::from(fd), meta))
    }

    /// Reads the regular file `path`, at most `max` bytes (a larger file is
    /// an error rather than a silently truncated audit).
    pub fn read(&self, path: &str, max: u64) -> Result<Vec<u8>, RootError> {
        let (file, meta) = self.open_file(path)?;
        if meta.size > max {
            return Err(RootError::TooLarge {
                root: self.root.clone(),
                path: path.to_string(),
                size: meta.size,
                max,
            });
        }
        let mut bytes = Vec::with_capacity(meta.size as usize);
        // `take` guards against a file that grows while being read.
        file.take(max + 1).read_to_end(&mut bytes).map_err(|e| self.io_error(path, e))?;
        if bytes.len() as u64 > max {
            return Err(RootError::TooLarge {
                root: self.root.clone(),
                path: path.to_string(),
                size: bytes.len() as u64,
                max,
            });
        }
        Ok(bytes)
    }

    /// Reads an optional file: `Ok(None)` when it does not exist.
    pub fn read_optional(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, RootError> {
        match self.read(path, max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The entries of directory `path` (resolved inside the root, the
    /// directory itself not followed if it is a link), sorted by name,
    /// without `.` and `..`. A missing directory is empty.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(Vec<u8>, FileType)>, RootError> {
        let (parent, name) = self.parent(path)?;
        let fd = match rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error(path, e)),
        };
        let mut entries = Vec::new();
        let dir = rustix::fs::Dir::read_from(fd.as_fd()).map_err(|e| self.io_error(path, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.io_error(path, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push((name.to_vec(), entry.file_type()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

/// Joins a directory on the audited system and an entry name.
pub fn join(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The path on the audited system of `path` found while walking `root`.
pub fn system_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let rel = OsStr::as_bytes(rel.as_os_str());
    format!("/{}", String::from_utf8_lossy(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_never_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        // An absolute link and a `..` escape, both pointing out of the tree.
        symlink(outside.path().join("secret"), root.path().join("etc/shadow")).unwrap();
        symlink(outside.path(), root.path().join("etc/sub")).unwrap();
        symlink("../../../../../../..", root.path().join("up")).unwrap();
        let fs = RootFs::open(root.path()).unwrap();
        let err = fs.read("/etc/shadow", 1024).unwrap_err();
        assert!(matches!(err, RootError::Symlink { .. }), "{err}");
        // The directory link resolves inside the root, where nothing is.
        let err = fs.read("/etc/sub/secret", 1024).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = fs.read(&format!("/up{}/secret", outside.path().display()), 1024).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn links_inside_the_root_are_resolved_in_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("real/etc")).unwrap();
        std::fs::write(root.path().join("real/etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        // An absolute link, as images have (/etc -> /real/etc), means "in the image".
        symlink("/real/etc", root.path().join("etc")).unwrap();
        let fs = RootFs::open(root.path()).unwrap();
        assert_eq!(fs.read("/etc/passwd", 1024).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
    }

    #[test]
    fn fifos_and_large_files_are_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        crate::exec::run("mkfifo", [&fifo]).unwrap();
        std::fs::write(root.path().join("big"), vec![b'x'; 2048]).unwrap();
        let fs = RootFs::open(root.path()).unwrap();
        assert!(matches!(
            fs.read("/fifo", 1024).unwrap_err(),
            RootError::NotRegular { kind: "FIFO", .. }
        ));
        assert!(matches!(
            fs.read("/big", 1024).unwrap_err(),
            RootError::TooLarge { size: 2048, .. }
        ));
        assert!(fs.read_optional("/missing", 1024).unwrap().is_none());
        assert!(fs.list_dir("/nodir").unwrap().is_empty());
    }

    #[test]
    fn system_paths_are_relative_to_the_root() {
        assert_eq!(system_path(Path::new("/mnt/img"), Path::new("/mnt/img/etc/x")), "/etc/x");
        assert_eq!(system_path(Path::new("/"), Path::new("/etc/x")), "/etc/x");
        assert_eq!(join("/etc/cron.d", b"evil"), "/etc/cron.d/evil");
        assert_eq!(join("/", b"etc"), "/etc");
    }
}
