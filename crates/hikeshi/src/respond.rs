//! What follows detection: the alert facts of the incidents a run opened
//! or escalated, carrying out the bans the pipeline asked for, and writing
//! each outcome on its incident's timeline.
//!
//! Order matters for "never lost": alerts are put in the outbox inside the
//! same transaction as the incidents they describe (see [`enqueue_alerts`]);
//! bans run after that commit (a firewall may be slow and must not hold the
//! database); their outcomes are then recorded in a second transaction,
//! with a containment-failed alert when a ban could not be applied; and
//! only then is the outbox delivered.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use hikeshi_core::alert::{runbook_next_steps, AlertFacts, AlertKind};
use hikeshi_core::incident::{Actor, Campaign, IncidentId, State, TimelineKind};
use jiff::Timestamp;

use crate::cli::Context;
use crate::contain::{BanRequest, ContainmentOutcome};
use crate::notify::outbox::{self, DeliveryReport};
use crate::notify::Notifier;
use crate::pipeline::{BanIntent, Touched};
use crate::store::{Batch, Store};

/// A short title for people, per rule.
pub fn rule_title(rule: &str) -> &'static str {
    match rule {
        "brute_force" => "Multiple failed SSH logins",
        "prefix_brute_force" => "Multiple failed SSH logins from one network",
        "user_enumeration" => "SSH user-name enumeration",
        "slow_brute_force" => "Slow SSH password guessing",
        "account_attack" => "One account attacked from many sources",
        "success_after_failures" => "SSH login succeeded after many failures (possible compromise)",
        _ => "SSH attack",
    }
}

/// The facts of an alert about incident `id` as `campaign` now stands.
pub fn alert_facts(
    id: IncidentId,
    campaign: &Campaign,
    kind: AlertKind,
    previous: Option<hikeshi_core::Severity>,
    actions: Vec<String>,
    reason: Option<String>,
) -> AlertFacts {
    let source = campaign.key.subject.clone();
    let contained =
        matches!(campaign.state, State::Contained) || actions.iter().any(|a| a.starts_with("ban"));
    AlertFacts {
        incident_id: id.0,
        kind,
        severity: campaign.severity,
        previous_severity: previous,
        rule: campaign.rule.clone(),
        title: rule_title(&campaign.rule).to_string(),
        next_steps: runbook_next_steps(kind, &source, contained),
        source,
        hosts: campaign.hosts.kept.iter().cloned().collect(),
        sample_users: campaign.users.kept.iter().take(10).cloned().collect(),
        distinct_users: campaign.users.kept.len() as u64 + campaign.users.omitted,
        attempts: campaign.attempts,
        first_seen: campaign.first_seen,
        last_seen: campaign.last_seen,
        actions,
        reason,
    }
}

/// Puts one alert per incident the run opened or escalated into the
/// outbox, inside `batch`. Returns how many alerts were enqueued.
pub fn enqueue_alerts(
    batch: &mut Batch<'_>,
    notifier: &Notifier,
    touched: &BTreeMap<IncidentId, Touched>,
    intents: &[BanIntent],
    backend: &str,
    now: Timestamp,
) -> Result<usize> {
    let mut enqueued = 0;
    for touch in touched.values() {
        let kind = match (touch.opened, touch.escalated_from) {
            (true, _) => AlertKind::Opened,
            (false, Some(_)) => AlertKind::Escalated,
            (false, None) => continue,
        };
        let mut actions: Vec<String> = intents
            .iter()
            .filter(|i| i.incident == touch.id)
            .map(|i| format!("ban of {} requested ({backend})", i.addr))
            .collect();
        if let Some(reason) = &touch.allowlisted {
            actions.push(format!("no ban: the source is allowlisted ({reason})"));
        }
        let campaign = batch.campaign(touch.id)?.clone();
        let previous = if touch.opened { None } else { touch.escalated_from };
        let reason = previous
            .map(|from| format!("severity {from} → {} ({})", campaign.severity, touch.rule));
        let facts = alert_facts(touch.id, &campaign, kind, previous, actions, reason);
        if !notifier.enqueue(batch.conn(), &facts, now)?.is_empty() {
            enqueued += 1;
        }
    }
    Ok(enqueued)
}

