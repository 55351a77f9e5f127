//! The detector's state between runs: [`Detector::snapshot`] takes it,
//! [`DetectorSnapshot::to_bytes`] / [`DetectorSnapshot::from_bytes`] turn
//! it into a compact versioned blob and back, and [`Detector::restore`]
//! rebuilds a detector from it.
//!
//! `hikeshi scan` runs from cron on the lines written since its last run.
//! Restoring the previous run's snapshot before feeding the new lines makes
//! the two runs behave exactly like one detector fed both parts: failures
//! before and after the cut count together in their windows, and an episode
//! reported in one run is not reported again in the next. Everything the
//! detector's behaviour depends on is saved: every subject in slot order
//! (so evictions pick the same victims), its ring, episode state and
//! flags, the detector's "now", the eviction scan position, the sample
//! user names its rings refer to, and the cumulative [`DetectStats`].
//! The allowlist is not saved: findings are flagged with the allowlist
//! given to `restore`, so an allowlist edit applies from the next run on.
//!
//! # Format
//!
//! [`DetectorSnapshot`] is `Serialize + Deserialize` (JSON works, for
//! debugging). The blob of `to_bytes` is the 4 bytes `HKDS`, the version as
//! a little-endian `u32`, then the snapshot in `postcard` (varints, no
//! field names). Ring times are stored as the gap to the previous entry
//! (the first one's gap is from the subject's first failure), so most take
//! one or two bytes. A blob of another version is refused with
//! [`RestoreError::UnsupportedVersion`]; there is no migration: the caller
//! starts a fresh detector and says so.
//!
//! # A different configuration at restore time
//!
//! The snapshot records the [`DetectConfig`] it was made with. Restoring
//! with another one re-derives what it can and reports what it changed in
//! [`RestoreOutcome::reset_reason`]:
//! - the failure history (rings, totals) is kept; if the ring capacity
//!   shrank, each ring keeps its newest entries; if it grew, counts are
//!   exact again once new failures have refilled the rings;
//! - for each rule whose threshold or window changed, the episode state is
//!   cleared: the next failure re-evaluates the rule under the new
//!   thresholds, so an ongoing attack is reported once more rather than
//!   possibly never (a missed detection is worse than a duplicate);
//! - prefix subjects of a prefix length no longer configured are dropped
//!   (their counts mean nothing for the new prefixes);
//! - if more subjects are saved than `max_tracked_sources` allows, the
//!   usual eviction trims them (counted in the stats).
//!
//! Changing only `success_after_failures` or `max_tracked_sources` changes
//! nothing saved (a success is judged afresh each time).
//!
//! A snapshot comes from disk and is treated as hostile: `from_bytes` and
//! `restore` check every field and return [`RestoreError`] rather than
//! panic or build an inconsistent table.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::config::{
    ConfigError, DetectConfig, EnumerationConfig, SlowConfig, SprayConfig, SuccessConfig, Window,
    MAX_WINDOW_SECS,
};
use super::table::{Key, KeyRef, SavedMeta, ALL_FLAGS};
use super::{
    DetectStats, Detector, ACCOUNT_SPRAY, MAX_ACCOUNT_KEY_BYTES, MAX_HOST_KEY_BYTES,
    MAX_SAMPLE_USER_BYTES, PREFIX_BRUTE, SOURCE_BRUTE, SOURCE_ENUMERATION, SOURCE_SLOW,
};
use crate::allowlist::Allowlist;
use crate::event::canonical_addr;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// 2^53: more events than any log will ever hold.
const MAX_PLAUSIBLE_COUNTER: u64 = 1 << 53;

/// The first bytes of every blob from [`DetectorSnapshot::to_bytes`].
const MAGIC: [u8; 4] = *b"HKDS";

/// The saved state of a [`Detector`]. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorSnapshot {
    /// [`SNAPSHOT_VERSION`] when written.
    version: u32,
    config: SavedConfig,
    /// The detector's "now" (relative seconds, see `table`).
    now: u32,
    scan_from: u32,
    stats: DetectStats,
    /// In slot order.
    subjects: Vec<SavedSubject>,
    /// The sample user name of every tag some source ring refers to,
    /// ordered by tag.
    user_names: Vec<(u16, Box<str>)>,
}

