//! Containment: banning attack sources in the firewall and lifting bans,
//! with every action recorded.
//!
//! [`Containment`] is the one entry point: it applies the ban policy,
//! keeps the `bans` table (see [`store`]) and the firewall in step, and
//! returns a [`ContainmentOutcome`] per target (an address, or a network
//! such as an attacker's IPv6 /64) for the caller to put on the
//! incident's timeline and in alerts. The backends ([`nft`],
//! [`iptables`], [`fail2ban`], [`none`]) implement [`Firewall`]; they only
//! accept [`Permitted`] targets, which can only be made by checking the
//! allowlist (a network may not even touch it), so an allowlisted address
//! cannot reach a firewall whoever asked. Every program runs through
//! [`crate::exec`] with an argument vector; targets enter batches only as
//! parsed [`BanTarget`]s printed canonically.

pub mod config;
pub mod conntrack;
pub mod fail2ban;
pub mod iptables;
pub mod libnftables;
pub mod nft;
pub mod none;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hikeshi_core::allowlist::{AllowReason, Allowlist};
use hikeshi_core::contain::{remaining, BanLength, BanPolicy, BanTarget};
use ipnet::IpNet;
use jiff::Timestamp;
use rusqlite::Connection;
use thiserror::Error;

use crate::exec::ExecError;
pub use config::{BackendKind, ContainConfig};
pub use permit::Permitted;

/// What can go wrong talking to a firewall.
#[derive(Debug, Error)]
pub enum FirewallError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("cannot understand the output of `{program}`: {detail}")]
    Output { program: String, detail: String },
    #[error("libnftables refused the change: {0}")]
    Library(String),
    #[error("invalid [contain] setting {field} = {value:?}: {why}")]
    Config { field: &'static str, value: String, why: &'static str },
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
}

mod permit {
    //! [`Permitted`] lives alone in this module so that nothing else, not
    //! even a backend, can build one without checking the allowlist.
    use super::*;

    /// A target that passed the allowlist check: the only kind of
    /// target a [`Firewall`] bans. A network passes only if no
    /// allowlisted address is inside it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Permitted(BanTarget);

    impl Permitted {
        /// `target` (canonical by construction), or why it must never be
        /// banned.
        pub fn check(
            target: impl Into<BanTarget>,
            allowlist: &Allowlist,
        ) -> Result<Permitted, AllowReason> {
            let target = target.into();
            match allowlist.check_target(target) {
                Some(reason) => Err(reason),
                None => Ok(Permitted(target)),
            }
        }

        pub fn target(self) -> BanTarget {
            self.0
        }
    }
}

/// One ban for a backend: the address or network and how long the
/// firewall should hold it (`None`: permanent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEntry {
    pub target: Permitted,
    pub timeout: Option<Duration>,
    /// The ban is believed to be in the firewall already (an extension):
    /// its timeout must be refreshed, not just added.
    pub refresh: bool,
}

/// A firewall backend. Implementations own exactly the objects they create
/// (a table, a chain, sets, a jail's bans) and never touch anything else.
pub trait Firewall: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Creates hikeshi's objects if they are missing. Idempotent.
    fn setup(&mut self) -> Result<(), FirewallError>;
    /// Adds bans, or refreshes the timeout of ones already present, in as
    /// few operations as the firewall allows (one transaction for nft).
    fn ban(&mut self, bans: &[BanEntry]) -> Result<(), FirewallError>;
    /// Lifts bans; targets that are not banned are ignored.
    fn unban(&mut self, targets: &[BanTarget]) -> Result<(), FirewallError>;
    /// The addresses and networks banned now in what hikeshi owns.
    fn list(&mut self) -> Result<BTreeSet<BanTarget>, FirewallError>;
    /// Whether the firewall lifts a timed ban by itself when it ends (so
    /// bans expire even if hikeshi is not running).
    fn expires_on_its_own(&self) -> bool;
    /// Whether every entry [`Firewall::list`] returns is hikeshi's (its own
    /// table, chain or sets). A fail2ban jail may also hold fail2ban's own
    /// bans: then hikeshi only ever lifts the bans it recorded.
    fn owns_all_entries(&self) -> bool {
        true
    }
    /// Lifts every ban, keeping hikeshi's objects in place.
    fn flush(&mut self) -> Result<(), FirewallError>;
    /// Removes everything hikeshi added to the firewall.
    fn uninstall(&mut self) -> Result<(), FirewallError>;
    /// The commands a dry run would have run (only the `none` backend).
    fn dry_run_log(&self) -> &[String] {
        &[]
    }
}

