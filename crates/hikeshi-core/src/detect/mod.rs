//! Detection: authentication events in, [`Finding`]s out.
//!
//! [`Detector`] owns all detection state. It is fed [`AuthEvent`]s whose
//! outcome is resolved and counts failures per subject on *log time* (the
//! event's timestamp, never the clock), at one-second resolution.
//!
//! # Subjects and rules
//!
//! Every failure with a source is counted for:
//! - its source (an address, or an unresolved host name): [`Rule::BruteForce`]
//!   (`maxretry` in `findtime`), [`Rule::SlowBruteForce`] (`slow.maxretry`
//!   in `slow.findtime`), [`Rule::UserEnumeration`]
//!   (`enumeration.distinct_users` distinct user names in
//!   `enumeration.findtime`);
//! - the address's prefix (IPv6 /64 by default, IPv4 only if configured):
//!   [`Rule::PrefixBruteForce`] (`prefix_maxretry` in `findtime`, from at
//!   least two addresses of the prefix: one address alone is already its
//!   own brute force);
//! - its user name, if any: [`Rule::AccountAttack`]
//!   (`spray.distinct_sources` distinct sources in `spray.findtime`).
//!
//! One exception keeps a rotating IPv6 attacker from costing a subject per
//! line: an IPv6 address not tracked yet whose /64 is in an ongoing,
//! reported, not allowlisted prefix brute force is counted for the prefix
//! and its account only (with the default `ipv6_prefix_len` of 64, the
//! incidents' campaign unit, so every such failure still lands in the
//! prefix's incident, and a success from it is judged by the prefix).
//!
//! A success is checked against its source, then its prefix:
//! [`Rule::SuccessAfterFailures`] (`success_after_failures.min_failures`
//! failures in `success_after_failures.findtime`). A success never clears
//! the failure history. Context (and stray pending) events are ignored, and
//! so are events without a source.
//!
//! # Windows
//!
//! A rule's condition at time `x` counts failures at times in
//! `(x - findtime, x]`: a failure exactly `findtime` old no longer counts.
//! Each subject keeps its newest failures in a ring whose capacity is the
//! largest threshold, so the test "the N-th newest failure is newer than
//! `x - findtime`" is exact and O(1). Distinct counts (users, sources) are
//! taken over the failures still in the ring, so they are exact as long as
//! the window holds no more failures than the ring.
//!
//! Lines can arrive slightly out of order (merged files, a clock step). A
//! failure older than its subject's newest failure is counted at that
//! newest time: rings stay sorted, and a late line can only make a rule
//! fire earlier, never be missed.
//!
//! # When findings are emitted
//!
//! A rule's condition is evaluated after each failure of the subject
//! (several failures in the same second are successive instants) and holds
//! between failures until the oldest failure it needs leaves the window.
//! For each subject and rule, an *episode* is a maximal stretch during
//! which the condition holds without interruption. A finding
//! is emitted once per episode, by the event that starts it (the N-th
//! failure within the window), never by the further failures of the same
//! episode: those are the incident layer's business. After the condition
//! has stopped holding at any instant (the window emptied below the
//! threshold), the next crossing is a new episode and emits again. Two
//! rules defer their finding:
//! - a [`Rule::PrefixBruteForce`] episode emits at its first event where
//!   the window holds failures from two or more addresses;
//! - a [`Rule::SlowBruteForce`] episode that starts while a
//!   [`Rule::BruteForce`] episode of the same source is ongoing emits
//!   nothing: the fast finding already covers the slow one.
//!
//! [`Rule::SuccessAfterFailures`] is emitted for every success whose source
//! (or failing that, its prefix) has at least `min_failures` failures in
//! the window, except that after one is emitted for a subject, the next one
//! needs a new failure of that subject first (a compromised account logging
//! in five times is one finding; failing again and then logging in again is
//! a new one). It is an escalation: a subject already reported for brute
//! force gets a new, Critical finding.
//!
//! The findings of one event are pushed in this order: source rules
//! (BruteForce, SlowBruteForce, UserEnumeration), the prefix rule, the
//! account rule.
//!
//! The detector's "now" is the newest log time it has seen (or was given to
//! [`Detector::expire`]); it only decides what is stale. A line with a
//! forged far-future timestamp would make everything look stale, so sources
//! should refuse timestamps far from the clock before they get here.
//!
//! # Allowlist
//!
//! Allowlisted sources are counted like any other and their findings are
//! emitted with [`Finding::allowlisted`] set, so they are recorded and
//! shown; [`Finding::ban_target`] is `None` for them, for host names and
//! for accounts.
//!
//! # Between runs
//!
//! [`Detector::snapshot`] saves the whole state (not the allowlist) as a
//! [`DetectorSnapshot`]; [`DetectorSnapshot::to_bytes`] and
//! [`DetectorSnapshot::from_bytes`] make it a compact versioned blob, and
//! [`Detector::restore`] resumes from it: a run cut anywhere and resumed
//! gives exactly the findings of one uninterrupted run, and the
//! [`DetectStats`] are cumulative across runs. The allowlist given to
//! `restore` flags the findings from then on. A different configuration at
//! restore time is re-derived (see `snapshot`), and
//! [`RestoreOutcome::reset_reason`] says what changed.
//!
//! # Memory
//!
//! At most `max_tracked_sources` subjects (of every kind) are tracked.
//! [`Detector::expire`] forgets subjects with nothing left in any window.
//! When the table is full, a new subject evicts one of the next
//! [`EVICTION_SCAN`] slots of a rotating scan: preferably one with nothing
//! in any window, then the least recently seen among those that are not
//! *hot* (in an episode of any rule, or with enough failures to make a
//! success Critical), and only if all of them are hot, the least recently
//! seen hot one. Every eviction is counted in [`DetectStats`], hot ones
//! separately: a non-zero `hot_evictions` means the cap is too low for the
//! attack.

