//! Alerts, as data: who is told ([`Role`], [`Member`], [`recipients`]),
//! what they are told ([`AlertFacts`] rendered as an email subject and
//! plain text, a generic JSON body and a Slack body), and when
//! ([`RetryPolicy`] for failed deliveries, [`RateLimit`] and
//! [`plan_lane`] for bursts, [`render_digest`] for what a burst held).
//!
//! Everything here is pure: the application crate's `notify` module stores
//! the rendered messages in its outbox and does the sending.
//!
//! Attacker-chosen text (user names, host names from reverse DNS, even log
//! host fields) reaches every rendering only through [`clean_inline`], so
//! no format can carry a newline (header injection, forged body lines), a
//! terminal escape, a bidi override or a Slack mention/link.

use std::fmt::Write as _;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::event::Severity;

/// The default email subject, as in the runbook (`mail -s "Incident Alert"`).
pub const DEFAULT_SUBJECT: &str = "Incident Alert";

// Display limits: alerts must stay readable whatever an attacker sends.
const MAX_SUBJECT_CHARS: usize = 200;
const MAX_FIELD_CHARS: usize = 200;
const MAX_USER_CHARS: usize = 64;
const MAX_LIST_ITEMS: usize = 10;
const MAX_ACTION_CHARS: usize = 400;
/// Slack rejects a section text longer than 3000 characters.
const SLACK_SECTION_CHARS: usize = 2900;
/// Slack truncates message text at 40,000 characters; stay well under.
const SLACK_TEXT_CHARS: usize = 35_000;

/// The runbook's team roles (Preparation / 体制).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 全体統括、意思決定、外部調整: runs the response, decides, talks to outsiders.
    IncidentManager,
    /// ログ分析、原因特定、技術調査: analyses logs, finds the cause.
    SecurityAnalyst,
    /// 隔離、修正、復旧操作: isolates, fixes, restores.
    SystemAdministrator,
    /// 報告連絡、関係部署/外部対応: reports and communicates.
    CommunicationLead,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::IncidentManager,
        Role::SecurityAnalyst,
        Role::SystemAdministrator,
        Role::CommunicationLead,
    ];

    /// The configuration name (`incident_manager`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::IncidentManager => "incident_manager",
            Role::SecurityAnalyst => "security_analyst",
            Role::SystemAdministrator => "system_administrator",
            Role::CommunicationLead => "communication_lead",
        }
    }

    /// The runbook's English title.
    pub fn title_en(self) -> &'static str {
        match self {
            Role::IncidentManager => "Incident Manager",
            Role::SecurityAnalyst => "Security Analyst",
            Role::SystemAdministrator => "System Administrator",
            Role::CommunicationLead => "Communication Lead",
        }
    }

    /// The Japanese title.
    pub fn title_ja(self) -> &'static str {
        match self {
            Role::IncidentManager => "インシデントマネージャー",
            Role::SecurityAnalyst => "セキュリティアナリスト",
            Role::SystemAdministrator => "システム管理者",
            Role::CommunicationLead => "コミュニケーション担当",
        }
    }
}

/// One member of the response team and the severities they are alerted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub name: String,
    /// Where email alerts go (a person or a list such as `ir_team@example.com`).
    pub email: String,
    /// The severities this member receives. Empty: none (listed for the
    /// report only).
    pub receives: Vec<Severity>,
}

/// What happened to an incident that deserves an alert. One alert per
/// transition, never one per log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A new incident.
    Opened,
    /// An open incident's severity rose (e.g. a login succeeded after a
    /// brute force: a possible compromise).
    Escalated,
    /// hikeshi decided to contain (ban) and could not.
    ContainmentFailed,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Opened => "opened",
            AlertKind::Escalated => "escalated",
            AlertKind::ContainmentFailed => "containment_failed",
        }
    }
}

