//! The end shared by `hikeshi accounts` and `hikeshi persistence`: the
//! findings printed as a table or as one JSON document, that document
//! attached to an incident when asked, and the exit code (1 when a
//! finding is high or critical).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use hikeshi_core::eradicate::Finding;
use hikeshi_core::incident::{Actor, IncidentId};
use jiff::Timestamp;
use serde::Serialize;

use super::EXIT_FINDINGS;
use crate::eradicate::report::{needs_attention, write_json, write_table, EvidenceDocument, Lang};
use crate::evidence::{self, Document, Target};

/// The options of both commands about their findings.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Print one JSON document (findings and their SHA-256) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Language of the reasons in the table.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: Lang,
    /// Attach the findings (the JSON document, with its SHA-256) to
    /// incident N as evidence, with a timeline entry.
    #[arg(long, value_name = "N")]
    pub incident: Option<IncidentId>,
}

/// What one audit of a root found.
pub(super) struct Audited<'a, D: Serialize> {
    /// The command: `accounts` or `persistence`.
    pub command: &'static str,
    /// The audited root, as given.
    pub root_name: &'a str,
    pub now: Timestamp,
    /// The command's own facts for the JSON document.
    pub details: D,
    pub findings: &'a [Finding],
    /// Files that could not be read, baselines not compared.
    pub warnings: &'a [String],
    /// What was checked, in the evidence summary (`accounts audit of /`).
    pub what: String,
    /// A line printed after the table (the baseline just recorded).
    pub after_table: Option<String>,
}

/// How the findings are shown and where they go.
pub(super) struct Output {
    pub json: bool,
    pub lang: Lang,
    /// The incident to attach the JSON document to.
    pub target: Option<Target>,
}

/// Prints `audited` as `output` asks, attaches it, and gives the exit code.
pub(super) fn finish<D: Serialize>(audited: Audited<'_, D>, output: Output) -> Result<ExitCode> {
    let Audited { command, root_name, now, details, findings, warnings, what, after_table } =
        audited;
    let Output { json, lang, mut target } = output;
    let mut stdout = std::io::stdout().lock();
    let document = (json || target.is_some())
        .then(|| -> Result<Vec<u8>> {
            let doc = EvidenceDocument::new(
                command,
                root_name.to_string(),
                now,
                details,
                findings,
                warnings,
            );
            let mut bytes = Vec::new();
            write_json(&mut bytes, &doc)?;
            Ok(bytes)
        })
        .transpose()?;
    match &document {
        Some(bytes) if json => stdout.write_all(bytes)?,
        _ => {
            for w in warnings {
                eprintln!("hikeshi: {command}: warning: {w}");
            }
            write_table(&mut stdout, findings, lang)?;
            if let Some(line) = after_table {
                writeln!(stdout, "{line}")?;
            }
        }
    }
    if let (Some(target), Some(bytes)) = (&mut target, document) {
        let doc = Document {
            producer: evidence::producer(command, &[("root", root_name.to_string())]),
            bytes: evidence::without_final_newline(bytes),
            extension: "json",
            summary: format!("{what}: {}", evidence::findings_summary(findings)),
        };
        let attached = target.attach(&doc, now, &Actor::Automatic)?;
        eprintln!("hikeshi: {command}: {}", attached.describe());
    }
    stdout.flush()?;
    Ok(if needs_attention(findings) { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS })
}
