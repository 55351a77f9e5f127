//! hikeshi-corpus: a deterministic generator of realistic `auth.log`
//! files for hikeshi's benchmarks and tests.
//!
//! A [`Generator`] built from a [`Config`] streams lines: attack sessions
//! (password guessing, invalid users, scanners, client libraries, some
//! Dropbear), legitimate logins with their PAM and logind lines, and the
//! noise of other daemons (cron, sudo, su, kernel). Sessions interleave as
//! they do on a real server; every connection has its own PID; time stamps
//! never go backwards. The output is a pure function of the configuration
//! (the seed included): the same config gives the same bytes on every
//! machine and every version of the dependencies, because the random
//! number generator is our own ([`rng`]).
//!
//! Memory stays flat: only the sessions currently open are held (a few
//! dozen), whatever the number of lines.
//!
//! ```
//! use hikeshi_corpus::{Config, Generator};
//! let mut generator = Generator::new(Config { lines: 1000, seed: 7, ..Config::default() }).unwrap();
//! let mut out = Vec::new();
//! generator.write_to(&mut out).unwrap();
//! assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1000);
//! assert!(generator.stats().failed_password_lines > 0);
//! ```

pub mod envelope;
mod message;
pub mod rng;
mod session;

use std::io::{self, Write};

use hikeshi_core::Kind;
use jiff::Timestamp;

pub use envelope::Envelope;
pub use session::Category;

use envelope::HeaderWriter;
use rng::Rng;
use session::{Profile, Scripter, Session};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Number of lines; `u64::MAX` for a practically endless stream.
    pub lines: u64,
    /// Seed of the random number generator: same seed, same bytes.
    pub seed: u64,
    /// Share of lines that belong to attack sessions, in `[0, 1]`.
    pub attack_share: f64,
    /// Share of lines that belong to legitimate logins, in `[0, 1]`; the
    /// rest (`1 - attack_share - legit_share`) is other daemons' noise.
    pub legit_share: f64,
    /// Share of connections (attack and legitimate) from IPv6 addresses.
    pub ipv6_share: f64,
    /// Share of connections served by Dropbear instead of OpenSSH.
    pub dropbear_share: f64,
    /// Share of attack sessions whose user name imitates the fixed parts
    /// of a line (`admin from 192.0.2.1 port 22 ssh2`).
    pub hostile_share: f64,
    /// Envelopes to use; with several, each line picks one at random.
    pub envelopes: Vec<Envelope>,
    /// Time of the first line.
    pub start: Timestamp,
    /// Average number of lines per second of log time (not wall time).
    pub lines_per_second: f64,
    /// Number of distinct attacking hosts (IPv4 addresses and IPv6 /64s).
    pub attackers: u32,
    /// The host name in the syslog header.
    pub host: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            lines: 1_000_000,
            seed: 1,
            attack_share: 0.4,
            legit_share: 0.05,
            ipv6_share: 0.1,
            dropbear_share: 0.0,
            hostile_share: 0.001,
            envelopes: vec![Envelope::Classic],
            start: Timestamp::constant(1_768_435_200, 0), // 2026-01-15T00:00:00Z
            lines_per_second: 10.0,
            attackers: 500,
            host: "server1".to_string(),
        }
    }
}

/// A configuration that cannot be generated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name} must be between 0 and 1, got {value}")]
    ShareOutOfRange { name: &'static str, value: f64 },
    #[error("attack share {attack} plus legitimate share {legit} exceeds 1")]
    SharesExceedOne { attack: f64, legit: f64 },
    #[error("lines per second must be a positive number, got {0}")]
    BadRate(f64),
    #[error("at least one attacker is needed, got 0")]
    NoAttackers,
    #[error("at most {max} attackers are supported, got {got}")]
    TooManyAttackers { max: u32, got: u32 },
    #[error("at least one envelope is needed")]
    NoEnvelope,
    #[error("the host name must be a non-empty word without spaces, got {0:?}")]
    BadHost(String),
}

/// Distinct IPv4 attackers available in 198.18.0.0/15 (RFC 2544, the
/// benchmarking range): 512 /24s times 254 hosts.
const MAX_V4_ATTACKERS: u32 = 512 * 254;
/// Most sessions open at once per category: enough interleaving to exercise
/// per-PID correlation, few enough to keep memory flat.
const MAX_OPEN: [usize; 3] = [24, 6, 6];

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("attack share", self.attack_share),
            ("legitimate share", self.legit_share),
            ("IPv6 share", self.ipv6_share),
            ("Dropbear share", self.dropbear_share),
            ("hostile share", self.hostile_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::ShareOutOfRange { name, value });
            }
        }
        if self.attack_share + self.legit_share > 1.0 + 1e-9 {
            return Err(ConfigError::SharesExceedOne {
                attack: self.attack_share,
                legit: self.legit_share,
            });
        }
        if !(self.lines_per_second.is_finite() && self.lines_per_second > 0.0) {
            return Err(ConfigError::BadRate(self.lines_per_second));
        }
        if self.attackers == 0 {
            return Err(ConfigError::NoAttackers);
        }
        if self.attackers > MAX_V4_ATTACKERS {
            return Err(ConfigError::TooManyAttackers {
                max: MAX_V4_ATTACKERS,
                got: self.attackers,
            });
        }
        if self.envelopes.is_empty() {
            return Err(ConfigError::NoEnvelope);
        }
        if self.host.is_empty() || self.host.bytes().any(|b| b.is_ascii_whitespace() || b < 0x21) {
            return Err(ConfigError::BadHost(self.host.clone()));
        }
        Ok(())
    }
}

