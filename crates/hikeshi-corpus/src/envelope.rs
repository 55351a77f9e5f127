//! The envelopes a message is wrapped in (classic syslog, RFC 3339
//! high-precision, RFC 5424, RFC 3164 on the wire, journal short output,
//! no-PID and Solaris), and the fast rendering of their time stamps.
//!
//! Times are UTC. The calendar fields are recomputed only when the second
//! changes, because many lines share one second.

use std::fmt;
use std::str::FromStr;

/// How a line's header looks. See `docs/sshd-messages.md`, "The envelope
/// around the message".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Envelope {
    /// `Jan 15 10:33:14 server1 sshd[2231]: ` (Debian's default auth.log).
    Classic,
    /// `2026-01-15T10:33:14.123456+00:00 server1 sshd[2231]: ` (rsyslog
    /// `RSYSLOG_FileFormat`).
    Rfc3339,
    /// `<38>1 2026-01-15T10:33:14.123456+00:00 server1 sshd 2231 - - `
    Rfc5424,
    /// `<38>Jan 15 10:33:14 server1 sshd[2231]: `
    Rfc3164,
    /// `server1 sshd[2231]: ` (journal short output without its time).
    Journal,
    /// `Jan 15 10:33:14 [sshd]: ` (no host, no PID).
    NoPid,
    /// `Jan 15 10:33:14 server1 sshd[2231]: [ID 800047 auth.info] `
    Solaris,
}

impl Envelope {
    /// Every envelope, the set `mix` stands for.
    pub const ALL: [Envelope; 7] = [
        Envelope::Classic,
        Envelope::Rfc3339,
        Envelope::Rfc5424,
        Envelope::Rfc3164,
        Envelope::Journal,
        Envelope::NoPid,
        Envelope::Solaris,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Envelope::Classic => "classic",
            Envelope::Rfc3339 => "rfc3339",
            Envelope::Rfc5424 => "rfc5424",
            Envelope::Rfc3164 => "rfc3164",
            Envelope::Journal => "journal",
            Envelope::NoPid => "nopid",
            Envelope::Solaris => "solaris",
        }
    }

    /// Parses a comma-separated list such as `classic,rfc5424`, or `mix`
    /// for all of them.
    pub fn parse_list(list: &str) -> Result<Vec<Envelope>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "mix" {
                out.extend(Envelope::ALL);
            } else {
                out.push(name.parse()?);
            }
        }
        out.dedup();
        if out.is_empty() {
            return Err("no envelope given".to_string());
        }
        Ok(out)
    }
}

