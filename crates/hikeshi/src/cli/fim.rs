//! `hikeshi fim`: file integrity baseline and check (AIDE-class).
//!
//! Exit codes of `check` follow AIDE so existing scripts keep working:
//! 0 no differences; 1 files added, 2 removed, 4 changed, summed (7 = all
//! three); 18 an error (unreadable configuration, missing or untrusted
//! baseline: AIDE's "I/O error"). Other subcommands use hikeshi's usual
//! 0 / 1 / 2.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use hikeshi_core::fim::aide;
use hikeshi_core::fim::report::ScanIssue;
use hikeshi_core::incident::{Actor, IncidentId};

use super::Context;
use crate::evidence::{self, Document, Target};
use crate::fim::{self, keys, Settings};

/// Exit code for errors in `check` and `update` (AIDE's I/O error).
pub const EXIT_FIM_ERROR: u8 = 18;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: FimCommand,
}

#[derive(Debug, Subcommand)]
enum FimCommand {
    /// Scan the watched paths and write a new baseline.
    Init(InitArgs),
    /// Compare the watched paths with the baseline (exit 1 added + 2 removed + 4 changed).
    Check(CheckArgs),
    /// Report the differences and accept the current state as the new baseline.
    Update(UpdateArgs),
    /// Write an ed25519 key pair for signing baselines.
    Keygen(KeygenArgs),
    /// Translate an aide.conf into a [fim] configuration section.
    ImportAide(ImportArgs),
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// Baseline file (default: [fim] baseline, else <data dir>/fim/baseline.hfim).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Hashing threads (default: [fim] threads, else one more than the CPUs).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    #[command(flatten)]
    scan: ScanArgs,
    /// Sign the baseline with this secret key (from `hikeshi fim keygen`).
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Replace an existing baseline.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    scan: ScanArgs,
    /// Require a baseline signed by this public key (overrides [fim] public_key).
    #[arg(long, value_name = "FILE")]
    verify_key: Option<PathBuf>,
    /// Attach the result (the canonical JSON report, with its SHA-256) to
    /// incident N as evidence, with a timeline entry.
    #[arg(long, value_name = "N")]
    incident: Option<IncidentId>,
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    #[command(flatten)]
    scan: ScanArgs,
    /// Sign the new baseline with this secret key.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Require the old baseline to be signed by this public key.
    #[arg(long, value_name = "FILE")]
    verify_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Secret key file to create (mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The aide.conf to translate.
    file: PathBuf,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    match args.command {
        FimCommand::Init(a) => init(ctx, a),
        FimCommand::Check(a) => {
            // A wrong incident number is a usage error (exit 2), found
            // before the scan.
            let target = a.incident.map(|id| Target::open(ctx, id)).transpose()?;
            with_fim_error_code(check(ctx, a, target))
        }
        FimCommand::Update(a) => with_fim_error_code(update(ctx, a)),
        FimCommand::Keygen(a) => keygen(a),
        FimCommand::ImportAide(a) => import_aide(ctx, a),
    }
}

/// Errors of `check`/`update` exit with 18, not 2: for AIDE's scripts 2
/// means "files removed".
fn with_fim_error_code(result: Result<ExitCode>) -> Result<ExitCode> {
    result.or_else(|err| {
        if super::is_broken_pipe(&err) {
            return Ok(ExitCode::SUCCESS);
        }
        let _ = writeln!(std::io::stderr().lock(), "hikeshi: error: {err:#}");
        Ok(ExitCode::from(EXIT_FIM_ERROR))
    })
}

fn settings(ctx: &Context, scan: &ScanArgs, verify_key: Option<&PathBuf>) -> Result<Settings> {
    let mut settings = Settings::from_config(&ctx.config.fim, &ctx.data_dir)?;
    if let Some(path) = &scan.baseline {
        settings.baseline_path = path.clone();
    }
    if let Some(n) = scan.threads {
        settings.threads = n.max(1);
    }
    if scan.no_progress {
        settings.progress = false;
    }
    if let Some(path) = verify_key {
        settings.pinned_key = Some(keys::read_public(path)?);
    }
    Ok(settings)
}

fn print(text: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)?;
    out.flush()?;
    Ok(())
}

fn print_issues(issues: &[ScanIssue]) -> String {
    let mut out = String::new();
    for i in issues {
        out.push_str(&format!("  ! {} ({:?}): {}\n", i.path, i.kind, i.detail));
    }
    out
}

