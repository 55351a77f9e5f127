//! `hikeshi watch`: the live daemon (see [`crate::daemon`]).
//!
//! Runs in the foreground until SIGTERM or SIGINT (exit 0 after a clean
//! stop); SIGHUP reloads the configuration. Logs go to standard error
//! (the journal, under systemd). Exit code 2 when it cannot start (bad
//! configuration, a source that cannot be opened, a busy port) or stops
//! on an error.

use std::process::ExitCode;

use anyhow::Result;

use super::Context;
use crate::daemon::WatchOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also read log lines from standard input (stops at its end when it
    /// is the only source).
    #[arg(long)]
    pub stdin: bool,
    /// Detect, record and alert, but change no firewall.
    #[arg(long)]
    pub no_ban: bool,
    /// Log more (repeat for more still).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(ctx: Context, args: Args) -> Result<ExitCode> {
    let level = match args.verbose {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Under systemd the journal adds its own timestamps.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let installed =
        if under_systemd { builder.without_time().try_init() } else { builder.try_init() };
    if let Err(err) = installed {
        eprintln!("hikeshi: warning: logging not set up: {err}");
    }
    crate::daemon::run(ctx, WatchOptions { stdin: args.stdin, no_ban: args.no_ban })?;
    Ok(ExitCode::SUCCESS)
}
