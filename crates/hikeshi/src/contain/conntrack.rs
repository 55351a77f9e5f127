//! Ending the established connections of banned sources with
//! `conntrack`: a DROP rule stops new packets, but a firewall that
//! accepts `ESTABLISHED` traffic earlier would keep an open SSH session
//! alive; deleting its connection-tracking entries ends that.
//!
//! The table is listed once and only the tracked sources inside a banned
//! address or network are deleted (one run per source address), so
//! banning 100,000 addresses costs two runs plus one per live source.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use hikeshi_core::contain::BanTarget;

use crate::exec;

use super::FirewallError;

/// Deletes the tracked connections whose original source is inside a
/// target of `banned`; returns how many were found per target.
pub fn kill(
    program: &str,
    banned: &BTreeSet<BanTarget>,
) -> Result<BTreeMap<BanTarget, usize>, FirewallError> {
    let mut found: BTreeMap<BanTarget, usize> = BTreeMap::new();
    let mut sources_found: BTreeSet<IpAddr> = BTreeSet::new();
    let (v4, v6) = super::by_family(banned);
    let networks: Vec<BanTarget> =
        banned.iter().filter(|t| t.single().is_none()).copied().collect();
    for (family, wanted) in [("ipv4", v4), ("ipv6", v6)] {
        if wanted.is_empty() {
            continue;
        }
        let listing = exec::run(program, ["-L", "-f", family])?;
        for addr in sources(&String::from_utf8_lossy(&listing.stdout)) {
            let target = BanTarget::addr(addr);
            let covering = if banned.contains(&target) {
                Some(target)
            } else {
                networks.iter().find(|n| n.contains(addr)).copied()
            };
            if let Some(covering) = covering {
                *found.entry(covering).or_default() += 1;
                sources_found.insert(addr);
            }
        }
    }
    for addr in &sources_found {
        let family = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
        // Exit status 1 means "0 flow entries deleted" (they went away
        // between listing and deleting): not an error.
        match exec::run(program, ["-D", "-f", family, "-s", &addr.to_string()]) {
            Ok(_) => {}
            Err(exec::ExecError::Failed { status, .. }) if status.code() == Some(1) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found)
}

/// The original source address of each line of `conntrack -L` output
/// (the first `src=` field).
fn sources(listing: &str) -> impl Iterator<Item = IpAddr> + '_ {
    listing.lines().filter_map(|line| {
        let rest = &line[line.find("src=")? + 4..];
        let end = rest.find(' ').unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_src_of_each_line_is_the_original_source() {
        let listing = "tcp      6 431999 ESTABLISHED src=192.0.2.7 dst=192.0.2.1 sport=40000 dport=22 src=192.0.2.1 dst=192.0.2.7 sport=22 dport=40000 [ASSURED] mark=0 use=1\n\
                       udp      17 29 src=2001:db8::9 dst=2001:db8::1 sport=5353 dport=53 [UNREPLIED] src=2001:db8::1 dst=2001:db8::9\n\
                       garbage src=not-an-address dst=x\n\
                       conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n";
        let got: Vec<String> = sources(listing).map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.0.2.7", "2001:db8::9"]);
    }
}
