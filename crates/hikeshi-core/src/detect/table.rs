//! The subject table: every tracked subject (address, prefix, host name,
//! account) in one slab, with a fixed-capacity ring of its most recent
//! failures.
//!
//! Memory is what this module is about. Subjects live in parallel vectors
//! indexed by slot (struct of arrays, no per-subject allocation except for
//! names), and the hash index maps a key to a 4-byte slot number, so one
//! subject costs its key (24 bytes), its [`Meta`] (28 bytes) and its ring
//! (6 bytes per entry: a `u32` time and a `u16` tag), plus about 10 bytes
//! of index. Removal swaps the last slot into the hole.
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
    /// Next ring position to write.
    head: u8,
    /// Entries in the ring.
    len: u8,
    /// Bits 0..3: the finding of episode `i` was emitted (or deliberately
    /// withheld); bit 3: a success-after-failures finding was emitted and
    /// no failure has arrived since.
    pub flags: u8,
}

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
pub(crate) struct Table {
    index: HashTable<u32>,
    // Keyed with a random per-process seed: addresses and names are
    // attacker-chosen, and a predictable hash would let them degrade the
    // index. foldhash rather than SipHash: it is hashed 3 times per line.
    hasher: RandomState,
    keys: Vec<Key>,
    meta: Vec<Meta>,
    times: Vec<u32>,
    tags: Vec<u16>,
    capacity: usize,
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
            times: Vec::new(),
            tags: Vec::new(),
            capacity: capacity as usize,
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
        self.times.resize(self.times.len() + self.capacity, 0);
        self.tags.resize(self.tags.len() + self.capacity, 0);
        slot
    }

    /// Removes `slot`; the last slot takes its number.
    pub(crate) fn remove(&mut self, slot: usize) {
        let last = self.keys.len() - 1;
        let hash = Self::hash(&self.hasher, self.keys[slot].as_ref());
        let removed = self.index.find_entry(hash, |&s| s as usize == slot);
        removed.expect("every slot is indexed").remove();
        if slot != last {
            let moved_hash = Self::hash(&self.hasher, self.keys[last].as_ref());
            let entry = self.index.find_mut(moved_hash, |&s| s as usize == last);
            *entry.expect("every slot is indexed") = slot as u32;
            let cap = self.capacity;
            self.times.copy_within(last * cap..(last + 1) * cap, slot * cap);
            self.tags.copy_within(last * cap..(last + 1) * cap, slot * cap);
        }
        self.keys.swap_remove(slot);
        self.meta.swap_remove(slot);
        self.times.truncate(last * self.capacity);
        self.tags.truncate(last * self.capacity);
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
    pub(crate) fn push(&mut self, slot: usize, time: u32, tag: u16) -> u32 {
        let cap = self.capacity;
        let meta = &mut self.meta[slot];
        let time = time.max(meta.last_seen);
        let at = slot * cap + meta.head as usize;
        self.times[at] = time;
        self.tags[at] = tag;
        meta.head = ((meta.head as usize + 1) % cap) as u8;
        meta.len = (meta.len as usize + 1).min(cap) as u8;
        if meta.total == 0 {
            meta.first_seen = time;
        }
        meta.total = meta.total.saturating_add(1);
        meta.last_seen = time;
        time
    }

    /// The `n`-th newest failure (1 = newest) as (time, tag), if the ring
    /// holds that many.
    pub(crate) fn nth_newest(&self, slot: usize, n: usize) -> Option<(u32, u16)> {
        let meta = &self.meta[slot];
        if n == 0 || n > meta.len as usize {
            return None;
        }
        let cap = self.capacity;
        let at = slot * cap + (meta.head as usize + cap - n) % cap;
        Some((self.times[at], self.tags[at]))
    }

    /// The ring of `slot`, for walks from the newest failure.
    pub(crate) fn ring(&self, slot: usize) -> Ring<'_> {
        let meta = &self.meta[slot];
        let cap = self.capacity;
        let range = slot * cap..(slot + 1) * cap;
        Ring {
            times: &self.times[range.clone()],
            tags: &self.tags[range],
            head: meta.head as usize,
            len: meta.len as usize,
        }
    }

    /// Makes room for `additional` more subjects at once (restoring a
    /// snapshot would otherwise grow and rehash many times).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.index.reserve(additional, |&s| Self::hash(hasher, keys[s as usize].as_ref()));
        self.keys.reserve(additional);
        self.meta.reserve(additional);
        self.times.reserve(additional * self.capacity);
        self.tags.reserve(additional * self.capacity);
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
        let start = slot * self.capacity;
        for (i, &(time, tag)) in ring.iter().enumerate() {
            self.times[start + i] = time;
            self.tags[start + i] = tag;
        }
        let meta = &mut self.meta[slot];
        meta.first_seen = saved.first_seen;
        meta.last_seen = ring[ring.len() - 1].0;
        meta.total = saved.total;
        meta.episode_until = saved.episode_until;
        meta.flags = saved.flags;
        meta.len = ring.len() as u8;
        meta.head = (ring.len() % self.capacity) as u8;
    }

    /// The failures of `slot`, newest first.
    pub(crate) fn newest_first(&self, slot: usize) -> impl Iterator<Item = (u32, u16)> + '_ {
        (1..=self.meta[slot].len as usize)
            .map(move |n| self.nth_newest(slot, n).expect("n is within the ring's length"))
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
