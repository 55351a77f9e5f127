//! The pipeline's memory of the bans it asked for, bounded.
//!
//! A daemon asks once per target (an address, or a network) and remembers
//! it until a ban asked then would have ended (`bantime`), so that the
//! further lines of a banned address (still in flight, or from other hosts
//! of a central collector) do not ask again, which containment would count
//! as a repeat offence. Without network bans an IPv6 attacker rotating
//! through its /64 makes every line a new address, so this memory is
//! compact (a target and a 32-bit time plus the hash table's slot) and
//! capped at
//! [`AskedBans::DEFAULT_MAX`] addresses: at the cap, the oldest half of
//! the requests is forgotten at once (amortised O(1) per request), and
//! counted. A forgotten address seen again is asked again; containment
//! then treats it as a second offence while banned (a longer ban), which
//! is the safe side of the trade.

use std::collections::HashMap;

use hikeshi_core::contain::BanTarget;
use jiff::{SignedDuration, Timestamp};

/// Ban requests still outstanding, by target. See the module documentation.
#[derive(Debug)]
pub struct AskedBans {
    /// Target → when its ban was asked (Unix seconds, saturating).
    asked: HashMap<BanTarget, u32, foldhash::fast::RandomState>,
    max: usize,
    /// Requests forgotten at the cap before their ban would have ended.
    forgotten_at_cap: u64,
}

impl AskedBans {
    /// 200,000 addresses: a hash table of 2^18 slots of 25 bytes, about
    /// 6.5 MiB when full; at 17,000 new addresses a minute (an IPv6 /64
    /// rotating on every connection), 12 minutes of bans.
    pub const DEFAULT_MAX: usize = 200_000;

    /// An empty memory of at most `max` addresses (at least 2).
    pub fn new(max: usize) -> AskedBans {
        AskedBans { asked: HashMap::default(), max: max.max(2), forgotten_at_cap: 0 }
    }

    fn seconds(at: Timestamp) -> u32 {
        u32::try_from(at.as_second().max(0)).unwrap_or(u32::MAX)
    }

    /// Whether a ban of `target` asked at most `max_age` before `now` is
    /// remembered.
    pub fn outstanding(&self, target: BanTarget, now: Timestamp, max_age: SignedDuration) -> bool {
        self.asked.get(&target).is_some_and(|&asked| {
            i64::from(Self::seconds(now)) - i64::from(asked) <= max_age.as_secs()
        })
    }

    /// Remembers that a ban of `target` was asked at `now`.
    pub fn insert(&mut self, target: BanTarget, now: Timestamp) {
        if self.asked.len() >= self.max && !self.asked.contains_key(&target) {
            self.forget_oldest_half();
        }
        self.asked.insert(target, Self::seconds(now));
    }

    /// Forgets the requests whose ban has ended by `now`.
    pub fn forget_ended(&mut self, now: Timestamp, max_age: SignedDuration) {
        let now = i64::from(Self::seconds(now));
        self.asked.retain(|_, asked| now - i64::from(*asked) <= max_age.as_secs());
        // A burst that filled the table leaves its slots behind otherwise.
        if self.asked.capacity() > 4 * self.asked.len().max(1024) {
            self.asked.shrink_to_fit();
        }
    }

    fn forget_oldest_half(&mut self) {
        let mut times: Vec<u32> = self.asked.values().copied().collect();
        let middle = times.len() / 2;
        let (_, &mut cut, _) = times.select_nth_unstable(middle);
        let before = self.asked.len();
        self.asked.retain(|_, asked| *asked > cut);
        if self.asked.len() == before {
            // Every request of the same second: nothing is older.
            self.asked.clear();
        }
        self.forgotten_at_cap += (before - self.asked.len()) as u64;
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests forgotten at the cap (cumulative).
    pub fn forgotten_at_cap(&self) -> u64 {
        self.forgotten_at_cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(i: u32) -> BanTarget {
        let addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, (i >> 16) as u16, i as u16);
        BanTarget::addr(addr.into())
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    #[test]
    fn requests_are_outstanding_until_their_ban_would_end() {
        let mut asked = AskedBans::new(10);
        asked.insert(v6(1), at(0));
        assert!(asked.outstanding(v6(1), at(3600), HOUR));
        assert!(!asked.outstanding(v6(1), at(3601), HOUR));
        assert!(!asked.outstanding(v6(2), at(0), HOUR));
        asked.insert(v6(2), at(100));
        asked.forget_ended(at(3601), HOUR);
        assert_eq!(asked.len(), 1);
        assert!(asked.outstanding(v6(2), at(3601), HOUR));
        assert_eq!(asked.forgotten_at_cap(), 0, "expiry is not the cap");
    }

    #[test]
    fn the_cap_forgets_the_oldest_half_and_counts_it() {
        let mut asked = AskedBans::new(100);
        for i in 0..100 {
            asked.insert(v6(i), at(i64::from(i)));
        }
        assert_eq!(asked.len(), 100);
        assert_eq!(asked.forgotten_at_cap(), 0);
        // The 101st address: the 51 oldest (times 0..=50) go.
        asked.insert(v6(100), at(100));
        assert_eq!(asked.len(), 50);
        assert_eq!(asked.forgotten_at_cap(), 51);
        for i in 0..=50 {
            assert!(!asked.outstanding(v6(i), at(100), HOUR), "{i} should be forgotten");
        }
        for i in 51..=100 {
            assert!(asked.outstanding(v6(i), at(100), HOUR), "{i} should be kept");
        }
        // Asking again for a remembered address is not a new entry.
        asked.insert(v6(100), at(101));
        assert_eq!(asked.len(), 50);
    }

    #[test]
    fn a_burst_within_one_second_is_still_bounded() {
        let mut asked = AskedBans::new(64);
        for i in 0..1000 {
            asked.insert(v6(i), at(0));
            assert!(asked.len() <= 64);
        }
        assert!(asked.outstanding(v6(999), at(0), HOUR));
        assert_eq!(asked.forgotten_at_cap() + asked.len() as u64, 1000);
    }

    #[test]
    fn times_before_1970_or_after_2106_do_not_wrap() {
        let mut asked = AskedBans::new(4);
        asked.insert(v6(1), Timestamp::MIN);
        assert!(asked.outstanding(v6(1), Timestamp::from_second(0).unwrap(), HOUR));
        asked.insert(v6(2), Timestamp::MAX);
        assert!(asked.outstanding(v6(2), Timestamp::MAX, HOUR));
    }
}
