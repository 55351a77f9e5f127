//! `hikeshi accounts`: the runbook's `cat /etc/passwd | grep
//! SuspiciousKeyword`, done properly. Audits `/etc/passwd`, `shadow`,
//! `group`, `sudoers` (with includes) and every account's
//! `authorized_keys` under `--root`, and with a baseline reports what was
//! added or changed since.
//!
//! Exit code 1 when a finding is high or critical.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use hikeshi_core::eradicate::accounts::{audit, diff_baseline, AccountsRules, AccountsSnapshot};
use hikeshi_core::eradicate::sort_findings;
use jiff::Timestamp;
use serde::Serialize;

use super::findings::{finish, Audited, Output, OutputArgs};
use super::Context;
use crate::eradicate::baseline;
use crate::eradicate::collect::read_accounts;
use crate::eradicate::rootfs::RootFs;
use crate::evidence::Target;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audit the system whose root is DIR (a mounted disk image, a fixture).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Record the accounts as seen now as the baseline that later runs
    /// compare with (<data dir>/baselines/accounts.json).
    #[arg(long)]
    pub baseline: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Facts of the audit, in the JSON document.
#[derive(Debug, Serialize)]
struct Details {
    uid_min: u32,
    accounts: usize,
    /// When the baseline compared with was taken; `null` if none was.
    baseline_taken_at: Option<Timestamp>,
    baseline_recorded: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // Checked first: a wrong incident number must not cost a whole audit.
    let target = args.output.incident.map(|id| Target::open(ctx, id)).transpose()?;
    let now = Timestamp::now();
    let root = RootFs::open(&args.root)?;
    let (input, mut warnings) = read_accounts(&root);
    let config = &ctx.config.eradicate;
    let rules = AccountsRules {
        keywords: config.keywords.clone(),
        recent_password_days: config.recent_password_days,
        uid_min: config.uid_min,
    };
    let mut result = audit(&input, &rules, now);
    let root_name = args.root.display().to_string();
    let baseline_path = baseline::path(&ctx.data_dir, "accounts");
    let mut baseline_taken_at = None;
    let stored =
        baseline::load_for_root::<AccountsSnapshot>(&baseline_path, &root_name, &mut warnings)?;
    if let Some(snapshot) = stored {
        baseline_taken_at = snapshot.taken_at;
        result.findings.extend(diff_baseline(&snapshot, &result.snapshot));
        sort_findings(&mut result.findings);
    }
    if args.baseline {
        baseline::save_for_root(&baseline_path, &root_name, &result.snapshot)?;
    }

    let details = Details {
        uid_min: result.uid_min,
        accounts: result.accounts,
        baseline_taken_at,
        baseline_recorded: args.baseline,
    };
    let audited = Audited {
        command: "accounts",
        root_name: &root_name,
        now,
        details,
        findings: &result.findings,
        warnings: &warnings,
        what: format!("accounts audit of {root_name}"),
        after_table: args
            .baseline
            .then(|| format!("baseline recorded: {}", baseline_path.display())),
    };
    finish(audited, Output { json: args.output.json, lang: args.output.lang, target })
}
