//! `hikeshi bans`: the bans hikeshi holds (from the store), and
//! `hikeshi firewall reconcile|flush|uninstall`.

use std::process::ExitCode;

use anyhow::Result;
use hikeshi_core::contain::{format_duration, remaining};

use super::ban::with_containment;
use super::Context;
use crate::contain::store;

#[derive(Debug, clap::Args)]
pub struct BansArgs {
    /// Print JSON (an array of ban records).
    #[arg(long)]
    pub json: bool,
    /// Include lifted and expired bans (the newest 10,000).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct FirewallArgs {
    #[command(subcommand)]
    pub action: FirewallAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum FirewallAction {
    /// Create hikeshi's firewall objects (table, chain, sets) if missing, then reconcile.
    Setup,
    /// Make the firewall match the store: re-apply missing bans, close
    /// expired ones, remove entries no ban explains (only in hikeshi's
    /// own objects).
    Reconcile {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift every ban, keeping hikeshi's firewall objects.
    Flush,
    /// Lift every ban and remove everything hikeshi added to the firewall.
    Uninstall,
}

pub fn run_bans(ctx: &Context, args: BansArgs) -> Result<ExitCode> {
    use std::io::Write;
    let db = crate::store::Store::open_for(ctx)?;
    let conn = db.conn();
    let now = super::ban::now();
    let mut bans =
        if args.all { store::all_bans(conn, 10_000)? } else { store::active_bans(conn)? };
    if !args.all {
        // Ended but not yet reconciled: not in force any more.
        bans.retain(|b| !hikeshi_core::contain::is_expired(b.expires_at, now));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &bans)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if bans.is_empty() {
        writeln!(out, "no bans")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<40} {:<10} {:<22} {:>7} {:>8}  REASON",
        "ADDRESS", "BACKEND", "UNTIL", "OFFENCE", "INCIDENT"
    )?;
    for ban in bans {
        let until = match (ban.removed_at, ban.expires_at) {
            (Some(_), _) => format!("lifted: {}", ban.removed_reason.as_deref().unwrap_or("")),
            (None, None) => "permanent".to_string(),
            (None, Some(end)) => {
                let left = remaining(Some(end), now).unwrap_or_default();
                format!("{} left", format_duration(left))
            }
        };
        let incident = ban.incident_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<40} {:<10} {:<22} {:>7} {:>8}  {}",
            ban.address.to_string(),
            ban.backend,
            until,
            ban.offence,
            incident,
            ban.reason.escape_debug()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_firewall(ctx: &Context, args: FirewallArgs) -> Result<ExitCode> {
    let now = super::ban::now();
    with_containment(ctx, |c| {
        match args.action {
            FirewallAction::Setup => {
                c.reconcile(now)?;
                println!(
                    "hikeshi's firewall objects are in place ({})",
                    c.firewall().kind().name()
                );
            }
            FirewallAction::Reconcile { json } => {
                let report = c.reconcile(now)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!(
                        "reconciled ({}): {} re-applied, {} expired, {} unknown entries removed",
                        c.firewall().kind().name(),
                        report.reapplied.len(),
                        report.expired.len(),
                        report.removed_unknown.len()
                    );
                }
            }
            FirewallAction::Flush => {
                let lifted = c.flush(now)?;
                println!("lifted {} ban(s)", lifted.len());
            }
            FirewallAction::Uninstall => {
                let lifted = c.uninstall(now)?;
                println!("lifted {} ban(s) and removed hikeshi's firewall objects", lifted.len());
            }
        }
        for line in c.firewall().dry_run_log() {
            println!("dry run: {line}");
        }
        Ok(ExitCode::SUCCESS)
    })
}
