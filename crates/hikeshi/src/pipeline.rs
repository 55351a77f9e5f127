//! The path every parsed event takes after the parser: detection, the
//! incident record, alert facts and ban requests.
//!
//! `hikeshi scan` drives it over files and `hikeshi watch` over live
//! sources. It owns the detector and the lines seen before a detection (so
//! that the incident a finding opens carries the attempts that led to it),
//! and writes through one store [`Batch`] at a time: nothing it decides is
//! visible until the caller commits the batch together with its cursors.
//! Containment and alert delivery happen after the commit, in
//! [`crate::respond`], so a slow firewall or mail server never holds the
//! database or the reader.
//!
//! What makes a line count:
//! - a finding whose campaign has no open incident opens one, with the
//!   lines buffered for that campaign as its first evidence;
//! - a finding for an open incident merges into it (an escalation when
//!   its severity is higher);
//! - every further failure of a campaign with an open incident is one
//!   more attempt, with its line as evidence (bounded by the store's cap,
//!   always counted and digested).
//!
//! What it asks to ban: the address of a finding, or with network bans
//! ([`BanPlan::networks`]) the whole prefix of a prefix finding; a further
//! attempt of a campaign that asked for bans bans its new address, or its
//! prefix once a prefix rule fired (an IPv6 host rotating through its
//! /64), unless a ban covering it is still running.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use hikeshi_core::allowlist::Allowlist;
use hikeshi_core::contain::BanTarget;
use hikeshi_core::detect::{DetectConfig, Detector, Finding, Rule, Subject};
use hikeshi_core::incident::{
    CampaignKey, Change, Evidence, EvidenceRef, IncidentId, Observation, Sha256Digest, SubjectKind,
};
use hikeshi_core::{AuthEvent, Outcome, Severity, Source};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::pipeline_memory::AskedBans;
use crate::store::{Batch, StoreError};

/// Store key of the detector's state between runs.
pub const DETECTOR_STATE_KEY: &str = "pipeline.detector";
/// Store key of the lines buffered before a detection, between runs.
pub const PENDING_STATE_KEY: &str = "pipeline.pending";

/// The hasher of the per-line maps: foldhash with a random per-process
/// seed (the keys are attacker-chosen), much cheaper than SipHash.
type FastHash = foldhash::fast::RandomState;

/// Lines kept per campaign before its incident opens: the longest run of
/// failures any rule needs to see (the detector's ring).
const PENDING_LINES_PER_CAMPAIGN: usize = 32;
/// Campaigns with buffered lines at most; past it, the stalest go first.
const PENDING_CAMPAIGNS_MAX: usize = 100_000;
/// Bytes of buffered lines at most (see [`PendingLine::cost`]): 16 MiB,
/// about 60,000 typical lines; past it, the stalest campaigns go first
/// (down to three quarters), so that many sources each failing a few
/// times below any threshold (or hostile long lines) cannot grow it.
pub const PENDING_BYTES_MAX: usize = 16 << 20;

/// Which findings ask for a ban.
#[derive(Debug, Clone)]
pub struct BanPlan {
    /// False: detect and record only.
    pub enabled: bool,
    /// The rules whose findings ban their source.
    pub rules: HashSet<Rule>,
    /// A prefix finding bans its whole prefix as one entry (else the
    /// addresses that show up in it, one by one).
    pub networks: bool,
    /// A finding older than this (log time against the run's clock) asks
    /// for no ban: the ban would already have ended.
    pub max_age: jiff::SignedDuration,
}

/// A ban the pipeline asks for; carried out after the batch commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BanIntent {
    /// An address, or a prefix when [`BanPlan::networks`] is set.
    pub addr: BanTarget,
    pub incident: IncidentId,
    pub rule: String,
    /// Log time of the line that asked for it.
    pub at: Timestamp,
}

/// What happened to one incident during a run.
#[derive(Debug, Clone, Serialize)]
pub struct Touched {
    pub id: IncidentId,
    pub opened: bool,
    /// The severity before the first escalation of this run, if any.
    pub escalated_from: Option<Severity>,
    /// The first rule that touched it in this run.
    pub rule: String,
    /// Findings of allowlisted sources are recorded and flagged, never acted on.
    pub allowlisted: Option<String>,
}

