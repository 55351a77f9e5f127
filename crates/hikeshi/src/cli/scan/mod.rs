//! `hikeshi scan`: the runbook's cron job, done right.
//!
//! It reads what is new in each file since its last run (a cursor per file,
//! kept in the store, that follows the file through rotation and
//! truncation), detects, records incidents with their evidence, bans what
//! the policy says to ban, alerts the team once per incident opened or
//! escalated, and exits.
//!
//! Each file is one store transaction: its incidents, its alerts, the
//! detector's state and its cursor commit together or not at all, so a
//! crash or an error never half-records a file, and a second run over the
//! same lines neither counts them again nor alerts again.
//!
//! Exit codes: 0 nothing new needs attention; 1 an incident was opened or
//! escalated; 2 an error (an unreadable file, a bad configuration, a
//! database that cannot be used). Files that can be read are processed
//! even when another cannot.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use hikeshi_core::detect::{Detector, DetectorSnapshot, Rule};
use hikeshi_core::incident::{IncidentId, SubjectKind};
use hikeshi_core::parse::{ParseOptions, ParseStats};
use hikeshi_core::Mode;
use jiff::Timestamp;
use serde::Serialize;

use super::{Context, EXIT_ERROR, EXIT_FINDINGS};

mod ahead;
use crate::contain::ContainmentOutcome;
use crate::notify::outbox::DeliveryReport;
use crate::notify::Notifier;
use crate::pipeline::{BanPlan, LineRef, Pipeline, DETECTOR_STATE_KEY, PENDING_STATE_KEY};
use crate::sources::cursor::{self, Continuity, Cursor};
use crate::store::{IncidentFilter, Store};
use ahead::{read_ahead, Stretch};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Log files to read (only what is new since the last run).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print nothing (for cron); alerts are still sent.
    #[arg(short, long)]
    pub quiet: bool,
    /// Subject of alert emails (default: `[alert] subject`, "Incident Alert").
    #[arg(short = 's', long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Output: a summary for people, or JSON of the incidents opened or updated.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Which sshd messages count as failures (default: `[parse] mode`).
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Detect, record and alert, but change no firewall.
    #[arg(long)]
    pub no_ban: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// What one file gave.
#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    /// `new`, `continued`, `rotated`, `truncated`, `lost_predecessor`.
    continuity: &'static str,
    lines: u64,
    sshd_lines: u64,
    unrecognised_sshd_lines: u64,
    skipped_lines: u64,
    failures: u64,
    successes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct IncidentReport {
    id: IncidentId,
    change: &'static str,
    rule: String,
    severity: hikeshi_core::Severity,
    state: hikeshi_core::incident::State,
    subject: String,
    hosts: Vec<String>,
    users: Vec<String>,
    attempts: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlisted: Option<String>,
}

#[derive(Debug, Serialize)]
struct ScanReport {
    files: Vec<FileReport>,
    incidents: Vec<IncidentReport>,
    containment: Vec<ContainmentOutcome>,
    bans_skipped_as_too_old: u64,
    alerts: AlertSummary,
}

#[derive(Debug, Default, Serialize)]
struct AlertSummary {
    enqueued: usize,
    sent: usize,
    failed: usize,
    held: usize,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let now = Timestamp::now();
    let mode = args.mode.unwrap_or(ctx.config.parse.mode);
    let zone = ctx.config.parse.time_zone()?;
    let text_out = args.format == Format::Text && !args.quiet;
    let mut notifier = Notifier::from_config(
        &ctx.config.team,
        &ctx.config.alert,
        ctx.config.alert.stdout && text_out,
    )
    .context("alert configuration")?;
    if let Some(subject) = &args.subject {
        notifier.set_subject(subject);
    }
    let backend = if args.no_ban { "none" } else { ctx.config.contain.backend.name() };
    let mut store = Store::open_for(ctx)?;
    let (mut detector, mut pipeline) = new_pipeline(ctx, &store, now, args.no_ban)?;

