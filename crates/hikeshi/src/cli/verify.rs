//! `hikeshi verify`: recovery validation from `[[verify.check]]`.
//! Exit 0 when every check passes, 1 when one fails, 2 on errors (no
//! checks configured).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (canonical; its SHA-256 is the evidence digest).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let checks = &ctx.config.verify.check;
    if checks.is_empty() {
        bail!("no recovery checks configured: add [[verify.check]] entries to the configuration");
    }
    let (_, host) = crate::fim::identity();
    let report = crate::verify::run(checks, jiff::Timestamp::now(), host);
    let mut out = std::io::stdout().lock();
    if args.json {
        out.write_all(&report.to_canonical_json())?;
        out.write_all(b"\n")?;
    } else {
        writeln!(out, "{}evidence digest: {}", report.render_text(), report.evidence_digest())?;
    }
    out.flush()?;
    Ok(if report.all_passed { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_FINDINGS) })
}
