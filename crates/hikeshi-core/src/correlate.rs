//! Connection tracking: joins the lines of one sshd connection, known by
//! its (host, PID).
//!
//! It owns two jobs the line-by-line parser cannot do alone:
//! - lines without an address (`Disconnecting: Too many authentication
//!   failures`, `User x not allowed because account is locked`,
//!   `kex_exchange_identification: ...`, or a line whose address position
//!   was ambiguous) take the source of an earlier or a later line of the
//!   same connection; until then they wait (a few per connection);
//! - `pam_unix(sshd:auth): authentication failure` is pending: it becomes
//!   a failure when the connection closes without success, when another
//!   failure or another `pam_unix` failure follows, or when another user
//!   name is tried. The `Failed password` line of the same attempt absorbs
//!   it (reported as context), so one attempt never counts twice.
//!
//! The table of open connections is bounded (least recently used first
//! out): a flood of connections can neither exhaust memory nor make events
//! disappear, because an evicted connection is resolved (its pending
//! failure counts, its waiting lines are emitted without source) and
//! counted.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use jiff::{SignedDuration, Timestamp};

use crate::event::{AuthEvent, Kind, Outcome, Source};
use crate::parse::Parsed;

/// After this long without a line, a PID is taken to be a new connection
/// (PIDs are reused). Every line that needs its connection is written
/// before authentication, within sshd's LoginGraceTime (2 minutes).
pub const CONNECTION_IDLE_LIMIT: SignedDuration = SignedDuration::from_mins(10);

/// Lines kept per connection while they wait for an address.
const MAX_WAITING_PER_CONNECTION: usize = 8;

/// Identifies a connection: the host of the header (hashed) and the PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    host: u64,
    pid: u32,
}

impl ConnectionKey {
    pub fn new(host: Option<&[u8]>, pid: u32) -> Self {
        // FNV-1a: host names are short, and this runs for every sshd line.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in host.unwrap_or(b"") {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        ConnectionKey { host: hash, pid }
    }
}

/// A fast hasher for [`ConnectionKey`]s. PIDs are chosen by the kernel,
/// not by the peer, so a DoS-resistant hash buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type KeyMap<V> = HashMap<ConnectionKey, V, BuildHasherDefault<KeyHasher>>;

/// Why a pending `pam_unix` failure became a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingResolution {
    /// The connection closed without a success.
    Closed,
    /// Another failure (or `pam_unix` failure) followed.
    AnotherFailure,
    /// Another user name was tried.
    OtherUser,
    /// Pushed out of the bounded connection table, or idle too long.
    Evicted,
    /// The input ended (or [`Tracker::expire`] found it idle).
    EndOfInput,
}

/// What the tracker did, for `hikeshi parse --format summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrelateStats {
    /// Lines that got their source from an earlier line of the connection.
    pub source_from_earlier: u64,
    /// Lines that got their source from a later line.
    pub source_from_later: u64,
    /// Lines that needed a source and never got one.
    pub source_never_found: u64,
    /// Pending failures that became failures, by reason.
    pub pending_closed: u64,
    pub pending_another_failure: u64,
    pub pending_other_user: u64,
    pub pending_evicted: u64,
    pub pending_end_of_input: u64,
    /// Pending failures absorbed by the `Failed ...` line of the same attempt.
    pub pending_absorbed: u64,
    /// Pending failures on lines without PID: left as context.
    pub pending_unjoinable: u64,
    /// Pending failures dropped because the connection then succeeded.
    pub pending_then_success: u64,
    /// Connections pushed out of the full table.
    pub connections_evicted: u64,
    /// The most connections open at once.
    pub connections_peak: u64,
}

#[derive(Debug)]
struct Connection {
    source: Option<Source>,
    last_time: Timestamp,
    /// When it was last used (the tracker's clock).
    touch: u64,
    /// The stamp of its entry in the eviction order.
    queued: u64,
    /// Boxed: most connections never hold one, and the table stays small.
    pending: Option<Box<Parsed>>,
    waiting: Vec<Parsed>,
    succeeded: bool,
}

/// The bounded table of open connections.
#[derive(Debug)]
pub struct Tracker {
    connections: KeyMap<Connection>,
    /// Eviction order (an LRU by second chance): one entry per open
    /// connection, stamped with its `queued`. A connection used since it
    /// was queued goes to the back instead of out; entries of closed
    /// connections are stale and skipped. Using a connection costs no
    /// queue operation.
    order: VecDeque<(ConnectionKey, u64)>,
    clock: u64,
    capacity: usize,
    stats: CorrelateStats,
}

