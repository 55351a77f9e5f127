//! File attributes a rule can watch, sets of them, and the AIDE-style
//! expressions (`p+i+n+u+g+s+m+c+sha256`, `R-m`, named groups) that name a set.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One attribute of a file that integrity checking can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// Permission bits, including setuid, setgid and sticky (`p`).
    Perm,
    /// Inode number (`i`): a replaced binary gets a new one.
    Inode,
    /// Hard link count (`n`).
    Links,
    /// Owner uid (`u`).
    Uid,
    /// Group gid (`g`).
    Gid,
    /// Size in bytes (`s`).
    Size,
    /// Modification time (`m`).
    Mtime,
    /// Inode change time (`c`): cannot be set back by userspace.
    Ctime,
    /// Symlink target (`l`).
    LinkTarget,
    /// File type (`ftype`): file, directory, symlink...
    FileType,
    /// SHA-256 of the content (`sha256`).
    Sha256,
    /// BLAKE3 of the content (`blake3`).
    Blake3,
    /// Extended attributes, which also carry POSIX ACLs, SELinux labels and
    /// file capabilities (`xattrs`, `acl`, `selinux`, `caps`).
    Xattrs,
}

impl Attr {
    /// Every attribute, in display order.
    pub const ALL: [Attr; 13] = [
        Attr::FileType,
        Attr::Perm,
        Attr::Inode,
        Attr::Links,
        Attr::Uid,
        Attr::Gid,
        Attr::Size,
        Attr::Mtime,
        Attr::Ctime,
        Attr::LinkTarget,
        Attr::Sha256,
        Attr::Blake3,
        Attr::Xattrs,
    ];

    /// The short name used in expressions and reports.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Perm => "p",
            Attr::Inode => "i",
            Attr::Links => "n",
            Attr::Uid => "u",
            Attr::Gid => "g",
            Attr::Size => "s",
            Attr::Mtime => "m",
            Attr::Ctime => "c",
            Attr::LinkTarget => "l",
            Attr::FileType => "ftype",
            Attr::Sha256 => "sha256",
            Attr::Blake3 => "blake3",
            Attr::Xattrs => "xattrs",
        }
    }

    /// A readable label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Attr::Perm => "permissions",
            Attr::Inode => "inode",
            Attr::Links => "link count",
            Attr::Uid => "uid",
            Attr::Gid => "gid",
            Attr::Size => "size",
            Attr::Mtime => "mtime",
            Attr::Ctime => "ctime",
            Attr::LinkTarget => "symlink target",
            Attr::FileType => "file type",
            Attr::Sha256 => "sha256",
            Attr::Blake3 => "blake3",
            Attr::Xattrs => "xattrs",
        }
    }

    fn from_name(name: &str) -> Option<Attr> {
        Some(match name {
            "p" => Attr::Perm,
            "i" => Attr::Inode,
            "n" => Attr::Links,
            "u" => Attr::Uid,
            "g" => Attr::Gid,
            "s" => Attr::Size,
            "m" => Attr::Mtime,
            "c" => Attr::Ctime,
            "l" => Attr::LinkTarget,
            "f" | "ftype" => Attr::FileType,
            "sha256" => Attr::Sha256,
            "blake3" => Attr::Blake3,
            "xattrs" | "acl" | "selinux" | "caps" => Attr::Xattrs,
            _ => return None,
        })
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrSet(u32);

impl AttrSet {
    /// No attribute.
    pub const EMPTY: AttrSet = AttrSet(0);

    /// The set holding exactly `attrs`.
    pub fn of(attrs: &[Attr]) -> AttrSet {
        attrs.iter().fold(AttrSet::EMPTY, |set, a| set.with(*a))
    }

    /// This set plus `attr`.
    pub fn with(self, attr: Attr) -> AttrSet {
        AttrSet(self.0 | attr.bit())
    }

    /// This set without `attr`.
    pub fn without(self, attr: Attr) -> AttrSet {
        AttrSet(self.0 & !attr.bit())
    }

    /// Whether `attr` is in the set.
    pub fn contains(self, attr: Attr) -> bool {
        self.0 & attr.bit() != 0
    }

    /// Attributes in both sets.
    pub fn intersect(self, other: AttrSet) -> AttrSet {
        AttrSet(self.0 & other.0)
    }

    /// Attributes in either set.
    pub fn union(self, other: AttrSet) -> AttrSet {
        AttrSet(self.0 | other.0)
    }

    /// Whether the set asks for a content hash.
    pub fn wants_content(self) -> bool {
        self.contains(Attr::Sha256) || self.contains(Attr::Blake3)
    }

    /// The attributes in display order.
    pub fn iter(self) -> impl Iterator<Item = Attr> {
        Attr::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// The raw bits, for compact storage.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Rebuilds a set from [`AttrSet::bits`], dropping unknown bits.
    pub fn from_bits(bits: u32) -> AttrSet {
        let known = Attr::ALL.iter().fold(0, |acc, a| acc | a.bit());
        AttrSet(bits & known)
    }
}

impl fmt::Display for AttrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Attr::name).collect();
        if names.is_empty() {
            f.write_str("E")
        } else {
            f.write_str(&names.join("+"))
        }
    }
}

