//! The stateful line parser: raw lines (or journal records) in,
//! [`AuthEvent`]s out, with statistics about everything it could not use.
//!
//! It ties [`crate::syslog`] (envelopes, yearless timestamps),
//! [`crate::sshd`] (messages) and [`crate::correlate`] (connections,
//! pending failures) together. It is the one entry point for every
//! source: a file scanner and stdin call [`LineParser::push_line`], the
//! journal calls [`LineParser::push_record`], and all of them call
//! [`LineParser::finish`] at the end of their input.
//!
//! It never fails and never panics: a line it cannot use is counted in
//! [`ParseStats`] by reason. Memory is bounded by the connection table,
//! whatever the input. Lines of other programs are rejected after a few
//! comparisons, without allocating.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::correlate::{ConnectionKey, CorrelateStats, Tracker};
use crate::event::{AuthEvent, Kind, Mode, Outcome};
use crate::sshd::{self, Classified};
use crate::syslog::{self, LineTime, YearlessClock};

/// Open connections tracked by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;
/// Longest line parsed by default; longer lines are skipped and counted.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024;

/// How to parse. Time is an argument: the core never reads the clock.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub mode: Mode,
    /// Zone of classic syslog timestamps, which carry none.
    pub zone: TimeZone,
    /// Gives yearless timestamps their year (a file's modification time,
    /// or now for a stream), and the time of lines that carry none until a
    /// line with a time has been seen.
    pub reference_time: Timestamp,
    /// Open connections tracked at most (least recently used evicted).
    pub max_connections: usize,
    /// Lines longer than this (in bytes, without terminator) are skipped.
    pub max_line_len: usize,
}

impl ParseOptions {
    /// Options with the default limits.
    pub fn new(mode: Mode, zone: TimeZone, reference_time: Timestamp) -> Self {
        ParseOptions {
            mode,
            zone,
            reference_time,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }
}

/// Where a line came from. Opaque to the parser, carried to its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// 1-based line number within its input.
    pub line: u64,
    /// Byte offset of the line's start within its input.
    pub offset: u64,
}

/// An event and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub event: AuthEvent,
    pub origin: Origin,
}

/// A line whose envelope was already split by its source (the journal).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// `None`: the parser's fallback time (the last time seen, or the
    /// reference time).
    pub time: Option<Timestamp>,
    pub host: Option<&'a [u8]>,
    /// `SYSLOG_IDENTIFIER` / `_COMM`: `sshd`, `sshd-session`, ...
    pub process: &'a [u8],
    pub pid: Option<u32>,
    pub message: &'a [u8],
}

/// What the parser made of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineVerdict {
    /// An sshd/Dropbear line of this kind (its event may come out later:
    /// see [`crate::correlate`]).
    Recognised(Kind),
    /// An sshd line we know and ignore on purpose (`Server listening`, ...).
    SshdIgnored,
    /// An sshd line that matched no known shape.
    SshdUnrecognised,
    /// Another program's line (CRON, sudo, systemd, the kernel, ...).
    NotSshd,
    /// Not parsed at all.
    Skipped(SkipReason),
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Empty (or only a line terminator).
    Empty,
    /// Longer than `max_line_len`.
    TooLong,
    /// Contains a NUL byte (after any leading run of NULs, which are
    /// dropped: a crash leaves them before the next line).
    Nul,
    /// No envelope we understand (truncated, corrupted, not syslog).
    MalformedEnvelope,
}

impl SkipReason {
    pub const ALL: [SkipReason; 4] =
        [SkipReason::Empty, SkipReason::TooLong, SkipReason::Nul, SkipReason::MalformedEnvelope];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Empty => "empty",
            SkipReason::TooLong => "too_long",
            SkipReason::Nul => "nul_byte",
            SkipReason::MalformedEnvelope => "malformed_envelope",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const KIND_COUNT: usize = Kind::ALL.len();
const OUTCOMES: [Outcome; 4] =
    [Outcome::Failure, Outcome::Pending, Outcome::Success, Outcome::Context];

/// What the parser saw. Counts only: nothing per event is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStats {
    /// Every line pushed (including skipped ones).
    pub lines: u64,
    /// Lines of sshd-family programs (recognised, ignored or unrecognised).
    pub sshd_lines: u64,
    pub sshd_ignored: u64,
    pub sshd_unrecognised: u64,
    pub not_sshd: u64,
    /// Lines whose address position was ambiguous (source taken from the
    /// connection instead).
    pub ambiguous_sources: u64,
    recognised: [u64; KIND_COUNT],
    outcomes: [u64; 4],
    skipped: [u64; 4],
    /// Connection tracking.
    pub correlation: CorrelateStats,
}

