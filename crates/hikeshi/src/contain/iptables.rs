//! The iptables backends: the runbook's `iptables -A INPUT -s ADDR -j
//! DROP`, done safely and fast.
//!
//! hikeshi owns one chain (default `HIKESHI`) in the filter table of
//! iptables and ip6tables, jumped to from the top of `INPUT`.
//! - per-rule mode (`backend = "iptables"`): one `-s ADDR/LEN -j DROP`
//!   rule per ban (an address or a network), added and removed in one
//!   `iptables-restore --noflush` batch per family rather than one
//!   process per rule. iptables rules have no timeout: hikeshi's
//!   reconcile removes ended bans.
//! - ipset mode (`backend = "ipset"`): the chain holds one rule per set
//!   matching it: `<prefix>4` and `<prefix>6` (`hash:ip`) for addresses,
//!   `<prefix>n4` and `<prefix>n6` (`hash:net`) for networks, all with
//!   timeouts; bans are set entries with a kernel timeout, loaded with
//!   one `ipset restore`. Re-adding an entry (`-exist`) refreshes it.
//!
//! Nothing outside the chain and the sets is changed, except the one jump
//! rule in `INPUT`, which uninstall removes.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use hikeshi_core::contain::BanTarget;

use super::config::IptablesConfig;
use super::{check_name, BackendKind, BanEntry, Firewall, FirewallError};
use crate::exec::{self, ExecError};

/// ipset's largest timeout (seconds). A longer ban is loaded with this
/// and re-applied by reconcile when the kernel drops it early.
pub const IPSET_MAX_TIMEOUT: u64 = 2_147_483;

/// The iptables (per-rule) or ipset backend.
#[derive(Debug, Clone)]
pub struct Iptables {
    config: IptablesConfig,
    use_ipset: bool,
}

/// One address family's programs and names.
struct Family<'a> {
    v4: bool,
    iptables: &'a str,
    restore: &'a str,
    /// The ipset of single addresses (`hash:ip`).
    set: String,
    /// The ipset of networks (`hash:net`).
    net_set: String,
}

impl Family<'_> {
    /// The ipset that holds `target`.
    fn set_of(&self, target: BanTarget) -> &str {
        if target.single().is_some() {
            &self.set
        } else {
            &self.net_set
        }
    }
}

impl Iptables {
    pub fn new(config: &IptablesConfig, use_ipset: bool) -> Result<Self, FirewallError> {
        check_name("iptables.chain", &config.chain, 28)?;
        // ipset names have at most 31 bytes, and the longest suffix is "n4".
        check_name("iptables.set_prefix", &config.set_prefix, 29)?;
        Ok(Iptables { config: config.clone(), use_ipset })
    }

    fn families(&self) -> [Family<'_>; 2] {
        let c = &self.config;
        [
            Family {
                v4: true,
                iptables: &c.iptables,
                restore: &c.iptables_restore,
                set: format!("{}4", c.set_prefix),
                net_set: format!("{}n4", c.set_prefix),
            },
            Family {
                v4: false,
                iptables: &c.ip6tables,
                restore: &c.ip6tables_restore,
                set: format!("{}6", c.set_prefix),
                net_set: format!("{}n6", c.set_prefix),
            },
        ]
    }

