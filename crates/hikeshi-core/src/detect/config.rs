//! The `[detect]` configuration: every threshold and window of the rules,
//! with the documented defaults, and [`Window`], a duration written the way
//! people write it ("10m", "24h", "1d", "1h30m").
//!
//! Deserialization checks each field where it is read, so a bad value is
//! reported with the key (and, in TOML, the line) that holds it;
//! [`DetectConfig::validate`] repeats the checks for configurations built in
//! code.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The largest threshold of any rule. Every tracked subject keeps one
/// timestamp per unit of the largest threshold, so this also bounds memory.
pub const MAX_THRESHOLD: u32 = 255;

/// The longest window accepted.
pub const MAX_WINDOW_SECS: u32 = 365 * 86_400;

/// A window length in whole seconds (detection works at one-second
/// resolution). Written as one or more `<number><unit>` groups with units
/// `s`, `m`, `h`, `d`, `w`: "90s", "10m", "1h30m", "24h", "7d".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    secs: u32,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WindowError {
    #[error("empty duration: expected e.g. \"10m\", \"24h\" or \"1d\"")]
    Empty,
    #[error(
        "invalid duration {0:?}: expected numbers each followed by a unit \
         (s, m, h, d or w), e.g. \"10m\", \"1h30m\", \"24h\""
    )]
    Syntax(String),
    #[error("duration {0:?} is zero: a window must be at least 1s")]
    Zero(String),
    #[error("duration {0:?} is longer than the maximum of 365d")]
    TooLong(String),
}

impl Window {
    /// A window of `secs` seconds. Panics on 0 or more than a year: use
    /// [`Window::parse`] for values that come from outside.
    pub const fn from_secs(secs: u32) -> Window {
        assert!(secs > 0 && secs <= MAX_WINDOW_SECS, "window out of range");
        Window { secs }
    }

    /// A window of `mins` minutes.
    pub const fn from_mins(mins: u32) -> Window {
        Window::from_secs(mins * 60)
    }

    /// A window of `hours` hours.
    pub const fn from_hours(hours: u32) -> Window {
        Window::from_secs(hours * 3600)
    }

    pub const fn as_secs(self) -> u32 {
        self.secs
    }

    pub fn to_duration(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::from(self.secs))
    }

    /// Parses "10m", "1h30m", "24h", "7d" (whitespace between groups is
    /// allowed).
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let shown = || shorten(text);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(WindowError::Empty);
        }
        let mut total: u64 = 0;
        let mut rest = trimmed;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 12 {
                return Err(WindowError::Syntax(shown()));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| WindowError::Syntax(shown()))?;
            rest = &rest[digits..];
            let unit = match rest.bytes().next() {
                Some(b's') => 1,
                Some(b'm') => 60,
                Some(b'h') => 3600,
                Some(b'd') => 86_400,
                Some(b'w') => 7 * 86_400,
                _ => return Err(WindowError::Syntax(shown())),
            };
            rest = rest[1..].trim_start();
            total = total.saturating_add(number.saturating_mul(unit));
        }
        if total == 0 {
            return Err(WindowError::Zero(shown()));
        }
        if total > u64::from(MAX_WINDOW_SECS) {
            return Err(WindowError::TooLong(shown()));
        }
        Ok(Window { secs: total as u32 })
    }
}

/// Echoes at most 40 characters of a bad value back in an error.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