/// Kinds after which sshd has closed the connection.
pub fn closes_connection(kind: Kind) -> bool {
    use Kind::*;
    matches!(
        kind,
        ConnectionClosedPreauth
            | TooManyAuthFailures
            | ConnectionClosedUserPreauth
            | DisconnectedUserPreauth
            | Disconnected
            | ReceivedDisconnect
            | AuthFailDisconnect
            | NoSupportedAuthMethods
            | NoIdentification
            | AuthTimeout
            | BadProtocolVersion
            | BannerInvalidFormat
            | MacIncorrect
            | UnableToNegotiate
            | UsernameChange
            | DropbearExitBeforeAuth
    )
}

impl Tracker {
    /// A tracker holding at most `capacity` open connections (at least 1).
    pub fn new(capacity: usize) -> Self {
        Tracker {
            connections: KeyMap::default(),
            order: VecDeque::new(),
            clock: 0,
            capacity: capacity.max(1),
            stats: CorrelateStats::default(),
        }
    }

    pub fn stats(&self) -> &CorrelateStats {
        &self.stats
    }

    /// Open connections right now.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// A line that is not an event but names the connection's peer
    /// (`Connection from <addr> port <n> on ...`).
    pub fn note_peer(
        &mut self,
        key: ConnectionKey,
        source: Source,
        time: Timestamp,
        out: &mut Vec<Parsed>,
    ) {
        self.open(key, time, Some(&source), out);
        let Some(conn) = self.connections.get_mut(&key) else { return };
        if conn.source.is_none() {
            conn.source = Some(source);
            flush_waiting(&mut self.stats, conn, out);
        }
    }

    /// Takes one event of connection `key` (`None`: a line without PID)
    /// and appends to `out` what can be decided now: this event and the
    /// earlier ones it resolves. An event may be held (pending, or waiting
    /// for a source) and come out later; [`Tracker::finish`] flushes all.
    pub fn push(&mut self, key: Option<ConnectionKey>, parsed: Parsed, out: &mut Vec<Parsed>) {
        let closes = closes_connection(parsed.event.kind);
        let Some(key) = key else {
            self.unjoined(parsed, out);
            return;
        };
        // The common case, with one lookup: the connection is open and current.
        if let Some(conn) = self.connections.get_mut(&key) {
            if is_current(conn, parsed.event.time, parsed.event.source.as_ref()) {
                self.clock += 1;
                conn.touch = self.clock;
                conn.last_time = conn.last_time.max(parsed.event.time);
                apply(conn, &mut self.stats, parsed, closes, out);
                if closes {
                    if let Some(conn) = self.connections.remove(&key) {
                        resolve(&mut self.stats, conn, PendingResolution::Closed, out);
                    }
                }
                return;
            }
        } else if closes || !worth_tracking(&parsed.event) {
            // The end of a connection we never saw, or a line that neither
            // gives nor needs anything (`session closed` after the close):
            // nothing to join, and no entry to keep.
            self.unjoined(parsed, out);
            return;
        }
        self.open(key, parsed.event.time, parsed.event.source.as_ref(), out);
        if let Some(conn) = self.connections.get_mut(&key) {
            apply(conn, &mut self.stats, parsed, closes, out);
        }
        if closes {
            if let Some(conn) = self.connections.remove(&key) {
                resolve(&mut self.stats, conn, PendingResolution::Closed, out);
            }
        }
    }

    /// An event with no connection to join (a line without PID, or the
    /// close of a connection never seen).
    fn unjoined(&mut self, mut parsed: Parsed, out: &mut Vec<Parsed>) {
        // A pending failure then stays context: the `Failed password` line
        // that nearly always follows it counts the attempt, and counting
        // both would halve every threshold for logs without PIDs.
        if parsed.event.outcome == Outcome::Pending {
            parsed.event.outcome = Outcome::Context;
            self.stats.pending_unjoinable += 1;
        }
        if parsed.event.source.is_none() && wants_source(&parsed.event) {
            self.stats.source_never_found += 1;
        }
        out.push(parsed);
    }

