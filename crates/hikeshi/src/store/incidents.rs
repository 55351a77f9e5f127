//! Incidents in the database: opening and updating them from
//! observations, their timeline and evidence, their lifecycle state, the
//! file cursors written in the same transaction, and reading them back.
//!
//! Writes go through a [`Batch`], which keeps the incidents it touches in
//! memory (merged with the pure [`Campaign::merge`]) and writes each one's
//! row once, at commit. Evidence lines are the volume: every line gets a
//! compact record (file, offset, SHA-256) packed into one chunk per
//! incident per batch, with its text when the cap keeps it for good; the
//! texts of the latest lines are buffered and written at commit (at most
//! `latest` per incident per batch); every line is counted and folded
//! into the incident's evidence digest. See `store::evidence` for the formats.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use hikeshi_core::incident::{
    hex, Actor, BoundedSet, Campaign, CampaignKey, Change, Evidence, EvidenceRef, IncidentId,
    Limits, Observation, Sha256Digest, State, SubjectKind, TimelineEntry, TimelineKind,
};
use hikeshi_core::Severity;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::evidence::{
    self, Content, LatestChunk, LegacyChunk, LinesChunk, RecordDigest, RecordedLine, CHUNK_BYTES,
};
use super::names::{
    apply_unchecked, check_unchecked, digest_in_database, newly_kept, read_names, unseen_names,
    NameKind, UncheckedNames,
};
use super::{EvidenceLayout, StoreError, StoreOptions};

/// An incident as listed: its aggregate, without timeline and evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: IncidentId,
    /// NIST SP 800-61 phase of its state.
    pub phase: &'static str,
    /// When it was opened (the time of the observation that opened it).
    pub opened_at: Timestamp,
    #[serde(flatten)]
    pub campaign: Campaign,
}

/// A timeline row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTimelineEntry {
    /// Grows monotonically across all incidents (append-only table).
    pub id: i64,
    #[serde(flatten)]
    pub entry: TimelineEntry,
}

/// An evidence line as kept in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvidence {
    /// The line's number among all the incident's evidence lines (0-based):
    /// gaps are lines the cap did not keep.
    pub seq: u64,
    pub evidence: Evidence,
}

impl Serialize for StoredEvidence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let exact = std::str::from_utf8(&self.evidence.line).is_ok();
        let mut st = s.serialize_struct("StoredEvidence", 6)?;
        st.serialize_field("seq", &self.seq)?;
        st.serialize_field("file", &self.evidence.file)?;
        st.serialize_field("offset", &self.evidence.offset)?;
        st.serialize_field("sha256", &self.evidence.sha256_hex())?;
        st.serialize_field("line", &self.evidence.line_lossy())?;
        // Invalid UTF-8 cannot be JSON text: give the exact bytes too, so
        // the SHA-256 can be checked.
        st.serialize_field("line_hex", &(!exact).then(|| hex(&self.evidence.line)))?;
        st.end()
    }
}

/// One line attributed to an incident as the store records it, whether or
/// not its text is kept: where it was read and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRecord {
    /// The line's number among all the incident's evidence lines (0-based).
    pub seq: u64,
    pub file: String,
    pub offset: u64,
    #[serde(with = "hikeshi_core::incident::digest_hex")]
    pub sha256: Sha256Digest,
    /// Whether its text is kept (see [`IncidentDetail::evidence`]).
    pub text_kept: bool,
}

/// An incident with its timeline and kept evidence, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<StoredTimelineEntry>,
    /// Kept lines, by `seq`. `campaign.evidence_lines` counts them all.
    pub evidence: Vec<StoredEvidence>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Only incidents in this state.
    pub state: Option<State>,
    /// Only open (not closed) incidents.
    pub open_only: bool,
}

/// One incident loaded into a batch.
struct Loaded {
    campaign: Campaign,
    /// The last batch that used it (see [`Cache::bound`]).
    used_in: u64,
    /// Its row must be written at commit.
    dirty: bool,
    /// The records of this batch's lines not written yet (every line,
    /// with the text of those kept for good), packed as they arrive.
    lines: LinesChunk,
    /// A store at a schema before version 5: the lines of this batch kept
    /// for good, in the legacy format.
    legacy_kept: LegacyChunk,
    /// The latest evidence lines of this batch (beyond the first ones),
    /// at most `limits.evidence.latest`.
    latest: LatestRing,
    /// Whether the campaign's host and user sets are in memory (see
    /// `store::names`); its rules always are.
    names_loaded: bool,
    /// Without them: the hosts and users this batch's attempts named.
    unchecked: UncheckedNames,
    /// Names that joined the campaign's sets in this batch.
    new_names: Vec<(NameKind, String)>,
    /// A host and a user known to be in the campaign's kept sets (the
    /// last ones seen), so that a run of attempts alike skips the lookups.
    known_host: Option<String>,
    known_user: Option<String>,
    /// The campaign's kept user names, hashed: a spray of user names
    /// looks each one up (built on the first attempt that needs it).
    user_index: Option<HashSet<String, foldhash::fast::RandomState>>,
}

impl Loaded {
    fn new(campaign: Campaign, dirty: bool, used_in: u64, names_loaded: bool) -> Loaded {
        Loaded {
            campaign,
            used_in,
            dirty,
            names_loaded,
            unchecked: UncheckedNames::default(),
            lines: LinesChunk::default(),
            legacy_kept: LegacyChunk::default(),
            latest: LatestRing::default(),
            new_names: Vec::new(),
            known_host: None,
            known_user: None,
            user_index: None,
        }
    }

    /// Joins an attempt's host and user to the sets, in memory.
    fn note_names(&mut self, host: Option<&str>, user: Option<&str>, limits: &Limits) {
        let c = &mut self.campaign;
        if let Some(host) = host {
            if self.known_host.as_deref() != Some(host) {
                let newly_kept = c.hosts.insert(host, limits.max_hosts);
                if newly_kept {
                    self.new_names.push((NameKind::Host, host.to_string()));
                }
                let kept = newly_kept || c.hosts.kept.contains(host);
                remember(&mut self.known_host, kept.then_some(host));
            }
        }
        if let Some(user) = user {
            if self.known_user.as_deref() != Some(user) {
                let index =
                    self.user_index.get_or_insert_with(|| c.users.kept.iter().cloned().collect());
                // Not in the index: new to the set, or beyond its cap
                // (counted there).
                let kept = index.contains(user) || {
                    let newly_kept = c.users.insert(user, limits.max_users);
                    if newly_kept {
                        index.insert(user.to_string());
                        self.new_names.push((NameKind::User, user.to_string()));
                    }
                    newly_kept
                };
                remember(&mut self.known_user, kept.then_some(user));
            }
        }
    }

    /// Without the sets in memory: `names` wait to be checked at commit,
    /// or the sets are read in once too many wait.
    fn note_unchecked<'n>(
        &mut self,
        names: impl Iterator<Item = (NameKind, &'n str)>,
        conn: &Connection,
        path: &Path,
        id: IncidentId,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        names.for_each(|(kind, name)| self.unchecked.see(kind, name));
        if self.unchecked.len() > UNCHECKED_NAMES_MAX {
            self.load_names(conn, path, id, limits)?;
        }
        Ok(())
    }

    /// Reads the host and user sets in (with the names waiting to be
    /// checked folded in) and keeps them in memory from now on.
    fn load_names(
        &mut self,
        conn: &Connection,
        path: &Path,
        id: IncidentId,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        if self.names_loaded {
            return Ok(());
        }
        read_names(conn, path, id, &[NameKind::Host, NameKind::User], &mut self.campaign)?;
        let added = apply_unchecked(&mut self.unchecked, &mut self.campaign, limits);
        self.new_names.extend(added);
        self.names_loaded = true;
        Ok(())
    }

    /// The estimated memory of its names (see [`CACHED_NAME_BYTES`]).
    fn name_bytes(&self) -> usize {
        let c = &self.campaign;
        let index = self.user_index.as_ref().map_or(0, |index| index.len());
        (c.users.kept.len() + c.hosts.kept.len() + index + self.unchecked.len()) * CACHED_NAME_BYTES
    }