/// Who the members of a team are that must receive an alert of `kind` at
/// `severity`: those whose `receives` lists the severity, and for a
/// containment failure every System Administrator too (they are the ones
/// who must block by hand). Each email address appears once (compared
/// without case), in team order.
pub fn recipients(team: &[Member], kind: AlertKind, severity: Severity) -> Vec<&Member> {
    let mut chosen: Vec<&Member> = Vec::new();
    for member in team {
        let wanted = member.receives.contains(&severity)
            || (kind == AlertKind::ContainmentFailed && member.role == Role::SystemAdministrator);
        if wanted && !chosen.iter().any(|m| m.email.eq_ignore_ascii_case(&member.email)) {
            chosen.push(member);
        }
    }
    chosen
}

/// One step of the runbook for the people who receive the alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextStep {
    /// Who does it; `None`: whoever reads the alert first.
    pub role: Option<Role>,
    pub en: String,
    pub ja: String,
}

fn step(role: Role, en: &str, ja: &str) -> NextStep {
    NextStep { role: Some(role), en: en.to_string(), ja: ja.to_string() }
}

/// The runbook's next steps for an alert of `kind` about `source`. The
/// source is quoted in a command only when it is an IP address (a host
/// name from reverse DNS is attacker-controlled).
pub fn runbook_next_steps(kind: AlertKind, source: &str, contained: bool) -> Vec<NextStep> {
    let block_cmd = match source.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => format!("`iptables -A INPUT -s {a} -j DROP`"),
        Ok(IpAddr::V6(a)) => format!("`ip6tables -A INPUT -s {a} -j DROP`"),
        Err(_) => "a firewall rule for its address".to_string(),
    };
    let mut steps = Vec::new();
    match kind {
        AlertKind::Opened => {
            steps.push(step(
                Role::SecurityAnalyst,
                "Validate the alert: review the source's log lines and check that no login from it succeeded.",
                "アラートを確認する: 攻撃元のログを確認し、ログイン成功がないことを確かめる。",
            ));
            if contained {
                steps.push(step(
                    Role::SystemAdministrator,
                    "Check that the block is in place and lasts long enough.",
                    "ブロックが有効で、期間が十分であることを確認する。",
                ));
            } else {
                steps.push(step(
                    Role::SystemAdministrator,
                    &format!("Contain: block the source with {block_cmd}, or enable fail2ban."),
                    &format!("封じ込め: {block_cmd} で攻撃元をブロックする、または fail2ban を有効にする。"),
                ));
            }
            steps.push(step(
                Role::SecurityAnalyst,
                "Eradicate: check /etc/passwd for suspicious accounts (nologin, test, admin, backup, temp) and files modified in the last day.",
                "根絶: /etc/passwd の不審なアカウント (nologin, test, admin, backup, temp) と直近1日に変更されたファイルを確認する。",
            ));
            steps.push(step(
                Role::IncidentManager,
                "Decide the scope and severity; record the decision in the incident.",
                "範囲と深刻度を判断し、インシデントに記録する。",
            ));
        }
        AlertKind::Escalated => {
            steps.push(step(
                Role::IncidentManager,
                "Treat this as a possible compromise: convene the team now.",
                "侵害の可能性として扱い、直ちにチームを招集する。",
            ));
            steps.push(step(
                Role::SystemAdministrator,
                &format!("Isolate: block the source with {block_cmd}, lock the account that logged in and end its sessions."),
                &format!("隔離: {block_cmd} で攻撃元をブロックし、ログインしたアカウントをロックしてセッションを終了する。"),
            ));
            steps.push(step(
                Role::SecurityAnalyst,
                "Investigate what the account did: new accounts in /etc/passwd, files modified since the first attempt, AIDE check.",
                "アカウントの操作を調査する: /etc/passwd の新規アカウント、最初の試行以降に変更されたファイル、AIDE による検証。",
            ));
            steps.push(step(
                Role::CommunicationLead,
                "Report the incident to the departments concerned (ISO/IEC 27001 A.5.24, A.6.8).",
                "関係部署へインシデントを報告する (ISO/IEC 27001 A.5.24, A.6.8)。",
            ));
        }
        AlertKind::ContainmentFailed => {
            steps.push(step(
                Role::SystemAdministrator,
                &format!("Contain by hand: block the source with {block_cmd}, then find why the automatic block failed."),
                &format!("手動で封じ込める: {block_cmd} で攻撃元をブロックし、自動ブロックの失敗原因を調べる。"),
            ));
            steps.push(step(
                Role::SecurityAnalyst,
                "Watch the source's further attempts until it is blocked.",
                "ブロックされるまで攻撃元の試行を監視する。",
            ));
            steps.push(step(
                Role::IncidentManager,
                "Decide whether the host must be isolated meanwhile.",
                "その間ホストを隔離すべきか判断する。",
            ));
        }
    }
    steps
}