impl Default for ParseStats {
    fn default() -> Self {
        ParseStats {
            lines: 0,
            sshd_lines: 0,
            sshd_ignored: 0,
            sshd_unrecognised: 0,
            not_sshd: 0,
            ambiguous_sources: 0,
            recognised: [0; KIND_COUNT],
            outcomes: [0; 4],
            skipped: [0; 4],
            correlation: CorrelateStats::default(),
        }
    }
}

impl ParseStats {
    /// Lines recognised as `kind`.
    pub fn recognised(&self, kind: Kind) -> u64 {
        self.recognised[kind as usize]
    }

    /// All recognised lines.
    pub fn recognised_total(&self) -> u64 {
        self.recognised.iter().sum()
    }

    /// Events emitted with `outcome` (after resolution: `Pending` stays 0
    /// once [`LineParser::finish`] has run).
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0)]
    }

    /// Lines skipped for `reason`.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[reason.index()]
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }
}

/// The parser. One per input stream (its connections and yearless
/// timestamps are per stream).
#[derive(Debug)]
pub struct LineParser {
    mode: Mode,
    max_line_len: usize,
    clock: YearlessClock,
    /// Time of the last line that had one: the time of lines without.
    last_time: Option<Timestamp>,
    tracker: Tracker,
    stats: ParseStats,
    names: NameCache,
}

/// The last host and process names seen: nearly every line repeats them,
/// so they are converted to text once.
#[derive(Debug, Default)]
struct NameCache {
    host: (Vec<u8>, Arc<str>),
    process: (Vec<u8>, Arc<str>),
}

impl NameCache {
    fn host(&mut self, raw: &[u8]) -> Arc<str> {
        Self::get(&mut self.host, raw)
    }

    fn process(&mut self, raw: &[u8]) -> Arc<str> {
        Self::get(&mut self.process, raw)
    }

    fn get(slot: &mut (Vec<u8>, Arc<str>), raw: &[u8]) -> Arc<str> {
        if slot.0 != raw || slot.1.is_empty() {
            slot.0.clear();
            slot.0.extend_from_slice(raw);
            slot.1 = Arc::from(lossy(raw));
        }
        Arc::clone(&slot.1)
    }
}

/// sshd and its per-connection children, and Dropbear. Lines of any other
/// program are never read as sshd's, whatever they say: another program
/// logging attacker text must not be able to frame an address.
pub fn is_sshd_process(name: &[u8]) -> bool {
    matches!(name, b"sshd" | b"sshd-session" | b"sshd-auth" | b"dropbear")
        || name.starts_with(b"sshd-")
}

