//! `hikeshi persistence`: what attackers use to come back (every user's
//! `authorized_keys`, crontabs and `/etc/cron*`, systemd system and user
//! units, `/etc/rc.local`, `/etc/ld.so.preload`, shell startup files,
//! setuid/setgid files), changed inside a window or since a baseline.
//!
//! Without `--since`/`--newer-than`, the window is the last 24 hours when
//! there is no baseline, and none when there is one (the baseline is the
//! better signal). Exit code 1 when a finding is high or critical.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use hikeshi_core::eradicate::parse_window;
use hikeshi_core::eradicate::persistence::{assess, PersistenceSnapshot};
use jiff::Timestamp;
use serde::Serialize;

use super::findings::{finish, Audited, Output, OutputArgs};
use super::Context;
use crate::eradicate::baseline;
use crate::eradicate::collect::persistence_items;
use crate::eradicate::rootfs::RootFs;
use crate::evidence::Target;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Report items changed (mtime or ctime) within this window: 24h, 1d, 30m, 2w.
    #[arg(long, value_name = "DURATION", conflicts_with = "newer_than")]
    pub since: Option<String>,
    /// Report items changed after this file's modification time.
    #[arg(long, value_name = "FILE")]
    pub newer_than: Option<PathBuf>,
    /// Audit the system whose root is DIR.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Record the items as seen now as the baseline
    /// (<data dir>/baselines/persistence.json).
    #[arg(long)]
    pub baseline: bool,
    /// Do not walk the whole root for setuid/setgid files.
    #[arg(long)]
    pub no_setuid_scan: bool,
    /// Skip paths matching GLOB in the setuid scan (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Serialize)]
struct Details {
    items: usize,
    window_start: Option<Timestamp>,
    baseline_taken_at: Option<Timestamp>,
    baseline_recorded: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // Checked first: a wrong incident number must not cost a whole scan.
    let target = args.output.incident.map(|id| Target::open(ctx, id)).transpose()?;
    let now = Timestamp::now();
    let root = RootFs::open(&args.root)?;
    let config = &ctx.config.eradicate;
    let excludes = super::recent::build_globs(config.exclude.iter().chain(&args.exclude))?;
    let setuid_scan = config.setuid_scan && !args.no_setuid_scan;
    let (items, mut warnings) = persistence_items(&root, setuid_scan, &excludes);

    let root_name = args.root.display().to_string();
    let baseline_path = baseline::path(&ctx.data_dir, "persistence");
    let base =
        baseline::load_for_root::<PersistenceSnapshot>(&baseline_path, &root_name, &mut warnings)?;
    let window_start = match (&args.since, &args.newer_than) {
        (Some(since), _) => {
            let seconds = parse_window(since).map_err(anyhow::Error::msg)?;
            Some(
                Timestamp::from_second(now.as_second() - seconds)
                    .context("window reaches before year -9999")?,
            )
        }
        (None, Some(file)) => Some(super::recent::mtime_of(file)?.0),
        (None, None) if base.is_none() => Some(Timestamp::from_second(now.as_second() - 86_400)?),
        (None, None) => None,
    };
    let findings = assess(&items, window_start, base.as_ref());
    if args.baseline {
        baseline::save_for_root(&baseline_path, &root_name, PersistenceSnapshot::new(&items, now))?;
    }

    let details = Details {
        items: items.len(),
        window_start,
        baseline_taken_at: base.as_ref().and_then(|b| b.taken_at),
        baseline_recorded: args.baseline,
    };
    let audited = Audited {
        command: "persistence",
        root_name: &root_name,
        now,
        details,
        findings: &findings,
        warnings: &warnings,
        what: format!("persistence check of {root_name}"),
        after_table: args.baseline.then(|| {
            format!("baseline recorded: {} ({} items)", baseline_path.display(), items.len())
        }),
    };
    finish(audited, Output { json: args.output.json, lang: args.output.lang, target })
}
