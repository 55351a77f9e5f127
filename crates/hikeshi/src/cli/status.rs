//! `hikeshi status`: is the daemon running, what each source read and
//! parsed, the bans in force, the open incidents, and what needs a look
//! (a silent or unparseable source, drops, failed bans or alerts).
//!
//! Exit codes: 0 the daemon runs and nothing needs attention; 1 it runs
//! and something needs attention (the warnings say what); 2 an error; 3
//! the daemon is not running (never started with this data directory,
//! stopped, or gone).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use jiff::Timestamp;
use serde::Serialize;

use super::{Context, EXIT_FINDINGS};
use crate::daemon::status::{self, human, DaemonStatus, Warning};
use crate::store::{IncidentFilter, Store};

/// Exit code when the daemon is not running.
pub const EXIT_NOT_RUNNING: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    /// Whether the daemon runs now.
    running: bool,
    daemon: Option<DaemonStatus>,
    warnings: Vec<Warning>,
    active_bans: usize,
    open_incidents: Vec<OpenIncident>,
}

#[derive(Debug, Serialize)]
struct OpenIncident {
    id: i64,
    severity: hikeshi_core::Severity,
    state: hikeshi_core::incident::State,
    rule: String,
    subject: String,
    attempts: u64,
    last_seen: Timestamp,
}

/// Whether the process `pid` exists (it may belong to another user).
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// The daemon's status, whether it runs now, and its warnings.
pub fn daemon_health(
    ctx: &Context,
    now: Timestamp,
) -> Result<(Option<DaemonStatus>, bool, Vec<Warning>)> {
    let Some(daemon) = status::read(&status::status_path(&ctx.data_dir))? else {
        let warning = Warning {
            subject: "daemon".into(),
            message: format!(
                "hikeshi watch has never run with the data directory {}",
                ctx.data_dir.display()
            ),
        };
        return Ok((None, false, vec![warning]));
    };
    let alive = process_alive(daemon.pid);
    let running = status::is_live(&daemon, now, alive);
    let warnings = status::assess(&daemon, now, alive);
    Ok((Some(daemon), running, warnings))
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let now = Timestamp::now();
    let (daemon, running, warnings) = daemon_health(ctx, now)?;
    let store = Store::open_for(ctx)?;
    let active_bans = crate::contain::store::active_bans(store.conn())?
        .into_iter()
        .filter(|b| !hikeshi_core::contain::is_expired(b.expires_at, now))
        .count();
    let open_incidents = store
        .list_incidents(&IncidentFilter { state: None, open_only: true })?
        .into_iter()
        .map(|i| OpenIncident {
            id: i.id.0,
            severity: i.campaign.severity,
            state: i.campaign.state,
            rule: i.campaign.rule.clone(),
            subject: i.campaign.key.subject.clone(),
            attempts: i.campaign.attempts,
            last_seen: i.campaign.last_seen,
        })
        .collect();
    let report = Report { running, daemon, warnings, active_bans, open_incidents };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report, now)?;
    }
    out.flush()?;
    Ok(if !report.running {
        ExitCode::from(EXIT_NOT_RUNNING)
    } else if !report.warnings.is_empty() {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

fn ago(at: Option<Timestamp>, now: Timestamp) -> String {
    match at {
        Some(at) => format!("{} ago", human(now.duration_since(at))),
        None => "never".to_string(),
    }
}

fn write_text(out: &mut dyn Write, report: &Report, now: Timestamp) -> Result<()> {
    match &report.daemon {
        Some(d) if report.running => {
            writeln!(
                out,
                "hikeshi watch: running (pid {}, up {}, firewall {}, config {})",
                d.pid,
                human(now.duration_since(d.started_at)),
                d.backend,
                d.config.as_deref().unwrap_or("built-in defaults")
            )?;
            if d.reloads + d.reload_failures > 0 {
                writeln!(out, "  reloads: {} ({} refused)", d.reloads, d.reload_failures)?;
            }
            if let Some(metrics) = &d.metrics {
                writeln!(out, "  metrics: http://{metrics}/metrics")?;
            }
        }
        Some(d) => writeln!(out, "hikeshi watch: NOT running (last status {})", d.updated_at)?,
        None => writeln!(out, "hikeshi watch: NOT running (never started here)")?,
    }
    if let Some(d) = report.daemon.as_ref().filter(|_| report.running) {
        writeln!(out, "\nsources:")?;
        for s in &d.sources {
            write!(
                out,
                "  {:<8} {}\n           lines {}  bytes {}",
                s.kind, s.name, s.lines, s.bytes
            )?;
            if s.dropped + s.rejected + s.errors > 0 {
                write!(
                    out,
                    "  dropped {}  rejected {}  errors {}",
                    s.dropped, s.rejected, s.errors
                )?;
            }
            write!(out, "  last read {}", ago(s.last_read, now))?;
            if let Some(f) = &s.files {
                write!(
                    out,
                    "\n           files {}  rotations {}  truncations {}  gaps {}",
                    f.followed, f.rotations, f.truncations, f.gaps
                )?;
            }
            writeln!(out)?;
        }
        if !d.streams.is_empty() {
            writeln!(out, "\nparsed:")?;
        }
        for s in &d.streams {
            writeln!(
                out,
                "  {}\n           lines {}  sshd {}  matched {}  unrecognised {}  failures {}  successes {}  last event {}",
                s.name,
                s.lines,
                s.sshd_lines,
                s.matched,
                s.unrecognised,
                s.failures,
                s.successes,
                s.last_event.map_or("none".to_string(), |t| t.to_string())
            )?;
            if let Some(behind) = s.behind_bytes.filter(|b| *b > 0) {
                writeln!(out, "           {behind} bytes written and not handled yet")?;
            }
        }
        let t = &d.totals;
        writeln!(
            out,
            "\nhandled {} lines ({} events, {} behind); incidents opened {}; bans {} applied, {} failed; alerts {} sent, {} failed",
            t.handled, t.events, t.lag, t.incidents_opened, t.bans_applied, t.bans_failed, t.alerts_sent, t.alerts_failed
        )?;
    }
    writeln!(out, "\nactive bans: {}", report.active_bans)?;
    writeln!(out, "open incidents: {}", report.open_incidents.len())?;
    for i in report.open_incidents.iter().take(20) {
        writeln!(
            out,
            "  #{:<5} {:<8} {:<11} {:<24} {:<40} {} attempts, last {}",
            i.id,
            i.severity.to_string(),
            i.state.as_str(),
            i.rule,
            i.subject,
            i.attempts,
            i.last_seen
        )?;
    }
    if report.open_incidents.len() > 20 {
        writeln!(
            out,
            "  ... and {} more (hikeshi incident list)",
            report.open_incidents.len() - 20
        )?;
    }
    if !report.warnings.is_empty() {
        writeln!(out, "\nwarnings:")?;
        for w in &report.warnings {
            writeln!(out, "  ! {}: {}", w.subject, w.message)?;
        }
    }
    Ok(())
}