/// Builds the configured backend (checking its names).
pub fn backend(config: &ContainConfig) -> Result<Box<dyn Firewall>, FirewallError> {
    Ok(match config.backend {
        BackendKind::Nftables => Box::new(nft::Nftables::new(&config.nftables)?),
        BackendKind::Iptables => Box::new(iptables::Iptables::new(&config.iptables, false)?),
        BackendKind::Ipset => Box::new(iptables::Iptables::new(&config.iptables, true)?),
        BackendKind::Fail2ban => Box::new(fail2ban::Fail2ban::new(&config.fail2ban)?),
        BackendKind::None => Box::new(none::DryRun::default()),
    })
}

/// The allowlisted networks from the configuration (`[allowlist] networks`).
pub fn allowlist_networks(config: &crate::config::Config) -> Vec<IpNet> {
    config.allowlist.networks.clone()
}

/// Checks an object name that goes into firewall commands: ASCII letters,
/// digits, `_` and `-`, starting with a letter, at most `max` bytes.
pub(crate) fn check_name(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), FirewallError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.as_bytes()[0].is_ascii_alphabetic()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FirewallError::Config {
            field,
            value: value.chars().take(64).collect(),
            why: "use ASCII letters, digits, '_' and '-', starting with a letter",
        })
    }
}

/// One address or network to ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRequest {
    pub addr: BanTarget,
    /// `None`: the policy decides from the target's offences.
    pub length: Option<BanLength>,
    pub reason: String,
    pub incident_id: Option<i64>,
}

/// What happened to one address or network: an entry for its incident's timeline
/// ("actions taken") and for the alert.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ContainmentOutcome {
    /// Banned now, or an existing ban was extended (`extended`).
    Banned {
        addr: BanTarget,
        incident_id: Option<i64>,
        backend: &'static str,
        length: String,
        expires_at: Option<Timestamp>,
        offence: u32,
        extended: bool,
        /// Established connections ended with conntrack.
        connections_killed: usize,
        /// The `none` backend only recorded it.
        dry_run: bool,
    },
    /// Allowlisted: never banned, whoever asked.
    Refused { addr: BanTarget, incident_id: Option<i64>, reason: String },
    /// Containment failed; nothing was applied or recorded for it.
    Failed { addr: BanTarget, incident_id: Option<i64>, backend: &'static str, error: String },
    /// A ban was lifted.
    Unbanned { addr: BanTarget, incident_id: Option<i64>, backend: &'static str, reason: String },
    /// Asked to lift a ban that did not exist.
    NotBanned { addr: BanTarget },
}

impl ContainmentOutcome {
    /// Whether this is a failure or refusal the operator must hear about.
    pub fn is_problem(&self) -> bool {
        matches!(self, ContainmentOutcome::Refused { .. } | ContainmentOutcome::Failed { .. })
    }
}

impl std::fmt::Display for ContainmentOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainmentOutcome::Banned {
                addr,
                backend,
                length,
                expires_at,
                offence,
                extended,
                connections_killed,
                dry_run,
                ..
            } => {
                let verb = match (dry_run, extended) {
                    (true, _) => "would ban",
                    (false, true) => "extended ban of",
                    (false, false) => "banned",
                };
                write!(f, "{verb} {addr} ({backend}, {length}")?;
                if let Some(end) = expires_at {
                    write!(f, ", until {end}")?;
                }
                write!(f, ", offence {offence})")?;
                if *connections_killed > 0 {
                    write!(f, ", ended {connections_killed} connection(s)")?;
                }
                Ok(())
            }
            ContainmentOutcome::Refused { addr, reason, .. } => {
                write!(f, "refused to ban {addr}: it is allowlisted ({reason})")
            }
            ContainmentOutcome::Failed { addr, backend, error, .. } => {
                write!(f, "containment FAILED for {addr} ({backend}): {error}")
            }
            ContainmentOutcome::Unbanned { addr, backend, reason, .. } => {
                write!(f, "unbanned {addr} ({backend}): {reason}")
            }
            ContainmentOutcome::NotBanned { addr } => write!(f, "{addr} was not banned"),
        }
    }
}