mod config;
mod finding;
mod snapshot;
mod table;

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use config::{
    ConfigError, DetectConfig, EnumerationConfig, SlowConfig, SprayConfig, SuccessConfig, Window,
    WindowError, MAX_THRESHOLD, MAX_WINDOW_SECS,
};
pub use finding::{Finding, Rule, Subject, MAX_SAMPLE_USERS, MAX_SAMPLE_USER_BYTES};
pub use snapshot::{DetectorSnapshot, RestoreError, RestoreOutcome, SNAPSHOT_VERSION};

use crate::allowlist::Allowlist;
use crate::event::{canonical_addr, AuthEvent, Outcome, Source};
use table::{Key, KeyRef, Table, SUCCESS_REPORTED, TIME_BASE};

/// How many slots an eviction looks at.
pub const EVICTION_SCAN: usize = 32;

/// Account names longer than this are tracked by their first this-many
/// bytes, so a hostile 1 MiB user name costs no more than a short one.
const MAX_ACCOUNT_KEY_BYTES: usize = 128;
/// Host names are at most 255 bytes in DNS; longer ones are cut.
const MAX_HOST_KEY_BYTES: usize = 255;

/// Episode indices in [`table::Meta::episode_until`], per subject kind.
const SOURCE_BRUTE: usize = 0;
const SOURCE_SLOW: usize = 1;
const SOURCE_ENUMERATION: usize = 2;
const PREFIX_BRUTE: usize = 0;
const ACCOUNT_SPRAY: usize = 0;

/// Counters about what the detector saw and did. They are cumulative:
/// a snapshot carries them into the next run (subtract two values to get
/// one run's share).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectStats {
    /// Events given to [`Detector::observe`].
    pub events: u64,
    pub failures: u64,
    pub successes: u64,
    /// Context and pending events, and events without a source.
    pub ignored: u64,
    /// Failures counted at a later time than their own (out of order).
    pub out_of_order: u64,
    pub findings: u64,
    /// Subjects forgotten by [`Detector::expire`] or at eviction because
    /// nothing of them was left in any window.
    pub expired: u64,
    /// Subjects evicted at the cap while they still had failures in a
    /// window.
    pub evictions: u64,
    /// Of those, subjects that were hot (see the module documentation).
    pub hot_evictions: u64,
}

