//! The incident lifecycle as the runbook runs it: which NIST SP 800-61
//! phase (Rev. 2) and CSF 2.0 function (Rev. 3) each [`State`] belongs
//! to, the built-in playbook (the runbook's steps, each owned by a
//! [`Role`]), and [`checklist`]: given what the store knows about an
//! incident, which steps are done (with the record that proves it) and
//! which are left.
//!
//! The playbook is derived from the users' runbook
//! (`03_incident_response.md`): its team structure gives the roles, its
//! phases and commands give the steps. A step is proven only by a record
//! hikeshi keeps: a ban, an evidence attachment named after the command
//! that produced it, or a timeline entry.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::incident::{State, TimelineEntry, TimelineKind};

/// A function of the NIST Cybersecurity Framework 2.0, which NIST SP
/// 800-61 Rev. 3 organises incident response around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CsfFunction {
    Govern,
    Identify,
    Protect,
    Detect,
    Respond,
    Recover,
}

impl CsfFunction {
    pub fn as_str(self) -> &'static str {
        match self {
            CsfFunction::Govern => "Govern",
            CsfFunction::Identify => "Identify",
            CsfFunction::Protect => "Protect",
            CsfFunction::Detect => "Detect",
            CsfFunction::Respond => "Respond",
            CsfFunction::Recover => "Recover",
        }
    }
}

impl fmt::Display for CsfFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase of NIST SP 800-61 Rev. 2 (the runbook's lifecycle table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Phase {
    Preparation,
    DetectionAndAnalysis,
    ContainmentEradicationRecovery,
    PostIncident,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Preparation,
        Phase::DetectionAndAnalysis,
        Phase::ContainmentEradicationRecovery,
        Phase::PostIncident,
    ];

    /// The Rev. 2 name (the same text as [`State::nist_phase`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparation => "Preparation",
            Phase::DetectionAndAnalysis => "Detection and Analysis",
            Phase::ContainmentEradicationRecovery => "Containment, Eradication, and Recovery",
            Phase::PostIncident => "Post-Incident Activity",
        }
    }

    /// The CSF 2.0 functions Rev. 3 maps this phase to. Preparation is
    /// Govern, Identify and Protect; lessons learned feed Identify
    /// (Improvement, ID.IM).
    pub fn csf_functions(self) -> &'static [CsfFunction] {
        match self {
            Phase::Preparation => {
                &[CsfFunction::Govern, CsfFunction::Identify, CsfFunction::Protect]
            }
            Phase::DetectionAndAnalysis => &[CsfFunction::Detect, CsfFunction::Respond],
            Phase::ContainmentEradicationRecovery => &[CsfFunction::Respond, CsfFunction::Recover],
            Phase::PostIncident => &[CsfFunction::Identify],
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Rev. 2 phase of a state.
pub fn phase_of(state: State) -> Phase {
    match state {
        State::Detected | State::Analysing => Phase::DetectionAndAnalysis,
        State::Contained | State::Eradicated | State::Recovered => {
            Phase::ContainmentEradicationRecovery
        }
        State::Closed => Phase::PostIncident,
    }
}

/// The CSF 2.0 function (NIST SP 800-61 Rev. 3) a state belongs to, with
/// the CSF category that says why.
pub fn csf_function(state: State) -> (CsfFunction, &'static str) {
    match state {
        // DE.CM continuous monitoring, DE.AE adverse event analysis.
        State::Detected => (CsfFunction::Detect, "DE.AE Adverse Event Analysis"),
        // RS.MA incident management, RS.AN incident analysis.
        State::Analysing => (CsfFunction::Respond, "RS.AN Incident Analysis"),
        State::Contained => (CsfFunction::Respond, "RS.MI Incident Mitigation"),
        State::Eradicated => (CsfFunction::Respond, "RS.MI Incident Mitigation"),
        State::Recovered => (CsfFunction::Recover, "RC.RP Incident Recovery Plan Execution"),
        // Lessons learned improve the organisation's processes.
        State::Closed => (CsfFunction::Identify, "ID.IM Improvement"),
    }
}

/// The runbook's team roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Role {
    /// Overall command, decisions, outside coordination (全体統括、意思決定、外部調整).
    IncidentManager,
    /// Log analysis, root cause, technical investigation (ログ分析、原因特定、技術調査).
    SecurityAnalyst,
    /// Isolation, fixes, recovery (隔離、修正、復旧操作).
    SystemAdministrator,
    /// Reporting and contact with other departments and outsiders (報告連絡、関係部署/外部対応).
    CommunicationLead,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::IncidentManager,
        Role::SecurityAnalyst,
        Role::SystemAdministrator,
        Role::CommunicationLead,
    ];

    /// The runbook's name, used in `assigned` timeline entries.
    pub fn title(self) -> &'static str {
        match self {
            Role::IncidentManager => "Incident Manager",
            Role::SecurityAnalyst => "Security Analyst",
            Role::SystemAdministrator => "System Administrator",
            Role::CommunicationLead => "Communication Lead",
        }
    }

    /// The command-line name: `incident-manager`, ...
    pub fn slug(self) -> &'static str {
        match self {
            Role::IncidentManager => "incident-manager",
            Role::SecurityAnalyst => "security-analyst",
            Role::SystemAdministrator => "system-administrator",
            Role::CommunicationLead => "communication-lead",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

impl FromStr for Role {
    type Err = String;
    /// Accepts the title or the slug, in any case, with spaces, hyphens or
    /// underscores (`"Incident Manager"`, `incident-manager`, `INCIDENT_MANAGER`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| if c == ' ' || c == '_' { '-' } else { c.to_ascii_lowercase() })
            .collect();
        Role::ALL.into_iter().find(|r| r.slug() == norm).ok_or_else(|| {
            format!(
                "unknown role {s:?}: expected incident-manager, security-analyst, \
                 system-administrator or communication-lead"
            )
        })
    }
}