    /// Lets the host and user sets go (the incident cache is over its
    /// memory budget); they are read back when needed.
    fn unload_names(&mut self) {
        debug_assert!(!self.dirty, "only between batches");
        let c = &mut self.campaign;
        c.hosts.kept = Default::default();
        c.users.kept = Default::default();
        self.names_loaded = false;
        self.user_index = None;
        self.known_host = None;
        self.known_user = None;
    }

    /// Records line `seq` of this incident: its record always, its text
    /// for good if `keep_text`, or else among the latest lines. A record
    /// without its text points to `same_as` (the same line's record in
    /// another incident) for its SHA-256 when given and the layout allows.
    /// Writes the batch's records as a chunk of their own once they are
    /// big (`scratch`: a buffer for compressing it).
    #[allow(clippy::too_many_arguments)]
    fn record_line(
        &mut self,
        conn: &Connection,
        layout: EvidenceLayout,
        id: IncidentId,
        latest_cap: u64,
        seq: u64,
        ev: EvidenceRef<'_>,
        keep_text: bool,
        same_as: Option<RecordedLine>,
        scratch: &mut Vec<u8>,
    ) -> rusqlite::Result<()> {
        if !keep_text && latest_cap > 0 {
            self.latest.push(latest_cap, seq, ev, layout == EvidenceLayout::Legacy);
        }
        match layout {
            EvidenceLayout::Legacy => {
                if keep_text {
                    self.legacy_kept.push_ref(seq, ev);
                    if self.legacy_kept.data.len() >= CHUNK_BYTES {
                        insert_legacy(conn, INSERT_LEGACY_KEPT, id, &self.legacy_kept)?;
                        self.legacy_kept.clear();
                    }
                }
            }
            EvidenceLayout::Current { shared_records, .. } => {
                let content = match same_as.filter(|_| shared_records) {
                    _ if keep_text => Content::Text(ev.line),
                    Some(line) => Content::SameAs(line),
                    None => Content::Digest(&ev.sha256),
                };
                self.lines.push(seq, ev.file, ev.offset, content);
                if self.lines.data.len() >= CHUNK_BYTES {
                    // Written now, in this transaction: the buffer is
                    // reused, so a long attack neither grows memory nor
                    // reallocates it.
                    insert_lines(conn, id, &self.lines, scratch)?;
                    self.lines.clear();
                }
            }
        }
        Ok(())
    }
}

/// The latest lines of a batch: a ring of at most `cap` slots, the
/// oldest overwritten in place (its buffers reused) once it is full.
#[derive(Default)]
struct LatestRing {
    slots: Vec<LatestLine>,
    /// The oldest slot once the ring is full (0 until then).
    oldest: usize,
}

impl LatestRing {
    /// Adds line `seq`; its file, offset and SHA-256 too if `with_origin`
    /// (the legacy format repeats them; the current one has them in the
    /// line's record).
    fn push(&mut self, cap: u64, seq: u64, ev: EvidenceRef<'_>, with_origin: bool) {
        let slot = if (self.slots.len() as u64) < cap {
            self.slots.push(LatestLine::default());
            self.slots.last_mut().expect("pushed above")
        } else {
            let oldest = self.oldest;
            self.oldest = (oldest + 1) % self.slots.len();
            &mut self.slots[oldest]
        };
        slot.seq = seq;
        slot.text.clear();
        slot.text.extend_from_slice(ev.line);
        if with_origin {
            slot.file.clear();
            slot.file.push_str(ev.file);
            slot.offset = ev.offset;
            slot.sha256 = ev.sha256;
        }
    }

    /// Its lines as a chunk for `evidence_latest`.
    fn chunk(&self) -> LatestChunk {
        let mut chunk = LatestChunk::default();
        for line in self.iter() {
            chunk.push(line.seq, &line.text);
        }
        chunk
    }

    /// Oldest first.
    fn iter(&self) -> impl Iterator<Item = &LatestLine> {
        self.slots[self.oldest..].iter().chain(&self.slots[..self.oldest])
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// One of the latest lines of a batch, until commit.
#[derive(Default)]
struct LatestLine {
    seq: u64,
    text: Vec<u8>,
    /// Legacy format only.
    file: String,
    offset: u64,
    sha256: Sha256Digest,
}

impl LatestLine {
    fn as_ref(&self) -> EvidenceRef<'_> {
        EvidenceRef { file: &self.file, offset: self.offset, line: &self.text, sha256: self.sha256 }
    }
}

/// Sets `known` to `name`, reusing its allocation.
fn remember(known: &mut Option<String>, name: Option<&str>) {
    match name {
        Some(name) => {
            let known = known.get_or_insert_with(String::new);
            known.clear();
            known.push_str(name);
        }
        None => *known = None,
    }
}

/// The incidents a store has read or written, kept between batches so a
/// scan loads each incident once rather than once per batch. Every batch
/// checks SQLite's `data_version` once it holds the write lock: if
/// another connection committed since, the incidents it changed (listed
/// in `incident_changes`, see `schema::INCIDENT_CHANGES`) are forgotten,
/// or everything when that list cannot tell (an older schema, rows pruned
/// since). A rolled-back batch discards it all.
#[derive(Default)]
pub(super) struct Cache {
    data_version: Option<i64>,
    /// The last `incident_changes` row this cache accounts for: none
    /// newer is reflected in it. `None`: unknown (start afresh).
    changes_seen: Option<i64>,
    /// The number of the current batch, counted from the first.
    batch: u64,
    /// Campaign → its open incident (or none). Looked up once or twice
    /// per line: foldhash, randomly seeded (keys are attacker-chosen).
    open_by_key: HashMap<CampaignKey, Option<IncidentId>, foldhash::fast::RandomState>,
    loaded: HashMap<IncidentId, Loaded, foldhash::fast::RandomState>,
    /// A buffer for compressing evidence chunks, reused.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("incidents", &self.loaded.len()).finish()
    }
}

/// Campaigns looked up (most without an incident) kept per cached
/// incident allowed: beyond, the cache is emptied after a commit too, so
/// that a stream of new addresses cannot grow it without end.
const CACHED_KEYS_PER_INCIDENT: usize = 4;

/// Distinct hosts and users an incident without its sets in memory
/// collects in one batch before it reads them in.
const UNCHECKED_NAMES_MAX: usize = 256;

/// Estimated memory of one cached name (a `String` in a set, its
/// allocation and the set's share), for `max_cached_name_bytes`.
const CACHED_NAME_BYTES: usize = 64;

impl Cache {
    /// Incidents cached.
    pub(super) fn len(&self) -> usize {
        self.loaded.len()
    }

    /// The estimated memory of the cached incidents' names.
    pub(super) fn name_bytes(&self) -> usize {
        self.loaded.values().map(Loaded::name_bytes).sum()
    }

    /// Whether incident `id` is cached.
    #[cfg(test)]
    pub(super) fn holds(&self, id: IncidentId) -> bool {
        self.loaded.contains_key(&id)
    }

    /// Whether incident `id` is cached with its name sets.
    #[cfg(test)]
    pub(super) fn holds_names(&self, id: IncidentId) -> bool {
        self.loaded.get(&id).is_some_and(|l| l.names_loaded)
    }

    /// Keeps memory bounded whatever the number of attackers: past the
    /// name budget, the incidents used longest ago let their name sets go
    /// until a quarter of the budget is free (the incidents stay: their
    /// attempts' names are checked at commit); past the count cap, the
    /// incidents this batch did not use go first, then everything.
    fn bound(&mut self, options: &StoreOptions) {
        let batch = self.batch;
        let mut name_bytes = self.name_bytes();
        if name_bytes > options.max_cached_name_bytes {
            let target = options.max_cached_name_bytes / 4 * 3;
            let mut holders: Vec<(u64, IncidentId)> = self
                .loaded
                .iter()
                .filter(|(_, l)| l.names_loaded)
                .map(|(id, l)| (l.used_in, *id))
                .collect();
            holders.sort_unstable();
            for (_, id) in holders {
                if name_bytes <= target {
                    break;
                }
                let loaded = self.loaded.get_mut(&id).expect("listed above");
                name_bytes -= loaded.name_bytes();
                loaded.unload_names();
            }
        }
        let max = options.max_cached_incidents;
        if self.open_by_key.len() > max.saturating_mul(CACHED_KEYS_PER_INCIDENT) {
            // Lookups only (most of them campaigns without an incident):
            // done again when needed.
            self.open_by_key.clear();
        }
        if self.loaded.len() > max {
            self.loaded.retain(|_, loaded| loaded.used_in == batch);
            self.open_by_key.clear();
            if self.loaded.len() > max {
                self.clear();
            }
        }
    }