/// One line waiting for its campaign's incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingLine {
    file: String,
    offset: u64,
    line: Vec<u8>,
    time: Timestamp,
    host: Option<String>,
    user: Option<String>,
}

impl PendingLine {
    /// Its memory, counted against [`PENDING_BYTES_MAX`]: the struct, its
    /// buffers, and an allocator's overhead per buffer.
    fn cost(&self) -> usize {
        const PER_ALLOCATION: usize = 16;
        let names = self.host.as_ref().map_or(0, |h| h.capacity() + PER_ALLOCATION)
            + self.user.as_ref().map_or(0, |u| u.capacity() + PER_ALLOCATION);
        std::mem::size_of::<PendingLine>()
            + self.file.capacity()
            + self.line.capacity()
            + 2 * PER_ALLOCATION
            + names
    }
}

/// A line and where it came from, as evidence for the event it produced.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    pub file: &'a str,
    pub offset: u64,
    pub bytes: &'a [u8],
    /// The line's SHA-256 if the caller has it already (`scan` hashes on
    /// its parser thread); computed here otherwise.
    pub sha256: Option<Sha256Digest>,
}

impl<'a> LineRef<'a> {
    /// A line whose SHA-256 is computed when it is needed.
    pub fn new(file: &'a str, offset: u64, bytes: &'a [u8]) -> LineRef<'a> {
        LineRef { file, offset, bytes, sha256: None }
    }

    fn evidence(&self) -> EvidenceRef<'a> {
        match self.sha256 {
            Some(sha256) => {
                EvidenceRef { file: self.file, offset: self.offset, line: self.bytes, sha256 }
            }
            None => EvidenceRef::new(self.file, self.offset, self.bytes),
        }
    }
}

pub struct Pipeline {
    /// The longest detection window: buffered lines older than it can no
    /// longer lead to a finding.
    longest_window: jiff::SignedDuration,
    findings: Vec<Finding>,
    pending: HashMap<CampaignKey, VecDeque<PendingLine>, FastHash>,
    /// Accounts with an open incident of their own (an account attacked
    /// from many sources), whose every failure is one more attempt.
    attacked_accounts: HashSet<String, FastHash>,
    bans: BanPlan,
    allowlist: Allowlist,
    now: Timestamp,
    /// Addresses asked for, with the clock when they were: asked again
    /// only once a ban asked then would have ended (a daemon runs for
    /// longer than a ban lasts). Capped: see [`AskedBans`].
    ban_asked: AskedBans,
    /// Targets whose attack seen so far is older than a ban would last.
    ban_too_old: HashSet<BanTarget, FastHash>,
    /// The detector's configuration: the prefix a network ban of an
    /// address covers is its prefix.
    detect: DetectConfig,
    pub touched: BTreeMap<IncidentId, Touched>,
    pub ban_intents: Vec<BanIntent>,
    /// Addresses that would have been banned, but whose attack is older
    /// than a ban would last.
    pub bans_skipped_old: u64,
    /// Buffered lines dropped for memory (still counted by the detector).
    pub pending_dropped: u64,
    /// The memory of the buffered lines (see [`PendingLine::cost`]).
    pending_bytes: usize,
    /// The current event's source campaign, rebuilt in place for each
    /// event (one allocation per run rather than one per line).
    source_key: CampaignKey,
    /// The same for the campaign against the event's account.
    user_key: CampaignKey,
}

impl Pipeline {
    /// A pipeline after a detector configured with `detect`. `allowlist`
    /// is checked before any ban is asked for (and the firewall layer
    /// checks again). `now` is the run's clock, used only to decide
    /// whether an old attack still deserves a ban.
    pub fn new(
        detect: &DetectConfig,
        allowlist: Allowlist,
        bans: BanPlan,
        now: Timestamp,
    ) -> Pipeline {
        Pipeline {
            allowlist,
            longest_window: detect.longest_window().to_duration(),
            findings: Vec::new(),
            pending: HashMap::default(),
            attacked_accounts: HashSet::default(),
            bans,
            now,
            ban_asked: AskedBans::new(AskedBans::DEFAULT_MAX),
            ban_too_old: HashSet::default(),
            detect: detect.clone(),
            touched: BTreeMap::new(),
            ban_intents: Vec::new(),
            bans_skipped_old: 0,
            pending_dropped: 0,
            pending_bytes: 0,
            source_key: CampaignKey::for_user(""),
            user_key: CampaignKey::for_user(""),
        }
    }

