//! Ban policy: what a ban covers, how long it lasts and when it ends.
//!
//! [`BanTarget`] is the unit of containment: one address, or one network
//! (the IPv6 /64 an attacker rotates through). The rest is pure
//! arithmetic, with the current time always passed in: a first offence
//! gets `bantime`, each repeat multiplies it (`bantime *
//! multiplier^(offences-1)`), capped at `max_bantime`, and optionally the
//! N-th offence is banned permanently. The application crate remembers
//! offences across restarts and carries the decision out in the firewall.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::event::canonical_addr;

/// What one ban covers: a single address or a whole network, in
/// canonical form (IPv4-mapped IPv6 is IPv4, host bits are zero).
///
/// Printed, stored and serialized as the bare address when it is one
/// address (`203.0.113.5`, as before networks could be banned) and in
/// CIDR notation when it is a network (`2001:db8:1:2::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BanTarget(IpNet);

impl BanTarget {
    /// The single address `addr`.
    pub fn addr(addr: IpAddr) -> BanTarget {
        BanTarget(IpNet::from(canonical_addr(addr)))
    }

    /// The network `net` (a single address when its prefix is full).
    pub fn net(net: IpNet) -> BanTarget {
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                    .expect("a mapped prefix of at least 96 bits fits IPv4"),
                None => net,
            },
            _ => net,
        };
        BanTarget(net.trunc())
    }

    /// The network `addr` belongs to when networks of `prefix_len` bits
    /// are banned (the address itself when `prefix_len` is its family's
    /// full length or more).
    pub fn covering(addr: IpAddr, prefix_len: u8) -> BanTarget {
        let addr = canonical_addr(addr);
        let full = if addr.is_ipv4() { 32 } else { 128 };
        BanTarget::net(IpNet::new(addr, prefix_len.min(full)).expect("prefix length fits"))
    }

    /// The covered network (a /32 or /128 for one address).
    pub fn network(self) -> IpNet {
        self.0
    }

    /// The address, when the target is one address.
    pub fn single(self) -> Option<IpAddr> {
        (self.0.prefix_len() == self.0.max_prefix_len()).then(|| self.0.addr())
    }

    pub fn is_ipv4(self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// Whether `addr` is covered.
    pub fn contains(self, addr: IpAddr) -> bool {
        self.0.contains(&canonical_addr(addr))
    }
}

impl From<IpAddr> for BanTarget {
    fn from(addr: IpAddr) -> BanTarget {
        BanTarget::addr(addr)
    }
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Text that is neither an address nor a network in CIDR notation.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("not an IP address or network (CIDR): {0:?}")]
pub struct BanTargetError(pub String);

impl FromStr for BanTarget {
    type Err = BanTargetError;

    fn from_str(text: &str) -> Result<BanTarget, BanTargetError> {
        if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| BanTargetError(shorten(text)))?;
            Ok(BanTarget::net(net))
        } else {
            let addr: IpAddr = text.parse().map_err(|_| BanTargetError(shorten(text)))?;
            Ok(BanTarget::addr(addr))
        }
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

impl Serialize for BanTarget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BanTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BanTarget, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How long one ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BanLength {
    /// Ends after this long (never zero).
    For(Duration),
    /// Never ends on its own; only an unban lifts it.
    Permanent,
}

impl BanLength {
    /// When a ban of this length that starts at `now` ends (`None`: never).
    pub fn expires_at(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            BanLength::Permanent => None,
            BanLength::For(d) => {
                let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
                // Past the end of representable time is as good as permanent.
                now.checked_add(d).ok()
            }
        }
    }
}

impl std::fmt::Display for BanLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanLength::Permanent => f.write_str("permanent"),
            BanLength::For(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// The escalation policy for repeat offenders (the `[contain]` settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BanPolicy {
    /// Length of a first ban.
    pub bantime: Duration,
    /// Each further offence multiplies the previous length by this (≥ 1).
    pub multiplier: f64,
    /// No timed ban is longer than this.
    pub max_bantime: Duration,
    /// The N-th offence (and every later one) is permanent; `None`: never.
    pub permanent_after: Option<u32>,
}

impl Default for BanPolicy {
    fn default() -> Self {
        BanPolicy {
            bantime: Duration::from_secs(3600),
            multiplier: 2.0,
            max_bantime: Duration::from_secs(7 * 86_400),
            permanent_after: None,
        }
    }
}

/// A policy whose numbers make no sense.
#[derive(Debug, Error, PartialEq)]
pub enum PolicyError {
    #[error("bantime must be at least one second")]
    ZeroBantime,
    #[error("multiplier must be a finite number ≥ 1 (got {0})")]
    BadMultiplier(f64),
    #[error("max_bantime ({max}) is shorter than bantime ({bantime})")]
    MaxBelowBantime { bantime: String, max: String },
    #[error("permanent_after must be at least 1")]
    ZeroPermanentAfter,
}

