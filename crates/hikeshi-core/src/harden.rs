//! SSH hardening audit: the effective sshd settings, from `sshd -T` output
//! or from `sshd_config` files, judged by rules into findings with a
//! recommendation in English and Japanese.
//!
//! It owns three things: parsing `sshd -T` (lowercase `key value` lines),
//! parsing `sshd_config` the way sshd does (keywords case-insensitive,
//! `key value` or `key=value`, the *first* value of a keyword wins except
//! for the list keywords that accumulate, `Include` expanded in place,
//! `Match` blocks noted but not applied to the global settings), and the
//! rules. Files are read by the application: [`parse_config`] asks for
//! included files through a callback, so this module does no I/O.
//!
//! Incident-aware rules use what an incident recorded: the user names
//! attackers tried, which of them exist on the host, whether root was
//! tried. Each finding says which ISO/IEC 27001:2022 controls it serves,
//! so a report's Preventive Measures can take it in.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::Severity;

/// Where the settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsSource {
    /// `sshd -T`: what the daemon would really use (defaults included).
    SshdTest,
    /// Configuration files: keywords not set there take OpenSSH's defaults.
    ConfigFiles,
}

/// A `Match` block: its settings apply only to the connections it matches,
/// so they are listed, not folded into the global settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchBlock {
    pub file: String,
    pub line: u32,
    /// The criteria after `Match` (e.g. `User backup Address 10.0.0.0/8`).
    pub criteria: String,
    /// `keyword value` lines inside it, keywords lowercased.
    pub settings: Vec<(String, String)>,
}

/// A line the parser could not use, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the problem is the file itself.
    pub line: u32,
    pub message: String,
}

/// The effective global settings of sshd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshdSettings {
    pub source: SettingsSource,
    /// Lowercase keyword → its values (one for most keywords; several for
    /// the list keywords such as `allowusers`).
    pub values: BTreeMap<String, Vec<String>>,
    pub match_blocks: Vec<MatchBlock>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Keywords whose lines add up instead of the first one winning.
const ACCUMULATING: &[&str] = &[
    "allowusers",
    "allowgroups",
    "denyusers",
    "denygroups",
    "listenaddress",
    "port",
    "hostkey",
    "acceptenv",
    "setenv",
];

/// Old names sshd still accepts, mapped to the name `sshd -T` prints.
fn canonical_keyword(keyword: &str) -> String {
    let lower = keyword.to_ascii_lowercase();
    match lower.as_str() {
        "challengeresponseauthentication" => "kbdinteractiveauthentication".to_string(),
        _ => lower,
    }
}

/// OpenSSH's compiled-in defaults (9.x) for the keywords the rules read,
/// used when settings come from files that do not set them.
const DEFAULTS: &[(&str, &str)] = &[
    ("passwordauthentication", "yes"),
    ("kbdinteractiveauthentication", "yes"),
    ("permitrootlogin", "prohibit-password"),
    ("port", "22"),
    ("maxauthtries", "6"),
    ("pubkeyauthentication", "yes"),
    ("logingracetime", "120"),
    ("permitemptypasswords", "no"),
    ("usepam", "no"),
];

