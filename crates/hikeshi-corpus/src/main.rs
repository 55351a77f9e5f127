//! `hikeshi-corpus`: writes a deterministic synthetic auth.log for
//! benchmarks and tests. See the `hikeshi_corpus` library for the model.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hikeshi_corpus::{Config, Envelope, Generator, Stats};

/// Writes a deterministic, realistic sshd auth.log: attack sessions,
/// legitimate logins and other daemons' noise, interleaved.
#[derive(Debug, Parser)]
#[command(name = "hikeshi-corpus", version, about, max_term_width = 100)]
struct Args {
    /// Number of lines to write (0: no limit, until the reader stops).
    #[arg(long, value_name = "N")]
    lines: u64,
    /// Seed: the same seed and options always give the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Share of lines from attack sessions.
    #[arg(long, value_name = "SHARE", default_value_t = 0.4)]
    attack_share: f64,
    /// Share of lines from legitimate logins (the rest is other daemons).
    #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
    legit_share: f64,
    /// Share of connections from IPv6 addresses.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    ipv6_share: f64,
    /// Share of connections served by Dropbear instead of OpenSSH.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    dropbear_share: f64,
    /// Share of attack sessions with a user name that imitates the line
    /// (`admin from 192.0.2.1 port 22 ssh2`).
    #[arg(long, value_name = "SHARE", default_value_t = 0.001)]
    hostile_share: f64,
    /// Envelopes, comma-separated (classic, rfc3339, rfc5424, rfc3164,
    /// journal, nopid, solaris), or `mix` for all; several are mixed per line.
    #[arg(long, value_name = "LIST", default_value = "classic")]
    envelopes: String,
    /// Time of the first line (RFC 3339).
    #[arg(long, value_name = "TIME", default_value = "2026-01-15T00:00:00Z")]
    start: jiff::Timestamp,
    /// Average lines per second of log time.
    #[arg(long, value_name = "LINES_PER_SEC", default_value_t = 10.0)]
    rate: f64,
    /// Number of distinct attacking hosts.
    #[arg(long, value_name = "K", default_value_t = 500)]
    attackers: u32,
    /// Host name in the syslog header.
    #[arg(long, value_name = "NAME", default_value = "server1")]
    host: String,
    /// Output file, or `-` for standard output.
    #[arg(long, value_name = "FILE", default_value = "-")]
    out: PathBuf,
    /// Print what was generated (lines per share, per kind) to standard
    /// error when done: the ground truth for parsers' counts.
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `hikeshi-corpus --lines 0 | head` is not an error.
            if err
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("hikeshi-corpus: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let envelopes = Envelope::parse_list(&args.envelopes)
        .map_err(|e| anyhow::anyhow!("--envelopes {:?}: {e}", args.envelopes))?;
    let config = Config {
        lines: if args.lines == 0 { u64::MAX } else { args.lines },
        seed: args.seed,
        attack_share: args.attack_share,
        legit_share: args.legit_share,
        ipv6_share: args.ipv6_share,
        dropbear_share: args.dropbear_share,
        hostile_share: args.hostile_share,
        envelopes,
        start: args.start,
        lines_per_second: args.rate,
        attackers: args.attackers,
        host: args.host,
    };
    let mut generator = Generator::new(config).context("invalid options")?;
    if args.out.as_os_str() == "-" {
        generator.write_to(io::stdout().lock())?;
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        generator
            .write_to(BufWriter::with_capacity(1 << 20, file))
            .with_context(|| format!("cannot write {}", args.out.display()))?;
    }
    if args.stats {
        print_stats(generator.stats(), &mut io::stderr().lock())?;
    }
    Ok(())
}

fn print_stats(stats: &Stats, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "lines {}", stats.lines)?;
    writeln!(out, "attack_lines {}", stats.attack_lines)?;
    writeln!(out, "legit_lines {}", stats.legit_lines)?;
    writeln!(out, "noise_lines {}", stats.noise_lines)?;
    writeln!(out, "connections {}", stats.connections)?;
    writeln!(out, "ipv6_connections {}", stats.ipv6_connections)?;
    writeln!(out, "failed_password_lines {}", stats.failed_password_lines)?;
    for mode in hikeshi_core::Mode::ALL {
        writeln!(out, "failure_lines.{} {}", mode.as_str(), stats.failure_lines(mode))?;
    }
    for (kind, n) in stats.kinds() {
        writeln!(out, "kind.{kind} {n}")?;
    }
    Ok(())
}
