//! The tamper-evident audit trail (ISO/IEC 27001:2022 A.8.15): a hash
//! chain over every change to incidents, their timeline and evidence,
//! bans and alerts.
//!
//! Each [`ChainEntry`] names one row change (`table`, `row_id`, `action`)
//! and the SHA-256 of the row's content after it ([`row_digest`]); it
//! carries the digest of the entry before it (`prev`) and its own
//! ([`entry_digest`] over all its fields). Hence:
//!
//! - an entry edited in place no longer matches its own digest;
//! - a deleted entry leaves a gap in `seq` and a `prev` that matches
//!   nothing before it;
//! - an inserted entry breaks the link of the entry after it;
//! - reordered entries link to the wrong neighbours;
//! - a row of an audited table edited, deleted or inserted behind the
//!   chain's back no longer matches the latest entry about it
//!   ([`check_rows`]).
//!
//! Rewriting the whole chain from some point on, or cutting its tail, is
//! only visible against a digest kept elsewhere: that is what the head
//! ([`ChainBreak`] of kind [`BreakKind::Truncated`]) is for.
//!
//! This module is pure: the application reads entries and rows and hands
//! them over.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::incident::{hex, Sha256Digest};

/// The `prev` of the first entry.
pub const GENESIS: Sha256Digest = [0; 32];

/// One value of a row, as SQLite types it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// The SHA-256 of a row's content: the table name and each value with its
/// type and length, so that no two different rows encode the same way.
/// The row id is not part of it (the entry names it), so two rows whose
/// contents were swapped can be recognised as such.
pub fn row_digest(table: &str, values: &[Value<'_>]) -> Sha256Digest {
    let mut h = Sha256::new();
    h.update(b"hikeshi-row-v1\0");
    put_bytes(&mut h, table.as_bytes());
    for value in values {
        match value {
            Value::Null => h.update([0u8]),
            Value::Integer(n) => {
                h.update([1u8]);
                h.update(n.to_be_bytes());
            }
            Value::Real(x) => {
                h.update([2u8]);
                h.update(x.to_bits().to_be_bytes());
            }
            Value::Text(t) => {
                h.update([3u8]);
                put_bytes(&mut h, t);
            }
            Value::Blob(b) => {
                h.update([4u8]);
                put_bytes(&mut h, b);
            }
        }
    }
    h.finalize().into()
}

/// The digest of an incident's kept names (`incident_names`: rules fired,
/// hosts attacked, user names tried), as one unit: `(kind, name)` pairs
/// in byte order, whatever order they are given in. The names are audited
/// per incident per batch with this digest, not one entry per name, so a
/// spray of user names costs one entry per batch.
pub fn names_digest<'a>(names: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Sha256Digest {
    let mut sorted: Vec<(&[u8], &[u8])> = names.into_iter().collect();
    sorted.sort_unstable();
    let mut values = Vec::with_capacity(sorted.len() * 2);
    for (kind, name) in sorted {
        values.push(Value::Text(kind));
        values.push(Value::Text(name));
    }
    row_digest("incident_names", &values)
}

fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// What happened to the row an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The row was inserted.
    Insert,
    /// The row was updated (incidents, bans, alerts change over time).
    Update,
    /// The row was deleted (only rolling evidence chunks legitimately go).
    Delete,
    /// The row existed before the audit trail did, and was taken in as is.
    Adopt,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Insert, Action::Update, Action::Delete, Action::Adopt];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Adopt => "adopt",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown audit action {s:?}"))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the chain, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainEntry {
    /// 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// When it was appended (RFC 3339, the database's clock).
    pub at: String,
    /// `insert`, `update`, `delete` or `adopt` (kept as stored text so
    /// that an edited value is reported, not rejected while reading).
    pub action: String,
    /// The audited table.
    pub table: String,
    /// The row's id in that table.
    pub row_id: i64,
    /// [`row_digest`] of the row after the change (of the row before it,
    /// for a deletion).
    #[serde(with = "crate::incident::digest_hex")]
    pub row_digest: Sha256Digest,
    /// The digest of the entry before (all zeros for the first).
    #[serde(with = "crate::incident::digest_hex")]
    pub prev: Sha256Digest,
    /// [`entry_digest`] of this entry.
    #[serde(with = "crate::incident::digest_hex")]
    pub digest: Sha256Digest,
}