/// What a generator has written so far: the ground truth a parser's
/// counts can be checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub attack_lines: u64,
    pub legit_lines: u64,
    pub noise_lines: u64,
    /// sshd and Dropbear connections opened (attack and legitimate).
    pub connections: u64,
    pub ipv6_connections: u64,
    /// Lines `grep -c 'Failed password'` counts.
    pub failed_password_lines: u64,
    /// Lines per [`Kind`], indexed like [`Kind::ALL`].
    kinds: Vec<u64>,
}

impl Stats {
    /// Lines of `kind` written so far.
    pub fn kind(&self, kind: Kind) -> u64 {
        self.kinds.get(kind_index(kind)).copied().unwrap_or(0)
    }

    /// Every kind with its count, in [`Kind::ALL`] order.
    pub fn kinds(&self) -> impl Iterator<Item = (Kind, u64)> + '_ {
        Kind::ALL.iter().map(|k| (*k, self.kind(*k)))
    }

    /// Lines that count as failures in `mode` by the specification's table
    /// (pending pam_unix lines are not counted: they depend on context).
    pub fn failure_lines(&self, mode: hikeshi_core::Mode) -> u64 {
        self.kinds()
            .filter(|(k, _)| k.outcome(mode) == hikeshi_core::Outcome::Failure)
            .map(|(_, n)| n)
            .sum()
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(usize::MAX)
}

/// Streams the lines of one corpus. See the crate documentation.
#[derive(Debug)]
pub struct Generator {
    config: Config,
    rng: Rng,
    header: HeaderWriter,
    now_micros: i64,
    /// Upper bound of the random gap between two lines, in microseconds.
    max_gap_micros: u64,
    next_pid: u32,
    next_logind_session: u32,
    /// Open sessions per category (attack, legit, noise).
    open: [Vec<Session>; 3],
    v4_attackers: u32,
    v6_attackers: u32,
    stats: Stats,
    /// The kind of the line written last (`None` for other daemons' lines).
    last_kind: Option<Kind>,
    /// Maps `kind as usize` to the kind's index in `Stats::kinds` (its
    /// position in `Kind::ALL`), so that counting a line needs no search.
    kind_slots: Vec<usize>,
}