/// Everything an alert says, self-contained: rendering needs nothing else.
///
/// Text fields may hold attacker-chosen text; renderers clean them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFacts {
    /// The incident number, as the store numbers incidents.
    pub incident_id: i64,
    pub kind: AlertKind,
    pub severity: Severity,
    /// For an escalation: the severity before it.
    pub previous_severity: Option<Severity>,
    /// The detection rule's name (`ssh-brute-force`).
    pub rule: String,
    /// What happened, for people: "Multiple failed SSH logins".
    pub title: String,
    /// The attacker: an address, or a host name sshd wrote.
    pub source: String,
    /// The servers that logged it (syslog host field).
    pub hosts: Vec<String>,
    /// Some of the user names tried (attacker-chosen).
    pub sample_users: Vec<String>,
    /// How many distinct user names were tried in all.
    pub distinct_users: u64,
    /// Failed attempts counted so far.
    pub attempts: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// What hikeshi did, one line each ("banned 203.0.113.5 for 1h via
    /// nftables", "containment FAILED: ...").
    pub actions: Vec<String>,
    /// Why this alert (escalation reason, the containment error).
    pub reason: Option<String>,
    /// The runbook's next steps for this phase (see [`runbook_next_steps`]).
    pub next_steps: Vec<NextStep>,
}

impl AlertFacts {
    /// What makes this alert the same alert if raised again: the incident,
    /// the transition and the severity. The outbox stores each key once per
    /// recipient, so a caller that reports the same transition twice (a
    /// cron run re-reading a log) does not alert twice.
    pub fn once_key(&self) -> String {
        format!("{}:{}:{}", self.incident_id, self.kind.as_str(), self.severity.as_str())
    }
}

/// Makes attacker-chosen text safe to put on one line of any alert
/// format: control characters (C0, DEL, C1: newlines, CR, ESC), Unicode
/// line/paragraph separators, bidi overrides and invisible format
/// characters are written as visible escapes (`\n`, `\r`, `\t`, `\u{1b}`),
/// a backslash as `\\` so escapes stay unambiguous, and text longer than
/// `max_chars` is cut with `…`.
pub fn clean_inline(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut chars = 0usize;
    // Where the text must be cut if it turns out too long: the end of the
    // last whole piece that leaves room for the ellipsis, so an escape is
    // never cut in half.
    let mut cut_at = 0usize;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let escaped;
        let piece: &str = match c {
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\\' => "\\\\",
            c if is_unsafe_char(c) => {
                escaped = format!("\\u{{{:x}}}", c as u32);
                &escaped
            }
            c => c.encode_utf8(&mut buf),
        };
        let n = piece.chars().count();
        if chars + n > max_chars {
            out.truncate(cut_at);
            out.push('…');
            return out;
        }
        out.push_str(piece);
        chars += n;
        if chars < max_chars {
            cut_at = out.len();
        }
    }
    out
}

fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width, LRM/RLM
            | '\u{2028}' | '\u{2029}' // line/paragraph separators
            | '\u{202a}'..='\u{202e}' // bidi embeddings/overrides
            | '\u{2060}'..='\u{206f}' // word joiner, bidi isolates, invisible operators
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}')
}

fn clean_list(items: &[String], max_items: usize, max_chars: usize) -> (Vec<String>, usize) {
    let shown: Vec<String> =
        items.iter().take(max_items).map(|s| clean_inline(s, max_chars)).collect();
    let hidden = items.len().saturating_sub(shown.len());
    (shown, hidden)
}

