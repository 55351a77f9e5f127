//! The account audit: parses `/etc/passwd`, `/etc/shadow`, `/etc/group`,
//! the sudoers files and `login.defs` from bytes, applies the rules of the
//! runbook's "check for malicious accounts" step, and diffs a snapshot of
//! the accounts against a baseline.
//!
//! Parsers never fail: a line they cannot read becomes a
//! `malformed_line` finding that names the file and the 1-based line, and
//! the rest of the file is still audited. Password hashes are never copied
//! into findings or baselines: evidence lines from `shadow` show the hash
//! field redacted, and the baseline keeps a SHA-256 of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{contains_word, sha256_hex, sort_findings, Evidence, Finding};
use crate::event::Severity;

/// Lines longer than this are reported as malformed and skipped: no real
/// account line comes close, and it bounds the work per line.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The runbook's keywords ("SuspiciousKeyword" examples), matched as words
/// in account names and GECOS fields. `nologin` is not a word to look
/// for: it is the shell rule `nologin_with_password`.
pub const DEFAULT_KEYWORDS: [&str; 4] = ["test", "admin", "backup", "temp"];

/// Groups whose members can become root (sudo on Debian, wheel on Red Hat,
/// admin on old Ubuntu).
pub const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// `adm` can read every log: an attacker there can watch the responders.
pub const LOG_READER_GROUP: &str = "adm";

/// `UID_MIN` when `login.defs` does not say.
pub const DEFAULT_UID_MIN: u32 = 1000;

/// A file's bytes and the name it has on the audited system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFile {
    /// The path on the audited system (`/etc/passwd`), used in evidence.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl TextFile {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> TextFile {
        TextFile { name: name.into(), bytes: bytes.into() }
    }
}

/// One account's `authorized_keys` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKeysFile {
    pub user: String,
    pub file: TextFile,
}

/// Everything the audit looks at, read by the application.
#[derive(Debug, Clone, Default)]
pub struct AccountsInput {
    pub passwd: Option<TextFile>,
    pub shadow: Option<TextFile>,
    pub group: Option<TextFile>,
    /// `/etc/sudoers` and every file it includes (see [`sudoers_includes`]).
    pub sudoers: Vec<TextFile>,
    pub login_defs: Option<TextFile>,
    pub authorized_keys: Vec<AuthorizedKeysFile>,
}

/// The tunable rules (`[eradicate]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsRules {
    /// Words looked for in names and GECOS (see [`contains_word`]).
    pub keywords: Vec<String>,
    /// A usable password changed this many days before `now`, or later, is reported.
    pub recent_password_days: u32,
    /// Overrides `UID_MIN` from `login.defs`.
    pub uid_min: Option<u32>,
}

impl Default for AccountsRules {
    fn default() -> Self {
        AccountsRules {
            keywords: DEFAULT_KEYWORDS.iter().map(|k| k.to_string()).collect(),
            recent_password_days: 7,
            uid_min: None,
        }
    }
}

/// A `passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub line: u32,
    pub name: String,
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// The raw line, for evidence.
    pub raw: String,
}

/// A `shadow` entry. The hash is kept only to classify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub line: u32,
    pub name: String,
    pub hash: String,
    /// Days since 1970-01-01 of the last change; `None` when empty.
    pub last_change_days: Option<i64>,
    /// The line with the hash field replaced by `<redacted>`.
    pub redacted: String,
}

/// A `group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub line: u32,
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
    pub raw: String,
}

/// A line that could not be read: where, why, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub file: String,
    pub line: u32,
    pub why: String,
    pub text: Vec<u8>,
}

impl Malformed {
    fn finding(&self) -> Finding {
        Finding::new(
            "malformed_line",
            Severity::Medium,
            &self.file,
            format!(
                "line {} of {} cannot be read ({}): a tool or an intruder wrote it",
                self.line, self.file, self.why
            ),
            format!(
                "{} の {} 行目を解析できません（{}）: ツールまたは侵入者による書き込みの可能性",
                self.file, self.line, self.why
            ),
            Evidence::line(&self.file, self.line, &self.text),
        )
    }
}

/// Splits `bytes` into `(1-based line number, line)` pairs without the
/// newline; the last line need not end in one.
fn numbered_lines(bytes: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = trimmed.is_empty() && bytes.is_empty();
    trimmed
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(move |_| !empty)
        .map(|(i, line)| (u32::try_from(i + 1).unwrap_or(u32::MAX), line))
}

/// Common checks for a colon-separated line: length, UTF-8, field count.
/// `Ok(None)` for blank lines.
fn split_fields<'a>(
    file: &str,
    number: u32,
    line: &'a [u8],
    expected: usize,
) -> Result<Option<Vec<&'a str>>, Malformed> {
    let bad =
        |why: String| Malformed { file: file.to_string(), line: number, why, text: line.to_vec() };
    if line.len() > MAX_LINE_BYTES {
        return Err(bad(format!("line is {} bytes, more than {MAX_LINE_BYTES}", line.len())));
    }
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| bad(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    if text.contains('\0') {
        return Err(bad("contains a NUL byte".into()));
    }
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() != expected {
        return Err(bad(format!("{} fields, expected {expected}", fields.len())));
    }
    if fields[0].is_empty() {
        return Err(bad("empty name".into()));
    }
    Ok(Some(fields))
}

fn parse_id(field: &str, what: &str) -> Result<u32, String> {
    field.parse::<u32>().map_err(|_| format!("{what} {field:?} is not a number"))
}

/// Parses a colon-separated account file of `fields` fields a line:
/// `entry` makes an entry of a line's fields (the line number, the fields,
/// the raw line) or says why it cannot. A line that is bad is kept as
/// [`Malformed`], showing what `shown` makes of it (secrets removed).
fn parse_records<T>(
    file: &TextFile,
    fields: usize,
    shown: fn(&[u8]) -> Vec<u8>,
    entry: impl Fn(u32, &[&str], &[u8]) -> Result<T, String>,
) -> (Vec<T>, Vec<Malformed>) {
    let mut entries = Vec::new();
    let mut malformed = Vec::new();
    for (number, line) in numbered_lines(&file.bytes) {
        let parsed = match split_fields(&file.name, number, line, fields) {
            Ok(None) => continue,
            Ok(Some(f)) => entry(number, &f, line).map_err(|why| Malformed {
                file: file.name.clone(),
                line: number,
                why,
                text: shown(line),
            }),
            Err(mut m) => {
                m.text = shown(&m.text);
                Err(m)
            }
        };
        match parsed {
            Ok(e) => entries.push(e),
            Err(m) => malformed.push(m),
        }
    }
    (entries, malformed)
}