/// [`DetectConfig`] as plain numbers (windows in seconds), so the format
/// does not depend on how the configuration file spells things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedConfig {
    maxretry: u32,
    findtime_secs: u32,
    ipv6_prefix_len: u8,
    ipv4_prefix_len: Option<u8>,
    prefix_maxretry: u32,
    enumeration_distinct_users: u32,
    enumeration_findtime_secs: u32,
    slow_maxretry: u32,
    slow_findtime_secs: u32,
    spray_distinct_sources: u32,
    spray_findtime_secs: u32,
    success_min_failures: u32,
    success_findtime_secs: u32,
    max_tracked_sources: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum SavedKey {
    Addr(IpAddr),
    Prefix(IpNet),
    Host(Box<str>),
    User(Box<str>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedSubject {
    key: SavedKey,
    first_seen: u32,
    total: u32,
    episode_until: [u32; 3],
    flags: u8,
    /// Oldest first, as (gap to the previous entry's time, tag); the first
    /// entry's gap is from `first_seen`. Never empty.
    ring: Vec<(u32, u16)>,
}

/// Why a snapshot could not be decoded or restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    #[error("not a hikeshi detector snapshot (it does not start with \"HKDS\")")]
    NotASnapshot,
    #[error(
        "detector snapshot version {found} is not supported (this build reads version \
         {supported}); start with a fresh detector"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    /// The bytes do not decode (truncated, trailing or garbled data).
    #[error("detector snapshot is malformed: {0}")]
    Malformed(String),
    /// The snapshot decodes but its content is impossible.
    #[error("detector snapshot is inconsistent: {0}")]
    Inconsistent(String),
    /// The configuration given to `restore` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A restored detector, and what had to change because the configuration
/// differs from the snapshot's (`None`: the state was restored exactly).
pub struct RestoreOutcome {
    pub detector: Detector,
    /// A sentence for the log saying what was re-derived or dropped.
    pub reset_reason: Option<String>,
}

impl DetectorSnapshot {
    /// The format version it was written with.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Subjects saved.
    pub fn tracked_subjects(&self) -> usize {
        self.subjects.len()
    }

    /// The compact binary form: `HKDS`, the version (`u32` little-endian),
    /// then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(64 + self.subjects.len() * 24);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&self.version.to_le_bytes());
        postcard::to_extend(self, bytes).expect("every field serializes to a Vec")
    }

    /// Decodes [`DetectorSnapshot::to_bytes`]. Never panics; the content
    /// is checked further by [`Detector::restore`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DetectorSnapshot, RestoreError> {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(RestoreError::NotASnapshot);
        }
        let header = bytes
            .get(4..8)
            .ok_or_else(|| RestoreError::Malformed("truncated header".to_string()))?;
        let found = u32::from_le_bytes(header.try_into().expect("four bytes"));
        if found != SNAPSHOT_VERSION {
            return Err(RestoreError::UnsupportedVersion { found, supported: SNAPSHOT_VERSION });
        }
        let (snapshot, rest): (DetectorSnapshot, _) = postcard::take_from_bytes(&bytes[8..])
            .map_err(|e| RestoreError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RestoreError::Malformed(format!("{} trailing bytes", rest.len())));
        }
        if snapshot.version != found {
            return Err(RestoreError::Malformed(format!(
                "header says version {found}, content says {}",
                snapshot.version
            )));
        }
        Ok(snapshot)
    }
}

impl Detector {
    /// Saves the whole detection state (not the allowlist). See the module
    /// documentation of `detect::snapshot`.
    pub fn snapshot(&self) -> DetectorSnapshot {
        let mut referenced = vec![false; 1 << 16];
        let mut subjects = Vec::with_capacity(self.table.len());
        for slot in 0..self.table.len() {
            let meta = self.table.meta(slot);
            let key = self.table.key(slot);
            let sampled = matches!(key, Key::Addr(_) | Key::Host(_));
            let mut ring: Vec<(u32, u16)> = self.table.newest_first(slot).collect();
            ring.reverse();
            let mut previous = meta.first_seen;
            for entry in &mut ring {
                let time = entry.0;
                entry.0 = time.wrapping_sub(previous);
                previous = time;
                if sampled {
                    referenced[entry.1 as usize] = true;
                }
            }
            subjects.push(SavedSubject {
                key: match key {
                    Key::Addr(a) => SavedKey::Addr(*a),
                    Key::Prefix(n) => SavedKey::Prefix(*n),
                    Key::Host(h) => SavedKey::Host(h.clone()),
                    Key::User(u) => SavedKey::User(u.clone()),
                },
                first_seen: meta.first_seen,
                total: meta.total,
                episode_until: meta.episode_until,
                flags: meta.flags,
                ring,
            });
        }
        let user_names = (1..=u16::MAX)
            .filter(|&tag| referenced[tag as usize])
            .filter_map(|tag| Some((tag, self.user_names[tag as usize].clone()?)))
            .collect();
        DetectorSnapshot {
            version: SNAPSHOT_VERSION,
            config: SavedConfig::from(&self.config),
            now: self.now,
            scan_from: self.scan_from as u32,
            stats: self.stats,
            subjects,
            user_names,
        }
    }

