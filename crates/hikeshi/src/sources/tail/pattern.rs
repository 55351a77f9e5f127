//! Which files a `[[watch.files]]` entry names, and the host a path names.
//!
//! A pattern is matched one path component at a time: literal components
//! are joined as they are (and may be symlinks: `/var/log/auth.log ->
//! /data/auth.log` is followed), components with glob characters
//! (`*?[{`) are matched against directory entries, and an entry that is a
//! symlink is *not* followed there, so a glob over a collector's tree
//! cannot be led by a planted link into another tree. Every directory
//! visited is returned so the tailer can watch it for new entries (a new
//! host directory under `/var/log/central/*/auth.log`).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};

/// Errors in a configured pattern.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("pattern {pattern:?}: {reason}")]
    Invalid { pattern: String, reason: String },
}

fn invalid(pattern: &str, reason: impl Into<String>) -> PatternError {
    PatternError::Invalid { pattern: pattern.to_string(), reason: reason.into() }
}

fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

fn component_glob(pattern: &str, text: &str) -> Result<GlobMatcher, PatternError> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| invalid(pattern, e.to_string()))
}

#[derive(Debug, Clone)]
enum Part {
    Literal(OsString),
    Glob(GlobMatcher),
}

/// A file pattern such as `/var/log/central/*/auth.log`.
#[derive(Debug, Clone)]
pub struct PathPattern {
    raw: String,
    root: PathBuf,
    parts: Vec<Part>,
}

/// What a pattern matches now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// Matching entries that are not directories (sorted).
    pub files: Vec<PathBuf>,
    /// Directories whose new entries could match (to watch).
    pub dirs: Vec<PathBuf>,
}

impl PathPattern {
    /// Parses `raw`, which must be an absolute path.
    pub fn new(raw: &str) -> Result<PathPattern, PatternError> {
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(invalid(raw, "must be an absolute path"));
        }
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::RootDir => {}
                Component::Normal(name) => {
                    let text = name.to_string_lossy();
                    if is_glob(&text) {
                        parts.push(Part::Glob(component_glob(raw, &text)?));
                    } else {
                        parts.push(Part::Literal(name.to_os_string()));
                    }
                }
                _ => return Err(invalid(raw, "`.` and `..` are not allowed")),
            }
        }
        if parts.is_empty() {
            return Err(invalid(raw, "names no file"));
        }
        Ok(PathPattern { raw: raw.to_string(), root: PathBuf::from("/"), parts })
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True when the pattern has no glob component (one fixed path).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The files matching now and the directories to watch.
    pub fn expand(&self) -> Expansion {
        let mut out = Expansion::default();
        let mut current = vec![self.root.clone()];
        for (index, part) in self.parts.iter().enumerate() {
            let last = index + 1 == self.parts.len();
            let mut next = Vec::new();
            for dir in &current {
                match part {
                    Part::Literal(name) => {
                        let candidate = dir.join(name);
                        // Literal components follow symlinks. Their
                        // directory is watched only where a change there
                        // matters: the file's own, or one whose next
                        // directory does not exist yet.
                        let meta = std::fs::metadata(&candidate);
                        if last || !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                            out.dirs.push(dir.clone());
                        }
                        match meta {
                            Ok(meta) if meta.is_dir() && !last => next.push(candidate),
                            Ok(meta) if !meta.is_dir() && last => out.files.push(candidate),
                            _ => {}
                        }
                    }
                    Part::Glob(matcher) => {
                        out.dirs.push(dir.clone());
                        let Ok(entries) = std::fs::read_dir(dir) else { continue };
                        for entry in entries.filter_map(Result::ok) {
                            if !matcher.is_match(entry.file_name()) {
                                continue;
                            }
                            // Never follow a symlink found by a glob.
                            let Ok(kind) = entry.file_type() else { continue };
                            if kind.is_symlink() {
                                continue;
                            }
                            match (kind.is_dir(), last) {
                                (true, false) => next.push(entry.path()),
                                (false, true) => out.files.push(entry.path()),
                                _ => {}
                            }
                        }
                    }
                }
            }
            next.sort();
            current = next;
        }
        out.files.sort();
        out.files.dedup();
        out.dirs.sort();
        out.dirs.dedup();
        out
    }
}

#[derive(Debug, Clone)]
enum HostPart {
    Glob(GlobMatcher),
    Host { before: String, after: String },
}

/// A `host_from_path` pattern such as `/var/log/central/{host}/auth.log`:
/// the component holding `{host}` gives the host; the others may be
/// literal or globs.
#[derive(Debug, Clone)]
pub struct HostPattern {
    parts: Vec<HostPart>,
}

/// The longest host name accepted from a path.
pub const MAX_HOST_LEN: usize = 253;

