//! The result of `hikeshi fim check`: what was added, removed and changed,
//! what could not be read, where the baseline came from; its AIDE-compatible
//! exit code; and its renderings (text for people, canonical JSON with a
//! SHA-256 for evidence).

use std::fmt::Write;

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::diff::Change;
use super::path::display;
use super::record::{hex, AttrChange, FileRecord, FileType};

/// AIDE's exit code bit for added files.
pub const EXIT_ADDED: u8 = 1;
/// AIDE's exit code bit for removed files.
pub const EXIT_REMOVED: u8 = 2;
/// AIDE's exit code bit for changed files.
pub const EXIT_CHANGED: u8 = 4;

/// How the baseline's signature was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No signature and none required.
    Unsigned,
    /// Signed, and the signature verifies with `key` (hex). `pinned` says
    /// whether `key` is the configured one; an unpinned key only proves
    /// the file is intact, not who wrote it.
    Verified { key: String, pinned: bool },
}

/// Where the baseline came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineInfo {
    pub created_at: Timestamp,
    /// `user@host` (with `sudo` user, if any) who wrote it.
    pub created_by: String,
    /// What wrote it: `init` or `update`.
    pub reason: String,
    /// Digest of the baseline this one replaced (`update`), forming a chain.
    pub supersedes: Option<String>,
    pub rules_digest: String,
    pub body_digest: String,
    pub records: u64,
    pub signature: SignatureStatus,
}

/// A file in one state only (added or removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    pub ftype: FileType,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// setuid or setgid regular file: worth a look on its own.
    pub setid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

impl Entry {
    fn of(record: &FileRecord) -> Entry {
        Entry {
            path: display(&record.path),
            ftype: record.ftype.unwrap_or(FileType::Unknown),
            mode: record.mode_string(),
            uid: record.uid,
            gid: record.gid,
            size: record.size,
            setid: record.is_setid(),
            sha256: record.sha256.as_ref().map(|h| hex(h)),
            blake3: record.blake3.as_ref().map(|h| hex(h)),
            link_target: record.link_target.as_deref().map(display),
        }
    }
}

/// A file in both states whose watched attributes differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedEntry {
    pub path: String,
    /// Whether the file is setuid/setgid now but was not before.
    pub became_setid: bool,
    pub changes: Vec<AttrChange>,
}

/// Something the scan could not do for one path. Never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Content or metadata could not be read.
    Unreadable,
    /// The file changed while it was hashed; its record may mix states.
    ChangedDuringScan,
    /// Listed in its directory, gone before it could be examined.
    Vanished,
    /// A directory could not be listed.
    UnlistableDir,
}

/// One scan issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanIssue {
    pub path: String,
    pub kind: IssueKind,
    pub detail: String,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub baseline_entries: u64,
    pub scanned_entries: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub new_setid: u64,
    pub issues: u64,
}

/// The whole result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub checked_at: Timestamp,
    pub host: String,
    pub baseline: BaselineInfo,
    /// Digest of the rules used for this check.
    pub rules_digest: String,
    /// Whether the rules differ from the baseline's (then some differences
    /// may come from the rules, not from the files).
    pub rules_changed: bool,
    pub summary: Summary,
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    pub changed: Vec<ChangedEntry>,
    pub issues: Vec<ScanIssue>,
}

