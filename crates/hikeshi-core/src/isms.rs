//! ISO/IEC 27001:2022 Annex A: the controls hikeshi produces evidence for,
//! with their exact titles, and the pure tagging that says which controls
//! each recorded action and piece of evidence supports.
//!
//! The users' runbook cites A.5.29, A.5.30, A.5.31, A.8.16 and A.8.23 for
//! reporting, response, lessons learned, log protection and vulnerability
//! management. In the 2022 standard those numbers mean something else
//! (business continuity, legal requirements, monitoring, web filtering),
//! so hikeshi tags with the controls that carry those meanings in 2022:
//! 6.8, 5.26, 5.27, 8.15 (with 5.28 for evidence) and 8.8. The correction
//! is data ([`RUNBOOK_CORRECTIONS`]) so that reports can show it.

use serde::Serialize;

use crate::incident::TimelineKind;

/// One Annex A control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Control {
    /// The number as the standard writes it (`5.26`), without `A.`.
    pub number: &'static str,
    /// The exact title in ISO/IEC 27001:2022 Annex A.
    pub title: &'static str,
    /// What hikeshi records as evidence for it.
    pub hikeshi_records: &'static str,
    /// The same in Japanese.
    pub hikeshi_records_ja: &'static str,
}

/// The controls hikeshi tags evidence with, in the standard's order.
pub const CATALOGUE: &[Control] = &[
    Control {
        number: "5.24",
        title: "Information security incident management planning and preparation",
        hikeshi_records: "who is responsible for each incident (assignments and roles), the \
                          response checklist, the configuration in force",
        hikeshi_records_ja: "各インシデントの担当者と役割、対応チェックリスト、適用中の設定",
    },
    Control {
        number: "5.25",
        title: "Assessment and decision on information security events",
        hikeshi_records: "the detection rule and severity that opened each incident, and every \
                          escalation",
        hikeshi_records_ja: "インシデントを起票した検知ルールと深刻度、およびその引き上げ",
    },
    Control {
        number: "5.26",
        title: "Response to information security incidents",
        hikeshi_records: "bans, lifecycle state changes, notes and the recovery checks, with who \
                          and when",
        hikeshi_records_ja: "遮断、状態遷移、メモ、復旧確認（実施者と日時つき）",
    },
    Control {
        number: "5.27",
        title: "Learning from information security incidents",
        hikeshi_records: "root cause, preventive measures, lessons learned and threshold \
                          suggestions in the report",
        hikeshi_records_ja: "根本原因、再発防止策、教訓としきい値の提案（報告書）",
    },
    Control {
        number: "5.28",
        title: "Collection of evidence",
        hikeshi_records: "raw log lines and attached findings with their SHA-256 digests and the \
                          incident's chained evidence digest",
        hikeshi_records_ja:
            "生ログ行と添付された所見、その SHA-256 とインシデントの連鎖ダイジェスト",
    },
    Control {
        number: "6.8",
        title: "Information security event reporting",
        hikeshi_records: "alerts sent (or failed) to the responders, with time and channel",
        hikeshi_records_ja: "対応者へのアラート送信（成功・失敗、日時と経路）",
    },
    Control {
        number: "8.5",
        title: "Secure authentication",
        hikeshi_records: "sshd authentication settings audited by `hikeshi harden ssh`, accounts \
                          attacked, account audits",
        hikeshi_records_ja:
            "`hikeshi harden ssh` による sshd 認証設定の監査、攻撃されたアカウント、アカウント監査",
    },
    Control {
        number: "8.8",
        title: "Management of technical vulnerabilities",
        hikeshi_records: "hardening findings and the preventive measures taken for them",
        hikeshi_records_ja: "堅牢化の所見とそれに対する再発防止策",
    },
    Control {
        number: "8.15",
        title: "Logging",
        hikeshi_records: "the authentication log lines kept as evidence, each with its file, \
                          offset and SHA-256",
        hikeshi_records_ja: "証拠として保全した認証ログ行（ファイル、オフセット、SHA-256）",
    },
    Control {
        number: "8.16",
        title: "Monitoring activities",
        hikeshi_records: "the detection of each incident from the monitored logs, and file \
                          integrity checks",
        hikeshi_records_ja: "監視対象ログからのインシデント検知、ファイル完全性検査",
    },
    Control {
        number: "8.20",
        title: "Networks security",
        hikeshi_records: "firewall bans of attacking sources and their removal",
        hikeshi_records_ja: "攻撃元のファイアウォール遮断とその解除",
    },
];

