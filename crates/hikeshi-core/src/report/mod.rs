//! Incident reports: the runbook's report template filled from what was
//! recorded, rendered as Markdown, HTML or JSON, in English, Japanese or
//! both.
//!
//! The application assembles a [`ReportInput`] from the store (incident,
//! timeline, evidence, bans, alerts) and, for lessons learned, the login
//! attempts it parsed; [`build`] turns it into a language-neutral
//! [`Report`] (metrics computed from recorded timestamps, lessons from
//! recorded attempts), and [`markdown`], [`html`] and [`json`] render it.
//! Markdown and HTML share one layout (`layout`: sections, facts, wording)
//! and differ only in markup.
//!
//! Nothing is invented: a field nobody recorded is `None` and is shown as
//! missing (未記録). Everything attacker-chosen (user names, host names,
//! log lines, people's notes) is escaped by each renderer for its format.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::event::Severity;
use crate::harden;
use crate::incident::{Actor, State, SubjectKind, TimelineEntry, TimelineKind};
use crate::isms;

mod html;
mod layout;
mod lessons;
mod markdown;
mod text;

pub use html::html;
pub use lessons::{Lessons, ThresholdAdvice};
pub use markdown::{esc as markdown_escape, markdown};
pub use text::{escape_json_text, json, Lang};

/// The recorded facts about one incident, as the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentFacts {
    pub id: i64,
    pub state: State,
    pub severity: Severity,
    /// The rule that opened it, then every rule that fired.
    pub rule: String,
    pub rules: Vec<String>,
    pub subject_kind: SubjectKind,
    pub subject: String,
    /// The first and last attack line.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub opened_at: Timestamp,
    pub attempts: u64,
    pub hosts: Vec<String>,
    pub hosts_omitted: u64,
    pub users: Vec<String>,
    pub users_omitted: u64,
    /// Every evidence line ever attributed to it, kept or not.
    pub evidence_lines: u64,
    /// The chained SHA-256 over all of them, hex.
    pub evidence_digest: String,
}

/// One kept evidence line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceItem {
    pub seq: u64,
    pub file: String,
    pub offset: u64,
    pub sha256: String,
    /// The line (invalid UTF-8 replaced). Hostile.
    pub line: String,
}

/// One row of the bans table for this incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BanFact {
    pub address: String,
    pub backend: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub removed_at: Option<Timestamp>,
    pub removed_reason: Option<String>,
}

/// One alert about this incident, from the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertFact {
    pub channel: String,
    /// As it may be shown (a webhook reduced to scheme and host).
    pub recipient: String,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// One login attempt, for the threshold analysis of lessons learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginAttempt {
    pub at: Timestamp,
    pub source: String,
    pub user: Option<String>,
    pub success: bool,
}

/// Everything a report is made from. Assembled by the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportInput {
    /// When the report is produced (an argument: the core reads no clock).
    pub generated_at: Timestamp,
    pub incident: IncidentFacts,
    pub timeline: Vec<TimelineEntry>,
    pub evidence: Vec<EvidenceItem>,
    pub bans: Vec<BanFact>,
    pub alerts: Vec<AlertFact>,
    /// Login attempts (failures and successes) known around the incident:
    /// its evidence lines and any authentication logs given.
    pub logins: Vec<LoginAttempt>,
    /// The sources that belong to the attack (from its evidence).
    pub attack_sources: Vec<String>,
    /// Hardening findings, if an audit was run for the report.
    pub hardening: Vec<harden::Finding>,
}

/// Text the report generates itself, in both languages; renderers pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Text {
    pub en: String,
    pub ja: String,
}

impl Text {
    pub fn new(en: impl Into<String>, ja: impl Into<String>) -> Text {
        Text { en: en.into(), ja: ja.into() }
    }
}

/// A line of a report field: generated text, or a person's own words
/// (recorded as they wrote them, in whatever language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Line {
    Generated(Text),
    Recorded(RecordedText),
}

