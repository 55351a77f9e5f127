//! `[contain]`: the backend's programs, its objects, and a test element
//! added and removed.

use std::net::IpAddr;

use hikeshi_core::contain::BanTarget;

use hikeshi_core::allowlist::Allowlist;

use super::{find_program, missing_program_fix, Check, Doctor, TEST_ADDRESSES, TEST_BAN_TIMEOUT};
use crate::contain::{self, BackendKind, BanEntry, Firewall, Permitted};

impl Doctor<'_> {
    /// `[contain]`: the backend's programs exist, it can list its own
    /// objects, add a test element and remove it.
    pub fn check_firewall(&self) -> Vec<Check> {
        let contain = &self.config.contain;
        let kind = contain.backend;
        let subject = kind.name();
        if kind == BackendKind::None {
            return vec![Check::warn(
                "firewall",
                subject,
                "dry run: attacks are recorded and alerted, nothing will be banned",
                "set [contain] backend = \"nftables\" (or iptables, ipset, fail2ban)",
            )];
        }
        let mut checks = Vec::new();
        let missing: Vec<(&str, &str)> = backend_programs(&self.config.contain)
            .into_iter()
            .filter(|(_, program)| find_program(program).is_none())
            .collect();
        if let Some((setting, program)) = missing.first() {
            let names: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
            checks.push(Check::fail(
                "firewall",
                subject,
                format!("program(s) not found: {}", names.join(", ")),
                missing_program_fix(program, setting),
            ));
        } else {
            checks.push(match contain::backend(contain) {
                Err(e) => Check::fail(
                    "firewall",
                    subject,
                    e.to_string(),
                    "correct the [contain] setting named",
                ),
                Ok(mut firewall) => exercise_firewall(&mut *firewall, &self.allowlist(), contain),
            });
        }
        if contain.kill_connections && find_program(&contain.conntrack).is_none() {
            checks.push(Check::warn(
                "firewall",
                "conntrack",
                format!(
                    "program `{}` not found: a ban will not end the source's open sessions",
                    contain.conntrack
                ),
                missing_program_fix(&contain.conntrack, "[contain] conntrack"),
            ));
        }
        checks
    }

    fn allowlist(&self) -> Allowlist {
        self.config.allowlist.build(crate::host::own_addresses().unwrap_or_default())
    }
}

/// The programs a backend runs, with the setting that names each.
pub fn backend_programs(contain: &contain::ContainConfig) -> Vec<(&'static str, &str)> {
    let ipt = &contain.iptables;
    match contain.backend {
        BackendKind::Nftables => vec![("[contain.nftables] nft", contain.nftables.nft.as_str())],
        BackendKind::Iptables | BackendKind::Ipset => {
            let mut programs = vec![
                ("[contain.iptables] iptables", ipt.iptables.as_str()),
                ("[contain.iptables] ip6tables", ipt.ip6tables.as_str()),
                ("[contain.iptables] iptables_restore", ipt.iptables_restore.as_str()),
                ("[contain.iptables] ip6tables_restore", ipt.ip6tables_restore.as_str()),
            ];
            if contain.backend == BackendKind::Ipset {
                programs.push(("[contain.iptables] ipset", ipt.ipset.as_str()));
            }
            programs
        }
        BackendKind::Fail2ban => {
            vec![("[contain.fail2ban] client", contain.fail2ban.client.as_str())]
        }
        BackendKind::None => Vec::new(),
    }
}

/// What hikeshi owns in the firewall, for findings.
fn owned_objects(contain: &contain::ContainConfig) -> String {
    match contain.backend {
        BackendKind::Nftables => format!("table inet {}", contain.nftables.table),
        BackendKind::Iptables => {
            format!("chain {} (iptables and ip6tables)", contain.iptables.chain)
        }
        BackendKind::Ipset => format!(
            "ipsets {p}4, {p}6, {p}n4 and {p}n6 (chain {c})",
            p = contain.iptables.set_prefix,
            c = contain.iptables.chain
        ),
        BackendKind::Fail2ban => format!("fail2ban jail {}", contain.fail2ban.jail),
        BackendKind::None => "nothing".into(),
    }
}