/// The catalogue entry of `number` (`5.26` or `A.5.26`).
pub fn control(number: &str) -> Option<&'static Control> {
    let number = number.strip_prefix("A.").unwrap_or(number);
    CATALOGUE.iter().find(|c| c.number == number)
}

/// A control number the runbook cites, what that number is in the 2022
/// standard, and the control hikeshi uses for what the runbook meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunbookCorrection {
    /// As the runbook writes it (`A.5.29`).
    pub runbook_cites: &'static str,
    /// What the runbook meant by it.
    pub runbook_meaning: &'static str,
    /// The exact 2022 title of the number the runbook cites.
    pub title_in_2022: &'static str,
    /// The 2022 controls that carry the runbook's meaning.
    pub correct_controls: &'static [&'static str],
}

/// The runbook's ISMS table, corrected for ISO/IEC 27001:2022.
pub const RUNBOOK_CORRECTIONS: &[RunbookCorrection] = &[
    RunbookCorrection {
        runbook_cites: "A.5.29",
        runbook_meaning: "incident reporting",
        title_in_2022: "Information security during disruption",
        correct_controls: &["6.8"],
    },
    RunbookCorrection {
        runbook_cites: "A.5.30",
        runbook_meaning: "executing the incident response process",
        title_in_2022: "ICT readiness for business continuity",
        correct_controls: &["5.26"],
    },
    RunbookCorrection {
        runbook_cites: "A.5.31",
        runbook_meaning: "sharing lessons learned and improvement",
        title_in_2022: "Legal, statutory, regulatory and contractual requirements",
        correct_controls: &["5.27"],
    },
    RunbookCorrection {
        runbook_cites: "A.8.16",
        runbook_meaning: "protecting audit logs against tampering",
        title_in_2022: "Monitoring activities",
        correct_controls: &["8.15", "5.28"],
    },
    RunbookCorrection {
        runbook_cites: "A.8.23",
        runbook_meaning: "vulnerability management",
        title_in_2022: "Web filtering",
        correct_controls: &["8.8"],
    },
];

/// The controls a timeline entry of `kind` is evidence for.
pub fn controls_for_timeline(kind: TimelineKind) -> &'static [&'static str] {
    match kind {
        TimelineKind::Detected => &["8.16", "5.25"],
        TimelineKind::Escalated => &["5.25"],
        TimelineKind::AlertSent | TimelineKind::AlertFailed => &["6.8"],
        TimelineKind::Banned | TimelineKind::BanFailed | TimelineKind::Unbanned => {
            &["5.26", "8.20"]
        }
        TimelineKind::StateChanged | TimelineKind::Note | TimelineKind::RecoveryCheck => &["5.26"],
        TimelineKind::EvidenceAdded => &["5.28"],
        TimelineKind::Assigned => &["5.24", "5.26"],
        TimelineKind::RootCause => &["5.27"],
        TimelineKind::PreventiveMeasure => &["5.27", "8.8"],
    }
}

/// What produced a piece of evidence, judged from its `file` (a log file,
/// `journal`, or the hikeshi command that attached it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceOrigin {
    /// A log line (a file path, the journal, a syslog receiver).
    LogLine,
    /// An account audit (`hikeshi accounts`).
    Accounts,
    /// A persistence or recently-changed-files audit.
    Persistence,
    /// A file integrity check (`hikeshi fim`).
    FileIntegrity,
    /// A recovery check (`hikeshi verify`).
    Verify,
    /// A hardening audit (`hikeshi harden`).
    Hardening,
}

impl EvidenceOrigin {
    /// Classifies an evidence `file` name. Commands attach evidence under
    /// `hikeshi <command>` names; anything else is a log source.
    pub fn of_file(file: &str) -> EvidenceOrigin {
        let Some(command) = file.strip_prefix("hikeshi ").or_else(|| file.strip_prefix("hikeshi:"))
        else {
            return EvidenceOrigin::LogLine;
        };
        let word = command.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
        match word {
            "accounts" => EvidenceOrigin::Accounts,
            "persistence" | "recent" => EvidenceOrigin::Persistence,
            "fim" => EvidenceOrigin::FileIntegrity,
            "verify" => EvidenceOrigin::Verify,
            "harden" => EvidenceOrigin::Hardening,
            _ => EvidenceOrigin::LogLine,
        }
    }

