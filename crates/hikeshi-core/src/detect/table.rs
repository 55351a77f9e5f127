//! The subject table: every tracked subject (address, prefix, host name,
//! account) in one slab, with a ring of its most recent failures that
//! starts small and grows to the full capacity only when needed.
//!
//! Memory is what this module is about. Subjects live in parallel vectors
//! indexed by slot (struct of arrays, no per-subject allocation except for
//! names), and the hash index maps a key to a 4-byte slot number, so one
//! subject costs its key (24 bytes), its [`Meta`] (28 bytes) and an inline
//! ring of [`INLINE_ENTRIES`] entries (6 bytes each: a `u32` time and a
//! `u16` tag), plus about 10 bytes of index: about 86 bytes. Most subjects
//! of a flood (addresses that fail once to three times, then rotate) never
//! need more. A subject's failure that finds its inline ring full moves the
//! ring to a second slab of full-capacity rings (6 bytes times the ring
//! capacity, 120 bytes by default), whose number then takes the place of
//! the inline ring's first time. Full rings freed by removal go on a free
//! list and are reused before the slab grows (the slab never shrinks).
//! Removal swaps the last slot into the hole; the moved slot keeps its
//! full ring, whose number moves with it.
//!
//! The trade: a subject with more than four failures costs the rest of
//! its inline ring on top of the full one, about 24 bytes more than a
//! single slab of full rings would (1,000,000 addresses failing six times
//! each: 201 MiB peak instead of 178), while one with four or fewer costs
//! 96 bytes less (three failures each: 87 MiB instead of 178).
//!
//! Times are seconds since [`TIME_BASE`] plus one, as `u32` (0 means "no
//! time"); tags are 16-bit hashes whose meaning depends on the subject kind
//! (the user name for a source, the address for a prefix or an account).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::net::IpAddr;

use hashbrown::HashTable;
use ipnet::IpNet;

/// 2000-01-01T00:00:00Z: times are stored relative to it in `u32` seconds,
/// which reaches 2136. Earlier or later times are clamped.
pub(crate) const TIME_BASE: i64 = 946_684_800;

/// A tracked subject, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Addr(IpAddr),
    Prefix(IpNet),
    Host(Box<str>),
    User(Box<str>),
}

/// A tracked subject, borrowed (lookups do not allocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyRef<'a> {
    Addr(IpAddr),
    Prefix(IpNet),
    Host(&'a str),
    User(&'a str),
}

impl Key {
    pub(crate) fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Addr(a) => KeyRef::Addr(*a),
            Key::Prefix(n) => KeyRef::Prefix(*n),
            Key::Host(h) => KeyRef::Host(h),
            Key::User(u) => KeyRef::User(u),
        }
    }
}

impl KeyRef<'_> {
    fn to_owned(self) -> Key {
        match self {
            KeyRef::Addr(a) => Key::Addr(a),
            KeyRef::Prefix(n) => Key::Prefix(n),
            KeyRef::Host(h) => Key::Host(h.into()),
            KeyRef::User(u) => Key::User(u.into()),
        }
    }
}

/// Ring entries every subject holds inline, before its first failure
/// beyond them moves its ring to the slab of full-capacity rings. Four:
/// an address of a rotating flood fails one to three times.
pub(crate) const INLINE_ENTRIES: usize = 4;

/// Per-subject bookkeeping besides the ring.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta {
    /// Time of the first failure since the subject was tracked.
    pub first_seen: u32,
    /// Time of the newest failure (the ring's newest entry).
    pub last_seen: u32,
    /// Failures since tracked (saturating).
    pub total: u32,
    /// Per rule (the meaning of the index depends on the subject kind):
    /// the time until which the rule's condition holds given the failures
    /// seen so far, or 0 when it does not hold. See `detect` for why this
    /// one number is enough to tell an ongoing episode from a new one.
    pub episode_until: [u32; 3],
    /// Next position to write in the ring in use (inline or full).
    head: u8,
    /// Entries in the ring. It never shrinks, so more than the inline
    /// capacity means the ring is a full one (see [`Table`]).
    len: u8,
    /// Bits 0..3: the finding of episode `i` was emitted (or deliberately
    /// withheld); bit 3: a success-after-failures finding was emitted and
    /// no failure has arrived since.
    pub flags: u8,
    /// At most this many distinct non-zero tags are in the ring within the
    /// window of the subject's distinct rule ([`DISTINCT_UNKNOWN`]: no
    /// bound known). Each push adds one (the new failure may bring a new
    /// tag; time only moves on, so the window and the ring only lose
    /// entries otherwise); the detector sets it to the exact count when it
    /// counts. A subject kind has one distinct rule, with one window.
    pub distinct_bound: u8,
}

