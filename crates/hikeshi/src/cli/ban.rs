//! `hikeshi ban` and `hikeshi unban`: contain sources by hand, the way
//! `scan`/`watch` do automatically.
//!
//! Each target is an address or a network in CIDR notation (an attacker's
//! IPv6 /64); a network that holds an allowlisted address is refused.
//!
//! Exit codes: 0 every target was handled; 1 some target was refused
//! (allowlisted); 2 containment failed or the input was invalid (then
//! nothing was banned: every target is checked before anything is done).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use hikeshi_core::allowlist::Allowlist;
use hikeshi_core::contain::{parse_duration, BanLength, BanTarget};
use jiff::Timestamp;

use super::{Context, EXIT_ERROR, EXIT_FINDINGS};
use crate::contain::{self, BanRequest, Containment, ContainmentOutcome};

/// Above this many outcomes, only problems and a summary are printed.
const LIST_LIMIT: usize = 50;

#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// Addresses (IPv4 or IPv6) or networks (CIDR, e.g. 2001:db8:1:2::/64)
    /// to ban.
    #[arg(value_name = "ADDR")]
    pub addrs: Vec<String>,
    /// Also ban the addresses in FILE, one per line ('#' comments and
    /// blank lines allowed); '-' reads standard input.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Ban length (e.g. 10m, 1h, 2d, or "permanent"). Default: the
    /// configured bantime, escalated for repeat offenders.
    #[arg(long = "for", value_name = "DURATION")]
    pub length: Option<String>,
    /// Why, recorded with each ban.
    #[arg(long, default_value = "manual ban")]
    pub reason: String,
    /// The incident these bans belong to.
    #[arg(long, value_name = "ID")]
    pub incident: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub struct UnbanArgs {
    /// Addresses or networks whose bans are lifted.
    #[arg(value_name = "ADDR", required = true)]
    pub addrs: Vec<String>,
    /// Why, recorded with each unban.
    #[arg(long, default_value = "manual unban")]
    pub reason: String,
}

/// The current time in whole seconds, the store's resolution.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The allowlist as configured plus this host's own addresses.
pub fn allowlist(ctx: &Context) -> Result<Allowlist> {
    let host = crate::host::own_addresses().context("cannot read this host's addresses")?;
    Ok(Allowlist::new(contain::allowlist_networks(&ctx.config), host))
}

/// Opens the store and the configured backend, and runs `f` with them.
pub fn with_containment<T>(
    ctx: &Context,
    f: impl FnOnce(&mut Containment<'_>) -> Result<T>,
) -> Result<T> {
    let config = &ctx.config.contain;
    let policy = config.policy().map_err(anyhow::Error::msg)?;
    let firewall = contain::backend(config)?;
    let allowlist = allowlist(ctx)?;
    let mut store = crate::store::Store::open_for(ctx)?;
    let conn = store.conn_mut();
    let conntrack = config.kill_connections.then(|| config.conntrack.clone());
    let mut containment = Containment::new(firewall, allowlist, policy, conn, conntrack);
    f(&mut containment)
}

/// Parses one address or network given on the command line or in a file.
/// The text is shown (truncated, escaped) in the error, never used further.
pub fn parse_addr(text: &str) -> Result<BanTarget, String> {
    text.trim().parse::<BanTarget>().map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        format!(
            "invalid address {shown:?} (expected one IPv4 or IPv6 address, or a network in \
             CIDR notation such as 2001:db8:1:2::/64)"
        )
    })
}

/// Reads a file of addresses; every bad line is an error naming the file
/// and line, and then nothing is banned.
pub fn read_addr_file(path: &Path) -> Result<Vec<BanTarget>> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .context("cannot read addresses from standard input")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    parse_addr_list(&bytes, &path.display().to_string())
}

/// Parses address-list text (see [`read_addr_file`]); `origin` names it.
pub fn parse_addr_list(bytes: &[u8], origin: &str) -> Result<Vec<BanTarget>> {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            errors.push(format!("{origin}:{number}: not UTF-8"));
            continue;
        };
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_addr(line) {
            Ok(addr) => addrs.push(addr),
            Err(e) => errors.push(format!("{origin}:{number}: {e}")),
        }
    }
    if !errors.is_empty() {
        let more = errors.len().saturating_sub(10);
        let mut text = errors.into_iter().take(10).collect::<Vec<_>>().join("\n");
        if more > 0 {
            text.push_str(&format!("\n... and {more} more bad lines"));
        }
        bail!("{text}\nnothing was banned");
    }
    Ok(addrs)
}

fn parse_length(text: &str) -> Result<BanLength> {
    if text.trim() == "permanent" {
        return Ok(BanLength::Permanent);
    }
    let d = parse_duration(text).context("--for")?;
    if d.as_secs() == 0 {
        bail!("--for: a ban must last at least one second");
    }
    Ok(BanLength::For(d))
}