    /// Runs an iptables check (`-C`, `-S`): `Ok(false)` when the program
    /// ran and said no, an error when it could not run at all.
    fn holds(&self, program: &str, args: &[&str]) -> Result<bool, FirewallError> {
        match exec::run(program, args) {
            Ok(_) => Ok(true),
            Err(ExecError::Failed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The rule in hikeshi's chain that drops members of `set`.
    fn set_rule(set: &str) -> [&str; 7] {
        ["-m", "set", "--match-set", set, "src", "-j", "DROP"]
    }

    fn rules(&self, family: &Family<'_>) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let out = exec::run(family.iptables, ["-w", "-S", &self.config.chain])?;
        Ok(chain_bans(&String::from_utf8_lossy(&out.stdout), &self.config.chain))
    }

    fn restore(
        &self,
        family: &Family<'_>,
        verb: &str,
        targets: &[BanTarget],
    ) -> Result<(), FirewallError> {
        if targets.is_empty() {
            return Ok(());
        }
        let mut batch = String::with_capacity(32 + targets.len() * 48);
        batch.push_str("*filter\n");
        for target in targets {
            // Always ADDR/LEN, as `iptables -S` prints it back.
            let net = target.network();
            let _ = writeln!(batch, "{verb} {} -s {net} -j DROP", self.config.chain);
        }
        batch.push_str("COMMIT\n");
        exec::run_with_stdin(family.restore, ["-w", "--noflush"], batch.as_bytes())?;
        Ok(())
    }

    fn ipset_restore(&self, batch: &str) -> Result<(), FirewallError> {
        if batch.is_empty() {
            return Ok(());
        }
        exec::run_with_stdin(&self.config.ipset, ["restore", "-exist"], batch.as_bytes())?;
        Ok(())
    }

    fn ipset_members(&self, set: &str) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let out = exec::run(&self.config.ipset, ["save", set])?;
        Ok(ipset_members(&String::from_utf8_lossy(&out.stdout), set))
    }

    fn ipset_exists(&self, set: &str) -> Result<bool, FirewallError> {
        let out = exec::run(&self.config.ipset, ["list", "-n"])?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == set))
    }
}

/// The banned addresses and networks in `iptables -S CHAIN` output:
/// rules of exactly the form `-A CHAIN -s ADDR/LEN -j DROP`.
pub fn chain_bans(listing: &str, chain: &str) -> BTreeSet<BanTarget> {
    listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["-A", c, "-s", source, "-j", "DROP"] if *c == chain && source.contains('/') => {
                    source.parse().ok()
                }
                _ => None,
            }
        })
        .collect()
}

/// The members in `ipset save SET` output (`add SET ADDR [timeout N]`).
pub fn ipset_members(listing: &str, set: &str) -> BTreeSet<BanTarget> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "add" || words.next()? != set {
                return None;
            }
            words.next()?.parse().ok()
        })
        .collect()
}

impl Firewall for Iptables {
    fn kind(&self) -> BackendKind {
        if self.use_ipset {
            BackendKind::Ipset
        } else {
            BackendKind::Iptables
        }
    }

    fn setup(&mut self) -> Result<(), FirewallError> {
        let chain = self.config.chain.as_str();
        for family in self.families() {
            let ipt = family.iptables;
            if !self.holds(ipt, &["-w", "-S", chain])? {
                exec::run(ipt, ["-w", "-N", chain])?;
            }
            if self.use_ipset {
                let inet = if family.v4 { "inet" } else { "inet6" };
                for (set, kind) in [(&family.set, "hash:ip"), (&family.net_set, "hash:net")] {
                    exec::run(
                        &self.config.ipset,
                        [
                            "create", set, kind, "family", inet, "timeout", "0", "maxelem",
                            "1048576", "-exist",
                        ],
                    )?;
                    let rule = Self::set_rule(set);
                    let check: Vec<&str> =
                        ["-w", "-C", chain].iter().chain(&rule).copied().collect();
                    if !self.holds(ipt, &check)? {
                        let add: Vec<&str> =
                            ["-w", "-A", chain].iter().chain(&rule).copied().collect();
                        exec::run(ipt, add)?;
                    }
                }
            }
            if !self.holds(ipt, &["-w", "-C", "INPUT", "-j", chain])? {
                exec::run(ipt, ["-w", "-I", "INPUT", "1", "-j", chain])?;
            }
        }
        Ok(())
    }