/// The detail of an `assigned` timeline entry: `<Role title>: <person>`.
pub fn assigned_detail(role: Role, person: &str) -> String {
    format!("{}: {person}", role.title())
}

/// Reads an `assigned` detail back: the role and the person.
pub fn parse_assigned_detail(detail: &str) -> Option<(Role, &str)> {
    let (title, person) = detail.split_once(": ")?;
    let role = Role::ALL.into_iter().find(|r| r.title() == title)?;
    Some((role, person))
}

/// What record proves a step done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Satisfier {
    /// A ban of the incident's source (`bans.incident_id`), or a `banned`
    /// timeline entry.
    Ban,
    /// An evidence attachment whose `file` (the producing command line)
    /// starts with this command, e.g. `hikeshi accounts`.
    EvidenceFrom(&'static str),
    /// A timeline entry of this kind.
    Timeline(TimelineKind),
    /// An `assigned` entry for this role.
    Assigned(Role),
    /// The incident reached this state (or a later one) through a
    /// `state_changed` entry.
    Reached(State),
}

/// One step of the playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable identifier (`contain.block`), for JSON and reports.
    pub id: &'static str,
    pub phase: Phase,
    /// The state the incident is in while the step is done, or moves to
    /// once it is.
    pub state: State,
    pub role: Role,
    /// What to do, in the runbook's words.
    pub title: &'static str,
    /// The hikeshi command that does it (or records it).
    pub command: &'static str,
    /// Any of these proves it done.
    pub satisfied_by: &'static [Satisfier],
}

