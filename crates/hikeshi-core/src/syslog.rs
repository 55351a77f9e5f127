//! Syslog envelopes: splits a raw log line into its time, host, process,
//! PID and message, whatever the envelope (classic RFC 3164 files, rsyslog's
//! high-precision format, RFC 5424 and RFC 3164 from the network, journal
//! short lines, `[sshd]:` without PID, Solaris message ids).
//!
//! It also owns the one hard part of classic timestamps: they carry no year
//! and no zone. [`YearlessClock`] infers both from a reference time and a
//! zone that the caller passes in (this module never reads the clock).
//!
//! Everything here works on `&[u8]` and borrows from the line: nothing is
//! allocated, so lines of other programs cost a few comparisons.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// When a line says it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTime {
    /// A complete timestamp (RFC 3339 / RFC 5424: date, time and offset).
    Absolute(Timestamp),
    /// A classic syslog timestamp: month, day and time, no year, no zone.
    Yearless { month: i8, day: i8, time: Time },
    /// No timestamp at all (journal short lines, RFC 5424 nil `-`): the
    /// caller's fallback time applies.
    Missing,
}

/// A line split into its envelope fields. Every field borrows from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub time: LineTime,
    /// The host name of the header, if the envelope has one.
    pub host: Option<&'a [u8]>,
    /// The program name (`sshd`, `sshd-session`, `CRON`, ...), without any
    /// directory (`/usr/sbin/sshd` is `sshd`).
    pub process: &'a [u8],
    pub pid: Option<u32>,
    /// The message, after the Solaris `[ID n facility.level] ` prefix.
    pub message: &'a [u8],
}

/// Why a line has no envelope we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("bad or truncated timestamp")]
    BadTimestamp,
    #[error("bad <PRI> header")]
    BadPriority,
    #[error("no `program[pid]:` tag")]
    NoTag,
    #[error("bad RFC 5424 header")]
    BadRfc5424,
}

/// Splits `line` (without its line terminator) into its envelope.
pub fn parse_envelope(line: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let mut rest = line;
    if rest.first() == Some(&b'<') {
        let close =
            rest.iter().take(5).position(|&b| b == b'>').ok_or(EnvelopeError::BadPriority)?;
        let pri = &rest[1..close];
        if pri.is_empty() || !pri.iter().all(u8::is_ascii_digit) {
            return Err(EnvelopeError::BadPriority);
        }
        rest = &rest[close + 1..];
        if let Some(after_version) = rest.strip_prefix(b"1 ") {
            return parse_rfc5424(after_version);
        }
    }
    let (time, rest) = match rest.first() {
        Some(b) if b.is_ascii_digit() && rest.get(4) == Some(&b'-') => parse_rfc3339_prefix(rest)?,
        Some(_) if is_month_prefix(rest) => parse_classic_time(rest)?,
        // A journal short line: `host sshd[2231]: ` with no time.
        _ => (LineTime::Missing, rest),
    };
    parse_host_and_tag(time, rest)
}

/// `host tag: msg` or `tag: msg` (no host: RFC 3164 from a local socket,
/// `[sshd]:`). A token that ends with `:` or contains `[` is the tag.
fn parse_host_and_tag(time: LineTime, rest: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let first_end = find_byte(rest, b' ').ok_or(EnvelopeError::NoTag)?;
    let first = &rest[..first_end];
    let (host, tag_and_msg) =
        if looks_like_tag(first) { (None, rest) } else { (Some(first), &rest[first_end + 1..]) };
    if host.is_some_and(<[u8]>::is_empty) {
        return Err(EnvelopeError::NoTag);
    }
    let tag_end = find_byte(tag_and_msg, b' ').unwrap_or(tag_and_msg.len());
    let tag = &tag_and_msg[..tag_end];
    let tag = tag.strip_suffix(b":").ok_or(EnvelopeError::NoTag)?;
    let (process, pid) = split_tag(tag)?;
    let message = tag_and_msg.get(tag_end + 1..).unwrap_or(b"");
    Ok(Envelope { time, host, process, pid, message: strip_solaris_id(message) })
}