/// Records containment outcomes on incidents' timelines and in alerts
/// (the lead wires it to the incident store and notifier).
pub trait ContainmentRecorder {
    fn record(&mut self, outcome: &ContainmentOutcome);
}

/// What [`Containment::reconcile`] changed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReconcileReport {
    /// Active bans that were missing from the firewall and were re-applied.
    pub reapplied: Vec<BanTarget>,
    /// Bans whose time had passed: closed in the store (and removed from
    /// the firewall if it had not done so itself).
    pub expired: Vec<BanTarget>,
    /// Entries in hikeshi's own objects without an active ban: removed.
    pub removed_unknown: Vec<BanTarget>,
}

/// Carries out bans and unbans: policy, store and firewall in step.
pub struct Containment<'a> {
    firewall: Box<dyn Firewall>,
    allowlist: Allowlist,
    policy: BanPolicy,
    conn: &'a mut Connection,
    conntrack: Option<String>,
    /// The backend's objects are known to exist (a daemon's backend that
    /// has banned before): bans skip `setup`.
    set_up: bool,
}

impl<'a> Containment<'a> {
    /// `conntrack`: the conntrack program, if connections of banned
    /// sources are to be ended.
    pub fn new(
        firewall: Box<dyn Firewall>,
        allowlist: Allowlist,
        policy: BanPolicy,
        conn: &'a mut Connection,
        conntrack: Option<String>,
    ) -> Self {
        Containment { firewall, allowlist, policy, conn, conntrack, set_up: false }
    }

    /// Says whether `firewall` is known to be set up already (it banned
    /// successfully in this process), so that a ban is one firewall call.
    pub fn assume_set_up(mut self, set_up: bool) -> Self {
        self.set_up = set_up;
        self
    }

    /// Gives the backend back, to be used again (see
    /// [`Containment::assume_set_up`]).
    pub fn into_firewall(self) -> Box<dyn Firewall> {
        self.firewall
    }

    /// The backend in use.
    pub fn firewall(&self) -> &dyn Firewall {
        &*self.firewall
    }