/// `Security Alert: <title> detected on <hosts>`: the runbook's alert line.
fn headline(facts: &AlertFacts) -> String {
    let title = clean_inline(&facts.title, MAX_FIELD_CHARS);
    let hosts = hosts_text(facts);
    match facts.kind {
        AlertKind::Opened => format!("Security Alert: {title} detected on {hosts}"),
        AlertKind::Escalated => format!(
            "Security Alert: incident #{} escalated to {} ({title} on {hosts})",
            facts.incident_id,
            facts.severity.as_str().to_uppercase()
        ),
        AlertKind::ContainmentFailed => {
            format!("Security Alert: containment FAILED for {title} on {hosts}")
        }
    }
}

fn hosts_text(facts: &AlertFacts) -> String {
    let (hosts, hidden) = clean_list(&facts.hosts, MAX_LIST_ITEMS, MAX_FIELD_CHARS);
    if hosts.is_empty() {
        return "this host".to_string();
    }
    let mut text = hosts.join(", ");
    if hidden > 0 {
        let _ = write!(text, " (+{hidden} more)");
    }
    text
}

fn users_text(facts: &AlertFacts) -> String {
    let (users, hidden) = clean_list(&facts.sample_users, MAX_LIST_ITEMS, MAX_USER_CHARS);
    if users.is_empty() {
        return "-".to_string();
    }
    // Quote each name so a name with spaces or commas cannot pass for two.
    let mut text = users.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    let more = (facts.distinct_users as usize).max(facts.sample_users.len()) - users.len();
    if more > 0 || hidden > 0 {
        let _ = write!(text, " (+{} more)", more.max(hidden));
    }
    text
}

/// The email subject: `<prefix> #<id> [<SEVERITY>] <what> from <source> on
/// <hosts>`, one line, at most 200 characters. `prefix` is the configured
/// subject (default [`DEFAULT_SUBJECT`], `hikeshi scan -s`).
pub fn email_subject(facts: &AlertFacts, prefix: &str) -> String {
    let prefix = clean_inline(prefix, 60);
    let sev = facts.severity.as_str().to_uppercase();
    let title = clean_inline(&facts.title, 80);
    let source = clean_inline(&facts.source, 64);
    let what = match facts.kind {
        AlertKind::Opened => format!("[{sev}] {title} from {source}"),
        AlertKind::Escalated => format!("escalated to {sev}: {title} from {source}"),
        AlertKind::ContainmentFailed => {
            format!("[{sev}] containment FAILED: {title} from {source}")
        }
    };
    // Every part is clean already: only the length is left to bound.
    cut(
        &format!("{prefix} #{}: {what} on {}", facts.incident_id, hosts_text(facts)),
        MAX_SUBJECT_CHARS,
    )
}