impl Generator {
    /// A generator for `config`, or why the config is unusable.
    pub fn new(config: Config) -> Result<Generator, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.seed);
        // Each family gets its share of the attackers, and at least one if
        // the share is not zero.
        let mut v6 = (f64::from(config.attackers) * config.ipv6_share).round() as u32;
        if config.ipv6_share > 0.0 {
            v6 = v6.max(1);
        }
        let mut v4 = config.attackers.saturating_sub(v6);
        if config.ipv6_share < 1.0 {
            v4 = v4.max(1);
        }
        let mean_gap = 1_000_000.0 / config.lines_per_second;
        let max_gap_micros = (2.0 * mean_gap).round().clamp(0.0, 1e15) as u64;
        let next_pid = rng.range(1000, 90_000) as u32;
        let next_logind_session = rng.range(1, 500) as u32;
        let mut kind_slots = vec![usize::MAX; Kind::ALL.len()];
        for (i, k) in Kind::ALL.iter().enumerate() {
            kind_slots[*k as usize] = i;
        }
        Ok(Generator {
            header: HeaderWriter::new(&config.host),
            now_micros: config.start.as_microsecond(),
            max_gap_micros,
            next_pid,
            next_logind_session,
            open: [Vec::new(), Vec::new(), Vec::new()],
            v4_attackers: v4,
            v6_attackers: v6,
            stats: Stats { kinds: vec![0; Kind::ALL.len()], ..Stats::default() },
            kind_slots,
            last_kind: None,
            rng,
            config,
        })
    }

    /// The configuration this generator runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What has been written so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The [`Kind`] the specification gives the line written last, or
    /// `None` for a line that is no sshd/Dropbear authentication message
    /// (other daemons, PAM bookkeeping): the per-line ground truth.
    pub fn last_kind(&self) -> Option<Kind> {
        self.last_kind
    }

    /// Appends the next line (with its `\n`) to `out`; false once all lines
    /// have been produced.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> bool {
        if self.stats.lines >= self.config.lines {
            return false;
        }
        let category = self.pick_category();
        let slot = category as usize;
        let open = self.open[slot].len();
        let index = if open == 0
            || (open < MAX_OPEN[slot] && self.rng.below(open as u64 + 1) == open as u64)
        {
            let session = self.start_session(category);
            self.open[slot].push(session);
            open
        } else {
            self.rng.below(open as u64) as usize
        };

        self.now_micros += self.rng.below(self.max_gap_micros + 1) as i64;
        let envelope = match self.config.envelopes.as_slice() {
            [only] => *only,
            many => self.rng.pick(many),
        };

        let session = &mut self.open[slot][index];
        let step = session.pop().expect("open sessions always have a line left");
        self.header.push(out, envelope, self.now_micros, step.origin);
        message::render(out, step.msg, &session.peer);
        out.push(b'\n');
        if session.is_done() {
            self.open[slot].swap_remove(index);
        }

        let stats = &mut self.stats;
        stats.lines += 1;
        match category {
            Category::Attack => stats.attack_lines += 1,
            Category::Legit => stats.legit_lines += 1,
            Category::Noise => stats.noise_lines += 1,
        }
        self.last_kind = step.msg.kind();
        if let Some(kind) = self.last_kind {
            stats.kinds[self.kind_slots[kind as usize]] += 1;
        }
        if step.msg.is_failed_password() {
            stats.failed_password_lines += 1;
        }
        true
    }

    /// Writes all remaining lines to `w` (buffered internally) and flushes.
    pub fn write_to<W: Write>(&mut self, mut w: W) -> io::Result<()> {
        const CHUNK: usize = 1 << 16;
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        while self.next_line(&mut buf) {
            if buf.len() >= CHUNK {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)?;
        w.flush()
    }

    fn pick_category(&mut self) -> Category {
        let r = self.rng.unit();
        if r < self.config.attack_share {
            Category::Attack
        } else if r < self.config.attack_share + self.config.legit_share {
            Category::Legit
        } else {
            Category::Noise
        }
    }

    fn start_session(&mut self, category: Category) -> Session {
        match category {
            Category::Attack => {
                let ipv6 = self.rng.chance(self.config.ipv6_share);
                let pool = if ipv6 { self.v6_attackers } else { self.v4_attackers };
                // A few attackers are much busier than the rest, as in real
                // logs: squaring a uniform number skews toward index 0.
                let u = self.rng.unit();
                let index = ((u * u * f64::from(pool)) as u64).min(u64::from(pool) - 1);
                let addr = if ipv6 {
                    // Half of the IPv6 attackers pick a new interface
                    // identifier for every connection within their /64.
                    let rotating = index % 2 == 0;
                    let iid = if rotating { self.rng.next_u64() | 1 } else { 0x10 + index };
                    attacker_v6(index, iid)
                } else {
                    attacker_v4(index)
                };
                self.count_connection(ipv6);
                let profile = Profile::of(index, ipv6);
                self.scripter().attack(addr, profile)
            }
            Category::Legit => {
                let ipv6 = self.rng.chance(self.config.ipv6_share);
                let host = self.rng.range(2, 40);
                let addr = if ipv6 {
                    format!("2001:db8:ffff:1::{host:x}")
                } else {
                    format!("10.20.0.{host}")
                };
                self.count_connection(ipv6);
                self.scripter().legit(addr)
            }
            Category::Noise => {
                let addr = attacker_v4(self.rng.below(u64::from(MAX_V4_ATTACKERS)));
                self.scripter().noise(addr)
            }
        }
    }

    fn count_connection(&mut self, ipv6: bool) {
        self.stats.connections += 1;
        if ipv6 {
            self.stats.ipv6_connections += 1;
        }
    }

    fn scripter(&mut self) -> Scripter<'_> {
        Scripter {
            rng: &mut self.rng,
            next_pid: &mut self.next_pid,
            next_logind_session: &mut self.next_logind_session,
            hostile_share: self.config.hostile_share,
            dropbear_share: self.config.dropbear_share,
        }
    }
}

/// Attacker `index`'s IPv4 address in 198.18.0.0/15. Consecutive indexes
/// land in different /24s (an odd multiplier permutes the 512 of them), so
/// that subnet aggregation sees a realistic spread.
fn attacker_v4(index: u64) -> String {
    let subnet = (index.wrapping_mul(197) + 31) % 512;
    // For a fixed subnet the quotient walks all 254 hosts, so the mapping
    // stays one-to-one; the offset avoids every subnet starting at `.1`.
    let host = (index / 512 + (index % 512) * 89) % 254 + 1;
    format!("198.{}.{}.{}", 18 + subnet / 256, subnet % 256, host)
}

/// Attacker `index`'s address in its own /64 of 2001:db8::/32.
fn attacker_v6(index: u64, iid: u64) -> String {
    let net = std::net::Ipv6Addr::new(
        0x2001,
        0x0db8,
        0x8000 | ((index >> 16) & 0x7fff) as u16,
        (index & 0xffff) as u16,
        (iid >> 48) as u16,
        (iid >> 32) as u16,
        (iid >> 16) as u16,
        iid as u16,
    );
    net.to_string()
}

impl Iterator for Generator {
    type Item = Vec<u8>;

    /// One line with its `\n`. `write_to` is faster for large corpora.
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::with_capacity(160);
        self.next_line(&mut line).then_some(line)
    }
}

#[cfg(test)]
mod tests;