fn looks_like_tag(token: &[u8]) -> bool {
    token.ends_with(b":") || token.contains(&b'[')
}

/// A plain scan: envelope fields are a few bytes long, too short for
/// `memchr`'s setup to pay off.
#[inline]
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// `sshd[2231]`, `sshd`, `[sshd]`, `/usr/sbin/sshd[1]`.
fn split_tag(tag: &[u8]) -> Result<(&[u8], Option<u32>), EnvelopeError> {
    if let Some(inner) = tag.strip_prefix(b"[").and_then(|t| t.strip_suffix(b"]")) {
        return Ok((basename(inner), None));
    }
    let (name, pid) = match find_byte(tag, b'[') {
        Some(open) => {
            let digits = tag[open + 1..].strip_suffix(b"]").ok_or(EnvelopeError::NoTag)?;
            (&tag[..open], Some(parse_u32(digits).ok_or(EnvelopeError::NoTag)?))
        }
        None => (tag, None),
    };
    if name.is_empty() {
        return Err(EnvelopeError::NoTag);
    }
    Ok((basename(name), pid))
}

fn basename(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'/') {
        Some(slash) => &name[slash + 1..],
        None => name,
    }
}

/// Solaris writes `[ID 800047 auth.info] ` before the message.
fn strip_solaris_id(message: &[u8]) -> &[u8] {
    if let Some(rest) = message.strip_prefix(b"[ID ") {
        if let Some(close) = memchr::memchr(b']', rest) {
            let inner = &rest[..close];
            let looks_right = inner.first().is_some_and(u8::is_ascii_digit)
                && memchr::memchr(b' ', inner).is_some()
                && memchr::memchr(b'.', inner).is_some();
            if looks_right {
                let after = &rest[close + 1..];
                return after.strip_prefix(b" ").unwrap_or(after);
            }
        }
    }
    message
}

/// `TIMESTAMP HOST APP PROCID MSGID SD [BOM]MSG` after `<PRI>1 `.
fn parse_rfc5424(rest: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let mut fields = rest.splitn(6, |&b| b == b' ');
    let mut next = || fields.next().ok_or(EnvelopeError::BadRfc5424);
    let stamp = next()?;
    let host = next()?;
    let app = next()?;
    let procid = next()?;
    let _msgid = next()?;
    let sd_and_msg = fields.next().unwrap_or(b"");
    let time = if stamp == b"-" {
        LineTime::Missing
    } else {
        let (time, after) = parse_rfc3339_prefix(stamp)?;
        if !after.is_empty() {
            return Err(EnvelopeError::BadTimestamp);
        }
        time
    };
    let nil = |f: &'_ [u8]| f == b"-";
    let message = skip_structured_data(sd_and_msg)?;
    let message = message.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(message);
    // rsyslog's RSYSLOG_SyslogProtocol23Format writes `%msg%`, which keeps
    // the space that followed `tag:` in the original message: `- -  msg`.
    let message = &message[message.iter().take_while(|&&b| b == b' ').count()..];
    if app.is_empty() || nil(app) {
        return Err(EnvelopeError::BadRfc5424);
    }
    let pid = if nil(procid) { None } else { parse_u32(procid) };
    Ok(Envelope {
        time,
        host: (!nil(host) && !host.is_empty()).then_some(host),
        process: basename(app),
        pid,
        message: strip_solaris_id(message),
    })
}