impl SshdSettings {
    fn new(source: SettingsSource) -> SshdSettings {
        SshdSettings {
            source,
            values: BTreeMap::new(),
            match_blocks: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// The first (effective) value of `keyword` (lowercase), or OpenSSH's
    /// default when settings come from files that do not set it.
    pub fn get(&self, keyword: &str) -> Option<&str> {
        if let Some(v) = self.values.get(keyword).and_then(|v| v.first()) {
            return Some(v);
        }
        if self.source == SettingsSource::ConfigFiles {
            return DEFAULTS.iter().find(|(k, _)| *k == keyword).map(|(_, v)| *v);
        }
        None
    }

    /// Every value of a list keyword (`allowusers`), split on blanks.
    /// Defaults apply as for [`SshdSettings::get`].
    pub fn list(&self, keyword: &str) -> Vec<&str> {
        match self.values.get(keyword) {
            Some(vs) => vs.iter().flat_map(|v| v.split_ascii_whitespace()).collect(),
            None => self.get(keyword).into_iter().collect(),
        }
    }

    fn set(&mut self, keyword: String, value: String) {
        let accumulate = ACCUMULATING.contains(&keyword.as_str());
        let entry = self.values.entry(keyword).or_default();
        if accumulate || entry.is_empty() {
            entry.push(value);
        }
    }
}

/// Parses `sshd -T` output: one lowercase `keyword value` per line.
pub fn parse_sshd_test(text: &str) -> SshdSettings {
    let mut settings = SshdSettings::new(SettingsSource::SshdTest);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = split_keyword(line);
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            settings.diagnostics.push(Diagnostic {
                file: "sshd -T".to_string(),
                line: line_number(n),
                message: format!("not a `keyword value` line: {}", shorten(line)),
            });
            continue;
        }
        // `sshd -T` prints each list entry on its own line; every line counts.
        settings.values.entry(canonical_keyword(key)).or_default().push(value.to_string());
    }
    settings
}

/// One configuration file's text, as read by the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path on the audited system (used in diagnostics).
    pub path: String,
    pub text: String,
}

/// How deep `Include` may nest (sshd's own limit is 16).
pub const MAX_INCLUDE_DEPTH: u32 = 16;

/// Parses `main` and the files it includes into the effective global
/// settings. `include` receives each `Include` argument (a path or glob,
/// relative ones are relative to `/etc/ssh`) and returns the matching
/// files in lexical order, or an error message (kept as a diagnostic).
pub fn parse_config(
    main: &ConfigFile,
    include: &mut dyn FnMut(&str) -> Result<Vec<ConfigFile>, String>,
) -> SshdSettings {
    let mut settings = SshdSettings::new(SettingsSource::ConfigFiles);
    let mut in_match: Option<usize> = None;
    parse_file(main, include, &mut settings, &mut in_match, 0);
    settings
}

fn parse_file(
    file: &ConfigFile,
    include: &mut dyn FnMut(&str) -> Result<Vec<ConfigFile>, String>,
    settings: &mut SshdSettings,
    in_match: &mut Option<usize>,
    depth: u32,
) {
    for (n, raw) in file.text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_keyword(line);
        let keyword = canonical_keyword(key);
        if keyword.is_empty() || !keyword.bytes().all(|b| b.is_ascii_alphanumeric()) {
            settings.diagnostics.push(Diagnostic {
                file: file.path.clone(),
                line: line_number(n),
                message: format!("not a `keyword value` line: {}", shorten(line)),
            });
            continue;
        }
        let value = unquote(value);
        match keyword.as_str() {
            "match" => {
                settings.match_blocks.push(MatchBlock {
                    file: file.path.clone(),
                    line: line_number(n),
                    criteria: value.to_string(),
                    settings: Vec::new(),
                });
                // `Match all` returns to settings that apply everywhere, but
                // sshd still does not let them override earlier globals;
                // treat it like any block.
                *in_match = Some(settings.match_blocks.len() - 1);
            }
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    settings.diagnostics.push(Diagnostic {
                        file: file.path.clone(),
                        line: line_number(n),
                        message: format!(
                            "Include nested deeper than {MAX_INCLUDE_DEPTH} levels: not followed"
                        ),
                    });
                    continue;
                }
                for pattern in value.split_ascii_whitespace() {
                    match include(pattern) {
                        Ok(files) => {
                            for f in files {
                                parse_file(&f, include, settings, in_match, depth + 1);
                            }
                        }
                        Err(message) => settings.diagnostics.push(Diagnostic {
                            file: file.path.clone(),
                            line: line_number(n),
                            message: format!("Include {pattern}: {message}"),
                        }),
                    }
                }
            }
            _ => match *in_match {
                Some(block) => {
                    settings.match_blocks[block].settings.push((keyword, value.to_string()));
                }
                None => settings.set(keyword, value.to_string()),
            },
        }
    }
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line.find(|c: char| c.is_ascii_whitespace() || c == '=').unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (key, rest)
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 80;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// What an incident showed, for the incident-aware rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentContext {
    /// The incident number, for the finding's text.
    pub incident: i64,
    /// User names attackers tried (opaque).
    pub attacked_users: Vec<String>,
    /// Those of them that exist on the host (from its passwd file).
    pub existing_attacked_users: Vec<String>,
    /// Attempts the incident counted.
    pub attempts: u64,
}

