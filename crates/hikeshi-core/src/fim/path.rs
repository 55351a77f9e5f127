//! Paths as raw bytes (file names need not be UTF-8), the order every record
//! stream is sorted in, and a display form safe to print.
//!
//! The order compares paths component by component, so a depth-first walk
//! that visits each directory's entries sorted by name produces it:
//! `/a`, `/a/b`, `/a-c` (plain byte order would put `/a-c` before `/a/b`).

use std::cmp::Ordering;
use std::fmt::Write;

/// Compares two absolute paths component by component.
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut left = a.split(|&c| c == b'/').filter(|c| !c.is_empty());
    let mut right = b.split(|&c| c == b'/').filter(|c| !c.is_empty());
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                other => return other,
            },
        }
    }
}

/// Whether `path` is `ancestor` or lies below it (at a component boundary:
/// `/etc` contains `/etc/passwd`, not `/etcetera`).
pub fn is_within(path: &[u8], ancestor: &[u8]) -> bool {
    if ancestor == b"/" {
        return path.starts_with(b"/");
    }
    path.starts_with(ancestor) && (path.len() == ancestor.len() || path[ancestor.len()] == b'/')
}

/// The parent of an absolute path (`/` for `/x`, `None` for `/`).
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    let cut = path.iter().rposition(|&c| c == b'/')?;
    Some(if cut == 0 { b"/" } else { &path[..cut] })
}

/// Joins a directory path and an entry name.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// A printable, unambiguous form of a path: UTF-8 text passes through;
/// control characters, invalid bytes and the backslash itself are escaped
/// (`\n`, `\xff`, `\\`) so a hostile file name cannot forge report lines.
pub fn display(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Normalises a configured path: absolute, no trailing slash (except `/`),
/// no empty or `.` components. `..` is refused because it would make
/// "inside this tree" ambiguous.
pub fn normalize(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{path}` contains `..`")),
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_component_wise() {
        let mut paths: Vec<&[u8]> = vec![b"/a-c", b"/a/b", b"/a", b"/", b"/a/b/c", b"/b"];
        paths.sort_by(|a, b| path_cmp(a, b));
        assert_eq!(paths, vec![&b"/"[..], b"/a", b"/a/b", b"/a/b/c", b"/a-c", b"/b"]);
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(is_within(b"/etc/passwd", b"/etc"));
        assert!(is_within(b"/etc", b"/etc"));
        assert!(!is_within(b"/etcetera", b"/etc"));
        assert!(is_within(b"/x", b"/"));
        assert_eq!(parent(b"/etc/passwd"), Some(&b"/etc"[..]));
        assert_eq!(parent(b"/etc"), Some(&b"/"[..]));
        assert_eq!(parent(b"/"), None);
        assert_eq!(join(b"/", b"etc"), b"/etc");
    }

    #[test]
    fn hostile_names_are_escaped() {
        assert_eq!(display(b"/tmp/a\nadded: /bin/sh"), "/tmp/a\\nadded: /bin/sh");
        assert_eq!(display(b"/tmp/\xff\\x"), "/tmp/\\xff\\\\x");
        assert_eq!(display("/tmp/日本".as_bytes()), "/tmp/日本");
        assert_eq!(display(b"/a\x1b[31m"), "/a\\u{1b}[31m");
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("/usr//lib/./x/").unwrap(), "/usr/lib/x");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("usr").is_err());
        assert!(normalize("/usr/../etc").is_err());
    }
}
