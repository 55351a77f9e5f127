//! `hikeshi report N`: the incident report of the runbook's template
//! (Date, Detected by, Summary, Actions Taken, Root Cause, Preventive
//! Measures), then the timeline, evidence with SHA-256 digests, people and
//! roles, lessons learned and metrics, as Markdown, HTML or JSON, in
//! English, Japanese or both. Exit code 0; 2 on errors (no such incident,
//! unreadable log, unwritable output).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use hikeshi_core::harden;
use hikeshi_core::incident::IncidentId;
use hikeshi_core::report::{self, Lang};
use jiff::Timestamp;

use super::Context;
use crate::report::{Extras, LoginParsing};
use crate::store::Store;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Html,
    Json,
}

/// Language(s) of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LangArg {
    En,
    Ja,
    Both,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::En => Lang::En,
            LangArg::Ja => Lang::Ja,
            LangArg::Both => Lang::Both,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The incident's number.
    #[arg(value_name = "N")]
    id: IncidentId,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Language: English, Japanese, or both side by side.
    #[arg(long, value_enum, default_value = "en")]
    lang: LangArg,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// An authentication log to compare legitimate users' failures with
    /// the attack's, for threshold suggestions (repeatable).
    #[arg(long = "auth-log", value_name = "FILE")]
    auth_logs: Vec<PathBuf>,
    /// Audit sshd (`sshd -T`) and offer its findings as suggested
    /// preventive measures.
    #[arg(long)]
    harden: bool,
    /// Like --harden, but read the sshd configuration under DIR.
    #[arg(long, value_name = "DIR")]
    harden_root: Option<PathBuf>,
    /// Also attach this report to the (open) incident as evidence: the
    /// playbook's "report and share lessons learned" step, before closing.
    #[arg(long)]
    attach: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // Checked first: a report that cannot be attached is not written.
    let mut target =
        if args.attach { Some(crate::evidence::Target::open(ctx, args.id)?) } else { None };
    let store = Store::open_for(ctx)?;
    let hardening = if let Some(root) = &args.harden_root {
        let settings = crate::harden::settings_from_root(root)?;
        let incident = crate::harden::incident_context(&store, args.id, root).ok();
        harden::audit(&settings, incident.as_ref())
    } else if args.harden {
        let settings = crate::harden::settings_from_sshd(None, None)?;
        let incident =
            crate::harden::incident_context(&store, args.id, std::path::Path::new("/")).ok();
        harden::audit(&settings, incident.as_ref())
    } else {
        Vec::new()
    };
    let extras = Extras {
        auth_logs: args.auth_logs.clone(),
        parsing: LoginParsing {
            mode: ctx.config.parse.mode,
            zone: ctx.config.parse.time_zone()?,
            max_line_len: ctx.config.parse.max_line_bytes,
        },
        hardening,
    };
    let input = crate::report::assemble(&store, args.id, &extras, Timestamp::now())?;
    let text = render(&report::build(&input), args.format, args.lang.into());
    if let Some(target) = &mut target {
        let (format, extension) = match args.format {
            Format::Md => ("md", "md"),
            Format::Html => ("html", "html"),
            Format::Json => ("json", "json"),
        };
        let lang = match args.lang {
            LangArg::En => "en",
            LangArg::Ja => "ja",
            LangArg::Both => "both",
        };
        let doc = crate::evidence::Document {
            producer: format!("hikeshi report {} --format {format} --lang {lang}", args.id),
            bytes: text.clone().into_bytes(),
            extension,
            summary: format!("post-incident report ({format}, {lang})"),
        };
        let actor = hikeshi_core::incident::Actor::Automatic;
        let attached = target.attach(&doc, Timestamp::now(), &actor)?;
        eprintln!("hikeshi: report: {}", attached.describe());
    }
    match &args.out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The report in `format` and `lang`.
pub fn render(report: &report::Report, format: Format, lang: Lang) -> String {
    match format {
        Format::Md => report::markdown(report, lang),
        Format::Html => report::html(report, lang),
        Format::Json => report::json(report, lang),
    }
}