/// Words someone recorded, with who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedText {
    pub text: String,
    pub by: String,
    pub at: Timestamp,
}

/// The runbook's template fields. `None`: nobody recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateFields {
    pub date: Option<Line>,
    pub detected_by: Option<Vec<Line>>,
    pub summary: Option<Line>,
    pub actions_taken: Option<Vec<Line>>,
    pub root_cause: Option<Vec<Line>>,
    pub preventive_measures: Option<Vec<Line>>,
    /// Hardening findings not (yet) recorded as measures: suggestions.
    pub suggested_measures: Vec<Line>,
}

/// One row of the report's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    pub at: Timestamp,
    /// `hikeshi` or the person's name.
    pub actor: String,
    /// A timeline kind, or `ban`/`unban`/`alert` for rows from those tables.
    pub kind: String,
    pub detail: String,
    /// Where the row comes from: `timeline`, `bans` or `alert_outbox`.
    pub source: &'static str,
    pub controls: Vec<&'static str>,
}

/// One evidence row with the controls it supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRow {
    #[serde(flatten)]
    pub item: EvidenceItem,
    pub controls: &'static [&'static str],
}

/// A person and what they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRow {
    pub name: String,
    /// Roles from assignments, as recorded.
    pub roles: Vec<String>,
    /// Timeline kinds of their entries, with counts.
    pub actions: BTreeMap<String, u32>,
}

/// A duration metric; `None` when an end point was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// `time_to_detect`, `time_to_contain`, `time_to_recover`, `time_to_close`.
    pub name: &'static str,
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    pub seconds: Option<i64>,
}

/// A control and the report items that support it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlEvidence {
    pub number: &'static str,
    pub title: &'static str,
    pub timeline_rows: usize,
    pub evidence_rows: usize,
}

/// A report, language-neutral. Render it with [`markdown`], [`html`] or
/// [`json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub incident_id: i64,
    pub generated_at: Timestamp,
    pub state: State,
    pub severity: Severity,
    pub nist_phase: &'static str,
    pub subject: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub opened_at: Timestamp,
    pub attempts: u64,
    pub users: Vec<String>,
    pub users_omitted: u64,
    pub hosts: Vec<String>,
    pub fields: TemplateFields,
    pub timeline: Vec<TimelineRow>,
    pub evidence: Vec<EvidenceRow>,
    pub evidence_lines_total: u64,
    pub evidence_digest: String,
    pub people: Vec<PersonRow>,
    pub lessons: Lessons,
    pub metrics: Vec<Metric>,
    pub controls: Vec<ControlEvidence>,
    /// Names of the template fields nobody recorded.
    pub missing: Vec<&'static str>,
}

/// The state a `state_changed` entry moved to. The store writes
/// `FROM → TO (phase)`; the first state name after the arrow is taken.
pub fn state_changed_to(detail: &str) -> Option<State> {
    let after = detail.split_once('→').map(|(_, rest)| rest).unwrap_or(detail);
    after
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
}

/// Parses an `assigned` entry's detail into (person, role). The lifecycle
/// commands write `ROLE: PERSON` (`Incident Manager: alice`); `PERSON as
/// ROLE` and `PERSON (ROLE)` are read too; otherwise the whole detail is
/// the person and the role is not recorded.
pub fn parse_assignment(detail: &str) -> (String, Option<String>) {
    let detail = detail.trim();
    if let Some((role, who)) = detail.split_once(": ") {
        return (who.trim().to_string(), Some(role.trim().to_string()));
    }
    if let Some((who, role)) = detail.split_once(" as ") {
        return (who.trim().to_string(), Some(role.trim().to_string()));
    }
    if let Some(open) = detail.find(" (") {
        if let Some(role) = detail[open + 2..].strip_suffix(')') {
            return (detail[..open].trim().to_string(), Some(role.trim().to_string()));
        }
    }
    (detail.to_string(), None)
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Automatic => "hikeshi".to_string(),
        Actor::Person(name) => name.clone(),
    }
}

fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Builds the report. Pure: same input, same report.
pub fn build(input: &ReportInput) -> Report {
    let inc = &input.incident;
    let timeline = timeline_rows(input);
    let fields = template_fields(input);
    let metrics = metrics(input);
    let people = people(input);
    let lessons = lessons::analyse(input);
    let evidence: Vec<EvidenceRow> = input
        .evidence
        .iter()
        .map(|item| EvidenceRow {
            item: item.clone(),
            controls: isms::controls_for_evidence(&item.file),
        })
        .collect();
    let controls = isms::CATALOGUE
        .iter()
        .map(|c| ControlEvidence {
            number: c.number,
            title: c.title,
            timeline_rows: timeline.iter().filter(|r| r.controls.contains(&c.number)).count(),
            evidence_rows: evidence.iter().filter(|r| r.controls.contains(&c.number)).count(),
        })
        .collect();
    let mut missing = Vec::new();
    for (name, absent) in [
        ("date", fields.date.is_none()),
        ("detected_by", fields.detected_by.is_none()),
        ("summary", fields.summary.is_none()),
        ("actions_taken", fields.actions_taken.is_none()),
        ("root_cause", fields.root_cause.is_none()),
        ("preventive_measures", fields.preventive_measures.is_none()),
        ("people", people.is_empty()),
    ] {
        if absent {
            missing.push(name);
        }
    }
    for m in &metrics {
        if m.seconds.is_none() {
            missing.push(m.name);
        }
    }
    Report {
        incident_id: inc.id,
        generated_at: input.generated_at,
        state: inc.state,
        severity: inc.severity,
        nist_phase: inc.state.nist_phase(),
        subject: format!("{} {}", inc.subject_kind, inc.subject),
        first_seen: inc.first_seen,
        last_seen: inc.last_seen,
        opened_at: inc.opened_at,
        attempts: inc.attempts,
        users: inc.users.clone(),
        users_omitted: inc.users_omitted,
        hosts: inc.hosts.clone(),
        fields,
        timeline,
        evidence,
        evidence_lines_total: inc.evidence_lines,
        evidence_digest: inc.evidence_digest.clone(),
        people,
        lessons,
        metrics,
        controls,
        missing,
    }
}