pub fn run_ban(ctx: &Context, args: BanArgs) -> Result<ExitCode> {
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for text in &args.addrs {
        match parse_addr(text) {
            Ok(a) => addrs.push(a),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        bail!("{}\nnothing was banned", errors.join("\n"));
    }
    if let Some(file) = &args.file {
        addrs.extend(read_addr_file(file)?);
    }
    if addrs.is_empty() {
        bail!("no address to ban (give ADDR... or --file FILE)");
    }
    let length = args.length.as_deref().map(parse_length).transpose()?;
    let requests: Vec<BanRequest> = addrs
        .into_iter()
        .map(|addr| BanRequest {
            addr,
            length,
            reason: args.reason.clone(),
            incident_id: args.incident,
        })
        .collect();
    let outcomes = with_containment(ctx, |c| Ok(c.ban(&requests, now())))?;
    Ok(report(&outcomes))
}

pub fn run_unban(ctx: &Context, args: UnbanArgs) -> Result<ExitCode> {
    let addrs = args.addrs.iter().map(|t| parse_addr(t)).collect::<Result<Vec<_>, _>>();
    let addrs = addrs.map_err(|e| anyhow::anyhow!("{e}\nnothing was unbanned"))?;
    let outcomes = with_containment(ctx, |c| Ok(c.unban(&addrs, &args.reason, now())))?;
    Ok(report(&outcomes))
}

/// Prints outcomes (problems on stderr) and picks the exit code.
pub fn report(outcomes: &[ContainmentOutcome]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let (mut banned, mut refused, mut failed, mut unbanned) = (0usize, 0usize, 0usize, 0usize);
    for outcome in outcomes {
        match outcome {
            ContainmentOutcome::Banned { .. } => banned += 1,
            ContainmentOutcome::Refused { .. } => refused += 1,
            ContainmentOutcome::Failed { .. } => failed += 1,
            ContainmentOutcome::Unbanned { .. } => unbanned += 1,
            ContainmentOutcome::NotBanned { .. } => {}
        }
        if outcome.is_problem() {
            let _ = writeln!(stderr, "hikeshi: {outcome}");
        } else if outcomes.len() <= LIST_LIMIT {
            let _ = writeln!(stdout, "{outcome}");
        }
    }
    if outcomes.len() > LIST_LIMIT {
        let _ = writeln!(
            stdout,
            "{banned} banned, {unbanned} unbanned, {refused} refused (allowlisted), {failed} failed"
        );
    }
    if failed > 0 {
        ExitCode::from(EXIT_ERROR)
    } else if refused > 0 {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_files_name_every_bad_line_and_ban_nothing() {
        let text =
            b"# attackers\n192.0.2.7\n\n2001:db8::5  # v6\n192.0.2.0/33\nnot-an-ip\n\xff\xfe\n";
        let err = parse_addr_list(text, "list.txt").unwrap_err().to_string();
        assert!(err.contains("list.txt:5: invalid address \"192.0.2.0/33\""), "{err}");
        assert!(err.contains("list.txt:6: invalid address \"not-an-ip\""), "{err}");
        assert!(err.contains("list.txt:7: not UTF-8"), "{err}");
        assert!(err.contains("nothing was banned"), "{err}");
        let ok = parse_addr_list(b"192.0.2.7\r\n2001:db8::5 # v6\n2001:db8:1:2::9/64\n", "x");
        let ok: Vec<String> = ok.unwrap().iter().map(BanTarget::to_string).collect();
        assert_eq!(ok, ["192.0.2.7", "2001:db8::5", "2001:db8:1:2::/64"]);
    }

    #[test]
    fn hostile_text_is_truncated_and_escaped_in_errors() {
        let hostile = format!("1.2.3.4; rm -rf /\u{1b}[31m{}", "x".repeat(10_000));
        let err = parse_addr(&hostile).unwrap_err();
        assert!(err.len() < 200, "{err}");
        assert!(err.contains("\\u{1b}"), "{err}");
        let many: String = (0..100).map(|i| format!("bad{i}\n")).collect();
        let err = parse_addr_list(many.as_bytes(), "f").unwrap_err().to_string();
        assert!(err.contains("... and 90 more bad lines"), "{err}");
    }

    #[test]
    fn ban_lengths() {
        assert_eq!(parse_length("permanent").unwrap(), BanLength::Permanent);
        assert_eq!(
            parse_length("90s").unwrap(),
            BanLength::For(std::time::Duration::from_secs(90))
        );
        assert!(parse_length("0s").is_err());
        assert!(parse_length("soon").is_err());
    }
}