/// The digest of an entry: every field but `digest` itself, each with its
/// length, under a version tag.
#[allow(clippy::too_many_arguments)]
pub fn entry_digest(
    seq: i64,
    at: &str,
    action: &str,
    table: &str,
    row_id: i64,
    row_digest: &Sha256Digest,
    prev: &Sha256Digest,
) -> Sha256Digest {
    let mut h = Sha256::new();
    h.update(b"hikeshi-audit-v1\0");
    h.update(seq.to_be_bytes());
    h.update(prev);
    put_bytes(&mut h, at.as_bytes());
    put_bytes(&mut h, action.as_bytes());
    put_bytes(&mut h, table.as_bytes());
    h.update(row_id.to_be_bytes());
    h.update(row_digest);
    h.finalize().into()
}

impl ChainEntry {
    /// Builds the entry that follows `prev` (digest computed).
    pub fn new(
        seq: i64,
        at: &str,
        action: Action,
        table: &str,
        row_id: i64,
        row_digest: Sha256Digest,
        prev: Sha256Digest,
    ) -> ChainEntry {
        let digest = entry_digest(seq, at, action.as_str(), table, row_id, &row_digest, &prev);
        ChainEntry {
            seq,
            at: at.to_string(),
            action: action.as_str().to_string(),
            table: table.to_string(),
            row_id,
            row_digest,
            prev,
            digest,
        }
    }

    /// Whether `digest` matches the other fields.
    pub fn is_self_consistent(&self) -> bool {
        self.digest
            == entry_digest(
                self.seq,
                &self.at,
                &self.action,
                &self.table,
                self.row_id,
                &self.row_digest,
                &self.prev,
            )
    }
}

/// How the trail was tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakKind {
    /// An entry, or an audited row, was changed in place.
    Edited,
    /// An entry, or an audited row, was removed.
    Deleted,
    /// An entry, or a row of an audited table, was added behind the
    /// chain's back.
    Inserted,
    /// Entries, or the contents of audited rows, were swapped.
    Reordered,
    /// The chain no longer contains the head kept elsewhere: its tail was
    /// cut off or rewritten.
    Truncated,
}

impl BreakKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::Deleted => "deleted",
            BreakKind::Inserted => "inserted",
            BreakKind::Reordered => "reordered",
            BreakKind::Truncated => "truncated",
        }
    }
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first place where the trail does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit trail broken: {what} ({kind}): {detail}")]
pub struct ChainBreak {
    pub kind: BreakKind,
    /// Position in the entries as read, in `seq` order (0-based); `None`
    /// for a row-level break found without a matching entry.
    pub index: Option<usize>,
    /// The entry concerned (its `seq`), when there is one.
    pub seq: Option<i64>,
    /// The row concerned (`table`, `row_id`), when there is one.
    pub row: Option<(String, i64)>,
    /// Who is concerned, in words: `entry 17`, `timeline row 5`.
    pub what: String,
    /// What does not match.
    pub detail: String,
}

fn entry_break(kind: BreakKind, index: usize, e: &ChainEntry, detail: String) -> ChainBreak {
    ChainBreak {
        kind,
        index: Some(index),
        seq: Some(e.seq),
        row: Some((e.table.clone(), e.row_id)),
        what: format!("entry {} ({} {} row {})", e.seq, e.action, e.table, e.row_id),
        detail,
    }
}

/// Checks the chain itself: `entries` as read in `seq` order. Returns the
/// first break.
pub fn verify_chain(entries: &[ChainEntry]) -> Result<(), ChainBreak> {
    let mut expected_seq = 1i64;
    let mut prev_digest = GENESIS;
    for (i, e) in entries.iter().enumerate() {
        if e.prev != prev_digest {
            return Err(classify_link_break(entries, i, expected_seq, &prev_digest));
        }
        if e.seq != expected_seq {
            // Linked correctly but numbered wrongly: the number was edited.
            return Err(entry_break(
                BreakKind::Edited,
                i,
                e,
                format!(
                    "it links to the entry before but is numbered {}, not {expected_seq}",
                    e.seq
                ),
            ));
        }
        if !e.is_self_consistent() {
            // The next entry links past it: it was slipped in.
            if entries.get(i + 1).is_some_and(|next| next.prev == prev_digest) {
                return Err(entry_break(
                    BreakKind::Inserted,
                    i,
                    e,
                    "the entry after it was chained directly after the one before it: \
                     this one was added between them"
                        .to_string(),
                ));
            }
            return Err(entry_break(
                BreakKind::Edited,
                i,
                e,
                "its digest does not match its contents".to_string(),
            ));
        }
        expected_seq = e.seq.saturating_add(1);
        prev_digest = e.digest;
    }
    Ok(())
}

