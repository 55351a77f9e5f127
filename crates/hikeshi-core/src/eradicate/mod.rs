//! Eradication: what an attacker may have left behind, judged from bytes
//! the application read. [`accounts`] audits `/etc/passwd`, `shadow`,
//! `group` and `sudoers`; [`persistence`] classifies the places attackers
//! use to come back and diffs them against a baseline.
//!
//! This module owns the shared vocabulary: a [`Finding`] (severity, a
//! reason in English and Japanese, the evidence that was seen), the
//! word-boundary rule for keywords ([`contains_word`]) and the canonical
//! SHA-256 that lets a finding be attached to an incident as evidence
//! ([`canonical_sha256`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::Severity;

pub mod accounts;
pub mod persistence;

/// What was seen: a file, the 1-based line in it (when the finding comes
/// from one line) and the text of that line (or a short description of
/// the file state). Bytes that are not UTF-8 are replaced (U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evidence {
    /// The file as named on the audited system (`/etc/passwd`, not the
    /// path under `--root`).
    pub file: String,
    /// 1-based line number, when the evidence is one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The line or state that was seen, truncated to [`MAX_EVIDENCE_CHARS`].
    pub text: String,
}

/// Evidence text longer than this is cut (and marked with `…`) so that a
/// hostile 1 MiB line cannot bloat reports.
pub const MAX_EVIDENCE_CHARS: usize = 512;

impl Evidence {
    /// Evidence from one line of `file`; invalid UTF-8 is replaced and the
    /// text is bounded.
    pub fn line(file: &str, line: u32, text: &[u8]) -> Evidence {
        Evidence { file: file.to_string(), line: Some(line), text: bounded_text(text) }
    }

    /// Evidence about a whole file (a state, a hash, a symlink target).
    pub fn file(file: &str, text: impl Into<String>) -> Evidence {
        Evidence { file: file.to_string(), line: None, text: bounded_text(text.into().as_bytes()) }
    }
}

/// Lossy UTF-8, with the trailing newline removed and the length bounded.
pub fn bounded_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= MAX_EVIDENCE_CHARS {
        return text.into_owned();
    }
    let mut cut: String = text.chars().take(MAX_EVIDENCE_CHARS).collect();
    cut.push('…');
    cut
}

/// One thing found, with why it matters in both report languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable snake_case name of the rule (`uid0_non_root`, `cron_changed`, ...).
    pub kind: String,
    pub severity: Severity,
    /// What the finding is about: an account name or a path.
    pub subject: String,
    pub reason_en: String,
    pub reason_ja: String,
    pub evidence: Vec<Evidence>,
}

impl Finding {
    /// A finding with one piece of evidence.
    pub fn new(
        kind: &str,
        severity: Severity,
        subject: impl Into<String>,
        reason_en: impl Into<String>,
        reason_ja: impl Into<String>,
        evidence: Evidence,
    ) -> Finding {
        Finding {
            kind: kind.to_string(),
            severity,
            subject: subject.into(),
            reason_en: reason_en.into(),
            reason_ja: reason_ja.into(),
            evidence: vec![evidence],
        }
    }
}

/// Sorts findings most severe first, then by kind and subject, so output
/// and hashes do not depend on the order files were read in.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.evidence.cmp(&b.evidence))
    });
}

/// The highest severity among `findings`, if any.
pub fn max_severity(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// SHA-256 (lowercase hex) over the canonical JSON of `value`: serde_json
/// in field-declaration order, maps as `BTreeMap` (sorted), no whitespace.
/// The same value always gives the same digest, so a finding set can be
/// attached to an incident as evidence and re-verified later.
pub fn canonical_sha256<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising plain data structs (strings, numbers, BTreeMaps) to a
    // Vec cannot fail: there are no non-string map keys or custom errors.
    let bytes = serde_json::to_vec(value).expect("plain data serialises");
    sha256_hex(&bytes)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Whether `keyword` occurs in `text` as a whole word, ignoring ASCII case.
///
/// The word-boundary rule: `text` is split into words at every character
/// that is not an ASCII letter (digits, punctuation, spaces, `_`, `-`,
/// `.`), and at a lower-to-upper case change (`testUser` is `test` +
/// `User`). A keyword matches a word only when equal to it. So `admin`
/// matches `admin`, `admin2`, `web-admin`, `Admin User` and `sysAdmin`,
/// but not `badminton` or `administrator`; `test` does not match
/// `contest`, and `temp` does not match `temperature`. Plurals are
/// different words (`backups` is not `backup`): list them as keywords if
/// they matter.
pub fn contains_word(text: &str, keyword: &str) -> bool {
    if keyword.is_empty() {
        return false;
    }
    words(text).any(|w| w.eq_ignore_ascii_case(keyword))
}

/// The words of `text` under the rule of [`contains_word`].
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i <= bytes.len() {
            let at = i;
            i += 1;
            let boundary = at == bytes.len()
                || !bytes[at].is_ascii_alphabetic()
                || (at > start
                    && bytes[at].is_ascii_uppercase()
                    && bytes[at - 1].is_ascii_lowercase());
            if !boundary {
                continue;
            }
            // Between `start` and `at` there are only ASCII letters, so the
            // slice is on character boundaries.
            let word = (at > start).then(|| &text[start..at]);
            // A case change starts the next word at this letter; anything
            // else (a separator) is skipped.
            start = if at < bytes.len() && bytes[at].is_ascii_alphabetic() { at } else { at + 1 };
            if word.is_some() {
                return word;
            }
        }
        None
    })
}