/// The plain-text body a person can act on: what, where, since when, who,
/// what was done, the incident number and the runbook's next steps; then
/// the same in Japanese. Used for email and for stdout (cron mails it).
pub fn plain_text(facts: &AlertFacts) -> String {
    let mut t = String::new();
    let sev = facts.severity.as_str().to_uppercase();
    let prev = facts.previous_severity.map(|p| p.as_str().to_uppercase());
    let (actions, hidden_actions) = clean_list(&facts.actions, 20, MAX_ACTION_CHARS);
    let reason = facts.reason.as_deref().map(|r| clean_inline(r, MAX_ACTION_CHARS));
    let source = clean_inline(&facts.source, MAX_FIELD_CHARS);
    let rule = clean_inline(&facts.rule, MAX_FIELD_CHARS);
    let hosts = hosts_text(facts);
    let users = users_text(facts);

    let _ = writeln!(t, "{}", headline(facts));
    let _ = writeln!(t);
    let _ = writeln!(t, "Incident:     #{} ({})", facts.incident_id, facts.kind.as_str());
    match &prev {
        Some(p) => {
            let _ = writeln!(t, "Severity:     {sev} (was {p})");
        }
        None => {
            let _ = writeln!(t, "Severity:     {sev}");
        }
    }
    let _ = writeln!(t, "Rule:         {rule}");
    let _ = writeln!(t, "Source:       {source}");
    let _ = writeln!(t, "Where:        {hosts}");
    let _ = writeln!(t, "Since:        {} (first seen)", facts.first_seen);
    let _ = writeln!(t, "Last seen:    {}", facts.last_seen);
    let _ = writeln!(t, "Attempts:     {}", facts.attempts);
    let _ = writeln!(t, "Users tried:  {users}");
    if let Some(r) = &reason {
        let _ = writeln!(t, "Reason:       {r}");
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "Actions taken:");
    if actions.is_empty() {
        let _ = writeln!(t, "  - none yet");
    }
    for a in &actions {
        let _ = writeln!(t, "  - {a}");
    }
    if hidden_actions > 0 {
        let _ = writeln!(t, "  - ... and {hidden_actions} more");
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "Next steps (runbook):");
    for (i, s) in facts.next_steps.iter().enumerate() {
        let who = s.role.map(|r| format!("[{}] ", r.title_en())).unwrap_or_default();
        let _ = writeln!(t, "  {}. {who}{}", i + 1, clean_inline(&s.en, MAX_ACTION_CHARS));
    }

    let _ = writeln!(t);
    let _ = writeln!(t, "-- 日本語 --");
    let kind_ja = match facts.kind {
        AlertKind::Opened => "発生",
        AlertKind::Escalated => "エスカレーション",
        AlertKind::ContainmentFailed => "封じ込め失敗",
    };
    let title = clean_inline(&facts.title, MAX_FIELD_CHARS);
    let _ = writeln!(t, "セキュリティアラート: {hosts} で {title} を検知 ({kind_ja})");
    let _ = writeln!(t, "インシデント番号: #{}", facts.incident_id);
    match &prev {
        Some(p) => {
            let _ = writeln!(t, "深刻度: {sev} ({p} から上昇)");
        }
        None => {
            let _ = writeln!(t, "深刻度: {sev}");
        }
    }
    let _ = writeln!(t, "攻撃元: {source}");
    let _ = writeln!(t, "対象: {hosts}");
    let _ = writeln!(t, "初回検知: {}", facts.first_seen);
    let _ = writeln!(t, "最終検知: {}", facts.last_seen);
    let _ = writeln!(t, "試行回数: {}", facts.attempts);
    let _ = writeln!(t, "試行ユーザー: {users}");
    if let Some(r) = &reason {
        let _ = writeln!(t, "理由: {r}");
    }
    let _ = writeln!(t, "対応内容:");
    if actions.is_empty() {
        let _ = writeln!(t, "  - まだなし");
    }
    for a in &actions {
        let _ = writeln!(t, "  - {a}");
    }
    let _ = writeln!(t, "次の手順 (ランブック):");
    for (i, s) in facts.next_steps.iter().enumerate() {
        let who = s.role.map(|r| format!("[{}] ", r.title_ja())).unwrap_or_default();
        let _ = writeln!(t, "  {}. {who}{}", i + 1, clean_inline(&s.ja, MAX_ACTION_CHARS));
    }
    t
}