/// [`Meta::distinct_bound`] when no bound is known: never below a
/// threshold, so the tags are counted.
pub(crate) const DISTINCT_UNKNOWN: u8 = u8::MAX;

pub(crate) const SUCCESS_REPORTED: u8 = 1 << 3;
/// All flag bits in use.
pub(crate) const ALL_FLAGS: u8 = 0b1111;

/// One subject's ring, borrowed: [`Table::nth_newest`] without the
/// per-entry bounds and modulo arithmetic, for the detector's walks.
pub(crate) struct Ring<'a> {
    times: &'a [u32],
    tags: &'a [u16],
    head: usize,
    len: usize,
}

impl Ring<'_> {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `i`-th newest entry (0 = newest) as (time, tag); `i < len`.
    #[inline]
    pub(crate) fn newest(&self, i: usize) -> (u32, u16) {
        debug_assert!(i < self.len);
        let at =
            if i < self.head { self.head - 1 - i } else { self.times.len() + self.head - 1 - i };
        (self.times[at], self.tags[at])
    }
}

/// The part of [`Meta`] a snapshot carries besides the ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SavedMeta {
    pub first_seen: u32,
    pub total: u32,
    pub episode_until: [u32; 3],
    pub flags: u8,
}

/// The slab of subjects.
///
/// Each slot has `inline` (the ring capacity, at most [`INLINE_ENTRIES`])
/// entries in `inline_times` / `inline_tags`. While a subject holds at most
/// `inline` failures they are its ring. When the ring capacity is larger
/// and a failure arrives at a full inline ring, the subject takes a full
/// ring from `full_times` / `full_tags` (`capacity` entries each, from
/// `free_full` first), its entries are copied there oldest first, and its
/// number is kept in `inline_times[slot * inline]`. Invariant: a subject's
/// ring is a full one exactly when its `len` exceeds `inline`, every full
/// ring is either some subject's or on `free_full`, never both.
pub(crate) struct Table {
    index: HashTable<u32>,
    // Keyed with a random per-process seed: addresses and names are
    // attacker-chosen, and a predictable hash would let them degrade the
    // index. foldhash rather than SipHash: it is hashed 3 times per line.
    hasher: RandomState,
    keys: Vec<Key>,
    meta: Vec<Meta>,
    inline_times: Vec<u32>,
    inline_tags: Vec<u16>,
    full_times: Vec<u32>,
    full_tags: Vec<u16>,
    /// Full rings no subject holds, reused before the slab grows.
    free_full: Vec<u32>,
    capacity: usize,
    inline: usize,
}