    /// Rebuilds a detector from `snapshot` with `config` and `allowlist`.
    /// With the snapshot's own configuration the detector behaves exactly
    /// as the one that was saved; otherwise see the module documentation
    /// of `detect::snapshot` for what is re-derived.
    pub fn restore(
        config: DetectConfig,
        allowlist: Allowlist,
        snapshot: DetectorSnapshot,
    ) -> Result<RestoreOutcome, RestoreError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(RestoreError::UnsupportedVersion {
                found: snapshot.version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let mut detector = Detector::new(config, allowlist)?;
        let saved = snapshot.config.to_config()?;
        let changes = Changes::between(&saved, &detector.config);
        let saved_capacity = saved.ring_capacity() as usize;
        let capacity = detector.table.capacity();
        let inconsistent = |index: usize, problem: &str| {
            RestoreError::Inconsistent(format!("subject {index}: {problem}"))
        };

        let (mut dropped_prefixes, mut shortened_rings) = (0usize, 0usize);
        let mut ring = Vec::with_capacity(saved_capacity);
        // Every saved subject took bytes of the blob, and no more than the
        // cap are kept for long.
        let max_tracked = detector.config.max_tracked_sources as usize;
        detector.table.reserve(snapshot.subjects.len().min(max_tracked));
        for (index, subject) in snapshot.subjects.iter().enumerate() {
            let key = subject.key.checked().map_err(|problem| inconsistent(index, problem))?;
            if subject.ring.is_empty() || subject.ring.len() > saved_capacity {
                return Err(inconsistent(index, "ring length out of range"));
            }
            if subject.flags & !ALL_FLAGS != 0 {
                return Err(inconsistent(index, "unknown flags"));
            }
            if subject.first_seen == 0 {
                return Err(inconsistent(index, "no first failure time"));
            }
            ring.clear();
            let mut time = subject.first_seen;
            for &(gap, tag) in &subject.ring {
                time = time.checked_add(gap).ok_or_else(|| inconsistent(index, "time overflow"))?;
                ring.push((time, tag));
            }
            if time > snapshot.now {
                return Err(inconsistent(index, "failure after the snapshot's now"));
            }
            if let KeyRef::Prefix(net) = key {
                if !detector.aggregates(net) {
                    dropped_prefixes += 1;
                    continue;
                }
            }
            if ring.len() > capacity {
                shortened_rings += 1;
            }
            let kept = &ring[ring.len().saturating_sub(capacity)..];
            let mut meta = SavedMeta {
                first_seen: subject.first_seen,
                total: subject.total,
                episode_until: subject.episode_until,
                flags: subject.flags,
            };
            for episode in changes.restarted_episodes(key) {
                meta.episode_until[episode] = 0;
                meta.flags &= !(1 << episode);
            }
            if detector.table.find(key).is_some() {
                return Err(inconsistent(index, "saved twice"));
            }
            detector.table.insert_saved(key, meta, kept);
        }

        let mut previous_tag = 0u16;
        for (tag, name) in &snapshot.user_names {
            if *tag <= previous_tag || name.len() > MAX_SAMPLE_USER_BYTES {
                return Err(RestoreError::Inconsistent(format!("user name of tag {tag}")));
            }
            previous_tag = *tag;
            detector.user_names[*tag as usize] = Some(name.clone());
        }

        detector.now = snapshot.now;
        let stats = snapshot.stats;
        let counters = [
            stats.events,
            stats.failures,
            stats.successes,
            stats.ignored,
            stats.out_of_order,
            stats.findings,
            stats.expired,
            stats.evictions,
            stats.hot_evictions,
        ];
        // Counters grow by one per event: anything near overflow is
        // corruption, and would panic at the next increment in a debug
        // build.
        if counters.iter().any(|&c| c > MAX_PLAUSIBLE_COUNTER) {
            return Err(RestoreError::Inconsistent("implausible stats counter".to_string()));
        }
        detector.stats = stats;
        detector.scan_from = snapshot.scan_from as usize;
        if detector.scan_from > snapshot.subjects.len() {
            return Err(RestoreError::Inconsistent("eviction scan position".to_string()));
        }
        if dropped_prefixes > 0 {
            detector.scan_from = 0;
        }
        let before = detector.table.len();
        while detector.table.len() > detector.config.max_tracked_sources as usize {
            detector.evict_one();
        }
        let trimmed = before - detector.table.len();

        let mut notes: Vec<String> = Vec::new();
        if changes.any_rule() {
            notes.push(
                "failure history kept, episodes of the changed rules restarted (an ongoing \
                 attack is reported once more)"
                    .to_string(),
            );
        }
        if capacity > saved_capacity && !snapshot.subjects.is_empty() {
            notes.push(format!(
                "rings grew from {saved_capacity} to {capacity} failures: counts above \
                 {saved_capacity} are exact once new failures arrive"
            ));
        }
        if shortened_rings > 0 {
            notes.push(format!("{shortened_rings} rings cut to their newest {capacity} failures"));
        }
        if dropped_prefixes > 0 {
            notes.push(format!(
                "{dropped_prefixes} prefixes of a length no longer configured dropped"
            ));
        }
        if trimmed > 0 {
            notes.push(format!("{trimmed} subjects evicted to fit max_tracked_sources"));
        }
        let reset_reason = match (notes.is_empty(), changes.fields.is_empty()) {
            (true, _) => None,
            (false, true) => Some(notes.join("; ")),
            (false, false) => Some(format!(
                "detect config changed since the snapshot ({}): {}",
                changes.fields.join(", "),
                notes.join("; ")
            )),
        };
        Ok(RestoreOutcome { detector, reset_reason })
    }

    /// Whether `net` is a prefix this detector's configuration counts.
    fn aggregates(&self, net: IpNet) -> bool {
        self.config.prefix_of(net.addr()) == Some(net)
    }
}

impl SavedKey {
    /// The key, if it is one the detector could have made.
    fn checked(&self) -> Result<KeyRef<'_>, &'static str> {
        match self {
            SavedKey::Addr(addr) if canonical_addr(*addr) == *addr => Ok(KeyRef::Addr(*addr)),
            SavedKey::Addr(_) => Err("address not canonical"),
            SavedKey::Prefix(net) if net.trunc() == *net => Ok(KeyRef::Prefix(*net)),
            SavedKey::Prefix(_) => Err("prefix has host bits"),
            SavedKey::Host(host) if host.len() <= MAX_HOST_KEY_BYTES => Ok(KeyRef::Host(host)),
            SavedKey::User(user) if user.len() <= MAX_ACCOUNT_KEY_BYTES => Ok(KeyRef::User(user)),
            SavedKey::Host(_) | SavedKey::User(_) => Err("name too long"),
        }
    }
}

/// What differs between the snapshot's configuration and the new one.
struct Changes {
    /// "maxretry 5 → 3", one per changed field.
    fields: Vec<String>,
    brute: bool,
    slow: bool,
    enumeration: bool,
    prefix: bool,
    spray: bool,
}

impl Changes {
    fn between(old: &DetectConfig, new: &DetectConfig) -> Changes {
        let mut fields = Vec::new();
        let mut differs = |name: &str, a: String, b: String| {
            if a != b {
                fields.push(format!("{name} {a} → {b}"));
                true
            } else {
                false
            }
        };
        let maxretry = differs("maxretry", old.maxretry.to_string(), new.maxretry.to_string());
        let findtime = differs("findtime", old.findtime.to_string(), new.findtime.to_string());
        let prefix_maxretry = differs(
            "prefix_maxretry",
            old.prefix_maxretry.to_string(),
            new.prefix_maxretry.to_string(),
        );
        differs(
            "ipv6_prefix_len",
            old.ipv6_prefix_len.to_string(),
            new.ipv6_prefix_len.to_string(),
        );
        differs(
            "ipv4_prefix_len",
            format!("{:?}", old.ipv4_prefix_len),
            format!("{:?}", new.ipv4_prefix_len),
        );
        let enumeration = differs(
            "enumeration",
            format!("{}/{}", old.enumeration.distinct_users, old.enumeration.findtime),
            format!("{}/{}", new.enumeration.distinct_users, new.enumeration.findtime),
        );
        let slow = differs(
            "slow",
            format!("{}/{}", old.slow.maxretry, old.slow.findtime),
            format!("{}/{}", new.slow.maxretry, new.slow.findtime),
        );
        let spray = differs(
            "spray",
            format!("{}/{}", old.spray.distinct_sources, old.spray.findtime),
            format!("{}/{}", new.spray.distinct_sources, new.spray.findtime),
        );
        let success = &old.success_after_failures;
        let new_success = &new.success_after_failures;
        differs(
            "success_after_failures",
            format!("{}/{}", success.min_failures, success.findtime),
            format!("{}/{}", new_success.min_failures, new_success.findtime),
        );
        differs(
            "max_tracked_sources",
            old.max_tracked_sources.to_string(),
            new.max_tracked_sources.to_string(),
        );
        Changes {
            fields,
            brute: maxretry || findtime,
            slow,
            enumeration,
            prefix: prefix_maxretry || findtime,
            spray,
        }
    }