    let mut files = Vec::new();
    let mut enqueued = 0;
    let mut failed = false;
    for path in &args.files {
        let mut parse = ParseOptions::new(mode, zone.clone(), now);
        parse.max_line_len = ctx.config.parse.max_line_bytes;
        parse.max_connections = ctx.config.parse.max_connections;
        let touched_before: HashSet<IncidentId> = pipeline.touched.keys().copied().collect();
        let intents_before = pipeline.ban_intents.len();
        let result = scan_file(
            &mut store,
            (&mut detector, &mut pipeline),
            &notifier,
            backend,
            path,
            parse,
            now,
        );
        if result.is_err() {
            // Nothing of the failed file was committed: forget it here too.
            pipeline.touched.retain(|id, _| touched_before.contains(id));
            pipeline.ban_intents.truncate(intents_before);
        }
        match result {
            Ok((report, alerts)) => {
                enqueued += alerts;
                files.push(report);
            }
            Err(err) => {
                failed = true;
                if !args.quiet {
                    eprintln!("hikeshi: error: {err:#}");
                }
                files.push(FileReport::failed(path, &err));
                // The file's transaction was rolled back: go on from the
                // state the store holds, not from what this file taught
                // the detector, or its lines would count twice next run.
                let kept_touched = std::mem::take(&mut pipeline.touched);
                let kept_intents = std::mem::take(&mut pipeline.ban_intents);
                let skipped = pipeline.bans_skipped_old;
                (detector, pipeline) = new_pipeline(ctx, &store, now, args.no_ban)?;
                pipeline.touched = kept_touched;
                pipeline.ban_intents = kept_intents;
                pipeline.bans_skipped_old = skipped;
            }
        }
    }

    let intents = std::mem::take(&mut pipeline.ban_intents);
    let outcomes = if args.no_ban {
        Vec::new()
    } else {
        crate::respond::contain(ctx, &mut store, &intents, now)
    };
    crate::respond::record_containment(&mut store, &notifier, &outcomes, now)?;
    let delivery = crate::respond::deliver(&mut store, &notifier, now).unwrap_or_else(|err| {
        // Undelivered alerts stay in the outbox for the next run.
        eprintln!("hikeshi: warning: {err:#}");
        DeliveryReport::default()
    });