    /// Moves the run's clock (a daemon calls it for each batch of lines).
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// Forgets the ban requests whose ban has ended by now, so that the
    /// memory of a long-running daemon follows the bans in force, not
    /// every address it ever banned.
    pub fn forget_ended_ban_requests(&mut self) {
        self.ban_asked.forget_ended(self.now, self.bans.max_age);
        self.ban_too_old.clear();
    }

    /// Whether a ban of `target`, or of a network around it, was asked
    /// for recently enough to still run.
    fn ban_outstanding(&self, target: BanTarget) -> bool {
        let asked = |t: BanTarget| self.ban_asked.outstanding(t, self.now, self.bans.max_age);
        if asked(target) {
            return true;
        }
        match target.single() {
            Some(addr) if self.bans.networks => self.prefix_of(addr).is_some_and(asked),
            _ => false,
        }
    }

    /// The detector's prefix around `addr` (canonical, as a
    /// [`BanTarget`]'s address is), if its family is aggregated.
    fn prefix_of(&self, addr: IpAddr) -> Option<BanTarget> {
        self.detect.prefix_of(addr).map(BanTarget::net)
    }

    /// Restores the lines buffered by a previous run (see
    /// [`Pipeline::save_state`]); a damaged blob is reported and ignored.
    pub fn restore_pending(&mut self, blob: &[u8]) -> Result<(), String> {
        let entries: Vec<(CampaignKey, Vec<PendingLine>)> =
            postcard::from_bytes(blob).map_err(|e| format!("buffered lines: {e}"))?;
        self.pending = entries.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.pending_bytes = self.count_pending_bytes();
        if self.pending_bytes > PENDING_BYTES_MAX {
            if let Some(newest) = self.newest_time() {
                self.prune_pending(newest);
            }
        }
        Ok(())
    }

    /// Remembers which accounts have open incidents of their own.
    pub fn note_attacked_accounts(&mut self, users: impl IntoIterator<Item = String>) {
        self.attacked_accounts.extend(users);
    }

    /// Writes the state of `detector` (the one this pipeline follows) and
    /// the buffered lines into `batch`, so that the next run goes on where
    /// this one stopped.
    pub fn save_state(
        &mut self,
        batch: &mut Batch<'_>,
        detector: &mut Detector,
    ) -> Result<(), StoreError> {
        if let Some(newest) = self.newest_time() {
            detector.expire(newest);
            self.prune_pending(newest);
        }
        batch.set_cursor(DETECTOR_STATE_KEY, &detector.snapshot().to_bytes())?;
        let entries: Vec<(&CampaignKey, Vec<&PendingLine>)> =
            self.pending.iter().map(|(k, v)| (k, v.iter().collect())).collect();
        let blob = postcard::to_allocvec(&entries).expect("serializing to memory cannot fail");
        batch.set_cursor(PENDING_STATE_KEY, &blob)
    }

    fn newest_time(&self) -> Option<Timestamp> {
        self.pending.values().filter_map(|lines| lines.back()).map(|l| l.time).max()
    }

    /// Handles one event: `detector` observes it, and this pipeline
    /// records what that means. `line` is the raw line it came from.
    pub fn handle(
        &mut self,
        batch: &mut Batch<'_>,
        detector: &mut Detector,
        event: &AuthEvent,
        line: LineRef<'_>,
    ) -> Result<(), StoreError> {
        let Some(source) = event.source.as_ref().filter(|_| detects(event)) else { return Ok(()) };
        let mut findings = std::mem::take(&mut self.findings);
        findings.clear();
        detector.observe(event, &mut findings);
        let mut source_key = std::mem::replace(&mut self.source_key, CampaignKey::for_user(""));
        set_campaign_of_source(&mut source_key, source);
        let result = self.record(batch, event, &findings, source, &source_key, line);
        self.source_key = source_key;
        self.findings = findings;
        result
    }