    fn clear(&mut self) {
        self.data_version = None;
        self.changes_seen = None;
        self.open_by_key.clear();
        self.loaded.clear();
    }

    /// Empties the cache, which now reflects the database at `version`.
    fn start_afresh(&mut self, version: i64) {
        self.clear();
        self.data_version = Some(version);
    }

    /// Brings the cache in line with what other connections committed,
    /// inside a transaction that holds the write lock. `tracked`: the
    /// store has `incident_changes`.
    fn catch_up(&mut self, conn: &Connection, tracked: bool) -> rusqlite::Result<()> {
        self.batch += 1;
        let version: i64 = conn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if self.data_version == Some(version) {
            return Ok(());
        }
        let seen = self.changes_seen.filter(|_| tracked && self.data_version.is_some());
        let Some(seen) = seen else {
            self.start_afresh(version);
            return Ok(());
        };
        if oldest_change(conn)?.is_some_and(|oldest| oldest > seen + 1) {
            // Changes this cache has not seen were pruned.
            self.start_afresh(version);
            return Ok(());
        }
        self.data_version = Some(version);
        let mut stmt = conn.prepare_cached(
            "SELECT c.seq, c.incident_id, i.subject_kind, i.subject \
             FROM incident_changes c LEFT JOIN incidents i ON i.id = c.incident_id \
             WHERE c.seq > ?1 ORDER BY c.seq",
        )?;
        let rows = stmt.query_map([seen], |row| {
            let key = match (row.get::<_, Option<String>>(2)?, row.get::<_, Option<String>>(3)?) {
                (Some(kind), Some(subject)) => {
                    kind.parse::<SubjectKind>().ok().map(|kind| CampaignKey { kind, subject })
                }
                _ => None,
            };
            Ok((row.get::<_, i64>(0)?, IncidentId(row.get(1)?), key))
        })?;
        let mut last = seen;
        for row in rows {
            let (seq, id, key) = row?;
            last = seq;
            if let Some(loaded) = self.loaded.remove(&id) {
                self.open_by_key.remove(&loaded.campaign.key);
            }
            // Opened, closed or reopened by another: whatever this cache
            // believed of its campaign may be wrong now.
            match key {
                Some(key) => {
                    self.open_by_key.remove(&key);
                }
                // An incident this build cannot place.
                None => {
                    self.start_afresh(version);
                    return Ok(());
                }
            }
        }
        self.changes_seen = Some(last);
        Ok(())
    }

    /// At the end of a transaction of this connection, before it commits:
    /// its own changes are in the cache already. Prunes the oldest rows.
    fn note_own_changes(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        // Two queries: SQLite reads min() or max() alone from one end of
        // the table, but both in one query by scanning all of it.
        let newest: Option<i64> = conn
            .prepare_cached("SELECT max(seq) FROM incident_changes")?
            .query_row([], |row| row.get(0))?;
        let newest = newest.unwrap_or(0);
        if let Some(oldest) = oldest_change(conn)? {
            if newest - oldest >= 2 * INCIDENT_CHANGES_KEPT {
                conn.prepare_cached("DELETE FROM incident_changes WHERE seq <= ?1")?
                    .execute([newest - INCIDENT_CHANGES_KEPT])?;
            }
        }
        self.changes_seen = Some(newest);
        Ok(())
    }
}

fn oldest_change(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT min(seq) FROM incident_changes")?.query_row([], |row| row.get(0))
}

/// The evidence text in one commit past which it is compressed on a
/// thread of its own (a daemon's batch holds far less).
const COMPRESS_APART_BYTES: usize = 256 << 10;

/// Evidence a large commit compresses apart (see [`Batch::flush`]).
enum Compress {
    /// The last records of an incident's lines, with texts.
    Lines(IncidentId, LinesChunk),
    /// Its latest lines, and where their window starts.
    Latest(IncidentId, i64, LatestRing),
}

/// [`Compress`] done: the chunk and its bytes as stored.
enum Compressed {
    Lines(IncidentId, LinesChunk, Vec<u8>),
    Latest(IncidentId, i64, LatestChunk, Vec<u8>),
}

/// Whether the store's schema lists changed incidents (version 6 on).
fn track_changes(options: &StoreOptions) -> bool {
    options.migrations.iter().any(|m| m.sql == super::schema::INCIDENT_CHANGES)
}

/// Rows of `incident_changes` kept at least: a connection that has not
/// looked for longer than this many changes forgets its whole cache.
const INCIDENT_CHANGES_KEPT: i64 = 65_536;

/// One write transaction. See [`super::Store::batch`]. Dropping it without
/// [`Batch::commit`] rolls everything back.
pub struct Batch<'s> {
    conn: &'s Connection,
    path: &'s Path,
    options: &'s StoreOptions,
    layout: EvidenceLayout,
    cache: &'s mut Cache,
    finished: bool,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Nothing of this batch may survive, in the database or in
            // the cache. A failed ROLLBACK means SQLite already rolled
            // back (it does on I/O errors), so there is nothing to add.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.cache.clear();
        }
    }
}

const INSERT_LINES: &str = "INSERT INTO evidence_lines \
                            (incident_id, first_seq, last_seq, lines, data) \
                            VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_LATEST: &str = "INSERT INTO evidence_latest \
                             (incident_id, first_seq, last_seq, lines, data) \
                             VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_LEGACY_KEPT: &str =
    "INSERT INTO evidence (incident_id, first_seq, last_seq, lines, data) \
                               VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_LEGACY_RECENT: &str = "INSERT INTO evidence_recent \
                             (incident_id, first_seq, last_seq, lines, data) \
                             VALUES (?1, ?2, ?3, ?4, ?5)";
const DELETE_LATEST: &str = "DELETE FROM evidence_latest WHERE incident_id = ?1 AND last_seq < ?2";
const DELETE_LEGACY_RECENT: &str =
    "DELETE FROM evidence_recent WHERE incident_id = ?1 AND last_seq < ?2";