/// The generic JSON webhook body. Every string is cleaned as in the text
/// body; `text` is the full plain-text body for receivers that only show
/// text. `schema` versions the shape.
pub fn json_payload(facts: &AlertFacts, subject_prefix: &str) -> Value {
    let (hosts, _) = clean_list(&facts.hosts, MAX_LIST_ITEMS, MAX_FIELD_CHARS);
    let (users, _) = clean_list(&facts.sample_users, MAX_LIST_ITEMS, MAX_USER_CHARS);
    let (actions, _) = clean_list(&facts.actions, 20, MAX_ACTION_CHARS);
    let steps: Vec<Value> = facts
        .next_steps
        .iter()
        .map(|s| {
            json!({
                "role": s.role.map(Role::as_str),
                "en": clean_inline(&s.en, MAX_ACTION_CHARS),
                "ja": clean_inline(&s.ja, MAX_ACTION_CHARS),
            })
        })
        .collect();
    json!({
        "schema": "hikeshi.alert.v1",
        "incident_id": facts.incident_id,
        "kind": facts.kind.as_str(),
        "severity": facts.severity.as_str(),
        "previous_severity": facts.previous_severity.map(Severity::as_str),
        "rule": clean_inline(&facts.rule, MAX_FIELD_CHARS),
        "title": clean_inline(&facts.title, MAX_FIELD_CHARS),
        "source": clean_inline(&facts.source, MAX_FIELD_CHARS),
        "hosts": hosts,
        "sample_users": users,
        "distinct_users": facts.distinct_users,
        "attempts": facts.attempts,
        "first_seen": facts.first_seen.to_string(),
        "last_seen": facts.last_seen.to_string(),
        "actions": actions,
        "reason": facts.reason.as_deref().map(|r| clean_inline(r, MAX_ACTION_CHARS)),
        "next_steps": steps,
        "subject": email_subject(facts, subject_prefix),
        "text": plain_text(facts),
    })
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are the only characters
/// Slack asks to escape, and escaping `<` is what neutralises `<!channel>`,
/// `<@U123>` and `<http://evil|click>`.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// An attacker-chosen value for Slack: cleaned, escaped, and in a code
/// span so `*bold*`, `_x_`, `~x~` and `@channel` are shown, not applied. A
/// backtick would close the span, so it is shown as `ˋ`.
fn slack_code(text: &str, max_chars: usize) -> String {
    let clean = clean_inline(text, max_chars).replace('`', "ˋ");
    if clean.is_empty() {
        return "-".to_string();
    }
    format!("`{}`", slack_escape(&clean))
}

fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The Slack-compatible body (`{"text", "blocks"}`; also accepted by
/// Mattermost and Rocket.Chat). Text objects are `verbatim` so Slack does
/// not turn names into links or mentions.
pub fn slack_payload(facts: &AlertFacts, subject_prefix: &str) -> Value {
    let sev = facts.severity.as_str().to_uppercase();
    let subject = email_subject(facts, subject_prefix);
    let (hosts, _) = clean_list(&facts.hosts, MAX_LIST_ITEMS, MAX_FIELD_CHARS);
    let hosts_code = if hosts.is_empty() {
        "-".to_string()
    } else {
        facts
            .hosts
            .iter()
            .take(MAX_LIST_ITEMS)
            .map(|h| slack_code(h, MAX_FIELD_CHARS))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let users = if facts.sample_users.is_empty() {
        "-".to_string()
    } else {
        let mut u = facts
            .sample_users
            .iter()
            .take(MAX_LIST_ITEMS)
            .map(|u| slack_code(u, MAX_USER_CHARS))
            .collect::<Vec<_>>()
            .join(", ");
        let shown = facts.sample_users.len().min(MAX_LIST_ITEMS);
        let total = (facts.distinct_users as usize).max(facts.sample_users.len());
        if total > shown {
            let _ = write!(u, " (+{} more)", total - shown);
        }
        u
    };
    let mut facts_md = String::new();
    let _ = writeln!(facts_md, "*Incident:* #{} ({})", facts.incident_id, facts.kind.as_str());
    let _ = writeln!(facts_md, "*Severity:* {sev}");
    let _ = writeln!(facts_md, "*Rule:* {}", slack_code(&facts.rule, MAX_FIELD_CHARS));
    let _ = writeln!(facts_md, "*Source:* {}", slack_code(&facts.source, MAX_FIELD_CHARS));
    let _ = writeln!(facts_md, "*Where:* {hosts_code}");
    let _ = writeln!(facts_md, "*Since:* {} (last seen {})", facts.first_seen, facts.last_seen);
    let _ = writeln!(facts_md, "*Attempts:* {}", facts.attempts);
    let _ = writeln!(facts_md, "*Users tried:* {users}");
    if let Some(r) = &facts.reason {
        let _ = writeln!(facts_md, "*Reason:* {}", slack_code(r, MAX_ACTION_CHARS));
    }
    let mut actions_md = String::from("*Actions taken:*\n");
    if facts.actions.is_empty() {
        actions_md.push_str("• none yet\n");
    }
    for a in facts.actions.iter().take(20) {
        let _ = writeln!(actions_md, "• {}", slack_escape(&clean_inline(a, MAX_ACTION_CHARS)));
    }
    let mut steps_md = String::from("*Next steps (runbook):*\n");
    for (i, s) in facts.next_steps.iter().enumerate() {
        let who = s.role.map(|r| format!("*{}:* ", r.title_en())).unwrap_or_default();
        let _ = writeln!(
            steps_md,
            "{}. {who}{} / {}",
            i + 1,
            slack_escape(&clean_inline(&s.en, MAX_ACTION_CHARS)),
            slack_escape(&clean_inline(&s.ja, MAX_ACTION_CHARS))
        );
    }
    let header = cut(&headline(facts), 150);
    let section = |md: &str| json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(md, SLACK_SECTION_CHARS), "verbatim": true}});
    json!({
        "text": cut(&slack_escape(&subject), SLACK_TEXT_CHARS),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": false}},
            section(&facts_md),
            section(&actions_md),
            section(&steps_md),
        ],
    })
}