impl CheckReport {
    /// An empty report, to be filled by [`CheckReport::record`].
    pub fn new(
        checked_at: Timestamp,
        host: String,
        baseline: BaselineInfo,
        rules_digest: String,
    ) -> CheckReport {
        CheckReport {
            checked_at,
            host,
            rules_changed: baseline.rules_digest != rules_digest,
            summary: Summary { baseline_entries: baseline.records, ..Summary::default() },
            baseline,
            rules_digest,
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// Adds one difference from the merge.
    pub fn record(&mut self, change: &Change) {
        match change {
            Change::Added(new) => {
                let entry = Entry::of(new);
                self.summary.new_setid += u64::from(entry.setid);
                self.summary.added += 1;
                self.added.push(entry);
            }
            Change::Removed(old) => {
                self.summary.removed += 1;
                self.removed.push(Entry::of(old));
            }
            Change::Changed { old, new, changes } => {
                let became_setid = new.is_setid() && !old.is_setid();
                self.summary.new_setid += u64::from(became_setid);
                self.summary.changed += 1;
                self.changed.push(ChangedEntry {
                    path: display(&new.path),
                    became_setid,
                    changes: changes.clone(),
                });
            }
        }
    }

    /// Adds a scan issue.
    pub fn issue(&mut self, issue: ScanIssue) {
        self.summary.issues += 1;
        self.issues.push(issue);
    }

    /// AIDE's exit code: 1 if files were added, plus 2 if removed, plus 4
    /// if changed; 0 when the tree matches the baseline.
    pub fn exit_code(&self) -> u8 {
        let mut code = 0;
        if self.summary.added > 0 {
            code |= EXIT_ADDED;
        }
        if self.summary.removed > 0 {
            code |= EXIT_REMOVED;
        }
        if self.summary.changed > 0 {
            code |= EXIT_CHANGED;
        }
        code
    }

    /// Canonical JSON: fields in declaration order, no insignificant
    /// whitespace. The evidence digest is computed over exactly these bytes.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("report serialises")
    }

    /// `sha256:<hex>` of [`CheckReport::to_canonical_json`].
    pub fn evidence_digest(&self) -> String {
        format!("sha256:{:x}", Sha256::digest(self.to_canonical_json()))
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let verdict = if self.exit_code() == 0 { "no differences" } else { "DIFFERENCES FOUND" };
        let _ =
            writeln!(out, "hikeshi fim check on {} at {}: {verdict}", self.host, self.checked_at);
        let b = &self.baseline;
        let sig = match &b.signature {
            SignatureStatus::Unsigned => "unsigned".to_string(),
            SignatureStatus::Verified { key, pinned: true } => {
                format!("signature verified (configured key {key})")
            }
            SignatureStatus::Verified { key, pinned: false } => {
                format!("signature verified with its embedded key {key} (no key configured: integrity only)")
            }
        };
        let _ = writeln!(
            out,
            "baseline: {} by {} ({}), {} entries, {sig}",
            b.created_at, b.created_by, b.reason, b.records
        );
        if self.rules_changed {
            let _ = writeln!(out, "warning: the rules changed since the baseline; run `hikeshi fim update` once reviewed");
        }
        let _ = writeln!(
            out,
            "summary: {} scanned, {} added, {} removed, {} changed, {} new setuid/setgid, {} issues",
            s.scanned_entries, s.added, s.removed, s.changed, s.new_setid, s.issues
        );
        if !self.added.is_empty() {
            let _ = writeln!(out, "\nAdded:");
            for e in &self.added {
                let flag = if e.setid { "  SETUID/SETGID" } else { "" };
                let _ = writeln!(
                    out,
                    "  + {}  {} {}:{} {} bytes{flag}",
                    e.path, e.mode, e.uid, e.gid, e.size
                );
            }
        }
        if !self.removed.is_empty() {
            let _ = writeln!(out, "\nRemoved:");
            for e in &self.removed {
                let _ = writeln!(
                    out,
                    "  - {}  {} {}:{} {} bytes",
                    e.path, e.mode, e.uid, e.gid, e.size
                );
            }
        }
        if !self.changed.is_empty() {
            let _ = writeln!(out, "\nChanged:");
            for c in &self.changed {
                let flag = if c.became_setid { "  NOW SETUID/SETGID" } else { "" };
                let _ = writeln!(out, "  ~ {}{flag}", c.path);
                for a in &c.changes {
                    let _ = writeln!(out, "      {}: {} -> {}", a.attr.label(), a.old, a.new);
                }
            }
        }
        if !self.issues.is_empty() {
            let _ = writeln!(out, "\nIssues (not fatal):");
            for i in &self.issues {
                let kind = match i.kind {
                    IssueKind::Unreadable => "unreadable",
                    IssueKind::ChangedDuringScan => "changed during scan",
                    IssueKind::Vanished => "vanished during scan",
                    IssueKind::UnlistableDir => "cannot list directory",
                };
                let _ = writeln!(out, "  ! {} ({kind}): {}", i.path, i.detail);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fim::attrs::{Attr, AttrSet};

    fn report() -> CheckReport {
        let baseline = BaselineInfo {
            created_at: Timestamp::from_second(1_700_000_000).unwrap(),
            created_by: "root@web1".into(),
            reason: "init".into(),
            supersedes: None,
            rules_digest: "sha256:aa".into(),
            body_digest: "sha256:bb".into(),
            records: 3,
            signature: SignatureStatus::Unsigned,
        };
        CheckReport::new(
            Timestamp::from_second(1_700_000_600).unwrap(),
            "web1".into(),
            baseline,
            "sha256:aa".into(),
        )
    }

    fn file(path: &str, mode: u32) -> FileRecord {
        FileRecord {
            path: path.as_bytes().to_vec(),
            attrs: AttrSet::of(&[Attr::Perm]),
            ftype: Some(FileType::File),
            mode,
            ..FileRecord::default()
        }
    }

    #[test]
    fn exit_codes_sum_like_aide() {
        let mut r = report();
        assert_eq!(r.exit_code(), 0);
        r.record(&Change::Added(file("/x", 0o4755)));
        assert_eq!(r.exit_code(), 1);
        r.record(&Change::Changed {
            old: Box::new(file("/y", 0o755)),
            new: Box::new(file("/y", 0o777)),
            changes: FileRecord::compare(&file("/y", 0o755), &file("/y", 0o777)),
        });
        assert_eq!(r.exit_code(), 5);
        r.record(&Change::Removed(file("/z", 0o644)));
        assert_eq!(r.exit_code(), 7);
        assert_eq!(r.summary.new_setid, 1);
    }

    #[test]
    fn text_and_json() {
        let mut r = report();
        r.record(&Change::Added(file("/usr/bin/evil\nAdded:", 0o4755)));
        r.issue(ScanIssue {
            path: "/usr/x".into(),
            kind: IssueKind::Vanished,
            detail: "gone".into(),
        });
        let text = r.render_text();
        assert!(
            text.contains("+ /usr/bin/evil\\nAdded:  -rwsr-xr-x 0:0 0 bytes  SETUID/SETGID"),
            "{text}"
        );
        assert!(text.contains("! /usr/x (vanished during scan): gone"), "{text}");
        let json: serde_json::Value = serde_json::from_slice(&r.to_canonical_json()).unwrap();
        assert_eq!(json["summary"]["added"], 1);
        assert_eq!(json["added"][0]["setid"], true);
        assert_eq!(json["baseline"]["signature"]["status"], "unsigned");
        let digest = r.evidence_digest();
        assert!(digest.starts_with("sha256:") && digest.len() == 71);
        r.issue(ScanIssue { path: "/b".into(), kind: IssueKind::Unreadable, detail: "x".into() });
        assert_ne!(r.evidence_digest(), digest);
    }
}