impl BanPolicy {
    /// Checks that the numbers are usable.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.bantime.as_secs() == 0 {
            return Err(PolicyError::ZeroBantime);
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(PolicyError::BadMultiplier(self.multiplier));
        }
        if self.max_bantime < self.bantime {
            return Err(PolicyError::MaxBelowBantime {
                bantime: format_duration(self.bantime),
                max: format_duration(self.max_bantime),
            });
        }
        if self.permanent_after == Some(0) {
            return Err(PolicyError::ZeroPermanentAfter);
        }
        Ok(())
    }

    /// The length of the ban for an address's `offences`-th offence
    /// (1 = first). Offence 0 is treated as the first.
    pub fn length_for(&self, offences: u32) -> BanLength {
        let offences = offences.max(1);
        if self.permanent_after.is_some_and(|n| offences >= n) {
            return BanLength::Permanent;
        }
        // Computed in f64 seconds: exponents large enough to overflow end up
        // as infinity and are capped like any other long ban.
        let exponent = i32::try_from(offences - 1).unwrap_or(i32::MAX);
        let seconds = self.bantime.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = seconds.min(self.max_bantime.as_secs_f64());
        BanLength::For(Duration::from_secs(capped.round().max(1.0) as u64))
    }
}

/// How much of a ban that ends at `expires_at` is left at `now`: `None`
/// for a permanent ban, zero once it has ended.
pub fn remaining(expires_at: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    let end = expires_at?;
    let left = end.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// Whether a ban that ends at `expires_at` has ended at `now`.
pub fn is_expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|end| end <= now)
}

