//! `hikeshi accounts`: the runbook's `cat /etc/passwd | grep
//! SuspiciousKeyword`, done properly. Audits `/etc/passwd`, `shadow`,
//! `group`, `sudoers` (with includes) and every account's
//! `authorized_keys` under `--root`, and with a baseline reports what was
//! added or changed since.
//!
//! Exit code 1 when a finding is high or critical.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use hikeshi_core::eradicate::accounts::{audit, diff_baseline, AccountsRules, AccountsSnapshot};
use hikeshi_core::eradicate::sort_findings;
use hikeshi_core::incident::{Actor, IncidentId};
use jiff::Timestamp;
use serde::Serialize;

use super::{Context, EXIT_FINDINGS};
use crate::eradicate::baseline::{self, Stored, FORMAT_VERSION};
use crate::eradicate::collect::read_accounts;
use crate::eradicate::report::{needs_attention, write_json, write_table, EvidenceDocument, Lang};
use crate::eradicate::rootfs::RootFs;
use crate::evidence::{self, Document, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audit the system whose root is DIR (a mounted disk image, a fixture).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Record the accounts as seen now as the baseline that later runs
    /// compare with (<data dir>/baselines/accounts.json).
    #[arg(long)]
    pub baseline: bool,
    /// Print one JSON document (findings and their SHA-256) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Language of the reasons in the table.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: Lang,
    /// Attach the findings (the JSON document, with its SHA-256) to
    /// incident N as evidence, with a timeline entry.
    #[arg(long, value_name = "N")]
    pub incident: Option<IncidentId>,
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
    let mut target = args.incident.map(|id| Target::open(ctx, id)).transpose()?;
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
    if let Some(stored) = baseline::load::<AccountsSnapshot>(&baseline_path)? {
        if stored.root == root_name {
            baseline_taken_at = stored.snapshot.taken_at;
            result.findings.extend(diff_baseline(&stored.snapshot, &result.snapshot));
            sort_findings(&mut result.findings);
        } else {
            warnings.push(format!(
                "baseline {} describes root {:?}, not {root_name:?}: not compared",
                baseline_path.display(),
                stored.root
            ));
        }
    }
    if args.baseline {
        baseline::save(
            &baseline_path,
            &Stored {
                version: FORMAT_VERSION,
                root: root_name.clone(),
                snapshot: result.snapshot.clone(),
            },
        )?;
    }

    let mut stdout = std::io::stdout().lock();
    let document = (args.json || target.is_some())
        .then(|| -> Result<Vec<u8>> {
            let details = Details {
                uid_min: result.uid_min,
                accounts: result.accounts,
                baseline_taken_at,
                baseline_recorded: args.baseline,
            };
            let doc = EvidenceDocument::new(
                "accounts",
                root_name.clone(),
                now,
                details,
                &result.findings,
                &warnings,
            );
            let mut bytes = Vec::new();
            write_json(&mut bytes, &doc)?;
            Ok(bytes)
        })
        .transpose()?;
    match &document {
        Some(bytes) if args.json => stdout.write_all(bytes)?,
        _ => {
            for w in &warnings {
                eprintln!("hikeshi: accounts: warning: {w}");
            }
            write_table(&mut stdout, &result.findings, args.lang)?;
            if args.baseline {
                writeln!(stdout, "baseline recorded: {}", baseline_path.display())?;
            }
        }
    }
    if let (Some(target), Some(bytes)) = (&mut target, document) {
        let doc = Document {
            producer: evidence::producer("accounts", &[("root", root_name.clone())]),
            bytes: evidence::without_final_newline(bytes),
            extension: "json",
            summary: format!(
                "accounts audit of {root_name}: {}",
                evidence::findings_summary(&result.findings)
            ),
        };
        let attached = target.attach(&doc, now, &Actor::Automatic)?;
        eprintln!("hikeshi: accounts: {}", attached.describe());
    }
    stdout.flush()?;
    Ok(if needs_attention(&result.findings) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