    /// Records one event of `source` and the findings detection gave for
    /// it.
    fn record(
        &mut self,
        batch: &mut Batch<'_>,
        event: &AuthEvent,
        findings: &[Finding],
        source: &Source,
        source_key: &CampaignKey,
        line: LineRef<'_>,
    ) -> Result<(), StoreError> {
        let failure = event.outcome == Outcome::Failure;
        let mut source_handled = false;
        let mut user_handled = false;
        for finding in findings {
            let key = campaign_of_subject(&finding.subject);
            let is_source_campaign = key == *source_key;
            let is_user_campaign = key.kind == SubjectKind::User;
            let open = batch.find_open_incident(&key)?;
            let mut obs = Observation::new(
                key.clone(),
                finding.rule.as_str(),
                finding.severity,
                finding.at,
                0,
            );
            obs.last_seen = finding.at.max(event.time);
            if open.is_none() {
                // A new incident starts with what led to it.
                obs.first_seen = finding.first_seen.min(event.time);
                obs.attempts = u64::from(finding.failures);
                if is_source_campaign {
                    for pending in self.pending.remove(&key).unwrap_or_default() {
                        self.pending_bytes = self.pending_bytes.saturating_sub(pending.cost());
                        obs.evidence.push(Evidence::new(
                            pending.file,
                            pending.offset,
                            &pending.line,
                        ));
                        obs.hosts.extend(pending.host);
                        obs.users.extend(pending.user);
                    }
                }
            } else if (is_source_campaign || is_user_campaign) && failure {
                obs.attempts = 1;
            }
            obs.evidence.push(line.evidence().to_evidence());
            obs.hosts.extend(event.host.as_deref().map(str::to_string));
            obs.users.extend(event.user.clone());
            let (id, change) = batch.open_or_update_incident(obs)?;
            source_handled |= is_source_campaign;
            user_handled |= is_user_campaign;
            if is_user_campaign {
                self.attacked_accounts.insert(key.subject.clone());
            }
            self.note_touch(id, change, finding);
            if let Some(target) = self.ban_target(finding) {
                self.ask_ban(target, id, finding.rule.as_str(), finding.at);
            }
        }
        if !failure {
            return Ok(());
        }
        // Hashed once, whichever incidents the line goes to.
        let mut evidence = None;
        let mut evidence = || *evidence.get_or_insert_with(|| line.evidence());
        // The source's record of the line, which an account incident's
        // record of it points to rather than repeating its digest.
        let mut source_record = None;
        if !source_handled {
            match batch.find_open_incident(source_key)? {
                Some(id) => {
                    source_record = Some(batch.record_attempt(
                        id,
                        event.time,
                        event.host.as_deref(),
                        event.user.as_deref(),
                        evidence(),
                        None,
                    )?);
                    self.note_update(batch, id)?;
                    self.follow_up_ban(batch, id, source, event.time)?;
                }
                None => self.buffer(source_key, event, line),
            }
        }
        if let (false, Some(user)) = (user_handled, &event.user) {
            if self.attacked_accounts.contains(user) {
                // Most failures name an attacked account: no allocation.
                self.user_key.set_user(user);
                if let Some(id) = batch.find_open_incident(&self.user_key)? {
                    let user_evidence = evidence();
                    batch.record_attempt(
                        id,
                        event.time,
                        event.host.as_deref(),
                        None,
                        user_evidence,
                        source_record,
                    )?;
                    self.note_update(batch, id)?;
                }
            }
        }
        Ok(())
    }

