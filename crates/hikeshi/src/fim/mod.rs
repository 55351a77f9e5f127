//! File integrity monitoring, the I/O half: the parallel walk and hash
//! ([`scan`]), the baseline file ([`baseline`], [`codec`]) and its signing
//! keys ([`keys`]). This module wires them to the pure diff and report in
//! `hikeshi_core::fim`: `init` writes a baseline, `check` compares the
//! current state with it, `update` does both in one pass.

pub mod baseline;
pub mod codec;
pub mod keys;
pub mod scan;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hikeshi_core::fim::report::ScanIssue;
use hikeshi_core::fim::{diff, CheckReport, FileRecord, Groups, Rule, RuleSet};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;

use crate::config::FimConfig;
use baseline::{Baseline, BaselineWriter, Header, Provenance};
use scan::{Scan, ScanEvent};

/// Everything a fim command needs, resolved from configuration and flags.
pub struct Settings {
    pub rules: Arc<RuleSet>,
    pub baseline_path: PathBuf,
    /// The key the baseline must be signed with, if any.
    pub pinned_key: Option<VerifyingKey>,
    pub threads: usize,
    /// Show a progress bar (only ever on a terminal).
    pub progress: bool,
}

impl Settings {
    /// Resolves `[fim]` against the data directory.
    pub fn from_config(config: &FimConfig, data_dir: &std::path::Path) -> Result<Settings> {
        let rules = rule_set(config)?;
        let pinned_key = match &config.public_key {
            Some(text) => Some(keys::parse_public(text, "[fim] public_key")?),
            None => None,
        };
        let threads = match config.threads {
            // One more than the CPUs: while one worker waits in a syscall
            // (open, stat, read), another hashes (measured on /usr:
            // about 5% faster than one per CPU on 2 CPUs).
            0 => std::thread::available_parallelism().map(|n| n.get() + 1).unwrap_or(1),
            n => n,
        };
        Ok(Settings {
            rules: Arc::new(rules),
            baseline_path: config
                .baseline
                .clone()
                .unwrap_or_else(|| data_dir.join("fim").join("baseline.hfim")),
            pinned_key,
            threads,
            progress: std::io::stderr().is_terminal(),
        })
    }
}

/// Compiles `[fim]` groups, rules and exclusions.
pub fn rule_set(config: &FimConfig) -> Result<RuleSet> {
    let mut groups = Groups::predefined(config.hash);
    // Groups may refer to each other in any order: define what can be
    // defined until nothing changes, then name what is left.
    let mut remaining: Vec<(&String, &String)> = config.groups.iter().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|(name, expr)| groups.define(name, expr).is_err());
        if remaining.len() == before {
            let (name, expr) = remaining[0];
            let err = groups.define(name, expr).unwrap_err();
            anyhow::bail!("[fim.groups] {name} = \"{expr}\": {err}");
        }
    }
    let mut rules = Vec::with_capacity(config.rule.len());
    for rule in &config.rule {
        let attrs = groups.parse(&rule.attrs).with_context(|| {
            format!("[[fim.rule]] path = \"{}\": attrs = \"{}\"", rule.path, rule.attrs)
        })?;
        rules.push(Rule { path: rule.path.clone(), attrs, scope: rule.scope });
    }
    RuleSet::new(rules, &config.exclude, config.hash).context("[fim] rules")
}

/// Who is writing a baseline: `user@host`, with the sudo user.
pub fn identity() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let uid = rustix::process::geteuid().as_raw();
    let user = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid{uid}"));
    let mut who = format!("{user}@{host}");
    if let Ok(sudo_user) = std::env::var("SUDO_USER") {
        who.push_str(&format!(" (sudo by {sudo_user})"));
    }
    (who, host)
}

struct Progress {
    bar: Option<ProgressBar>,
    counters: Arc<scan::Counters>,
}