/// Parses `/etc/passwd`.
pub fn parse_passwd(file: &TextFile) -> (Vec<PasswdEntry>, Vec<Malformed>) {
    parse_records(file, 7, <[u8]>::to_vec, |number, fields, _| {
        Ok(PasswdEntry {
            line: number,
            name: fields[0].to_string(),
            password: fields[1].to_string(),
            uid: parse_id(fields[2], "uid")?,
            gid: parse_id(fields[3], "gid")?,
            gecos: fields[4].to_string(),
            home: fields[5].to_string(),
            shell: fields[6].to_string(),
            raw: fields.join(":"),
        })
    })
}

/// Parses `/etc/shadow`. Never copies a hash into a report, even from a
/// bad line.
pub fn parse_shadow(file: &TextFile) -> (Vec<ShadowEntry>, Vec<Malformed>) {
    parse_records(file, 9, redact_second_field, |number, fields, line| {
        let last_change_days = match fields[2] {
            "" => None,
            days => Some(
                days.parse::<i64>().map_err(|_| format!("last change {days:?} is not a number"))?,
            ),
        };
        Ok(ShadowEntry {
            line: number,
            name: fields[0].to_string(),
            hash: fields[1].to_string(),
            last_change_days,
            redacted: String::from_utf8_lossy(&redact_second_field(line)).into_owned(),
        })
    })
}

fn redact_second_field(line: &[u8]) -> Vec<u8> {
    let Some(first) = line.iter().position(|&b| b == b':') else { return line.to_vec() };
    let rest = &line[first + 1..];
    let end = rest.iter().position(|&b| b == b':').map_or(line.len(), |p| first + 1 + p);
    let hash = &line[first + 1..end];
    if hash.is_empty() || hash == b"*" || hash == b"!" || hash == b"!*" || hash == b"x" {
        return line.to_vec();
    }
    let mut out = line[..=first].to_vec();
    out.extend_from_slice(b"<redacted>");
    out.extend_from_slice(&line[end..]);
    out
}

/// Parses `/etc/group`.
pub fn parse_group(file: &TextFile) -> (Vec<GroupEntry>, Vec<Malformed>) {
    parse_records(file, 4, <[u8]>::to_vec, |number, fields, _| {
        Ok(GroupEntry {
            line: number,
            name: fields[0].to_string(),
            gid: parse_id(fields[2], "gid")?,
            members: fields[3]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
            raw: fields.join(":"),
        })
    })
}

/// `UID_MIN` from `login.defs`, if it is set to a number.
pub fn parse_uid_min(file: &TextFile) -> Option<u32> {
    numbered_lines(&file.bytes).find_map(|(_, line)| {
        let text = std::str::from_utf8(line).ok()?;
        let mut words = text.split_whitespace();
        (words.next()? == "UID_MIN").then(|| words.next()?.parse().ok()).flatten()
    })
}

/// Whether `shell` gives an interactive login. An empty shell means
/// `/bin/sh`; `nologin`, `false`, `true` and `/bin/sync` do not.
pub fn is_login_shell(shell: &str) -> bool {
    if shell.is_empty() {
        return true;
    }
    let base = shell.rsplit('/').next().unwrap_or(shell);
    !matches!(base, "nologin" | "false" | "true" | "sync")
}

/// How a password field (shadow hash, or passwd when there is no shadow
/// entry) can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordState {
    /// Empty: logs in with no password at all.
    Empty,
    /// Locked (`!`, `*`, `!hash`) or delegated to shadow (`x`).
    Locked,
    /// A hash that a password can match.
    Usable,
}

/// Classifies a password field.
pub fn password_state(hash: &str) -> PasswordState {
    if hash.is_empty() {
        PasswordState::Empty
    } else if hash.starts_with('!') || hash.starts_with('*') || hash == "x" {
        PasswordState::Locked
    } else {
        PasswordState::Usable
    }
}

/// An `#include`/`@include`/`#includedir`/`@includedir` line of a sudoers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudoersInclude {
    pub line: u32,
    /// The path as written (relative paths are relative to the including file's directory).
    pub path: String,
    /// `includedir`: every file in the directory whose name has no `.`
    /// and does not end in `~` (sudo's rule).
    pub is_dir: bool,
}

/// The include directives of a sudoers file, for the application to follow.
pub fn sudoers_includes(file: &TextFile) -> Vec<SudoersInclude> {
    logical_lines(&file.bytes)
        .filter_map(|(line, text)| {
            let text = text.trim();
            let rest = text.strip_prefix('#').or_else(|| text.strip_prefix('@'))?;
            let (is_dir, path) = if let Some(p) = rest.strip_prefix("includedir") {
                (true, p)
            } else {
                (false, rest.strip_prefix("include")?)
            };
            if !path.starts_with(char::is_whitespace) {
                return None;
            }
            let path = path.trim().trim_matches('"');
            (!path.is_empty()).then(|| SudoersInclude { line, path: path.to_string(), is_dir })
        })
        .collect()
}

/// Whether a file name found by `@includedir` is read by sudo.
pub fn sudoers_includedir_reads(name: &str) -> bool {
    !name.contains('.') && !name.ends_with('~') && !name.is_empty()
}

/// Lines with backslash continuations joined, numbered by their first line.
fn logical_lines(bytes: &[u8]) -> impl Iterator<Item = (u32, String)> + '_ {
    let mut lines = numbered_lines(bytes).peekable();
    std::iter::from_fn(move || {
        let (first, line) = lines.next()?;
        let mut text =
            String::from_utf8_lossy(&line[..line.len().min(MAX_LINE_BYTES)]).into_owned();
        while text.ends_with('\\') {
            text.pop();
            match lines.next() {
                Some((_, next)) if text.len() < MAX_LINE_BYTES => {
                    text.push(' ');
                    text.push_str(&String::from_utf8_lossy(
                        &next[..next.len().min(MAX_LINE_BYTES)],
                    ));
                }
                _ => break,
            }
        }
        Some((first, text))
    })
}

/// One user specification of a sudoers file: who may run what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudoersRule {
    pub file: String,
    pub line: u32,
    /// The user list with aliases expanded: names, `%group`, `#uid`, `ALL`.
    pub users: Vec<String>,
    /// Whitespace-normalised rule text, for evidence and the baseline.
    pub text: String,
    pub nopasswd: bool,
}