    /// Notes a plain update (an attempt) of an incident no finding of this
    /// run has touched yet.
    fn note_update(&mut self, batch: &mut Batch<'_>, id: IncidentId) -> Result<(), StoreError> {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.touched.entry(id) {
            let rule = batch.rules(id)?.0.to_string();
            entry.insert(Touched {
                id,
                opened: false,
                escalated_from: None,
                rule,
                allowlisted: None,
            });
        }
        Ok(())
    }

    fn note_touch(&mut self, id: IncidentId, change: Change, finding: &Finding) {
        let entry = self.touched.entry(id).or_insert_with(|| Touched {
            id,
            opened: false,
            escalated_from: None,
            rule: finding.rule.as_str().to_string(),
            allowlisted: finding.allowlisted.as_ref().map(|r| r.to_string()),
        });
        match change {
            Change::Opened => entry.opened = true,
            Change::Escalated { from, .. } => {
                entry.escalated_from.get_or_insert(from);
            }
            Change::Updated => {}
        }
    }

    /// What a finding asks to ban, if its rule bans and it has a ban
    /// target (never for allowlisted sources, host names or accounts).
    fn ban_target(&self, finding: &Finding) -> Option<BanTarget> {
        if !self.bans.enabled || !self.bans.rules.contains(&finding.rule) {
            return None;
        }
        let target = BanTarget::net(finding.ban_target()?);
        if target.single().is_some() || self.bans.networks {
            Some(target)
        } else {
            // Without network bans, a prefix finding bans the address
            // that tripped it; its further addresses are banned as they
            // show up (see `follow_up_ban`).
            finding.source.as_ref().and_then(Source::addr).map(BanTarget::addr)
        }
    }

    fn ask_ban(&mut self, target: BanTarget, incident: IncidentId, rule: &str, at: Timestamp) {
        if self.allowlist.check_target(target).is_some() {
            // Findings of allowlisted sources carry no ban target; this
            // stops the follow-up bans of a campaign (an allowlisted
            // address inside an attacking /64) too.
            return;
        }
        if self.now.duration_since(at) > self.bans.max_age {
            // A later, recent line of the same attack may still ban it.
            if !self.ban_outstanding(target) && self.ban_too_old.insert(target) {
                self.bans_skipped_old += 1;
            }
        } else if !self.ban_outstanding(target) {
            self.ban_asked.insert(target, self.now);
            if self.ban_too_old.remove(&target) {
                self.bans_skipped_old -= 1;
            }
            self.ban_intents.push(BanIntent { addr: target, incident, rule: rule.to_string(), at });
        }
    }

    /// A further attempt of a campaign whose incident asked for bans (an
    /// IPv6 host rotating through its /64) bans the new address too, or
    /// its whole prefix once a prefix rule has fired (with network bans).
    fn follow_up_ban(
        &mut self,
        batch: &mut Batch<'_>,
        id: IncidentId,
        source: &Source,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(addr) = source.addr() else { return Ok(()) };
        let addr = BanTarget::addr(addr);
        if !self.bans.enabled
            || self.ban_outstanding(addr)
            || self.now.duration_since(at) > self.bans.max_age
        {
            // Already asked, or a line too old for any ban to still run.
            return Ok(());
        }
        let (_, rules) = batch.rules(id)?;
        let banning = || {
            rules.kept.iter().filter_map(|name| {
                Rule::from_name(name).filter(|rule| self.bans.rules.contains(rule))
            })
        };
        let Some(first) = banning().next() else { return Ok(()) };
        let prefix_rule = banning().any(|rule| rule == Rule::PrefixBruteForce);
        // The whole prefix, unless it holds an allowlisted address: then
        // its attacking addresses one by one.
        let prefix = addr
            .single()
            .and_then(|a| self.prefix_of(a))
            .filter(|prefix| self.allowlist.check_target(*prefix).is_none());
        match prefix {
            Some(prefix) if prefix_rule && self.bans.networks => {
                self.ask_ban(prefix, id, Rule::PrefixBruteForce.as_str(), at)
            }
            _ => self.ask_ban(addr, id, first.as_str(), at),
        }
        Ok(())
    }

    fn buffer(&mut self, key: &CampaignKey, event: &AuthEvent, line: LineRef<'_>) {
        if !self.pending.contains_key(key) {
            if self.pending.len() >= PENDING_CAMPAIGNS_MAX {
                self.prune_pending(event.time);
            }
            self.pending.insert(key.clone(), VecDeque::new());
        }
        let lines = self.pending.get_mut(key).expect("inserted above");
        if lines.len() >= PENDING_LINES_PER_CAMPAIGN {
            // The dropped line's buffers take the new one (no allocation
            // per line once a campaign's buffer is full).
            let mut reused = lines.pop_front().expect("the buffer is full");
            self.pending_dropped += 1;
            self.pending_bytes = self.pending_bytes.saturating_sub(reused.cost());
            reused.file.clear();
            reused.file.push_str(line.file);
            reused.offset = line.offset;
            reused.line.clear();
            reused.line.extend_from_slice(line.bytes);
            reused.time = event.time;
            assign_name(&mut reused.host, event.host.as_deref());
            assign_name(&mut reused.user, event.user.as_deref());
            self.pending_bytes += reused.cost();
            lines.push_back(reused);
        } else {
            let pending = PendingLine {
                file: line.file.to_string(),
                offset: line.offset,
                line: line.bytes.to_vec(),
                time: event.time,
                host: event.host.as_deref().map(str::to_string),
                user: event.user.clone(),
            };
            self.pending_bytes += pending.cost();
            lines.push_back(pending);
        }
        if self.pending_bytes > PENDING_BYTES_MAX {
            self.prune_pending(event.time);
        }
    }

    fn count_pending_bytes(&self) -> usize {
        self.pending.values().flatten().map(PendingLine::cost).sum()
    }

    /// Campaigns with buffered lines, and the memory of those lines.
    pub fn pending_usage(&self) -> (usize, usize) {
        (self.pending.len(), self.pending_bytes)
    }

    /// Ban requests remembered, the cap, and those forgotten at the cap.
    pub fn asked_bans(&self) -> &AskedBans {
        &self.ban_asked
    }

    /// Forgets buffered lines older than the longest detection window, and
    /// when that is not enough, the campaigns seen least recently.
    fn prune_pending(&mut self, now: Timestamp) {
        let horizon = now.checked_sub(self.longest_window).unwrap_or(Timestamp::MIN);
        let before: usize = self.pending.values().map(VecDeque::len).sum();
        self.pending.retain(|_, lines| lines.back().is_some_and(|l| l.time > horizon));
        let mut bytes = self.count_pending_bytes();
        if self.pending.len() >= PENDING_CAMPAIGNS_MAX || bytes > PENDING_BYTES_MAX {
            // The stalest campaigns go, down to three quarters of both
            // bounds, so that the next shedding is far off (amortised).
            let mut by_age: Vec<(Timestamp, usize)> = self
                .pending
                .values()
                .filter_map(|lines| {
                    let cost = lines.iter().map(PendingLine::cost).sum();
                    lines.back().map(|newest| (newest.time, cost))
                })
                .collect();
            by_age.sort_unstable_by_key(|&(time, _)| time);
            let mut campaigns = by_age.len();
            let mut cut = None;
            for (time, cost) in by_age {
                if campaigns <= PENDING_CAMPAIGNS_MAX * 3 / 4 && bytes <= PENDING_BYTES_MAX * 3 / 4
                {
                    break;
                }
                campaigns -= 1;
                bytes -= cost;
                cut = Some(time);
            }
            if let Some(cut) = cut {
                self.pending.retain(|_, lines| lines.back().is_some_and(|l| l.time > cut));
            }
        }
        self.pending_bytes = self.count_pending_bytes();
        let after: usize = self.pending.values().map(VecDeque::len).sum();
        self.pending_dropped += (before - after) as u64;
    }
}

