//! The bounded name sets of an incident (rules fired, hosts attacked,
//! user names tried: `incident_names`) while a batch works on it.
//!
//! An incident opened in this process has its sets in memory. One read
//! back from the database (or whose sets the incident cache let go to
//! stay within its memory budget) has only its rules: the hosts and users
//! its attempts name wait in [`UncheckedNames`], with how often each was
//! seen, and are checked against `incident_names` at commit
//! ([`check_unchecked`]) or when something needs the whole sets
//! ([`read_names`]). Either way the result is the same as with the sets
//! in memory all along: the same names kept, in the same order of first
//! sight up to each cap, and every sighting beyond it counted.

use std::collections::HashMap;
use std::path::Path;

use hikeshi_core::incident::{BoundedSet, Campaign, IncidentId, Limits, Observation, Sha256Digest};
use rusqlite::{params, Connection};

use super::incidents::bad_value;
use super::StoreError;

/// Which bounded set of an incident a name belongs to (`incident_names.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameKind {
    Rule,
    Host,
    User,
}

impl NameKind {
    pub(super) const ALL: [NameKind; 3] = [NameKind::Rule, NameKind::Host, NameKind::User];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            NameKind::Rule => "rule",
            NameKind::Host => "host",
            NameKind::User => "user",
        }
    }

    pub(super) fn set(self, c: &Campaign) -> &BoundedSet {
        match self {
            NameKind::Rule => &c.rules,
            NameKind::Host => &c.hosts,
            NameKind::User => &c.users,
        }
    }

    pub(super) fn set_mut(self, c: &mut Campaign) -> &mut BoundedSet {
        match self {
            NameKind::Rule => &mut c.rules,
            NameKind::Host => &mut c.hosts,
            NameKind::User => &mut c.users,
        }
    }

    /// The names of `obs` that go into this set.
    pub(super) fn of(self, obs: &Observation) -> &[String] {
        match self {
            NameKind::Rule => std::slice::from_ref(&obs.rule),
            NameKind::Host => &obs.hosts,
            NameKind::User => &obs.users,
        }
    }
}

/// The names of `obs` not yet in `c`'s sets (call before merging; keep
/// those in the sets after merging: they are the newly kept ones).
pub(super) fn unseen_names(c: &Campaign, obs: &Observation) -> Vec<(NameKind, String)> {
    let mut unseen = Vec::new();
    for kind in NameKind::ALL {
        let set = kind.set(c);
        for name in kind.of(obs) {
            if !set.kept.contains(name) {
                unseen.push((kind, name.clone()));
            }
        }
    }
    unseen
}

pub(super) fn newly_kept(
    c: &Campaign,
    mut unseen: Vec<(NameKind, String)>,
) -> Vec<(NameKind, String)> {
    unseen.retain(|(kind, name)| kind.set(c).kept.contains(name));
    sort_names(&mut unseen);
    unseen.dedup();
    unseen
}

/// Puts names in the order they are written in: by kind, then name.
fn sort_names(names: &mut [(NameKind, String)]) {
    names.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
}

/// How often a name waiting to be checked was seen, and when first.
#[derive(Debug, Clone, Copy)]
struct Sightings {
    first: u32,
    count: u64,
}

type NameMap = HashMap<String, Sightings, foldhash::fast::RandomState>;

/// Hosts and users an incident's attempts named while its sets were not
/// in memory, each with its sightings (a spray repeats names: one entry
/// each, however often seen).
#[derive(Debug, Default)]
pub(super) struct UncheckedNames {
    hosts: NameMap,
    users: NameMap,
    next: u32,
}

impl UncheckedNames {
    /// One more sighting of `name` in the set `kind` (hosts or users).
    pub(super) fn see(&mut self, kind: NameKind, name: &str) {
        let map = match kind {
            NameKind::Host => &mut self.hosts,
            NameKind::User => &mut self.users,
            NameKind::Rule => unreachable!("rules are always in memory"),
        };
        if let Some(seen) = map.get_mut(name) {
            seen.count = seen.count.saturating_add(1);
        } else {
            map.insert(name.to_string(), Sightings { first: self.next, count: 1 });
            self.next = self.next.wrapping_add(1);
        }
    }