fn init(ctx: &Context, args: InitArgs) -> Result<ExitCode> {
    let settings = settings(ctx, &args.scan, None)?;
    if settings.baseline_path.exists() && !args.force {
        bail!(
            "a baseline already exists at {}: use `hikeshi fim update` to accept changes, or `init --force` to start over",
            settings.baseline_path.display()
        );
    }
    let sign_key = args.sign_key.as_deref().map(keys::read_secret).transpose()?;
    let outcome = fim::init(&settings, jiff::Timestamp::now(), sign_key.as_ref())?;
    if args.scan.json {
        let json = serde_json::json!({ "baseline": settings.baseline_path, "header": outcome.header, "issues": outcome.issues });
        print(format!("{json}\n").as_bytes())?;
    } else {
        let h = &outcome.header;
        let signed = if sign_key.is_some() { "signed" } else { "unsigned" };
        let mut text = format!(
            "baseline written to {}: {} entries, {signed}, body {}\n",
            settings.baseline_path.display(),
            h.records,
            h.body_digest
        );
        if !outcome.issues.is_empty() {
            text.push_str(&format!(
                "{} issues (not fatal):\n{}",
                outcome.issues.len(),
                print_issues(&outcome.issues)
            ));
        }
        print(text.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check(ctx: &Context, args: CheckArgs, target: Option<Target>) -> Result<ExitCode> {
    let settings = settings(ctx, &args.scan, args.verify_key.as_ref())?;
    let report = fim::check(&settings, jiff::Timestamp::now())?;
    if args.scan.json {
        let mut json = report.to_canonical_json();
        json.push(b'\n');
        print(&json)?;
    } else {
        print(
            format!("{}evidence digest: {}\n", report.render_text(), report.evidence_digest())
                .as_bytes(),
        )?;
    }
    if let Some(mut target) = target {
        let s = &report.summary;
        let baseline = settings.baseline_path.display().to_string();
        let doc = Document {
            producer: evidence::producer("fim check", &[("baseline", baseline.clone())]),
            bytes: report.to_canonical_json(),
            extension: "json",
            summary: format!(
                "file integrity check against {baseline}: {}; {} added, {} removed, {} changed, \
                 {} new setuid/setgid, {} unreadable",
                if report.exit_code() == 0 { "no differences" } else { "differences found" },
                s.added,
                s.removed,
                s.changed,
                s.new_setid,
                s.issues
            ),
        };
        let attached = target.attach(&doc, report.checked_at, &Actor::Automatic)?;
        writeln!(std::io::stderr().lock(), "hikeshi: fim check: {}", attached.describe())?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn update(ctx: &Context, args: UpdateArgs) -> Result<ExitCode> {
    let settings = settings(ctx, &args.scan, args.verify_key.as_ref())?;
    let sign_key = args.sign_key.as_deref().map(keys::read_secret).transpose()?;
    if settings.pinned_key.is_some() && sign_key.is_none() {
        bail!(
            "a public key is configured, so the new baseline must be signed: pass --sign-key FILE"
        );
    }
    let (report, header) = fim::update(&settings, jiff::Timestamp::now(), sign_key.as_ref())?;
    if args.scan.json {
        let json = serde_json::json!({ "accepted": report, "evidence_digest": report.evidence_digest(), "header": header });
        print(format!("{json}\n").as_bytes())?;
    } else {
        print(
            format!(
                "{}accepted as the new baseline: {} entries, written by {} at {}, supersedes {}\n",
                report.render_text(),
                header.records,
                header.created_by,
                header.created_at,
                header.supersedes.as_deref().unwrap_or("-")
            )
            .as_bytes(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    let key = keys::generate()?;
    let mut public_path = args.out.clone().into_os_string();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    keys::write_pair(&key, &args.out, &public_path)?;
    print(
        format!(
            "secret key: {} (keep it off this host; needed by init/update --sign-key)\npublic key: {}\n\nPin it in hikeshi.toml:\n[fim]\npublic_key = \"{}\"\n",
            args.out.display(),
            public_path.display(),
            keys::public_line(&key.verifying_key()).trim()
        )
        .as_bytes(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn import_aide(ctx: &Context, args: ImportArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let import = aide::import(&text, ctx.config.fim.hash);
    let mut out = String::from("[fim]\n");
    let excludes: Vec<String> = import.excludes.iter().map(|e| toml_string(e)).collect();
    out.push_str(&format!("exclude = [{}]\n", excludes.join(", ")));
    for rule in &import.rules {
        let scope = match rule.scope {
            hikeshi_core::fim::Scope::Tree => "tree",
            hikeshi_core::fim::Scope::Children => "children",
            hikeshi_core::fim::Scope::SelfOnly => "self",
        };
        out.push_str(&format!(
            "\n[[fim.rule]]\npath = {}\nattrs = {}\nscope = \"{scope}\"\n",
            toml_string(&rule.path),
            toml_string(&rule.attrs.to_string())
        ));
    }
    print(out.as_bytes())?;
    let mut err = std::io::stderr().lock();
    for d in &import.diagnostics {
        writeln!(err, "{}:{}: {}", args.file.display(), d.line, d.message)?;
    }
    Ok(if import.diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FINDINGS)
    })
}