/// Parses the user specifications of sudoers files (in reading order, so
/// that `User_Alias` definitions apply to later files).
pub fn parse_sudoers(files: &[TextFile]) -> Vec<SudoersRule> {
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let mut rules = Vec::new();
    for file in files {
        for (line, raw) in logical_lines(&file.bytes) {
            let Some(text) = strip_sudoers_comment(&raw) else { continue };
            let normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let first = normalized.split([' ', ',', ':', '@', '!']).next().unwrap_or("");
            match first {
                "Defaults" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias" | "Runas_Alias" => continue,
                "User_Alias" => {
                    let body = normalized["User_Alias".len()..].trim();
                    for def in body.split(':') {
                        if let Some((name, members)) = def.split_once('=') {
                            let members = members
                                .split(',')
                                .map(|m| m.trim().to_string())
                                .filter(|m| !m.is_empty());
                            aliases.entry(name.trim().to_string()).or_default().extend(members);
                        }
                    }
                    continue;
                }
                _ => {}
            }
            let Some((left, right)) = normalized.split_once('=') else { continue };
            // "alice, bob ALL" → user list "alice,bob", host list "ALL".
            let left = left.replace(" ,", ",").replace(", ", ",");
            let Some(user_list) = left.split_whitespace().next() else { continue };
            let mut users = Vec::new();
            for user in user_list.split(',').filter(|u| !u.is_empty()) {
                expand_alias(user, &aliases, &mut users, 0);
            }
            rules.push(SudoersRule {
                file: file.name.clone(),
                line,
                users,
                nopasswd: right.contains("NOPASSWD"),
                text: normalized.clone(),
            });
        }
    }
    rules
}

fn expand_alias(
    user: &str,
    aliases: &HashMap<String, Vec<String>>,
    out: &mut Vec<String>,
    depth: u32,
) {
    let user = user.trim();
    match aliases.get(user) {
        Some(members) if depth < 8 => {
            for m in members {
                expand_alias(m, aliases, out, depth + 1);
            }
        }
        _ => out.push(user.to_string()),
    }
}

/// The rule text without its comment, or `None` for comments, includes
/// and blank lines. `#` followed by a digit is a uid, not a comment.
fn strip_sudoers_comment(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('@') {
        return None;
    }
    let mut cut = trimmed.len();
    let bytes = trimmed.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            cut = i;
            break;
        }
    }
    let text = trimmed[..cut].trim();
    (!text.is_empty()).then_some(text)
}

/// A key line of `authorized_keys`: its identity (SHA-256 of the key type
/// and base64 blob, options and comment ignored) and its text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub evidence: Evidence,
}

const KEY_TYPES: [&str; 9] = [
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed448",
];

/// The keys of an `authorized_keys` file. Lines that are not keys (and
/// not comments) are returned as malformed.
pub fn parse_authorized_keys(file: &TextFile) -> (Vec<KeyRecord>, Vec<Malformed>) {
    let mut keys = Vec::new();
    let mut malformed = Vec::new();
    for (number, line) in numbered_lines(&file.bytes) {
        let text = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE_BYTES)]);
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // The key type is the first word that is a known type (or a
        // certificate type); anything before it is options.
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| KEY_TYPES.contains(w) || w.ends_with("-cert-v01@openssh.com"));
        match at.and_then(|i| Some((words[i], *words.get(i + 1)?))) {
            Some((kind, blob)) => keys.push(KeyRecord {
                fingerprint: sha256_hex(format!("{kind} {blob}").as_bytes()),
                evidence: Evidence::line(&file.name, number, line),
            }),
            None => malformed.push(Malformed {
                file: file.name.clone(),
                line: number,
                why: "not a public key line".into(),
                text: line.to_vec(),
            }),
        }
    }
    (keys, malformed)
}

/// What the baseline remembers of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// SHA-256 of the password field (shadow if present): detects a
    /// change without storing the hash.
    pub password_sha256: String,
    /// Supplementary and primary group names.
    pub groups: BTreeSet<String>,
    /// Keys by fingerprint.
    pub keys: BTreeMap<String, Evidence>,
    /// The passwd line (evidence for added accounts).
    pub evidence: Evidence,
}

/// The accounts as seen now: what `--baseline` stores and later runs diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsSnapshot {
    /// When the snapshot was taken (given by the caller).
    pub taken_at: Option<Timestamp>,
    pub accounts: BTreeMap<String, AccountRecord>,
    /// Normalised sudoers rule texts, with where they were seen.
    pub sudoers_rules: BTreeMap<String, Evidence>,
}

/// The result of [`audit`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountsAudit {
    pub uid_min: u32,
    pub accounts: usize,
    /// Most severe first.
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub snapshot: AccountsSnapshot,
}

