//! `hikeshi isms`: the evidence hikeshi holds for each ISO/IEC 27001:2022
//! Annex A control, for one incident or all of them, as Markdown or JSON.
//! Every timeline row, ban, alert and group of evidence lines is tagged
//! with the controls it supports (`hikeshi_core::isms`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use hikeshi_core::incident::IncidentId;
use hikeshi_core::isms::{self, EvidenceEntry};
use hikeshi_core::report;
use jiff::Timestamp;

use super::Context;
use crate::report::Extras;
use crate::store::{IncidentFilter, Store};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this incident (default: every incident).
    #[arg(long, value_name = "N")]
    incident: Option<IncidentId>,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = Store::open_for(ctx)?;
    let ids: Vec<IncidentId> = match args.incident {
        Some(id) => vec![id],
        None => store.list_incidents(&IncidentFilter::default())?.iter().map(|i| i.id).collect(),
    };
    let entries = collect(&store, &ids, Timestamp::now())?;
    let text = match args.format {
        Format::Md => isms::render_markdown(&entries, &report::markdown_escape),
        Format::Json => isms::render_json(&entries),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The tagged entries of incidents `ids`: their report's timeline rows
/// (timeline, bans, alerts) and one entry per evidence origin and file.
pub fn collect(store: &Store, ids: &[IncidentId], now: Timestamp) -> Result<Vec<EvidenceEntry>> {
    let mut entries = Vec::new();
    for id in ids {
        let input = crate::report::assemble(store, *id, &Extras::default(), now)?;
        let built = report::build(&input);
        for row in &built.timeline {
            entries.push(EvidenceEntry {
                incident: id.0,
                at: Some(row.at),
                source: row.source.to_string(),
                kind: row.kind.clone(),
                detail: row.detail.clone(),
                controls: row.controls.clone(),
            });
        }
        let mut by_file: BTreeMap<&str, (u64, &'static [&'static str])> = BTreeMap::new();
        for e in &built.evidence {
            by_file.entry(&e.item.file).or_insert((0, e.controls)).0 += 1;
        }
        for (file, (lines, controls)) in by_file {
            entries.push(EvidenceEntry {
                incident: id.0,
                at: None,
                source: "evidence".into(),
                kind: "evidence".into(),
                detail: format!(
                    "{lines} kept line(s) from {file} with SHA-256 each; chained digest {} over \
                     {} line(s)",
                    built.evidence_digest, built.evidence_lines_total
                ),
                controls: controls.to_vec(),
            });
        }
    }
    Ok(entries)
}