/// Entry `i` does not link to the entry before it: say why, as precisely
/// as the neighbours allow.
fn classify_link_break(
    entries: &[ChainEntry],
    i: usize,
    expected_seq: i64,
    prev_digest: &Sha256Digest,
) -> ChainBreak {
    let e = &entries[i];
    let shown_prev =
        if i == 0 { "the start".to_string() } else { format!("entry {}", entries[i - 1].seq) };
    // It links to an entry that comes later: the two were swapped.
    if let Some(later) = entries[i + 1..].iter().find(|l| l.digest == e.prev) {
        return entry_break(
            BreakKind::Reordered,
            i,
            e,
            format!("it follows {shown_prev} but was chained after entry {}", later.seq),
        );
    }
    // It links to the entry two before: the one just before was slipped
    // in (a well-formed forgery links correctly itself).
    if i >= 2 && e.prev == entries[i - 2].digest {
        let forged = &entries[i - 1];
        return entry_break(
            BreakKind::Inserted,
            i - 1,
            forged,
            format!(
                "entry {} was chained directly after entry {}: this one was added between them",
                e.seq,
                entries[i - 2].seq
            ),
        );
    }
    // Its successor links to its predecessor: it was slipped in between.
    if let Some(next) = entries.get(i + 1) {
        if next.prev == *prev_digest {
            return entry_break(
                BreakKind::Inserted,
                i,
                e,
                format!("entry {} was chained directly after {shown_prev}: this one was added between them", next.seq),
            );
        }
    }
    if e.seq > expected_seq {
        let missing = if e.seq - expected_seq == 1 {
            format!("entry {expected_seq} is missing")
        } else {
            format!("entries {expected_seq} to {} are missing", e.seq - 1)
        };
        return entry_break(BreakKind::Deleted, i, e, format!("{missing} before it"));
    }
    if e.is_self_consistent() && e.seq == expected_seq {
        // Whole and correctly numbered, but chained after something else:
        // what it followed is gone (and the rest renumbered), or replaced.
        return entry_break(
            BreakKind::Deleted,
            i,
            e,
            format!("it was chained after an entry that is no longer there (it now follows {shown_prev})"),
        );
    }
    entry_break(
        BreakKind::Edited,
        i,
        e,
        format!("it does not link to {shown_prev} and its digest does not match its contents"),
    )
}

/// Checks that the chain contains `head` (a digest printed by `hikeshi
/// audit head` and kept off the host). Entries after it are normal: they
/// were appended since.
pub fn check_head(entries: &[ChainEntry], head: &Sha256Digest) -> Result<(), ChainBreak> {
    if entries.iter().any(|e| &e.digest == head) {
        return Ok(());
    }
    let last = entries.last();
    Err(ChainBreak {
        kind: BreakKind::Truncated,
        index: last.map(|_| entries.len() - 1),
        seq: last.map(|e| e.seq),
        row: None,
        what: match last {
            Some(e) => format!("the chain (now ending at entry {})", e.seq),
            None => "the chain (now empty)".to_string(),
        },
        detail: format!(
            "the kept head {} is not in it: entries were cut off its end or rewritten",
            hex(head)
        ),
    })
}

/// The current content digest of one row of an audited table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    pub table: String,
    pub row_id: i64,
    pub digest: Sha256Digest,
}