impl fmt::Display for Window {
    /// The shortest exact form: 600 → "10m", 5400 → "1h30m", 86400 → "1d".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.secs;
        for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Window {
    type Err = WindowError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::parse(s)
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[detect]`: thresholds and windows of every rule. `Default` is the
/// documented configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Brute force: this many failures from one source within `findtime`.
    #[serde(deserialize_with = "maxretry")]
    pub maxretry: u32,
    /// The brute-force window (also used for prefixes).
    #[serde(deserialize_with = "findtime")]
    pub findtime: Window,
    /// IPv6 sources are also counted per prefix of this length, so a host
    /// rotating addresses inside its /64 is one attacker. 128 turns
    /// aggregation off. Accepted: 16..=128.
    #[serde(deserialize_with = "ipv6_prefix_len")]
    pub ipv6_prefix_len: u8,
    /// IPv4 sources are also counted per prefix of this length when set
    /// (e.g. 24). Accepted: 8..=32; 32 (or unset) turns it off.
    #[serde(deserialize_with = "ipv4_prefix_len")]
    pub ipv4_prefix_len: Option<u8>,
    /// Failures within `findtime` from two or more addresses of one prefix
    /// that make a prefix brute force.
    #[serde(deserialize_with = "prefix_maxretry")]
    pub prefix_maxretry: u32,
    /// Many distinct user names from one source.
    pub enumeration: EnumerationConfig,
    /// Brute force over a long window.
    pub slow: SlowConfig,
    /// One account attacked from many sources.
    pub spray: SprayConfig,
    /// A login from a source that has just failed many times.
    pub success_after_failures: SuccessConfig,
    /// Hard cap on tracked subjects (addresses, prefixes, host names and
    /// accounts together). At the cap the detector evicts, preferring
    /// subjects with nothing in any window, then those below every
    /// threshold, least recently seen first.
    #[serde(deserialize_with = "max_tracked")]
    pub max_tracked_sources: u32,
}

/// `[detect.enumeration]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnumerationConfig {
    /// Distinct user names in failures from one source within `findtime`.
    #[serde(deserialize_with = "enumeration_distinct_users")]
    pub distinct_users: u32,
    #[serde(deserialize_with = "enumeration_findtime")]
    pub findtime: Window,
}

/// `[detect.slow]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowConfig {
    /// Failures from one source within `findtime`.
    #[serde(deserialize_with = "slow_maxretry")]
    pub maxretry: u32,
    #[serde(deserialize_with = "slow_findtime")]
    pub findtime: Window,
}

/// `[detect.spray]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SprayConfig {
    /// Distinct sources failing on one account within `findtime`.
    #[serde(deserialize_with = "spray_distinct_sources")]
    pub distinct_sources: u32,
    #[serde(deserialize_with = "spray_findtime")]
    pub findtime: Window,
}

/// `[detect.success_after_failures]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuccessConfig {
    /// Failures from the source (or its prefix) within `findtime` before
    /// an accepted login that make it a possible compromise.
    #[serde(deserialize_with = "success_min_failures")]
    pub min_failures: u32,
    #[serde(deserialize_with = "success_findtime")]
    pub findtime: Window,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            maxretry: 5,
            findtime: Window::from_mins(10),
            ipv6_prefix_len: 64,
            ipv4_prefix_len: None,
            prefix_maxretry: 10,
            enumeration: EnumerationConfig::default(),
            slow: SlowConfig::default(),
            spray: SprayConfig::default(),
            success_after_failures: SuccessConfig::default(),
            max_tracked_sources: 1_200_000,
        }
    }
}

impl Default for EnumerationConfig {
    fn default() -> Self {
        EnumerationConfig { distinct_users: 10, findtime: Window::from_hours(1) }
    }
}

impl Default for SlowConfig {
    fn default() -> Self {
        SlowConfig { maxretry: 20, findtime: Window::from_hours(24) }
    }
}

impl Default for SprayConfig {
    fn default() -> Self {
        SprayConfig { distinct_sources: 10, findtime: Window::from_hours(1) }
    }
}

impl Default for SuccessConfig {
    fn default() -> Self {
        SuccessConfig { min_failures: 5, findtime: Window::from_hours(1) }
    }
}

/// A configuration value out of range, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("detect.{field}: {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl DetectConfig {
    /// The prefix `addr` (canonical) is also counted under: its IPv6
    /// prefix, its IPv4 prefix when one is configured, none at the full
    /// length.
    pub fn prefix_of(&self, addr: IpAddr) -> Option<IpNet> {
        let len = match addr {
            IpAddr::V4(_) => self.ipv4_prefix_len.filter(|&l| l < 32),
            IpAddr::V6(_) => Some(self.ipv6_prefix_len).filter(|&l| l < 128),
        };
        len.and_then(|len| IpNet::new(addr, len).ok()).map(|net| net.trunc())
    }

    /// Checks every range; deserialization already did, this is for
    /// configurations built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check =
            |field, value| check_threshold(value).map_err(|problem| ConfigError { field, problem });
        check("maxretry", self.maxretry)?;
        check("prefix_maxretry", self.prefix_maxretry)?;
        check("enumeration.distinct_users", self.enumeration.distinct_users)?;
        check("slow.maxretry", self.slow.maxretry)?;
        check("spray.distinct_sources", self.spray.distinct_sources)?;
        check("success_after_failures.min_failures", self.success_after_failures.min_failures)?;
        check_prefix(self.ipv6_prefix_len, 16, 128)
            .map_err(|problem| ConfigError { field: "ipv6_prefix_len", problem })?;
        if let Some(len) = self.ipv4_prefix_len {
            check_prefix(len, 8, 32)
                .map_err(|problem| ConfigError { field: "ipv4_prefix_len", problem })?;
        }
        check_max_tracked(self.max_tracked_sources)
            .map_err(|problem| ConfigError { field: "max_tracked_sources", problem })?;
        Ok(())
    }

    /// How many failure timestamps each subject keeps: the largest
    /// threshold, so that every rule's window count is exact up to it.
    pub fn ring_capacity(&self) -> u32 {
        [
            self.maxretry,
            self.prefix_maxretry,
            self.enumeration.distinct_users,
            self.slow.maxretry,
            self.spray.distinct_sources,
            self.success_after_failures.min_failures,
        ]
        .into_iter()
        .max()
        .unwrap_or(1)
    }

    /// The longest window of any rule: state older than this is useless.
    pub fn longest_window(&self) -> Window {
        [
            self.findtime,
            self.enumeration.findtime,
            self.slow.findtime,
            self.spray.findtime,
            self.success_after_failures.findtime,
        ]
        .into_iter()
        .max()
        .unwrap_or(self.findtime)
    }
}