/// A firewall backend kept from one batch of bans to the next (the
/// daemon's): built once, set up by its first successful ban, so that
/// each later ban is a single firewall call.
#[derive(Default)]
pub struct FirewallSlot {
    firewall: Option<Box<dyn crate::contain::Firewall>>,
    set_up: bool,
    /// Leave ending the banned sources' connections to the caller (the
    /// daemon does it off the ban path, so that the next ban never waits
    /// for conntrack).
    defer_conntrack: bool,
}

impl FirewallSlot {
    /// A slot whose bans do not end connections themselves: the caller
    /// does, for the addresses its outcomes say were banned.
    pub fn deferring_conntrack() -> FirewallSlot {
        FirewallSlot { defer_conntrack: true, ..FirewallSlot::default() }
    }
}

/// Carries out `intents` with the configured firewall, on the store's
/// connection (the bans table lives there). An error building the
/// backend becomes a `Failed` outcome for every intent, so it reaches the
/// incidents and the team like any other failed ban.
pub fn contain(
    ctx: &Context,
    store: &mut Store,
    intents: &[BanIntent],
    now: Timestamp,
) -> Vec<ContainmentOutcome> {
    contain_in(ctx, store, &mut FirewallSlot::default(), intents, now)
}

/// [`contain`] with the backend kept in `slot` between calls. A failed
/// ban makes the next one set the backend up again.
pub fn contain_in(
    ctx: &Context,
    store: &mut Store,
    slot: &mut FirewallSlot,
    intents: &[BanIntent],
    now: Timestamp,
) -> Vec<ContainmentOutcome> {
    if intents.is_empty() {
        return Vec::new();
    }
    let requests: Vec<BanRequest> = intents
        .iter()
        .map(|i| BanRequest {
            addr: i.addr,
            length: None,
            reason: format!("rule {} (incident {})", i.rule, i.incident),
            incident_id: Some(i.incident.0),
        })
        .collect();
    let backend_name = ctx.config.contain.backend.name();
    let fail_all = |error: String| {
        intents
            .iter()
            .map(|i| ContainmentOutcome::Failed {
                addr: i.addr,
                incident_id: Some(i.incident.0),
                backend: backend_name,
                error: error.clone(),
            })
            .collect()
    };
    let setup = (|| -> Result<_> {
        let config = &ctx.config.contain;
        let policy = config.policy().map_err(anyhow::Error::msg)?;
        let firewall = match slot.firewall.take() {
            Some(firewall) => firewall,
            None => {
                slot.set_up = false;
                crate::contain::backend(config)?
            }
        };
        let allowlist = crate::cli::ban::allowlist(ctx)?;
        Ok((policy, firewall, allowlist))
    })();
    match setup {
        Ok((policy, firewall, allowlist)) => {
            let config = &ctx.config.contain;
            let conntrack = (config.kill_connections && !slot.defer_conntrack)
                .then(|| config.conntrack.clone());
            let mut containment = crate::contain::Containment::new(
                firewall,
                allowlist,
                policy,
                store.conn_mut(),
                conntrack,
            )
            .assume_set_up(slot.set_up);
            let mut outcomes = containment.ban(&requests, now);
            let failed = |o: &ContainmentOutcome| matches!(o, ContainmentOutcome::Failed { .. });
            if slot.set_up && outcomes.iter().any(failed) {
                // Someone may have removed hikeshi's objects since: set
                // them up again and retry what failed, once.
                let retry: Vec<BanRequest> = requests
                    .iter()
                    .filter(|r| {
                        outcomes.iter().any(|o| {
                            matches!(o, ContainmentOutcome::Failed { addr, .. } if *addr == r.addr)
                        })
                    })
                    .cloned()
                    .collect();
                containment = containment.assume_set_up(false);
                outcomes.retain(|o| !failed(o));
                outcomes.extend(containment.ban(&retry, now));
            }
            slot.set_up = !outcomes.iter().any(failed);
            slot.firewall = Some(containment.into_firewall());
            outcomes
        }
        Err(err) => fail_all(format!("{err:#}")),
    }
}