/// Parses a look-back window such as `24h`, `1d`, `30m`, `2w` or `90s`
/// into seconds. One number and one unit; the number must be positive.
pub fn parse_window(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "window {text:?}: expected a number and a unit s, m, h, d or w (e.g. 24h)"
            ))
        }
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("window {text:?}: expected a number before the unit (e.g. 24h)"))?;
    if n == 0 {
        return Err(format!("window {text:?} is empty"));
    }
    n.checked_mul(unit_seconds).ok_or_else(|| format!("window {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("24h"), Ok(86_400));
        assert_eq!(parse_window("1d"), Ok(86_400));
        assert_eq!(parse_window("30m"), Ok(1_800));
        assert_eq!(parse_window("2w"), Ok(1_209_600));
        for bad in ["", "h", "24", "24x", "-1h", "0h", "1.5h", "99999999999999999999w"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn word_rule_matches_whole_words_only() {
        for yes in ["admin", "admin2", "web-admin", "Admin User", "sysAdmin", "ADMIN", "x_admin.y"]
        {
            assert!(contains_word(yes, "admin"), "{yes}");
        }
        for no in ["badminton", "administrator", "admins", "", "adm in"] {
            assert!(!contains_word(no, "admin"), "{no}");
        }
        assert!(!contains_word("contest", "test"));
        assert!(!contains_word("temperature", "temp"));
        assert!(contains_word("tmp,temp,", "temp"));
        assert!(contains_word("test1", "test"));
        assert!(!contains_word("anything", ""));
    }

    /// The rule said differently: put a space before every upper-case
    /// letter that follows a lower-case one, then split at non-letters.
    fn naive_words(text: &str) -> Vec<String> {
        let mut spaced = String::new();
        let mut prev_lower = false;
        for c in text.chars() {
            if c.is_ascii_uppercase() && prev_lower {
                spaced.push(' ');
            }
            prev_lower = c.is_ascii_lowercase();
            spaced.push(if c.is_ascii_alphabetic() { c } else { ' ' });
        }
        spaced.split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
    }

    proptest::proptest! {
        #[test]
        fn words_agree_with_the_naive_rule(text in "[a-zA-Z0-9 _.,é-]{0,40}") {
            let ours: Vec<String> = words(&text).map(String::from).collect();
            proptest::prop_assert_eq!(ours, naive_words(&text));
        }
    }

    #[test]
    fn words_split_on_non_letters_and_case_changes() {
        let w: Vec<&str> = words("testUser,Backup-2 ÄdminX").collect();
        // Non-ASCII letters are separators: they never join a keyword.
        assert_eq!(w, ["test", "User", "Backup", "dmin", "X"]);
    }

    #[test]
    fn evidence_is_bounded_and_lossy() {
        let long = vec![b'a'; 10_000];
        let e = Evidence::line("/etc/passwd", 3, &long);
        assert_eq!(e.text.chars().count(), MAX_EVIDENCE_CHARS + 1);
        let e = Evidence::line("/etc/passwd", 4, b"bad\xffname\n");
        assert_eq!(e.text, "bad\u{fffd}name");
    }

    #[test]
    fn canonical_hash_is_stable_and_sensitive() {
        let f =
            Finding::new("k", Severity::High, "s", "en", "ja", Evidence::file("/etc/x", "seen"));
        let a = canonical_sha256(std::slice::from_ref(&f));
        assert_eq!(a, canonical_sha256(std::slice::from_ref(&f)));
        assert_eq!(a.len(), 64);
        let mut g = f;
        g.subject = "t".into();
        assert_ne!(a, canonical_sha256(&[g]));
    }
}