fn check_threshold(value: u32) -> Result<(), String> {
    if (1..=MAX_THRESHOLD).contains(&value) {
        Ok(())
    } else {
        Err(format!("must be between 1 and {MAX_THRESHOLD}, got {value}"))
    }
}

fn check_prefix(len: u8, min: u8, max: u8) -> Result<(), String> {
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(format!("prefix length must be between {min} and {max}, got {len}"))
    }
}

fn check_max_tracked(value: u32) -> Result<(), String> {
    if value >= 1000 {
        Ok(())
    } else {
        Err(format!("must be at least 1000, got {value}"))
    }
}

/// Prefixes a deserialization error with the full name of its field, so
/// the message names it even where the format shows only the value.
fn named<E: serde::de::Error>(field: &str, problem: impl fmt::Display) -> E {
    E::custom(format_args!("detect.{field}: {}", problem.to_string().trim_end()))
}

fn threshold_of<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<u32, D::Error> {
    let value = i64::deserialize(d).map_err(|e| named(field, e))?;
    let value = u32::try_from(value).unwrap_or(u32::MAX);
    check_threshold(value).map_err(|problem| named(field, problem))?;
    Ok(value)
}

fn window_of<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Window, D::Error> {
    Window::deserialize(d).map_err(|e| named(field, e))
}

fn prefix_len_of<'de, D: Deserializer<'de>>(
    d: D,
    field: &str,
    min: u8,
    max: u8,
) -> Result<u8, D::Error> {
    let value = i64::deserialize(d).map_err(|e| named(field, e))?;
    let len = u8::try_from(value).unwrap_or(u8::MAX);
    check_prefix(len, min, max).map_err(|_| {
        named(field, format_args!("prefix length must be between {min} and {max}, got {value}"))
    })?;
    Ok(len)
}

/// One deserializer per field, each knowing its own name.
macro_rules! field_deserializers {
    ($($name:ident: $ty:ty = $helper:ident($field:literal $(, $arg:expr)*);)*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            $helper(d, $field $(, $arg)*)
        }
    )*};
}

field_deserializers! {
    maxretry: u32 = threshold_of("maxretry");
    findtime: Window = window_of("findtime");
    prefix_maxretry: u32 = threshold_of("prefix_maxretry");
    ipv6_prefix_len: u8 = prefix_len_of("ipv6_prefix_len", 16, 128);
    enumeration_distinct_users: u32 = threshold_of("enumeration.distinct_users");
    enumeration_findtime: Window = window_of("enumeration.findtime");
    slow_maxretry: u32 = threshold_of("slow.maxretry");
    slow_findtime: Window = window_of("slow.findtime");
    spray_distinct_sources: u32 = threshold_of("spray.distinct_sources");
    spray_findtime: Window = window_of("spray.findtime");
    success_min_failures: u32 = threshold_of("success_after_failures.min_failures");
    success_findtime: Window = window_of("success_after_failures.findtime");
}

fn ipv4_prefix_len<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    prefix_len_of(d, "ipv4_prefix_len", 8, 32).map(Some)
}

