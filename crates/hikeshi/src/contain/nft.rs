//! The nftables backend (the default).
//!
//! hikeshi owns one table, `inet <table>` (default `inet hikeshi`), with
//! two sets per address family, one of single addresses (`ban4`, `ban6`,
//! `flags timeout`, hashed) and one of networks (`net4`, `net6`, `flags
//! interval, timeout`: an IPv6 attacker's /64), and one input chain that
//! drops their members. A ban is a set element with a kernel timeout, so
//! it ends even if hikeshi is not running. Each call is one `nft -f -`
//! transaction on standard input: many bans are one atomic batch, and a
//! failure applies nothing. Targets enter the batch only as parsed
//! [`BanTarget`]s printed canonically. An interval set refuses a network
//! that overlaps one it holds (the pipeline bans prefixes of one length,
//! which never overlap; a wider network given to `hikeshi ban` fails with
//! nftables' reason, and nothing of its batch is applied).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use hikeshi_core::contain::BanTarget;
use ipnet::IpNet;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::config::NftablesConfig;
use super::libnftables::LibNftables;
use super::{check_name, BackendKind, BanEntry, Firewall, FirewallError};
use crate::exec;

/// Set names inside hikeshi's table: single addresses, then networks.
pub const SET_V4: &str = "ban4";
pub const SET_V6: &str = "ban6";
pub const SET_NET_V4: &str = "net4";
pub const SET_NET_V6: &str = "net6";
/// Every set, with whether it holds IPv4 and whether it holds networks.
const SETS: [(&str, bool, bool); 4] = [
    (SET_V4, true, false),
    (SET_V6, false, false),
    (SET_NET_V4, true, true),
    (SET_NET_V6, false, true),
];
/// The input chain inside hikeshi's table.
pub const CHAIN: &str = "input";

/// hikeshi's nftables table.
#[derive(Debug)]
pub struct Nftables {
    nft: String,
    table: String,
    /// In-process libnftables, when configured and loadable; else `nft`.
    library: Option<LibNftables>,
}

impl Nftables {
    pub fn new(config: &NftablesConfig) -> Result<Self, FirewallError> {
        check_name("nftables.table", &config.table, 32)?;
        let library = if config.library {
            LibNftables::load()
                .map_err(|why| tracing::debug!("running `{}` for each change: {why}", config.nft))
                .ok()
        } else {
            None
        };
        Ok(Nftables { nft: config.nft.clone(), table: config.table.clone(), library })
    }

    /// Whether changes go through libnftables (else the `nft` program).
    pub fn in_process(&self) -> bool {
        self.library.is_some()
    }

    /// Runs `batch` as one transaction (`nft -f -`, or the same text
    /// through libnftables).
    fn apply(&mut self, batch: &str) -> Result<(), FirewallError> {
        match &mut self.library {
            Some(library) => library.run(batch).map_err(FirewallError::Library),
            None => {
                exec::run_with_stdin(&self.nft, ["-f", "-"], batch.as_bytes())?;
                Ok(())
            }
        }
    }

    fn table_exists(&self) -> Result<bool, FirewallError> {
        let out = exec::run(&self.nft, ["-j", "list", "tables", "inet"])?;
        let json = self.json(&out.stdout)?;
        let exists = items(&json, "table").any(|t| t["name"].as_str() == Some(self.table.as_str()));
        Ok(exists)
    }

    fn json(&self, stdout: &[u8]) -> Result<Value, FirewallError> {
        serde_json::from_slice(stdout).map_err(|e| FirewallError::Output {
            program: self.nft.clone(),
            detail: format!("invalid JSON: {e}"),
        })
    }

    fn list_set(&self, set: &str) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let out = exec::run(&self.nft, ["-j", "list", "set", "inet", &self.table, set])?;
        set_elements(&out.stdout).map_err(|e| FirewallError::Output {
            program: self.nft.clone(),
            detail: format!("invalid JSON: {e}"),
        })
    }

    /// The batch that adds (or refreshes, when in `present`) `bans`.
    fn ban_batch(&self, bans: &[BanEntry], present: &BTreeSet<BanTarget>) -> String {
        let mut batch = String::with_capacity(64 + bans.len() * 32);
        for (set, v4, networks) in SETS {
            let family: Vec<&BanEntry> = bans
                .iter()
                .filter(|b| set_of(b.target.target()) == (v4, networks))
                // An entry with no time left is already over.
                .filter(|b| b.timeout.map_or(true, |t| t.as_secs() > 0))
                .collect();
            if family.is_empty() {
                continue;
            }
            // Re-adding an element does not change its timeout: refreshing
            // a ban is delete + add in the same transaction.
            let refresh: Vec<BanTarget> =
                family.iter().map(|b| b.target.target()).filter(|t| present.contains(t)).collect();
            if !refresh.is_empty() {
                element_command(
                    &mut batch,
                    "delete",
                    &self.table,
                    set,
                    refresh.iter().map(|a| (*a, None)),
                );
            }
            element_command(
                &mut batch,
                "add",
                &self.table,
                set,
                family.iter().map(|b| (b.target.target(), b.timeout.map(|t| t.as_secs()))),
            );
        }
        batch
    }
}