/// One finding of the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier (`password-auth`, `incident-password-guessing`).
    pub id: &'static str,
    pub severity: Severity,
    /// The sshd keyword concerned (lowercase).
    pub setting: &'static str,
    /// Its effective value (`(not set)` when nothing sets it).
    pub value: String,
    pub finding_en: String,
    pub finding_ja: String,
    pub recommendation_en: String,
    pub recommendation_ja: String,
    /// ISO/IEC 27001:2022 controls this finding serves.
    pub controls: &'static [&'static str],
}

fn is_yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("yes"))
}

/// The largest MaxAuthTries we do not flag: each connection gets this many
/// guesses before sshd drops it.
pub const RECOMMENDED_MAX_AUTH_TRIES: u32 = 3;
/// The longest LoginGraceTime (seconds) we do not flag.
pub const RECOMMENDED_LOGIN_GRACE_SECS: u32 = 30;

/// Judges the settings (and, if given, what an incident showed). Findings
/// come most severe first, then in rule order.
pub fn audit(settings: &SshdSettings, incident: Option<&IncidentContext>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let value = |k: &str| settings.get(k).unwrap_or("(not set)").to_string();
    let password = is_yes(settings.get("passwordauthentication"));
    let kbd = is_yes(settings.get("kbdinteractiveauthentication"));
    if password {
        findings.push(Finding {
            id: "password-auth",
            severity: Severity::High,
            setting: "passwordauthentication",
            value: value("passwordauthentication"),
            finding_en: "Password authentication is enabled: anyone on the network can guess \
                         passwords."
                .into(),
            finding_ja:
                "パスワード認証が有効です。ネットワーク上の誰でもパスワードを推測できます。".into(),
            recommendation_en: "Use keys only: `PasswordAuthentication no` once every user has \
                                a key; until then, enforce strong passwords."
                .into(),
            recommendation_ja:
                "鍵認証のみにする（全ユーザーが鍵を登録後 `PasswordAuthentication no`）。\
                                それまでは強力なパスワードを強制する。"
                    .into(),
            controls: &["8.5"],
        });
    }
    if kbd {
        findings.push(Finding {
            id: "kbd-interactive-auth",
            severity: Severity::Medium,
            setting: "kbdinteractiveauthentication",
            value: value("kbdinteractiveauthentication"),
            finding_en: "Keyboard-interactive authentication is enabled: with PAM it accepts \
                         passwords even when PasswordAuthentication is off."
                .into(),
            finding_ja: "キーボードインタラクティブ認証が有効です。PAM 経由で \
                         PasswordAuthentication が no でもパスワードを受け付けます。"
                .into(),
            recommendation_en: "Set `KbdInteractiveAuthentication no` unless you use one-time \
                                passwords through it."
                .into(),
            recommendation_ja:
                "ワンタイムパスワードで使わない限り `KbdInteractiveAuthentication no` にする。"
                    .into(),
            controls: &["8.5"],
        });
    }
    match settings.get("permitrootlogin").map(str::to_ascii_lowercase).as_deref() {
        Some("yes") => findings.push(Finding {
            id: "root-login",
            severity: Severity::High,
            setting: "permitrootlogin",
            value: value("permitrootlogin"),
            finding_en: "root may log in directly, with a password.".into(),
            finding_ja: "root が直接、パスワードでログインできます。".into(),
            recommendation_en: "Set `PermitRootLogin no`; administrators log in as themselves \
                                and use sudo."
                .into(),
            recommendation_ja:
                "`PermitRootLogin no` にし、管理者は個人アカウントでログインして sudo を使う。"
                    .into(),
            controls: &["8.5"],
        }),
        Some("prohibit-password" | "without-password") => findings.push(Finding {
            id: "root-login",
            severity: Severity::Low,
            setting: "permitrootlogin",
            value: value("permitrootlogin"),
            finding_en: "root may log in directly with a key.".into(),
            finding_ja: "root が鍵で直接ログインできます。".into(),
            recommendation_en: "Prefer `PermitRootLogin no` and sudo, so every action has a \
                                named person."
                .into(),
            recommendation_ja: "`PermitRootLogin no` と sudo を推奨（操作者を特定できるように）。"
                .into(),
            controls: &["8.5"],
        }),
        _ => {}
    }
    if settings.list("port").contains(&"22") {
        findings.push(Finding {
            id: "default-port",
            severity: Severity::Low,
            setting: "port",
            value: settings.list("port").join(" "),
            finding_en: "sshd listens on port 22, where every scanner knocks.".into(),
            finding_ja: "sshd は全スキャナーが狙う 22 番ポートで待ち受けています。".into(),
            recommendation_en: "Best: reach SSH only through a VPN (ListenAddress on the VPN \
                                interface, or a firewall rule). Otherwise another port cuts the \
                                noise (it is not a control by itself)."
                .into(),
            recommendation_ja: "最善は VPN 経由のみで SSH に接続させること（VPN インターフェースの \
                                ListenAddress またはファイアウォール）。次善策として別ポートに変更し雑音を減らす\
                                （それ自体は管理策ではない）。"
                .into(),
            controls: &["8.20"],
        });
    }
    if let Some(tries) = settings.get("maxauthtries").and_then(|v| v.parse::<u32>().ok()) {
        if tries > RECOMMENDED_MAX_AUTH_TRIES {
            findings.push(Finding {
                id: "max-auth-tries",
                severity: Severity::Medium,
                setting: "maxauthtries",
                value: tries.to_string(),
                finding_en: format!("Each connection may try {tries} authentications."),
                finding_ja: format!("1 接続あたり {tries} 回まで認証を試行できます。"),
                recommendation_en: format!(
                    "Set `MaxAuthTries {RECOMMENDED_MAX_AUTH_TRIES}` (and ban repeat offenders)."
                ),
                recommendation_ja: format!(
                    "`MaxAuthTries {RECOMMENDED_MAX_AUTH_TRIES}` にする（繰り返す送信元は遮断）。"
                ),
                controls: &["8.5"],
            });
        }
    }
    if settings.list("allowusers").is_empty() && settings.list("allowgroups").is_empty() {
        findings.push(Finding {
            id: "no-allow-list",
            severity: Severity::Medium,
            setting: "allowusers",
            value: "(not set)".into(),
            finding_en: "Every account may log in over SSH (no AllowUsers or AllowGroups)."
                .into(),
            finding_ja: "AllowUsers / AllowGroups が無く、全アカウントが SSH ログイン可能です。".into(),
            recommendation_en: "Name who may log in: `AllowGroups ssh-users` (or `AllowUsers`)."
                .into(),
            recommendation_ja: "ログインできる者を限定する（`AllowGroups ssh-users` または `AllowUsers`）。"
                .into(),
            controls: &["8.5", "8.20"],
        });
    }
    if settings.get("pubkeyauthentication").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
        findings.push(Finding {
            id: "pubkey-off",
            severity: Severity::High,
            setting: "pubkeyauthentication",
            value: value("pubkeyauthentication"),
            finding_en: "Public key authentication is disabled: only passwords remain.".into(),
            finding_ja: "公開鍵認証が無効で、パスワードしか使えません。".into(),
            recommendation_en: "Set `PubkeyAuthentication yes` and move users to keys.".into(),
            recommendation_ja: "`PubkeyAuthentication yes` にし、利用者を鍵認証へ移行する。".into(),
            controls: &["8.5"],
        });
    }
    if let Some(grace) = settings.get("logingracetime").and_then(parse_sshd_seconds) {
        if grace == 0 || grace > RECOMMENDED_LOGIN_GRACE_SECS {
            let shown = if grace == 0 { "unlimited".to_string() } else { format!("{grace} s") };
            findings.push(Finding {
                id: "login-grace-time",
                severity: Severity::Low,
                setting: "logingracetime",
                value: value("logingracetime"),
                finding_en: format!(
                    "An unauthenticated connection may stay open for {shown}, tying up \
                     MaxStartups slots."
                ),
                finding_ja: format!(
                    "未認証の接続が {shown} 保持でき、MaxStartups の枠を占有されます。"
                ),
                recommendation_en: format!("Set `LoginGraceTime {RECOMMENDED_LOGIN_GRACE_SECS}`."),
                recommendation_ja: format!(
                    "`LoginGraceTime {RECOMMENDED_LOGIN_GRACE_SECS}` にする。"
                ),
                controls: &["8.5", "8.20"],
            });
        }
    }
    if is_yes(settings.get("permitemptypasswords")) {
        findings.push(Finding {
            id: "empty-passwords",
            severity: Severity::Critical,
            setting: "permitemptypasswords",
            value: value("permitemptypasswords"),
            finding_en: "Accounts with empty passwords may log in.".into(),
            finding_ja: "空パスワードのアカウントがログインできます。".into(),
            recommendation_en: "Set `PermitEmptyPasswords no` now.".into(),
            recommendation_ja: "直ちに `PermitEmptyPasswords no` にする。".into(),
            controls: &["8.5"],
        });
    }
    if let Some(ctx) = incident {
        incident_findings(settings, ctx, password || kbd, &mut findings);
    }
    // Most severe first; the sort is stable, so rule order breaks ties.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