    /// Bans `requests` at `now`: allowlisted addresses are refused, the
    /// rest go to the firewall in one batch and into the store in one
    /// transaction, which is rolled back if the firewall fails. A repeat
    /// request for a banned address extends its ban (never shortens it).
    pub fn ban(&mut self, requests: &[BanRequest], now: Timestamp) -> Vec<ContainmentOutcome> {
        let backend = self.firewall.kind().name();
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut permitted: BTreeMap<Permitted, &BanRequest> = BTreeMap::new();
        let networks = self.firewall.kind().bans_networks();
        for request in requests {
            match Permitted::check(request.addr, &self.allowlist) {
                Ok(p) if p.target().single().is_none() && !networks => {
                    outcomes.push(ContainmentOutcome::Failed {
                        addr: p.target(),
                        incident_id: request.incident_id,
                        backend,
                        error: format!(
                            "the {backend} backend bans single addresses only, not networks"
                        ),
                    });
                }
                Ok(p) => {
                    permitted.entry(p).or_insert(request);
                }
                Err(reason) => outcomes.push(ContainmentOutcome::Refused {
                    addr: request.addr,
                    incident_id: request.incident_id,
                    reason: reason.to_string(),
                }),
            }
        }
        if permitted.is_empty() {
            return outcomes;
        }
        let fail = |error: String, permitted: &BTreeMap<Permitted, &BanRequest>| {
            permitted
                .iter()
                .map(|(p, r)| ContainmentOutcome::Failed {
                    addr: p.target(),
                    incident_id: r.incident_id,
                    backend,
                    error: error.clone(),
                })
                .collect::<Vec<_>>()
        };
        // The whole ban is one store transaction: planned (reads), then the
        // firewall batch and the store writes run at the same time (the
        // firewall is another process), then commit, or roll back if
        // either failed. The firewall is never ahead of the store for long,
        // and reconcile removes what a crash left without a record.
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            outcomes.extend(fail(format!("store: {e}"), &permitted));
            return outcomes;
        }
        let planned = match self.plan_bans(&permitted, now) {
            Ok(planned) => planned,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                outcomes.extend(fail(e.to_string(), &permitted));
                return outcomes;
            }
        };
        let entries: Vec<BanEntry> = planned.iter().map(|p| p.entry).collect();
        let firewall = &mut self.firewall;
        let conn: &Connection = self.conn;
        let set_up = self.set_up;
        let (applied, written) = std::thread::scope(|scope| {
            let applying = scope.spawn(move || {
                if !set_up {
                    firewall.setup()?;
                }
                firewall.ban(&entries)
            });
            let written = write_plan(conn, &planned, backend, now);
            let applied = applying.join().unwrap_or_else(|_| {
                Err(FirewallError::Output {
                    program: backend.to_string(),
                    detail: "backend panicked".into(),
                })
            });
            (applied, written)
        });
        let committed = applied
            .and(written)
            .and_then(|()| self.conn.execute_batch("COMMIT").map_err(FirewallError::from));
        if let Err(e) = committed {
            let _ = self.conn.execute_batch("ROLLBACK");
            outcomes.extend(fail(e.to_string(), &permitted));
            return outcomes;
        }
        let killed = match &self.conntrack {
            Some(program) if self.firewall.kind() != BackendKind::None => {
                let addrs: BTreeSet<BanTarget> =
                    planned.iter().map(|p| p.entry.target.target()).collect();
                conntrack::kill(program, &addrs).unwrap_or_else(|e| {
                    tracing::warn!("could not end connections of banned sources: {e}");
                    BTreeMap::new()
                })
            }
            _ => BTreeMap::new(),
        };
        let dry_run = self.firewall.kind() == BackendKind::None;
        for p in planned {
            let addr = p.entry.target.target();
            outcomes.push(ContainmentOutcome::Banned {
                addr,
                incident_id: p.incident_id,
                backend,
                length: p.length.to_string(),
                expires_at: p.expires_at,
                offence: p.offence,
                extended: p.extended.is_some(),
                connections_killed: killed.get(&addr).copied().unwrap_or(0),
                dry_run,
            });
        }
        outcomes
    }

    /// Decides each ban's offence number, length and end from the store
    /// (reads only; the caller holds the transaction).
    fn plan_bans(
        &self,
        permitted: &BTreeMap<Permitted, &BanRequest>,
        now: Timestamp,
    ) -> Result<Vec<PlannedBan>, FirewallError> {
        let addrs: Vec<BanTarget> = permitted.keys().map(|p| p.target()).collect();
        let active: BTreeMap<BanTarget, store::BanRecord> =
            store::active_bans_of(self.conn, &addrs)?.into_iter().map(|b| (b.address, b)).collect();
        let offences = store::offences_of(self.conn, &addrs)?;
        let mut planned = Vec::with_capacity(permitted.len());
        for (p, request) in permitted {
            let addr = p.target();
            let offence = offences.get(&addr).copied().unwrap_or(0).saturating_add(1);
            let length = request.length.unwrap_or_else(|| self.policy.length_for(offence));
            let wanted_end = length.expires_at(now);
            let old = active.get(&addr);
            let (expires_at, extended, replaces_expired) = match old {
                Some(old) if !hikeshi_core::contain::is_expired(old.expires_at, now) => (
                    hikeshi_core::contain::later_end(old.expires_at, wanted_end),
                    Some(old.id),
                    false,
                ),
                old => (wanted_end, None, old.is_some()),
            };
            planned.push(PlannedBan {
                entry: BanEntry {
                    target: *p,
                    timeout: remaining(expires_at, now),
                    refresh: extended.is_some(),
                },
                length,
                expires_at,
                offence,
                extended,
                replaces_expired,
                incident_id: request.incident_id,
                reason: request.reason.clone(),
            });
        }
        Ok(planned)
    }

    /// Lifts the bans of `addrs` (from the firewall and the store, in one
    /// transaction rolled back if the firewall fails).
    pub fn unban(
        &mut self,
        addrs: &[BanTarget],
        reason: &str,
        now: Timestamp,
    ) -> Vec<ContainmentOutcome> {
        let backend = self.firewall.kind().name();
        let addrs: BTreeSet<BanTarget> = addrs.iter().copied().collect();
        let result = (|| -> Result<Vec<ContainmentOutcome>, FirewallError> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let mut outcomes = Vec::new();
            let run = (|| -> Result<(), FirewallError> {
                self.firewall.setup()?;
                let present = self.firewall.list()?;
                for &addr in &addrs {
                    let removed = store::remove_ban(self.conn, addr, now, reason)?;
                    if removed.is_none() && !present.contains(&addr) {
                        outcomes.push(ContainmentOutcome::NotBanned { addr });
                    } else {
                        outcomes.push(ContainmentOutcome::Unbanned {
                            addr,
                            incident_id: removed.and_then(|b| b.incident_id),
                            backend,
                            reason: reason.to_string(),
                        });
                    }
                }
                let to_remove: Vec<BanTarget> = addrs.intersection(&present).copied().collect();
                self.firewall.unban(&to_remove)?;
                self.conn.execute_batch("COMMIT")?;
                Ok(())
            })();
            if let Err(e) = run {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            Ok(outcomes)
        })();
        match result {
            Ok(outcomes) => outcomes,
            Err(e) => addrs
                .iter()
                .map(|&addr| ContainmentOutcome::Failed {
                    addr,
                    incident_id: None,
                    backend,
                    error: format!("unban failed: {e}"),
                })
                .collect(),
        }
    }

    /// Brings the firewall in line with the store at `now`: closes bans
    /// whose time has passed, re-applies active bans that are missing
    /// (with the time they have left), and removes entries in hikeshi's
    /// own objects that no active ban explains. Nothing outside hikeshi's
    /// objects is looked at.
    pub fn reconcile(&mut self, now: Timestamp) -> Result<ReconcileReport, FirewallError> {
        let mut report = ReconcileReport::default();
        self.firewall.setup()?;
        let tx = self.conn.transaction()?;
        report.expired = store::expire_bans(&tx, now)?.into_iter().map(|b| b.address).collect();
        let active = store::active_bans(&tx)?;
        let present = self.firewall.list()?;
        let mut missing = Vec::new();
        for ban in &active {
            if present.contains(&ban.address) {
                continue;
            }
            // A ban stored before the allowlist grew is not re-applied.
            match Permitted::check(ban.address, &self.allowlist) {
                Ok(p) => missing.push(BanEntry {
                    target: p,
                    timeout: remaining(ban.expires_at, now),
                    refresh: false,
                }),
                Err(reason) => {
                    tracing::warn!(
                        "not re-applying the ban of {}: allowlisted ({reason})",
                        ban.address
                    );
                }
            }
        }
        let wanted: BTreeSet<BanTarget> = active.iter().map(|b| b.address).collect();
        let expired: BTreeSet<BanTarget> = report.expired.iter().copied().collect();
        let owns_all = self.firewall.owns_all_entries();
        let stale: Vec<BanTarget> = present
            .difference(&wanted)
            .filter(|a| owns_all || expired.contains(a))
            .copied()
            .collect();
        if self.firewall.kind() != BackendKind::None {
            self.firewall.ban(&missing)?;
            report.reapplied = missing.iter().map(|e| e.target.target()).collect();
        }
        self.firewall.unban(&stale)?;
        report.removed_unknown = stale.into_iter().filter(|a| !expired.contains(a)).collect();
        tx.commit()?;
        Ok(report)
    }

    /// Lifts every ban (firewall and store), keeping hikeshi's objects.
    pub fn flush(&mut self, now: Timestamp) -> Result<Vec<BanTarget>, FirewallError> {
        self.lift_all(now, "flush", false)
    }

    /// Lifts every ban and removes everything hikeshi added to the firewall.
    pub fn uninstall(&mut self, now: Timestamp) -> Result<Vec<BanTarget>, FirewallError> {
        self.lift_all(now, "uninstall", true)
    }

    fn lift_all(
        &mut self,
        now: Timestamp,
        reason: &str,
        uninstall: bool,
    ) -> Result<Vec<BanTarget>, FirewallError> {
        let tx = self.conn.transaction()?;
        let mut lifted = Vec::new();
        for ban in store::active_bans(&tx)? {
            store::remove_ban(&tx, ban.address, now, reason)?;
            lifted.push(ban.address);
        }
        if !self.firewall.owns_all_entries() {
            // Lift only what hikeshi banned; the rest belongs to others.
            self.firewall.unban(&lifted)?;
        } else if uninstall {
            self.firewall.uninstall()?;
        } else {
            self.firewall.setup()?;
            self.firewall.flush()?;
        }
        tx.commit()?;
        Ok(lifted)
    }
}

