//! `ls -l` lines, byte for byte as GNU `ls -l FILE` prints one regular file
//! (what the runbook's `find ... -exec ls -l {} \;` shows), in the C
//! locale: `-rw-r--r-- 1 root root 1234 Nov 26 12:53 /path`.
//!
//! Differences, on purpose: control characters in names are written as
//! backslash escapes (`\n`, `\033`) so that a hostile file name cannot
//! forge output lines; the ACL marker (`+`) is not shown.

use std::collections::HashMap;

use hikeshi_core::eradicate::accounts::{parse_group, parse_passwd, TextFile};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::rootfs::{Meta, RootFs, MAX_TEXT_FILE_BYTES};

/// Owner and group names of an audited system, from its own `/etc/passwd`
/// and `/etc/group` (not the host's NSS: the image's uid 1000 is not the
/// host's). Unknown ids are printed as numbers, as `ls` does.
#[derive(Debug, Clone, Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// Reads the names under `root`; missing or unreadable files give numbers.
    pub fn load(root: &RootFs) -> Names {
        let mut names = Names::default();
        if let Ok(Some(bytes)) = root.read_optional("/etc/passwd", MAX_TEXT_FILE_BYTES) {
            for e in parse_passwd(&TextFile::new("/etc/passwd", bytes)).0 {
                names.users.entry(e.uid).or_insert(e.name);
            }
        }
        if let Ok(Some(bytes)) = root.read_optional("/etc/group", MAX_TEXT_FILE_BYTES) {
            for e in parse_group(&TextFile::new("/etc/group", bytes)).0 {
                names.groups.entry(e.gid).or_insert(e.name);
            }
        }
        names
    }

    pub fn user(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }

    pub fn group(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or_else(|| gid.to_string())
    }
}

/// `-rwsr-xr-x`: the type letter and permissions, with setuid, setgid and
/// sticky bits shown as `s`/`S` and `t`/`T` like `ls`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let triplet = |s: &mut String, bits: u32, special: bool, special_char: char| {
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, special) {
            (true, true) => special_char,
            (false, true) => special_char.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    };
    triplet(&mut s, (mode >> 6) & 7, mode & 0o4000 != 0, 's');
    triplet(&mut s, (mode >> 3) & 7, mode & 0o2000 != 0, 's');
    triplet(&mut s, mode & 7, mode & 0o1000 != 0, 't');
    s
}

/// GNU ls's "recent" rule: within the last half Gregorian year (and not in
/// the future) shows the time, otherwise the year.
const HALF_YEAR_SECONDS: i64 = 31_556_952 / 2;

/// The date column: `Nov 26 12:53` when recent, `Nov 26  2025` otherwise.
pub fn ls_date(mtime: i64, mtime_nsec: u32, now: Timestamp, tz: &TimeZone) -> String {
    let Ok(when) = Timestamp::new(mtime, mtime_nsec as i32) else {
        return mtime.to_string();
    };
    // As coreutils: six_months_ago < when < current_time, with nanoseconds.
    let six_months_ago = (now.as_second() - HALF_YEAR_SECONDS, now.subsec_nanosecond());
    let recent = six_months_ago < (mtime, mtime_nsec as i32) && when < now;
    let zoned = when.to_zoned_datetime(tz.clone());
    if recent {
        zoned.strftime("%b %e %H:%M").to_string()
    } else {
        zoned.strftime("%b %e  %Y").to_string()
    }
}

/// Appends `name` to `out`, escaping control bytes like `ls -b`.
pub fn push_escaped_name(out: &mut Vec<u8>, name: &[u8]) {
    for &b in name {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Date columns already formatted, by minute: a listing of recent files
/// has few distinct minutes, and time zone conversion is the costly part
/// of a line.
#[derive(Debug, Default)]
pub struct DateCache {
    by_minute: HashMap<i64, String>,
    uncached: String,
}

impl DateCache {
    /// [`ls_date`], memoised. Only whole-minute times are cached, except
    /// around "now" and the six-month boundary where the rule itself
    /// depends on the exact second. (A zone offset with seconds, only
    /// historical LMT, could move a day boundary inside a minute; such
    /// dates are centuries old.)
    pub fn date(&mut self, mtime: i64, mtime_nsec: u32, now: Timestamp, tz: &TimeZone) -> &str {
        let minute = mtime.div_euclid(60);
        let now_minute = now.as_second().div_euclid(60);
        let boundary = (now.as_second() - HALF_YEAR_SECONDS).div_euclid(60);
        if minute == now_minute || minute == boundary {
            // Rare; not cached (the rule depends on seconds here).
            self.uncached = ls_date(mtime, mtime_nsec, now, tz);
            return &self.uncached;
        }
        self.by_minute.entry(minute).or_insert_with(|| ls_date(minute * 60, 0, now, tz))
    }
}

/// One `ls -l` line (with its newline) for a regular file.
pub fn ls_line(
    path: &[u8],
    meta: &Meta,
    names: &Names,
    dates: &mut DateCache,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<u8> {
    let mut out = format!(
        "{} {} {} {} {} {} ",
        mode_string(meta.mode),
        meta.nlink,
        names.user(meta.uid),
        names.group(meta.gid),
        meta.size,
        dates.date(meta.mtime, meta.mtime_nsec, now, tz)
    )
    .into_bytes();
    push_escaped_name(&mut out, path);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o104644), "-rwSr--r--");
        assert_eq!(mode_string(0o102755), "-rwxr-sr-x");
        assert_eq!(mode_string(0o101777), "-rwxrwxrwt");
        assert_eq!(mode_string(0o101666), "-rw-rw-rwT");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
    }

    #[test]
    fn dates_switch_to_the_year_after_six_months_and_in_the_future() {
        let tz = TimeZone::UTC;
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        assert_eq!(ls_date(at("2026-11-05T09:03:00Z"), 0, now, &tz), "Nov  5 09:03");
        assert_eq!(ls_date(at("2025-11-05T09:03:00Z"), 0, now, &tz), "Nov  5  2025");
        assert_eq!(ls_date(at("2027-01-15T09:03:00Z"), 0, now, &tz), "Jan 15  2027");
    }

    #[test]
    fn cached_dates_equal_computed_ones() {
        let tz = TimeZone::get("Asia/Tokyo").unwrap();
        let now: Timestamp = "2026-11-26T12:00:30Z".parse().unwrap();
        let mut cache = DateCache::default();
        let boundary = now.as_second() - HALF_YEAR_SECONDS;
        for t in [
            now.as_second() - 5,
            now.as_second() + 20,
            now.as_second() - 3_600,
            boundary - 1,
            boundary,
            boundary + 1,
            0,
            -1,
        ] {
            assert_eq!(cache.date(t, 0, now, &tz), ls_date(t, 0, now, &tz), "at {t}");
            // And again, from the cache.
            assert_eq!(cache.date(t, 0, now, &tz), ls_date(t, 0, now, &tz), "at {t} (cached)");
        }
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let mut out = Vec::new();
        push_escaped_name(&mut out, b"/tmp/a\nb\x1b[31m\xff");
        assert_eq!(out, b"/tmp/a\\nb\\033[31m\xff");
    }
}