/// Whether `event` is a failure or a success: what status counts, and
/// (with a source) what detection looks at.
pub fn counts(event: &AuthEvent) -> bool {
    matches!(event.outcome, Outcome::Failure | Outcome::Success)
}

/// Whether detection looks at `event` at all: a failure or a success with
/// a source.
pub fn detects(event: &AuthEvent) -> bool {
    counts(event) && event.source.is_some()
}

/// Sets `slot` to `name`, reusing its allocation.
fn assign_name(slot: &mut Option<String>, name: Option<&str>) {
    match (slot.as_mut(), name) {
        (Some(kept), Some(name)) => {
            kept.clear();
            kept.push_str(name);
        }
        (_, name) => *slot = name.map(str::to_string),
    }
}

/// The campaign of an event's source: its address (an IPv6 address's /64)
/// or its unresolved host name.
pub fn campaign_of_source(source: &Source) -> CampaignKey {
    let mut key = CampaignKey::for_user("");
    set_campaign_of_source(&mut key, source);
    key
}

/// [`campaign_of_source`] into an existing key, reusing its allocation.
fn set_campaign_of_source(key: &mut CampaignKey, source: &Source) {
    match source {
        // Once per line: the formatting machinery costs more than the rest
        // of building the key.
        Source::Addr(IpAddr::V4(v4)) => set_ipv4_campaign(key, *v4),
        Source::Addr(addr) => key.set_addr(*addr),
        Source::Hostname(name) => key.set_hostname(name),
    }
}