impl<'s> Batch<'s> {
    pub(super) fn begin(
        conn: &'s Connection,
        path: &'s Path,
        options: &'s StoreOptions,
        layout: EvidenceLayout,
        cache: &'s mut Cache,
    ) -> Result<Batch<'s>, StoreError> {
        let fail = |e| StoreError::from_sqlite(path, options.busy_timeout, e);
        // IMMEDIATE takes the write lock now (waiting up to the busy
        // timeout), so the batch never fails half-way for a lock.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
        let batch = Batch { conn, path, options, layout, cache, finished: false };
        batch.cache.catch_up(conn, track_changes(options)).map_err(fail)?;
        Ok(batch)
    }

    /// The transaction's connection, for other modules' tables (bans, the
    /// alert outbox) so that their rows commit with the incidents.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    fn error(&self, err: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(self.path, self.options.busy_timeout, err)
    }

    /// The open incident of `key`, if any.
    pub fn find_open_incident(
        &mut self,
        key: &CampaignKey,
    ) -> Result<Option<IncidentId>, StoreError> {
        if let Some(known) = self.cache.open_by_key.get(key) {
            return Ok(*known);
        }
        let found = find_open(self.conn, key).map_err(|e| self.error(e))?;
        self.cache.open_by_key.insert(key.clone(), found);
        Ok(found)
    }

    /// Merges `obs` into the open incident of its campaign, or opens one.
    /// An opening writes a `detected` timeline entry, an escalation an
    /// `escalated` one; a plain update writes none (the incident's
    /// counters and evidence record it).
    ///
    /// Evidence: every line is counted and digested; the first
    /// `evidence.first` lines and the latest `evidence.latest` are kept,
    /// and so is the last line of an escalating observation (the line that
    /// raised the severity is never lost to the cap).
    pub fn open_or_update_incident(
        &mut self,
        mut obs: Observation,
    ) -> Result<(IncidentId, Change), StoreError> {
        let limits = self.options.limits;
        let (id, change) = match self.find_open_incident(&obs.key)? {
            None => {
                let campaign = Campaign::open(&obs, &limits);
                let id = insert_incident(self.conn, &campaign, obs.last_seen)
                    .map_err(|e| self.error(e))?;
                let detail = format!(
                    "opened by rule {} with severity {}: {} attempt(s) from {}",
                    obs.rule, obs.severity, obs.attempts, obs.key
                );
                self.insert_timeline(
                    id,
                    obs.last_seen,
                    &Actor::Automatic,
                    TimelineKind::Detected,
                    &detail,
                )?;
                self.cache.open_by_key.insert(obs.key.clone(), Some(id));
                let mut loaded = Loaded::new(campaign, true, self.cache.batch, true);
                for kind in NameKind::ALL {
                    let names = &kind.set(&loaded.campaign).kept;
                    loaded.new_names.extend(names.iter().map(|n| (kind, n.clone())));
                }
                self.cache.loaded.insert(id, loaded);
                (id, Change::Opened)
            }
            Some(id) => {
                self.load(id)?;
                let loaded = self.cache.loaded.get_mut(&id).expect("loaded above");
                // Without the sets in memory, the hosts and users wait to be
                // checked (the rules are always in memory).
                let (hosts, users) = if loaded.names_loaded {
                    Default::default()
                } else {
                    (std::mem::take(&mut obs.hosts), std::mem::take(&mut obs.users))
                };
                let unseen = unseen_names(&loaded.campaign, &obs);
                let change = loaded.campaign.merge(&obs, &limits);
                if !unseen.is_empty() {
                    let added = newly_kept(&loaded.campaign, unseen);
                    if let Some(index) = &mut loaded.user_index {
                        let users = added.iter().filter(|(kind, _)| *kind == NameKind::User);
                        index.extend(users.map(|(_, name)| name.clone()));
                    }
                    loaded.new_names.extend(added);
                }
                let hosts = hosts.iter().map(|name| (NameKind::Host, name.as_str()));
                let users = users.iter().map(|name| (NameKind::User, name.as_str()));
                loaded.note_unchecked(hosts.chain(users), self.conn, self.path, id, &limits)?;
                loaded.dirty = true;
                if let Change::Escalated { from, to } = change {
                    let detail = format!("severity {from} → {to} (rule {})", obs.rule);
                    self.insert_timeline(
                        id,
                        obs.last_seen,
                        &Actor::Automatic,
                        TimelineKind::Escalated,
                        &detail,
                    )?;
                }
                (id, change)
            }
        };
        let pin_last = matches!(change, Change::Escalated { .. });
        self.record_lines(id, &obs.evidence, pin_last)?;
        Ok((id, change))
    }

    /// One more attempt of an open incident's campaign, seen after the
    /// finding that opened it: it adds to the attempts, widens the seen
    /// window, joins the host and user to their bounded sets and its line
    /// to the evidence. It never changes the severity and writes no
    /// timeline row (the counters record it); this is the hot path of a
    /// scan through a long attack, so it builds no [`Observation`].
    ///
    /// `same_as`: this very line's record in another incident, made in
    /// this batch (what an earlier call returned); the record here then
    /// points there for the line's SHA-256 instead of repeating it.
    /// Returns where this line's record is.
    pub fn record_attempt(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        host: Option<&str>,
        user: Option<&str>,
        evidence: EvidenceRef<'_>,
        same_as: Option<RecordedLine>,
    ) -> Result<RecordedLine, StoreError> {
        self.load(id)?;
        let limits = self.options.limits;
        let cache = &mut *self.cache;
        let loaded = cache.loaded.get_mut(&id).expect("loaded above");
        let scratch = &mut cache.scratch;
        let campaign = &mut loaded.campaign;
        campaign.attempts = campaign.attempts.saturating_add(1);
        campaign.first_seen = campaign.first_seen.min(at);
        campaign.last_seen = campaign.last_seen.max(at);
        if loaded.names_loaded {
            loaded.note_names(host, user, &limits);
        } else {
            let names = host.map(|h| (NameKind::Host, h)).into_iter();
            let names = names.chain(user.map(|u| (NameKind::User, u)));
            loaded.note_unchecked(names, self.conn, self.path, id, &limits)?;
        }
        let cap = limits.evidence;
        let seq = loaded.campaign.note_evidence(&evidence.sha256);
        loaded.dirty = true;
        let keep = cap.keeps_first(seq);
        let layout = self.layout;
        loaded
            .record_line(self.conn, layout, id, cap.latest, seq, evidence, keep, same_as, scratch)
            .map_err(|e| StoreError::from_sqlite(self.path, self.options.busy_timeout, e))?;
        Ok(RecordedLine { incident: id, seq })
    }

    /// The aggregate of incident `id` as this batch has made it so far,
    /// with all its names.
    pub fn campaign(&mut self, id: IncidentId) -> Result<&Campaign, StoreError> {
        self.load_names(id)?;
        Ok(&self.cache.loaded.get(&id).expect("loaded above").campaign)
    }

    /// The rule that opened incident `id` and all the rules that fired in
    /// it (without reading its other names).
    pub fn rules(&mut self, id: IncidentId) -> Result<(&str, &BoundedSet), StoreError> {
        self.load(id)?;
        let campaign = &self.cache.loaded.get(&id).expect("loaded above").campaign;
        Ok((&campaign.rule, &campaign.rules))
    }

    fn record_lines(
        &mut self,
        id: IncidentId,
        lines: &[Evidence],
        pin_last: bool,
    ) -> Result<(), StoreError> {
        let cap = self.options.limits.evidence;
        let cache = &mut *self.cache;
        let loaded = cache.loaded.get_mut(&id).expect("incident loaded before its evidence");
        loaded.dirty = true;
        for (i, ev) in lines.iter().enumerate() {
            let seq = loaded.campaign.note_evidence(&ev.sha256);
            let keep = cap.keeps_first(seq) || (pin_last && i + 1 == lines.len());
            let (layout, scratch) = (self.layout, &mut cache.scratch);
            loaded
                .record_line(
                    self.conn,
                    layout,
                    id,
                    cap.latest,
                    seq,
                    ev.as_ref(),
                    keep,
                    None,
                    scratch,
                )
                .map_err(|e| StoreError::from_sqlite(self.path, self.options.busy_timeout, e))?;
        }
        Ok(())
    }

    /// Attaches evidence explicitly (eradication, file integrity, a
    /// person's finding): always kept whatever the cap, counted in the
    /// digest, and recorded in the timeline.
    pub fn add_evidence(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        evidence: Evidence,
    ) -> Result<u64, StoreError> {
        let detail =
            format!("{}:{} sha256 {}", evidence.file, evidence.offset, evidence.sha256_hex());
        self.add_evidence_described(id, at, actor, evidence, &detail)
    }

    /// [`Batch::add_evidence`] with the timeline entry's sentence chosen by
    /// the caller (a summary of what the evidence shows), so that one
    /// attachment is one `evidence_added` entry.
    pub fn add_evidence_described(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        evidence: Evidence,
        detail: &str,
    ) -> Result<u64, StoreError> {
        self.load(id)?;
        let cache = &mut *self.cache;
        let loaded = cache.loaded.get_mut(&id).expect("loaded above");
        let seq = loaded.campaign.note_evidence(&evidence.sha256);
        loaded.dirty = true;
        // Kept whatever the cap, with the batch's other lines of the
        // incident (their records are consecutive).
        let (latest, scratch) = (self.options.limits.evidence.latest, &mut cache.scratch);
        loaded
            .record_line(
                self.conn,
                self.layout,
                id,
                latest,
                seq,
                evidence.as_ref(),
                true,
                None,
                scratch,
            )
            .map_err(|e| StoreError::from_sqlite(self.path, self.options.busy_timeout, e))?;
        self.insert_timeline(id, at, actor, TimelineKind::EvidenceAdded, detail)?;
        Ok(seq)
    }

    /// The lifecycle state of an incident, as this transaction sees it.
    pub fn incident_state(&mut self, id: IncidentId) -> Result<State, StoreError> {
        self.load(id)?;
        Ok(self.cache.loaded.get(&id).expect("loaded above").campaign.state)
    }

    /// Appends a timeline entry; returns its id.
    pub fn add_timeline(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        kind: TimelineKind,
        detail: &str,
    ) -> Result<i64, StoreError> {
        self.ensure_exists(id)?;
        self.insert_timeline(id, at, actor, kind, detail)
    }

    /// Moves an incident to `to` (see [`State::check_transition`]) and
    /// records who did it and when. Closing frees its campaign: the next
    /// attempt opens a new incident.
    pub fn set_state(
        &mut self,
        id: IncidentId,
        to: State,
        at: Timestamp,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.load(id)?;
        let loaded = self.cache.loaded.get_mut(&id).expect("loaded above");
        let from = loaded.campaign.state;
        from.check_transition(to).map_err(|source| StoreError::Transition { id, source })?;
        loaded.campaign.state = to;
        let key = loaded.campaign.key.clone();
        // Written now, not at commit: the open-campaign index must see a
        // closed incident as closed before a new one for the key is opened.
        self.conn
            .prepare_cached("UPDATE incidents SET state = ?1 WHERE id = ?2")
            .and_then(|mut stmt| stmt.execute(params![to.as_str(), id.0]))
            .map_err(|e| self.error(e))?;
        if !to.is_open() {
            self.cache.open_by_key.insert(key, None);
        }
        let detail = hikeshi_core::lifecycle::state_changed_detail(from, to);
        self.insert_timeline(id, at, actor, TimelineKind::StateChanged, &detail)?;
        Ok(())
    }

    /// Stores `value` under `key` (a file cursor), replacing the previous
    /// one, in this transaction.
    pub fn set_cursor(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO cursors (key, value) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![key, value]))
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The value stored under `key`, as this transaction sees it.
    pub fn cursor(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        read_cursor(self.conn, key).map_err(|e| self.error(e))
    }

    /// Writes every touched incident and commits. Nothing of the batch is
    /// visible to anyone before this returns `Ok`.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.flush()?;
        if track_changes(self.options) {
            self.cache.note_own_changes(self.conn).map_err(|e| self.error(e))?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.error(e))?;
        self.finished = true;
        self.cache.bound(self.options);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        // In id order: neighbouring incidents share pages.
        let mut dirty: Vec<IncidentId> =
            self.cache.loaded.iter().filter(|(_, l)| l.dirty).map(|(id, _)| *id).collect();
        dirty.sort_unstable();
        let EvidenceLayout::Current { legacy_rolling, .. } = self.layout else {
            return self.flush_incidents(&dirty);
        };
        // The texts this commit compresses: the first lines' not yet
        // written, and the latest lines.
        let text_bytes: usize = dirty
            .iter()
            .map(|id| {
                let loaded = &self.cache.loaded[id];
                let first = if loaded.lines.texts > 0 { loaded.lines.data.len() } else { 0 };
                first + loaded.latest.slots.iter().map(|s| s.text.len()).sum::<usize>()
            })
            .sum();
        if text_bytes < COMPRESS_APART_BYTES {
            return self.flush_incidents(&dirty);
        }
        // Enough text (a scan's end of file) that compressing it on a
        // thread of its own, while this one writes the rest, shortens the
        // commit. The chunks are moved out; `flush_incidents` then finds
        // nothing to write for them.
        let cap = self.options.limits.evidence;
        let mut work: Vec<Compress> = Vec::new();
        for id in &dirty {
            let loaded = self.cache.loaded.get_mut(id).expect("listed above");
            if loaded.lines.texts > 0 {
                work.push(Compress::Lines(*id, std::mem::take(&mut loaded.lines)));
            }
            if !loaded.latest.is_empty() {
                let window_start = to_i64(cap.latest_start(loaded.campaign.evidence_lines));
                work.push(Compress::Latest(*id, window_start, std::mem::take(&mut loaded.latest)));
            }
        }
        std::thread::scope(|scope| {
            // Unbounded: the compressed chunks wait for this thread to finish
            // the rest (a few MiB at most), rather than the compression.
            let (tx, rx) = std::sync::mpsc::channel::<Compressed>();
            scope.spawn(move || {
                let mut scratch = Vec::new();
                for job in work {
                    let done = match job {
                        Compress::Lines(id, chunk) => {
                            let stored = chunk.stored(&mut scratch).to_vec();
                            Compressed::Lines(id, chunk, stored)
                        }
                        Compress::Latest(id, window_start, ring) => {
                            let chunk = ring.chunk();
                            let stored = evidence::stored(&chunk.data, &mut scratch).to_vec();
                            Compressed::Latest(id, window_start, chunk, stored)
                        }
                    };
                    if tx.send(done).is_err() {
                        return; // The flush failed.
                    }
                }
            });
            self.flush_incidents(&dirty)?;
            for done in rx {
                let written = match done {
                    Compressed::Lines(id, chunk, stored) => {
                        insert_lines_stored(self.conn, id, &chunk, &stored)
                    }
                    Compressed::Latest(id, window_start, chunk, stored) => {
                        write_latest(self.conn, id, &chunk, &stored, window_start, legacy_rolling)
                    }
                };
                written.map_err(|e| self.error(e))?;
            }
            Ok(())
        })
    }

    /// Writes each of `dirty`'s rows, names and evidence.
    fn flush_incidents(&mut self, dirty: &[IncidentId]) -> Result<(), StoreError> {
        let limits = self.options.limits;
        let cap = limits.evidence;
        // Only a store opened without the audit migration (older-schema
        // tests and benchmarks) has no chain to append to.
        let audited = self.options.migrations.iter().any(|m| m.sql == super::audit::SCHEMA);
        for &id in dirty {
            let cache = &mut *self.cache;
            let loaded = cache.loaded.get_mut(&id).expect("listed above");
            let scratch = &mut cache.scratch;
            if !loaded.unchecked.is_empty() {
                let added = check_unchecked(
                    self.conn,
                    id,
                    &mut loaded.unchecked,
                    &mut loaded.campaign,
                    &limits,
                )
                .map_err(|e| StoreError::from_sqlite(self.path, self.options.busy_timeout, e))?;
                loaded.new_names.extend(added);
            }
            let c = &loaded.campaign;
            let names_loaded = loaded.names_loaded;
            let mut write = || -> rusqlite::Result<()> {
                // `state` is not written here (set_state writes it at
                // once): leaving indexed columns out of the SET list spares
                // SQLite the index updates.
                self.conn
                    .prepare_cached(
                        "UPDATE incidents SET rules_omitted = ?1, severity = ?2, \
                         first_seen = ?3, last_seen = ?4, attempts = ?5, hosts_omitted = ?6, \
                         users_omitted = ?7, evidence_lines = ?8, evidence_digest = ?9 \
                         WHERE id = ?10",
                    )?
                    .execute(params![
                        to_i64(c.rules.omitted),
                        c.severity.as_str(),
                        c.first_seen.to_string(),
                        c.last_seen.to_string(),
                        to_i64(c.attempts),
                        to_i64(c.hosts.omitted),
                        to_i64(c.users.omitted),
                        to_i64(c.evidence_lines),
                        &c.evidence_digest[..],
                        id.0,
                    ])?;
                let mut names = self.conn.prepare_cached(
                    "INSERT OR IGNORE INTO incident_names (incident_id, kind, name) \
                     VALUES (?1, ?2, ?3)",
                )?;
                for (kind, name) in &loaded.new_names {
                    names.execute(params![id.0, kind.as_str(), name])?;
                }
                if audited && !loaded.new_names.is_empty() {
                    // One audit entry for all the incident's names, not one
                    // per name: a spray of user names stays cheap.
                    let digest = if names_loaded {
                        let all = NameKind::ALL.into_iter().flat_map(|kind| {
                            kind.set(c)
                                .kept
                                .iter()
                                .map(move |n| (kind.as_str().as_bytes(), n.as_bytes()))
                        });
                        hikeshi_core::audit::names_digest(all)
                    } else {
                        digest_in_database(self.conn, id)?
                    };
                    super::audit::append(
                        self.conn,
                        hikeshi_core::audit::Action::Insert,
                        super::audit::NAMES_TABLE,
                        id.0,
                        &digest,
                    )?;
                }
                let window_start = to_i64(cap.latest_start(c.evidence_lines));
                match self.layout {
                    EvidenceLayout::Current { legacy_rolling, .. } => {
                        if !loaded.lines.is_empty() {
                            insert_lines(self.conn, id, &loaded.lines, scratch)?;
                        }
                        if !loaded.latest.is_empty() {
                            let chunk = loaded.latest.chunk();
                            let stored = evidence::stored(&chunk.data, scratch);
                            write_latest(
                                self.conn,
                                id,
                                &chunk,
                                stored,
                                window_start,
                                legacy_rolling,
                            )?;
                        }
                    }
                    EvidenceLayout::Legacy => {
                        if !loaded.legacy_kept.is_empty() {
                            insert_legacy(self.conn, INSERT_LEGACY_KEPT, id, &loaded.legacy_kept)?;
                        }
                        if !loaded.latest.is_empty() {
                            let mut chunk = LegacyChunk::default();
                            for line in loaded.latest.iter() {
                                chunk.push_ref(line.seq, line.as_ref());
                            }
                            insert_legacy(self.conn, INSERT_LEGACY_RECENT, id, &chunk)?;
                            self.conn
                                .prepare_cached(DELETE_LEGACY_RECENT)?
                                .execute(params![id.0, window_start])?;
                        }
                    }
                }
                Ok(())
            };
            write()
                .map_err(|e| StoreError::from_sqlite(self.path, self.options.busy_timeout, e))?;
            // Buffers go with the batch: the cache may hold tens of
            // thousands of incidents between batches.
            loaded.lines = LinesChunk::default();
            loaded.legacy_kept = LegacyChunk::default();
            loaded.latest = LatestRing::default();
            loaded.new_names.clear();
            loaded.dirty = false;
        }
        Ok(())
    }

    fn ensure_exists(&mut self, id: IncidentId) -> Result<(), StoreError> {
        if self.cache.loaded.contains_key(&id) {
            return Ok(());
        }
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM incidents WHERE id = ?1")
            .and_then(|mut stmt| stmt.exists([id.0]))
            .map_err(|e| self.error(e))?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::NoSuchIncident(id))
        }
    }

    fn load(&mut self, id: IncidentId) -> Result<(), StoreError> {
        let batch = self.cache.batch;
        if let Some(loaded) = self.cache.loaded.get_mut(&id) {
            loaded.used_in = batch;
            return Ok(());
        }
        // Its rules only: its other names wait until needed.
        let incident = read_incident(self.conn, self.path, id, &[NameKind::Rule])?
            .ok_or(StoreError::NoSuchIncident(id))?;
        self.cache.loaded.insert(id, Loaded::new(incident.campaign, false, batch, false));
        Ok(())
    }

    /// [`Batch::load`], with all the incident's names in memory.
    fn load_names(&mut self, id: IncidentId) -> Result<(), StoreError> {
        self.load(id)?;
        let loaded = self.cache.loaded.get_mut(&id).expect("loaded above");
        loaded.load_names(self.conn, self.path, id, &self.options.limits)
    }

    fn insert_timeline(
        &self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        kind: TimelineKind,
        detail: &str,
    ) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO timeline (incident_id, at, actor, kind, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id.0,
                    at.to_string(),
                    actor.to_string(),
                    kind.as_str(),
                    detail
                ])
            })
            .map_err(|e| self.error(e))?;
        Ok(self.conn.last_insert_rowid())
    }
}

