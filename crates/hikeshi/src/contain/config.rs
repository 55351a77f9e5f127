//! `[contain]` in `hikeshi.toml`: which firewall backend bans with, how
//! long bans last, and each backend's options.

use std::path::PathBuf;
use std::time::Duration;

use hikeshi_core::contain::{parse_duration, BanPolicy};
use serde::Deserialize;

/// Which firewall carries out bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// hikeshi's own nftables table with timed set elements (default).
    #[default]
    Nftables,
    /// A `HIKESHI` iptables/ip6tables chain with one DROP rule per ban.
    Iptables,
    /// iptables/ip6tables rules matching ipsets with timeouts.
    Ipset,
    /// Delegate to a running fail2ban (`fail2ban-client set JAIL banip`).
    Fail2ban,
    /// Record and report only (dry run).
    None,
}

impl BackendKind {
    /// The name used in the configuration and the store.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Nftables => "nftables",
            BackendKind::Iptables => "iptables",
            BackendKind::Ipset => "ipset",
            BackendKind::Fail2ban => "fail2ban",
            BackendKind::None => "none",
        }
    }

    /// Whether it bans a whole network as one entry. A fail2ban jail's
    /// ban action may keep its bans in a set of single addresses
    /// (`nftables-allports` does), where a network would fail.
    pub fn bans_networks(self) -> bool {
        self != BackendKind::Fail2ban
    }
}

/// `[contain]`: banning sources in the firewall.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainConfig {
    /// nftables (default), iptables, ipset, fail2ban or none (dry run).
    pub backend: BackendKind,
    /// Length of a first ban, e.g. "1h".
    pub bantime: String,
    /// Each repeat offence multiplies the previous ban length by this.
    pub multiplier: f64,
    /// No timed ban is longer than this, e.g. "7d".
    pub max_bantime: String,
    /// From this offence on, bans are permanent. Unset: never.
    pub permanent_after: Option<u32>,
    /// End the banned source's established connections (`conntrack -D`):
    /// a DROP rule alone leaves an open SSH session's state in place.
    pub kill_connections: bool,
    /// The conntrack program.
    pub conntrack: String,
    /// Ban automatically when a finding's rule is in `ban_rules` (`scan`
    /// and `watch`). False: detect, record and alert only.
    pub auto_ban: bool,
    /// The detection rules whose findings ban their source.
    pub ban_rules: Vec<String>,
    /// A prefix brute force (an IPv6 host rotating through its /64, see
    /// `[detect] ipv6_prefix_len`) bans the whole prefix as one firewall
    /// entry. False, or the fail2ban backend: each of its addresses is
    /// banned as it shows up. A prefix that holds an allowlisted address
    /// is never banned.
    pub ban_networks: bool,
    pub nftables: NftablesConfig,
    pub iptables: IptablesConfig,
    pub fail2ban: Fail2banConfig,
}

/// Every rule with an attacking address: all but `account_attack`, whose
/// subject is an account attacked from many sources.
pub const DEFAULT_BAN_RULES: &[&str] = &[
    "brute_force",
    "prefix_brute_force",
    "user_enumeration",
    "slow_brute_force",
    "success_after_failures",
];

impl Default for ContainConfig {
    fn default() -> Self {
        ContainConfig {
            backend: BackendKind::default(),
            bantime: "1h".into(),
            multiplier: 2.0,
            max_bantime: "7d".into(),
            permanent_after: None,
            kill_connections: true,
            conntrack: "conntrack".into(),
            auto_ban: true,
            ban_rules: DEFAULT_BAN_RULES.iter().map(|r| r.to_string()).collect(),
            ban_networks: true,
            nftables: NftablesConfig::default(),
            iptables: IptablesConfig::default(),
            fail2ban: Fail2banConfig::default(),
        }
    }
}

/// `[contain.nftables]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NftablesConfig {
    /// The nft program.
    pub nft: String,
    /// hikeshi's own table (family inet); nothing outside it is touched.
    pub table: String,
    /// Change the ruleset in-process through libnftables (the library
    /// `nft` is built on) when it can be loaded: a ban without starting a
    /// program. Listing and the fallback use `nft`.
    pub library: bool,
}

impl Default for NftablesConfig {
    fn default() -> Self {
        NftablesConfig { nft: "nft".into(), table: "hikeshi".into(), library: true }
    }
}

/// `[contain.iptables]`: the iptables and ipset backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IptablesConfig {
    pub iptables: String,
    pub ip6tables: String,
    pub iptables_restore: String,
    pub ip6tables_restore: String,
    pub ipset: String,
    /// hikeshi's chain in the filter table, jumped to from INPUT.
    pub chain: String,
    /// The ipsets are named `<set_prefix>4` and `<set_prefix>6` (single
    /// addresses), `<set_prefix>n4` and `<set_prefix>n6` (networks): at
    /// most 29 bytes.
    pub set_prefix: String,
}

impl Default for IptablesConfig {
    fn default() -> Self {
        IptablesConfig {
            iptables: "iptables".into(),
            ip6tables: "ip6tables".into(),
            iptables_restore: "iptables-restore".into(),
            ip6tables_restore: "ip6tables-restore".into(),
            ipset: "ipset".into(),
            chain: "HIKESHI".into(),
            set_prefix: "hikeshi".into(),
        }
    }
}

/// `[contain.fail2ban]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fail2banConfig {
    /// The fail2ban-client program.
    pub client: String,
    /// fail2ban's control socket; unset: fail2ban's default.
    pub socket: Option<PathBuf>,
    /// The jail bans are delegated to.
    pub jail: String,
}

impl Default for Fail2banConfig {
    fn default() -> Self {
        Fail2banConfig { client: "fail2ban-client".into(), socket: None, jail: "hikeshi".into() }
    }
}

impl ContainConfig {
    /// The escalation policy, checked.
    pub fn policy(&self) -> Result<BanPolicy, String> {
        let bantime =
            parse_duration(&self.bantime).map_err(|e| format!("[contain] bantime: {e}"))?;
        let max_bantime =
            parse_duration(&self.max_bantime).map_err(|e| format!("[contain] max_bantime: {e}"))?;
        let policy = BanPolicy {
            bantime,
            multiplier: self.multiplier,
            max_bantime,
            permanent_after: self.permanent_after,
        };
        policy.validate().map_err(|e| format!("[contain]: {e}"))?;
        Ok(policy)
    }

    /// The length of a first ban.
    pub fn bantime(&self) -> Result<Duration, String> {
        self.policy().map(|p| p.bantime)
    }
}