/// Audits the accounts in `input` under `rules`; `now` dates
/// "recently changed" and the snapshot.
pub fn audit(input: &AccountsInput, rules: &AccountsRules, now: Timestamp) -> AccountsAudit {
    let mut findings = Vec::new();
    let mut malformed = Vec::new();

    let (passwd, bad) = input.passwd.as_ref().map(parse_passwd).unwrap_or_default();
    malformed.extend(bad);
    let (shadow, bad) = input.shadow.as_ref().map(parse_shadow).unwrap_or_default();
    malformed.extend(bad);
    let (groups, bad) = input.group.as_ref().map(parse_group).unwrap_or_default();
    malformed.extend(bad);
    let sudoers = parse_sudoers(&input.sudoers);
    let uid_min = rules
        .uid_min
        .or_else(|| input.login_defs.as_ref().and_then(parse_uid_min))
        .unwrap_or(DEFAULT_UID_MIN);
    let passwd_name = input.passwd.as_ref().map_or("/etc/passwd", |f| f.name.as_str());

    let shadow_by_name: HashMap<&str, &ShadowEntry> =
        shadow.iter().map(|s| (s.name.as_str(), s)).collect();
    let group_by_gid: HashMap<u32, &GroupEntry> = groups.iter().map(|g| (g.gid, g)).collect();
    let mut groups_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for g in &groups {
        for m in &g.members {
            groups_of.entry(m.as_str()).or_default().insert(g.name.clone());
        }
    }

    let mut first_by_name: HashMap<&str, &PasswdEntry> = HashMap::new();
    let mut first_by_uid: HashMap<u32, &PasswdEntry> = HashMap::new();
    let mut snapshot = AccountsSnapshot { taken_at: Some(now), ..Default::default() };
    let now_days = now.as_second().div_euclid(86_400);

    for entry in &passwd {
        let ev = Evidence::line(passwd_name, entry.line, entry.raw.as_bytes());
        let name = entry.name.as_str();
        let login = is_login_shell(&entry.shell);
        let shadow_entry = shadow_by_name.get(name).copied();
        let password_field = match (entry.password.as_str(), shadow_entry) {
            ("x", Some(s)) => s.hash.as_str(),
            (p, _) => p,
        };
        let password = password_state(password_field);
        let pw_evidence = || match shadow_entry {
            Some(s) if entry.password == "x" => Evidence::line(
                &input.shadow.as_ref().map_or("/etc/shadow".into(), |f| f.name.clone()),
                s.line,
                s.redacted.as_bytes(),
            ),
            _ => ev.clone(),
        };

        // Identity rules.
        if entry.uid == 0 && name != "root" {
            findings.push(Finding::new(
                "uid0_non_root",
                Severity::Critical,
                name,
                format!("account {name:?} has UID 0: it is root under another name"),
                format!("アカウント {name:?} の UID が 0 です: 別名の root アカウントです"),
                ev.clone(),
            ));
        }
        if let Some(first) = first_by_name.get(name) {
            let mut f = Finding::new(
                "duplicate_name",
                Severity::High,
                name,
                format!(
                    "account name {name:?} appears twice (lines {} and {})",
                    first.line, entry.line
                ),
                format!(
                    "アカウント名 {name:?} が重複しています（{} 行目と {} 行目）",
                    first.line, entry.line
                ),
                Evidence::line(passwd_name, first.line, first.raw.as_bytes()),
            );
            f.evidence.push(ev.clone());
            findings.push(f);
        } else {
            first_by_name.insert(name, entry);
        }
        if let Some(first) = first_by_uid.get(&entry.uid) {
            // UID 0 twice is `uid0_non_root`; the same name twice is `duplicate_name`.
            if entry.uid != 0 && first.name != entry.name {
                let mut f = Finding::new(
                    "duplicate_uid",
                    Severity::High,
                    name,
                    format!(
                        "UID {} is shared by {:?} and {name:?}: one can act as the other",
                        entry.uid, first.name
                    ),
                    format!(
                        "UID {} を {:?} と {name:?} が共有しています: 互いになりすませます",
                        entry.uid, first.name
                    ),
                    Evidence::line(passwd_name, first.line, first.raw.as_bytes()),
                );
                f.evidence.push(ev.clone());
                findings.push(f);
            }
        } else {
            first_by_uid.insert(entry.uid, entry);
        }

        // Login rules.
        if entry.uid != 0 && entry.uid < uid_min && login {
            findings.push(Finding::new(
                "system_account_login_shell",
                Severity::Medium,
                name,
                format!("system account {name:?} (UID {} < UID_MIN {uid_min}) has a login shell {:?}", entry.uid, shell_or_default(&entry.shell)),
                format!("システムアカウント {name:?}（UID {} < UID_MIN {uid_min}）にログインシェル {:?} が設定されています", entry.uid, shell_or_default(&entry.shell)),
                ev.clone(),
            ));
        }
        if password == PasswordState::Empty && login {
            findings.push(Finding::new(
                "empty_password",
                Severity::Critical,
                name,
                format!("account {name:?} has an empty password and a login shell: anyone can log in"),
                format!("アカウント {name:?} はパスワードが空でログインシェルを持っています: 誰でもログインできます"),
                pw_evidence(),
            ));
        }
        if password == PasswordState::Usable && !login {
            findings.push(Finding::new(
                "nologin_with_password",
                Severity::Medium,
                name,
                format!("account {name:?} has login disabled ({}) but a usable password: su, FTP or other PAM services may still accept it", entry.shell),
                format!("アカウント {name:?} はログイン不可（{}）ですが有効なパスワードがあります: su や他の PAM サービスで使える可能性があります", entry.shell),
                pw_evidence(),
            ));
        }
        if !matches!(entry.password.as_str(), "x" | "" | "*" | "!" | "!!" | "*LK*") {
            findings.push(Finding::new(
                "password_hash_in_passwd",
                Severity::Medium,
                name,
                format!("account {name:?} has its password field in world-readable /etc/passwd instead of shadow"),
                format!("アカウント {name:?} のパスワードが shadow ではなく誰でも読める /etc/passwd にあります"),
                Evidence::line(passwd_name, entry.line, &redact_second_field(entry.raw.as_bytes())),
            ));
        }

        // The runbook's keywords.
        let matched: Vec<&str> = rules
            .keywords
            .iter()
            .map(String::as_str)
            .filter(|k| contains_word(name, k) || contains_word(&entry.gecos, k))
            .collect();
        if !matched.is_empty() {
            let list = matched.join(", ");
            let (severity, en, ja) = if login {
                (Severity::Medium, "and it can log in", "ログイン可能です")
            } else {
                (Severity::Low, "(login disabled)", "（ログイン不可）")
            };
            findings.push(Finding::new(
                "suspicious_keyword",
                severity,
                name,
                format!("account {name:?} matches the runbook keyword(s) {list} (test, admin, backup and temp accounts are often leftovers) {en}"),
                format!("アカウント {name:?} がキーワード {list} に一致します（テスト・管理者・バックアップ・一時アカウントは削除漏れが多い）{ja}"),
                ev.clone(),
            ));
        }

        // Recently changed usable password.
        if let (Some(s), PasswordState::Usable) = (shadow_entry, password) {
            if let Some(days) = s.last_change_days.filter(|&d| d > 0) {
                if days >= now_days - i64::from(rules.recent_password_days) {
                    let date = Timestamp::from_second(days.saturating_mul(86_400))
                        .map(|t| t.strftime("%Y-%m-%d").to_string())
                        .unwrap_or_else(|_| days.to_string());
                    findings.push(Finding::new(
                        "recent_password_change",
                        Severity::Medium,
                        name,
                        format!("the password of {name:?} was changed on {date}, within the last {} days", rules.recent_password_days),
                        format!("{name:?} のパスワードが {date} に変更されました（過去 {} 日以内）", rules.recent_password_days),
                        pw_evidence(),
                    ));
                }
            }
        }

        // Privileges.
        let mut member_of = groups_of.get(name).cloned().unwrap_or_default();
        if let Some(primary) = group_by_gid.get(&entry.gid) {
            member_of.insert(primary.name.clone());
        }
        if name != "root" {
            for group in &member_of {
                let (severity, en, ja) = if ADMIN_GROUPS.contains(&group.as_str()) {
                    (Severity::Medium, "which can become root", "root 権限を取得できます")
                } else if group == LOG_READER_GROUP {
                    (Severity::Low, "which can read every log", "全てのログを読めます")
                } else {
                    continue;
                };
                let g = groups.iter().find(|g| &g.name == group);
                let ev = g.map_or(ev.clone(), |g| {
                    Evidence::line(
                        input.group.as_ref().map_or("/etc/group", |f| f.name.as_str()),
                        g.line,
                        g.raw.as_bytes(),
                    )
                });
                findings.push(Finding::new(
                    "privileged_group",
                    severity,
                    name,
                    format!("{name:?} is in group {group:?}, {en}"),
                    format!("{name:?} はグループ {group:?} のメンバーです: {ja}"),
                    ev,
                ));
            }
        }

        let mut keys = BTreeMap::new();
        for ak in input.authorized_keys.iter().filter(|k| k.user == name) {
            let (parsed, bad) = parse_authorized_keys(&ak.file);
            malformed.extend(bad);
            if entry.uid < uid_min && !parsed.is_empty() {
                let (severity, en, ja) = if entry.uid == 0 {
                    (
                        Severity::Medium,
                        "root accepts SSH key logins",
                        "root が SSH 鍵ログインを受け付けます",
                    )
                } else {
                    (
                        Severity::High,
                        "a service account should never be logged into",
                        "サービスアカウントにログインできる状態は異常です",
                    )
                };
                let mut f = Finding::new(
                    "system_account_authorized_keys",
                    severity,
                    name,
                    format!(
                        "system account {name:?} has {} key(s) in {}: {en}",
                        parsed.len(),
                        ak.file.name
                    ),
                    format!(
                        "システムアカウント {name:?} の {} に鍵が {} 個あります: {ja}",
                        ak.file.name,
                        parsed.len()
                    ),
                    parsed[0].evidence.clone(),
                );
                f.evidence.extend(parsed.iter().skip(1).map(|k| k.evidence.clone()));
                findings.push(f);
            }
            keys.extend(parsed.into_iter().map(|k| (k.fingerprint, k.evidence)));
        }

        snapshot.accounts.entry(entry.name.clone()).or_insert(AccountRecord {
            uid: entry.uid,
            gid: entry.gid,
            gecos: entry.gecos.clone(),
            home: entry.home.clone(),
            shell: entry.shell.clone(),
            password_sha256: sha256_hex(password_field.as_bytes()),
            groups: member_of,
            keys,
            evidence: ev,
        });
    }

    // Sudoers rules that grant something to someone other than root.
    for rule in &sudoers {
        let ev = Evidence::line(&rule.file, rule.line, rule.text.as_bytes());
        snapshot.sudoers_rules.insert(rule.text.clone(), ev.clone());
        let grantees: Vec<&str> = rule
            .users
            .iter()
            .map(String::as_str)
            .filter(|u| *u != "root" && !u.starts_with('!'))
            .collect();
        if grantees.is_empty() {
            continue;
        }
        let everyone = grantees.contains(&"ALL");
        let only_admin_groups =
            grantees.iter().all(|u| u.strip_prefix('%').is_some_and(|g| ADMIN_GROUPS.contains(&g)));
        let nopasswd = if rule.nopasswd { " without a password (NOPASSWD)" } else { "" };
        let nopasswd_ja = if rule.nopasswd { "パスワードなしで（NOPASSWD）" } else { "" };
        let severity = if everyone {
            Severity::Critical
        } else if only_admin_groups {
            Severity::Low
        } else {
            Severity::Medium
        };
        let who = grantees.join(", ");
        findings.push(Finding::new(
            "sudoers_rule",
            severity,
            who.clone(),
            format!("sudoers lets {who} run commands as another user{nopasswd}"),
            format!("sudoers により {who} が{nopasswd_ja}他のユーザーとしてコマンドを実行できます"),
            ev,
        ));
    }

    findings.extend(malformed.iter().map(Malformed::finding));
    sort_findings(&mut findings);
    AccountsAudit { uid_min, accounts: passwd.len(), findings, snapshot }
}