/// The detection state machine. See the module documentation.
pub struct Detector {
    config: DetectConfig,
    allowlist: Allowlist,
    table: Table,
    /// The last user name seen for each 16-bit user tag, for the samples in
    /// findings.
    user_names: Vec<Option<Box<str>>>,
    /// The newest log time seen (relative seconds).
    now: u32,
    /// Longest window, in seconds.
    longest: u32,
    /// Where the next eviction scan starts.
    scan_from: usize,
    stats: DetectStats,
}

/// A rule's evaluation after an event: whether its condition holds, and
/// if so until when (exclusive) given the failures seen so far.
type Condition = Option<u32>;

impl Detector {
    /// A detector with `config`; `allowlist` only flags findings.
    pub fn new(config: DetectConfig, allowlist: Allowlist) -> Result<Detector, ConfigError> {
        config.validate()?;
        Ok(Detector {
            table: Table::new(config.ring_capacity()),
            longest: config.longest_window().as_secs(),
            config,
            allowlist,
            user_names: vec![None; 1 << 16],
            now: 0,
            scan_from: 0,
            stats: DetectStats::default(),
        })
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    pub fn stats(&self) -> DetectStats {
        self.stats
    }

    /// Subjects tracked now: addresses, host names, prefixes and accounts.
    pub fn tracked_subjects(&self) -> usize {
        self.table.len()
    }

    /// Feeds one event; appends the findings it triggers to `out`.
    pub fn observe(&mut self, event: &AuthEvent, out: &mut Vec<Finding>) {
        self.stats.events += 1;
        let before = out.len();
        match (&event.source, event.outcome) {
            (Some(source), Outcome::Failure) => self.on_failure(event, source, out),
            (Some(source), Outcome::Success) => self.on_success(event, source, out),
            _ => self.stats.ignored += 1,
        }
        self.stats.findings += (out.len() - before) as u64;
    }

    /// Forgets every subject with nothing left in any window at `now` (log
    /// time). Call it periodically (each minute of log time is plenty):
    /// it scans the whole table.
    pub fn expire(&mut self, now: Timestamp) {
        self.now = self.now.max(rel_time(now));
        let mut slot = 0;
        while slot < self.table.len() {
            if self.is_stale(slot) {
                self.table.remove(slot);
                self.stats.expired += 1;
            } else {
                slot += 1;
            }
        }
        self.scan_from = 0;
    }

    fn on_failure(&mut self, event: &AuthEvent, source: &Source, out: &mut Vec<Finding>) {
        self.stats.failures += 1;
        let time = rel_time(event.time);
        self.now = self.now.max(time);
        let user = event.user.as_deref();
        let user_tag = user.map_or(0, |u| self.remember_user(u));
        let source_key = source_key(source);

        let slot = match self.table.find(source_key) {
            Some(slot) => Some(slot),
            None if self.counted_by_prefix_only(source_key, time) => None,
            None => Some(self.track(source_key)),
        };
        if let Some(slot) = slot {
            let at = self.table.push(slot, time, user_tag);
            if at != time {
                self.stats.out_of_order += 1;
            }
            self.table.meta_mut(slot).flags &= !SUCCESS_REPORTED;
            self.source_rules(slot, at, event, out);
        }

        if let Source::Addr(addr) = source {
            let addr = canonical_addr(*addr);
            let addr_tag = tag_of(&addr_bytes(addr));
            if let Some(net) = self.config.prefix_of(addr) {
                let slot = self.slot_for(KeyRef::Prefix(net));
                let at = self.table.push(slot, time, addr_tag);
                self.table.meta_mut(slot).flags &= !SUCCESS_REPORTED;
                self.prefix_rule(slot, at, event, out);
            }
        }

        if let Some(user) = user {
            let source_tag = match source {
                Source::Addr(a) => tag_of(&addr_bytes(canonical_addr(*a))),
                Source::Hostname(h) => tag_of(h.as_bytes()),
            };
            let slot = self.slot_for(KeyRef::User(truncate(user, MAX_ACCOUNT_KEY_BYTES)));
            let at = self.table.push(slot, time, source_tag);
            self.account_rule(slot, at, event, out);
        }
    }

    /// Whether a failure of `source` (not tracked) at `time` is counted for its prefix
    /// (and account) only, without a subject of its own: an IPv6 address
    /// not tracked yet, whose /64 is in an ongoing, reported prefix brute
    /// force that is not allowlisted. Such a prefix is one attacker whose
    /// incident (the /64 campaign) takes every further failure and whose
    /// ban covers the address; a subject per address it rotates through
    /// would only grow the table by one subject per line. Addresses tracked
    /// before the episode began keep counting on their own.
    fn counted_by_prefix_only(&self, source: KeyRef<'_>, time: u32) -> bool {
        let KeyRef::Addr(addr @ IpAddr::V6(_)) = source else { return false };
        if self.config.ipv6_prefix_len != crate::incident::IPV6_CAMPAIGN_PREFIX {
            return false;
        }
        let Some(net) = self.config.prefix_of(addr) else { return false };
        let Some(prefix) = self.table.find(KeyRef::Prefix(net)) else { return false };
        let meta = self.table.meta(prefix);
        let ongoing_until = meta.episode_until[PREFIX_BRUTE];
        ongoing_until != 0
            && time.max(meta.last_seen) <= ongoing_until
            && self.emitted(prefix, PREFIX_BRUTE)
            && self.allowlist.check_net(net).is_none()
    }

    fn on_success(&mut self, event: &AuthEvent, source: &Source, out: &mut Vec<Finding>) {
        self.stats.successes += 1;
        let time = rel_time(event.time);
        self.now = self.now.max(time);
        let mut candidates = Vec::with_capacity(3);
        candidates.extend(self.table.find(source_key(source)));
        if let Source::Addr(addr) = source {
            if let Some(net) = self.config.prefix_of(canonical_addr(*addr)) {
                candidates.extend(self.table.find(KeyRef::Prefix(net)));
            }
        }
        let needed = self.config.success_after_failures.min_failures;
        let window = self.config.success_after_failures.findtime;
        for slot in candidates {
            let meta = self.table.meta(slot);
            // A success logged a little before the newest failure is
            // judged at that failure's time, like a late failure would be.
            let at = time.max(meta.last_seen);
            if self.count_condition(slot, needed, window, at).is_none() {
                continue;
            }
            if meta.flags & SUCCESS_REPORTED == 0 {
                self.table.meta_mut(slot).flags |= SUCCESS_REPORTED;
                let finding =
                    self.finding(Rule::SuccessAfterFailures, slot, at, event, needed, window);
                out.push(finding);
            }
            // The most specific subject with enough failures speaks for the
            // success, reported or not.
            return;
        }
    }

    fn source_rules(&mut self, slot: usize, at: u32, event: &AuthEvent, out: &mut Vec<Finding>) {
        let c = &self.config;
        let (maxretry, findtime) = (c.maxretry, c.findtime);
        let (slow_retry, slow_time) = (c.slow.maxretry, c.slow.findtime);
        let (users, users_time) = (c.enumeration.distinct_users, c.enumeration.findtime);

        let brute = self.count_condition(slot, maxretry, findtime, at);
        if self.advance(slot, SOURCE_BRUTE, brute, at) {
            self.emit(Rule::BruteForce, slot, SOURCE_BRUTE, at, event, maxretry, findtime, out);
        }

        let slow = self.count_condition(slot, slow_retry, slow_time, at);
        if self.advance(slot, SOURCE_SLOW, slow, at) {
            if brute.is_some() {
                self.mark_emitted(slot, SOURCE_SLOW);
            } else {
                self.emit(
                    Rule::SlowBruteForce,
                    slot,
                    SOURCE_SLOW,
                    at,
                    event,
                    slow_retry,
                    slow_time,
                    out,
                );
            }
        }

        let enumeration = self.distinct_condition(slot, users, users_time, at);
        if self.advance(slot, SOURCE_ENUMERATION, enumeration, at) {
            self.emit(
                Rule::UserEnumeration,
                slot,
                SOURCE_ENUMERATION,
                at,
                event,
                users,
                users_time,
                out,
            );
        }
    }

    fn prefix_rule(&mut self, slot: usize, at: u32, event: &AuthEvent, out: &mut Vec<Finding>) {
        let (needed, findtime) = (self.config.prefix_maxretry, self.config.findtime);
        let condition = self.count_condition(slot, needed, findtime, at);
        self.advance(slot, PREFIX_BRUTE, condition, at);
        if condition.is_some()
            && !self.emitted(slot, PREFIX_BRUTE)
            && self.distinct_condition(slot, 2, findtime, at).is_some()
        {
            self.emit(Rule::PrefixBruteForce, slot, PREFIX_BRUTE, at, event, needed, findtime, out);
        }
    }

    fn account_rule(&mut self, slot: usize, at: u32, event: &AuthEvent, out: &mut Vec<Finding>) {
        let (needed, findtime) = (self.config.spray.distinct_sources, self.config.spray.findtime);
        let condition = self.distinct_condition(slot, needed, findtime, at);
        if self.advance(slot, ACCOUNT_SPRAY, condition, at) {
            self.emit(Rule::AccountAttack, slot, ACCOUNT_SPRAY, at, event, needed, findtime, out);
        }
    }

    /// Does the window `(at - findtime, at]` hold `needed` failures? If so,
    /// until when does it (exclusive): the `needed`-th newest failure
    /// leaves the window at its time plus `findtime`.
    fn count_condition(&self, slot: usize, needed: u32, findtime: Window, at: u32) -> Condition {
        let (time, _) = self.table.nth_newest(slot, needed as usize)?;
        let until = time.saturating_add(findtime.as_secs());
        (until > at).then_some(until)
    }

    /// Does the window hold failures with `needed` distinct non-zero tags?
    /// If so, until when: walking from the newest failure, the one that
    /// brings the `needed`-th distinct tag leaves the window last.
    ///
    /// Most calls are answered by the subject's bound on its distinct tags
    /// (see [`table::Meta::distinct_bound`]) without a walk: an attacker
    /// who repeats a few user names stays far below the threshold. A walk
    /// that ends below the threshold counts every tag in the window, so
    /// the bound it leaves is exact.
    fn distinct_condition(
        &mut self,
        slot: usize,
        needed: u32,
        findtime: Window,
        at: u32,
    ) -> Condition {
        let needed = needed as usize;
        if usize::from(self.table.meta(slot).distinct_bound) < needed {
            return None;
        }
        let ring = self.table.ring(slot);
        let held = ring.len();
        let mut seen = [0u16; MAX_THRESHOLD as usize];
        // A 64-bit filter over the tags seen so far: a tag whose bit is
        // clear is certainly new, so most tags skip the linear search.
        let mut filter = 0u64;
        let mut distinct = 0usize;
        for i in 0..held {
            let (time, tag) = ring.newest(i);
            let until = time.saturating_add(findtime.as_secs());
            if until <= at {
                break;
            }
            if tag == 0 {
                continue;
            }
            let bit = 1u64 << (tag & 63);
            if filter & bit != 0 && seen[..distinct].contains(&tag) {
                continue;
            }
            filter |= bit;
            seen[distinct] = tag;
            distinct += 1;
            if distinct == needed {
                self.table.meta_mut(slot).distinct_bound = table::DISTINCT_UNKNOWN;
                return Some(until);
            }
        }
        // Below `needed`, so below DISTINCT_UNKNOWN.
        self.table.meta_mut(slot).distinct_bound = distinct as u8;
        None
    }

    /// Moves episode `index` of `slot` past an event at `at` whose
    /// condition is `condition`; returns true when the event starts an
    /// episode. The episode goes on if the condition held without a break
    /// since the previous event: it held until the `until` stored then,
    /// exclusive, so it is unbroken iff `at <= until`.
    fn advance(&mut self, slot: usize, index: usize, condition: Condition, at: u32) -> bool {
        let meta = self.table.meta_mut(slot);
        let previous = meta.episode_until[index];
        let ongoing = previous != 0 && at <= previous;
        meta.episode_until[index] = condition.unwrap_or(0);
        let starts = condition.is_some() && !ongoing;
        if starts {
            meta.flags &= !(1 << index);
        }
        starts
    }

    fn emitted(&self, slot: usize, index: usize) -> bool {
        self.table.meta(slot).flags & (1 << index) != 0
    }

    fn mark_emitted(&mut self, slot: usize, index: usize) {
        self.table.meta_mut(slot).flags |= 1 << index;
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        rule: Rule,
        slot: usize,
        index: usize,
        at: u32,
        event: &AuthEvent,
        threshold: u32,
        window: Window,
        out: &mut Vec<Finding>,
    ) {
        self.mark_emitted(slot, index);
        out.push(self.finding(rule, slot, at, event, threshold, window));
    }

    /// Builds the finding of `rule` on `slot`, with the evidence in the
    /// rule's window ending at `at`.
    fn finding(
        &self,
        rule: Rule,
        slot: usize,
        at: u32,
        event: &AuthEvent,
        threshold: u32,
        window: Window,
    ) -> Finding {
        let key = self.table.key(slot);
        let mut failures = 0u32;
        let (mut oldest, mut newest) = (0u32, 0u32);
        let mut tags: Vec<u16> = Vec::new();
        for (time, tag) in self.table.newest_first(slot) {
            if time.saturating_add(window.as_secs()) <= at {
                break;
            }
            failures += 1;
            if newest == 0 {
                newest = time;
            }
            oldest = time;
            if tag != 0 && !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let distinct = tags.len() as u32;
        let (subject, distinct_users, distinct_sources, sample_users, allowlisted) = match key {
            Key::Addr(addr) => (
                Subject::Addr(*addr),
                distinct,
                1,
                self.samples(&tags),
                self.allowlist.check(*addr),
            ),
            Key::Host(host) => {
                (Subject::Hostname(host.to_string()), distinct, 1, self.samples(&tags), None)
            }
            Key::Prefix(net) => (
                Subject::Prefix(*net),
                0,
                distinct,
                event.user.iter().map(|u| sample(u)).collect(),
                self.allowlist.check_net(*net),
            ),
            Key::User(user) => {
                (Subject::User(user.to_string()), 1, distinct, vec![sample(user)], None)
            }
        };
        let unresolved = matches!(subject, Subject::Hostname(_))
            || event.source.as_ref().is_some_and(Source::is_unresolved);
        let meta = self.table.meta(slot);
        Finding {
            rule,
            severity: rule.severity(),
            subject,
            source: event.source.clone(),
            user: event.user.clone(),
            at: event.time,
            first_seen: abs_time(oldest),
            last_seen: abs_time(newest),
            failures,
            total_failures: meta.total,
            distinct_users,
            distinct_sources,
            sample_users,
            threshold,
            window,
            allowlisted,
            unresolved,
        }
    }

    fn samples(&self, tags: &[u16]) -> Vec<String> {
        tags.iter()
            .filter_map(|&tag| self.user_names[tag as usize].as_deref())
            .take(MAX_SAMPLE_USERS)
            .map(str::to_string)
            .collect()
    }

    /// The 16-bit tag of `user`, remembering the name for samples.
    fn remember_user(&mut self, user: &str) -> u16 {
        let tag = tag_of(user.as_bytes());
        let name = truncate(user, MAX_SAMPLE_USER_BYTES);
        let entry = &mut self.user_names[tag as usize];
        if entry.as_deref() != Some(name) {
            *entry = Some(name.into());
        }
        tag
    }

    /// The slot of `key`, tracking it (and evicting at the cap) if new.
    fn slot_for(&mut self, key: KeyRef<'_>) -> usize {
        match self.table.find(key) {
            Some(slot) => slot,
            None => self.track(key),
        }
    }

    /// Tracks `key`, which is not tracked yet (evicting at the cap).
    fn track(&mut self, key: KeyRef<'_>) -> usize {
        if self.table.len() >= self.config.max_tracked_sources as usize {
            self.evict_one();
        }
        self.table.insert(key)
    }

    /// Nothing of the subject is left in any window.
    fn is_stale(&self, slot: usize) -> bool {
        u64::from(self.table.meta(slot).last_seen) + u64::from(self.longest) <= u64::from(self.now)
    }

    /// In an episode of any rule, or able to make a success Critical.
    fn is_hot(&self, slot: usize) -> bool {
        let meta = self.table.meta(slot);
        if meta.episode_until.iter().any(|&until| until > self.now) {
            return true;
        }
        let success = &self.config.success_after_failures;
        matches!(self.table.key(slot), Key::Addr(_) | Key::Host(_) | Key::Prefix(_))
            && self
                .count_condition(slot, success.min_failures, success.findtime, self.now)
                .is_some()
    }

    fn evict_one(&mut self) {
        let len = self.table.len();
        if len == 0 {
            return;
        }
        let mut best: Option<(bool, u32, usize)> = None;
        for step in 0..EVICTION_SCAN.min(len) {
            let slot = (self.scan_from + step) % len;
            if self.is_stale(slot) {
                self.scan_from = slot;
                self.table.remove(slot);
                self.stats.expired += 1;
                return;
            }
            let rank = (self.is_hot(slot), self.table.meta(slot).last_seen, slot);
            if best.map_or(true, |b| (rank.0, rank.1) < (b.0, b.1)) {
                best = Some(rank);
            }
        }
        self.scan_from = (self.scan_from + EVICTION_SCAN) % len;
        if let Some((hot, _, slot)) = best {
            self.table.remove(slot);
            self.stats.evictions += 1;
            if hot {
                self.stats.hot_evictions += 1;
            }
        }
    }
}

fn source_key(source: &Source) -> KeyRef<'_> {
    match source {
        Source::Addr(addr) => KeyRef::Addr(canonical_addr(*addr)),
        Source::Hostname(host) => KeyRef::Host(truncate(host, MAX_HOST_KEY_BYTES)),
    }
}

fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A non-zero 16-bit tag (FNV-1a folded). Deterministic, so replays give
/// the same findings; a collision can only hide one distinct name or
/// source, and an attacker gains nothing by choosing names that collide.
fn tag_of(bytes: &[u8]) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let folded = (hash ^ (hash >> 16) ^ (hash >> 32) ^ (hash >> 48)) as u16;
    folded.max(1)
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn sample(user: &str) -> String {
    truncate(user, MAX_SAMPLE_USER_BYTES).to_string()
}

/// Seconds since [`TIME_BASE`], plus one, clamped to `1..=u32::MAX`.
fn rel_time(time: Timestamp) -> u32 {
    (time.as_second() - TIME_BASE + 1).clamp(1, i64::from(u32::MAX)) as u32
}

fn abs_time(rel: u32) -> Timestamp {
    Timestamp::from_second(i64::from(rel.max(1)) - 1 + TIME_BASE)
        .expect("every u32 offset from 2000 is a valid timestamp")
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