struct PlannedBan {
    entry: BanEntry,
    length: BanLength,
    expires_at: Option<Timestamp>,
    offence: u32,
    /// The active ban this one extends.
    extended: Option<i64>,
    /// An active ban whose time has passed is closed first.
    replaces_expired: bool,
    incident_id: Option<i64>,
    reason: String,
}

/// Writes planned bans: offence counts, extensions, new rows.
fn write_plan(
    conn: &Connection,
    planned: &[PlannedBan],
    backend: &'static str,
    now: Timestamp,
) -> Result<(), FirewallError> {
    let counts: Vec<(BanTarget, u32)> =
        planned.iter().map(|p| (p.entry.target.target(), p.offence)).collect();
    store::set_offences(conn, &counts, now)?;
    let mut new_bans = Vec::with_capacity(planned.len());
    for p in planned {
        let address = p.entry.target.target();
        if let Some(id) = p.extended {
            store::set_expiry(conn, id, p.expires_at)?;
            continue;
        }
        if p.replaces_expired {
            store::remove_ban(conn, address, now, "expired")?;
        }
        new_bans.push(store::NewBan {
            address,
            incident_id: p.incident_id,
            reason: &p.reason,
            backend,
            created_at: now,
            expires_at: p.expires_at,
            offence: p.offence,
        });
    }
    store::insert_bans(conn, &new_bans)?;
    Ok(())
}

