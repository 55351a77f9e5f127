//! `hikeshi audit`: checks the tamper-evident audit trail (ISO/IEC
//! 27001:2022 A.8.15) and prints its head.
//!
//! `verify` exits 0 when the chain and every audited row hold (and, with
//! `--head`, the chain still contains that digest), 1 when something was
//! edited, deleted, inserted, reordered or cut off, naming the entry or
//! row. `head` prints the latest entry's digest: keep it off the host (a
//! ticket, a log server, a notebook); a later `verify --head` proves that
//! nothing before it was cut off or rewritten.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Subcommand;
use hikeshi_core::incident::{digest_hex::parse_hex_digest, hex, Sha256Digest};

use super::incident::{escape_text, to_json};
use super::{Context, EXIT_FINDINGS};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the chain and every audited row; exit 1 if anything was tampered with.
    Verify(VerifyArgs),
    /// Print the digest of the latest entry (keep it off the host).
    Head(HeadArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// A digest printed earlier by `hikeshi audit head`: the chain must
    /// still contain it (detects a cut-off or rewritten tail).
    #[arg(long, value_name = "DIGEST", value_parser = parse_head)]
    head: Option<Sha256Digest>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct HeadArgs {
    /// Print JSON (seq, at, digest) instead of the digest alone.
    #[arg(long)]
    json: bool,
}

fn parse_head(text: &str) -> Result<Sha256Digest, String> {
    parse_hex_digest(text.trim()).ok_or_else(|| {
        "expected 64 hexadecimal digits (as `hikeshi audit head` prints)".to_string()
    })
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_for(ctx)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        AuditCommand::Head(head) => {
            let h = store.audit_head()?;
            if head.json {
                out.write_all(to_json(&h)?.as_bytes())?;
            } else {
                writeln!(out, "{}", hex(&h.digest))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify(verify) => {
            let report = store.audit_verify(verify.head.as_ref())?;
            if verify.json {
                out.write_all(to_json(&report)?.as_bytes())?;
            } else if let Some(b) = &report.broken {
                writeln!(
                    out,
                    "audit trail BROKEN: {} was {}: {}",
                    escape_text(&b.what),
                    b.kind,
                    escape_text(&b.detail)
                )?;
                writeln!(
                    out,
                    "({} entries, {} audited rows checked; the database {} was changed outside hikeshi)",
                    report.entries,
                    report.rows,
                    store.path().display()
                )?;
            } else {
                writeln!(
                    out,
                    "audit trail ok: {} entries, {} audited rows match; head {} (entry {})",
                    report.entries,
                    report.rows,
                    hex(&report.head.digest),
                    report.head.seq
                )?;
                if verify.head.is_some() {
                    writeln!(out, "the kept head is in the chain")?;
                }
            }
            out.flush()?;
            Ok(if report.broken.is_some() {
                ExitCode::from(EXIT_FINDINGS)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