impl Serialize for AttrSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The content hash used where an expression says `H` (AIDE's "all hashes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    /// SHA-256 (the default: what AIDE users compare against).
    #[default]
    Sha256,
    /// BLAKE3 (faster on CPUs without SHA extensions).
    Blake3,
}

impl HashAlgo {
    /// The attribute this algorithm fills.
    pub fn attr(self) -> Attr {
        match self {
            HashAlgo::Sha256 => Attr::Sha256,
            HashAlgo::Blake3 => Attr::Blake3,
        }
    }
}

/// An attribute expression that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttrError {
    #[error("empty attribute expression")]
    Empty,
    #[error("unknown attribute or group `{name}` in `{expr}` (known: p i n u g s m c l ftype sha256 blake3 xattrs, groups R L E > H and the configured ones)")]
    Unknown { name: String, expr: String },
    #[error("group `{name}` refers to itself")]
    Recursive { name: String },
}

/// Named attribute groups: AIDE's predefined ones plus configured ones.
#[derive(Debug, Clone)]
pub struct Groups {
    hash: HashAlgo,
    named: BTreeMap<String, AttrSet>,
}

impl Groups {
    /// AIDE's predefined groups, with `H` meaning `hash`:
    /// `R` = p+i+l+n+u+g+s+m+c+ftype+H (read-only files), `L` =
    /// p+i+l+n+u+g+ftype (logs), `>` = p+l+u+g+i+n+ftype (growing logs),
    /// `E` = nothing, `H` = the content hash.
    pub fn predefined(hash: HashAlgo) -> Groups {
        use Attr::*;
        let h = hash.attr();
        let mut named = BTreeMap::new();
        named.insert(
            "R".to_string(),
            AttrSet::of(&[
                Perm, Inode, LinkTarget, Links, Uid, Gid, Size, Mtime, Ctime, FileType, h,
            ]),
        );
        named.insert(
            "L".to_string(),
            AttrSet::of(&[Perm, Inode, LinkTarget, Links, Uid, Gid, FileType]),
        );
        named.insert(
            ">".to_string(),
            AttrSet::of(&[Perm, LinkTarget, Uid, Gid, Inode, Links, FileType]),
        );
        named.insert("E".to_string(), AttrSet::EMPTY);
        named.insert("H".to_string(), AttrSet::of(&[h]));
        Groups { hash, named }
    }

    /// The algorithm `H` stands for.
    pub fn hash(&self) -> HashAlgo {
        self.hash
    }