impl Table {
    /// A table whose rings hold `capacity` (1..=255) entries.
    pub(crate) fn new(capacity: u32) -> Table {
        assert!((1..=255).contains(&capacity));
        Table {
            index: HashTable::new(),
            hasher: RandomState::default(),
            keys: Vec::new(),
            meta: Vec::new(),
            inline_times: Vec::new(),
            inline_tags: Vec::new(),
            full_times: Vec::new(),
            full_tags: Vec::new(),
            free_full: Vec::new(),
            capacity: capacity as usize,
            inline: (capacity as usize).min(INLINE_ENTRIES),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn hash(hasher: &RandomState, key: KeyRef<'_>) -> u64 {
        hasher.hash_one(key)
    }

    pub(crate) fn find(&self, key: KeyRef<'_>) -> Option<usize> {
        let hash = Self::hash(&self.hasher, key);
        let keys = &self.keys;
        self.index.find(hash, |&slot| keys[slot as usize].as_ref() == key).map(|&s| s as usize)
    }

    /// Adds a subject that is not in the table; returns its slot.
    pub(crate) fn insert(&mut self, key: KeyRef<'_>) -> usize {
        let slot = self.keys.len();
        let hash = Self::hash(&self.hasher, key);
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.index
            .insert_unique(hash, slot as u32, |&s| Self::hash(hasher, keys[s as usize].as_ref()));
        self.keys.push(key.to_owned());
        self.meta.push(Meta::default());
        self.inline_times.resize(self.inline_times.len() + self.inline, 0);
        self.inline_tags.resize(self.inline_tags.len() + self.inline, 0);
        slot
    }

    /// The full ring `slot` holds, if it has one.
    #[inline]
    fn full_ring_of(&self, slot: usize) -> Option<usize> {
        (self.meta[slot].len as usize > self.inline)
            .then(|| self.inline_times[slot * self.inline] as usize)
    }

    /// A full ring for a subject: a freed one, else a new one.
    fn take_full_ring(&mut self) -> usize {
        if let Some(ring) = self.free_full.pop() {
            return ring as usize;
        }
        let ring = self.full_times.len() / self.capacity;
        self.full_times.resize(self.full_times.len() + self.capacity, 0);
        self.full_tags.resize(self.full_tags.len() + self.capacity, 0);
        ring
    }

    /// Moves the full inline ring of `slot` to a full ring (oldest entry
    /// first, so its head is `inline`); returns the ring's number. The
    /// caller sets `len` above `inline` at once.
    #[cold]
    #[inline(never)]
    fn promote(&mut self, slot: usize) -> usize {
        let ring = self.take_full_ring();
        let (from, to) = (slot * self.inline, ring * self.capacity);
        // A full inline ring has never wrapped (it is promoted instead),
        // so its entries are already oldest first.
        self.full_times[to..to + self.inline]
            .copy_from_slice(&self.inline_times[from..from + self.inline]);
        self.full_tags[to..to + self.inline]
            .copy_from_slice(&self.inline_tags[from..from + self.inline]);
        // Bounded by the number of slots, which are u32.
        self.inline_times[from] = ring as u32;
        ring
    }

    /// Removes `slot`; the last slot takes its number.
    pub(crate) fn remove(&mut self, slot: usize) {
        let last = self.keys.len() - 1;
        let hash = Self::hash(&self.hasher, self.keys[slot].as_ref());
        let removed = self.index.find_entry(hash, |&s| s as usize == slot);
        removed.expect("every slot is indexed").remove();
        if let Some(ring) = self.full_ring_of(slot) {
            self.free_full.push(ring as u32);
        }
        let inline = self.inline;
        if slot != last {
            let moved_hash = Self::hash(&self.hasher, self.keys[last].as_ref());
            let entry = self.index.find_mut(moved_hash, |&s| s as usize == last);
            *entry.expect("every slot is indexed") = slot as u32;
            // The moved subject's full ring (its number is in the inline
            // entries) stays where it is.
            self.inline_times.copy_within(last * inline..(last + 1) * inline, slot * inline);
            self.inline_tags.copy_within(last * inline..(last + 1) * inline, slot * inline);
        }
        self.keys.swap_remove(slot);
        self.meta.swap_remove(slot);
        self.inline_times.truncate(last * inline);
        self.inline_tags.truncate(last * inline);
    }

    pub(crate) fn key(&self, slot: usize) -> &Key {
        &self.keys[slot]
    }

    pub(crate) fn meta(&self, slot: usize) -> &Meta {
        &self.meta[slot]
    }

    pub(crate) fn meta_mut(&mut self, slot: usize) -> &mut Meta {
        &mut self.meta[slot]
    }

    /// Records a failure at `time` with `tag`. A time earlier than the
    /// subject's newest failure is taken as that newest time, so each ring
    /// stays sorted (see `detect` on out-of-order lines). Returns the time
    /// recorded.
    #[inline]
    pub(crate) fn push(&mut self, slot: usize, time: u32, tag: u16) -> u32 {
        let Meta { last_seen, head, len, .. } = self.meta[slot];
        let time = time.max(last_seen);
        let (mut head, len, inline) = (head as usize, len as usize, self.inline);
        let cap = if len < inline || self.capacity == inline {
            let at = slot * inline + head;
            self.inline_times[at] = time;
            self.inline_tags[at] = tag;
            inline
        } else {
            let ring = if len == inline {
                head = inline;
                self.promote(slot)
            } else {
                self.inline_times[slot * inline] as usize
            };
            let at = ring * self.capacity + head;
            self.full_times[at] = time;
            self.full_tags[at] = tag;
            self.capacity
        };
        let meta = &mut self.meta[slot];
        meta.head = ((head + 1) % cap) as u8;
        meta.len = (len + 1).min(cap) as u8;
        if meta.total == 0 {
            meta.first_seen = time;
        }
        meta.total = meta.total.saturating_add(1);
        meta.last_seen = time;
        if meta.distinct_bound != DISTINCT_UNKNOWN {
            meta.distinct_bound += 1;
        }
        time
    }

    /// The storage of the ring `slot` uses (its length is the ring's
    /// capacity: inline or full).
    #[inline]
    fn storage(&self, slot: usize) -> (&[u32], &[u16]) {
        match self.full_ring_of(slot) {
            Some(ring) => {
                let range = ring * self.capacity..(ring + 1) * self.capacity;
                (&self.full_times[range.clone()], &self.full_tags[range])
            }
            None => {
                let range = slot * self.inline..(slot + 1) * self.inline;
                (&self.inline_times[range.clone()], &self.inline_tags[range])
            }
        }
    }

    /// The `n`-th newest failure (1 = newest) as (time, tag), if the ring
    /// holds that many.
    #[inline]
    pub(crate) fn nth_newest(&self, slot: usize, n: usize) -> Option<(u32, u16)> {
        let meta = &self.meta[slot];
        if n == 0 || n > meta.len as usize {
            return None;
        }
        let (times, tags) = self.storage(slot);
        let cap = times.len();
        let at = (meta.head as usize + cap - n) % cap;
        Some((times[at], tags[at]))
    }

    /// The ring of `slot`, for walks from the newest failure.
    #[inline]
    pub(crate) fn ring(&self, slot: usize) -> Ring<'_> {
        let meta = &self.meta[slot];
        let (times, tags) = self.storage(slot);
        Ring { times, tags, head: meta.head as usize, len: meta.len as usize }
    }

    /// Makes room for `additional` more subjects at once (restoring a
    /// snapshot would otherwise grow and rehash many times). Full rings
    /// are not reserved: how many subjects need one is not known.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.index.reserve(additional, |&s| Self::hash(hasher, keys[s as usize].as_ref()));
        self.keys.reserve(additional);
        self.meta.reserve(additional);
        self.inline_times.reserve(additional * self.inline);
        self.inline_tags.reserve(additional * self.inline);
    }