/// Skips `-` or one or more `[id k="v" ...]` elements (values may contain
/// `\]` and `\"` escapes) and the space after them.
fn skip_structured_data(sd: &[u8]) -> Result<&[u8], EnvelopeError> {
    if let Some(rest) = sd.strip_prefix(b"-") {
        return Ok(rest.strip_prefix(b" ").unwrap_or(rest));
    }
    let mut i = 0;
    while sd.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        loop {
            match sd.get(i) {
                None => return Err(EnvelopeError::BadRfc5424),
                Some(b'\\') if in_quotes => i += 2,
                Some(b'"') => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                Some(b']') if !in_quotes => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    if i == 0 {
        return Err(EnvelopeError::BadRfc5424);
    }
    let rest = &sd[i..];
    Ok(rest.strip_prefix(b" ").unwrap_or(rest))
}

fn is_month_prefix(s: &[u8]) -> bool {
    s.len() >= 4 && s[3] == b' ' && month_number(&s[..3]).is_some()
}

fn month_number(name: &[u8]) -> Option<i8> {
    Some(match name {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// `Jan 15 10:33:14 ` or `Jan  5 10:33:14 ` (space-padded day).
fn parse_classic_time(s: &[u8]) -> Result<(LineTime, &[u8]), EnvelopeError> {
    let bad = EnvelopeError::BadTimestamp;
    if s.len() < 16 || s[15] != b' ' {
        return Err(bad);
    }
    let month = month_number(&s[..3]).ok_or(bad)?;
    let day = match (s[4], s[5]) {
        (b' ', d) if d.is_ascii_digit() => (d - b'0') as i8,
        (a, d) if a.is_ascii_digit() && d.is_ascii_digit() => ((a - b'0') * 10 + d - b'0') as i8,
        _ => return Err(bad),
    };
    let time = parse_hms(&s[7..15]).ok_or(bad)?;
    if s[6] != b' ' || !(1..=31).contains(&day) {
        return Err(bad);
    }
    Ok((LineTime::Yearless { month, day, time }, &s[16..]))
}

fn two_digits(s: &[u8]) -> Option<i8> {
    match s {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(((a - b'0') * 10 + (b - b'0')) as i8)
        }
        _ => None,
    }
}

/// `HH:MM:SS` (leap second 60 is clamped: jiff has no leap seconds).
fn parse_hms(s: &[u8]) -> Option<Time> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (two_digits(&s[0..2])?, two_digits(&s[3..5])?, two_digits(&s[6..8])?);
    Time::new(h, m, sec.min(59), 0).ok()
}

/// `2026-01-15T10:33:14[.frac](Z|+09:00)` followed by a space (or the end).
fn parse_rfc3339_prefix(s: &[u8]) -> Result<(LineTime, &[u8]), EnvelopeError> {
    let bad = EnvelopeError::BadTimestamp;
    let end = memchr::memchr(b' ', s).unwrap_or(s.len());
    let stamp = &s[..end];
    let rest = s.get(end + 1..).unwrap_or(b"");
    if stamp.len() < 20 || stamp[4] != b'-' || stamp[7] != b'-' || !matches!(stamp[10], b'T' | b't')
    {
        return Err(bad);
    }
    let year = parse_u32(&stamp[0..4]).ok_or(bad)? as i16;
    let month = two_digits(&stamp[5..7]).ok_or(bad)?;
    let day = two_digits(&stamp[8..10]).ok_or(bad)?;
    let hms = parse_hms(&stamp[11..19]).ok_or(bad)?;
    let mut i = 19;
    let mut nanos: i32 = 0;
    if stamp.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while stamp.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i32::from(stamp[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return Err(bad);
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_seconds: i32 = match &stamp[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i32::from(two_digits(&[*h1, *h2]).ok_or(bad)?);
            let m = i32::from(two_digits(&[*m1, *m2]).ok_or(bad)?);
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(bad),
    };
    let date = Date::new(year, month, day).map_err(|_| bad)?;
    let civil =
        DateTime::from_parts(date, hms.with().subsec_nanosecond(nanos).build().map_err(|_| bad)?);
    let offset = jiff::tz::Offset::from_seconds(offset_seconds).map_err(|_| bad)?;
    let ts = offset.to_timestamp(civil).map_err(|_| bad)?;
    Ok((LineTime::Absolute(ts), rest))
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    u32::try_from(n).ok()
}

/// Turns yearless classic timestamps into instants.
///
/// The year is the reference time's year, unless that puts the line more
/// than a day after the reference: then it is the year before (a December
/// line read in January; a log written before the reference never lies in
/// its future). The zone is the configured one. The last conversion is
/// cached per minute, so consecutive lines cost one comparison.
#[derive(Debug, Clone)]
pub struct YearlessClock {
    zone: TimeZone,
    reference: Timestamp,
    reference_date: Date,
    cache: Option<((i8, i8, i8, i8), Timestamp)>,
}

/// How far in the future of the reference a line may lie and still be
/// of the reference's year (clock skew between hosts, zone mix-ups).
const FUTURE_TOLERANCE: SignedDuration = SignedDuration::from_hours(26);

impl YearlessClock {
    pub fn new(zone: TimeZone, reference: Timestamp) -> Self {
        let reference_date = reference.to_zoned_datetime(zone.clone()).date();
        YearlessClock { zone, reference, reference_date, cache: None }
    }

    /// The reference time (also the fallback for lines without time).
    pub fn reference(&self) -> Timestamp {
        self.reference
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Converts `month day time` to an instant. Never fails: an impossible
    /// date (Feb 30) is clamped to the month's last day.
    pub fn resolve(&mut self, month: i8, day: i8, time: Time) -> Timestamp {
        let key = (month, day, time.hour(), time.minute());
        let seconds = i64::from(time.second());
        if let Some((cached_key, minute_start)) = self.cache {
            if cached_key == key {
                return minute_start + SignedDuration::from_secs(seconds);
            }
        }
        let minute = time.with().second(0).subsec_nanosecond(0).build().unwrap_or(time);
        let minute_start = self.resolve_uncached(month, day, minute);
        self.cache = Some((key, minute_start));
        minute_start + SignedDuration::from_secs(seconds)
    }

    fn resolve_uncached(&self, month: i8, day: i8, time: Time) -> Timestamp {
        let year = self.reference_date.year();
        let at = |year: i16| -> Option<Timestamp> {
            let date = Date::new(year, month, day).ok()?;
            self.zone.to_ambiguous_timestamp(date.to_datetime(time)).compatible().ok()
        };
        if let Some(ts) = at(year) {
            if ts.duration_since(self.reference) <= FUTURE_TOLERANCE {
                return ts;
            }
        }
        // The previous year, or (Feb 29) the last leap year before it.
        for back in 1..=8 {
            if let Some(ts) = at(year - back) {
                return ts;
            }
        }
        // Only an impossible date (Feb 30, Apr 31) gets here: clamp it.
        let clamped = Date::new(year, month, 1)
            .map(|d| d.last_of_month())
            .unwrap_or(self.reference_date)
            .to_datetime(time);
        self.zone.to_ambiguous_timestamp(clamped).compatible().unwrap_or(self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(line: &str) -> Envelope<'_> {
        parse_envelope(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn classic_syslog() {
        let e = env("Jan 15 10:33:14 server1 sshd[2231]: Failed password for x");
        assert_eq!(e.host, Some(&b"server1"[..]));
        assert_eq!(e.process, b"sshd");
        assert_eq!(e.pid, Some(2231));
        assert_eq!(e.message, b"Failed password for x");
        assert_eq!(
            e.time,
            LineTime::Yearless { month: 1, day: 15, time: Time::constant(10, 33, 14, 0) }
        );
        let e = env("Feb  5 01:02:03 h sshd-session[7]: m");
        assert_eq!(
            e.time,
            LineTime::Yearless { month: 2, day: 5, time: Time::constant(1, 2, 3, 0) }
        );
        assert_eq!(e.process, b"sshd-session");
    }

    #[test]
    fn high_precision_and_rfc5424() {
        let e = env("2026-01-15T10:33:14.123456+09:00 server1 sshd[2231]: m");
        assert_eq!(e.time, LineTime::Absolute(ts("2026-01-15T01:33:14.123456Z")));
        let e = env("<38>1 2026-01-15T10:33:14.954167-04:00 server1 sshd 2231 - - msg here");
        assert_eq!(e.time, LineTime::Absolute(ts("2026-01-15T14:33:14.954167Z")));
        assert_eq!((e.host, e.process, e.pid), (Some(&b"server1"[..]), &b"sshd"[..], Some(2231)));
        assert_eq!(e.message, b"msg here");
        let e = env(
            "<38>1 2026-01-15T10:33:14Z h sshd-auth 9 ID47 [a@1 x=\"q\\]\" y=\"z\"][b@2] \u{feff}msg",
        );
        assert_eq!((e.message, e.pid), (&b"msg"[..], Some(9)));
        let e = env("<38>1 - - sshd - - - msg");
        assert_eq!((e.time, e.host, e.pid), (LineTime::Missing, None, None));
        // rsyslog's RSYSLOG_SyslogProtocol23Format: two spaces before MSG.
        let e = env("<38>1 2026-11-26T13:49:16.871093+00:00 vm sshd 11042 - -  Failed password");
        assert_eq!((e.message, e.pid), (&b"Failed password"[..], Some(11042)));
    }

    #[test]
    fn wire_journal_bracketed_and_solaris() {
        let e = env("<38>Jan 15 10:33:14 server1 sshd[2231]: m");
        assert_eq!((e.host, e.pid, e.message), (Some(&b"server1"[..]), Some(2231), &b"m"[..]));
        let e = env("<38>Jan 15 10:33:14 sshd[2231]: m");
        assert_eq!((e.host, e.pid), (None, Some(2231)));
        let e = env("server1 sshd[2231]: m");
        assert_eq!((e.time, e.host, e.pid), (LineTime::Missing, Some(&b"server1"[..]), Some(2231)));
        let e = env("Jan 15 10:33:14 [sshd]: m");
        assert_eq!((e.host, e.process, e.pid), (None, &b"sshd"[..], None));
        let e = env("Jan 15 10:33:14 server1 sshd[2231]: [ID 800047 auth.info] m");
        assert_eq!(e.message, b"m");
        let e = env("Jan 15 10:33:14 h /usr/sbin/sshd[1]: m");
        assert_eq!(e.process, b"sshd");
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        for line in [
            "",
            "Jan 15 10:33",
            "Jan 15 10:33:14",
            "Jan 15 10:33:14 ",
            "Jan 15 99:33:14 h sshd[1]: m",
            "Jan 15 10:33:14 h sshd[x]: m",
            "Jan 15 10:33:14 h sshd[1 m",
            "<999999>x",
            "<38>1 2026-01-15T10:33:14Z h",
            "<38>1 2026-01-15T10:33:14Z h sshd 1 - [unterminated",
            "2026-13-15T10:33:14Z h sshd[1]: m",
            "2026-01-15T10:33:14 h sshd[1]: m",
            "justoneword",
        ] {
            assert!(parse_envelope(line.as_bytes()).is_err(), "{line:?}");
        }
    }

    #[test]
    fn year_rollover_and_future_lines() {
        let utc = TimeZone::UTC;
        let t = Time::constant(23, 59, 0, 0);
        let mut clock = YearlessClock::new(utc.clone(), ts("2026-01-02T00:00:00Z"));
        assert_eq!(clock.resolve(12, 31, t), ts("2025-12-31T23:59:00Z"));
        assert_eq!(clock.resolve(1, 1, t), ts("2026-01-01T23:59:00Z"));
        // A day ahead is clock skew, a week ahead is last year.
        assert_eq!(clock.resolve(1, 2, t), ts("2026-01-02T23:59:00Z"));
        assert_eq!(clock.resolve(1, 9, t), ts("2025-01-09T23:59:00Z"));
        // Feb 29 goes back to the last leap year.
        let mut clock = YearlessClock::new(utc, ts("2027-03-01T00:00:00Z"));
        assert_eq!(clock.resolve(2, 29, t), ts("2024-02-29T23:59:00Z"));
        assert_eq!(clock.resolve(2, 30, t), ts("2027-02-28T23:59:00Z"));
    }

    #[test]
    fn zone_is_applied_and_cache_keeps_seconds() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let mut clock = YearlessClock::new(tokyo, ts("2026-06-01T00:00:00Z"));
        assert_eq!(clock.resolve(1, 15, Time::constant(10, 33, 14, 0)), ts("2026-01-15T01:33:14Z"));
        assert_eq!(clock.resolve(1, 15, Time::constant(10, 33, 59, 0)), ts("2026-01-15T01:33:59Z"));
    }
}