/// Splits targets by family.
pub(crate) fn by_family<'a, I>(targets: I) -> (Vec<BanTarget>, Vec<BanTarget>)
where
    I: IntoIterator<Item = &'a BanTarget>,
{
    targets.into_iter().partition(|t| t.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permitted_refuses_allowlisted_and_canonicalises() {
        let list = Allowlist::new(
            vec!["192.0.2.0/24".parse().unwrap()],
            vec!["198.51.100.1".parse().unwrap()],
        );
        let ip = |s: &str| s.parse::<BanTarget>().unwrap();
        assert_eq!(Permitted::check(ip("127.0.0.1"), &list), Err(AllowReason::Loopback));
        assert_eq!(
            Permitted::check(ip("::ffff:198.51.100.1"), &list),
            Err(AllowReason::HostAddress)
        );
        assert!(matches!(
            Permitted::check(ip("192.0.2.9"), &list),
            Err(AllowReason::Configured(_))
        ));
        assert_eq!(
            Permitted::check(ip("::ffff:203.0.113.5"), &list).unwrap().target(),
            ip("203.0.113.5")
        );
        // A network must not even touch the allowlist.
        assert_eq!(
            Permitted::check(ip("2001:db8:1:2::7/64"), &list).unwrap().target().to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(Permitted::check(ip("198.51.100.0/24"), &list), Err(AllowReason::HostAddress));
        assert!(matches!(
            Permitted::check(ip("192.0.0.0/16"), &list),
            Err(AllowReason::Configured(_))
        ));
        assert_eq!(Permitted::check(ip("::/64"), &list), Err(AllowReason::NotAPeer));
        assert_eq!(Permitted::check(ip("120.0.0.0/5"), &list), Err(AllowReason::Loopback));
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn request(addr: &str, length: Option<BanLength>) -> BanRequest {
        BanRequest {
            addr: addr.parse().unwrap(),
            length,
            reason: "test".into(),
            incident_id: Some(3),
        }
    }

    fn memory_db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        store::create_tables(&conn).unwrap();
        conn
    }

    #[test]
    fn bans_escalate_extend_and_refuse_allowlisted_before_the_firewall() {
        let mut conn = memory_db();
        let policy = BanPolicy {
            bantime: Duration::from_secs(60),
            multiplier: 2.0,
            max_bantime: Duration::from_secs(600),
            permanent_after: None,
        };
        let allowlist = Allowlist::new(vec!["192.0.2.0/24".parse().unwrap()], vec![]);
        let mut c =
            Containment::new(Box::new(none::DryRun::default()), allowlist, policy, &mut conn, None);
        let out = c.ban(&[request("203.0.113.5", None), request("192.0.2.9", None)], at(0));
        assert!(
            matches!(&out[0], ContainmentOutcome::Refused { reason, .. } if reason.contains("192.0.2.0/24"))
        );
        assert!(
            matches!(&out[1], ContainmentOutcome::Banned { offence: 1, extended: false, expires_at: Some(end), .. } if *end == at(60))
        );
        assert_eq!(c.firewall().dry_run_log(), ["would ban 203.0.113.5 for 1m"]);
        // A second offence while banned: longer, and an extension.
        let out = c.ban(&[request("203.0.113.5", None)], at(30));
        assert!(
            matches!(&out[0], ContainmentOutcome::Banned { offence: 2, extended: true, expires_at: Some(end), .. } if *end == at(150)),
            "{out:?}"
        );
        // A shorter explicit ban never shortens the one in force.
        let out =
            c.ban(&[request("203.0.113.5", Some(BanLength::For(Duration::from_secs(1))))], at(40));
        assert!(
            matches!(&out[0], ContainmentOutcome::Banned { expires_at: Some(end), .. } if *end == at(150)),
            "{out:?}"
        );
        // After it ended (not yet reconciled), a new ban is a new record.
        let out = c.ban(&[request("203.0.113.5", None)], at(1000));
        assert!(
            matches!(&out[0], ContainmentOutcome::Banned { offence: 4, extended: false, expires_at: Some(end), .. } if *end == at(1480)),
            "{out:?}"
        );
        drop(c);
        let history = store::all_bans(&conn, 10).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].removed_reason.as_deref(), Some("expired"));
        assert_eq!(history[0].incident_id, Some(3));
    }

    #[test]
    fn unban_of_an_unknown_address_says_so() {
        let mut conn = memory_db();
        let mut c = Containment::new(
            Box::new(none::DryRun::default()),
            Allowlist::default(),
            BanPolicy::default(),
            &mut conn,
            None,
        );
        c.ban(&[request("2001:db8::1", None)], at(0));
        let out = c.unban(
            &["2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap()],
            "done",
            at(1),
        );
        assert!(
            matches!(&out[0], ContainmentOutcome::Unbanned { incident_id: Some(3), .. }),
            "{out:?}"
        );
        assert!(matches!(&out[1], ContainmentOutcome::NotBanned { .. }), "{out:?}");
    }

    #[test]
    fn names_going_into_firewall_commands_are_checked() {
        check_name("table", "hikeshi", 32).unwrap();
        check_name("chain", "HIKESHI-2_x", 28).unwrap();
        for bad in ["", "1abc", "a b", "a;b", "x}", "ｈ", &"a".repeat(40)] {
            assert!(check_name("table", bad, 32).is_err(), "{bad}");
        }
    }
}
