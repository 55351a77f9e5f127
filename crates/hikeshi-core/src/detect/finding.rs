//! What detection reports: a [`Finding`] says which [`Rule`] fired against
//! which [`Subject`], with the evidence counted in the rule's window.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::Window;
use crate::allowlist::AllowReason;
use crate::event::{Severity, Source};

/// The detection rules. The `as_str` names are stable: they appear in the
/// store, in alerts and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `maxretry` failures from one source within `findtime`.
    BruteForce,
    /// `prefix_maxretry` failures within `findtime` from two or more
    /// addresses of one prefix (an IPv6 /64 by default).
    PrefixBruteForce,
    /// Many distinct user names tried by one source.
    UserEnumeration,
    /// `slow.maxretry` failures from one source within the long window.
    SlowBruteForce,
    /// One account failing from many distinct sources (password spraying,
    /// a botnet on one account).
    AccountAttack,
    /// An accepted login from a source (or prefix) that has just failed
    /// many times: a possible compromise.
    SuccessAfterFailures,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::BruteForce,
        Rule::PrefixBruteForce,
        Rule::UserEnumeration,
        Rule::SlowBruteForce,
        Rule::AccountAttack,
        Rule::SuccessAfterFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::BruteForce => "brute_force",
            Rule::PrefixBruteForce => "prefix_brute_force",
            Rule::UserEnumeration => "user_enumeration",
            Rule::SlowBruteForce => "slow_brute_force",
            Rule::AccountAttack => "account_attack",
            Rule::SuccessAfterFailures => "success_after_failures",
        }
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The severity scheme. Critical means a possible compromise and is
    /// reserved for a success after failures. High is an active attack on
    /// authentication (fast guessing from a source or a prefix). Medium is
    /// an attack that is spread out or still reconnaissance: slow guessing,
    /// user-name enumeration, one account from many sources.
    pub fn severity(self) -> Severity {
        match self {
            Rule::SuccessAfterFailures => Severity::Critical,
            Rule::BruteForce | Rule::PrefixBruteForce => Severity::High,
            Rule::UserEnumeration | Rule::SlowBruteForce | Rule::AccountAttack => Severity::Medium,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Subject {
    /// One address (canonical: IPv4-mapped IPv6 is IPv4).
    Addr(IpAddr),
    /// An aggregation prefix (IPv6 /64 by default).
    Prefix(IpNet),
    /// A host name sshd logged instead of an address: unresolved and
    /// attacker-influenced, so never a ban target.
    Hostname(String),
    /// An account name (for [`Rule::AccountAttack`]): attacker-chosen text.
    User(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Addr(a) => write!(f, "{a}"),
            Subject::Prefix(n) => write!(f, "{n}"),
            Subject::Hostname(h) => write!(f, "host name {h:?}"),
            Subject::User(u) => write!(f, "user {u:?}"),
        }
    }
}

/// One rule firing against one subject. See the module documentation of
/// `detect` for exactly when findings are emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    /// `rule.severity()`.
    pub severity: Severity,
    pub subject: Subject,
    /// The source of the event that triggered the finding: the address
    /// inside a prefix, the attacker of an account, the address that
    /// logged in.
    pub source: Option<Source>,
    /// The user of the triggering event (for a success: the account that
    /// was logged into). Attacker-chosen text.
    pub user: Option<String>,
    /// The log time of the triggering event.
    pub at: Timestamp,
    /// The oldest failure counted in the rule's window (second resolution).
    pub first_seen: Timestamp,
    /// The newest failure counted in the rule's window (second resolution).
    pub last_seen: Timestamp,
    /// Failures counted in the rule's window. Exact up to the detector's
    /// ring capacity (the largest threshold), which it never exceeds.
    pub failures: u32,
    /// Failures of the subject since it was first tracked (saturating).
    pub total_failures: u32,
    /// Distinct user names among the counted failures (0 for an account).
    pub distinct_users: u32,
    /// Distinct source addresses among the counted failures (1 for an
    /// address or host name).
    pub distinct_sources: u32,
    /// Some of the user names tried (at most [`MAX_SAMPLE_USERS`], each at
    /// most [`MAX_SAMPLE_USER_BYTES`] bytes): best-effort evidence.
    pub sample_users: Vec<String>,
    /// The rule's threshold and window, for the report ("5 in 10m").
    pub threshold: u32,
    pub window: Window,
    /// Why the subject must never be acted on, if it is allowlisted. Such
    /// findings are recorded and shown, never turned into bans.
    pub allowlisted: Option<AllowReason>,
    /// The subject or the triggering source is an unresolved host name.
    pub unresolved: bool,
}

/// At most this many sample user names per finding.
pub const MAX_SAMPLE_USERS: usize = 5;
/// Sample user names are cut to this many bytes (at a character boundary).
pub const MAX_SAMPLE_USER_BYTES: usize = 64;

impl Finding {
    /// The network a ban would cover, or `None` if this finding must never
    /// lead to a ban: allowlisted subjects, host names and accounts. The
    /// policy layer decides whether to ban; this only says what could be.
    pub fn ban_target(&self) -> Option<IpNet> {
        if self.allowlisted.is_some() {
            return None;
        }
        match &self.subject {
            Subject::Addr(a) => Some(IpNet::from(*a)),
            Subject::Prefix(n) => Some(*n),
            Subject::Hostname(_) | Subject::User(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_stable_and_round_trip() {
        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "brute_force",
                "prefix_brute_force",
                "user_enumeration",
                "slow_brute_force",
                "account_attack",
                "success_after_failures"
            ]
        );
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(&rule.to_string()), Some(rule));
        }
        assert_eq!(Rule::from_name("bruteforce"), None);
    }

    #[test]
    fn only_success_after_failures_is_critical() {
        for rule in Rule::ALL {
            assert_eq!(
                rule.severity() == Severity::Critical,
                rule == Rule::SuccessAfterFailures,
                "{rule}"
            );
        }
        assert_eq!(Rule::BruteForce.severity(), Severity::High);
        assert_eq!(Rule::UserEnumeration.severity(), Severity::Medium);
    }
}
