//! The command line: one module per subcommand, each with its `Args` and
//! its `run`. This module owns the global options, loading the
//! configuration, and mapping errors to exit codes.
//!
//! Exit codes: 0 success; 1 the command found something that needs
//! attention (each command documents what); 2 an error (bad usage, bad
//! configuration, unreadable input).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub mod accounts;
pub mod audit;
pub mod ban;
pub mod bans;
pub mod doctor;
pub mod fim;
mod findings;
pub mod harden;
pub mod incident;
pub mod isms;
pub mod lifecycle;
pub mod parse;
pub mod persistence;
pub mod recent;
pub mod report;
pub mod scan;
pub mod status;
pub mod verify;
pub mod watch;

/// Incident response for Linux servers: detect SSH attacks, contain them,
/// and carry each incident through to its report.
#[derive(Debug, Parser)]
#[command(name = "hikeshi", version, about, max_term_width = 100)]
pub struct Cli {
    /// Directory for state (incidents, cursors, baselines). Default:
    /// /var/lib/hikeshi for root, else $XDG_STATE_HOME/hikeshi.
    #[arg(long, global = true, env = "HIKESHI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Configuration file. Default: /etc/hikeshi/hikeshi.toml if it exists,
    /// else built-in defaults.
    #[arg(long, global = true, env = "HIKESHI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show how hikeshi reads sshd log lines (like fail2ban-regex, for every line).
    Parse(parse::Args),
    /// Read what is new in log files, detect attacks, record incidents, ban and alert (for cron).
    Scan(scan::Args),
    /// The live daemon: follow log files, the journal and syslog; detect, ban and alert as lines arrive.
    Watch(watch::Args),
    /// Is the daemon running? What each source read, bans in force, open incidents, warnings.
    Status(status::Args),
    /// Ban sources in the firewall (the runbook's `iptables -A INPUT -s ADDR -j DROP`).
    Ban(ban::BanArgs),
    /// Lift bans.
    Unban(ban::UnbanArgs),
    /// List the bans in force.
    Bans(bans::BansArgs),
    /// Manage hikeshi's own firewall objects: setup, reconcile, flush, uninstall.
    Firewall(bans::FirewallArgs),
    /// List incidents, or show one with its timeline and evidence.
    Incident(incident::Args),
    /// The tamper-evident audit trail: verify it, print its head to keep off the host.
    Audit(audit::Args),
    /// File integrity: baseline, check, update (AIDE-class, parallel, signed baselines).
    Fim(fim::Args),
    /// Recovery validation: units active, ports answering, commands and files as expected.
    Verify(verify::Args),
    /// Audit accounts: suspicious names, UID 0, empty passwords, sudo rights, keys, changes since a baseline.
    Accounts(accounts::Args),
    /// List files changed (mtime or ctime) in a window, like `find / -mtime -1 -exec ls -l`.
    Recent(recent::Args),
    /// Find what attackers use to come back: keys, cron, systemd units, preload, setuid files.
    Persistence(persistence::Args),
    /// Write an incident's report (runbook template, timeline, evidence, lessons, metrics): md, html, json; en, ja, both.
    Report(report::Args),
    /// Audit hardening: `harden ssh` checks sshd's effective configuration.
    Harden(harden::Args),
    /// ISO/IEC 27001:2022 Annex A evidence, per control.
    Isms(isms::Args),
    /// Prove the setup works: config, log sources, journal, firewall, SMTP, data dir, team.
    ///
    /// Each check prints ok, warn or FAIL with a one-line finding, and a fix for warn and
    /// FAIL. Exit 0: nothing failed (warnings allowed); 1: a check failed; 2: the
    /// configuration does not load.
    Doctor(doctor::Args),
}

/// What every command gets: the loaded configuration and where state lives.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub data_dir: PathBuf,
}

/// Exit code for "the command found something that needs attention".
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for errors.
pub const EXIT_ERROR: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                // `hikeshi parse big.log | head` is not an error.
                return ExitCode::SUCCESS;
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "hikeshi: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = cli.data_dir.clone().unwrap_or_else(crate::data_dir::default_data_dir);
    let command = match cli.command {
        // doctor reports a configuration that does not load as a check.
        Command::Doctor(args) => return doctor::run(cli.config.as_deref(), data_dir, args),
        other => other,
    };
    let (config, config_path) = Config::load(cli.config.as_deref())?;
    let ctx = Context { config, config_path, data_dir };
    match command {
        Command::Parse(args) => parse::run(&ctx, args),
        Command::Scan(args) => scan::run(&ctx, args),
        Command::Watch(args) => watch::run(ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Ban(args) => ban::run_ban(&ctx, args),
        Command::Unban(args) => ban::run_unban(&ctx, args),
        Command::Bans(args) => bans::run_bans(&ctx, args),
        Command::Firewall(args) => bans::run_firewall(&ctx, args),
        Command::Incident(args) => incident::run(&ctx, args),
        Command::Audit(args) => audit::run(&ctx, args),
        Command::Fim(args) => fim::run(&ctx, args),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Accounts(args) => accounts::run(&ctx, args),
        Command::Recent(args) => recent::run(&ctx, args),
        Command::Persistence(args) => persistence::run(&ctx, args),
        Command::Report(args) => report::run(&ctx, args),
        Command::Harden(args) => harden::run(&ctx, args),
        Command::Isms(args) => isms::run(&ctx, args),
        Command::Doctor(_) => unreachable!("handled before the configuration is loaded"),
    }
}

pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