    /// Resolves every open connection, oldest first: the input has ended.
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.connections.get(&key).is_some_and(|c| c.queued == stamp) {
                if let Some(conn) = self.connections.remove(&key) {
                    resolve(&mut self.stats, conn, PendingResolution::EndOfInput, out);
                }
            }
        }
        // Anything left is unreachable through `order`; resolve it too.
        let rest: Vec<Connection> = self.connections.drain().map(|(_, c)| c).collect();
        for conn in rest {
            resolve(&mut self.stats, conn, PendingResolution::EndOfInput, out);
        }
    }

    /// Resolves connections without a line since `now - CONNECTION_IDLE_LIMIT`
    /// (for a long-running reader that never reaches the end of input).
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<Parsed>) {
        // Each entry is looked at once at most: a bounded pass.
        for _ in 0..self.order.len() {
            let Some((key, stamp)) = self.order.pop_front() else { break };
            let Some(conn) = self.connections.get_mut(&key).filter(|c| c.queued == stamp) else {
                continue;
            };
            if now.duration_since(conn.last_time) > CONNECTION_IDLE_LIMIT {
                if let Some(conn) = self.connections.remove(&key) {
                    resolve(&mut self.stats, conn, PendingResolution::EndOfInput, out);
                }
            } else if conn.touch > stamp {
                conn.queued = conn.touch;
                self.order.push_back((key, conn.touch));
            } else {
                // The least recently used connection is not idle: none is.
                self.order.push_front((key, stamp));
                break;
            }
        }
    }

    /// Makes sure `key` has a live connection in the table and marks it
    /// used. An old one that is over (idle too long before a login, or
    /// another peer: the PID was reused) is resolved and replaced; a new
    /// one may push out the least recently used.
    fn open(
        &mut self,
        key: ConnectionKey,
        time: Timestamp,
        source: Option<&Source>,
        out: &mut Vec<Parsed>,
    ) {
        self.clock += 1;
        let touch = self.clock;
        let mut stale = false;
        if let Some(conn) = self.connections.get_mut(&key) {
            if is_current(conn, time, source) {
                conn.last_time = conn.last_time.max(time);
                conn.touch = touch;
                return;
            }
            stale = true;
        }
        if stale {
            if let Some(old) = self.connections.remove(&key) {
                resolve(&mut self.stats, old, PendingResolution::Evicted, out);
            }
        }
        while self.connections.len() >= self.capacity {
            let Some((old_key, stamp)) = self.order.pop_front() else { break };
            let Some(old) = self.connections.get_mut(&old_key).filter(|c| c.queued == stamp) else {
                continue;
            };
            if old.touch > stamp {
                // Used since it was queued: a second chance at the back.
                old.queued = old.touch;
                self.order.push_back((old_key, old.touch));
                continue;
            }
            if let Some(old) = self.connections.remove(&old_key) {
                self.stats.connections_evicted += 1;
                resolve(&mut self.stats, old, PendingResolution::Evicted, out);
            }
        }
        self.connections.insert(
            key,
            Connection {
                source: None,
                last_time: time,
                touch,
                queued: touch,
                pending: None,
                waiting: Vec::new(),
                succeeded: false,
            },
        );
        self.order.push_back((key, touch));
        self.stats.connections_peak =
            self.stats.connections_peak.max(self.connections.len() as u64);
        self.compact_order();
    }

    /// Drops the entries of closed connections once they outnumber the
    /// open ones (amortised: each closed connection leaves one).
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.connections.len() + 1024 {
            let connections = &self.connections;
            self.order.retain(|(k, t)| connections.get(k).is_some_and(|c| c.queued == *t));
        }
    }
}

/// Whether `conn` is still the connection a line at `time` from `source`
/// belongs to: not idle too long before a login (a logged-in session may
/// stay quiet for days), and not another peer (the PID was reused).
fn is_current(conn: &Connection, time: Timestamp, source: Option<&Source>) -> bool {
    let idle = !conn.succeeded && time.duration_since(conn.last_time) > CONNECTION_IDLE_LIMIT;
    let other_peer = matches!(
        (source, &conn.source),
        (Some(Source::Addr(a)), Some(Source::Addr(b))) if a != b
    );
    !idle && !other_peer
}

/// One event applied to its open connection: sources shared both ways,
/// the pending failure decided or kept, the event emitted or held.
fn apply(
    conn: &mut Connection,
    stats: &mut CorrelateStats,
    mut parsed: Parsed,
    closes: bool,
    out: &mut Vec<Parsed>,
) {
    let kind = parsed.event.kind;
    if kind == Kind::ConnectionClosedPreauth && conn.succeeded {
        // `Connection closed by <addr> port <n>` without `[preauth]`
        // also ends sessions: after a login it is a plain disconnect.
        parsed.event.kind = Kind::Disconnected;
        parsed.event.outcome = Outcome::Context;
    }

    match (&parsed.event.source, &conn.source) {
        (None, Some(known)) => {
            parsed.event.source = Some(known.clone());
            stats.source_from_earlier += 1;
        }
        (Some(new), None) => {
            conn.source = Some(new.clone());
            flush_waiting(stats, conn, out);
        }
        _ => {}
    }

    if let Some(pending) = conn.pending.take() {
        match pending_fate(&pending.event, &parsed.event, closes, conn.succeeded) {
            PendingFate::Keep => conn.pending = Some(pending),
            PendingFate::Absorbed => {
                stats.pending_absorbed += 1;
                emit_pending(stats, conn, *pending, Outcome::Context, out);
            }
            PendingFate::Succeeded => {
                stats.pending_then_success += 1;
                emit_pending(stats, conn, *pending, Outcome::Context, out);
            }
            PendingFate::Fails(why) => {
                count_resolution(stats, why);
                emit_pending(stats, conn, *pending, Outcome::Failure, out);
            }
        }
    }

    if parsed.event.outcome == Outcome::Success {
        conn.succeeded = true;
    }
    if parsed.event.outcome == Outcome::Pending {
        conn.pending = Some(Box::new(parsed));
    } else if parsed.event.source.is_none() && wants_source(&parsed.event) {
        if conn.waiting.len() < MAX_WAITING_PER_CONNECTION {
            conn.waiting.push(parsed);
        } else {
            stats.source_never_found += 1;
            out.push(parsed);
        }
    } else {
        out.push(parsed);
    }
}