/// Lists hikeshi's objects (creating them if missing), adds a test
/// element per address family, checks it is listed, removes it, checks it
/// is gone, and removes the objects again if it created them.
pub fn exercise_firewall(
    firewall: &mut dyn Firewall,
    allowlist: &Allowlist,
    contain: &contain::ContainConfig,
) -> Check {
    let subject = firewall.kind().name();
    let objects = owned_objects(contain);
    let privilege_fix = "run hikeshi as root (changing the firewall needs CAP_NET_ADMIN); if \
                         root fails too, check the error above (kernel modules, another firewall \
                         manager)";
    let (present, created) = match firewall.list() {
        Ok(present) => (present, false),
        Err(list_error) if firewall.kind() == BackendKind::Fail2ban => {
            return Check::fail(
                "firewall",
                subject,
                format!("cannot list {objects}: {list_error}"),
                format!(
                    "start fail2ban (`systemctl start fail2ban`) and define jail {} \
                     (see docs), or set [contain.fail2ban] jail",
                    contain.fail2ban.jail
                ),
            );
        }
        Err(_) => match firewall.setup().and_then(|()| firewall.list()) {
            Ok(present) => (present, true),
            Err(e) => {
                let _ = firewall.uninstall();
                return Check::fail(
                    "firewall",
                    subject,
                    format!("cannot create or list {objects}: {e}"),
                    privilege_fix,
                );
            }
        },
    };
    if firewall.kind() == BackendKind::Fail2ban {
        if let Err(e) = firewall.setup() {
            return Check::fail(
                "firewall",
                subject,
                format!("{objects}: {e}"),
                "start fail2ban and check the jail with `fail2ban-client status JAIL`",
            );
        }
        // A fail2ban ban runs the jail's actions (some send mail): the
        // jail is proven by answering, not by a test ban.
        return Check::ok(
            "firewall",
            subject,
            format!(
                "{objects} answers, {} ban(s) listed; no test ban (it would run the jail's \
                 actions)",
                present.len()
            ),
        );
    }
    let mut tests: Vec<Permitted> = Vec::new();
    for v4 in [true, false] {
        let chosen = TEST_ADDRESSES
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .filter(|a| a.is_ipv4() == v4 && !present.contains(&BanTarget::addr(*a)))
            .find_map(|a| Permitted::check(a, allowlist).ok());
        tests.extend(chosen);
    }
    let cleanup_objects = |firewall: &mut dyn Firewall| -> Result<(), String> {
        if !created {
            return Ok(());
        }
        // Only if nothing but our test was ever in them (a ban hikeshi
        // made meanwhile keeps its objects).
        match firewall.list() {
            Ok(left) if left.is_empty() => firewall.uninstall().map_err(|e| e.to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    if tests.is_empty() {
        let cleaned = cleanup_objects(firewall);
        return Check::warn(
            "firewall",
            subject,
            format!(
                "{objects} listed, but every test address ({}) is allowlisted or banned: \
                 adding was not tested{}",
                TEST_ADDRESSES.join(", "),
                cleaned.err().map(|e| format!("; cleanup failed: {e}")).unwrap_or_default()
            ),
            "remove the documentation ranges from [allowlist] networks to let doctor test bans",
        );
    }
    let addrs: Vec<BanTarget> = tests.iter().map(|p| p.target()).collect();
    let entries: Vec<BanEntry> = tests
        .iter()
        .map(|&target| BanEntry { target, timeout: Some(TEST_BAN_TIMEOUT), refresh: false })
        .collect();
    let added = firewall.ban(&entries).map_err(|e| e.to_string()).and_then(|()| {
        let listed = firewall.list().map_err(|e| e.to_string())?;
        let missing: Vec<String> =
            addrs.iter().filter(|a| !listed.contains(a)).map(|a| a.to_string()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("added {} but the listing does not show it", missing.join(", ")))
        }
    });
    // Removed whatever happened above: nothing of the test may stay.
    let removed = firewall.unban(&addrs).map_err(|e| e.to_string()).and_then(|()| {
        let listed = firewall.list().map_err(|e| e.to_string())?;
        let left: Vec<String> =
            addrs.iter().filter(|a| listed.contains(a)).map(|a| a.to_string()).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} still listed after removal", left.join(", ")))
        }
    });
    let cleaned = cleanup_objects(firewall);
    let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    match (added, removed, cleaned) {
        (Ok(()), Ok(()), Ok(())) => {
            let mut finding = if created {
                format!(
                    "{objects} was missing: created, listed, test element(s) {} added and \
                     removed, then removed again (hikeshi creates it at the first ban)",
                    shown.join(", ")
                )
            } else {
                format!(
                    "{objects} listed ({} ban(s)), test element(s) {} added and removed",
                    present.len(),
                    shown.join(", ")
                )
            };
            if !firewall.expires_on_its_own() {
                finding.push_str("; bans end only when hikeshi removes them (run `hikeshi watch`)");
            }
            Check::ok("firewall", subject, finding)
        }
        (Err(e), _, _) => Check::fail(
            "firewall",
            subject,
            format!("cannot add a test element to {objects}: {e}"),
            privilege_fix,
        ),
        (Ok(()), Err(e), _) => Check::fail(
            "firewall",
            subject,
            format!("cannot remove test element(s) {}: {e}", shown.join(", ")),
            format!(
                "remove them by hand (`hikeshi unban {}`) and check the backend",
                shown.join(" ")
            ),
        ),
        (Ok(()), Ok(()), Err(e)) => Check::fail(
            "firewall",
            subject,
            format!("test passed, but {objects} (created for it) could not be removed: {e}"),
            "`hikeshi firewall uninstall` removes it",
        ),
    }
}