fn timeline_rows(input: &ReportInput) -> Vec<TimelineRow> {
    let mut rows: Vec<TimelineRow> = input
        .timeline
        .iter()
        .map(|e| TimelineRow {
            at: e.at,
            actor: actor_name(&e.actor),
            kind: e.kind.as_str().to_string(),
            detail: e.detail.clone(),
            source: "timeline",
            controls: isms::controls_for_timeline(e.kind).to_vec(),
        })
        .collect();
    let has = |kinds: &[TimelineKind]| input.timeline.iter().any(|e| kinds.contains(&e.kind));
    // Bans and alerts are their own tables; they join the timeline unless
    // it already records them, so nothing is listed twice.
    if !has(&[TimelineKind::Banned, TimelineKind::BanFailed, TimelineKind::Unbanned]) {
        for ban in &input.bans {
            rows.push(TimelineRow {
                at: ban.created_at,
                actor: "hikeshi".into(),
                kind: "ban".into(),
                detail: format!("{} banned via {} ({})", ban.address, ban.backend, ban.reason),
                source: "bans",
                controls: isms::controls_for_timeline(TimelineKind::Banned).to_vec(),
            });
            if let Some(removed) = ban.removed_at {
                rows.push(TimelineRow {
                    at: removed,
                    actor: "hikeshi".into(),
                    kind: "unban".into(),
                    detail: format!(
                        "{} unbanned ({})",
                        ban.address,
                        ban.removed_reason.as_deref().unwrap_or("no reason recorded")
                    ),
                    source: "bans",
                    controls: isms::controls_for_timeline(TimelineKind::Unbanned).to_vec(),
                });
            }
        }
    }
    if !has(&[TimelineKind::AlertSent, TimelineKind::AlertFailed]) {
        for alert in &input.alerts {
            let (at, detail) = match alert.delivered_at {
                Some(at) => {
                    (at, format!("alert delivered by {} to {}", alert.channel, alert.recipient))
                }
                None => (
                    alert.created_at,
                    format!(
                        "alert by {} to {} not delivered after {} attempt(s){}",
                        alert.channel,
                        alert.recipient,
                        alert.attempts,
                        alert.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                ),
            };
            rows.push(TimelineRow {
                at,
                actor: "hikeshi".into(),
                kind: "alert".into(),
                detail,
                source: "alert_outbox",
                controls: isms::controls_for_timeline(TimelineKind::AlertSent).to_vec(),
            });
        }
    }
    // Stable: entries at the same instant keep their recorded order.
    rows.sort_by_key(|r| r.at);
    rows
}

fn recorded(input: &ReportInput, kind: TimelineKind) -> Option<Vec<Line>> {
    let lines: Vec<Line> = input
        .timeline
        .iter()
        .filter(|e| e.kind == kind && !e.detail.trim().is_empty())
        .map(|e| {
            Line::Recorded(RecordedText {
                text: e.detail.clone(),
                by: actor_name(&e.actor),
                at: e.at,
            })
        })
        .collect();
    (!lines.is_empty()).then_some(lines)
}

fn template_fields(input: &ReportInput) -> TemplateFields {
    let inc = &input.incident;
    let date = Some(Line::Generated(Text::new(
        format!(
            "{} (first attempt; opened {})",
            inc.first_seen.strftime("%Y-%m-%d"),
            fmt_time(inc.opened_at)
        ),
        format!(
            "{}（初回試行。起票 {}）",
            inc.first_seen.strftime("%Y/%m/%d"),
            fmt_time(inc.opened_at)
        ),
    )));

    let mut detected_by = Vec::new();
    let files: BTreeSet<&str> = input
        .evidence
        .iter()
        .filter(|e| isms::EvidenceOrigin::of_file(&e.file) == isms::EvidenceOrigin::LogLine)
        .map(|e| e.file.as_str())
        .collect();
    let files = if files.is_empty() {
        "logs (no kept line names its file)".to_string()
    } else {
        files.into_iter().collect::<Vec<_>>().join(", ")
    };
    detected_by.push(Line::Generated(Text::new(
        format!("hikeshi detection rule {} on {files}", inc.rule),
        format!("hikeshi 検知ルール {}（{files}）", inc.rule),
    )));
    for alert in &input.alerts {
        detected_by.push(Line::Generated(match alert.delivered_at {
            Some(at) => Text::new(
                format!(
                    "alert by {} to {} delivered {}",
                    alert.channel,
                    alert.recipient,
                    fmt_time(at)
                ),
                format!(
                    "{} で {} へアラート送信済み（{}）",
                    alert.channel,
                    alert.recipient,
                    fmt_time(at)
                ),
            ),
            None => Text::new(
                format!(
                    "alert by {} to {} NOT delivered ({} attempt(s))",
                    alert.channel, alert.recipient, alert.attempts
                ),
                format!(
                    "{} で {} へのアラート未達（{} 回試行）",
                    alert.channel, alert.recipient, alert.attempts
                ),
            ),
        }));
    }
    if input.alerts.is_empty() {
        detected_by.push(Line::Generated(Text::new(
            "no alert about this incident is recorded",
            "このインシデントのアラート送信記録はありません",
        )));
    }

    let users = if inc.users.is_empty() {
        Text::new("no user name recorded", "ユーザー名の記録なし")
    } else {
        let mut shown: Vec<&str> = inc.users.iter().take(10).map(String::as_str).collect();
        let more = inc.users.len().saturating_sub(10) as u64 + inc.users_omitted;
        let list = shown.join(", ");
        shown.clear();
        if more > 0 {
            Text::new(
                format!(
                    "{} account name(s) tried: {list} and {more} more",
                    inc.users.len() as u64 + inc.users_omitted
                ),
                format!(
                    "試行されたアカウント名 {} 件: {list} ほか {more} 件",
                    inc.users.len() as u64 + inc.users_omitted
                ),
            )
        } else {
            Text::new(
                format!("{} account name(s) tried: {list}", inc.users.len()),
                format!("試行されたアカウント名 {} 件: {list}", inc.users.len()),
            )
        }
    };
    let hosts = if inc.hosts.is_empty() {
        Text::new("a host not recorded", "（ホスト未記録）")
    } else {
        Text::new(inc.hosts.join(", "), inc.hosts.join(", "))
    };
    let summary = Some(Line::Generated(Text::new(
        format!(
            "Unauthorized SSH login attempts: {} failed attempt(s) from {} {} against {}, {} to \
             {}; {}. Severity {}, state {}.",
            inc.attempts,
            inc.subject_kind,
            inc.subject,
            hosts.en,
            fmt_time(inc.first_seen),
            fmt_time(inc.last_seen),
            users.en,
            inc.severity,
            inc.state
        ),
        format!(
            "SSH 不正ログイン試行: {} {} から {} へ {} 回の失敗ログイン（{} 〜 {}）。{}。\
             深刻度 {}、状態 {}。",
            inc.subject_kind,
            inc.subject,
            hosts.ja,
            inc.attempts,
            fmt_time(inc.first_seen),
            fmt_time(inc.last_seen),
            users.ja,
            inc.severity,
            inc.state
        ),
    )));

    let mut actions = Vec::new();
    for ban in &input.bans {
        let until = match (ban.removed_at, ban.expires_at) {
            (Some(r), _) => {
                Text::new(format!("lifted {}", fmt_time(r)), format!("{} に解除", fmt_time(r)))
            }
            (None, Some(e)) => {
                Text::new(format!("expires {}", fmt_time(e)), format!("{} に期限切れ", fmt_time(e)))
            }
            (None, None) => Text::new("permanent", "無期限"),
        };
        actions.push(Line::Generated(Text::new(
            format!(
                "IP block: {} via {} at {} ({})",
                ban.address,
                ban.backend,
                fmt_time(ban.created_at),
                until.en
            ),
            format!(
                "IP ブロック: {}（{}、{}、{}）",
                ban.address,
                ban.backend,
                fmt_time(ban.created_at),
                until.ja
            ),
        )));
    }
    for e in &input.timeline {
        match e.kind {
            TimelineKind::BanFailed => actions.push(Line::Generated(Text::new(
                format!("ban FAILED at {}: {}", fmt_time(e.at), e.detail),
                format!("遮断失敗（{}）: {}", fmt_time(e.at), e.detail),
            ))),
            TimelineKind::StateChanged => {
                if let Some(to) = state_changed_to(&e.detail) {
                    actions.push(Line::Generated(Text::new(
                        format!(
                            "state set to {to} by {} at {}",
                            actor_name(&e.actor),
                            fmt_time(e.at)
                        ),
                        format!(
                            "状態を {to} に変更（{}、{}）",
                            actor_name(&e.actor),
                            fmt_time(e.at)
                        ),
                    )));
                }
            }
            TimelineKind::RecoveryCheck => actions.push(Line::Generated(Text::new(
                format!("recovery check at {}: {}", fmt_time(e.at), e.detail),
                format!("復旧確認（{}）: {}", fmt_time(e.at), e.detail),
            ))),
            TimelineKind::EvidenceAdded => actions.push(Line::Generated(Text::new(
                format!(
                    "evidence attached by {} at {}: {}",
                    actor_name(&e.actor),
                    fmt_time(e.at),
                    e.detail
                ),
                format!("証拠を添付（{}、{}）: {}", actor_name(&e.actor), fmt_time(e.at), e.detail),
            ))),
            _ => {}
        }
    }

    let preventive = recorded(input, TimelineKind::PreventiveMeasure);
    let recorded_texts: Vec<String> = preventive
        .iter()
        .flatten()
        .filter_map(|l| match l {
            Line::Recorded(r) => Some(r.text.to_ascii_lowercase()),
            Line::Generated(_) => None,
        })
        .collect();
    let suggested_measures = input
        .hardening
        .iter()
        .filter(|f| !recorded_texts.iter().any(|t| t.contains(f.setting)))
        .map(|f| {
            Line::Generated(Text::new(
                format!("[{}] {} {}", f.severity, f.finding_en, f.recommendation_en),
                format!("[{}] {} {}", f.severity, f.finding_ja, f.recommendation_ja),
            ))
        })
        .collect();

    TemplateFields {
        date,
        detected_by: Some(detected_by),
        summary,
        actions_taken: (!actions.is_empty()).then_some(actions),
        root_cause: recorded(input, TimelineKind::RootCause),
        preventive_measures: preventive,
        suggested_measures,
    }
}

fn first_state_at(input: &ReportInput, state: State) -> Option<Timestamp> {
    input
        .timeline
        .iter()
        .filter(|e| {
            e.kind == TimelineKind::StateChanged && state_changed_to(&e.detail) == Some(state)
        })
        .map(|e| e.at)
        .min()
}

fn metrics(input: &ReportInput) -> Vec<Metric> {
    let inc = &input.incident;
    let first_ban = input.bans.iter().map(|b| b.created_at).min();
    let contained =
        [first_ban, first_state_at(input, State::Contained)].into_iter().flatten().min();
    let metric = |name: &'static str, from: Timestamp, to: Option<Timestamp>| Metric {
        name,
        from,
        to,
        seconds: to.map(|to| (to - from).as_secs()),
    };
    vec![
        metric("time_to_detect", inc.first_seen, Some(inc.opened_at)),
        metric("time_to_contain", inc.opened_at, contained),
        metric("time_to_recover", inc.opened_at, first_state_at(input, State::Recovered)),
        metric("time_to_close", inc.opened_at, first_state_at(input, State::Closed)),
    ]
}