    /// The controls evidence of this origin supports.
    pub fn controls(self) -> &'static [&'static str] {
        match self {
            EvidenceOrigin::LogLine => &["5.28", "8.15"],
            EvidenceOrigin::Accounts => &["5.28", "8.5"],
            EvidenceOrigin::Persistence => &["5.28", "5.26"],
            EvidenceOrigin::FileIntegrity => &["5.28", "8.16"],
            EvidenceOrigin::Verify => &["5.28", "5.26"],
            EvidenceOrigin::Hardening => &["5.28", "8.8", "8.5"],
        }
    }
}

/// The controls a piece of evidence named `file` supports.
pub fn controls_for_evidence(file: &str) -> &'static [&'static str] {
    EvidenceOrigin::of_file(file).controls()
}

/// One recorded item that supports some controls (a timeline row, a
/// ban, an alert, a group of evidence lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceEntry {
    pub incident: i64,
    /// When it happened; `None` for a group of evidence lines.
    pub at: Option<jiff::Timestamp>,
    /// Where it is recorded: `timeline`, `bans`, `alert_outbox`, `evidence`.
    pub source: String,
    /// The timeline kind, or `ban`, `alert`, `evidence`.
    pub kind: String,
    /// What it says (may be attacker-chosen: escape before printing).
    pub detail: String,
    pub controls: Vec<&'static str>,
}

/// The evidence for one control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlReport<'a> {
    pub number: &'static str,
    pub title: &'static str,
    pub hikeshi_records: &'static str,
    pub entries: Vec<&'a EvidenceEntry>,
}

/// Groups `entries` by control, every catalogued control listed (a control
/// with no entry shows that nothing supports it yet).
pub fn by_control(entries: &[EvidenceEntry]) -> Vec<ControlReport<'_>> {
    CATALOGUE
        .iter()
        .map(|c| ControlReport {
            number: c.number,
            title: c.title,
            hikeshi_records: c.hikeshi_records,
            entries: entries.iter().filter(|e| e.controls.contains(&c.number)).collect(),
        })
        .collect()
}

/// The ISMS evidence as JSON: the controls with their entries, and the
/// runbook corrections.
pub fn render_json(entries: &[EvidenceEntry]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        standard: &'static str,
        controls: Vec<ControlReport<'a>>,
        runbook_corrections: &'static [RunbookCorrection],
    }
    let out = Out {
        standard: "ISO/IEC 27001:2022 Annex A",
        controls: by_control(entries),
        runbook_corrections: RUNBOOK_CORRECTIONS,
    };
    let mut text = serde_json::to_string_pretty(&out).expect("serialisable");
    text.push('\n');
    crate::report::escape_json_text(&text)
}

