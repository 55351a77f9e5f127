//! How eradication findings are shown: a readable table, or one JSON
//! document that carries everything needed to attach the findings to an
//! incident as evidence (the findings and the SHA-256 of their canonical
//! JSON).

use std::io::Write;

use hikeshi_core::eradicate::{canonical_sha256, max_severity, Finding};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde::Serialize;

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