/// `1h 02m 03s`, `45s`, `2d 03h 00m`; negative durations keep their sign.
pub fn fmt_duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let d = SignedDuration::from_secs(seconds.saturating_abs());
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{sign}{days}d {hours:02}h {mins:02}m")
    } else if hours > 0 {
        format!("{sign}{hours}h {mins:02}m {secs:02}s")
    } else if mins > 0 {
        format!("{sign}{mins}m {secs:02}s")
    } else {
        format!("{sign}{secs}s")
    }
}

fn people(input: &ReportInput) -> Vec<PersonRow> {
    fn person<'m>(map: &'m mut BTreeMap<String, PersonRow>, name: &str) -> &'m mut PersonRow {
        map.entry(name.to_string()).or_insert_with(|| PersonRow {
            name: name.to_string(),
            roles: Vec::new(),
            actions: BTreeMap::new(),
        })
    }
    let mut by_name: BTreeMap<String, PersonRow> = BTreeMap::new();
    for e in &input.timeline {
        if e.kind == TimelineKind::Assigned {
            let (who, role) = parse_assignment(&e.detail);
            if !who.is_empty() {
                let row = person(&mut by_name, &who);
                if let Some(role) = role.filter(|r| !row.roles.contains(r)) {
                    row.roles.push(role);
                }
            }
        }
        if let Actor::Person(name) = &e.actor {
            *person(&mut by_name, name).actions.entry(e.kind.as_str().to_string()).or_default() +=
                1;
        }
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests;