fn shell_or_default(shell: &str) -> &str {
    if shell.is_empty() {
        "/bin/sh (empty field)"
    } else {
        shell
    }
}

/// What changed since the baseline: accounts added, removed or changed,
/// passwords changed, privileged groups joined, keys added or removed,
/// sudoers rules added. On a busy host this is the real signal.
pub fn diff_baseline(baseline: &AccountsSnapshot, now: &AccountsSnapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    let since = baseline.taken_at.map_or_else(
        || "the baseline".to_string(),
        |t| format!("the baseline of {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
    );
    let since_ja = baseline.taken_at.map_or_else(
        || "ベースライン".to_string(),
        |t| format!("ベースライン（{}）", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
    );
    for (name, record) in &now.accounts {
        let Some(old) = baseline.accounts.get(name) else {
            findings.push(Finding::new(
                "account_added",
                Severity::High,
                name,
                format!("account {name:?} (UID {}) was added since {since}", record.uid),
                format!(
                    "アカウント {name:?}（UID {}）が{since_ja}以降に追加されました",
                    record.uid
                ),
                record.evidence.clone(),
            ));
            for key in record.keys.values() {
                findings.push(key_added(name, key, &since, &since_ja));
            }
            continue;
        };
        let mut changes = Vec::new();
        if old.uid != record.uid {
            changes.push(format!("UID {} → {}", old.uid, record.uid));
        }
        if old.gid != record.gid {
            changes.push(format!("GID {} → {}", old.gid, record.gid));
        }
        if old.shell != record.shell {
            changes.push(format!("shell {:?} → {:?}", old.shell, record.shell));
        }
        if old.home != record.home {
            changes.push(format!("home {:?} → {:?}", old.home, record.home));
        }
        if old.gecos != record.gecos {
            changes.push(format!("GECOS {:?} → {:?}", old.gecos, record.gecos));
        }
        if !changes.is_empty() {
            let list = changes.join(", ");
            findings.push(Finding::new(
                "account_changed",
                Severity::High,
                name,
                format!("account {name:?} changed since {since}: {list}"),
                format!("アカウント {name:?} が{since_ja}以降に変更されました: {list}"),
                record.evidence.clone(),
            ));
        }
        if old.password_sha256 != record.password_sha256 {
            findings.push(Finding::new(
                "password_changed",
                Severity::Medium,
                name,
                format!("the password of {name:?} changed since {since}"),
                format!("{name:?} のパスワードが{since_ja}以降に変更されました"),
                record.evidence.clone(),
            ));
        }
        for group in record.groups.difference(&old.groups) {
            let severity = if ADMIN_GROUPS.contains(&group.as_str()) || group == LOG_READER_GROUP {
                Severity::High
            } else {
                Severity::Low
            };
            findings.push(Finding::new(
                "group_membership_added",
                severity,
                name,
                format!("{name:?} joined group {group:?} since {since}"),
                format!("{name:?} が{since_ja}以降にグループ {group:?} に追加されました"),
                record.evidence.clone(),
            ));
        }
        for (fingerprint, key) in &record.keys {
            if !old.keys.contains_key(fingerprint) {
                findings.push(key_added(name, key, &since, &since_ja));
            }
        }
        for (fingerprint, key) in &old.keys {
            if !record.keys.contains_key(fingerprint) {
                findings.push(Finding::new(
                    "authorized_key_removed",
                    Severity::Low,
                    name,
                    format!("a key of {name:?} was removed since {since}"),
                    format!("{name:?} の鍵が{since_ja}以降に削除されました"),
                    key.clone(),
                ));
            }
        }
    }
    for (name, old) in &baseline.accounts {
        if !now.accounts.contains_key(name) {
            findings.push(Finding::new(
                "account_removed",
                Severity::Medium,
                name,
                format!("account {name:?} was removed since {since}"),
                format!("アカウント {name:?} が{since_ja}以降に削除されました"),
                old.evidence.clone(),
            ));
        }
    }
    for (text, ev) in &now.sudoers_rules {
        if !baseline.sudoers_rules.contains_key(text) {
            findings.push(Finding::new(
                "sudoers_rule_added",
                Severity::High,
                &ev.file,
                format!("sudoers rule added since {since}: {text}"),
                format!("{since_ja}以降に sudoers ルールが追加されました: {text}"),
                ev.clone(),
            ));
        }
    }
    sort_findings(&mut findings);
    findings
}

fn key_added(name: &str, key: &Evidence, since: &str, since_ja: &str) -> Finding {
    Finding::new(
        "authorized_key_added",
        Severity::High,
        name,
        format!("an SSH key was added to {} for {name:?} since {since}", key.file),
        format!("{since_ja}以降に {name:?} の {} に SSH 鍵が追加されました", key.file),
        key.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-26T00:00:00Z is day 20_783 since the epoch.
    const TODAY: i64 = 20_783;

    fn now() -> Timestamp {
        Timestamp::from_second(TODAY * 86_400 + 3_600).unwrap()
    }

    fn input(passwd: &str, shadow: &str, group: &str, sudoers: &[(&str, &str)]) -> AccountsInput {
        AccountsInput {
            passwd: Some(TextFile::new("/etc/passwd", passwd)),
            shadow: Some(TextFile::new("/etc/shadow", shadow)),
            group: Some(TextFile::new("/etc/group", group)),
            sudoers: sudoers.iter().map(|(n, t)| TextFile::new(*n, *t)).collect(),
            login_defs: Some(TextFile::new(
                "/etc/login.defs",
                "# c\nUID_MIN\t\t\t 1000\nUID_MAX 60000\n",
            )),
            authorized_keys: Vec::new(),
        }
    }

    fn kinds_for<'a>(audit: &'a AccountsAudit, subject: &str) -> Vec<&'a str> {
        let mut k: Vec<&str> = audit
            .findings
            .iter()
            .filter(|f| f.subject == subject)
            .map(|f| f.kind.as_str())
            .collect();
        k.sort();
        k
    }

    const CLEAN_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
sync:x:4:65534:sync:/bin:/bin/sync\n\
contest:x:1001:1001:Contest Judge:/home/contest:/bin/bash\n\
weather:x:1002:1002:temperature probe:/home/weather:/bin/bash\n\
ann:x:1003:1003:Badminton club:/home/ann:/bin/bash\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn clean_accounts_are_not_flagged() {
        let shadow = "root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nsync:*:20000:0:99999:7:::\n\
contest:$y$j9T$abc$def:20000:0:99999:7:::\nweather:!:20000:0:99999:7:::\nann:$6$x$y:19000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n";
        let group = "root:x:0:\ndaemon:x:1:\nsudo:x:27:\nadm:x:4:\ncontest:x:1001:\n";
        let a = audit(
            &input(
                CLEAN_PASSWD,
                shadow,
                group,
                &[("/etc/sudoers", "root ALL=(ALL:ALL) ALL\nDefaults env_reset\n")],
            ),
            &AccountsRules::default(),
            now(),
        );
        assert!(a.findings.is_empty(), "{:#?}", a.findings);
        assert_eq!(a.accounts, 7);
        assert_eq!(a.uid_min, 1000);
    }

    #[test]
    fn every_account_finding_is_detected() {
        let passwd = format!(
            "{CLEAN_PASSWD}toor:x:0:0:backdoor:/root:/bin/bash\n\
daemon:x:1:1:again:/usr/sbin:/usr/sbin/nologin\n\
twin:x:1001:1001:same uid as contest:/home/twin:/bin/bash\n\
svc:x:120:120:service:/var/lib/svc:/bin/bash\n\
open:x:1010:1010:no password:/home/open:/bin/bash\n\
ftp:x:121:121:ftp:/srv/ftp:/usr/sbin/nologin\n\
web-admin:x:1011:1011:Web:/home/web-admin:/bin/bash\n\
bk:x:1012:1012:Backup User:/home/bk:/usr/sbin/nologin\n\
fresh:x:1013:1013::/home/fresh:/bin/bash\n\
oldhash:$1$salt$hash:1014:1014::/home/oldhash:/bin/bash\n\
wheelie:x:1015:1015::/home/wheelie:/bin/bash\n\
logs:x:1016:1016::/home/logs:/bin/bash\n\
ruled:x:1017:1017::/home/ruled:/bin/bash\n"
        );
        let shadow = format!(
            "open::20000:0:99999:7:::\nftp:$6$salt$hash:20000:0:99999:7:::\nfresh:$6$n$h:{}:0:99999:7:::\nbk:*:20000::::::\n",
            TODAY - 2
        );
        let group = "sudo:x:27:web-admin\nwheel:x:10:wheelie\nadm:x:4:logs\nsvc:x:120:\n";
        let sudoers = [
            (
                "/etc/sudoers",
                "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
            ),
            (
                "/etc/sudoers.d/ops",
                "User_Alias OPS = ruled, \\\n  fresh\nOPS ALL=(ALL) NOPASSWD: ALL # ops\n",
            ),
        ];
        let mut inp = input(&passwd, &shadow, group, &sudoers);
        inp.authorized_keys.push(AuthorizedKeysFile {
            user: "svc".into(),
            file: TextFile::new(
                "/var/lib/svc/.ssh/authorized_keys",
                "# keys\nssh-ed25519 AAAAC3Nza evil@host\n",
            ),
        });
        let a = audit(&inp, &AccountsRules::default(), now());
        assert_eq!(kinds_for(&a, "toor"), ["uid0_non_root"]);
        assert_eq!(kinds_for(&a, "daemon"), ["duplicate_name"]);
        assert_eq!(kinds_for(&a, "twin"), ["duplicate_uid"]);
        assert_eq!(
            kinds_for(&a, "svc"),
            ["system_account_authorized_keys", "system_account_login_shell"]
        );
        assert_eq!(kinds_for(&a, "open"), ["empty_password"]);
        assert_eq!(kinds_for(&a, "ftp"), ["nologin_with_password"]);
        assert_eq!(kinds_for(&a, "web-admin"), ["privileged_group", "suspicious_keyword"]);
        assert_eq!(kinds_for(&a, "bk"), ["suspicious_keyword"]);
        assert_eq!(kinds_for(&a, "fresh"), ["recent_password_change"]);
        assert_eq!(kinds_for(&a, "oldhash"), ["password_hash_in_passwd"]);
        assert_eq!(kinds_for(&a, "wheelie"), ["privileged_group"]);
        assert_eq!(kinds_for(&a, "logs"), ["privileged_group"]);
        assert_eq!(kinds_for(&a, "ruled, fresh"), ["sudoers_rule"]);
        assert_eq!(kinds_for(&a, "%sudo"), ["sudoers_rule"]);

        let by = |kind: &str, subject: &str| {
            a.findings.iter().find(|f| f.kind == kind && f.subject == subject).unwrap()
        };
        assert_eq!(by("uid0_non_root", "toor").severity, Severity::Critical);
        assert_eq!(
            by("uid0_non_root", "toor").evidence[0],
            Evidence::line("/etc/passwd", 8, b"toor:x:0:0:backdoor:/root:/bin/bash")
        );
        assert_eq!(
            by("empty_password", "open").evidence[0],
            Evidence::line("/etc/shadow", 1, b"open::20000:0:99999:7:::")
        );
        // Hashes never reach a report.
        let ftp = by("nologin_with_password", "ftp");
        assert_eq!(ftp.evidence[0].text, "ftp:<redacted>:20000:0:99999:7:::");
        assert!(!by("password_hash_in_passwd", "oldhash").evidence[0].text.contains("salt"));
        assert_eq!(by("suspicious_keyword", "bk").severity, Severity::Low);
        assert_eq!(by("suspicious_keyword", "web-admin").severity, Severity::Medium);
        assert_eq!(by("privileged_group", "logs").severity, Severity::Low);
        let rule = by("sudoers_rule", "ruled, fresh");
        assert_eq!(
            rule.evidence[0],
            Evidence::line("/etc/sudoers.d/ops", 3, b"OPS ALL=(ALL) NOPASSWD: ALL")
        );
        assert!(rule.reason_en.contains("NOPASSWD"));
        assert_eq!(by("sudoers_rule", "%sudo").severity, Severity::Low);
        assert_eq!(by("system_account_authorized_keys", "svc").severity, Severity::High);
        assert_eq!(by("system_account_authorized_keys", "svc").evidence[0].line, Some(2));
        for f in &a.findings {
            assert!(!f.reason_ja.is_empty() && !f.reason_en.is_empty());
        }
        // Most severe first.
        assert_eq!(a.findings[0].severity, Severity::Critical);
    }

    #[test]
    fn sudoers_all_users_and_uid_specs() {
        let files = [TextFile::new(
            "/etc/sudoers",
            "ALL ALL=(ALL) ALL\n#1005 ALL=(ALL) ALL\n# just a comment = x\n",
        )];
        let rules = parse_sudoers(&files);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].users, ["#1005"]);
        let mut inp = input("root:x:0:0::/root:/bin/bash\n", "", "", &[]);
        inp.sudoers = files.to_vec();
        let a = audit(&inp, &AccountsRules::default(), now());
        assert_eq!(a.findings[0].severity, Severity::Critical);
        assert_eq!(a.findings[0].subject, "ALL");
    }

    #[test]
    fn sudoers_includes_are_listed() {
        let f = TextFile::new("/etc/sudoers", "#includedir /etc/sudoers.d\n@include sub/extra\n#include\t\"/etc/q u\"\n# include nothing\n#includex y\n");
        let inc = sudoers_includes(&f);
        assert_eq!(
            inc,
            [
                SudoersInclude { line: 1, path: "/etc/sudoers.d".into(), is_dir: true },
                SudoersInclude { line: 2, path: "sub/extra".into(), is_dir: false },
                SudoersInclude { line: 3, path: "/etc/q u".into(), is_dir: false },
            ]
        );
        assert!(sudoers_includedir_reads("90-cloud"));
        assert!(!sudoers_includedir_reads("README.txt"));
        assert!(!sudoers_includedir_reads("x~"));
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let mut passwd =
            b"root:x:0:0:root:/root:/bin/bash\nshort:x:1\nbad:x:abc:1::/:/bin/sh\n".to_vec();
        passwd.extend_from_slice(b"caf\xe9:x:1005:1005::/:/bin/sh\n");
        passwd.extend_from_slice(&vec![b'a'; MAX_LINE_BYTES + 1]);
        passwd.extend_from_slice(
            b"\nnul\0:x:1006:1006::/:/bin/sh\n\nafter:x:1007:1007::/home/after:/bin/bash\n",
        );
        let inp = AccountsInput {
            passwd: Some(TextFile::new("/etc/passwd", passwd)),
            ..Default::default()
        };
        let a = audit(&inp, &AccountsRules::default(), now());
        let bad: Vec<(u32, &str)> = a
            .findings
            .iter()
            .filter(|f| f.kind == "malformed_line")
            .map(|f| (f.evidence[0].line.unwrap(), f.reason_en.as_str()))
            .collect();
        assert_eq!(bad.len(), 5, "{bad:#?}");
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
        assert!(bad[0].1.contains("3 fields, expected 7"), "{}", bad[0].1);
        assert!(bad[1].1.contains("uid \"abc\""), "{}", bad[1].1);
        assert!(bad[2].1.contains("not UTF-8"), "{}", bad[2].1);
        assert!(bad[3].1.contains("more than"), "{}", bad[3].1);
        assert!(bad[4].1.contains("NUL"), "{}", bad[4].1);
        // The line after the damage is still audited.
        assert_eq!(a.accounts, 2);
        assert!(a.snapshot.accounts.contains_key("after"));
    }

    #[test]
    fn shadow_malformed_line_does_not_leak_the_hash() {
        let f = TextFile::new(
            "/etc/shadow",
            "alice:$6$salt$secret:notanumber:0:99999:7:::\nbob:$6$s$h:1\n",
        );
        let (entries, bad) = parse_shadow(&f);
        assert!(entries.is_empty());
        assert_eq!(bad.len(), 2);
        for m in &bad {
            assert!(
                !String::from_utf8_lossy(&m.text).contains("secret")
                    && !String::from_utf8_lossy(&m.text).contains("$s$h"),
                "{m:?}"
            );
        }
    }

    #[test]
    fn keywords_are_configurable() {
        let inp = input("administrator:x:1001:1001::/home/a:/bin/bash\nqa:x:1002:1002:QA tester:/home/qa:/bin/bash\n", "", "", &[]);
        let a = audit(&inp, &AccountsRules::default(), now());
        assert!(a.findings.is_empty(), "administrator is not the word admin: {:#?}", a.findings);
        let rules = AccountsRules {
            keywords: vec!["administrator".into(), "tester".into()],
            ..Default::default()
        };
        let a = audit(&inp, &rules, now());
        assert_eq!(a.findings.len(), 2);
    }

    #[test]
    fn uid_min_override_and_login_defs() {
        let inp = input("svc:x:1500:1500::/:/bin/bash\n", "", "", &[]);
        assert!(audit(&inp, &AccountsRules::default(), now()).findings.is_empty());
        let rules = AccountsRules { uid_min: Some(2000), ..Default::default() };
        let a = audit(&inp, &rules, now());
        assert_eq!(a.uid_min, 2000);
        assert_eq!(a.findings[0].kind, "system_account_login_shell");
    }

    #[test]
    fn baseline_diff_reports_added_changed_and_keys() {
        let group = "sudo:x:27:\n";
        let mut before = input("root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\ngone:x:1001:1001::/:/bin/sh\n", "alice:$6$a$b:20000:0:99999:7:::\n", group, &[("/etc/sudoers", "root ALL=(ALL) ALL\n")]);
        before.authorized_keys.push(AuthorizedKeysFile {
            user: "alice".into(),
            file: TextFile::new(
                "/home/alice/.ssh/authorized_keys",
                "ssh-ed25519 AAAAold alice@laptop\n",
            ),
        });
        let base = audit(&before, &AccountsRules::default(), now()).snapshot;
        // The baseline survives a JSON round trip (it is stored as a file).
        let base: AccountsSnapshot =
            serde_json::from_str(&serde_json::to_string(&base).unwrap()).unwrap();

        let mut after = input(
            "root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\nmallory:x:1002:1002::/home/m:/bin/bash\n",
            "alice:$6$c$d:20000:0:99999:7:::\n",
            "sudo:x:27:alice\n",
            &[("/etc/sudoers", "root ALL=(ALL) ALL\nmallory ALL=(ALL) NOPASSWD: ALL\n")],
        );
        after.authorized_keys.push(AuthorizedKeysFile {
            user: "alice".into(),
            file: TextFile::new(
                "/home/alice/.ssh/authorized_keys",
                "ssh-ed25519 AAAAold alice@laptop\nno-pty ssh-rsa AAAAnew attacker\n",
            ),
        });
        after.authorized_keys.push(AuthorizedKeysFile {
            user: "mallory".into(),
            file: TextFile::new("/home/m/.ssh/authorized_keys", "ssh-ed25519 AAAAm m\n"),
        });
        let now_snap = audit(&after, &AccountsRules::default(), now()).snapshot;
        let diff = diff_baseline(&base, &now_snap);
        let mut kinds: Vec<(&str, &str)> =
            diff.iter().map(|f| (f.kind.as_str(), f.subject.as_str())).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("account_added", "mallory"),
                ("account_changed", "alice"),
                ("account_removed", "gone"),
                ("authorized_key_added", "alice"),
                ("authorized_key_added", "mallory"),
                ("group_membership_added", "alice"),
                ("password_changed", "alice"),
                ("sudoers_rule_added", "/etc/sudoers"),
            ]
        );
        let key =
            diff.iter().find(|f| f.kind == "authorized_key_added" && f.subject == "alice").unwrap();
        assert_eq!(key.evidence[0].line, Some(2));
        assert!(key.evidence[0].text.contains("AAAAnew"));
        assert!(diff_baseline(&now_snap, &now_snap).is_empty());
    }

    #[test]
    fn empty_and_missing_files_are_fine() {
        let a = audit(&AccountsInput::default(), &AccountsRules::default(), now());
        assert!(a.findings.is_empty());
        assert_eq!(a.uid_min, DEFAULT_UID_MIN);
        let (e, m) = parse_passwd(&TextFile::new("/etc/passwd", ""));
        assert!(e.is_empty() && m.is_empty());
    }

    #[test]
    fn login_shells_and_password_states() {
        assert!(is_login_shell("/bin/bash"));
        assert!(is_login_shell(""));
        assert!(!is_login_shell("/usr/sbin/nologin"));
        assert!(!is_login_shell("/bin/false"));
        assert_eq!(password_state(""), PasswordState::Empty);
        assert_eq!(password_state("!$6$x"), PasswordState::Locked);
        assert_eq!(password_state("*"), PasswordState::Locked);
        assert_eq!(password_state("$y$abc"), PasswordState::Usable);
    }

    proptest::proptest! {
        /// Whatever the bytes, the audit returns (no panic), and every
        /// malformed finding names a line that exists.
        #[test]
        fn arbitrary_bytes_never_panic(
            passwd in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            shadow in "[a-z:$!*0-9\n]{0,200}",
            group in "[a-z:,0-9\n]{0,200}",
            sudoers in "[a-zA-Z%#@=(): ,\\\n_]{0,200}",
        ) {
            let lines = passwd.split(|&b| b == b'\n').count() as u64;
            let input = AccountsInput {
                passwd: Some(TextFile::new("/etc/passwd", passwd)),
                shadow: Some(TextFile::new("/etc/shadow", shadow)),
                group: Some(TextFile::new("/etc/group", group)),
                sudoers: vec![TextFile::new("/etc/sudoers", sudoers)],
                ..Default::default()
            };
            let a = audit(&input, &AccountsRules::default(), now());
            for f in a.findings.iter().filter(|f| f.kind == "malformed_line" && f.subject == "/etc/passwd") {
                let line = u64::from(f.evidence[0].line.unwrap());
                proptest::prop_assert!(line >= 1 && line <= lines);
            }
        }
    }
}