impl FromStr for Envelope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Envelope::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Envelope::ALL.iter().map(|e| e.as_str()).collect();
            format!("unknown envelope {s:?}: expected {} or mix", names.join(", "))
        })
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who wrote a line: the process name, its PID if the daemon logs one, and
/// the syslog priority (facility * 8 + severity) for the envelopes that
/// carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub process: &'static str,
    pub pid: Option<u32>,
    pub priority: u8,
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn two_digits(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Pushes the decimal digits of `v`.
pub fn push_u32(out: &mut Vec<u8>, mut v: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Renders headers; remembers the calendar fields of the last second seen.
#[derive(Debug, Clone)]
pub struct HeaderWriter {
    host: String,
    cached_second: Option<i64>,
    /// `Jan 15 10:33:14`
    classic: [u8; 15],
    /// `2026-01-15T10:33:14`
    iso: [u8; 19],
}

impl HeaderWriter {
    pub fn new(host: &str) -> HeaderWriter {
        HeaderWriter { host: host.to_string(), cached_second: None, classic: [0; 15], iso: [0; 19] }
    }

    fn refresh(&mut self, unix_second: i64) {
        if self.cached_second == Some(unix_second) {
            return;
        }
        self.cached_second = Some(unix_second);
        let (year, month, day) = civil_from_days(unix_second.div_euclid(86_400));
        let secs = unix_second.rem_euclid(86_400) as u32;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);

        let c = &mut self.classic;
        c[..3].copy_from_slice(MONTHS[month as usize - 1]);
        c[3] = b' ';
        // Classic syslog pads the day with a space: `Jan  5`.
        c[4] = if day < 10 { b' ' } else { b'0' + (day / 10) as u8 };
        c[5] = b'0' + (day % 10) as u8;
        c[6] = b' ';
        two_digits(&mut c[7..9], h);
        c[9] = b':';
        two_digits(&mut c[10..12], m);
        c[12] = b':';
        two_digits(&mut c[13..15], s);

        let i = &mut self.iso;
        let y = year.clamp(0, 9999) as u32;
        two_digits(&mut i[0..2], y / 100);
        two_digits(&mut i[2..4], y % 100);
        i[4] = b'-';
        two_digits(&mut i[5..7], month);
        i[7] = b'-';
        two_digits(&mut i[8..10], day);
        i[10] = b'T';
        i[11..19].copy_from_slice(&c[7..15]);
    }

    fn push_iso(&mut self, out: &mut Vec<u8>, unix_micros: i64) {
        self.refresh(unix_micros.div_euclid(1_000_000));
        out.extend_from_slice(&self.iso);
        out.push(b'.');
        let frac = unix_micros.rem_euclid(1_000_000) as u32;
        let mut digits = [b'0'; 6];
        let mut v = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"+00:00");
    }

    fn push_classic(&mut self, out: &mut Vec<u8>, unix_micros: i64) {
        self.refresh(unix_micros.div_euclid(1_000_000));
        out.extend_from_slice(&self.classic);
    }

    /// `proc[pid]` or `proc`.
    fn push_tag(out: &mut Vec<u8>, origin: Origin) {
        out.extend_from_slice(origin.process.as_bytes());
        if let Some(pid) = origin.pid {
            out.push(b'[');
            push_u32(out, pid);
            out.push(b']');
        }
    }

    fn push_priority(out: &mut Vec<u8>, origin: Origin) {
        out.push(b'<');
        push_u32(out, u32::from(origin.priority));
        out.push(b'>');
    }

    /// Appends the header of one line (everything before the message).
    pub fn push(
        &mut self,
        out: &mut Vec<u8>,
        envelope: Envelope,
        unix_micros: i64,
        origin: Origin,
    ) {
        match envelope {
            Envelope::Classic | Envelope::Solaris => {
                self.push_classic(out, unix_micros);
                out.push(b' ');
                out.extend_from_slice(self.host.as_bytes());
                out.push(b' ');
                Self::push_tag(out, origin);
                out.extend_from_slice(b": ");
                if envelope == Envelope::Solaris {
                    let tag: &[u8] = if origin.priority == 38 {
                        b"[ID 800047 auth.info] "
                    } else {
                        b"[ID 702911 auth.notice] "
                    };
                    out.extend_from_slice(tag);
                }
            }
            Envelope::Rfc3339 => {
                self.push_iso(out, unix_micros);
                out.push(b' ');
                out.extend_from_slice(self.host.as_bytes());
                out.push(b' ');
                Self::push_tag(out, origin);
                out.extend_from_slice(b": ");
            }
            Envelope::Rfc5424 => {
                Self::push_priority(out, origin);
                out.extend_from_slice(b"1 ");
                self.push_iso(out, unix_micros);
                out.push(b' ');
                out.extend_from_slice(self.host.as_bytes());
                out.push(b' ');
                out.extend_from_slice(origin.process.as_bytes());
                out.push(b' ');
                match origin.pid {
                    Some(pid) => push_u32(out, pid),
                    None => out.push(b'-'),
                }
                out.extend_from_slice(b" - - ");
            }
            Envelope::Rfc3164 => {
                Self::push_priority(out, origin);
                self.push_classic(out, unix_micros);
                out.push(b' ');
                out.extend_from_slice(self.host.as_bytes());
                out.push(b' ');
                Self::push_tag(out, origin);
                out.extend_from_slice(b": ");
            }
            Envelope::Journal => {
                out.extend_from_slice(self.host.as_bytes());
                out.push(b' ');
                Self::push_tag(out, origin);
                out.extend_from_slice(b": ");
            }
            Envelope::NoPid => {
                self.push_classic(out, unix_micros);
                out.extend_from_slice(b" [");
                out.extend_from_slice(origin.process.as_bytes());
                out.extend_from_slice(b"]: ");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSHD: Origin = Origin { process: "sshd", pid: Some(2231), priority: 38 };
    const SUDO: Origin = Origin { process: "sudo", pid: None, priority: 86 };

    /// 2026-01-15T10:33:14.123456Z in microseconds.
    fn sample_time() -> i64 {
        let ts: jiff::Timestamp = "2026-01-15T10:33:14.123456Z".parse().unwrap();
        ts.as_microsecond()
    }

    fn header(envelope: Envelope, origin: Origin, micros: i64) -> String {
        let mut w = HeaderWriter::new("server1");
        let mut out = Vec::new();
        w.push(&mut out, envelope, micros, origin);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_envelope_renders_the_documented_prefix() {
        let t = sample_time();
        let cases = [
            (Envelope::Classic, "Jan 15 10:33:14 server1 sshd[2231]: "),
            (Envelope::Rfc3339, "2026-01-15T10:33:14.123456+00:00 server1 sshd[2231]: "),
            (Envelope::Rfc5424, "<38>1 2026-01-15T10:33:14.123456+00:00 server1 sshd 2231 - - "),
            (Envelope::Rfc3164, "<38>Jan 15 10:33:14 server1 sshd[2231]: "),
            (Envelope::Journal, "server1 sshd[2231]: "),
            (Envelope::NoPid, "Jan 15 10:33:14 [sshd]: "),
            (Envelope::Solaris, "Jan 15 10:33:14 server1 sshd[2231]: [ID 800047 auth.info] "),
        ];
        for (envelope, expected) in cases {
            assert_eq!(header(envelope, SSHD, t), expected, "{envelope}");
        }
    }

    #[test]
    fn daemons_without_pid_have_no_brackets_and_a_dash_in_rfc5424() {
        let t = sample_time();
        assert_eq!(header(Envelope::Classic, SUDO, t), "Jan 15 10:33:14 server1 sudo: ");
        assert_eq!(
            header(Envelope::Rfc5424, SUDO, t),
            "<86>1 2026-01-15T10:33:14.123456+00:00 server1 sudo - - - "
        );
    }

    #[test]
    fn single_digit_days_are_space_padded_and_the_calendar_matches_jiff() {
        let ts: jiff::Timestamp = "2024-03-05T01:02:03Z".parse().unwrap();
        assert_eq!(
            header(Envelope::Classic, SSHD, ts.as_microsecond()),
            "Mar  5 01:02:03 server1 sshd[2231]: "
        );
        // Walk ten years day by day against jiff's calendar.
        let mut day: jiff::Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
        for _ in 0..3700 {
            let expected = day.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00").to_string();
            let got = header(Envelope::Rfc3339, SSHD, day.as_microsecond());
            assert!(got.starts_with(&expected), "{got} vs {expected}");
            day = day.checked_add(jiff::SignedDuration::from_hours(24)).unwrap();
        }
    }

    #[test]
    fn envelope_lists_parse_and_reject_unknown_names() {
        assert_eq!(Envelope::parse_list("classic").unwrap(), vec![Envelope::Classic]);
        assert_eq!(
            Envelope::parse_list("classic, rfc5424").unwrap(),
            vec![Envelope::Classic, Envelope::Rfc5424]
        );
        assert_eq!(Envelope::parse_list("mix").unwrap(), Envelope::ALL.to_vec());
        let err = Envelope::parse_list("classic,bogus").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        assert!(Envelope::parse_list("").is_err());
    }

    #[test]
    fn push_u32_writes_decimal() {
        for v in [0u32, 7, 10, 99, 100, 4_194_304, u32::MAX] {
            let mut out = Vec::new();
            push_u32(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