    /// Ring entries per subject.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a subject that is not in the table with its saved state (for
    /// `Detector::restore`): `ring` oldest first, at most the capacity,
    /// not empty. The newest entry is the subject's last failure.
    pub(crate) fn insert_saved(&mut self, key: KeyRef<'_>, saved: SavedMeta, ring: &[(u32, u16)]) {
        debug_assert!(!ring.is_empty() && ring.len() <= self.capacity);
        let slot = self.insert(key);
        let (times, tags, cap) = if ring.len() > self.inline {
            let full = self.take_full_ring();
            self.inline_times[slot * self.inline] = full as u32;
            let range = full * self.capacity..(full + 1) * self.capacity;
            (&mut self.full_times[range.clone()], &mut self.full_tags[range], self.capacity)
        } else {
            let range = slot * self.inline..(slot + 1) * self.inline;
            (&mut self.inline_times[range.clone()], &mut self.inline_tags[range], self.inline)
        };
        for (i, &(time, tag)) in ring.iter().enumerate() {
            times[i] = time;
            tags[i] = tag;
        }
        let meta = &mut self.meta[slot];
        meta.first_seen = saved.first_seen;
        meta.last_seen = ring[ring.len() - 1].0;
        meta.total = saved.total;
        meta.episode_until = saved.episode_until;
        meta.flags = saved.flags;
        meta.distinct_bound = DISTINCT_UNKNOWN;
        meta.len = ring.len() as u8;
        meta.head = (ring.len() % cap) as u8;
    }