/// Inserts one evidence chunk row with `sql`, whose parameters are the
/// incident, the first and last line numbers, the line count and the data.
fn insert_chunk(
    conn: &Connection,
    sql: &str,
    id: IncidentId,
    (first_seq, last_seq, lines): (u64, u64, u64),
    data: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute(params![
        id.0,
        to_i64(first_seq),
        to_i64(last_seq),
        to_i64(lines),
        data,
    ])?;
    Ok(())
}

fn insert_lines(
    conn: &Connection,
    id: IncidentId,
    chunk: &LinesChunk,
    scratch: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    insert_lines_stored(conn, id, chunk, chunk.stored(scratch))
}

/// [`insert_lines`] with the chunk already as stored (compressed apart).
fn insert_lines_stored(
    conn: &Connection,
    id: IncidentId,
    chunk: &LinesChunk,
    stored: &[u8],
) -> rusqlite::Result<()> {
    let seqs = (chunk.first_seq, chunk.last_seq(), chunk.lines);
    insert_chunk(conn, INSERT_LINES, id, seqs, stored)
}

/// Writes an incident's latest lines (`stored`: `chunk` as stored) and
/// deletes its chunks whose every line has left the window.
fn write_latest(
    conn: &Connection,
    id: IncidentId,
    chunk: &LatestChunk,
    stored: &[u8],
    window_start: i64,
    legacy_rolling: bool,
) -> rusqlite::Result<()> {
    let seqs = (chunk.first_seq, chunk.last_seq, chunk.lines);
    insert_chunk(conn, INSERT_LATEST, id, seqs, stored)?;
    conn.prepare_cached(DELETE_LATEST)?.execute(params![id.0, window_start])?;
    if legacy_rolling {
        conn.prepare_cached(DELETE_LEGACY_RECENT)?.execute(params![id.0, window_start])?;
    }
    Ok(())
}