/// The runbook as a playbook, in order. Preparation (team, contacts,
/// tools: Govern/Identify/Protect) happens before any incident and is not
/// part of a per-incident checklist; `hikeshi isms` covers it.
pub const PLAYBOOK: &[Step] = &[
    Step {
        id: "detect.alert",
        phase: Phase::DetectionAndAnalysis,
        state: State::Detected,
        role: Role::CommunicationLead,
        title: "Alert the security team",
        command: "automatic (alerts configured in hikeshi.toml)",
        satisfied_by: &[Satisfier::Timeline(TimelineKind::AlertSent)],
    },
    Step {
        id: "analysis.assign",
        phase: Phase::DetectionAndAnalysis,
        state: State::Detected,
        role: Role::IncidentManager,
        title: "Take charge: assign an Incident Manager",
        command: "hikeshi incident assign N incident-manager NAME",
        satisfied_by: &[Satisfier::Assigned(Role::IncidentManager)],
    },
    Step {
        id: "analysis.scope",
        phase: Phase::DetectionAndAnalysis,
        state: State::Analysing,
        role: Role::SecurityAnalyst,
        title: "Validate the alert and determine scope and severity",
        command: "hikeshi incident show N; hikeshi incident advance N --to analysing",
        satisfied_by: &[
            Satisfier::Reached(State::Analysing),
            Satisfier::Timeline(TimelineKind::Note),
        ],
    },
    Step {
        id: "contain.block",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Contained,
        role: Role::SystemAdministrator,
        title: "Block the attacking source in the firewall",
        command: "hikeshi ban ADDR --incident N (or automatic bans)",
        satisfied_by: &[Satisfier::Ban, Satisfier::Reached(State::Contained)],
    },
    Step {
        id: "eradicate.accounts",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Eradicated,
        role: Role::SecurityAnalyst,
        title: "Check for malicious accounts",
        command: "hikeshi accounts --incident N",
        satisfied_by: &[Satisfier::EvidenceFrom("hikeshi accounts")],
    },
    Step {
        id: "eradicate.files",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Eradicated,
        role: Role::SecurityAnalyst,
        title: "Check recently modified files",
        command: "hikeshi recent --incident N",
        satisfied_by: &[Satisfier::EvidenceFrom("hikeshi recent")],
    },
    Step {
        id: "eradicate.persistence",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Eradicated,
        role: Role::SecurityAnalyst,
        title: "Look for persistence (keys, cron, units, setuid files)",
        command: "hikeshi persistence --incident N",
        satisfied_by: &[Satisfier::EvidenceFrom("hikeshi persistence")],
    },
    Step {
        id: "recover.integrity",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Recovered,
        role: Role::SystemAdministrator,
        title: "Verify no tampering (checksums, AIDE)",
        command: "hikeshi fim check --incident N",
        satisfied_by: &[Satisfier::EvidenceFrom("hikeshi fim")],
    },
    Step {
        id: "recover.validate",
        phase: Phase::ContainmentEradicationRecovery,
        state: State::Recovered,
        role: Role::SystemAdministrator,
        title: "Validate system operations and resume monitoring",
        command: "hikeshi verify --incident N",
        satisfied_by: &[
            Satisfier::EvidenceFrom("hikeshi verify"),
            Satisfier::Reached(State::Recovered),
        ],
    },
    Step {
        id: "post.root_cause",
        phase: Phase::PostIncident,
        state: State::Closed,
        role: Role::IncidentManager,
        title: "Record the root cause",
        command: "hikeshi incident close N --root-cause TEXT --preventive TEXT",
        satisfied_by: &[Satisfier::Timeline(TimelineKind::RootCause)],
    },
    Step {
        id: "post.preventive",
        phase: Phase::PostIncident,
        state: State::Closed,
        role: Role::IncidentManager,
        title: "Record preventive measures",
        command: "hikeshi incident close N --root-cause TEXT --preventive TEXT",
        satisfied_by: &[Satisfier::Timeline(TimelineKind::PreventiveMeasure)],
    },
    Step {
        id: "post.report",
        phase: Phase::PostIncident,
        state: State::Closed,
        role: Role::CommunicationLead,
        title: "Report and share lessons learned",
        command: "hikeshi report N",
        satisfied_by: &[Satisfier::EvidenceFrom("hikeshi report")],
    },
];

