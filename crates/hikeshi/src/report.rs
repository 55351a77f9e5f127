//! Assembles a report's input from the store: the incident with its
//! timeline and evidence, its bans (`bans`), its alerts (`alert_outbox`),
//! and the login attempts that lessons learned compare (parsed from the
//! incident's evidence lines and from any authentication logs given).
//! Rendering is `hikeshi_core::report`'s.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hikeshi_core::harden::Finding;
use hikeshi_core::incident::{IncidentId, SubjectKind};
use hikeshi_core::parse::{LineParser, Origin, ParseOptions, Parsed};
use hikeshi_core::report::{
    AlertFact, BanFact, EvidenceItem, IncidentFacts, LoginAttempt, ReportInput,
};
use hikeshi_core::{Mode, Outcome, Source};
use ipnet::IpNet;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::sources::lines::{Line, LineReader};
use crate::store::{IncidentDetail, Store};

/// How to parse log lines for lessons learned.
#[derive(Debug, Clone)]
pub struct LoginParsing {
    pub mode: Mode,
    pub zone: TimeZone,
    pub max_line_len: usize,
}

impl Default for LoginParsing {
    fn default() -> Self {
        LoginParsing { mode: Mode::default(), zone: TimeZone::UTC, max_line_len: 16 * 1024 }
    }
}

/// What goes into a report besides the store.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Authentication logs to read legitimate users' logins from.
    pub auth_logs: Vec<PathBuf>,
    pub parsing: LoginParsing,
    /// Hardening findings to offer as suggested measures.
    pub hardening: Vec<Finding>,
}

/// Reads incident `id` and everything about it into a [`ReportInput`].
pub fn assemble(
    store: &Store,
    id: IncidentId,
    extras: &Extras,
    generated_at: Timestamp,
) -> Result<ReportInput> {
    let detail = store.get_incident(id)?;
    let bans = crate::contain::store::bans_of_incident(store.conn(), id.0)
        .with_context(|| format!("cannot read the bans of incident {id}"))?;
    let alerts = crate::notify::outbox::of_incident(store.conn(), id.0)
        .with_context(|| format!("cannot read the alerts of incident {id}"))?;

    let evidence_logins = logins_from_evidence(&detail, &extras.parsing);
    let mut attack_sources: BTreeSet<String> =
        evidence_logins.iter().map(|l| l.source.clone()).collect();
    let c = &detail.incident.campaign;
    if c.key.kind == SubjectKind::Addr {
        attack_sources.insert(c.key.subject.clone());
    }
    let mut logins = Vec::new();
    for path in &extras.auth_logs {
        logins.extend(logins_from_file(path, &extras.parsing)?);
    }
    // A prefix campaign: every address inside it is the attacker's.
    if c.key.kind == SubjectKind::Prefix {
        if let Ok(net) = c.key.subject.parse::<IpNet>() {
            for l in &logins {
                if l.source.parse::<std::net::IpAddr>().is_ok_and(|a| net.contains(&a)) {
                    attack_sources.insert(l.source.clone());
                }
            }
        }
    }
    if extras.auth_logs.is_empty() {
        logins = evidence_logins;
    }

    Ok(ReportInput {
        generated_at,
        incident: facts(&detail),
        timeline: detail.timeline.iter().map(|t| t.entry.clone()).collect(),
        evidence: detail
            .evidence
            .iter()
            .map(|e| EvidenceItem {
                seq: e.seq,
                file: e.evidence.file.clone(),
                offset: e.evidence.offset,
                sha256: e.evidence.sha256_hex(),
                line: e.evidence.line_lossy().into_owned(),
            })
            .collect(),
        bans: bans
            .into_iter()
            .map(|b| BanFact {
                address: b.address.to_string(),
                backend: b.backend,
                reason: b.reason,
                created_at: b.created_at,
                expires_at: b.expires_at,
                removed_at: b.removed_at,
                removed_reason: b.removed_reason,
            })
            .collect(),
        alerts: alerts
            .into_iter()
            .map(|a| AlertFact {
                recipient: crate::notify::outbox::shown_recipient(&a.channel, &a.recipient),
                channel: a.channel,
                created_at: a.created_at,
                delivered_at: a.delivered_at,
                attempts: a.attempts,
                last_error: a.last_error,
            })
            .collect(),
        logins,
        attack_sources: attack_sources.into_iter().collect(),
        hardening: extras.hardening.clone(),
    })
}

