//! `hikeshi parse`: shows what hikeshi sees in sshd logs, line by line
//! (`text`, `jsonl`) or as counts (`summary`), like `fail2ban-regex` for
//! every line at once. Its summary warns when sshd lines are not
//! understood: after an OpenSSH upgrade changes a message, a parser that
//! matches nothing is silently blind.
//!
//! Exit codes: 0 when every input was read; 2 when one could not be (the
//! others are still parsed and reported).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use hikeshi_core::parse::{
    LineParser, LineVerdict, Origin, ParseOptions, ParseStats, Parsed, SkipReason,
};
use hikeshi_core::{Kind, Mode, Outcome, Source};
use jiff::Timestamp;
use serde::Serialize;

use super::{Context, EXIT_ERROR};
use crate::sources::lines::{Line, LineReader};

/// Examples of unrecognised sshd lines kept per input for the summary.
const UNRECOGNISED_EXAMPLES: usize = 5;
/// Below this share of understood sshd lines, the summary warns.
const UNDERSTOOD_SHARE_WARNING: f64 = 0.5;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which messages count as failures: normal, ddos, extra, aggressive.
    /// Default: [parse] mode of the configuration.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<Mode>,

    /// Output: one readable line per event, one JSON object per event, or
    /// counts per kind and outcome.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Time zone of classic syslog timestamps (an IANA name). Default:
    /// [parse] timezone of the configuration, else the local zone.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,

    /// Log files to read; `-` (or none) reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Jsonl,
    Summary,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let mode = args.mode.unwrap_or(ctx.config.parse.mode);
    let zone = match &args.timezone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .with_context(|| format!("--timezone: unknown time zone {name:?}"))?,
        None => ctx.config.parse.time_zone()?,
    };
    let inputs: Vec<PathBuf> =
        if args.files.is_empty() { vec![PathBuf::from("-")] } else { args.files.clone() };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut failed = false;
    for path in &inputs {
        let is_stdin = path.as_os_str() == "-";
        let (reader, reference): (Box<dyn Read>, Timestamp) = if is_stdin {
            (Box::new(io::stdin().lock()), Timestamp::now())
        } else {
            match open(path) {
                Ok(opened) => opened,
                Err(err) => {
                    out.flush()?;
                    eprintln!("hikeshi: error: {err:#}");
                    failed = true;
                    continue;
                }
            }
        };
        let mut opts = ParseOptions::new(mode, zone.clone(), reference);
        opts.max_line_len = ctx.config.parse.max_line_bytes;
        opts.max_connections = ctx.config.parse.max_connections;
        let name = if is_stdin { "-".to_string() } else { path.display().to_string() };
        match parse_input(reader, &name, opts, args.format, &mut out) {
            Ok(report) => {
                if args.format == Format::Summary {
                    write_summary(&mut out, &name, mode, &report)?;
                } else if let Some(warning) = blindness_warning(&name, &report.stats) {
                    out.flush()?;
                    eprintln!("hikeshi: {warning}");
                }
            }
            Err(err) if is_broken_pipe(&err) => return Err(err),
            Err(err) => {
                out.flush()?;
                eprintln!("hikeshi: error: {err:#}");
                failed = true;
            }
        }
    }
    out.flush()?;
    Ok(if failed { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS })
}

fn open(path: &Path) -> Result<(Box<dyn Read>, Timestamp)> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        anyhow::bail!("cannot read {}: is a directory", path.display());
    }
    // Yearless timestamps belong to the year before the file was last
    // written, not to the year it is read in.
    let reference = meta
        .modified()
        .ok()
        .and_then(|m| Timestamp::try_from(m).ok())
        .unwrap_or_else(Timestamp::now);
    Ok((Box::new(file), reference))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// What one input gave, for the summary.
struct Report {
    stats: ParseStats,
    max_connections: usize,
    /// (line number, raw line) of the first unrecognised sshd lines.
    unrecognised: Vec<(u64, Vec<u8>)>,
}