/// A ban the store knows for an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanFact {
    pub id: i64,
    pub address: String,
    pub created_at: Timestamp,
}

/// An evidence attachment: what produced it (its `file`) and its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFact {
    pub seq: u64,
    pub file: String,
}

/// Everything [`checklist`] looks at.
#[derive(Debug, Clone, Default)]
pub struct IncidentFacts {
    pub state: State,
    /// Timeline rows with their ids, oldest first.
    pub timeline: Vec<(i64, TimelineEntry)>,
    pub evidence: Vec<EvidenceFact>,
    pub bans: Vec<BanFact>,
}

/// The record that proves a step done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    /// `ban`, `evidence` or `timeline`.
    pub source: &'static str,
    /// The ban id, evidence seq or timeline id.
    pub reference: i64,
    /// When, if the record says.
    pub at: Option<Timestamp>,
    /// The record in words (may quote stored text: escape before printing).
    pub summary: String,
}

/// One line of a checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    pub step: &'static Step,
    /// The proof if done; `None` if left.
    pub done: Option<Proof>,
}

/// Whether `file` was produced by `command`: the file is the command
/// line, so it must start with the command followed by the end, a space
/// or a colon (`hikeshi fim` matches `hikeshi fim check --root /` but not
/// `hikeshi fimx`). Leading spaces are tolerated.
pub fn produced_by(file: &str, command: &str) -> bool {
    file.trim_start()
        .strip_prefix(command)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':']))
}

/// The playbook for one incident: every step, done (with proof) or left.
pub fn checklist(facts: &IncidentFacts) -> Vec<ChecklistItem> {
    PLAYBOOK.iter().map(|step| ChecklistItem { step, done: prove(step, facts) }).collect()
}

fn prove(step: &Step, facts: &IncidentFacts) -> Option<Proof> {
    step.satisfied_by.iter().find_map(|s| prove_one(*s, facts))
}

fn timeline_proof(id: i64, e: &TimelineEntry) -> Proof {
    Proof {
        source: "timeline",
        reference: id,
        at: Some(e.at),
        summary: format!("{} by {}: {}", e.kind, e.actor, e.detail),
    }
}

fn prove_one(s: Satisfier, facts: &IncidentFacts) -> Option<Proof> {
    match s {
        Satisfier::Ban => facts
            .bans
            .first()
            .map(|b| Proof {
                source: "ban",
                reference: b.id,
                at: Some(b.created_at),
                summary: format!("ban {} of {}", b.id, b.address),
            })
            .or_else(|| {
                facts
                    .timeline
                    .iter()
                    .find(|(_, e)| e.kind == TimelineKind::Banned)
                    .map(|(id, e)| timeline_proof(*id, e))
            }),
        Satisfier::EvidenceFrom(command) => {
            facts.evidence.iter().find(|ev| produced_by(&ev.file, command)).map(|ev| Proof {
                source: "evidence",
                reference: i64::try_from(ev.seq).unwrap_or(i64::MAX),
                at: None,
                summary: format!("evidence {} from `{}`", ev.seq, ev.file),
            })
        }
        Satisfier::Timeline(kind) => facts
            .timeline
            .iter()
            .find(|(_, e)| e.kind == kind)
            .map(|(id, e)| timeline_proof(*id, e)),
        Satisfier::Assigned(role) => facts
            .timeline
            .iter()
            .find(|(_, e)| {
                e.kind == TimelineKind::Assigned
                    && parse_assigned_detail(&e.detail).is_some_and(|(r, _)| r == role)
            })
            .map(|(id, e)| timeline_proof(*id, e)),
        Satisfier::Reached(state) => facts
            .timeline
            .iter()
            .find(|(_, e)| {
                e.kind == TimelineKind::StateChanged
                    && state_changed_to(&e.detail).is_some_and(|to| to >= state)
            })
            .map(|(id, e)| timeline_proof(*id, e)),
    }
}