/// Writes each containment outcome on its incident's timeline, moves
/// banned incidents to `contained`, and enqueues a containment-failed
/// alert for each incident whose ban failed.
pub fn record_containment(
    store: &mut Store,
    notifier: &Notifier,
    outcomes: &[ContainmentOutcome],
    now: Timestamp,
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut batch = store.batch()?;
    let mut failures: BTreeMap<IncidentId, Vec<String>> = BTreeMap::new();
    for outcome in outcomes {
        let (incident, kind) = match outcome {
            ContainmentOutcome::Banned { incident_id, .. } => (incident_id, TimelineKind::Banned),
            ContainmentOutcome::Failed { incident_id, .. } => {
                (incident_id, TimelineKind::BanFailed)
            }
            ContainmentOutcome::Refused { incident_id, .. } => (incident_id, TimelineKind::Note),
            ContainmentOutcome::Unbanned { incident_id, .. } => {
                (incident_id, TimelineKind::Unbanned)
            }
            ContainmentOutcome::NotBanned { .. } => continue,
        };
        let Some(id) = incident.map(IncidentId) else { continue };
        batch.add_timeline(id, now, &Actor::Automatic, kind, &outcome.to_string())?;
        match outcome {
            // A dry run (the `none` backend) contains nothing.
            ContainmentOutcome::Banned { dry_run: false, .. } => {
                let state = batch.incident_state(id)?;
                if matches!(state, State::Detected | State::Analysing) {
                    batch.set_state(id, State::Contained, now, &Actor::Automatic)?;
                }
            }
            ContainmentOutcome::Failed { .. } => {
                failures.entry(id).or_default().push(outcome.to_string());
            }
            _ => {}
        }
    }
    for (id, errors) in failures {
        let campaign = batch.campaign(id)?.clone();
        let actions = errors.iter().map(|e| format!("containment FAILED: {e}")).collect();
        let facts = alert_facts(
            id,
            &campaign,
            AlertKind::ContainmentFailed,
            None,
            actions,
            Some(errors.join("; ")),
        );
        notifier.enqueue(batch.conn(), &facts, now)?;
    }
    batch.commit()?;
    Ok(())
}

/// Sends what is due in the outbox and writes each delivery (or failure)
/// on its incident's timeline.
pub fn deliver(store: &mut Store, notifier: &Notifier, now: Timestamp) -> Result<DeliveryReport> {
    let report = notifier.deliver_due(store.conn(), now).context("delivering alerts")?;
    if report.delivered.is_empty() && report.failed.is_empty() {
        return Ok(report);
    }
    let mut batch = store.batch()?;
    for id in &report.delivered {
        let Some(row) = outbox::get(batch.conn(), *id)? else { continue };
        let Some(incident) = row.incident_id.map(IncidentId) else { continue };
        let recipient = if row.channel.starts_with("webhook") {
            crate::notify::webhook::redact_url(&row.recipient)
        } else {
            row.recipient.clone()
        };
        let detail = format!("alert sent via {} to {recipient}: {}", row.channel, row.subject);
        batch.add_timeline(incident, now, &Actor::Automatic, TimelineKind::AlertSent, &detail)?;
    }
    for failed in &report.failed {
        let Some(row) = outbox::get(batch.conn(), failed.id)? else { continue };
        let Some(incident) = row.incident_id.map(IncidentId) else { continue };
        // One timeline row per message's first failure and when it gets
        // stuck: a server that is down for a day must not fill the timeline.
        if failed.attempts != 1 && !(failed.stuck && failed.attempts == failed_stuck_at(notifier)) {
            continue;
        }
        let detail = format!(
            "alert via {} to {} failed (attempt {}): {}; next attempt {}",
            failed.channel, failed.recipient, failed.attempts, failed.error, failed.next_attempt_at
        );
        batch.add_timeline(incident, now, &Actor::Automatic, TimelineKind::AlertFailed, &detail)?;
    }
    batch.commit()?;
    Ok(report)
}

fn failed_stuck_at(notifier: &Notifier) -> u32 {
    notifier.policy().retry.stuck_after
}