fn parse_input(
    mut reader: impl Read,
    name: &str,
    opts: ParseOptions,
    format: Format,
    out: &mut impl Write,
) -> Result<Report> {
    let max_line_len = opts.max_line_len;
    let max_connections = opts.max_connections;
    let mut parser = LineParser::new(opts);
    let mut lines = LineReader::new(&mut reader, max_line_len);
    let mut events: Vec<Parsed> = Vec::with_capacity(16);
    let mut unrecognised = Vec::new();
    loop {
        let line = lines.next_line().with_context(|| format!("cannot read {name}"))?;
        let Some(line) = line else { break };
        match line {
            Line::TooLong { .. } => parser.record_skipped(SkipReason::TooLong),
            Line::Text { bytes, number, offset, .. } => {
                let verdict = parser.push_line(bytes, Origin { line: number, offset }, &mut events);
                if verdict == LineVerdict::SshdUnrecognised
                    && unrecognised.len() < UNRECOGNISED_EXAMPLES
                {
                    unrecognised.push((number, bytes.to_vec()));
                }
            }
        }
        if !events.is_empty() {
            write_events(out, name, format, &events)?;
            events.clear();
        }
    }
    parser.finish(&mut events);
    write_events(out, name, format, &events)?;
    Ok(Report { stats: parser.stats().clone(), max_connections, unrecognised })
}

/// One event of `--format jsonl`.
#[derive(Serialize)]
struct JsonEvent<'a> {
    file: &'a str,
    line: u64,
    time: String,
    host: Option<&'a str>,
    process: &'a str,
    pid: Option<u32>,
    kind: Kind,
    outcome: Outcome,
    source: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unresolved: bool,
    user: Option<&'a str>,
    port: Option<u16>,
}

fn write_events(out: &mut impl Write, name: &str, format: Format, events: &[Parsed]) -> Result<()> {
    for parsed in events {
        let ev = &parsed.event;
        match format {
            Format::Summary => {}
            Format::Jsonl => {
                let json = JsonEvent {
                    file: name,
                    line: parsed.origin.line,
                    time: ev.time.to_string(),
                    host: ev.host.as_deref(),
                    process: &ev.process,
                    pid: ev.pid,
                    kind: ev.kind,
                    outcome: ev.outcome,
                    source: ev.source.as_ref().map(Source::to_string),
                    unresolved: ev.source.as_ref().is_some_and(Source::is_unresolved),
                    user: ev.user.as_deref(),
                    port: ev.port,
                };
                serde_json::to_writer(&mut *out, &json)?;
                out.write_all(b"\n")?;
            }
            Format::Text => {
                write!(
                    out,
                    "{name}:{}: {} {:<7} {}",
                    parsed.origin.line,
                    ev.time,
                    ev.outcome.as_str(),
                    ev.kind
                )?;
                match &ev.source {
                    Some(s @ Source::Hostname(_)) => write!(out, " source={s} (unresolved)")?,
                    Some(s) => write!(out, " source={s}")?,
                    None => write!(out, " source=-")?,
                }
                if let Some(port) = ev.port {
                    write!(out, " port={port}")?;
                }
                if let Some(user) = &ev.user {
                    // Attacker-chosen: escaped, never raw on a terminal.
                    write!(out, " user={user:?}")?;
                }
                write!(out, " [{}", ev.host.as_deref().unwrap_or("-"))?;
                match ev.pid {
                    Some(pid) => writeln!(out, " {}[{pid}]]", ev.process)?,
                    None => writeln!(out, " {}]", ev.process)?,
                }
            }
        }
    }
    Ok(())
}

/// The warning for an input whose sshd lines were (mostly) not understood.
fn blindness_warning(name: &str, stats: &ParseStats) -> Option<String> {
    let sshd = stats.sshd_lines;
    let understood = sshd - stats.sshd_unrecognised;
    if sshd == 0 {
        return None;
    }
    let share = understood as f64 / sshd as f64;
    if understood == 0 || (sshd >= 10 && share < UNDERSTOOD_SHARE_WARNING) {
        Some(format!(
            "WARNING: {name}: only {understood} of {sshd} sshd lines were understood ({:.0}%): \
             hikeshi may be blind to this sshd's messages (an OpenSSH upgrade that changed them?). \
             See the unrecognised examples and report them.",
            share * 100.0
        ))
    } else {
        None
    }
}