/// A host name from a path, when it is printable and plausible: ASCII
/// letters, digits, `.`, `-`, `_`, `:` (IPv6), 1 to [`MAX_HOST_LEN`] bytes.
pub fn valid_host(host: &[u8]) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.iter().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(b))
        && host[0] != b'-'
        && host[0] != b'.';
    if ok {
        std::str::from_utf8(host).ok()
    } else {
        None
    }
}

impl HostPattern {
    /// Parses `raw`: an absolute path with exactly one `{host}`.
    pub fn new(raw: &str) -> Result<HostPattern, PatternError> {
        if raw.matches("{host}").count() != 1 {
            return Err(invalid(raw, "needs exactly one {host}"));
        }
        if !raw.starts_with('/') {
            return Err(invalid(raw, "must be an absolute path"));
        }
        let mut parts = Vec::new();
        for text in raw.split('/').filter(|c| !c.is_empty()) {
            if let Some((before, after)) = text.split_once("{host}") {
                if is_glob(before) || is_glob(after) {
                    return Err(invalid(raw, "the {host} component cannot also hold globs"));
                }
                parts.push(HostPart::Host { before: before.to_string(), after: after.to_string() });
            } else {
                parts.push(HostPart::Glob(component_glob(raw, text)?));
            }
        }
        Ok(HostPattern { parts })
    }

    /// The host `path` names, `Ok(None)` if the path does not match, and
    /// `Err(raw)` if it matches with a host that is not a valid name.
    pub fn host(&self, path: &Path) -> Result<Option<Arc<str>>, Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let names: Vec<&[u8]> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes()),
                _ => None,
            })
            .collect();
        if names.len() != self.parts.len() {
            return Ok(None);
        }
        let mut host = None;
        for (name, part) in names.iter().zip(&self.parts) {
            match part {
                HostPart::Glob(matcher) => {
                    if !matcher.is_match(std::ffi::OsStr::from_bytes(name)) {
                        return Ok(None);
                    }
                }
                HostPart::Host { before, after } => {
                    let fits = name.len() >= before.len() + after.len()
                        && name.starts_with(before.as_bytes())
                        && name.ends_with(after.as_bytes());
                    if !fits {
                        return Ok(None);
                    }
                    host = Some(&name[before.len()..name.len() - after.len()]);
                }
            }
        }
        let Some(raw) = host else { return Ok(None) };
        match valid_host(raw) {
            Some(valid) => Ok(Some(Arc::from(valid))),
            None => Err(raw.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_from_a_central_tree() {
        let p = HostPattern::new("/var/log/central/{host}/auth.log").unwrap();
        let host = p.host(Path::new("/var/log/central/web-1.example/auth.log")).unwrap();
        assert_eq!(host.as_deref(), Some("web-1.example"));
        assert_eq!(p.host(Path::new("/var/log/central/web-1/other.log")).unwrap(), None);
        assert_eq!(p.host(Path::new("/var/log/auth.log")).unwrap(), None);
        let p = HostPattern::new("/logs/*/host-{host}.log").unwrap();
        assert_eq!(p.host(Path::new("/logs/x/host-db2.log")).unwrap().as_deref(), Some("db2"));
    }

    #[test]
    fn hostile_hosts_are_refused() {
        let p = HostPattern::new("/c/{host}/auth.log").unwrap();
        for bad in ["a b", "-x", "x\x1b[31m", ".hidden"] {
            let path = PathBuf::from(format!("/c/{bad}/auth.log"));
            assert!(p.host(&path).is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        assert!(p.host(&PathBuf::from(format!("/c/{long}/auth.log"))).is_err());
        assert!(HostPattern::new("/c/auth.log").is_err());
        assert!(HostPattern::new("/c/{host}/{host}").is_err());
        assert!(HostPattern::new("c/{host}").is_err());
    }

    #[test]
    fn patterns_must_be_absolute_and_plain() {
        assert!(PathPattern::new("auth.log").is_err());
        assert!(PathPattern::new("/var/log/../etc/shadow").is_err());
        assert!(PathPattern::new("/var/log/[").is_err());
        assert!(PathPattern::new("/var/log/auth.log").unwrap().is_literal());
    }

    #[test]
    fn glob_expansion_skips_symlinks_but_literals_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("central/a")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere/b")).unwrap();
        std::fs::write(root.join("central/a/auth.log"), "x\n").unwrap();
        std::fs::write(root.join("elsewhere/b/auth.log"), "x\n").unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/b"), root.join("central/b")).unwrap();
        let pattern = PathPattern::new(&format!("{}/central/*/auth.log", root.display())).unwrap();
        let found = pattern.expand();
        assert_eq!(found.files, vec![root.join("central/a/auth.log")]);
        assert!(found.dirs.contains(&root.join("central")));
        assert!(found.dirs.contains(&root.join("central/a")));

        std::os::unix::fs::symlink(root.join("elsewhere/b/auth.log"), root.join("link.log"))
            .unwrap();
        let literal = PathPattern::new(&format!("{}/link.log", root.display())).unwrap();
        assert_eq!(literal.expand().files, vec![root.join("link.log")]);
    }
}
