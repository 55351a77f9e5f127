//! `hikeshi verify`: recovery validation from `[[verify.check]]`, and
//! (unless `[verify] monitoring = false`) that monitoring resumed: the
//! daemon runs and its status is healthy.
//! Exit 0 when every check passes, 1 when one fails, 2 on errors (no
//! checks configured, no such incident).
//!
//! With `--incident N` the report is attached to incident N as evidence,
//! each check's result becomes a `recovery_check` timeline entry, and when
//! every check passed the incident moves to `recovered` (all in one
//! transaction). When one failed, its state is left as it was.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use hikeshi_core::incident::{Actor, IncidentId, State, TimelineKind};

use super::Context;
use crate::evidence::{Document, Target};
use crate::verify::VerifyReport;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (canonical; its SHA-256 is the evidence digest).
    #[arg(long)]
    json: bool,
    /// Record the results on incident N: the report as evidence, one
    /// timeline entry per check, and the move to `recovered` when all pass.
    #[arg(long, value_name = "N")]
    incident: Option<IncidentId>,
}

/// Whether recording the results moved the incident to `recovered`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recovery {
    Moved { from: State },
    Already,
    Stays { failed: Vec<String> },
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let checks = &ctx.config.verify.check;
    if checks.is_empty() && !ctx.config.verify.monitoring {
        bail!(
            "no recovery checks configured: add [[verify.check]] entries to the configuration \
             (or set [verify] monitoring = true)"
        );
    }
    // Checked first: a wrong incident number must not run the checks.
    let target = args.incident.map(|id| Target::open(ctx, id)).transpose()?;
    let (_, host) = crate::fim::identity();
    let now = jiff::Timestamp::now();
    let mut extra = Vec::new();
    if ctx.config.verify.monitoring {
        let (status, running, warnings) = super::status::daemon_health(ctx, now)?;
        extra.push(crate::verify::monitoring(status.as_ref(), running, &warnings));
    }
    let report = crate::verify::run(checks, extra, now, host);
    let mut out = std::io::stdout().lock();
    if args.json {
        out.write_all(&report.to_canonical_json())?;
        out.write_all(b"\n")?;
    } else {
        writeln!(out, "{}evidence digest: {}", report.render_text(), report.evidence_digest())?;
    }
    out.flush()?;
    if let Some(target) = target {
        record(target, &report)?;
    }
    Ok(if report.all_passed { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_FINDINGS) })
}

/// Attaches the report, writes one timeline entry per check and moves the
/// incident to `recovered` when every check passed, in one transaction.
fn record(mut target: Target, report: &VerifyReport) -> Result<()> {
    let id = target.id();
    let doc = Document {
        producer: format!("hikeshi verify on {}", report.host),
        bytes: report.to_canonical_json(),
        extension: "json",
        summary: format!(
            "recovery validation on {}: {} passed, {} failed",
            report.host, report.passed, report.failed
        ),
    };
    let at = report.checked_at;
    let actor = Actor::Automatic;
    let (attached, outcome) = target.attach_with(&doc, at, &actor, |batch, state| {
        for r in &report.results {
            let verdict = if r.passed { "passed" } else { "FAILED" };
            let detail = format!("{verdict}: {} [{} {}]: {}", r.name, r.kind, r.target, r.detail);
            batch.add_timeline(id, at, &actor, TimelineKind::RecoveryCheck, &detail)?;
        }
        if !report.all_passed {
            let failed =
                report.results.iter().filter(|r| !r.passed).map(|r| r.name.clone()).collect();
            return Ok(Recovery::Stays { failed });
        }
        if state == State::Recovered {
            return Ok(Recovery::Already);
        }
        batch.set_state(id, State::Recovered, at, &actor)?;
        Ok(Recovery::Moved { from: state })
    })?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "hikeshi: verify: {}", attached.describe())?;
    let said = match outcome {
        Recovery::Moved { from } => format!(
            "every check passed: incident {id} moved from {from} to recovered ({})",
            State::Recovered.nist_phase()
        ),
        Recovery::Already => {
            format!("every check passed: incident {id} was already recovered")
        }
        Recovery::Stays { failed } => format!(
            "incident {id} stays where it is, not recovered: {} check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        ),
    };
    writeln!(err, "hikeshi: verify: {said}")?;
    Ok(())
}