/// Which set holds `target`: (IPv4, network).
fn set_of(target: BanTarget) -> (bool, bool) {
    (target.is_ipv4(), target.single().is_none())
}

fn element_command(
    batch: &mut String,
    verb: &str,
    table: &str,
    set: &str,
    elements: impl Iterator<Item = (BanTarget, Option<u64>)>,
) {
    let _ = write!(batch, "{verb} element inet {table} {set} {{ ");
    for (i, (addr, timeout)) in elements.enumerate() {
        if i > 0 {
            batch.push_str(", ");
        }
        let _ = write!(batch, "{addr}");
        if let Some(secs) = timeout {
            let _ = write!(batch, " timeout {secs}s");
        }
    }
    batch.push_str(" }\n");
}

/// The `"type"` objects in an `nft -j` listing.
fn items<'a>(json: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    json["nftables"].as_array().into_iter().flatten().filter_map(move |item| item.get(kind))
}

/// The addresses and networks in the sets of an `nft -j list set`
/// listing. An element is a plain string or `{"prefix": {"addr": ..,
/// "len": ..}}`, wrapped in `{"elem": {"val": ..., "timeout": ..}}` when
/// it carries a timeout; ranges are not hikeshi's. Read into types that
/// keep only the elements (not a `serde_json::Value` tree, which for a set
/// of 100,000 bans would cost tens of MiB every reconcile).
pub fn set_elements(listing: &[u8]) -> Result<BTreeSet<BanTarget>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Listing {
        #[serde(default)]
        nftables: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        set: Option<Set>,
    }
    #[derive(Deserialize)]
    struct Set {
        #[serde(default)]
        elem: Vec<Element>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Element {
        Plain(String),
        Timed { elem: Box<Timed> },
        Prefix { prefix: Prefix },
        Other(IgnoredAny),
    }
    #[derive(Deserialize)]
    struct Timed {
        val: Element,
    }
    #[derive(Deserialize)]
    struct Prefix {
        addr: String,
        len: u8,
    }
    fn target(element: Element) -> Option<BanTarget> {
        match element {
            Element::Plain(text) => text.parse().ok(),
            Element::Timed { elem } => target(elem.val),
            Element::Prefix { prefix } => {
                let addr = prefix.addr.parse().ok()?;
                IpNet::new(addr, prefix.len).ok().map(BanTarget::net)
            }
            Element::Other(_) => None,
        }
    }
    let listing: Listing = serde_json::from_slice(listing)?;
    Ok(listing
        .nftables
        .into_iter()
        .filter_map(|item| item.set)
        .flat_map(|set| set.elem)
        .filter_map(target)
        .collect())
}

impl Firewall for Nftables {
    fn kind(&self) -> BackendKind {
        BackendKind::Nftables
    }

    fn setup(&mut self) -> Result<(), FirewallError> {
        let t = &self.table;
        // `add` of an existing table/set/chain is a no-op; the chain's rules
        // are replaced in the same transaction, so this is idempotent and
        // never touches the sets' elements.
        let batch = format!(
            "add table inet {t}\n\
             add set inet {t} {SET_V4} {{ type ipv4_addr; flags timeout; }}\n\
             add set inet {t} {SET_V6} {{ type ipv6_addr; flags timeout; }}\n\
             add set inet {t} {SET_NET_V4} {{ type ipv4_addr; flags interval, timeout; }}\n\
             add set inet {t} {SET_NET_V6} {{ type ipv6_addr; flags interval, timeout; }}\n\
             add chain inet {t} {CHAIN} {{ type filter hook input priority -10; policy accept; }}\n\
             flush chain inet {t} {CHAIN}\n\
             add rule inet {t} {CHAIN} ip saddr @{SET_V4} drop\n\
             add rule inet {t} {CHAIN} ip6 saddr @{SET_V6} drop\n\
             add rule inet {t} {CHAIN} ip saddr @{SET_NET_V4} drop\n\
             add rule inet {t} {CHAIN} ip6 saddr @{SET_NET_V6} drop\n"
        );
        self.apply(&batch)
    }