/// The ISMS evidence as Markdown, `escape` applied to every recorded text.
pub fn render_markdown(entries: &[EvidenceEntry], escape: &dyn Fn(&str) -> String) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "# ISMS evidence (ISO/IEC 27001:2022 Annex A)\n");
    for c in by_control(entries) {
        let _ = writeln!(o, "## A.{} {}\n", c.number, c.title);
        let _ = writeln!(o, "hikeshi records: {}\n", c.hikeshi_records);
        if c.entries.is_empty() {
            let _ = writeln!(o, "No recorded evidence yet.\n");
            continue;
        }
        let _ = writeln!(o, "| Incident | Time | Source | Event | Detail |\n|---|---|---|---|---|");
        for e in &c.entries {
            let at = e.at.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string());
            let _ = writeln!(
                o,
                "| #{} | {} | {} | {} | {} |",
                e.incident,
                at.as_deref().unwrap_or("-"),
                e.source,
                escape(&e.kind),
                escape(&e.detail)
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Runbook control numbers corrected for the 2022 standard\n");
    let _ = writeln!(
        o,
        "| Runbook cites | Meant | That number in 2022 | Control used |\n|---|---|---|---|"
    );
    for r in RUNBOOK_CORRECTIONS {
        let used: Vec<String> = r
            .correct_controls
            .iter()
            .map(|n| format!("A.{n} {}", control(n).map(|c| c.title).unwrap_or("?")))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            r.runbook_cites,
            r.runbook_meaning,
            r.title_in_2022,
            used.join("; ")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_exactly_the_issue_controls_in_order() {
        let numbers: Vec<&str> = CATALOGUE.iter().map(|c| c.number).collect();
        assert_eq!(
            numbers,
            ["5.24", "5.25", "5.26", "5.27", "5.28", "6.8", "8.5", "8.8", "8.15", "8.16", "8.20"]
        );
        assert_eq!(control("A.5.28").unwrap().title, "Collection of evidence");
        assert_eq!(control("8.20").unwrap().title, "Networks security");
        assert!(control("5.29").is_none(), "the runbook's 5.29 is not a response control");
    }

    #[test]
    fn every_tag_names_a_catalogued_control() {
        let mut tags: Vec<&str> = TimelineKind::ALL
            .iter()
            .flat_map(|k| controls_for_timeline(*k).iter().copied())
            .collect();
        for file in ["/var/log/auth.log", "hikeshi accounts", "hikeshi fim", "hikeshi verify"] {
            tags.extend(controls_for_evidence(file));
        }
        for r in RUNBOOK_CORRECTIONS {
            tags.extend(r.correct_controls);
        }
        for tag in tags {
            assert!(control(tag).is_some(), "{tag} is not in the catalogue");
        }
    }

    #[test]
    fn runbook_numbers_are_corrected_to_2022_meanings() {
        let fixed: Vec<(&str, &[&str])> =
            RUNBOOK_CORRECTIONS.iter().map(|r| (r.runbook_cites, r.correct_controls)).collect();
        assert_eq!(
            fixed,
            [
                ("A.5.29", &["6.8"][..]),
                ("A.5.30", &["5.26"][..]),
                ("A.5.31", &["5.27"][..]),
                ("A.8.16", &["8.15", "5.28"][..]),
                ("A.8.23", &["8.8"][..]),
            ]
        );
        assert_eq!(RUNBOOK_CORRECTIONS[4].title_in_2022, "Web filtering");
    }

    #[test]
    fn evidence_is_classified_by_the_command_that_attached_it() {
        assert_eq!(EvidenceOrigin::of_file("/var/log/auth.log"), EvidenceOrigin::LogLine);
        assert_eq!(EvidenceOrigin::of_file("journal"), EvidenceOrigin::LogLine);
        assert_eq!(EvidenceOrigin::of_file("hikeshi accounts"), EvidenceOrigin::Accounts);
        assert_eq!(EvidenceOrigin::of_file("hikeshi fim check"), EvidenceOrigin::FileIntegrity);
        assert_eq!(EvidenceOrigin::of_file("hikeshi verify"), EvidenceOrigin::Verify);
        assert_eq!(controls_for_evidence("hikeshi accounts"), ["5.28", "8.5"]);
        assert_eq!(controls_for_timeline(TimelineKind::Banned), ["5.26", "8.20"]);
        assert_eq!(controls_for_timeline(TimelineKind::AlertSent), ["6.8"]);
    }

    #[test]
    fn entries_are_listed_under_each_control_they_support() {
        let ban = EvidenceEntry {
            incident: 2,
            at: None,
            source: "bans".into(),
            kind: "ban".into(),
            detail: "203.0.113.5 <b>".into(),
            controls: vec!["5.26", "8.20"],
        };
        let entries = [ban];
        let grouped = by_control(&entries);
        let with: Vec<&str> =
            grouped.iter().filter(|c| !c.entries.is_empty()).map(|c| c.number).collect();
        assert_eq!(with, ["5.26", "8.20"]);
        let md = render_markdown(&entries, &|s| s.replace('<', "&lt;"));
        assert!(md.contains("## A.8.20 Networks security"));
        assert!(md.contains("203.0.113.5 &lt;b>"));
        assert!(md.contains("| A.8.23 | vulnerability management | Web filtering | A.8.8 Management of technical vulnerabilities |"));
        let js = render_json(&entries);
        assert!(js.contains("\"runbook_cites\": \"A.5.29\""));
    }
}