fn facts(detail: &IncidentDetail) -> IncidentFacts {
    let i = &detail.incident;
    let c = &i.campaign;
    IncidentFacts {
        id: i.id.0,
        state: c.state,
        severity: c.severity,
        rule: c.rule.clone(),
        rules: c.rules.kept.iter().cloned().collect(),
        subject_kind: c.key.kind,
        subject: c.key.subject.clone(),
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        opened_at: i.opened_at,
        attempts: c.attempts,
        hosts: c.hosts.kept.iter().cloned().collect(),
        hosts_omitted: c.hosts.omitted,
        users: c.users.kept.iter().cloned().collect(),
        users_omitted: c.users.omitted,
        evidence_lines: c.evidence_lines,
        evidence_digest: hikeshi_core::incident::hex(&c.evidence_digest),
    }
}

fn to_login(parsed: Parsed) -> Option<LoginAttempt> {
    let ev = parsed.event;
    let success = match ev.outcome {
        Outcome::Failure => false,
        Outcome::Success => true,
        Outcome::Pending | Outcome::Context => return None,
    };
    let source = match ev.source? {
        Source::Addr(a) => a.to_string(),
        Source::Hostname(h) => h,
    };
    Some(LoginAttempt { at: ev.time, source, user: ev.user, success })
}

/// The login attempts in the incident's kept log lines (attached findings
/// are not log lines and parse to nothing).
fn logins_from_evidence(detail: &IncidentDetail, parsing: &LoginParsing) -> Vec<LoginAttempt> {
    let reference = detail.incident.campaign.last_seen;
    let mut opts = ParseOptions::new(parsing.mode, parsing.zone.clone(), reference);
    opts.max_line_len = parsing.max_line_len;
    let mut parser = LineParser::new(opts);
    let mut out = Vec::new();
    for (n, e) in detail.evidence.iter().enumerate() {
        let origin = Origin { line: n as u64 + 1, offset: e.evidence.offset };
        parser.push_line(&e.evidence.line, origin, &mut out);
    }
    parser.finish(&mut out);
    out.into_iter().filter_map(to_login).collect()
}

fn logins_from_file(path: &Path, parsing: &LoginParsing) -> Result<Vec<LoginAttempt>> {
    let file =
        File::open(path).with_context(|| format!("--auth-log: cannot read {}", path.display()))?;
    let meta =
        file.metadata().with_context(|| format!("--auth-log: cannot read {}", path.display()))?;
    if meta.is_dir() {
        anyhow::bail!("--auth-log: cannot read {}: is a directory", path.display());
    }
    // Yearless syslog times belong to the year the file was last written.
    let reference = meta
        .modified()
        .ok()
        .and_then(|m| Timestamp::try_from(m).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let mut opts = ParseOptions::new(parsing.mode, parsing.zone.clone(), reference);
    opts.max_line_len = parsing.max_line_len;
    let mut parser = LineParser::new(opts);
    let mut reader = LineReader::new(file, parsing.max_line_len);
    let mut events = Vec::new();
    let mut logins = Vec::new();
    while let Some(line) =
        reader.next_line().with_context(|| format!("--auth-log: cannot read {}", path.display()))?
    {
        if let Line::Text { bytes, number, offset, .. } = line {
            parser.push_line(bytes, Origin { line: number, offset }, &mut events);
            logins.extend(events.drain(..).filter_map(to_login));
        }
    }
    parser.finish(&mut events);
    logins.extend(events.into_iter().filter_map(to_login));
    Ok(logins)
}