    // Quiet: nothing is printed, so the incidents are not read back.
    let incidents = if args.quiet { Vec::new() } else { incident_reports(&store, &pipeline)? };
    let attention = pipeline.touched.values().any(|t| t.opened || t.escalated_from.is_some())
        || outcomes.iter().any(ContainmentOutcome::is_problem);
    let report = ScanReport {
        files,
        incidents,
        containment: outcomes,
        bans_skipped_as_too_old: pipeline.bans_skipped_old,
        alerts: AlertSummary {
            enqueued,
            sent: delivery.sent,
            failed: delivery.failed.len(),
            held: delivery.held,
        },
    };
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            }
            Format::Text => write_text(&mut out, &report)?,
        }
        out.flush()?;
    }
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else if attention {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// The detector and the pipeline after it, going on from the state the
/// last committed run left.
pub(crate) fn new_pipeline(
    ctx: &Context,
    store: &Store,
    now: Timestamp,
    no_ban: bool,
) -> Result<(Detector, Pipeline)> {
    let allowlist = ctx
        .config
        .allowlist
        .build(crate::host::own_addresses().context("cannot read this host's addresses")?);
    let detector = restore_detector(ctx, store, allowlist.clone())?;
    let mut pipeline = Pipeline::new(detector.config(), allowlist, ban_plan(ctx, no_ban)?, now);
    if let Some(blob) = store.cursor(PENDING_STATE_KEY)? {
        if let Err(err) = pipeline.restore_pending(&blob) {
            eprintln!("hikeshi: warning: {err}; starting without them");
        }
    }
    let open = store.list_incidents(&IncidentFilter { state: None, open_only: true })?;
    pipeline.note_attacked_accounts(
        open.into_iter()
            .filter(|i| i.campaign.key.kind == SubjectKind::User)
            .map(|i| i.campaign.key.subject),
    );
    Ok((detector, pipeline))
}

fn ban_plan(ctx: &Context, no_ban: bool) -> Result<BanPlan> {
    let config = &ctx.config.contain;
    let rules = config
        .ban_rules
        .iter()
        .map(|name| {
            Rule::from_name(name).with_context(|| {
                format!(
                    "contain.ban_rules: unknown rule {name:?} (expected one of: {})",
                    Rule::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect::<Result<HashSet<Rule>>>()?;
    let bantime = hikeshi_core::contain::parse_duration(&config.bantime)
        .map_err(|e| anyhow::anyhow!("contain.bantime: {e}"))?;
    Ok(BanPlan {
        enabled: config.auto_ban && !no_ban,
        rules,
        networks: config.ban_networks && config.backend.bans_networks(),
        max_age: jiff::SignedDuration::try_from(bantime).unwrap_or(jiff::SignedDuration::MAX),
    })
}

/// The detector as the last run left it, or a fresh one (saying why).
fn restore_detector(
    ctx: &Context,
    store: &Store,
    allowlist: hikeshi_core::allowlist::Allowlist,
) -> Result<Detector> {
    let config = ctx.config.detect.clone();
    if let Some(blob) = store.cursor(DETECTOR_STATE_KEY)? {
        match DetectorSnapshot::from_bytes(&blob)
            .and_then(|snapshot| Detector::restore(config.clone(), allowlist.clone(), snapshot))
        {
            Ok(restored) => {
                if let Some(reason) = restored.reset_reason {
                    eprintln!("hikeshi: note: {reason}");
                }
                return Ok(restored.detector);
            }
            Err(err) => {
                eprintln!(
                    "hikeshi: warning: saved detection state unusable ({err}); starting afresh"
                )
            }
        }
    }
    Detector::new(config, allowlist).map_err(|e| anyhow::anyhow!("{e}"))
}

fn cursor_key(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file:{}", absolute.display())
}

/// Reads what is new in `path`, in one transaction.
fn scan_file(
    store: &mut Store,
    (detector, pipeline): (&mut Detector, &mut Pipeline),
    notifier: &Notifier,
    backend: &str,
    path: &Path,
    parse: ParseOptions,
    now: Timestamp,
) -> Result<(FileReport, usize)> {
    let key = cursor_key(path);
    let saved: Option<Cursor> = match store.cursor(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes).ok(),
        None => None,
    };
    let plan = cursor::plan(path, saved.as_ref())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let mut batch = store.batch()?;
    let mut counts = Counts::default();
    let mut live_end = 0;
    let touched_before: HashSet<IncidentId> = pipeline.touched.keys().copied().collect();
    for segment in &plan.segments {
        let (end, segment_stats) =
            scan_segment(&mut batch, (detector, pipeline), segment, &name, parse.clone())?;
        counts.add(&segment_stats);
        if segment.live {
            live_end = end;
        }
    }
    let live = plan.segments.iter().find(|s| s.live).expect("a plan has its live file");
    let cursor = cursor::cursor_at(&live.path, live_end)
        .with_context(|| format!("cannot read {}", path.display()))?;
    batch.set_cursor(&key, &serde_json::to_vec(&cursor)?)?;
    pipeline.save_state(&mut batch, detector)?;
    // Alerts for this file's incidents commit with them.
    let new_touches = pipeline
        .touched
        .iter()
        .filter(|(id, _)| !touched_before.contains(id))
        .map(|(id, t)| (*id, t.clone()))
        .collect();
    let alerts = crate::respond::enqueue_alerts(
        &mut batch,
        notifier,
        &new_touches,
        &pipeline.ban_intents,
        backend,
        now,
    )?;
    batch.commit()?;
    Ok((FileReport::from_counts(path, plan.continuity, &counts), alerts))
}

/// Reads one segment from its start to the end of its complete lines;
/// returns the offset after the last complete line. The file is read and
/// parsed on a thread of its own (see [`ahead`]) while this one detects
/// and records what it means.
fn scan_segment(
    batch: &mut crate::store::Batch<'_>,
    (detector, pipeline): (&mut Detector, &mut Pipeline),
    segment: &cursor::Segment,
    name: &str,
    mut parse: ParseOptions,
) -> Result<(u64, ParseStats)> {
    // Evidence names the file its offsets are in: a rotated predecessor
    // by its own name, the live file as it was given.
    let rotated_name;
    let name = if segment.live {
        name
    } else {
        rotated_name = segment.path.display().to_string();
        &rotated_name
    };
    let what = || format!("cannot read {}", segment.path.display());
    let mut file = File::open(&segment.path).with_context(what)?;
    let meta = file.metadata().with_context(what)?;
    if !meta.is_file() {
        anyhow::bail!("cannot read {}: not a regular file", segment.path.display());
    }
    // Yearless timestamps belong to the year the file was last written in.
    if let Some(modified) = meta.modified().ok().and_then(|m| Timestamp::try_from(m).ok()) {
        parse.reference_time = modified;
    }
    file.seek(SeekFrom::Start(segment.start)).with_context(what)?;
    let stretch = Stretch {
        file,
        start: segment.start,
        live: segment.live,
        name: segment.path.display().to_string(),
    };
    let end = std::thread::scope(|scope| {
        read_ahead(scope, stretch, parse, |parsed| {
            let offset = parsed.parsed.origin.offset;
            let line =
                LineRef { file: name, offset, bytes: parsed.line, sha256: Some(parsed.sha256) };
            Ok(pipeline.handle(batch, detector, &parsed.parsed.event, line)?)
        })
    })?;
    Ok((end.end, end.stats))
}

/// The counts a scan reports for a file, summed over its segments.
#[derive(Debug, Default)]
struct Counts {
    lines: u64,
    sshd_lines: u64,
    unrecognised: u64,
    skipped: u64,
    failures: u64,
    successes: u64,
}

impl Counts {
    fn add(&mut self, stats: &ParseStats) {
        use hikeshi_core::Outcome;
        self.lines += stats.lines;
        self.sshd_lines += stats.sshd_lines;
        self.unrecognised += stats.sshd_unrecognised;
        self.skipped += stats.skipped_total();
        self.failures += stats.outcome(Outcome::Failure);
        self.successes += stats.outcome(Outcome::Success);
    }
}

impl FileReport {
    fn from_counts(path: &Path, continuity: Continuity, counts: &Counts) -> FileReport {
        FileReport {
            path: path.display().to_string(),
            continuity: match continuity {
                Continuity::New => "new",
                Continuity::Continued => "continued",
                Continuity::Rotated => "rotated",
                Continuity::Truncated => "truncated",
                Continuity::LostPredecessor => "lost_predecessor",
            },
            lines: counts.lines,
            sshd_lines: counts.sshd_lines,
            unrecognised_sshd_lines: counts.unrecognised,
            skipped_lines: counts.skipped,
            failures: counts.failures,
            successes: counts.successes,
            error: None,
        }
    }

    fn failed(path: &Path, err: &anyhow::Error) -> FileReport {
        FileReport {
            path: path.display().to_string(),
            continuity: "new",
            lines: 0,
            sshd_lines: 0,
            unrecognised_sshd_lines: 0,
            skipped_lines: 0,
            failures: 0,
            successes: 0,
            error: Some(format!("{err:#}")),
        }
    }
}

fn incident_reports(store: &Store, pipeline: &Pipeline) -> Result<Vec<IncidentReport>> {
    let mut reports = Vec::new();
    for touch in pipeline.touched.values() {
        // The aggregate only: reading back the kept evidence of every
        // touched incident would cost as much as writing it.
        let incident = store.incident(touch.id)?;
        let c = &incident.campaign;
        reports.push(IncidentReport {
            id: touch.id,
            change: if touch.opened {
                "opened"
            } else if touch.escalated_from.is_some() {
                "escalated"
            } else {
                "updated"
            },
            rule: c.rule.clone(),
            severity: c.severity,
            state: c.state,
            subject: c.key.subject.clone(),
            hosts: c.hosts.kept.iter().cloned().collect(),
            users: c.users.kept.iter().take(10).cloned().collect(),
            attempts: c.attempts,
            first_seen: c.first_seen,
            last_seen: c.last_seen,
            allowlisted: touch.allowlisted.clone(),
        });
    }
    Ok(reports)
}

fn write_text(out: &mut impl Write, report: &ScanReport) -> Result<()> {
    use super::incident::escape_text;
    for file in &report.files {
        match &file.error {
            Some(err) => writeln!(out, "{}: ERROR: {}", escape_text(&file.path), escape_text(err))?,
            None => writeln!(
                out,
                "{}: {} new lines ({}), {} sshd lines, {} failures, {} successes{}",
                escape_text(&file.path),
                file.lines,
                file.continuity,
                file.sshd_lines,
                file.failures,
                file.successes,
                if file.unrecognised_sshd_lines > 0 {
                    format!(", {} sshd lines NOT understood", file.unrecognised_sshd_lines)
                } else {
                    String::new()
                },
            )?,
        }
    }
    if report.incidents.is_empty() {
        writeln!(out, "no incident opened or updated")?;
    }
    for i in &report.incidents {
        writeln!(
            out,
            "incident #{} {}: [{}] {} from {}{}: {} attempts, {} to {}, users: {}{}",
            i.id,
            i.change,
            i.severity.as_str().to_uppercase(),
            crate::respond::rule_title(&i.rule),
            escape_text(&i.subject),
            if i.hosts.is_empty() {
                String::new()
            } else {
                format!(" on {}", escape_text(&i.hosts.join(", ")))
            },
            i.attempts,
            i.first_seen,
            i.last_seen,
            escape_text(&i.users.join(", ")),
            match &i.allowlisted {
                Some(reason) => format!(" (allowlisted: {reason}; not banned)"),
                None => String::new(),
            },
        )?;
    }
    for outcome in &report.containment {
        writeln!(out, "containment: {outcome}")?;
    }
    if report.bans_skipped_as_too_old > 0 {
        writeln!(
            out,
            "{} ban(s) not applied: the attack's lines are older than the ban time",
            report.bans_skipped_as_too_old
        )?;
    }
    let a = &report.alerts;
    if a.enqueued + a.sent + a.failed + a.held > 0 {
        writeln!(
            out,
            "alerts: {} new, {} sent, {} failed (will be retried), {} held by the rate limit",
            a.enqueued, a.sent, a.failed, a.held
        )?;
    }
    Ok(())
}