/// Checks the audited rows against the chain: every row must match the
/// latest entry about it, every row an entry says exists must exist, and
/// no row may exist that no entry knows. Call after [`verify_chain`].
pub fn check_rows(entries: &[ChainEntry], live: &[LiveRow]) -> Result<(), ChainBreak> {
    // The latest entry about each row.
    let mut latest: HashMap<(&str, i64), usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        latest.insert((e.table.as_str(), e.row_id), i);
    }
    let live_by_key: HashMap<(&str, i64), &LiveRow> =
        live.iter().map(|r| ((r.table.as_str(), r.row_id), r)).collect();
    let mut breaks: Vec<ChainBreak> = Vec::new();
    for row in live {
        let key = (row.table.as_str(), row.row_id);
        let Some(&i) = latest.get(&key) else {
            breaks.push(row_break(
                BreakKind::Inserted,
                None,
                row,
                "no audit entry records it: it was added behind the chain's back".to_string(),
            ));
            continue;
        };
        let e = &entries[i];
        if e.action == Action::Delete.as_str() {
            breaks.push(row_break(
                BreakKind::Inserted,
                Some((i, e)),
                row,
                format!("entry {} records its deletion, yet it exists", e.seq),
            ));
        } else if e.row_digest != row.digest {
            // Swapped contents: this row now holds what another row held.
            let swapped = live.iter().find(|other| {
                other.table == row.table
                    && other.row_id != row.row_id
                    && latest
                        .get(&(other.table.as_str(), other.row_id))
                        .is_some_and(|&j| entries[j].row_digest == row.digest)
            });
            let (kind, detail) = match swapped {
                Some(other) => (
                    BreakKind::Reordered,
                    format!(
                        "it holds what entry records for {} row {}: their contents were swapped",
                        other.table, other.row_id
                    ),
                ),
                None => (
                    BreakKind::Edited,
                    format!("its content no longer matches entry {} (changed in place)", e.seq),
                ),
            };
            breaks.push(row_break(kind, Some((i, e)), row, detail));
        }
    }
    for (&(table, row_id), &i) in &latest {
        let e = &entries[i];
        if e.action != Action::Delete.as_str() && !live_by_key.contains_key(&(table, row_id)) {
            let row = LiveRow { table: table.to_string(), row_id, digest: e.row_digest };
            breaks.push(row_break(
                BreakKind::Deleted,
                Some((i, e)),
                &row,
                format!("entry {} records it, but it is gone", e.seq),
            ));
        }
    }
    // Report the earliest in chain order (rows without entries last).
    breaks.sort_by_key(|b| (b.index.is_none(), b.index, b.row.clone()));
    match breaks.into_iter().next() {
        Some(b) => Err(b),
        None => Ok(()),
    }
}