fn incident_findings(
    settings: &SshdSettings,
    ctx: &IncidentContext,
    passwords_accepted: bool,
    findings: &mut Vec<Finding>,
) {
    let n = ctx.incident;
    if passwords_accepted && !ctx.existing_attacked_users.is_empty() {
        let users = ctx.existing_attacked_users.join(", ");
        findings.push(Finding {
            id: "incident-password-guessing",
            severity: Severity::Critical,
            setting: "passwordauthentication",
            value: settings.get("passwordauthentication").unwrap_or("(not set)").to_string(),
            finding_en: format!(
                "Incident #{n}: passwords were guessed against accounts that exist on this host \
                 ({users}), and sshd accepts passwords."
            ),
            finding_ja: format!(
                "インシデント #{n}: このホストに実在するアカウント（{users}）に対してパスワード推測が行われ、\
                 sshd はパスワードを受け付けています。"
            ),
            recommendation_en: "Switch to keys only now (`PasswordAuthentication no`, \
                                `KbdInteractiveAuthentication no`); change those accounts' \
                                passwords and check their logins."
                .into(),
            recommendation_ja: "直ちに鍵認証のみへ切り替える（`PasswordAuthentication no`、\
                                `KbdInteractiveAuthentication no`）。該当アカウントのパスワードを変更し、\
                                ログイン履歴を確認する。"
                .into(),
            controls: &["8.5", "5.27"],
        });
    }
    let root_tried = ctx.attacked_users.iter().any(|u| u == "root");
    let root_allowed =
        !settings.get("permitrootlogin").is_some_and(|v| v.eq_ignore_ascii_case("no"));
    if root_tried && root_allowed {
        findings.push(Finding {
            id: "incident-root-targeted",
            severity: Severity::High,
            setting: "permitrootlogin",
            value: settings.get("permitrootlogin").unwrap_or("(not set)").to_string(),
            finding_en: format!("Incident #{n}: attackers tried root, and sshd lets root log in."),
            finding_ja: format!(
                "インシデント #{n}: 攻撃者は root を試行しており、sshd は root のログインを許可しています。"
            ),
            recommendation_en: "Set `PermitRootLogin no`.".into(),
            recommendation_ja: "`PermitRootLogin no` にする。".into(),
            controls: &["8.5", "5.27"],
        });
    }
    let allowed = settings.list("allowusers");
    if !allowed.is_empty() {
        let allowed_and_attacked: Vec<&str> = ctx
            .existing_attacked_users
            .iter()
            .map(String::as_str)
            .filter(|u| allowed.iter().any(|a| a == u))
            .collect();
        if !allowed_and_attacked.is_empty() {
            findings.push(Finding {
                id: "incident-allowed-users-attacked",
                severity: Severity::Medium,
                setting: "allowusers",
                value: allowed.join(" "),
                finding_en: format!(
                    "Incident #{n}: accounts allowed to log in were attacked ({}).",
                    allowed_and_attacked.join(", ")
                ),
                finding_ja: format!(
                    "インシデント #{n}: ログインを許可されたアカウントが攻撃されました（{}）。",
                    allowed_and_attacked.join(", ")
                ),
                recommendation_en: "Make sure those accounts use keys; consider VPN-only access."
                    .into(),
                recommendation_ja:
                    "該当アカウントが鍵認証であることを確認し、VPN 経由のみの接続を検討する。"
                        .into(),
                controls: &["8.5", "8.20"],
            });
        }
    }
}