/// How a digest is rendered: the outbox channel's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestFormat {
    /// Email and stdout: subject plus plain text.
    Text,
    /// Generic JSON webhook: a JSON object holding the held payloads.
    Json,
    /// Slack webhook: one `text` with every held alert's text.
    Slack,
}

/// One alert held back by the rate limit, as it was rendered for its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAlert {
    pub subject: String,
    pub body: String,
}

/// Renders the digest that carries `held` alerts in one message when a
/// lane reached its [`RateLimit`]: returns `(subject, body)`. Nothing held
/// is left out of text and JSON digests; a Slack digest is cut at Slack's
/// size limit, saying how many it could not show (they stay in the outbox).
pub fn render_digest(
    format: DigestFormat,
    held: &[HeldAlert],
    limit: &RateLimit,
    subject_prefix: &str,
) -> (String, String) {
    let n = held.len();
    let why = format!(
        "{n} alerts were held because the rate limit (at most {} per {}s to this recipient) was reached.",
        limit.max_per_window,
        limit.window.as_secs()
    );
    let subject = cut(
        &format!("{} digest: {n} alerts held by the rate limit", clean_inline(subject_prefix, 60)),
        MAX_SUBJECT_CHARS,
    );
    let body = match format {
        DigestFormat::Text => {
            let mut t =
                format!("{why}\nレート制限により {n} 件のアラートをまとめて送信します。\n\n");
            for (i, h) in held.iter().enumerate() {
                let _ = writeln!(t, "  {}. {}", i + 1, h.subject);
            }
            for (i, h) in held.iter().enumerate() {
                let _ = write!(t, "\n===== {}/{n}: {} =====\n{}", i + 1, h.subject, h.body);
            }
            t
        }
        DigestFormat::Json => {
            let alerts: Vec<Value> = held
                .iter()
                .map(|h| {
                    serde_json::from_str(&h.body).unwrap_or_else(|_| Value::String(h.body.clone()))
                })
                .collect();
            json!({
                "schema": "hikeshi.digest.v1",
                "count": n,
                "reason": why,
                "alerts": alerts,
            })
            .to_string()
        }
        DigestFormat::Slack => {
            let mut text = slack_escape(&why);
            text.push('\n');
            let mut shown = 0;
            for h in held {
                let inner = serde_json::from_str::<Value>(&h.body)
                    .ok()
                    .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| slack_escape(&clean_inline(&h.subject, MAX_SUBJECT_CHARS)));
                if text.len() + inner.len() + 200 > SLACK_TEXT_CHARS {
                    break;
                }
                let _ = write!(text, "\n• {inner}");
                shown += 1;
            }
            if shown < n {
                let _ = write!(text, "\n… and {} more (see hikeshi's alert outbox)", n - shown);
            }
            json!({"text": text}).to_string()
        }
    };
    (subject, body)
}