fn max_tracked<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let field = "max_tracked_sources";
    let value = i64::deserialize(d).map_err(|e| named(field, e))?;
    match u32::try_from(value) {
        Ok(value) if check_max_tracked(value).is_ok() => Ok(value),
        _ => Err(named(field, format_args!("must be between 1000 and {}, got {value}", u32::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_human_units() {
        for (text, secs) in [
            ("90s", 90),
            ("10m", 600),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("24h", 86_400),
            ("1d", 86_400),
            ("2w", 14 * 86_400),
            (" 5m ", 300),
        ] {
            assert_eq!(Window::parse(text).unwrap().as_secs(), secs, "{text}");
        }
    }

    #[test]
    fn windows_display_in_their_shortest_form() {
        for (secs, text) in [(600, "10m"), (5400, "1h30m"), (86_400, "1d"), (90_061, "1d1h1m1s")] {
            let window = Window::from_secs(secs);
            assert_eq!(window.to_string(), text);
            assert_eq!(Window::parse(text).unwrap(), window);
        }
    }

    #[test]
    fn bad_windows_are_refused_with_what_was_expected() {
        assert_eq!(Window::parse(""), Err(WindowError::Empty));
        for bad in ["10", "m", "10x", "10 m", "-5m", "1.5h", "ten minutes", "10m5"] {
            let err = Window::parse(bad).unwrap_err();
            assert!(matches!(err, WindowError::Syntax(_)), "{bad}: {err}");
            assert!(err.to_string().contains("10m"), "{err}");
        }
        assert!(matches!(Window::parse("0m"), Err(WindowError::Zero(_))));
        assert!(matches!(Window::parse("366d"), Err(WindowError::TooLong(_))));
        assert!(matches!(Window::parse("99999999999999999999s"), Err(WindowError::Syntax(_))));
        let long = "x".repeat(10_000);
        assert!(Window::parse(&long).unwrap_err().to_string().len() < 300);
    }

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let config = DetectConfig::default();
        config.validate().unwrap();
        assert_eq!(config.maxretry, 5);
        assert_eq!(config.findtime.as_secs(), 600);
        assert_eq!(config.ipv6_prefix_len, 64);
        assert_eq!(config.ipv4_prefix_len, None);
        assert_eq!(config.slow.maxretry, 20);
        assert_eq!(config.slow.findtime.as_secs(), 86_400);
        assert_eq!(config.ring_capacity(), 20);
        assert_eq!(config.longest_window().as_secs(), 86_400);
        assert!(config.max_tracked_sources >= 1_000_000);
    }

    #[test]
    fn validate_names_the_field() {
        let mut config = DetectConfig::default();
        config.slow.maxretry = 0;
        assert_eq!(config.validate().unwrap_err().field, "slow.maxretry");
        let config = DetectConfig { ipv6_prefix_len: 129, ..DetectConfig::default() };
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, "ipv6_prefix_len");
        assert!(err.to_string().contains("detect.ipv6_prefix_len"), "{err}");
        let config = DetectConfig { ipv4_prefix_len: Some(33), ..DetectConfig::default() };
        assert_eq!(config.validate().unwrap_err().field, "ipv4_prefix_len");
        let config = DetectConfig { maxretry: 256, ..DetectConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("between 1 and 255"));
    }

    #[test]
    fn deserializes_from_json_and_rejects_unknown_fields() {
        let config: DetectConfig = serde_json::from_str(
            r#"{"maxretry": 3, "findtime": "1h", "ipv4_prefix_len": 24,
                "slow": {"findtime": "7d"}}"#,
        )
        .unwrap();
        assert_eq!(config.maxretry, 3);
        assert_eq!(config.findtime.as_secs(), 3600);
        assert_eq!(config.ipv4_prefix_len, Some(24));
        assert_eq!(config.slow.maxretry, 20);
        assert_eq!(config.slow.findtime.as_secs(), 7 * 86_400);

        let err = serde_json::from_str::<DetectConfig>(r#"{"maxretries": 3}"#).unwrap_err();
        assert!(err.to_string().contains("maxretries"), "{err}");
        let err =
            serde_json::from_str::<DetectConfig>(r#"{"slow": {"window": "1d"}}"#).unwrap_err();
        assert!(err.to_string().contains("window"), "{err}");
        let err = serde_json::from_str::<DetectConfig>(r#"{"ipv6_prefix_len": 200}"#).unwrap_err();
        assert!(err.to_string().contains("between 16 and 128, got 200"), "{err}");
        let err = serde_json::from_str::<DetectConfig>(r#"{"maxretry": -1}"#).unwrap_err();
        assert!(err.to_string().contains("between 1 and 255"), "{err}");
        let err =
            serde_json::from_str::<DetectConfig>(r#"{"findtime": "10 minutes"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