    /// Distinct names waiting.
    pub(super) fn len(&self) -> usize {
        self.hosts.len() + self.users.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties it: the names in order of first sight, each with its
    /// sightings.
    fn take(&mut self) -> Vec<(NameKind, String, u64)> {
        let hosts = self.hosts.drain().map(|(name, seen)| (NameKind::Host, name, seen));
        let users = self.users.drain().map(|(name, seen)| (NameKind::User, name, seen));
        let mut all: Vec<_> = hosts.chain(users).collect();
        all.sort_unstable_by_key(|(_, _, seen)| seen.first);
        self.next = 0;
        all.into_iter().map(|(kind, name, seen)| (kind, name, seen.count)).collect()
    }
}

fn cap(kind: NameKind, limits: &Limits) -> usize {
    match kind {
        NameKind::Rule => limits.max_rules,
        NameKind::Host => limits.max_hosts,
        NameKind::User => limits.max_users,
    }
}

fn kind_of(text: &str) -> Option<NameKind> {
    NameKind::ALL.into_iter().find(|k| k.as_str() == text)
}

/// Reads incident `id`'s names of `kinds` into `campaign`'s sets.
pub(super) fn read_names(
    conn: &Connection,
    path: &Path,
    id: IncidentId,
    kinds: &[NameKind],
    campaign: &mut Campaign,
) -> Result<(), StoreError> {
    let rules = kinds.contains(&NameKind::Rule);
    let others = kinds.contains(&NameKind::Host) || kinds.contains(&NameKind::User);
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT kind, name FROM incident_names WHERE incident_id = ?1 \
             AND (?2 OR kind <> 'rule') AND (?3 OR kind = 'rule')",
        )
        .and_then(|mut stmt| {
            stmt.query_map(params![id.0, rules, others], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .map_err(|e| StoreError::from_sqlite(path, std::time::Duration::ZERO, e))?;
    for (kind, name) in rows {
        let kind = kind_of(&kind).ok_or_else(|| {
            bad_value(path, format!("incident {id}, incident_names: unknown kind {kind:?}"))
        })?;
        kind.set_mut(campaign).kept.insert(name);
    }
    Ok(())
}

/// Folds `unchecked` into `campaign`'s sets, now in memory: what
/// [`BoundedSet::insert`] would have done at each sighting. Returns the
/// names newly kept.
pub(super) fn apply_unchecked(
    unchecked: &mut UncheckedNames,
    campaign: &mut Campaign,
    limits: &Limits,
) -> Vec<(NameKind, String)> {
    let mut added = Vec::new();
    for (kind, name, sightings) in unchecked.take() {
        let set = kind.set_mut(campaign);
        if set.insert(&name, cap(kind, limits)) {
            added.push((kind, name));
        } else if !set.kept.contains(&name) {
            // Beyond the cap: `insert` counted the first sighting.
            set.omitted = set.omitted.saturating_add(sightings - 1);
        }
    }
    added
}

/// Checks `unchecked` against incident `id`'s names in the database,
/// whose sets are not in memory: names already kept are dropped, new ones
/// kept while their set has room (returned, to be inserted) and the
/// sightings of the others counted in `campaign`'s `omitted`.
pub(super) fn check_unchecked(
    conn: &Connection,
    id: IncidentId,
    unchecked: &mut UncheckedNames,
    campaign: &mut Campaign,
    limits: &Limits,
) -> rusqlite::Result<Vec<(NameKind, String)>> {
    let mut count = conn.prepare_cached(
        "SELECT count(*) FROM incident_names WHERE incident_id = ?1 AND kind = ?2",
    )?;
    let mut exists = conn.prepare_cached(
        "SELECT 1 FROM incident_names WHERE incident_id = ?1 AND kind = ?2 AND name = ?3",
    )?;
    let mut kept: [Option<usize>; 3] = [None; 3];
    let mut added = Vec::new();
    for (kind, name, sightings) in unchecked.take() {
        if exists.exists(params![id.0, kind.as_str(), name])? {
            continue;
        }
        let slot = &mut kept[kind as usize];
        let n = match slot {
            Some(n) => n,
            None => {
                let n: i64 = count.query_row(params![id.0, kind.as_str()], |row| row.get(0))?;
                slot.insert(usize::try_from(n).unwrap_or(usize::MAX))
            }
        };
        if *n < cap(kind, limits) {
            *n += 1;
            added.push((kind, name));
        } else {
            let set: &mut BoundedSet = kind.set_mut(campaign);
            set.omitted = set.omitted.saturating_add(sightings);
        }
    }
    sort_names(&mut added);
    Ok(added)
}

/// [`hikeshi_core::audit::names_digest`] of incident `id`'s names as the
/// database holds them (for an incident whose sets are not in memory).
pub(super) fn digest_in_database(
    conn: &Connection,
    id: IncidentId,
) -> rusqlite::Result<Sha256Digest> {
    conn.prepare_cached(
        "SELECT hikeshi_names_digest(kind, name) FROM incident_names WHERE incident_id = ?1",
    )?
    .query_row([id.0], |row| row.get(0))
}