    fn ban(&mut self, bans: &[BanEntry]) -> Result<(), FirewallError> {
        if bans.is_empty() {
            return Ok(());
        }
        // Trust the caller about which bans are already in the set (no
        // listing of a possibly huge set for every ban). If one has timed
        // out or was removed meanwhile, its delete fails the whole
        // (unapplied) batch: then list the set and retry once.
        let believed: BTreeSet<BanTarget> =
            bans.iter().filter(|b| b.refresh).map(|b| b.target.target()).collect();
        match self.apply(&self.ban_batch(bans, &believed)) {
            Ok(()) => Ok(()),
            Err(_) if !believed.is_empty() => {
                let present = self.list()?;
                self.apply(&self.ban_batch(bans, &present))
            }
            Err(e) => Err(e),
        }
    }

    fn unban(&mut self, targets: &[BanTarget]) -> Result<(), FirewallError> {
        if targets.is_empty() {
            return Ok(());
        }
        let present = self.list()?;
        let mut batch = String::new();
        for (set, v4, networks) in SETS {
            let members: Vec<BanTarget> = targets
                .iter()
                .filter(|t| present.contains(t) && set_of(**t) == (v4, networks))
                .copied()
                .collect();
            if !members.is_empty() {
                element_command(
                    &mut batch,
                    "delete",
                    &self.table,
                    set,
                    members.into_iter().map(|t| (t, None)),
                );
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.apply(&batch)
    }

    fn list(&mut self) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let mut all = BTreeSet::new();
        for (set, _, _) in SETS {
            all.extend(self.list_set(set)?);
        }
        Ok(all)
    }

    fn expires_on_its_own(&self) -> bool {
        true
    }

    fn flush(&mut self) -> Result<(), FirewallError> {
        let t = &self.table;
        let batch: String =
            SETS.iter().map(|(set, _, _)| format!("flush set inet {t} {set}\n")).collect();
        self.apply(&batch)
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        if self.table_exists()? {
            self.apply(&format!("delete table inet {}\n", self.table))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contain::Permitted;
    use hikeshi_core::allowlist::Allowlist;
    use std::time::Duration;

    #[test]
    fn ban_batch_refreshes_present_elements_and_prints_addresses_canonically() {
        let nft = Nftables::new(&NftablesConfig::default()).unwrap();
        let entry = |a: &str, t: Option<u64>| BanEntry {
            target: Permitted::check(a.parse::<BanTarget>().unwrap(), &Allowlist::default())
                .unwrap(),
            timeout: t.map(Duration::from_secs),
            refresh: false,
        };
        let bans = [
            entry("::ffff:192.0.2.7", Some(60)),
            entry("2001:0db8:0000::0005", None),
            entry("192.0.2.8", Some(0)),
            entry("192.0.2.9", Some(30)),
            entry("2001:db8:1:2::7/64", Some(90)),
            entry("::ffff:198.51.100.9/120", None),
        ];
        let present: BTreeSet<BanTarget> =
            ["192.0.2.9".parse().unwrap(), "2001:db8:1:2::/64".parse().unwrap()].into();
        assert_eq!(
            nft.ban_batch(&bans, &present),
            "delete element inet hikeshi ban4 { 192.0.2.9 }\n\
             add element inet hikeshi ban4 { 192.0.2.7 timeout 60s, 192.0.2.9 timeout 30s }\n\
             add element inet hikeshi ban6 { 2001:db8::5 }\n\
             add element inet hikeshi net4 { 198.51.100.0/24 }\n\
             delete element inet hikeshi net6 { 2001:db8:1:2::/64 }\n\
             add element inet hikeshi net6 { 2001:db8:1:2::/64 timeout 90s }\n"
        );
    }

    #[test]
    fn elements_with_and_without_timeouts_are_read() {
        let json = br#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
              {"set": {"family": "inet", "name": "ban4", "table": "hikeshi", "type": "ipv4_addr",
                "flags": ["timeout"], "elem": [
                  {"elem": {"val": "192.0.2.7", "timeout": 3600, "expires": 3599}},
                  "192.0.2.8",
                  {"prefix": {"addr": "198.51.100.0", "len": 24}},
                  {"range": ["198.51.101.0", "198.51.101.9"]},
                  "2001:db8::1",
                  {"elem": {"val": {"prefix": {"addr": "2001:db8:1:2::", "len": 64}},
                    "timeout": 60, "expires": 59}},
                  {"prefix": {"addr": "2001:db8:1:2::", "len": 999}},
                  "not-an-address"]}}]}"#;
        let got: Vec<String> = set_elements(json).unwrap().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            got,
            ["192.0.2.7", "192.0.2.8", "198.51.100.0/24", "2001:db8::1", "2001:db8:1:2::/64"]
        );
        assert!(set_elements(br#"{"nftables": []}"#).unwrap().is_empty());
        assert!(set_elements(b"{}").unwrap().is_empty());
        assert!(set_elements(b"{\"nftables\": [").is_err());
        assert!(set_elements(b"\xff").is_err());
    }
}
