//! How eradication findings are shown: a readable table, or one JSON
//! document that carries everything needed to attach the findings to an
//! incident as evidence (the findings and the SHA-256 of their canonical
//! JSON).

use std::io::Write;

use hikeshi_core::eradicate::{canonical_sha256, max_severity, Finding};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde::Serialize;

use super::ls::{mode_string, Names};
use super::rootfs::Meta;

/// Which language the table's reasons are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

/// The JSON document of `accounts --json` and `persistence --json`: also
/// what `--incident` will attach as evidence.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceDocument<'a, E: Serialize> {
    /// `accounts` or `persistence`.
    pub command: &'static str,
    pub root: String,
    pub taken_at: Timestamp,
    /// Command-specific facts (UID_MIN, counts, the baseline compared with).
    pub details: E,
    pub findings: &'a [Finding],
    /// SHA-256 over the canonical JSON of `findings`
    /// (`hikeshi_core::eradicate::canonical_sha256`).
    pub findings_sha256: String,
    /// Files that could not be read.
    pub warnings: &'a [String],
}

impl<'a, E: Serialize> EvidenceDocument<'a, E> {
    pub fn new(
        command: &'static str,
        root: String,
        taken_at: Timestamp,
        details: E,
        findings: &'a [Finding],
        warnings: &'a [String],
    ) -> Self {
        let findings_sha256 = canonical_sha256(findings);
        EvidenceDocument { command, root, taken_at, details, findings, findings_sha256, warnings }
    }
}

/// Writes the document as one line of JSON.
pub fn write_json<E: Serialize>(
    out: &mut impl Write,
    doc: &EvidenceDocument<'_, E>,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    out.write_all(b"\n")
}

/// Control characters from files are escaped so that evidence text cannot
/// drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// Writes the findings as a table: severity, kind, subject, the reason,
/// then each piece of evidence as `file:line: text`.
pub fn write_table(out: &mut impl Write, findings: &[Finding], lang: Lang) -> std::io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "no findings");
    }
    let kind_width = findings.iter().map(|f| f.kind.len()).max().unwrap_or(0);
    writeln!(out, "{:<8}  {:<kind_width$}  SUBJECT", "SEVERITY", "KIND")?;
    for f in findings {
        writeln!(
            out,
            "{:<8}  {:<kind_width$}  {}",
            f.severity.as_str(),
            f.kind,
            printable(&f.subject)
        )?;
        let reason = match lang {
            Lang::En => &f.reason_en,
            Lang::Ja => &f.reason_ja,
        };
        writeln!(out, "          {}", printable(reason))?;
        for e in &f.evidence {
            match e.line {
                Some(line) => writeln!(
                    out,
                    "          {}:{line}: {}",
                    printable(&e.file),
                    printable(&e.text)
                )?,
                None => writeln!(out, "          {}: {}", printable(&e.file), printable(&e.text))?,
            }
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    writeln!(
        out,
        "{} findings: {} critical, {} high, {} medium, {} low",
        findings.len(),
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    )
}

/// Exit code 1 when anything high or critical was found.
pub fn needs_attention(findings: &[Finding]) -> bool {
    max_severity(findings).is_some_and(|s| s >= Severity::High)
}

/// One file of `hikeshi recent --format jsonl` (one JSON object per line;
/// the SHA-256 of those lines is what `--incident` will record for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentFile {
    /// The path, lossy UTF-8.
    pub path: String,
    /// Present when the path is not UTF-8: its bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub size: u64,
    /// As `ls -l` shows it: `-rwsr-xr-x`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub owner: String,
    pub group: String,
    pub mtime: String,
    pub ctime: String,
    /// Which time is in the window: `mtime`, `ctime` or both.
    pub changed: Vec<&'static str>,
}

impl RecentFile {
    /// Describes a hit of a walk whose window starts after `start` (seconds, nanoseconds).
    pub fn new(path: &[u8], m: &Meta, names: &Names, start: (i64, u32)) -> RecentFile {
        let mut changed = Vec::new();
        if after(m.mtime, m.mtime_nsec, start) {
            changed.push("mtime");
        }
        if after(m.ctime, m.ctime_nsec, start) {
            changed.push("ctime");
        }
        RecentFile {
            path: String::from_utf8_lossy(path).into_owned(),
            path_hex: std::str::from_utf8(path)
                .is_err()
                .then(|| hikeshi_core::eradicate::hex(path)),
            size: m.size,
            mode: mode_string(m.mode),
            uid: m.uid,
            gid: m.gid,
            owner: names.user(m.uid),
            group: names.group(m.gid),
            mtime: rfc3339(m.mtime, m.mtime_nsec),
            ctime: rfc3339(m.ctime, m.ctime_nsec),
            changed,
        }
    }
}

/// Whether `(sec, nsec)` is strictly after `start`.
pub fn after(sec: i64, nsec: u32, start: (i64, u32)) -> bool {
    (sec, nsec) > start
}

/// RFC 3339 in UTC, or the raw seconds if out of range.
pub fn rfc3339(sec: i64, nsec: u32) -> String {
    Timestamp::new(sec, nsec as i32).map_or_else(|_| sec.to_string(), |t| t.to_string())
}