fn insert_legacy(
    conn: &Connection,
    sql: &str,
    id: IncidentId,
    chunk: &LegacyChunk,
) -> rusqlite::Result<()> {
    let seqs = (chunk.first_seq.unwrap_or(0), chunk.last_seq, chunk.lines);
    insert_chunk(conn, sql, id, seqs, &chunk.data)
}

/// An `evidence_lines` record as read, with its SHA-256 found.
struct LineRecord {
    seq: u64,
    file: String,
    offset: u64,
    sha256: Sha256Digest,
    /// The exact bytes, if its chunk kept them.
    text: Option<Vec<u8>>,
}

/// Counters and offsets fit in i64 by a wide margin (2^63 bytes, lines or
/// attempts); saturate rather than wrap if one ever does not.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn find_open(conn: &Connection, key: &CampaignKey) -> rusqlite::Result<Option<IncidentId>> {
    conn.prepare_cached(
        "SELECT id FROM incidents WHERE subject_kind = ?1 AND subject = ?2 AND state <> 'closed'",
    )?
    .query_row(params![key.kind.as_str(), key.subject], |row| row.get(0).map(IncidentId))
    .optional()
}

fn insert_incident(
    conn: &Connection,
    c: &Campaign,
    opened_at: Timestamp,
) -> rusqlite::Result<IncidentId> {
    conn.prepare_cached(
        "INSERT INTO incidents (subject_kind, subject, rule, rules_omitted, severity, state, \
         first_seen, last_seen, attempts, hosts_omitted, users_omitted, evidence_lines, \
         evidence_digest, opened_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        c.key.kind.as_str(),
        c.key.subject,
        c.rule,
        to_i64(c.rules.omitted),
        c.severity.as_str(),
        c.state.as_str(),
        c.first_seen.to_string(),
        c.last_seen.to_string(),
        to_i64(c.attempts),
        to_i64(c.hosts.omitted),
        to_i64(c.users.omitted),
        to_i64(c.evidence_lines),
        &c.evidence_digest[..],
        opened_at.to_string(),
    ])?;
    Ok(IncidentId(conn.last_insert_rowid()))
}