/// The detail of a `state_changed` entry: `<from> → <to> (<NIST phase>)`.
pub fn state_changed_detail(from: State, to: State) -> String {
    format!("{from} → {to} ({})", to.nist_phase())
}

/// The state a `state_changed` detail moved to.
pub fn state_changed_to(detail: &str) -> Option<State> {
    let (_, rest) = detail.split_once(" → ")?;
    let to = rest.split(' ').next()?;
    to.parse().ok()
}

/// Whether an automatic transition (a ban → contained, a passing verify
/// → recovered) should move an incident now in `from` to `to`: only
/// forwards, and never a closed incident. A person's moves are checked by
/// [`State::check_transition`] alone.
pub fn auto_advances(from: State, to: State) -> bool {
    from.is_open() && to > from
}

/// The longest name a person may give (`--by`, `assign`).
pub const MAX_PERSON_NAME: usize = 128;
/// The longest free text (a note, a root cause, a preventive measure).
pub const MAX_TEXT: usize = 16 * 1024;

/// Checks a person's name as given on the command line: trimmed, not
/// empty, at most [`MAX_PERSON_NAME`] characters, and no control or
/// invisible formatting characters (it is printed in reports and
/// terminals).
pub fn check_person_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.chars().count() > MAX_PERSON_NAME {
        return Err(format!("the name is longer than {MAX_PERSON_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || is_invisible(*c)) {
        return Err(format!(
            "the name contains the character U+{:04X}, which is not allowed",
            c as u32
        ));
    }
    Ok(name)
}

/// Checks free text (note, root cause, preventive measure): trimmed, not
/// empty, at most [`MAX_TEXT`] bytes, no NUL. Line breaks and tabs are
/// allowed (output escapes them); other control characters are refused.
pub fn check_text<'a>(what: &str, text: &'a str) -> Result<&'a str, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if text.len() > MAX_TEXT {
        return Err(format!("the {what} is longer than {MAX_TEXT} bytes"));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        return Err(format!("the {what} contains the control character U+{:04X}", c as u32));
    }
    Ok(text)
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Actor;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(kind: TimelineKind, detail: &str) -> TimelineEntry {
        TimelineEntry {
            at: at("2026-01-01T10:00:00Z"),
            actor: Actor::Person("alice".into()),
            kind,
            detail: detail.into(),
        }
    }

    fn done_ids(facts: &IncidentFacts) -> Vec<&'static str> {
        checklist(facts).into_iter().filter(|i| i.done.is_some()).map(|i| i.step.id).collect()
    }

    #[test]
    fn every_state_has_a_phase_and_a_function() {
        for s in State::ALL {
            assert_eq!(phase_of(s).as_str(), s.nist_phase());
        }
        assert_eq!(csf_function(State::Detected).0, CsfFunction::Detect);
        assert_eq!(csf_function(State::Contained).0, CsfFunction::Respond);
        assert_eq!(csf_function(State::Recovered).0, CsfFunction::Recover);
        assert_eq!(
            Phase::Preparation.csf_functions(),
            [CsfFunction::Govern, CsfFunction::Identify, CsfFunction::Protect]
        );
    }

    #[test]
    fn roles_parse_from_titles_and_slugs() {
        assert_eq!("Incident Manager".parse::<Role>().unwrap(), Role::IncidentManager);
        assert_eq!("security-analyst".parse::<Role>().unwrap(), Role::SecurityAnalyst);
        assert_eq!("SYSTEM_ADMINISTRATOR".parse::<Role>().unwrap(), Role::SystemAdministrator);
        assert!("janitor".parse::<Role>().unwrap_err().contains("communication-lead"));
        let d = assigned_detail(Role::CommunicationLead, "bob: the great");
        assert_eq!(parse_assigned_detail(&d), Some((Role::CommunicationLead, "bob: the great")));
    }

    #[test]
    fn a_fresh_incident_has_everything_left() {
        assert!(done_ids(&IncidentFacts::default()).is_empty());
        assert_eq!(checklist(&IncidentFacts::default()).len(), PLAYBOOK.len());
    }

    #[test]
    fn records_prove_their_steps() {
        let facts = IncidentFacts {
            state: State::Recovered,
            timeline: vec![
                (1, entry(TimelineKind::AlertSent, "mail to ir@example.com")),
                (2, entry(TimelineKind::Assigned, "Incident Manager: alice")),
                (3, entry(TimelineKind::Assigned, "Security Analyst: bob")),
            ],
            evidence: vec![
                EvidenceFact { seq: 0, file: "/var/log/auth.log".into() },
                EvidenceFact { seq: 5, file: "hikeshi accounts --root /".into() },
                EvidenceFact { seq: 6, file: "hikeshi fim check".into() },
                EvidenceFact { seq: 7, file: "hikeshi verifyx".into() },
            ],
            bans: vec![BanFact {
                id: 4,
                address: "203.0.113.7".into(),
                created_at: at("2026-01-01T10:01:00Z"),
            }],
        };
        assert_eq!(
            done_ids(&facts),
            [
                "detect.alert",
                "analysis.assign",
                "contain.block",
                "eradicate.accounts",
                "recover.integrity"
            ]
        );
        let items = checklist(&facts);
        let block = items.iter().find(|i| i.step.id == "contain.block").unwrap();
        assert_eq!(block.done.as_ref().unwrap().source, "ban");
        assert_eq!(block.done.as_ref().unwrap().reference, 4);
    }

    #[test]
    fn reaching_a_later_state_proves_earlier_state_steps() {
        let facts = IncidentFacts {
            timeline: vec![(
                9,
                entry(
                    TimelineKind::StateChanged,
                    &state_changed_detail(State::Detected, State::Contained),
                ),
            )],
            ..IncidentFacts::default()
        };
        assert_eq!(done_ids(&facts), ["analysis.scope", "contain.block"]);
        assert_eq!(
            state_changed_to("detected → closed (Post-Incident Activity)"),
            Some(State::Closed)
        );
        assert_eq!(state_changed_to("garbage"), None);
    }

    #[test]
    fn names_and_texts_are_checked() {
        assert_eq!(check_person_name("  alice "), Ok("alice"));
        assert!(check_person_name("").is_err());
        assert!(check_person_name("a\u{1b}[2J").unwrap_err().contains("U+001B"));
        assert!(check_person_name("bob\u{202e}").is_err());
        assert!(check_person_name(&"x".repeat(129)).is_err());
        assert_eq!(check_text("note", " two\nlines "), Ok("two\nlines"));
        assert!(check_text("root cause", "  ").unwrap_err().contains("root cause is empty"));
        assert!(check_text("note", "a\0b").is_err());
        assert!(check_text("note", &"x".repeat(MAX_TEXT + 1)).is_err());
    }

    #[test]
    fn automatic_moves_only_go_forwards() {
        assert!(auto_advances(State::Detected, State::Contained));
        assert!(!auto_advances(State::Recovered, State::Contained));
        assert!(!auto_advances(State::Contained, State::Contained));
        assert!(!auto_advances(State::Closed, State::Recovered));
    }

    #[test]
    fn producers_match_on_word_boundaries() {
        assert!(produced_by("hikeshi fim check --root /", "hikeshi fim"));
        assert!(produced_by("hikeshi verify", "hikeshi verify"));
        assert!(!produced_by("hikeshi verifyx", "hikeshi verify"));
        assert!(!produced_by("/tmp/hikeshi verify", "hikeshi verify"));
    }
}