/// The later of two ends (`None` = permanent, which is later than any
/// time): extending a ban never shortens it.
pub fn later_end(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// A duration that could not be read.
#[derive(Debug, Error, PartialEq)]
#[error("invalid duration {text:?}: {why} (examples: 90s, 10m, 1h30m, 2d, 1w)")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

/// Reads a duration such as `90`, `90s`, `10m`, `1h30m`, `2d` or `1w`
/// (bare numbers are seconds). The units are s, m, h, d (24 h) and w.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError { text: text.chars().take(64).collect(), why };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(err("empty"));
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed.parse::<u64>().map(Duration::from_secs).map_err(|_| err("too large"));
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for b in trimmed.bytes() {
        match b {
            b'0'..=b'9' => {
                let digit = u64::from(b - b'0');
                let n = number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(digit));
                number = Some(n.ok_or_else(|| err("too large"))?);
            }
            b's' | b'm' | b'h' | b'd' | b'w' => {
                let n = number.take().ok_or_else(|| err("a unit needs a number before it"))?;
                let unit: u64 = match b {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86_400,
                    _ => 7 * 86_400,
                };
                total = n
                    .checked_mul(unit)
                    .and_then(|s| total.checked_add(s))
                    .ok_or_else(|| err("too large"))?;
            }
            _ => return Err(err("unexpected character")),
        }
    }
    if number.is_some() {
        return Err(err("a number without a unit after another unit"));
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration the way [`parse_duration`] reads it (`1h30m`, `2d`).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&(secs / unit).to_string());
            out.push(name);
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_targets_are_canonical_and_print_as_before_for_one_address() {
        let target = |s: &str| s.parse::<BanTarget>().unwrap();
        assert_eq!(target("::ffff:203.0.113.5").to_string(), "203.0.113.5");
        assert_eq!(target("203.0.113.5/32").to_string(), "203.0.113.5");
        assert_eq!(target("2001:0db8:1:2::9/64").to_string(), "2001:db8:1:2::/64");
        assert_eq!(target("::ffff:198.51.100.7/120").to_string(), "198.51.100.0/24");
        assert_eq!(target("203.0.113.5").single(), Some("203.0.113.5".parse().unwrap()));
        assert_eq!(target("2001:db8:1:2::/64").single(), None);
        assert!(target("2001:db8:1:2::/64").contains("2001:db8:1:2:ffff::1".parse().unwrap()));
        assert!(!target("2001:db8:1:2::/64").contains("2001:db8:1:3::1".parse().unwrap()));
        assert!(target("198.51.100.0/24").contains("::ffff:198.51.100.9".parse().unwrap()));
        assert_eq!(
            BanTarget::covering("2001:db8:1:2:3:4:5:6".parse().unwrap(), 64),
            target("2001:db8:1:2::/64")
        );
        assert_eq!(BanTarget::covering("203.0.113.5".parse().unwrap(), 64), target("203.0.113.5"));
        for bad in ["", "203.0.113", "2001:db8::/129", "10.0.0.0/33", "a/b", "1.2.3.4/"] {
            let err = bad.parse::<BanTarget>().unwrap_err();
            assert!(err.to_string().contains("not an IP address or network"), "{bad}");
        }
        let json = serde_json::to_string(&[target("203.0.113.5"), target("2001:db8::/64")]);
        assert_eq!(json.unwrap(), r#"["203.0.113.5","2001:db8::/64"]"#);
        let back: Vec<BanTarget> =
            serde_json::from_str(r#"["::ffff:203.0.113.5","2001:db8::1/64"]"#).unwrap();
        assert_eq!(back, [target("203.0.113.5"), target("2001:db8::/64")]);
        assert!(serde_json::from_str::<BanTarget>(r#""x""#).is_err());
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> BanPolicy {
        BanPolicy {
            bantime: secs(600),
            multiplier: 2.0,
            max_bantime: secs(3600),
            permanent_after: None,
        }
    }

    #[test]
    fn escalation_doubles_and_caps() {
        let p = policy();
        assert_eq!(p.length_for(0), BanLength::For(secs(600)));
        assert_eq!(p.length_for(1), BanLength::For(secs(600)));
        assert_eq!(p.length_for(2), BanLength::For(secs(1200)));
        assert_eq!(p.length_for(3), BanLength::For(secs(2400)));
        assert_eq!(p.length_for(4), BanLength::For(secs(3600)));
        assert_eq!(p.length_for(u32::MAX), BanLength::For(secs(3600)));
    }

    #[test]
    fn fractional_multiplier_and_no_escalation() {
        let p = BanPolicy { multiplier: 1.5, ..policy() };
        assert_eq!(p.length_for(2), BanLength::For(secs(900)));
        let flat = BanPolicy { multiplier: 1.0, ..policy() };
        assert_eq!(flat.length_for(50), BanLength::For(secs(600)));
    }

    #[test]
    fn permanent_after_n_offences() {
        let p = BanPolicy { permanent_after: Some(3), ..policy() };
        assert_eq!(p.length_for(2), BanLength::For(secs(1200)));
        assert_eq!(p.length_for(3), BanLength::Permanent);
        assert_eq!(p.length_for(9), BanLength::Permanent);
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert_eq!(
            BanPolicy { bantime: secs(0), ..policy() }.validate(),
            Err(PolicyError::ZeroBantime)
        );
        assert!(BanPolicy { multiplier: 0.5, ..policy() }.validate().is_err());
        assert!(BanPolicy { multiplier: f64::NAN, ..policy() }.validate().is_err());
        assert!(BanPolicy { max_bantime: secs(10), ..policy() }.validate().is_err());
        assert!(BanPolicy { permanent_after: Some(0), ..policy() }.validate().is_err());
        policy().validate().unwrap();
        BanPolicy::default().validate().unwrap();
    }

    #[test]
    fn expiry_arithmetic() {
        let now: Timestamp = "2026-01-15T10:33:14Z".parse().unwrap();
        let end = BanLength::For(secs(90)).expires_at(now).unwrap();
        assert_eq!(end.to_string(), "2026-01-15T10:34:44Z");
        assert_eq!(BanLength::Permanent.expires_at(now), None);
        assert_eq!(remaining(Some(end), now), Some(secs(90)));
        assert_eq!(remaining(Some(now), end), Some(Duration::ZERO));
        assert_eq!(remaining(None, now), None);
        assert!(!is_expired(Some(end), now));
        assert!(is_expired(Some(end), end));
        assert!(!is_expired(None, end));
        // A ban past the end of time is permanent rather than an error.
        assert_eq!(BanLength::For(Duration::MAX).expires_at(now), None);
    }

    #[test]
    fn extending_never_shortens() {
        let a: Timestamp = "2026-01-15T10:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-01-15T11:00:00Z".parse().unwrap();
        assert_eq!(later_end(Some(a), Some(b)), Some(b));
        assert_eq!(later_end(Some(b), Some(a)), Some(b));
        assert_eq!(later_end(None, Some(a)), None);
        assert_eq!(later_end(Some(a), None), None);
    }

    proptest::proptest! {
        #[test]
        fn lengths_never_shrink_and_respect_the_cap(
            bantime in 1u64..100_000,
            extra in 0u64..10_000_000,
            multiplier in 1.0f64..10.0,
            offences in 1u32..200,
        ) {
            let p = BanPolicy {
                bantime: secs(bantime),
                multiplier,
                max_bantime: secs(bantime + extra),
                permanent_after: None,
            };
            let (BanLength::For(now), BanLength::For(next)) = (p.length_for(offences), p.length_for(offences + 1)) else {
                panic!("no permanent_after, yet a permanent ban");
            };
            proptest::prop_assert!(now <= next);
            proptest::prop_assert!(now >= secs(bantime) && next <= p.max_bantime);
        }
    }

    #[test]
    fn durations_parse_and_format() {
        for (text, s) in [
            ("90", 90),
            ("90s", 90),
            ("10m", 600),
            ("1h30m", 5400),
            ("2d", 172_800),
            ("1w", 604_800),
            (" 1h ", 3600),
        ] {
            assert_eq!(parse_duration(text), Ok(secs(s)), "{text}");
        }
        for bad in ["", "h", "1x", "1h30", "-5s", "99999999999999999999s", "1.5h", "１h"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(90_061)), "1d1h1m1s");
        assert_eq!(format_duration(secs(0)), "0s");
        for s in [1, 59, 61, 3600, 86_399, 1_000_000] {
            assert_eq!(parse_duration(&format_duration(secs(s))), Ok(secs(s)));
        }
    }
}