fn row_break(
    kind: BreakKind,
    entry: Option<(usize, &ChainEntry)>,
    row: &LiveRow,
    detail: String,
) -> ChainBreak {
    ChainBreak {
        kind,
        index: entry.map(|(i, _)| i),
        seq: entry.map(|(_, e)| e.seq),
        row: Some((row.table.clone(), row.row_id)),
        what: format!("{} row {}", row.table, row.row_id),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainEntry> {
        let mut out: Vec<ChainEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS, |e| e.digest);
            let rd = row_digest("timeline", &[Value::Integer(seq), Value::Text(b"x")]);
            out.push(ChainEntry::new(
                seq,
                "2026-01-01T00:00:00Z",
                Action::Insert,
                "timeline",
                seq,
                rd,
                prev,
            ));
        }
        out
    }

    fn kind_at(entries: &[ChainEntry]) -> (BreakKind, Option<i64>) {
        let b = verify_chain(entries).unwrap_err();
        (b.kind, b.seq)
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify_chain(&chain(5)).is_ok());
        assert!(verify_chain(&[]).is_ok());
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut c = chain(5);
        c[2].row_id = 99;
        assert_eq!(kind_at(&c), (BreakKind::Edited, Some(3)));
        let mut c = chain(5);
        c[4].at = "2027-01-01T00:00:00Z".into();
        assert_eq!(kind_at(&c), (BreakKind::Edited, Some(5)));
    }

    #[test]
    fn a_deleted_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(2);
        let b = verify_chain(&c).unwrap_err();
        assert_eq!((b.kind, b.seq), (BreakKind::Deleted, Some(4)));
        assert!(b.detail.contains("entry 3 is missing"), "{}", b.detail);
        // The first one deleted.
        let mut c = chain(3);
        c.remove(0);
        assert_eq!(kind_at(&c), (BreakKind::Deleted, Some(2)));
    }

    #[test]
    fn a_deleted_entry_with_renumbering_is_still_deleted_or_edited() {
        let mut c = chain(5);
        c.remove(2);
        for e in &mut c[2..] {
            e.seq -= 1;
        }
        let (kind, seq) = kind_at(&c);
        assert_eq!(seq, Some(3));
        assert!(matches!(kind, BreakKind::Deleted | BreakKind::Edited));
    }

    #[test]
    fn an_inserted_entry_is_named() {
        let mut c = chain(5);
        // A well-formed entry slipped in after entry 2, the rest renumbered.
        let forged = ChainEntry::new(
            3,
            "2026-01-01T00:00:00Z",
            Action::Insert,
            "timeline",
            77,
            [7; 32],
            c[1].digest,
        );
        c.insert(2, forged);
        for e in &mut c[3..] {
            e.seq += 1;
        }
        let b = verify_chain(&c).unwrap_err();
        // A clumsier forgery (its own digest wrong) is named too.
        let mut clumsy = c.clone();
        clumsy[2].digest = [9; 32];
        assert_eq!(kind_at(&clumsy), (BreakKind::Inserted, Some(3)));
        // The forged one links correctly; the one after it does not, and
        // links to the one before the forgery.
        assert_eq!(b.kind, BreakKind::Inserted);
        assert_eq!(b.seq, Some(3), "{b}");
    }

    #[test]
    fn swapped_entries_are_reordered() {
        let mut c = chain(5);
        // Swap the contents of seq 2 and 3, keeping the numbers.
        let (a, b) = (c[1].clone(), c[2].clone());
        c[1] = ChainEntry { seq: 2, ..b };
        c[2] = ChainEntry { seq: 3, ..a };
        assert_eq!(kind_at(&c), (BreakKind::Reordered, Some(2)));
    }

    #[test]
    fn head_must_be_in_the_chain() {
        let c = chain(5);
        assert!(check_head(&c, &c[4].digest).is_ok());
        assert!(check_head(&c, &c[2].digest).is_ok(), "entries appended since are fine");
        let cut = &c[..3];
        let b = check_head(cut, &c[4].digest).unwrap_err();
        assert_eq!(b.kind, BreakKind::Truncated);
        assert!(verify_chain(cut).is_ok(), "a cut tail is invisible without the head");
    }

    #[test]
    fn rows_must_match_their_latest_entry() {
        let c = chain(3);
        let live: Vec<LiveRow> = c
            .iter()
            .map(|e| LiveRow { table: e.table.clone(), row_id: e.row_id, digest: e.row_digest })
            .collect();
        assert!(check_rows(&c, &live).is_ok());
        let mut edited = live.clone();
        edited[1].digest = [1; 32];
        let b = check_rows(&c, &edited).unwrap_err();
        assert_eq!((b.kind, b.row.clone()), (BreakKind::Edited, Some(("timeline".into(), 2))));
        let mut gone = live.clone();
        gone.remove(0);
        assert_eq!(check_rows(&c, &gone).unwrap_err().kind, BreakKind::Deleted);
        let mut extra = live.clone();
        extra.push(LiveRow { table: "timeline".into(), row_id: 9, digest: [2; 32] });
        let b = check_rows(&c, &extra).unwrap_err();
        assert_eq!((b.kind, b.row), (BreakKind::Inserted, Some(("timeline".into(), 9))));
        let mut swapped = live.clone();
        let d0 = swapped[0].digest;
        swapped[0].digest = swapped[2].digest;
        swapped[2].digest = d0;
        assert_eq!(check_rows(&c, &swapped).unwrap_err().kind, BreakKind::Reordered);
    }

    #[test]
    fn names_digest_ignores_order_but_not_content() {
        let a = names_digest([(&b"user"[..], &b"root"[..]), (b"host", b"web1")]);
        let b = names_digest([(&b"host"[..], &b"web1"[..]), (b"user", b"root")]);
        assert_eq!(a, b);
        assert_ne!(a, names_digest([(&b"host"[..], &b"web1"[..])]));
        assert_ne!(a, names_digest([(&b"user"[..], &b"web1"[..]), (b"host", b"root")]));
    }

    #[test]
    fn row_digests_distinguish_types_and_boundaries() {
        let a = row_digest("t", &[Value::Text(b"ab"), Value::Text(b"c")]);
        let b = row_digest("t", &[Value::Text(b"a"), Value::Text(b"bc")]);
        assert_ne!(a, b);
        assert_ne!(row_digest("t", &[Value::Integer(1)]), row_digest("t", &[Value::Text(b"1")]));
        assert_ne!(row_digest("t", &[Value::Null]), row_digest("u", &[Value::Null]));
        assert_ne!(row_digest("t", &[Value::Blob(b"x")]), row_digest("t", &[Value::Text(b"x")]));
    }
}
