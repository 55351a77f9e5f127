//! `hikeshi harden ssh`: audits the effective sshd configuration (`sshd
//! -T`, or the files under `--root`) and, with `--incident N`, what that
//! incident showed. Exit code 0 when nothing of medium severity or above
//! was found, 1 when something was, 2 on errors.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use hikeshi_core::harden::{self, Finding, SettingsSource, SshdSettings};
use hikeshi_core::incident::IncidentId;
use hikeshi_core::Severity;
use serde::Serialize;

use super::incident::escape_text;
use super::report::LangArg;
use super::{Context, EXIT_FINDINGS};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: HardenCommand,
}

#[derive(Debug, Subcommand)]
enum HardenCommand {
    /// Audit sshd: passwords, root login, port, MaxAuthTries, AllowUsers, keys, LoginGraceTime.
    Ssh(SshArgs),
}

#[derive(Debug, clap::Args)]
struct SshArgs {
    /// Read the configuration files under DIR (DIR/etc/ssh/sshd_config and
    /// its Includes) instead of running `sshd -T`.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Run `sshd -T -f FILE` (a configuration that is not installed).
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    sshd_config: Option<PathBuf>,
    /// Host key for `sshd -T -h FILE` (when the system has none yet).
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    host_key: Option<PathBuf>,
    /// Also judge what incident N showed (accounts attacked, root tried).
    #[arg(long, value_name = "N")]
    incident: Option<IncidentId>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Language of the text output.
    #[arg(long, value_enum, default_value = "en")]
    lang: LangArg,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let HardenCommand::Ssh(args) = args.command;
    let settings = match &args.root {
        Some(root) => crate::harden::settings_from_root(root)?,
        None => crate::harden::settings_from_sshd(
            args.sshd_config.as_deref(),
            args.host_key.as_deref(),
        )?,
    };
    let incident = match args.incident {
        Some(id) => {
            let store = Store::open_for(ctx)?;
            let root = args.root.as_deref().unwrap_or(Path::new("/"));
            Some(crate::harden::incident_context(&store, id, root)?)
        }
        None => None,
    };
    let findings = harden::audit(&settings, incident.as_ref());
    let text = if args.json {
        to_json(&settings, &findings)?
    } else {
        render_text(&settings, &findings, args.lang)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    let attention = findings.iter().any(|f| f.severity >= Severity::Medium);
    Ok(if attention { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS })
}

/// The keywords the audit reads, shown with their effective values.
const SHOWN: &[&str] = &[
    "passwordauthentication",
    "kbdinteractiveauthentication",
    "permitrootlogin",
    "port",
    "maxauthtries",
    "allowusers",
    "allowgroups",
    "pubkeyauthentication",
    "logingracetime",
    "permitemptypasswords",
];

fn to_json(settings: &SshdSettings, findings: &[Finding]) -> Result<String> {
    #[derive(Serialize)]
    struct Out<'a> {
        source: SettingsSource,
        effective: std::collections::BTreeMap<&'static str, Vec<&'a str>>,
        match_blocks: &'a [harden::MatchBlock],
        diagnostics: &'a [harden::Diagnostic],
        findings: &'a [Finding],
    }
    let effective = SHOWN.iter().map(|k| (*k, settings.list(k))).collect();
    let out = Out {
        source: settings.source,
        effective,
        match_blocks: &settings.match_blocks,
        diagnostics: &settings.diagnostics,
        findings,
    };
    let mut text = serde_json::to_string_pretty(&out)?;
    text.push('\n');
    Ok(hikeshi_core::report::escape_json_text(&text))
}

fn render_text(settings: &SshdSettings, findings: &[Finding], lang: LangArg) -> String {
    let mut o = String::new();
    let source = match settings.source {
        SettingsSource::SshdTest => "sshd -T",
        SettingsSource::ConfigFiles => "configuration files (OpenSSH defaults where unset)",
    };
    let _ = writeln!(o, "sshd settings from {source}:");
    for key in SHOWN {
        let values = settings.list(key);
        let shown = if values.is_empty() { "(not set)".to_string() } else { values.join(" ") };
        let _ = writeln!(o, "  {key:<30} {}", escape_text(&shown));
    }
    for d in &settings.diagnostics {
        let _ = writeln!(
            o,
            "warning: {}:{}: {}",
            escape_text(&d.file),
            d.line,
            escape_text(&d.message)
        );
    }
    for m in &settings.match_blocks {
        let _ = writeln!(
            o,
            "note: {}:{}: Match {} ({} setting(s) apply only to matching connections, not audited)",
            escape_text(&m.file),
            m.line,
            escape_text(&m.criteria),
            m.settings.len()
        );
    }
    let _ = writeln!(o);
    for f in findings {
        let _ = writeln!(
            o,
            "{:<8} {} = {}",
            f.severity.as_str().to_uppercase(),
            f.setting,
            escape_text(&f.value)
        );
        let mut lines: Vec<String> = Vec::new();
        if lang != LangArg::Ja {
            lines.push(escape_text(&f.finding_en).into_owned());
        }
        if lang != LangArg::En {
            lines.push(escape_text(&f.finding_ja).into_owned());
        }
        if lang != LangArg::Ja {
            lines.push(format!("→ {}", escape_text(&f.recommendation_en)));
        }
        if lang != LangArg::En {
            lines.push(format!("→ {}", escape_text(&f.recommendation_ja)));
        }
        for line in lines {
            let _ = writeln!(o, "         {line}");
        }
        let controls: Vec<String> = f.controls.iter().map(|c| format!("A.{c}")).collect();
        let _ = writeln!(o, "         ISO/IEC 27001:2022 {}", controls.join(", "));
    }
    let _ = writeln!(o, "{} finding(s).", findings.len());
    o
}