/// When failed deliveries are tried again: exponential backoff from
/// `initial` doubling up to `max_delay`, forever.
///
/// hikeshi never gives up on an alert, because an alert given up is an
/// alert lost. Instead, after `stuck_after` failed attempts a message is
/// reported as stuck ([`RetryPolicy::is_stuck`]) so that `hikeshi` can say
/// so loudly, and it keeps being retried every `max_delay`. Delays have no
/// random jitter: deliveries are already spread by when incidents open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: SignedDuration,
    pub max_delay: SignedDuration,
    pub stuck_after: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: SignedDuration::from_secs(30),
            max_delay: SignedDuration::from_secs(3600),
            stuck_after: 8,
        }
    }
}

impl RetryPolicy {
    /// The delay after the `attempts`-th failed attempt (1-based):
    /// `initial * 2^(attempts-1)`, capped at `max_delay`.
    pub fn delay(&self, attempts: u32) -> SignedDuration {
        let exp = attempts.saturating_sub(1).min(30);
        let secs = self.initial.as_secs().max(1).saturating_mul(1i64 << exp);
        SignedDuration::from_secs(secs).min(self.max_delay.max(self.initial))
    }

    /// When to try again after `attempts` failed attempts, the last at
    /// `last_attempt`. Never `None`: see the type's documentation.
    pub fn next_attempt(&self, attempts: u32, last_attempt: Timestamp) -> Timestamp {
        last_attempt.saturating_add(self.delay(attempts)).unwrap_or(Timestamp::MAX)
    }

    /// True once a message failed `stuck_after` times: still retried, but
    /// someone must look at the mail server or webhook.
    pub fn is_stuck(&self, attempts: u32) -> bool {
        attempts >= self.stuck_after
    }
}

/// At most `max_per_window` messages per lane (one channel to one
/// recipient) in any sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_per_window: u32,
    pub window: SignedDuration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { max_per_window: 10, window: SignedDuration::from_secs(600) }
    }
}

/// What a lane may send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanePlan {
    /// How many due messages (oldest first) to send one by one.
    pub individually: usize,
    /// How many of the following due messages to send as one digest (0 or
    /// at least 2).
    pub in_digest: usize,
    /// When the rest (`due - individually - in_digest`) may be sent: the
    /// time a slot frees. `None` when nothing is held.
    pub held_until: Option<Timestamp>,
}

/// Plans a lane under `limit`: `recent_sends` are the times of the lane's
/// sends (a digest is one send) inside the window ending `now`, `due` how
/// many messages wait. Due messages within the free slots go one by one;
/// when more are due than slots remain, the last free slot carries all the
/// rest as a digest; with no free slot everything is held (deferred, never
/// dropped) until the oldest recent send leaves the window.
pub fn plan_lane(
    limit: &RateLimit,
    recent_sends: &[Timestamp],
    due: usize,
    now: Timestamp,
) -> LanePlan {
    let window_start = now.saturating_sub(limit.window).unwrap_or(Timestamp::MIN);
    let recent: Vec<Timestamp> =
        recent_sends.iter().copied().filter(|t| *t > window_start && *t <= now).collect();
    let max = limit.max_per_window.max(1) as usize;
    let free = max.saturating_sub(recent.len());
    if due == 0 {
        return LanePlan { individually: 0, in_digest: 0, held_until: None };
    }
    if free == 0 {
        let oldest = recent.iter().min().copied().unwrap_or(now);
        let until = oldest.saturating_add(limit.window).unwrap_or(Timestamp::MAX);
        // A send exactly at `oldest + window` is outside the window (it is
        // open at the start), so the slot is free then.
        return LanePlan { individually: 0, in_digest: 0, held_until: Some(until.max(now)) };
    }
    if due <= free {
        return LanePlan { individually: due, in_digest: 0, held_until: None };
    }
    LanePlan { individually: free - 1, in_digest: due - (free - 1), held_until: None }
}

#[cfg(test)]
mod tests;
