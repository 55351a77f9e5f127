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
    let lengths = network_lengths(banned);
    for (family, wanted) in [("ipv4", v4), ("ipv6", v6)] {
        if wanted.is_empty() {
            continue;
        }
        let listing = exec::run(program, ["-L", "-f", family])?;
        for addr in sources(&String::from_utf8_lossy(&listing.stdout)) {
            if let Some(covering) = covering(addr, banned, &lengths) {
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

/// The prefix lengths of the networks in `banned` (one or two in
/// practice: the detector's).
fn network_lengths(banned: &BTreeSet<BanTarget>) -> BTreeSet<u8> {
    banned.iter().filter(|t| t.single().is_none()).map(|t| t.network().prefix_len()).collect()
}

/// The target of `banned` that `addr` is inside: the address itself, or
/// the network of one of `lengths` around it. A lookup per length, so a
/// long conntrack table against many banned networks stays cheap.
fn covering(
    addr: IpAddr,
    banned: &BTreeSet<BanTarget>,
    lengths: &BTreeSet<u8>,
) -> Option<BanTarget> {
    std::iter::once(BanTarget::addr(addr))
        .chain(lengths.iter().map(|&len| BanTarget::covering(addr, len)))
        .find(|target| banned.contains(target))
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

    #[test]
    fn a_source_is_covered_by_its_address_or_a_banned_network_around_it() {
        let banned: BTreeSet<BanTarget> =
            ["192.0.2.7", "198.51.100.0/24", "2001:db8:1:2::/64", "2001:db8:9::/48"]
                .iter()
                .map(|t| t.parse().unwrap())
                .collect();
        let lengths = network_lengths(&banned);
        assert_eq!(lengths, [24, 48, 64].into());
        let cover =
            |a: &str| covering(a.parse().unwrap(), &banned, &lengths).map(|t| t.to_string());
        assert_eq!(cover("192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(cover("::ffff:198.51.100.99").as_deref(), Some("198.51.100.0/24"));
        assert_eq!(cover("2001:db8:1:2:abcd::1").as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(cover("2001:db8:9:ffff::1").as_deref(), Some("2001:db8:9::/48"));
        assert_eq!(cover("192.0.2.8"), None);
        assert_eq!(cover("2001:db8:1:3::1"), None);
    }
}
