//! `hikeshi doctor`: prove the setup works (configuration, log sources,
//! the journal, syslog receivers, the firewall backend, SMTP, webhooks,
//! the data directory and store, the team). The checks live in
//! [`crate::doctor`]; this module loads the configuration itself, so that
//! a file that does not load is reported as the failed `config` check.
//!
//! Exit codes: 0 nothing failed (warnings allowed); 1 a check failed;
//! 2 the configuration does not load (no other check can run).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::{EXIT_ERROR, EXIT_FINDINGS};
use crate::config::Config;
use crate::doctor::{config_load_failure, Doctor, Report};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: {"checks": [{area, subject, status, finding, fix}], "ok", "warnings", "failed"}.
    #[arg(long)]
    pub json: bool,
}

/// Runs every check; `config` and `data_dir` as given on the command line.
pub fn run(config: Option<&Path>, data_dir: PathBuf, args: Args) -> Result<ExitCode> {
    let (report, code) = match Config::load(config) {
        Err(error) => {
            let report = Report { checks: vec![config_load_failure(config, &error)] };
            (report, EXIT_ERROR)
        }
        Ok((config, config_path)) => {
            let doctor = Doctor {
                config: &config,
                config_path: config_path.as_deref(),
                data_dir: &data_dir,
                now: jiff::Timestamp::now(),
            };
            let report = doctor.run();
            let code = if report.failed() { EXIT_FINDINGS } else { 0 };
            (report, code)
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "checks": report.checks,
            "ok": report.count(crate::doctor::Status::Ok),
            "warnings": report.count(crate::doctor::Status::Warn),
            "failed": report.count(crate::doctor::Status::Fail),
        });
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    } else {
        out.write_all(report.to_text().as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::from(code))
}