    fn ban(&mut self, bans: &[BanEntry]) -> Result<(), FirewallError> {
        if bans.is_empty() {
            return Ok(());
        }
        if self.use_ipset {
            let mut batch = String::with_capacity(bans.len() * 40);
            let families = self.families();
            for ban in bans {
                let target = ban.target.target();
                let set = families[usize::from(!target.is_ipv4())].set_of(target);
                let timeout = match ban.timeout {
                    None => 0,
                    Some(t) if t.as_secs() == 0 => continue,
                    Some(t) => t.as_secs().min(IPSET_MAX_TIMEOUT),
                };
                let _ = writeln!(batch, "add {set} {target} timeout {timeout}");
            }
            return self.ipset_restore(&batch);
        }
        for family in self.families() {
            let present = self.rules(&family)?;
            let missing: Vec<BanTarget> = bans
                .iter()
                .map(|b| b.target.target())
                .filter(|t| t.is_ipv4() == family.v4 && !present.contains(t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.restore(&family, "-A", &missing)?;
        }
        Ok(())
    }

    fn unban(&mut self, targets: &[BanTarget]) -> Result<(), FirewallError> {
        if targets.is_empty() {
            return Ok(());
        }
        if self.use_ipset {
            let mut batch = String::new();
            for family in self.families() {
                for target in targets.iter().filter(|t| t.is_ipv4() == family.v4) {
                    let _ = writeln!(batch, "del {} {target}", family.set_of(*target));
                }
            }
            return self.ipset_restore(&batch);
        }
        for family in self.families() {
            let present = self.rules(&family)?;
            let remove: Vec<BanTarget> = targets
                .iter()
                .copied()
                .filter(|a| present.contains(a))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.restore(&family, "-D", &remove)?;
        }
        Ok(())
    }

    fn list(&mut self) -> Result<BTreeSet<BanTarget>, FirewallError> {
        let mut all = BTreeSet::new();
        for family in self.families() {
            if self.use_ipset {
                all.extend(self.ipset_members(&family.set)?);
                all.extend(self.ipset_members(&family.net_set)?);
            } else {
                all.extend(self.rules(&family)?);
            }
        }
        Ok(all)
    }

    fn expires_on_its_own(&self) -> bool {
        self.use_ipset
    }

    fn flush(&mut self) -> Result<(), FirewallError> {
        for family in self.families() {
            if self.use_ipset {
                exec::run(&self.config.ipset, ["flush", &family.set])?;
                exec::run(&self.config.ipset, ["flush", &family.net_set])?;
            } else {
                exec::run(family.iptables, ["-w", "-F", &self.config.chain])?;
            }
        }
        Ok(())
    }

    fn uninstall(&mut self) -> Result<(), FirewallError> {
        let chain = self.config.chain.as_str();
        for family in self.families() {
            let ipt = family.iptables;
            // Someone may have added the jump twice; remove every copy.
            for _ in 0..64 {
                if !self.holds(ipt, &["-w", "-C", "INPUT", "-j", chain])? {
                    break;
                }
                exec::run(ipt, ["-w", "-D", "INPUT", "-j", chain])?;
            }
            if self.holds(ipt, &["-w", "-S", chain])? {
                exec::run(ipt, ["-w", "-F", chain])?;
                exec::run(ipt, ["-w", "-X", chain])?;
            }
            for set in [&family.set, &family.net_set] {
                if self.use_ipset && self.ipset_exists(set)? {
                    exec::run(&self.config.ipset, ["destroy", set])?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drop_rules_of_a_source_in_the_chain_are_bans() {
        let listing = "-N HIKESHI\n\
                       -A HIKESHI -s 192.0.2.7/32 -j DROP\n\
                       -A HIKESHI -s 198.51.100.0/24 -j DROP\n\
                       -A HIKESHI -s 192.0.2.8/32 -j ACCEPT\n\
                       -A OTHER -s 192.0.2.9/32 -j DROP\n\
                       -A HIKESHI -s 2001:db8::5/128 -j DROP\n\
                       -A HIKESHI -s 2001:db8:1:2::/64 -j DROP\n\
                       -A HIKESHI -s 2001:db8::9 -j DROP\n\
                       -A HIKESHI -s not-an-address/8 -j DROP\n\
                       -A HIKESHI -m set --match-set hikeshi4 src -j DROP\n";
        let got: Vec<String> =
            chain_bans(listing, "HIKESHI").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.0.2.7", "198.51.100.0/24", "2001:db8::5", "2001:db8:1:2::/64"]);
    }

    #[test]
    fn ipset_save_members() {
        let listing = "create hikeshi4 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
                       add hikeshi4 192.0.2.7 timeout 590\n\
                       add hikeshi4 192.0.2.8 timeout 0\n\
                       add other 192.0.2.9\n\
                       create hikeshin6 hash:net family inet6 hashsize 1024 maxelem 65536 timeout 0\n\
                       add hikeshin6 2001:db8:1:2::/64 timeout 50\n";
        let got: Vec<String> =
            ipset_members(listing, "hikeshi4").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.0.2.7", "192.0.2.8"]);
        let got: Vec<String> =
            ipset_members(listing, "hikeshin6").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["2001:db8:1:2::/64"]);
    }
}