/// [`CampaignKey::set_addr`] for an IPv4 address, without `fmt`: the same
/// dotted-decimal text.
fn set_ipv4_campaign(key: &mut CampaignKey, addr: std::net::Ipv4Addr) {
    key.kind = SubjectKind::Addr;
    key.subject.clear();
    for (i, octet) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            key.subject.push('.');
        }
        if octet >= 100 {
            key.subject.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            key.subject.push(char::from(b'0' + octet / 10 % 10));
        }
        key.subject.push(char::from(b'0' + octet % 10));
    }
}

/// The campaign a finding belongs to.
pub fn campaign_of_subject(subject: &Subject) -> CampaignKey {
    match subject {
        Subject::Addr(addr) => CampaignKey::for_addr(*addr),
        Subject::Prefix(net) => match net {
            // An IPv6 prefix finding is the same campaign as its addresses'
            // (all are grouped by /64); a wider prefix is its own.
            ipnet::IpNet::V6(v6) if v6.prefix_len() >= 64 => CampaignKey::for_addr(net.addr()),
            _ => CampaignKey::for_prefix(*net),
        },
        Subject::Hostname(name) => CampaignKey::for_hostname(name),
        Subject::User(user) => CampaignKey::for_user(user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_campaigns_are_spelled_as_the_core_spells_them() {
        let mut key = CampaignKey::for_user("previous");
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut addrs: Vec<std::net::Ipv4Addr> =
            ["0.0.0.0", "255.255.255.255", "10.0.9.100", "192.0.2.1", "1.20.100.99"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            addrs.push(std::net::Ipv4Addr::from(state as u32));
        }
        for addr in addrs {
            set_campaign_of_source(&mut key, &Source::Addr(IpAddr::V4(addr)));
            assert_eq!(key, CampaignKey::for_addr(IpAddr::V4(addr)), "{addr}");
        }
        // IPv4-mapped IPv6 goes through the core's canonical form.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        set_campaign_of_source(&mut key, &Source::Addr(mapped));
        assert_eq!(key, CampaignKey::for_addr("192.0.2.7".parse().unwrap()));
    }

    fn failure(addr: IpAddr, second: i64) -> AuthEvent {
        AuthEvent {
            time: Timestamp::from_second(1_800_000_000 + second).unwrap(),
            host: None,
            process: "sshd".into(),
            pid: Some(7),
            kind: hikeshi_core::Kind::FailedAuth,
            outcome: Outcome::Failure,
            source: Some(Source::Addr(addr)),
            user: Some("root".into()),
            port: None,
        }
    }

    fn quiet_pipeline(now: Timestamp) -> (Detector, Pipeline) {
        // No rule can fire: every failure is buffered for its campaign.
        let config = hikeshi_core::detect::DetectConfig {
            maxretry: 200,
            prefix_maxretry: 200,
            ..Default::default()
        };
        let config = hikeshi_core::detect::DetectConfig {
            slow: hikeshi_core::detect::SlowConfig { maxretry: 200, ..config.slow },
            ..config
        };
        let allowlist = Allowlist::new(Vec::new(), Vec::new());
        let plan = BanPlan {
            enabled: true,
            rules: HashSet::new(),
            networks: true,
            max_age: jiff::SignedDuration::from_hours(1),
        };
        let pipeline = Pipeline::new(&config, allowlist.clone(), plan, now);
        (Detector::new(config, allowlist).unwrap(), pipeline)
    }

    #[test]
    fn buffered_lines_stay_within_their_byte_budget_dropping_the_stalest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let (mut detector, mut pipeline) = quiet_pipeline(now);
        // 4 KiB lines from 6,000 addresses, one failure each: 24 MiB
        // buffered without the budget.
        let long_line = vec![b'x'; 4096];
        let addr = |i: u32| IpAddr::from((0xC612_0000u32 + i).to_be_bytes());
        let mut batch = store.batch().unwrap();
        for i in 0..6_000u32 {
            let line = LineRef::new("/var/log/auth.log", u64::from(i), &long_line);
            let event = failure(addr(i), i64::from(i));
            pipeline.handle(&mut batch, &mut detector, &event, line).unwrap();
            let (_, bytes) = pipeline.pending_usage();
            assert!(bytes <= PENDING_BYTES_MAX, "{bytes} bytes buffered after {i} lines");
        }
        batch.commit().unwrap();
        let (campaigns, bytes) = pipeline.pending_usage();
        assert!(pipeline.pending_dropped > 0, "the budget was never hit");
        assert_eq!(
            pipeline.pending_dropped as usize + campaigns,
            6_000,
            "every line is kept or counted"
        );
        assert!(bytes >= PENDING_BYTES_MAX / 2, "shedding went too far: {bytes}");
        // The stalest went first: the newest address is still buffered,
        // the oldest is not.
        assert!(pipeline.pending.contains_key(&campaign_of_source(&Source::Addr(addr(5_999)))));
        assert!(!pipeline.pending.contains_key(&campaign_of_source(&Source::Addr(addr(0)))));
        // The running count matches a recount.
        assert_eq!(bytes, pipeline.count_pending_bytes());
    }

    /// The ban targets a host rotating through 2001:db8:5:6::/64 makes the
    /// pipeline ask for, one failure per address, with the default rules.
    fn rotating_bans(networks: bool, host_addrs: Vec<IpAddr>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        let config = hikeshi_core::detect::DetectConfig::default();
        let allowlist = Allowlist::new(Vec::new(), host_addrs);
        let plan = BanPlan {
            enabled: true,
            rules: Rule::ALL.into_iter().collect(),
            networks,
            max_age: jiff::SignedDuration::from_hours(1),
        };
        let mut pipeline = Pipeline::new(&config, allowlist.clone(), plan, now);
        let mut detector = Detector::new(config, allowlist).unwrap();
        let mut batch = store.batch().unwrap();
        for i in 1..=40u16 {
            let addr = IpAddr::from([0x2001, 0xdb8, 5, 6, 0, 0, 0, i]);
            let line = format!("line {i}");
            let line = LineRef::new("/var/log/auth.log", u64::from(i), line.as_bytes());
            pipeline.handle(&mut batch, &mut detector, &failure(addr, i64::from(i)), line).unwrap();
        }
        batch.commit().unwrap();
        pipeline.ban_intents.iter().map(|intent| intent.addr.to_string()).collect()
    }

    #[test]
    fn a_rotating_ipv6_host_is_banned_by_its_prefix_once() {
        assert_eq!(rotating_bans(true, Vec::new()), ["2001:db8:5:6::/64"]);
        // Without network bans: the address that tripped the prefix rule
        // (the tenth) and every one after it.
        let one_by_one = rotating_bans(false, Vec::new());
        let expected: Vec<String> = (10..=40).map(|i| format!("2001:db8:5:6::{i:x}")).collect();
        assert_eq!(one_by_one, expected);
        // A prefix that holds one of this host's addresses is never
        // banned: its attacking addresses are, one by one.
        let own: IpAddr = "2001:db8:5:6::ffff".parse().unwrap();
        let expected: Vec<String> = (11..=40).map(|i| format!("2001:db8:5:6::{i:x}")).collect();
        assert_eq!(rotating_bans(true, vec![own]), expected);
    }

    #[test]
    fn ban_requests_are_remembered_within_their_cap() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let (_, mut pipeline) = quiet_pipeline(now);
        pipeline.ban_asked = AskedBans::new(10);
        for i in 0..25u32 {
            let addr = IpAddr::from((0xC612_0000u32 + i).to_be_bytes());
            pipeline.ask_ban(addr.into(), IncidentId(1), "brute_force", now);
        }
        assert_eq!(pipeline.ban_intents.len(), 25);
        assert!(pipeline.asked_bans().len() <= 10);
        assert_eq!(
            pipeline.asked_bans().forgotten_at_cap() + pipeline.asked_bans().len() as u64,
            25
        );
        // The newest request is remembered: asked once only.
        let newest = IpAddr::from((0xC612_0000u32 + 24).to_be_bytes());
        pipeline.ask_ban(newest.into(), IncidentId(1), "brute_force", now);
        assert_eq!(pipeline.ban_intents.len(), 25);
    }

    #[test]
    fn ipv6_prefix_findings_share_their_addresses_campaign() {
        let addr: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        let prefix = ipnet::IpNet::new(addr, 64).unwrap().trunc();
        assert_eq!(
            campaign_of_subject(&Subject::Prefix(prefix)),
            campaign_of_source(&Source::Addr(addr))
        );
        let v4_net: ipnet::IpNet = "198.51.100.0/24".parse().unwrap();
        assert_eq!(campaign_of_subject(&Subject::Prefix(v4_net)).kind, SubjectKind::Prefix);
    }
}