/// sshd time values: `120`, `2m`, `1h30m`, `45s`. `None` when malformed.
pub fn parse_sshd_seconds(value: &str) -> Option<u32> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in value.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(d))?);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if let Some(n) = number {
        total = total.checked_add(n)?;
    }
    u32::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshdSettings {
        let main = ConfigFile { path: "/etc/ssh/sshd_config".into(), text: text.into() };
        parse_config(&main, &mut |p| Err(format!("no such file {p}")))
    }

    fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.id).collect()
    }

    #[test]
    fn first_value_wins_and_keywords_are_case_insensitive() {
        let s = config(
            "PasswordAuthentication no\npasswordauthentication yes\nMaxAuthTries=3\n\
             ChallengeResponseAuthentication no\nAllowUsers alice\nAllowUsers bob carol\n",
        );
        assert_eq!(s.get("passwordauthentication"), Some("no"));
        assert_eq!(s.get("maxauthtries"), Some("3"));
        assert_eq!(s.get("kbdinteractiveauthentication"), Some("no"));
        assert_eq!(s.list("allowusers"), ["alice", "bob", "carol"]);
        // Not set: OpenSSH's default.
        assert_eq!(s.get("permitrootlogin"), Some("prohibit-password"));
    }

    #[test]
    fn includes_are_expanded_in_place_and_match_blocks_kept_apart() {
        let main = ConfigFile {
            path: "/etc/ssh/sshd_config".into(),
            text: "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n\
                   Match User backup\n  PasswordAuthentication yes\n  PermitRootLogin yes\n"
                .into(),
        };
        let mut asked = Vec::new();
        let s = parse_config(&main, &mut |p| {
            asked.push(p.to_string());
            Ok(vec![ConfigFile {
                path: "/etc/ssh/sshd_config.d/50-hard.conf".into(),
                text: "PasswordAuthentication no\n".into(),
            }])
        });
        assert_eq!(asked, ["/etc/ssh/sshd_config.d/*.conf"]);
        // The included file came first, so its value wins, as in sshd.
        assert_eq!(s.get("passwordauthentication"), Some("no"));
        assert_eq!(s.get("permitrootlogin"), Some("prohibit-password"));
        assert_eq!(s.match_blocks.len(), 1);
        assert_eq!(s.match_blocks[0].criteria, "User backup");
        assert_eq!(s.match_blocks[0].line, 3);
        assert_eq!(s.match_blocks[0].settings.len(), 2);
    }

    #[test]
    fn include_loops_stop_at_the_depth_limit_with_a_diagnostic() {
        let main = ConfigFile { path: "a".into(), text: "Include a\n".into() };
        let s = parse_config(&main, &mut |_| {
            Ok(vec![ConfigFile { path: "a".into(), text: "Include a\n".into() }])
        });
        assert_eq!(s.diagnostics.len(), 1, "{:?}", s.diagnostics);
        assert!(s.diagnostics[0].message.contains("deeper than 16"));
    }

    #[test]
    fn missing_includes_and_garbage_lines_are_diagnosed_with_their_place() {
        let s = config("Include nothing/*.conf\n\u{1b}[31m evil\nPort 2222\n");
        assert_eq!(s.diagnostics.len(), 2);
        assert_eq!((s.diagnostics[0].line, s.diagnostics[1].line), (1, 2));
        assert!(s.diagnostics[0].message.contains("no such file"));
        assert_eq!(s.list("port"), ["2222"]);
    }

    #[test]
    fn default_config_gets_the_expected_findings() {
        let findings = audit(&config(""), None);
        assert_eq!(
            ids(&findings),
            [
                "password-auth",
                "kbd-interactive-auth",
                "max-auth-tries",
                "no-allow-list",
                "root-login",
                "default-port",
                "login-grace-time"
            ]
        );
    }

    #[test]
    fn hardened_config_has_no_findings() {
        let s = config(
            "Port 2222\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin no\nMaxAuthTries 3\nAllowGroups ssh-users\nLoginGraceTime 20s\n",
        );
        assert_eq!(ids(&audit(&s, None)), Vec::<&str>::new());
    }

    #[test]
    fn sshd_test_output_is_read_as_is_without_defaults() {
        let s = parse_sshd_test(
            "port 22\nport 2222\npasswordauthentication no\npermitrootlogin no\n\
             maxauthtries 6\nlogingracetime 120\nallowusers alice\nallowusers bob\n",
        );
        assert_eq!(s.list("port"), ["22", "2222"]);
        assert_eq!(s.list("allowusers"), ["alice", "bob"]);
        assert_eq!(s.get("kbdinteractiveauthentication"), None);
        assert_eq!(ids(&audit(&s, None)), ["max-auth-tries", "default-port", "login-grace-time"]);
    }

    #[test]
    fn incident_with_guessing_against_existing_accounts_demands_keys_only() {
        let ctx = IncidentContext {
            incident: 7,
            attacked_users: vec!["root".into(), "alice".into(), "oracle".into()],
            existing_attacked_users: vec!["alice".into(), "root".into()],
            attempts: 120,
        };
        let findings = audit(&config("AllowUsers alice\n"), Some(&ctx));
        assert_eq!(findings[0].id, "incident-password-guessing");
        assert_eq!(findings[0].severity, Severity::Critical);
        assert!(findings[0].finding_en.contains("alice, root"));
        assert!(ids(&findings).contains(&"incident-root-targeted"));
        assert!(ids(&findings).contains(&"incident-allowed-users-attacked"));
        // Keys only: the same incident raises no password finding.
        let keys_only = config("PasswordAuthentication no\nKbdInteractiveAuthentication no\n");
        assert!(!ids(&audit(&keys_only, Some(&ctx))).contains(&"incident-password-guessing"));
    }

    #[test]
    fn sshd_time_values() {
        assert_eq!(parse_sshd_seconds("120"), Some(120));
        assert_eq!(parse_sshd_seconds("2m"), Some(120));
        assert_eq!(parse_sshd_seconds("1h30s"), Some(3630));
        assert_eq!(parse_sshd_seconds("0"), Some(0));
        assert_eq!(parse_sshd_seconds("m"), None);
        assert_eq!(parse_sshd_seconds("12x"), None);
        assert_eq!(parse_sshd_seconds("99999999999999999999"), None);
    }
}