fn read_cursor(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM cursors WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

const INCIDENT_COLUMNS: &str = "id, subject_kind, subject, rule, rules_omitted, severity, \
    state, first_seen, last_seen, attempts, hosts_omitted, users_omitted, evidence_lines, \
    evidence_digest, opened_at";

/// A stored value that does not decode: the database was edited by hand or
/// is damaged. Said with the row, never skipped.
pub(super) fn bad_value(path: &Path, what: String) -> StoreError {
    StoreError::BadValue { path: path.to_path_buf(), what }
}

/// The raw columns of an incident row, decoded by [`decode_incident`]
/// outside rusqlite's row callback so that decoding errors keep their
/// meaning.
struct RawIncident {
    id: i64,
    subject_kind: String,
    subject: String,
    rule: String,
    rules_omitted: i64,
    severity: String,
    state: String,
    first_seen: String,
    last_seen: String,
    attempts: i64,
    hosts_omitted: i64,
    users_omitted: i64,
    evidence_lines: i64,
    evidence_digest: Vec<u8>,
    opened_at: String,
}

fn raw_incident(row: &Row<'_>) -> rusqlite::Result<RawIncident> {
    Ok(RawIncident {
        id: row.get(0)?,
        subject_kind: row.get(1)?,
        subject: row.get(2)?,
        rule: row.get(3)?,
        rules_omitted: row.get(4)?,
        severity: row.get(5)?,
        state: row.get(6)?,
        first_seen: row.get(7)?,
        last_seen: row.get(8)?,
        attempts: row.get(9)?,
        hosts_omitted: row.get(10)?,
        users_omitted: row.get(11)?,
        evidence_lines: row.get(12)?,
        evidence_digest: row.get(13)?,
        opened_at: row.get(14)?,
    })
}

/// Decodes a row of `incidents`, with its names of `kinds`.
fn decode_incident(
    conn: &Connection,
    path: &Path,
    raw: RawIncident,
    kinds: &[NameKind],
) -> Result<Incident, StoreError> {
    let id = IncidentId(raw.id);
    let bad =
        |field: &str, detail: String| bad_value(path, format!("incident {id}, {field}: {detail}"));
    let time = |field: &str, text: &str| -> Result<Timestamp, StoreError> {
        text.parse::<Timestamp>().map_err(|e| bad(field, e.to_string()))
    };
    let count = |field: &str, n: i64| -> Result<u64, StoreError> {
        u64::try_from(n).map_err(|_| bad(field, format!("negative count {n}")))
    };
    let state: State = raw.state.parse().map_err(|e| bad("state", e))?;
    let evidence_digest: Sha256Digest =
        raw.evidence_digest.as_slice().try_into().map_err(|_| {
            bad("evidence_digest", format!("{} bytes, not 32", raw.evidence_digest.len()))
        })?;
    let campaign = Campaign {
        key: CampaignKey {
            kind: raw.subject_kind.parse::<SubjectKind>().map_err(|e| bad("subject_kind", e))?,
            subject: raw.subject,
        },
        rule: raw.rule,
        rules: BoundedSet::new(),
        severity: raw.severity.parse::<Severity>().map_err(|e| bad("severity", e))?,
        state,
        first_seen: time("first_seen", &raw.first_seen)?,
        last_seen: time("last_seen", &raw.last_seen)?,
        attempts: count("attempts", raw.attempts)?,
        hosts: BoundedSet::new(),
        users: BoundedSet::new(),
        evidence_lines: count("evidence_lines", raw.evidence_lines)?,
        evidence_digest,
    };
    let mut campaign = campaign;
    campaign.rules.omitted = count("rules_omitted", raw.rules_omitted)?;
    campaign.hosts.omitted = count("hosts_omitted", raw.hosts_omitted)?;
    campaign.users.omitted = count("users_omitted", raw.users_omitted)?;
    read_names(conn, path, id, kinds, &mut campaign)?;
    Ok(Incident {
        id,
        phase: state.nist_phase(),
        opened_at: time("opened_at", &raw.opened_at)?,
        campaign,
    })
}

fn read_incident(
    conn: &Connection,
    path: &Path,
    id: IncidentId,
    kinds: &[NameKind],
) -> Result<Option<Incident>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id.0], raw_incident).optional())
        .map_err(|e| StoreError::from_sqlite(path, std::time::Duration::ZERO, e))?;
    raw.map(|raw| decode_incident(conn, path, raw, kinds)).transpose()
}