    /// Defines (or redefines) group `name` as `expr`, which may use groups
    /// defined before it.
    pub fn define(&mut self, name: &str, expr: &str) -> Result<(), AttrError> {
        if expr.split(['+', '-']).any(|term| term.trim() == name) && !self.named.contains_key(name)
        {
            return Err(AttrError::Recursive { name: name.to_string() });
        }
        let set = self.parse(expr)?;
        self.named.insert(name.to_string(), set);
        Ok(())
    }

    /// The set a group name stands for.
    pub fn get(&self, name: &str) -> Option<AttrSet> {
        self.named.get(name).copied()
    }

    /// Parses `p+i+u-m`, `R-m+sha256`, `NORMAL`: terms joined by `+` (add)
    /// or `-` (remove), each an attribute or a group name.
    pub fn parse(&self, expr: &str) -> Result<AttrSet, AttrError> {
        let expr_trimmed = expr.trim();
        if expr_trimmed.is_empty() {
            return Err(AttrError::Empty);
        }
        let mut set = AttrSet::EMPTY;
        let mut adding = true;
        let mut term = String::new();
        let apply = |term: &str, adding: bool, set: &mut AttrSet| -> Result<(), AttrError> {
            let term = term.trim();
            if term.is_empty() {
                return Err(AttrError::Empty);
            }
            let value = if let Some(group) = self.named.get(term) {
                *group
            } else if let Some(attr) = Attr::from_name(term) {
                AttrSet::of(&[attr])
            } else {
                return Err(AttrError::Unknown {
                    name: term.to_string(),
                    expr: expr_trimmed.to_string(),
                });
            };
            *set = if adding { set.union(value) } else { AttrSet(set.0 & !value.0) };
            Ok(())
        };
        // `>` is a group name and `-`/`+` are operators; a leading `>` term is
        // the only one that starts with an operator-like character.
        for (i, ch) in expr_trimmed.char_indices() {
            if (ch == '+' || ch == '-') && i > 0 {
                apply(&term, adding, &mut set)?;
                term.clear();
                adding = ch == '+';
            } else {
                term.push(ch);
            }
        }
        apply(&term, adding, &mut set)?;
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aide_benchmark_expression() {
        let g = Groups::predefined(HashAlgo::Sha256);
        let set = g.parse("p+i+n+u+g+s+m+c+sha256").unwrap();
        assert_eq!(set.to_string(), "p+i+n+u+g+s+m+c+sha256");
        assert!(set.wants_content());
        assert!(!set.contains(Attr::LinkTarget));
    }

    #[test]
    fn groups_and_removal() {
        let mut g = Groups::predefined(HashAlgo::Blake3);
        let set = g.parse("R-m-c").unwrap();
        assert!(set.contains(Attr::Blake3) && !set.contains(Attr::Sha256));
        assert!(!set.contains(Attr::Mtime) && !set.contains(Attr::Ctime));
        g.define("BIN", "R+sha256").unwrap();
        let bin = g.parse("BIN-blake3").unwrap();
        assert!(bin.contains(Attr::Sha256) && !bin.contains(Attr::Blake3));
        assert_eq!(g.parse(">").unwrap(), g.get(">").unwrap());
        assert_eq!(g.parse("E").unwrap(), AttrSet::EMPTY);
    }

    #[test]
    fn unknown_term_is_named() {
        let g = Groups::predefined(HashAlgo::Sha256);
        let err = g.parse("p+q+u").unwrap_err().to_string();
        assert!(err.contains("`q`") && err.contains("p+q+u"), "{err}");
        assert_eq!(g.parse("  "), Err(AttrError::Empty));
        assert_eq!(g.parse("p++u"), Err(AttrError::Empty));
    }

    #[test]
    fn bits_round_trip() {
        let set = AttrSet::of(&[Attr::Perm, Attr::Xattrs, Attr::Blake3]);
        assert_eq!(AttrSet::from_bits(set.bits()), set);
        assert_eq!(AttrSet::from_bits(u32::MAX).iter().count(), Attr::ALL.len());
    }
}