impl LineParser {
    pub fn new(opts: ParseOptions) -> Self {
        LineParser {
            mode: opts.mode,
            max_line_len: opts.max_line_len,
            clock: YearlessClock::new(opts.zone, opts.reference_time),
            last_time: None,
            tracker: Tracker::new(opts.max_connections),
            stats: ParseStats::default(),
            names: NameCache::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// Open connections being tracked.
    pub fn open_connections(&self) -> usize {
        self.tracker.len()
    }

    /// A new reference time for yearless timestamps (a long-running reader
    /// moves it forward with its clock).
    pub fn set_reference_time(&mut self, reference: Timestamp) {
        self.clock = YearlessClock::new(self.clock.zone().clone(), reference);
    }

    /// Parses one line (with or without its `\n` / `\r\n`). Appends the
    /// events that are decided now to `out`; see [`LineVerdict`].
    pub fn push_line(&mut self, line: &[u8], origin: Origin, out: &mut Vec<Parsed>) -> LineVerdict {
        self.stats.lines += 1;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_line_len {
            return self.skip(SkipReason::TooLong);
        }
        let start = line.iter().position(|&b| b != 0).unwrap_or(line.len());
        let line = &line[start..];
        if line.is_empty() {
            return self.skip(if start > 0 { SkipReason::Nul } else { SkipReason::Empty });
        }
        let Ok(envelope) = syslog::parse_envelope(line) else {
            return self.skip(SkipReason::MalformedEnvelope);
        };
        if !is_sshd_process(envelope.process) {
            self.stats.not_sshd += 1;
            return LineVerdict::NotSshd;
        }
        // sshd escapes what it logs, so a NUL in its line is corruption.
        // (Checked only now: other programs' lines need not be scanned.)
        if memchr::memchr(0, envelope.message).is_some() {
            return self.skip(SkipReason::Nul);
        }
        self.handle_sshd(
            envelope.time,
            envelope.host,
            envelope.process,
            envelope.pid,
            envelope.message,
            origin,
            out,
        )
    }

    /// Parses one record whose envelope its source already split (the
    /// journal: `SYSLOG_IDENTIFIER`, `_PID`, `_HOSTNAME`, `MESSAGE`).
    pub fn push_record(
        &mut self,
        record: Record<'_>,
        origin: Origin,
        out: &mut Vec<Parsed>,
    ) -> LineVerdict {
        self.stats.lines += 1;
        if record.message.len() > self.max_line_len {
            return self.skip(SkipReason::TooLong);
        }
        if record.message.is_empty() {
            return self.skip(SkipReason::Empty);
        }
        if memchr::memchr(0, record.message).is_some() {
            return self.skip(SkipReason::Nul);
        }
        if !is_sshd_process(record.process) {
            self.stats.not_sshd += 1;
            return LineVerdict::NotSshd;
        }
        let time = record.time.map_or(LineTime::Missing, LineTime::Absolute);
        let message = record.message.strip_suffix(b"\n").unwrap_or(record.message);
        self.handle_sshd(time, record.host, record.process, record.pid, message, origin, out)
    }

    /// Counts a line its reader had to skip (a line longer than the
    /// reader's buffer limit never reaches [`LineParser::push_line`]).
    pub fn record_skipped(&mut self, reason: SkipReason) {
        self.stats.lines += 1;
        self.skip(reason);
    }

    /// The input has ended: resolves every pending failure and emits every
    /// line still waiting for its connection's address.
    pub fn finish(&mut self, out: &mut Vec<Parsed>) {
        let before = out.len();
        self.tracker.finish(out);
        self.after_emit(before, out);
    }

    /// Resolves connections idle since before `now` minus
    /// [`crate::correlate::CONNECTION_IDLE_LIMIT`] (for readers that never
    /// reach an end of input).
    pub fn expire(&mut self, now: Timestamp, out: &mut Vec<Parsed>) {
        let before = out.len();
        self.tracker.expire(now, out);
        self.after_emit(before, out);
    }

    fn skip(&mut self, reason: SkipReason) -> LineVerdict {
        self.stats.skipped[reason.index()] += 1;
        LineVerdict::Skipped(reason)
    }

    fn time_of(&mut self, time: LineTime) -> Timestamp {
        let resolved = match time {
            LineTime::Absolute(ts) => ts,
            LineTime::Yearless { month, day, time } => self.clock.resolve(month, day, time),
            LineTime::Missing => return self.last_time.unwrap_or(self.clock.reference()),
        };
        self.last_time = Some(resolved);
        resolved
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_sshd(
        &mut self,
        time: LineTime,
        host: Option<&[u8]>,
        process: &[u8],
        pid: Option<u32>,
        message: &[u8],
        origin: Origin,
        out: &mut Vec<Parsed>,
    ) -> LineVerdict {
        self.stats.sshd_lines += 1;
        let before = out.len();
        let key = pid.map(|pid| ConnectionKey::new(host, pid));
        let verdict = match sshd::classify(message) {
            Classified::Unrecognised => {
                self.stats.sshd_unrecognised += 1;
                LineVerdict::SshdUnrecognised
            }
            Classified::Ignored { source } => {
                self.stats.sshd_ignored += 1;
                if let (Some(source), Some(key)) = (source, key) {
                    let time = self.time_of(time);
                    self.tracker.note_peer(key, source, time, out);
                }
                LineVerdict::SshdIgnored
            }
            Classified::Recognised(message) => {
                let kind = message.kind;
                self.stats.recognised[kind as usize] += 1;
                if message.ambiguous {
                    self.stats.ambiguous_sources += 1;
                }
                let event = AuthEvent {
                    time: self.time_of(time),
                    host: host.map(|h| self.names.host(h)),
                    process: self.names.process(process),
                    pid,
                    kind,
                    outcome: kind.outcome(self.mode),
                    source: message.source,
                    user: message.user.map(lossy),
                    port: message.port,
                };
                self.tracker.push(key, Parsed { event, origin }, out);
                LineVerdict::Recognised(kind)
            }
        };
        self.after_emit(before, out);
        verdict
    }

    fn after_emit(&mut self, before: usize, out: &[Parsed]) {
        for parsed in &out[before..] {
            let i = OUTCOMES.iter().position(|o| *o == parsed.event.outcome).unwrap_or(0);
            self.stats.outcomes[i] += 1;
        }
        self.stats.correlation = *self.tracker.stats();
    }
}

/// Bytes to text; invalid UTF-8 is replaced (U+FFFD), never an error.
fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn parser() -> LineParser {
        let mut opts = ParseOptions::new(Mode::Normal, TimeZone::UTC, ts("2026-06-01T00:00:00Z"));
        opts.max_line_len = 200;
        LineParser::new(opts)
    }

    #[test]
    fn journal_records_keep_their_fields_and_time() {
        let mut p = parser();
        let mut out = Vec::new();
        let record = Record {
            time: Some(ts("2026-01-15T10:33:14.5Z")),
            host: Some(b"server1"),
            process: b"sshd-session",
            pid: Some(42),
            message: b"Failed password for root from 203.0.113.5 port 22 ssh2",
        };
        let origin = Origin { line: 7, offset: 99 };
        assert_eq!(
            p.push_record(record, origin, &mut out),
            LineVerdict::Recognised(Kind::FailedAuth)
        );
        let ev = &out[0].event;
        assert_eq!(
            (ev.time, ev.pid, &*ev.process),
            (ts("2026-01-15T10:33:14.5Z"), Some(42), "sshd-session")
        );
        assert_eq!(out[0].origin, origin);
        // A record without time takes the last time seen.
        let record = Record { time: None, pid: Some(43), ..record };
        p.push_record(record, origin, &mut out);
        assert_eq!(out[1].event.time, ts("2026-01-15T10:33:14.5Z"));
        let cron = Record { process: b"CRON", ..record };
        assert_eq!(p.push_record(cron, origin, &mut out), LineVerdict::NotSshd);
    }

    #[test]
    fn lines_without_time_use_the_reference_until_a_time_is_seen() {
        let mut p = parser();
        let mut out = Vec::new();
        p.push_line(
            b"h sshd[1]: Invalid user a from 203.0.113.5 port 1",
            Origin::default(),
            &mut out,
        );
        assert_eq!(out[0].event.time, ts("2026-06-01T00:00:00Z"));
        p.set_reference_time(ts("2027-02-01T00:00:00Z"));
        p.push_line(
            b"Dec 24 10:00:00 h sshd[2]: Invalid user a from 203.0.113.5 port 1",
            Origin::default(),
            &mut out,
        );
        assert_eq!(out[1].event.time, ts("2026-12-24T10:00:00Z"));
    }

    #[test]
    fn skipped_lines_are_counted_by_reason() {
        let mut p = parser();
        let mut out = Vec::new();
        let long = [b'x'; 201];
        let cases: [(&[u8], LineVerdict); 6] = [
            (b"", LineVerdict::Skipped(SkipReason::Empty)),
            (b"\r\n", LineVerdict::Skipped(SkipReason::Empty)),
            (&long, LineVerdict::Skipped(SkipReason::TooLong)),
            (b"\0\0\0", LineVerdict::Skipped(SkipReason::Nul)),
            (b"h sshd[1]: Invalid\0user", LineVerdict::Skipped(SkipReason::Nul)),
            (b"Jan 15 10:3", LineVerdict::Skipped(SkipReason::MalformedEnvelope)),
        ];
        for (line, verdict) in cases {
            assert_eq!(p.push_line(line, Origin::default(), &mut out), verdict, "{line:?}");
        }
        // Leading NULs (left by a crash) are dropped, the line is parsed.
        let verdict = p.push_line(
            b"\0\0Jan 15 10:33:14 h sshd[1]: Invalid user a from 203.0.113.5 port 1\r\n",
            Origin::default(),
            &mut out,
        );
        assert_eq!(verdict, LineVerdict::Recognised(Kind::InvalidUser));
        p.record_skipped(SkipReason::TooLong);
        let s = p.stats();
        assert_eq!(s.lines, 8);
        assert_eq!(s.skipped(SkipReason::TooLong), 2);
        assert_eq!(s.skipped(SkipReason::Empty), 2);
        assert_eq!(s.skipped(SkipReason::Nul), 2);
        assert_eq!(s.skipped_total(), 7);
        assert_eq!(s.recognised(Kind::InvalidUser), 1);
        assert_eq!(s.outcome(Outcome::Failure), 1);
    }

    #[test]
    fn kind_indexes_match_the_table() {
        for (i, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind}");
        }
        for (i, reason) in SkipReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }
}