    /// The failures of `slot`, newest first.
    pub(crate) fn newest_first(&self, slot: usize) -> impl Iterator<Item = (u32, u16)> + '_ {
        (1..=self.meta[slot].len as usize)
            .map(move |n| self.nth_newest(slot, n).expect("n is within the ring's length"))
    }

    /// Full rings allocated (held or free).
    #[cfg(test)]
    pub(crate) fn full_rings(&self) -> usize {
        self.full_times.len() / self.capacity
    }

    /// Panics unless every full ring is held by exactly one subject or
    /// free, and the two slabs have the lengths their counts imply.
    #[cfg(test)]
    pub(crate) fn check_slabs(&self) {
        assert_eq!(self.inline_times.len(), self.len() * self.inline);
        assert_eq!(self.inline_tags.len(), self.len() * self.inline);
        assert_eq!(self.full_tags.len(), self.full_times.len());
        let mut owner = vec![false; self.full_rings()];
        let held = (0..self.len()).filter_map(|slot| self.full_ring_of(slot));
        for ring in held.chain(self.free_full.iter().map(|&r| r as usize)) {
            assert!(!std::mem::replace(&mut owner[ring], true), "full ring {ring} used twice");
        }
        assert!(owner.iter().all(|&o| o), "a full ring is neither held nor free");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> KeyRef<'static> {
        KeyRef::Addr(IpAddr::from(i.to_be_bytes()))
    }

    #[test]
    fn ring_keeps_the_newest_entries_in_order() {
        let mut table = Table::new(3);
        let slot = table.insert(addr(1));
        for t in 1..=5 {
            table.push(slot, t * 10, t as u16);
        }
        let entries: Vec<_> = table.newest_first(slot).collect();
        assert_eq!(entries, [(50, 5), (40, 4), (30, 3)]);
        assert_eq!(table.nth_newest(slot, 4), None);
        assert_eq!(table.meta(slot).total, 5);
        assert_eq!(table.meta(slot).first_seen, 10);
    }

    #[test]
    fn earlier_times_are_clamped_to_the_newest() {
        let mut table = Table::new(4);
        let slot = table.insert(addr(1));
        assert_eq!(table.push(slot, 100, 1), 100);
        assert_eq!(table.push(slot, 90, 1), 100);
        assert_eq!(table.push(slot, 110, 1), 110);
    }

    #[test]
    fn removal_moves_the_last_slot_and_keeps_the_index_right() {
        let mut table = Table::new(2);
        for i in 0..100 {
            let slot = table.insert(addr(i));
            table.push(slot, i + 1, i as u16);
        }
        table.remove(10); // 99 moves to 10
        table.remove(0); // 98 moves to 0
        table.remove(table.len() - 1); // 97
        assert_eq!(table.len(), 97);
        for gone in [0, 10, 97] {
            assert_eq!(table.find(addr(gone)), None, "{gone}");
        }
        assert_eq!(table.find(addr(99)), Some(10));
        assert_eq!(table.find(addr(98)), Some(0));
        for i in (1..100).filter(|i| ![10, 97].contains(i)) {
            let slot = table.find(addr(i)).unwrap_or_else(|| panic!("{i} lost"));
            assert_eq!(table.key(slot), &Key::Addr(IpAddr::from(i.to_be_bytes())));
            assert_eq!(table.nth_newest(slot, 1), Some((i + 1, i as u16)));
        }
    }

    #[test]
    fn names_and_addresses_do_not_collide() {
        let mut table = Table::new(1);
        let host = table.insert(KeyRef::Host("root"));
        let user = table.insert(KeyRef::User("root"));
        assert_ne!(host, user);
        assert_eq!(table.find(KeyRef::Host("root")), Some(host));
        assert_eq!(table.find(KeyRef::User("root")), Some(user));
        assert_eq!(table.find(KeyRef::User("admin")), None);
    }

    #[test]
    fn key_is_compact() {
        assert!(std::mem::size_of::<Key>() <= 24);
        assert!(std::mem::size_of::<Meta>() <= 28);
    }

    #[test]
    fn a_small_subject_costs_its_key_meta_and_inline_ring() {
        // The figure in the module documentation, without the index.
        let per_slot = std::mem::size_of::<Key>()
            + std::mem::size_of::<Meta>()
            + INLINE_ENTRIES * (std::mem::size_of::<u32>() + std::mem::size_of::<u16>());
        assert!(per_slot <= 76, "{per_slot}");
        let mut table = Table::new(20);
        for i in 0..100 {
            let slot = table.insert(addr(i));
            for t in 1..=INLINE_ENTRIES as u32 {
                table.push(slot, t, 1);
            }
        }
        assert_eq!(table.full_rings(), 0);
        table.check_slabs();
    }

    #[test]
    fn crossing_from_four_to_five_entries_keeps_order_and_entries() {
        let mut table = Table::new(20);
        let other = table.insert(addr(0));
        table.push(other, 1, 9);
        let slot = table.insert(addr(1));
        for t in 1..=4u32 {
            table.push(slot, t * 10, t as u16);
        }
        assert_eq!(table.full_rings(), 0);
        let inline: Vec<_> = table.newest_first(slot).collect();
        assert_eq!(inline, [(40, 4), (30, 3), (20, 2), (10, 1)]);

        table.push(slot, 50, 5);
        assert_eq!(table.full_rings(), 1);
        table.check_slabs();
        let promoted: Vec<_> = table.newest_first(slot).collect();
        assert_eq!(promoted, [(50, 5), (40, 4), (30, 3), (20, 2), (10, 1)]);
        let ring = table.ring(slot);
        assert_eq!(ring.len(), 5);
        let walked: Vec<_> = (0..ring.len()).map(|i| ring.newest(i)).collect();
        assert_eq!(walked, promoted);
        assert_eq!(table.nth_newest(slot, 5), Some((10, 1)));
        assert_eq!(table.nth_newest(slot, 6), None);
        assert_eq!(table.meta(slot).first_seen, 10);
        assert_eq!(table.meta(slot).total, 5);
        // The other subject is untouched, and the full ring wraps at 20.
        assert_eq!(table.newest_first(other).collect::<Vec<_>>(), [(1, 9)]);
        for t in 6..=25u32 {
            table.push(slot, t * 10, t as u16);
        }
        let newest: Vec<_> = table.newest_first(slot).collect();
        let want: Vec<_> = (6..=25u32).rev().map(|t| (t * 10, t as u16)).collect();
        assert_eq!(newest, want);
        assert_eq!(table.meta(slot).total, 25);
        assert_eq!(table.full_rings(), 1);
    }

    #[test]
    fn a_ring_of_at_most_four_never_leaves_the_inline_slab() {
        let mut table = Table::new(4);
        let slot = table.insert(addr(1));
        for t in 1..=9u32 {
            table.push(slot, t, t as u16);
        }
        assert_eq!(table.full_rings(), 0);
        assert_eq!(table.newest_first(slot).collect::<Vec<_>>(), [(9, 9), (8, 8), (7, 7), (6, 6)]);
    }

    #[test]
    fn full_rings_are_reused_after_removal_and_follow_a_moved_slot() {
        let mut table = Table::new(20);
        for i in 0..4u32 {
            let slot = table.insert(addr(i));
            for t in 1..=6 {
                table.push(slot, i * 100 + t, t as u16);
            }
        }
        assert_eq!(table.full_rings(), 4);
        // Slot 3 (promoted) moves into slot 1's place; 1's full ring is
        // freed and 3's follows it.
        table.remove(1);
        table.check_slabs();
        let moved = table.find(addr(3)).unwrap();
        assert_eq!(moved, 1);
        let want: Vec<_> = (1..=6u32).rev().map(|t| (300 + t, t as u16)).collect();
        assert_eq!(table.newest_first(moved).collect::<Vec<_>>(), want);
        // A new subject crossing to five entries takes the freed ring.
        let fresh = table.insert(addr(9));
        for t in 1..=5 {
            table.push(fresh, 900 + t, 7);
        }
        assert_eq!(table.full_rings(), 4);
        table.check_slabs();
        let want: Vec<_> = (1..=5u32).rev().map(|t| (900 + t, 7)).collect();
        assert_eq!(table.newest_first(fresh).collect::<Vec<_>>(), want);
        assert_eq!(table.newest_first(moved).collect::<Vec<_>>().len(), 6);
        // An inline subject moved over a promoted one keeps its entries.
        let small = table.insert(addr(10));
        table.push(small, 1000, 3);
        table.remove(0);
        table.check_slabs();
        let small = table.find(addr(10)).unwrap();
        assert_eq!(small, 0);
        assert_eq!(table.newest_first(small).collect::<Vec<_>>(), [(1000, 3)]);
        let fresh = table.insert(addr(11));
        for t in 1..=5 {
            table.push(fresh, 2000 + t, 4);
        }
        assert_eq!(table.full_rings(), 4, "the ring of the removed slot 0 is reused");
    }

    #[test]
    fn restored_rings_land_in_the_slab_their_length_needs() {
        let saved = SavedMeta { first_seen: 1, total: 30, episode_until: [0; 3], flags: 0 };
        let mut table = Table::new(20);
        let four: Vec<_> = (1..=4u32).map(|t| (t, t as u16)).collect();
        let twenty: Vec<_> = (1..=20u32).map(|t| (t, t as u16)).collect();
        table.insert_saved(addr(1), saved, &four);
        table.insert_saved(addr(2), saved, &twenty);
        let (small, big) = (table.find(addr(1)).unwrap(), table.find(addr(2)).unwrap());
        assert_eq!(table.full_rings(), 1);
        table.check_slabs();
        let rev = |v: &[(u32, u16)]| v.iter().rev().copied().collect::<Vec<_>>();
        assert_eq!(table.newest_first(small).collect::<Vec<_>>(), rev(&four));
        assert_eq!(table.newest_first(big).collect::<Vec<_>>(), rev(&twenty));
        // Both keep growing as a live subject would.
        table.push(small, 5, 5);
        table.push(big, 21, 21);
        assert_eq!(table.full_rings(), 2);
        let mut want = four.clone();
        want.push((5, 5));
        assert_eq!(table.newest_first(small).collect::<Vec<_>>(), rev(&want));
        let want: Vec<_> = (2..=21u32).map(|t| (t, t as u16)).collect();
        assert_eq!(table.newest_first(big).collect::<Vec<_>>(), rev(&want));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Push(u8, u32, u16),
        Remove(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u8>().prop_map(Op::Insert),
            (any::<u8>(), 0u32..5, 1u16..4).prop_map(|(k, dt, tag)| Op::Push(k, dt, tag)),
            any::<u8>().prop_map(Op::Remove),
        ]
    }

    /// Mostly pushes, so that subjects cross the inline size and wrap.
    fn push_heavy_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            1 => any::<u8>().prop_map(Op::Insert),
            4 => (any::<u8>(), 0u32..5, 1u16..4).prop_map(|(k, dt, tag)| Op::Push(k, dt, tag)),
            1 => any::<u8>().prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        /// The tiered table (inline rings, full rings on demand, reused
        /// after removal) against a vector per subject, with capacities
        /// on both sides of the inline size and many failures per subject;
        /// the walks of `ring` and `nth_newest` agree with the model, and
        /// every full ring is held once or free.
        #[test]
        fn the_tiered_table_matches_a_vector_per_subject(
            capacity in 1u32..=24,
            ops in proptest::collection::vec(push_heavy_op(), 1..400),
        ) {
            use proptest::prelude::*;
            use std::collections::BTreeMap;
            let capacity_entries = capacity as usize;
            let mut table = Table::new(capacity);
            let mut model: BTreeMap<u32, Vec<(u32, u16)>> = BTreeMap::new();
            let mut most_promoted = 0;
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let k = u32::from(k % 12);
                        if table.find(addr(k)).is_none() {
                            table.insert(addr(k));
                            model.insert(k, Vec::new());
                        }
                    }
                    Op::Push(k, dt, tag) => {
                        let k = u32::from(k % 12);
                        if let Some(slot) = table.find(addr(k)) {
                            let entries = model.get_mut(&k).unwrap();
                            let newest = entries.last().map_or(1, |e| e.0);
                            // Sometimes earlier than the newest: clamped.
                            let time = (newest + dt).saturating_sub(2).max(1);
                            let recorded = table.push(slot, time, tag);
                            prop_assert_eq!(recorded, time.max(newest));
                            entries.push((recorded, tag));
                        }
                    }
                    Op::Remove(k) => {
                        let k = u32::from(k % 12);
                        if let Some(slot) = table.find(addr(k)) {
                            table.remove(slot);
                            model.remove(&k);
                        }
                    }
                }
                table.check_slabs();
                let promoted = model.values().filter(|e| e.len() > INLINE_ENTRIES.min(capacity_entries)).count();
                most_promoted = most_promoted.max(promoted);
                // Freed full rings are reused: the slab is never larger
                // than the most subjects that held one at once.
                prop_assert!(table.full_rings() <= most_promoted);
                prop_assert_eq!(table.len(), model.len());
                for (k, entries) in &model {
                    let slot = table.find(addr(*k)).unwrap();
                    let want: Vec<_> =
                        entries.iter().rev().take(capacity_entries).copied().collect();
                    let got: Vec<_> = table.newest_first(slot).collect();
                    prop_assert_eq!(&got, &want);
                    let ring = table.ring(slot);
                    let walked: Vec<_> = (0..ring.len()).map(|i| ring.newest(i)).collect();
                    prop_assert_eq!(&walked, &want);
                    prop_assert_eq!(table.nth_newest(slot, want.len() + 1), None);
                    let meta = table.meta(slot);
                    prop_assert_eq!(meta.total as usize, entries.len());
                    if let Some(first) = entries.first() {
                        prop_assert_eq!(meta.first_seen, first.0);
                        prop_assert_eq!(meta.last_seen, entries.last().unwrap().0);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// The slab against a map of vectors: every key keeps exactly its
        /// own newest `capacity` failures through inserts and swap-removals.
        #[test]
        fn the_table_matches_a_map_of_vectors(
            capacity in 1u32..5,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            use std::collections::BTreeMap;
            let mut table = Table::new(capacity);
            let mut model: BTreeMap<u32, Vec<(u32, u16)>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k) => {
                        let k = u32::from(k % 32);
                        if table.find(addr(k)).is_none() {
                            table.insert(addr(k));
                            model.insert(k, Vec::new());
                        }
                    }
                    Op::Push(k, dt, tag) => {
                        let k = u32::from(k % 32);
                        if let Some(slot) = table.find(addr(k)) {
                            let entries = model.get_mut(&k).unwrap();
                            let newest = entries.last().map_or(1, |e| e.0);
                            let time = newest + dt;
                            proptest::prop_assert_eq!(table.push(slot, time, tag), time);
                            entries.push((time, tag));
                        }
                    }
                    Op::Remove(k) => {
                        let k = u32::from(k % 32);
                        if let Some(slot) = table.find(addr(k)) {
                            table.remove(slot);
                            model.remove(&k);
                        }
                    }
                }
                proptest::prop_assert_eq!(table.len(), model.len());
                for (k, entries) in &model {
                    let slot = table.find(addr(*k));
                    proptest::prop_assert!(slot.is_some());
                    let got: Vec<_> = table.newest_first(slot.unwrap()).collect();
                    let want: Vec<_> =
                        entries.iter().rev().take(capacity as usize).copied().collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }
}