    fn any_rule(&self) -> bool {
        self.brute || self.slow || self.enumeration || self.prefix || self.spray
    }

    /// The episode indices of `key` whose rule changed.
    fn restarted_episodes(&self, key: KeyRef<'_>) -> Vec<usize> {
        let candidates: &[(bool, usize)] = match key {
            KeyRef::Addr(_) | KeyRef::Host(_) => &[
                (self.brute, SOURCE_BRUTE),
                (self.slow, SOURCE_SLOW),
                (self.enumeration, SOURCE_ENUMERATION),
            ],
            KeyRef::Prefix(_) => &[(self.prefix, PREFIX_BRUTE)],
            KeyRef::User(_) => &[(self.spray, ACCOUNT_SPRAY)],
        };
        candidates.iter().filter(|(changed, _)| *changed).map(|&(_, index)| index).collect()
    }
}

impl From<&DetectConfig> for SavedConfig {
    fn from(c: &DetectConfig) -> SavedConfig {
        SavedConfig {
            maxretry: c.maxretry,
            findtime_secs: c.findtime.as_secs(),
            ipv6_prefix_len: c.ipv6_prefix_len,
            ipv4_prefix_len: c.ipv4_prefix_len,
            prefix_maxretry: c.prefix_maxretry,
            enumeration_distinct_users: c.enumeration.distinct_users,
            enumeration_findtime_secs: c.enumeration.findtime.as_secs(),
            slow_maxretry: c.slow.maxretry,
            slow_findtime_secs: c.slow.findtime.as_secs(),
            spray_distinct_sources: c.spray.distinct_sources,
            spray_findtime_secs: c.spray.findtime.as_secs(),
            success_min_failures: c.success_after_failures.min_failures,
            success_findtime_secs: c.success_after_failures.findtime.as_secs(),
            max_tracked_sources: c.max_tracked_sources,
        }
    }
}

impl SavedConfig {
    fn to_config(&self) -> Result<DetectConfig, RestoreError> {
        let window = |secs: u32| {
            if (1..=MAX_WINDOW_SECS).contains(&secs) {
                Ok(Window::from_secs(secs))
            } else {
                Err(RestoreError::Inconsistent(format!("saved window of {secs}s")))
            }
        };
        let config = DetectConfig {
            maxretry: self.maxretry,
            findtime: window(self.findtime_secs)?,
            ipv6_prefix_len: self.ipv6_prefix_len,
            ipv4_prefix_len: self.ipv4_prefix_len,
            prefix_maxretry: self.prefix_maxretry,
            enumeration: EnumerationConfig {
                distinct_users: self.enumeration_distinct_users,
                findtime: window(self.enumeration_findtime_secs)?,
            },
            slow: SlowConfig {
                maxretry: self.slow_maxretry,
                findtime: window(self.slow_findtime_secs)?,
            },
            spray: SprayConfig {
                distinct_sources: self.spray_distinct_sources,
                findtime: window(self.spray_findtime_secs)?,
            },
            success_after_failures: SuccessConfig {
                min_failures: self.success_min_failures,
                findtime: window(self.success_findtime_secs)?,
            },
            max_tracked_sources: self.max_tracked_sources,
        };
        config
            .validate()
            .map_err(|e| RestoreError::Inconsistent(format!("saved configuration: {e}")))?;
        Ok(config)
    }
}