fn write_summary(out: &mut impl Write, name: &str, mode: Mode, report: &Report) -> Result<()> {
    let s = &report.stats;
    writeln!(out, "{name} (mode {})", mode.as_str())?;
    writeln!(out, "  lines read             {}", s.lines)?;
    writeln!(
        out,
        "  sshd lines             {} (recognised {}, ignored {}, unrecognised {})",
        s.sshd_lines,
        s.recognised_total(),
        s.sshd_ignored,
        s.sshd_unrecognised
    )?;
    writeln!(out, "  other programs' lines  {}", s.not_sshd)?;
    let skipped: Vec<String> = SkipReason::ALL
        .iter()
        .filter(|r| s.skipped(**r) > 0)
        .map(|r| format!("{} {}", r.as_str(), s.skipped(*r)))
        .collect();
    if skipped.is_empty() {
        writeln!(out, "  skipped lines          0")?;
    } else {
        writeln!(out, "  skipped lines          {} ({})", s.skipped_total(), skipped.join(", "))?;
    }
    writeln!(
        out,
        "  events                 failure {}, success {}, context {}",
        s.outcome(Outcome::Failure),
        s.outcome(Outcome::Success),
        s.outcome(Outcome::Context)
    )?;
    let kinds: Vec<Kind> = Kind::ALL.iter().copied().filter(|k| s.recognised(*k) > 0).collect();
    if !kinds.is_empty() {
        writeln!(out, "  by kind:")?;
        for kind in kinds {
            let meaning = match kind.outcome(mode) {
                Outcome::Pending => "pending (decided by its connection)",
                o => o.as_str(),
            };
            writeln!(out, "    {:<32} {:>9}  {meaning}", kind.as_str(), s.recognised(kind))?;
        }
    }
    let c = &s.correlation;
    if c.source_from_earlier + c.source_from_later + c.source_never_found > 0 {
        writeln!(
            out,
            "  source from connection earlier {}, later {}, never found {}",
            c.source_from_earlier, c.source_from_later, c.source_never_found
        )?;
    }
    let pending_failed = c.pending_closed
        + c.pending_another_failure
        + c.pending_other_user
        + c.pending_evicted
        + c.pending_end_of_input;
    if pending_failed + c.pending_absorbed + c.pending_then_success + c.pending_unjoinable > 0 {
        writeln!(
            out,
            "  pam_unix pending       {pending_failed} became failures, {} counted by their Failed line, \
             {} followed by success, {} without PID (context)",
            c.pending_absorbed, c.pending_then_success, c.pending_unjoinable
        )?;
    }
    writeln!(
        out,
        "  connections tracked    peak {} at once (limit {}), {} evicted",
        c.connections_peak, report.max_connections, c.connections_evicted
    )?;
    if c.connections_evicted > 0 {
        writeln!(
            out,
            "  WARNING: the connection table was full: raise [parse] max_connections \
             (evicted connections were resolved, not lost)"
        )?;
    }
    if s.ambiguous_sources > 0 {
        writeln!(
            out,
            "  ambiguous addresses    {} (taken from the connection)",
            s.ambiguous_sources
        )?;
    }
    if !report.unrecognised.is_empty() {
        writeln!(out, "  unrecognised sshd lines (first {}):", report.unrecognised.len())?;
        for (number, line) in &report.unrecognised {
            writeln!(out, "    line {number}: {}", escape(line))?;
        }
    }
    if let Some(warning) = blindness_warning(name, s) {
        writeln!(out, "  {warning}")?;
    }
    Ok(())
}

/// Printable ASCII as is, everything else escaped: a log line is hostile
/// and must not drive the terminal.
fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(300)];
    let mut s: String =
        shown.iter().flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if shown.len() < bytes.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_for(lines: &str) -> ParseStats {
        let opts = ParseOptions::new(Mode::Normal, jiff::tz::TimeZone::UTC, Timestamp::UNIX_EPOCH);
        let mut sink = Vec::new();
        parse_input(lines.as_bytes(), "t", opts, Format::Summary, &mut sink).unwrap().stats
    }

    #[test]
    fn warns_when_sshd_lines_are_not_understood() {
        let blind =
            "Jan 1 00:00:00 h sshd[1]: Authentication refused for x via y 1.2.3.4\n".repeat(3);
        let blind = blind.replace("Jan 1", "Jan  1");
        assert!(blindness_warning("t", &stats_for(&blind)).is_some());
        let fine = "Jan  1 00:00:00 h sshd[1]: Invalid user x from 192.0.2.1 port 1\n".repeat(3);
        assert!(blindness_warning("t", &stats_for(&fine)).is_none());
        let other = "Jan  1 00:00:00 h cron[1]: whatever\n";
        assert!(blindness_warning("t", &stats_for(other)).is_none());
    }

    #[test]
    fn escape_neutralises_terminal_controls() {
        assert_eq!(escape(b"a\x1b[31mb\xff"), "a\\x1b[31mb\\xff");
    }
}