/// The connection is over: its pending failure is decided and its waiting
/// lines go out as they are.
fn resolve(
    stats: &mut CorrelateStats,
    mut conn: Connection,
    why: PendingResolution,
    out: &mut Vec<Parsed>,
) {
    if let Some(pending) = conn.pending.take() {
        if conn.succeeded {
            stats.pending_then_success += 1;
            emit_pending(stats, &conn, *pending, Outcome::Context, out);
        } else {
            count_resolution(stats, why);
            emit_pending(stats, &conn, *pending, Outcome::Failure, out);
        }
    }
    for parsed in conn.waiting.drain(..) {
        stats.source_never_found += 1;
        out.push(parsed);
    }
}

fn flush_waiting(stats: &mut CorrelateStats, conn: &mut Connection, out: &mut Vec<Parsed>) {
    for mut parsed in conn.waiting.drain(..) {
        parsed.event.source = conn.source.clone();
        stats.source_from_later += 1;
        out.push(parsed);
    }
}

fn emit_pending(
    stats: &mut CorrelateStats,
    conn: &Connection,
    mut pending: Parsed,
    outcome: Outcome,
    out: &mut Vec<Parsed>,
) {
    pending.event.outcome = outcome;
    if pending.event.source.is_none() {
        if conn.source.is_some() {
            pending.event.source = conn.source.clone();
            stats.source_from_later += 1;
        } else {
            stats.source_never_found += 1;
        }
    }
    out.push(pending);
}

fn count_resolution(stats: &mut CorrelateStats, why: PendingResolution) {
    let counter = match why {
        PendingResolution::Closed => &mut stats.pending_closed,
        PendingResolution::AnotherFailure => &mut stats.pending_another_failure,
        PendingResolution::OtherUser => &mut stats.pending_other_user,
        PendingResolution::Evicted => &mut stats.pending_evicted,
        PendingResolution::EndOfInput => &mut stats.pending_end_of_input,
    };
    *counter += 1;
}

/// Whether a line may open a connection entry: it names the peer (for
/// later lines), is pending, or needs an address itself.
fn worth_tracking(event: &AuthEvent) -> bool {
    event.source.is_some() || event.outcome == Outcome::Pending || wants_source(event)
}

/// Whether a line without address waits for its connection's: the lines
/// that need one by nature, and every failure or success (an ambiguous
/// address, an address-less `User x not allowed`). A context line such as
/// `session closed` goes out at once, as it is.
fn wants_source(event: &AuthEvent) -> bool {
    event.kind.needs_connection() || event.outcome != Outcome::Context
}

enum PendingFate {
    Keep,
    /// The `Failed ...` line of the same attempt: counted once, there.
    Absorbed,
    Succeeded,
    Fails(PendingResolution),
}

fn pending_fate(
    pending: &AuthEvent,
    next: &AuthEvent,
    closes: bool,
    succeeded: bool,
) -> PendingFate {
    let same_user = match (&pending.user, &next.user) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let same_attempt_kind =
        matches!(next.kind, Kind::FailedAuth | Kind::PamAuthFailure | Kind::PamUserUnknown);
    match next.outcome {
        _ if next.kind == Kind::PamUnixAuthFailure => {
            PendingFate::Fails(PendingResolution::AnotherFailure)
        }
        Outcome::Success => PendingFate::Succeeded,
        Outcome::Failure if !same_user => PendingFate::Fails(PendingResolution::OtherUser),
        Outcome::Failure if same_attempt_kind => PendingFate::Absorbed,
        Outcome::Failure => PendingFate::Fails(PendingResolution::AnotherFailure),
        _ if !same_user => PendingFate::Fails(PendingResolution::OtherUser),
        _ if closes && succeeded => PendingFate::Succeeded,
        _ if closes => PendingFate::Fails(PendingResolution::Closed),
        _ => PendingFate::Keep,
    }
}