impl Progress {
    fn new(enabled: bool, expected: Option<u64>, counters: Arc<scan::Counters>) -> Progress {
        let bar = enabled.then(|| {
            let bar = match expected {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{spinner} {bar:30} {pos}/{len} entries, {msg} [{elapsed}, eta {eta}]",
                    )
                    .expect("valid template"),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {pos} entries, {msg} [{elapsed}]")
                        .expect("valid template"),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, counters }
    }

    fn tick(&self, seen: u64) {
        if let Some(bar) = &self.bar {
            if seen % 512 == 0 {
                bar.set_position(seen);
                let bytes = self.counters.bytes_hashed.load(Ordering::Relaxed);
                bar.set_message(format!("{} MiB hashed", bytes >> 20));
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Splits a scan into records (for the diff or the writer) and issues
/// (collected), counting records for the progress bar.
fn records<'a>(
    scan: Scan,
    issues: &'a mut Vec<ScanIssue>,
    progress: &'a Progress,
) -> impl Iterator<Item = Result<FileRecord, anyhow::Error>> + 'a {
    let mut seen = 0u64;
    scan.filter_map(move |event| match event {
        Ok(ScanEvent::Record(record)) => {
            seen += 1;
            progress.tick(seen);
            Some(Ok(record))
        }
        Ok(ScanEvent::Issue(issue)) => {
            issues.push(issue);
            None
        }
        Err(e) => Some(Err(e.into())),
    })
}

/// What `init` did.
pub struct InitOutcome {
    pub header: Header,
    pub issues: Vec<ScanIssue>,
}

/// Scans and writes a new baseline (replacing any existing one).
pub fn init(
    settings: &Settings,
    now: Timestamp,
    sign_key: Option<&SigningKey>,
) -> Result<InitOutcome> {
    let mut writer = BaselineWriter::create(&settings.baseline_path)
        .with_context(|| format!("cannot write baseline {}", settings.baseline_path.display()))?;
    let scan = Scan::start(Arc::clone(&settings.rules), settings.threads);
    let progress = Progress::new(settings.progress, None, scan.counters());
    let mut issues = Vec::new();
    for record in records(scan, &mut issues, &progress) {
        writer.push(&record?).context("cannot write baseline")?;
    }
    progress.finish();
    let (created_by, host) = identity();
    let provenance = Provenance {
        created_at: now,
        created_by,
        host,
        reason: "init".into(),
        supersedes: None,
        rules_digest: settings.rules.digest(),
        hash: settings.rules.hash(),
    };
    let header = writer
        .finish(provenance, sign_key)
        .with_context(|| format!("cannot write baseline {}", settings.baseline_path.display()))?;
    Ok(InitOutcome { header, issues })
}

/// Compares the current state with the baseline. With `rewrite`, the
/// scanned records also go into a new baseline (the `update` pass).
fn compare(
    settings: &Settings,
    baseline: &Baseline,
    now: Timestamp,
    mut rewrite: Option<&mut BaselineWriter>,
) -> Result<CheckReport> {
    let (_, host) = identity();
    let mut report = CheckReport::new(now, host, baseline.info(), settings.rules.digest());
    let scan = Scan::start(Arc::clone(&settings.rules), settings.threads);
    let progress = Progress::new(settings.progress, Some(baseline.header.records), scan.counters());
    let mut issues = Vec::new();
    let mut scanned = 0u64;
    let mut write_error = None;
    let current = records(scan, &mut issues, &progress).map(|record| {
        let record = record?;
        scanned += 1;
        if let Some(writer) = rewrite.as_deref_mut() {
            if let Err(e) = writer.push(&record) {
                write_error.get_or_insert(e);
            }
        }
        Ok(record)
    });
    let old = baseline.records()?.map(|r| r.map_err(anyhow::Error::from));
    diff(old, current, |change| report.record(&change)).map_err(|e| match e {
        hikeshi_core::fim::DiffError::Source(e) => e,
        other => anyhow::anyhow!("{other}"),
    })?;
    progress.finish();
    if let Some(e) = write_error {
        return Err(e).context("cannot write the new baseline");
    }
    report.summary.scanned_entries = scanned;
    for issue in issues {
        report.issue(issue);
    }
    Ok(report)
}

/// Opens and verifies the baseline.
pub fn open_baseline(settings: &Settings) -> Result<Baseline> {
    Ok(Baseline::open(&settings.baseline_path, settings.pinned_key.as_ref())?)
}

/// `hikeshi fim check`.
pub fn check(settings: &Settings, now: Timestamp) -> Result<CheckReport> {
    let baseline = open_baseline(settings)?;
    compare(settings, &baseline, now, None)
}

/// `hikeshi fim update`: reports what changed and makes the current state
/// the new baseline, recording who, when and which baseline it replaces.
pub fn update(
    settings: &Settings,
    now: Timestamp,
    sign_key: Option<&SigningKey>,
) -> Result<(CheckReport, Header)> {
    let baseline = open_baseline(settings)?;
    let mut writer = BaselineWriter::create(&settings.baseline_path)
        .with_context(|| format!("cannot write baseline {}", settings.baseline_path.display()))?;
    let report = compare(settings, &baseline, now, Some(&mut writer))?;
    let (created_by, host) = identity();
    let provenance = Provenance {
        created_at: now,
        created_by,
        host,
        reason: "update".into(),
        supersedes: Some(baseline.id().to_string()),
        rules_digest: settings.rules.digest(),
        hash: settings.rules.hash(),
    };
    let header = writer
        .finish(provenance, sign_key)
        .with_context(|| format!("cannot write baseline {}", settings.baseline_path.display()))?;
    Ok((report, header))
}
