//! The iptables backends: the runbook's `iptables -A INPUT -s ADDR -j
//! DROP`, done safely and fast.
//!
//! hikeshi owns one chain (default `HIKESHI`) in the filter table of
//! iptables and ip6tables, jumped to from the top of `INPUT`.
//! - per-rule mode (`backend = "iptables"`): one `-s ADDR -j DROP` rule per
//!   ban, added and removed in one `iptables-restore --noflush` batch per
//!   family rather than one process per rule. iptables rules have no
//!   timeout: hikeshi's reconcile removes ended bans.
//! - ipset mode (`backend = "ipset"`): the chain holds one rule per family
//!   matching an ipset (`<prefix>4`, `<prefix>6`, `hash:ip` with
//!   timeouts); bans are set entries with a kernel timeout, loaded with
//!   one `ipset restore`. Re-adding an entry (`-exist`) refreshes it.
//!
//! Nothing outside the chain and the sets is changed, except the one jump
//! rule in `INPUT`, which uninstall removes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

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
    set: String,
}

impl Iptables {
    pub fn new(config: &IptablesConfig, use_ipset: bool) -> Result<Self, FirewallError> {
        check_name("iptables.chain", &config.chain, 28)?;
        check_name("iptables.set_prefix", &config.set_prefix, 30)?;
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
            },
            Family {
                v4: false,
                iptables: &c.ip6tables,
                restore: &c.ip6tables_restore,
                set: format!("{}6", c.set_prefix),
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

    fn rules(&self, family: &Family<'_>) -> Result<BTreeSet<IpAddr>, FirewallError> {
        let out = exec::run(family.iptables, ["-w", "-S", &self.config.chain])?;
        Ok(chain_bans(&String::from_utf8_lossy(&out.stdout), &self.config.chain))
    }

    fn restore(
        &self,
        family: &Family<'_>,
        verb: &str,
        addrs: &[IpAddr],
    ) -> Result<(), FirewallError> {
        if addrs.is_empty() {
            return Ok(());
        }
        let prefix = if family.v4 { 32 } else { 128 };
        let mut batch = String::with_capacity(32 + addrs.len() * 48);
        batch.push_str("*filter\n");
        for addr in addrs {
            let _ = writeln!(batch, "{verb} {} -s {addr}/{prefix} -j DROP", self.config.chain);
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

    fn ipset_members(&self, set: &str) -> Result<BTreeSet<IpAddr>, FirewallError> {
        let out = exec::run(&self.config.ipset, ["save", set])?;
        Ok(ipset_members(&String::from_utf8_lossy(&out.stdout), set))
    }

    fn ipset_exists(&self, set: &str) -> Result<bool, FirewallError> {
        let out = exec::run(&self.config.ipset, ["list", "-n"])?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == set))
    }
}

/// The banned addresses in `iptables -S CHAIN` output: rules of exactly
/// the form `-A CHAIN -s ADDR/32 -j DROP` (or /128).
pub fn chain_bans(listing: &str, chain: &str) -> BTreeSet<IpAddr> {
    listing
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["-A", c, "-s", source, "-j", "DROP"] if *c == chain => {
                    let (addr, len) = source.split_once('/')?;
                    let addr: IpAddr = addr.parse().ok()?;
                    let full = if addr.is_ipv4() { "32" } else { "128" };
                    (len == full).then_some(addr)
                }
                _ => None,
            }
        })
        .collect()
}

/// The members in `ipset save SET` output (`add SET ADDR [timeout N]`).
pub fn ipset_members(listing: &str, set: &str) -> BTreeSet<IpAddr> {
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
                exec::run(
                    &self.config.ipset,
                    [
                        "create",
                        &family.set,
                        "hash:ip",
                        "family",
                        inet,
                        "timeout",
                        "0",
                        "maxelem",
                        "1048576",
                        "-exist",
                    ],
                )?;
                let rule = Self::set_rule(&family.set);
                let check: Vec<&str> = ["-w", "-C", chain].iter().chain(&rule).copied().collect();
                if !self.holds(ipt, &check)? {
                    let add: Vec<&str> = ["-w", "-A", chain].iter().chain(&rule).copied().collect();
                    exec::run(ipt, add)?;
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
            for ban in bans {
                let addr = ban.addr.addr();
                let set =
                    if addr.is_ipv4() { &self.families()[0].set } else { &self.families()[1].set };
                let timeout = match ban.timeout {
                    None => 0,
                    Some(t) if t.as_secs() == 0 => continue,
                    Some(t) => t.as_secs().min(IPSET_MAX_TIMEOUT),
                };
                let _ = writeln!(batch, "add {set} {addr} timeout {timeout}");
            }
            return self.ipset_restore(&batch);
        }
        for family in self.families() {
            let present = self.rules(&family)?;
            let missing: Vec<IpAddr> = bans
                .iter()
                .map(|b| b.addr.addr())
                .filter(|a| a.is_ipv4() == family.v4 && !present.contains(a))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.restore(&family, "-A", &missing)?;
        }
        Ok(())
    }

    fn unban(&mut self, addrs: &[IpAddr]) -> Result<(), FirewallError> {
        if addrs.is_empty() {
            return Ok(());
        }
        if self.use_ipset {
            let mut batch = String::new();
            for family in self.families() {
                for addr in addrs.iter().filter(|a| a.is_ipv4() == family.v4) {
                    let _ = writeln!(batch, "del {} {addr}", family.set);
                }
            }
            return self.ipset_restore(&batch);
        }
        for family in self.families() {
            let present = self.rules(&family)?;
            let remove: Vec<IpAddr> = addrs
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

    fn list(&mut self) -> Result<BTreeSet<IpAddr>, FirewallError> {
        let mut all = BTreeSet::new();
        for family in self.families() {
            if self.use_ipset {
                all.extend(self.ipset_members(&family.set)?);
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
            if self.use_ipset && self.ipset_exists(&family.set)? {
                exec::run(&self.config.ipset, ["destroy", &family.set])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_host_drop_rules_of_the_chain_are_bans() {
        let listing = "-N HIKESHI\n\
                       -A HIKESHI -s 192.0.2.7/32 -j DROP\n\
                       -A HIKESHI -s 198.51.100.0/24 -j DROP\n\
                       -A HIKESHI -s 192.0.2.8/32 -j ACCEPT\n\
                       -A OTHER -s 192.0.2.9/32 -j DROP\n\
                       -A HIKESHI -s 2001:db8::5/128 -j DROP\n\
                       -A HIKESHI -m set --match-set hikeshi4 src -j DROP\n";
        let got: Vec<String> =
            chain_bans(listing, "HIKESHI").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.0.2.7", "2001:db8::5"]);
    }

    #[test]
    fn ipset_save_members() {
        let listing = "create hikeshi4 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\n\
                       add hikeshi4 192.0.2.7 timeout 590\n\
                       add hikeshi4 192.0.2.8 timeout 0\n\
                       add other 192.0.2.9\n";
        let got: Vec<String> =
            ipset_members(listing, "hikeshi4").iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["192.0.2.7", "192.0.2.8"]);
    }
}