impl super::Store {
    /// The incidents matching `filter`, oldest first.
    pub fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents");
        let state = filter.state.map(State::as_str);
        match (state, filter.open_only) {
            (Some(_), _) => sql.push_str(" WHERE state = ?1"),
            (None, true) => sql.push_str(" WHERE state <> 'closed'"),
            (None, false) => {}
        }
        sql.push_str(" ORDER BY id");
        let raws: Vec<RawIncident> = self
            .conn()
            .prepare_cached(&sql)
            .and_then(|mut stmt| match state {
                Some(s) => stmt.query_map([s], raw_incident)?.collect(),
                None => stmt.query_map([], raw_incident)?.collect(),
            })
            .map_err(|e| self.error(e))?;
        raws.into_iter()
            .map(|raw| decode_incident(self.conn(), self.path(), raw, &NameKind::ALL))
            .collect()
    }

    /// One incident with its timeline and kept evidence.
    pub fn get_incident(&self, id: IncidentId) -> Result<IncidentDetail, StoreError> {
        let incident = read_incident(self.conn(), self.path(), id, &NameKind::ALL)?
            .ok_or(StoreError::NoSuchIncident(id))?;
        let timeline = self.read_timeline(id)?;
        let evidence = self.read_evidence(&incident)?;
        Ok(IncidentDetail { incident, timeline, evidence })
    }

    /// One incident's aggregate, without its timeline and evidence.
    pub fn incident(&self, id: IncidentId) -> Result<Incident, StoreError> {
        read_incident(self.conn(), self.path(), id, &NameKind::ALL)?
            .ok_or(StoreError::NoSuchIncident(id))
    }

    /// The open incident of `key`, if any.
    pub fn find_open_incident(&self, key: &CampaignKey) -> Result<Option<IncidentId>, StoreError> {
        find_open(self.conn(), key).map_err(|e| self.error(e))
    }

    /// The value stored under `key` (a file cursor).
    pub fn cursor(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        read_cursor(self.conn(), key).map_err(|e| self.error(e))
    }

    /// [`Batch::open_or_update_incident`] in a transaction of its own.
    pub fn open_or_update_incident(
        &mut self,
        obs: Observation,
    ) -> Result<(IncidentId, Change), StoreError> {
        self.write(|b| b.open_or_update_incident(obs))
    }

    /// [`Batch::add_timeline`] in a transaction of its own.
    pub fn add_timeline(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        kind: TimelineKind,
        detail: &str,
    ) -> Result<i64, StoreError> {
        self.write(|b| b.add_timeline(id, at, actor, kind, detail))
    }

    /// [`Batch::add_evidence`] in a transaction of its own.
    pub fn add_evidence(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        evidence: Evidence,
    ) -> Result<u64, StoreError> {
        self.write(|b| b.add_evidence(id, at, actor, evidence))
    }

    /// [`Batch::set_state`] in a transaction of its own.
    pub fn set_state(
        &mut self,
        id: IncidentId,
        to: State,
        at: Timestamp,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        self.write(|b| b.set_state(id, to, at, actor))
    }

    fn read_timeline(&self, id: IncidentId) -> Result<Vec<StoredTimelineEntry>, StoreError> {
        type Raw = (i64, String, String, String, String);
        let raws: Vec<Raw> = self
            .conn()
            .prepare_cached(
                "SELECT id, at, actor, kind, detail FROM timeline WHERE incident_id = ?1 ORDER BY id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect()
            })
            .map_err(|e| self.error(e))?;
        raws.into_iter()
            .map(|(row_id, at, actor, kind, detail)| {
                let bad = |e: String| bad_value(self.path(), format!("timeline row {row_id}: {e}"));
                Ok(StoredTimelineEntry {
                    id: row_id,
                    entry: TimelineEntry {
                        at: at.parse().map_err(|e: jiff::Error| bad(e.to_string()))?,
                        actor: actor.parse().map_err(bad)?,
                        kind: kind.parse().map_err(bad)?,
                        detail,
                    },
                })
            })
            .collect()
    }

    /// Kept evidence: the first (and pinned) lines, plus the latest ones,
    /// by `seq`. A rolling chunk is deleted only once all its lines are
    /// older than the latest window, so a few lines just before the window
    /// may show too: every line shown is genuine.
    fn read_evidence(&self, incident: &Incident) -> Result<Vec<StoredEvidence>, StoreError> {
        let id = incident.id;
        let bad = |table: &str, chunk_id: i64, e: String| {
            bad_value(self.path(), format!("incident {id}, {table} chunk {chunk_id}: {e}"))
        };
        let mut out: Vec<StoredEvidence> = Vec::new();
        for table in ["evidence", "evidence_recent"] {
            for (chunk_id, _, data) in self.read_chunks(table, id)? {
                let records =
                    evidence::decode_legacy(&data).map_err(|e| bad(table, chunk_id, e))?;
                out.extend(
                    records.into_iter().map(|(seq, evidence)| StoredEvidence { seq, evidence }),
                );
            }
        }
        if matches!(self.layout(), EvidenceLayout::Current { .. }) {
            // The latest lines' texts, then the records they belong to.
            let mut latest: BTreeMap<u64, (i64, Vec<u8>)> = BTreeMap::new();
            for (chunk_id, _, data) in self.read_chunks("evidence_latest", id)? {
                let texts = evidence::decode_latest(&data)
                    .map_err(|e| bad("evidence_latest", chunk_id, e))?;
                latest.extend(texts.into_iter().map(|(seq, text)| (seq, (chunk_id, text))));
            }
            let shown = |r: &evidence::Record| r.text.is_some() || latest.contains_key(&r.seq);
            for record in self.line_records(id, shown)? {
                let line = match (record.text, latest.remove(&record.seq)) {
                    (Some(text), _) => text,
                    (None, Some((latest_chunk, text))) => {
                        if <[u8; 32]>::from(Sha256::digest(&text)) != record.sha256 {
                            return Err(bad(
                                "evidence_latest",
                                latest_chunk,
                                format!("line {} does not match its SHA-256", record.seq),
                            ));
                        }
                        text
                    }
                    (None, None) => continue,
                };
                let evidence = Evidence {
                    file: record.file,
                    offset: record.offset,
                    line,
                    sha256: record.sha256,
                };
                out.push(StoredEvidence { seq: record.seq, evidence });
            }
            if let Some((seq, (chunk_id, _))) = latest.into_iter().next() {
                return Err(bad("evidence_latest", chunk_id, format!("line {seq} has no record")));
            }
        }
        out.sort_by_key(|e| e.seq);
        // A pinned line may also sit in the rolling table: keep one copy.
        out.dedup_by_key(|e| e.seq);
        Ok(out)
    }

    /// The record of every evidence line of incident `id`, by `seq`. Lines
    /// recorded before schema version 5 have a record only if their text
    /// was kept. Folding their SHA-256s with
    /// [`hikeshi_core::incident::chain_evidence_digest`] gives the
    /// incident's evidence digest when none is missing.
    pub fn evidence_records(&self, id: IncidentId) -> Result<Vec<EvidenceRecord>, StoreError> {
        let incident = self.incident(id)?;
        let mut out: Vec<EvidenceRecord> = self
            .read_evidence(&incident)?
            .into_iter()
            .map(|kept| EvidenceRecord {
                seq: kept.seq,
                file: kept.evidence.file,
                offset: kept.evidence.offset,
                sha256: kept.evidence.sha256,
                text_kept: true,
            })
            .collect();
        if matches!(self.layout(), EvidenceLayout::Current { .. }) {
            out.extend(self.line_records(id, |_| true)?.into_iter().map(|r| EvidenceRecord {
                seq: r.seq,
                file: r.file,
                offset: r.offset,
                sha256: r.sha256,
                text_kept: false,
            }));
        }
        // Kept lines first among equal seqs: the kept copy wins.
        out.sort_by_key(|r| (r.seq, !r.text_kept));
        out.dedup_by_key(|r| r.seq);
        Ok(out)
    }

    /// The `evidence_lines` records of incident `id` that `wanted` picks,
    /// in `seq` order, each with its SHA-256: a record that points to the
    /// same line's record in another incident (see [`evidence`]) has it
    /// looked up there, and a pointer that does not lead to a record of
    /// the same file and offset holding a digest is damage.
    fn line_records(
        &self,
        id: IncidentId,
        wanted: impl Fn(&evidence::Record) -> bool,
    ) -> Result<Vec<LineRecord>, StoreError> {
        let mut records = self.decoded_lines(id)?;
        records.retain(|(_, r)| wanted(r));
        // The records pointed to, read once per incident they are in.
        let mut pointed: BTreeMap<RecordedLine, Option<(String, u64, Sha256Digest)>> = records
            .iter()
            .filter_map(|(_, r)| match r.digest {
                RecordDigest::SameAs(line) => Some((line, None)),
                RecordDigest::Sha256(_) => None,
            })
            .collect();
        let incidents: BTreeSet<IncidentId> = pointed.keys().map(|line| line.incident).collect();
        for other in incidents {
            for (_, r) in self.decoded_lines(other)? {
                if let Some(slot) = pointed.get_mut(&RecordedLine { incident: other, seq: r.seq }) {
                    *slot = match r.digest {
                        RecordDigest::Sha256(sha256) => Some((r.file, r.offset, sha256)),
                        RecordDigest::SameAs(_) => None,
                    };
                }
            }
        }
        records
            .into_iter()
            .map(|(chunk_id, r)| {
                let sha256 = match r.digest {
                    RecordDigest::Sha256(sha256) => sha256,
                    RecordDigest::SameAs(line) => match &pointed[&line] {
                        Some((file, offset, sha256)) if *file == r.file && *offset == r.offset => {
                            *sha256
                        }
                        found => {
                            let what = found.as_ref().map_or_else(
                                || "no record with a digest".to_string(),
                                |(file, offset, _)| {
                                    format!("a record of another line ({file}:{offset})")
                                },
                            );
                            return Err(bad_value(
                                self.path(),
                                format!(
                                    "incident {id}, evidence_lines chunk {chunk_id}: line {} \
                                     refers to incident {} line {}, which has {what}",
                                    r.seq, line.incident, line.seq
                                ),
                            ));
                        }
                    },
                };
                Ok(LineRecord { seq: r.seq, file: r.file, offset: r.offset, sha256, text: r.text })
            })
            .collect()
    }

    /// Every `evidence_lines` record of incident `id` as stored, with the
    /// id of its chunk.
    fn decoded_lines(&self, id: IncidentId) -> Result<Vec<(i64, evidence::Record)>, StoreError> {
        let mut records = Vec::new();
        for (chunk_id, first_seq, data) in self.read_chunks("evidence_lines", id)? {
            let bad = |e: String| {
                bad_value(
                    self.path(),
                    format!("incident {id}, evidence_lines chunk {chunk_id}: {e}"),
                )
            };
            let first_seq =
                u64::try_from(first_seq).map_err(|_| bad(format!("first_seq {first_seq}")))?;
            let decoded = evidence::decode_lines(&data, first_seq).map_err(bad)?;
            records.extend(decoded.into_iter().map(|r| (chunk_id, r)));
        }
        Ok(records)
    }

    /// The chunks of one incident in `table`: id, first_seq, data.
    fn read_chunks(
        &self,
        table: &str,
        id: IncidentId,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, StoreError> {
        self.conn()
            .prepare_cached(&format!(
                "SELECT id, first_seq, data FROM {table} WHERE incident_id = ?1 ORDER BY id"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
            })
            .map_err(|e| self.error(e))
    }
}
