//! The alert outbox: every message is stored in SQLite before it is sent,
//! so an alert that cannot be sent now is retried later and never lost.
//!
//! A row is one message to one recipient on one channel (a "lane").
//! [`deliver_due`] claims the due rows, applies the lane's rate limit
//! (within budget: one by one; over it: a digest; no budget left: held
//! until a slot frees), sends, and records each outcome: `delivered_at`,
//! or the error, the attempt count and the next attempt (exponential
//! backoff, forever). A delivered row is never sent again.
//!
//! Times are stored as Unix seconds (UTC).

use std::collections::HashMap;

use hikeshi_core::alert::{self, HeldAlert, RateLimit, RetryPolicy};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Channel, FailureScope, Outgoing, SendError, Senders};

/// The outbox table. Applied by the store's migrations; idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_outbox (
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER,            -- NULL for an alert about no incident
    created_at      INTEGER NOT NULL,   -- Unix seconds: when the alert was raised
    channel         TEXT    NOT NULL,   -- email | webhook_json | webhook_slack | stdout
    recipient       TEXT    NOT NULL,   -- email address | webhook URL | '-'
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,   -- plain text, or the JSON payload for webhooks
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,   -- Unix seconds; meaningless once delivered
    last_error      TEXT,               -- the latest failure, kept after delivery
    delivered_at    INTEGER,            -- Unix seconds; NULL while pending
    digest_id       INTEGER,            -- delivered inside the digest led by this row id
    alert_key       TEXT                -- AlertFacts::once_key: one row per key and recipient
);
CREATE INDEX IF NOT EXISTS alert_outbox_due
    ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS alert_outbox_lane
    ON alert_outbox (channel, recipient, delivered_at);
CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_once
    ON alert_outbox (alert_key, channel, recipient) WHERE alert_key IS NOT NULL;
";

/// How [`deliver_due`] retries and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxPolicy {
    pub retry: RetryPolicy,
    pub rate_limit: RateLimit,
    /// The subject's first words, for digests.
    pub subject_prefix: String,
    /// How long claimed rows are reserved for the deliverer that claimed
    /// them, so that two processes sharing the database (the daemon and a
    /// cron `hikeshi scan`) never send the same row twice. A deliverer that
    /// crashes mid-round delays its claimed rows by this much.
    pub lease: SignedDuration,
    /// The most rows one call claims; the rest wait for the next call.
    pub batch: usize,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        OutboxPolicy {
            retry: RetryPolicy::default(),
            rate_limit: RateLimit::default(),
            subject_prefix: alert::DEFAULT_SUBJECT.to_string(),
            lease: SignedDuration::from_secs(600),
            batch: 500,
        }
    }
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub incident_id: Option<i64>,
    /// Stored once per channel and recipient: a second message with the
    /// same key is not stored. `None`: always stored.
    pub alert_key: Option<String>,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub created_at: Timestamp,
    /// The channel's name (see [`Channel::as_str`]).
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    pub digest_id: Option<i64>,
}

/// One failed send of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub id: i64,
    pub channel: String,
    /// The recipient as it may be shown in logs: a webhook URL is reduced
    /// to its scheme and host (its path often holds a secret token).
    pub recipient: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub error: String,
    pub next_attempt_at: Timestamp,
    /// Failed [`RetryPolicy::stuck_after`] times or more: someone must look.
    pub stuck: bool,
}

/// What one [`deliver_due`] round did. Every due row is in exactly one of
/// `delivered`, `failed`, `held`, `postponed` or `unroutable`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages sent (a digest counts once).
    pub sent: usize,
    /// Digests among them.
    pub digests: usize,
    /// Rows delivered (alone or in a digest).
    pub delivered: Vec<i64>,
    /// Rows whose send failed (each row of a failed digest).
    pub failed: Vec<FailedDelivery>,
    /// Rows held by the rate limit until a slot frees.
    pub held: usize,
    /// Rows not tried because their server failed earlier in this round.
    pub postponed: usize,
    /// Rows whose channel has no configured sender (kept; retried later).
    pub unroutable: usize,
}

fn to_secs(t: Timestamp) -> i64 {
    t.as_second()
}

fn from_secs(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(if secs < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Stores one message, due at `now`. Returns its id, or `None` when a
/// message with the same `alert_key` was already stored for this channel
/// and recipient.
pub fn enqueue(
    conn: &Connection,
    message: &NewMessage,
    now: Timestamp,
) -> rusqlite::Result<Option<i64>> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO alert_outbox
             (incident_id, created_at, channel, recipient, subject, body, attempts,
              next_attempt_at, alert_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?2, ?7)",
        params![
            message.incident_id,
            to_secs(now),
            message.channel.as_str(),
            message.recipient,
            message.subject,
            message.body,
            message.alert_key,
        ],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}

/// Stores several messages, all or none. Returns the ids of those stored
/// (see [`enqueue`] for the ones that are not). It uses a savepoint, so it
/// can run inside the caller's transaction (the incidents the alerts
/// describe commit with them) or on its own.
pub fn enqueue_all(
    conn: &Connection,
    messages: &[NewMessage],
    now: Timestamp,
) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch("SAVEPOINT enqueue_all")?;
    let stored = (|| {
        let mut ids = Vec::with_capacity(messages.len());
        for message in messages {
            ids.extend(enqueue(conn, message, now)?);
        }
        Ok(ids)
    })();
    match stored {
        Ok(ids) => {
            conn.execute_batch("RELEASE enqueue_all")?;
            Ok(ids)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK TO enqueue_all; RELEASE enqueue_all");
            Err(err)
        }
    }
}

const COLUMNS: &str = "id, incident_id, created_at, channel, recipient, subject, body, attempts,
    next_attempt_at, last_error, delivered_at, digest_id";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        created_at: from_secs(r.get(2)?),
        channel: r.get(3)?,
        recipient: r.get(4)?,
        subject: r.get(5)?,
        body: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt_at: from_secs(r.get(8)?),
        last_error: r.get(9)?,
        delivered_at: r.get::<_, Option<i64>>(10)?.map(from_secs),
        digest_id: r.get(11)?,
    })
}

/// One row by id.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<OutboxRow>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM alert_outbox WHERE id = ?1"), [id], read_row)
        .optional()
}

/// Every undelivered row, oldest first (for `hikeshi status` and reports).
pub fn pending(conn: &Connection) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM alert_outbox WHERE delivered_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], read_row)?.collect();
    rows
}

/// Every row about incident `incident_id`, oldest first (reports).
pub fn of_incident(conn: &Connection, incident_id: i64) -> rusqlite::Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM alert_outbox WHERE incident_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([incident_id], read_row)?.collect();
    rows
}

/// The earliest time a pending row is due, if any: when the daemon's alert
/// worker should wake up next.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<Timestamp>> {
    let secs: Option<i64> = conn.query_row(
        "SELECT MIN(next_attempt_at) FROM alert_outbox WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(secs.map(from_secs))
}

/// Claims the rows due at `now` (undelivered, `next_attempt_at <= now`)
/// by moving their next attempt to `now + lease`, in one immediate
/// transaction.
fn claim_due(
    conn: &Connection,
    now: Timestamp,
    policy: &OutboxPolicy,
) -> rusqlite::Result<Vec<OutboxRow>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let rows = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {COLUMNS} FROM alert_outbox
             WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![to_secs(now), policy.batch as i64], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    let until = to_secs(now.saturating_add(policy.lease).unwrap_or(Timestamp::MAX));
    {
        let mut stmt = tx.prepare("UPDATE alert_outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
        for row in &rows {
            stmt.execute(params![row.id, until])?;
        }
    }
    tx.commit()?;
    Ok(rows)
}

/// The times of a lane's sends (a digest counts once) after `since`.
fn recent_sends(
    conn: &Connection,
    channel: &str,
    recipient: &str,
    since: Timestamp,
) -> rusqlite::Result<Vec<Timestamp>> {
    let mut stmt = conn.prepare_cached(
        "SELECT MIN(delivered_at) FROM alert_outbox
         WHERE channel = ?1 AND recipient = ?2 AND delivered_at > ?3
         GROUP BY COALESCE(digest_id, id)",
    )?;
    let times = stmt
        .query_map(params![channel, recipient, to_secs(since)], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(from_secs))
        .collect();
    times
}

fn set_next_attempt(conn: &Connection, ids: &[i64], at: Timestamp) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE alert_outbox SET next_attempt_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
    )?;
    for id in ids {
        stmt.execute(params![id, to_secs(at)])?;
    }
    Ok(())
}

fn mark_delivered(
    conn: &Connection,
    id: i64,
    now: Timestamp,
    digest_id: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE alert_outbox SET delivered_at = ?2, attempts = attempts + 1, digest_id = ?3
         WHERE id = ?1 AND delivered_at IS NULL",
    )?
    .execute(params![id, to_secs(now), digest_id])?;
    Ok(())
}

/// `recipient` as it may be shown: a webhook URL reduced to scheme and host.
pub fn shown_recipient(channel: &str, recipient: &str) -> String {
    match Channel::from_name(channel) {
        Some(Channel::WebhookJson | Channel::WebhookSlack) => super::webhook::redact_url(recipient),
        _ => recipient.to_string(),
    }
}

/// Records a failed attempt of `row` and returns what the report says.
fn record_failure(
    conn: &Connection,
    row: &OutboxRow,
    error: &str,
    now: Timestamp,
    policy: &OutboxPolicy,
) -> rusqlite::Result<FailedDelivery> {
    let attempts = row.attempts.saturating_add(1);
    let next = policy.retry.next_attempt(attempts, now);
    conn.prepare_cached(
        "UPDATE alert_outbox SET attempts = ?2, last_error = ?3, next_attempt_at = ?4
         WHERE id = ?1 AND delivered_at IS NULL",
    )?
    .execute(params![row.id, attempts, error, to_secs(next)])?;
    Ok(FailedDelivery {
        id: row.id,
        channel: row.channel.clone(),
        recipient: shown_recipient(&row.channel, &row.recipient),
        attempts,
        error: error.to_string(),
        next_attempt_at: next,
        stuck: policy.retry.is_stuck(attempts),
    })
}

/// Sends every message due at `now` and records the outcomes; returns
/// what happened. Each send blocks for at most its sender's timeout, and
/// after a server-wide failure (unreachable, timeout, TLS) the other
/// messages to that server wait for the failed one's next attempt instead
/// of each waiting for its own timeout.
///
/// Delivery is at least once: a crash between a successful send and its
/// record would send that message again. Call it outside any transaction
/// on `conn`. Errors are only database errors; send failures are in the
/// report.
pub fn deliver_due(
    conn: &Connection,
    now: Timestamp,
    senders: &Senders,
    policy: &OutboxPolicy,
) -> rusqlite::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let rows = claim_due(conn, now, policy)?;

    // Lanes in the order of their oldest due row.
    let mut lanes: Vec<Vec<OutboxRow>> = Vec::new();
    let mut lane_of: HashMap<(String, String), usize> = HashMap::new();
    for row in rows {
        let key = (row.channel.clone(), row.recipient.clone());
        let index = *lane_of.entry(key).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[index].push(row);
    }

    // Servers that failed this round, and when their messages are next due.
    let mut down: HashMap<(Channel, String), Timestamp> = HashMap::new();
    let window_start = now.saturating_sub(policy.rate_limit.window).unwrap_or(Timestamp::MIN);

    for lane in lanes {
        let ids: Vec<i64> = lane.iter().map(|r| r.id).collect();
        let channel_name = lane[0].channel.clone();
        let recipient = lane[0].recipient.clone();
        let Some((channel, sender)) =
            Channel::from_name(&channel_name).and_then(|c| senders.get(c).map(|s| (c, s)))
        else {
            let error = format!("no sender is configured for channel {channel_name} (see [alert])");
            let later = now.saturating_add(policy.retry.max_delay).unwrap_or(Timestamp::MAX);
            let mut stmt = conn.prepare_cached(
                "UPDATE alert_outbox SET last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
            )?;
            for id in &ids {
                stmt.execute(params![id, error, to_secs(later)])?;
            }
            report.unroutable += ids.len();
            continue;
        };
        let server = (channel, sender.server_key(&recipient));
        if let Some(until) = down.get(&server) {
            set_next_attempt(conn, &ids, *until)?;
            report.postponed += ids.len();
            continue;
        }

        let recent = recent_sends(conn, &channel_name, &recipient, window_start)?;
        let plan = alert::plan_lane(&policy.rate_limit, &recent, lane.len(), now);
        let held_from = plan.individually + plan.in_digest;
        if held_from < lane.len() {
            let until = plan.held_until.unwrap_or(now);
            set_next_attempt(conn, &ids[held_from..], until)?;
            report.held += lane.len() - held_from;
        }

        let mut sent_upto = 0;
        for row in &lane[..plan.individually] {
            let outgoing = Outgoing {
                id: row.id,
                incident_id: row.incident_id,
                created_at: row.created_at,
                recipient: row.recipient.clone(),
                subject: row.subject.clone(),
                body: row.body.clone(),
            };
            sent_upto += 1;
            match sender.send(&outgoing) {
                Ok(()) => {
                    mark_delivered(conn, row.id, now, None)?;
                    report.sent += 1;
                    report.delivered.push(row.id);
                }
                Err(e) => {
                    let failure = record_failure(conn, row, &e.message, now, policy)?;
                    if e.scope == FailureScope::Server {
                        down.insert(server.clone(), failure.next_attempt_at);
                    }
                    report.failed.push(failure);
                    if e.scope == FailureScope::Server {
                        break;
                    }
                }
            }
        }
        if let Some(until) = down.get(&server) {
            // The server failed: what this lane has not tried waits with it.
            let untried = &ids[sent_upto..held_from];
            set_next_attempt(conn, untried, *until)?;
            report.postponed += untried.len();
            continue;
        }

        if plan.in_digest > 0 {
            let members = &lane[plan.individually..held_from];
            let held: Vec<HeldAlert> = members
                .iter()
                .map(|r| HeldAlert { subject: r.subject.clone(), body: r.body.clone() })
                .collect();
            let (subject, body) = alert::render_digest(
                channel.digest_format(),
                &held,
                &policy.rate_limit,
                &policy.subject_prefix,
            );
            let lead = &members[0];
            let outgoing = Outgoing {
                id: lead.id,
                incident_id: None,
                created_at: now,
                recipient: recipient.clone(),
                subject,
                body,
            };
            match sender.send(&outgoing) {
                Ok(()) => {
                    for r in members {
                        mark_delivered(conn, r.id, now, Some(lead.id))?;
                        report.delivered.push(r.id);
                    }
                    report.sent += 1;
                    report.digests += 1;
                }
                Err(SendError { scope, message }) => {
                    let message = format!("digest of {} alerts: {message}", members.len());
                    for r in members {
                        let failure = record_failure(conn, r, &message, now, policy)?;
                        if scope == FailureScope::Server {
                            down.entry(server.clone()).or_insert(failure.next_attempt_at);
                        }
                        report.failed.push(failure);
                    }
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::notify::{Sender, StdoutSender};

    type Behaviour = Box<dyn Fn(&Outgoing) -> Result<(), SendError> + Send + Sync>;

    /// A sender that records what it is asked to send and answers as told.
    struct Fake {
        sent: Arc<Mutex<Vec<Outgoing>>>,
        behaviour: Behaviour,
    }

    impl Sender for Fake {
        fn send(&self, message: &Outgoing) -> Result<(), SendError> {
            self.sent.lock().unwrap().push(message.clone());
            (self.behaviour)(message)
        }
        fn server_key(&self, _recipient: &str) -> String {
            "one-server".into()
        }
    }

    fn fake(
        channel: Channel,
        behaviour: impl Fn(&Outgoing) -> Result<(), SendError> + Send + Sync + 'static,
    ) -> (Senders, Arc<Mutex<Vec<Outgoing>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut senders = Senders::new();
        senders
            .insert(channel, Box::new(Fake { sent: sent.clone(), behaviour: Box::new(behaviour) }));
        (senders, sent)
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        (dir, conn)
    }

    fn msg(channel: Channel, recipient: &str, n: i64) -> NewMessage {
        NewMessage {
            incident_id: Some(n),
            alert_key: None,
            channel,
            recipient: recipient.into(),
            subject: format!("Incident Alert #{n}"),
            body: format!("body {n}"),
        }
    }

    fn t0() -> Timestamp {
        "2026-01-15T10:00:00Z".parse().unwrap()
    }

    fn secs(n: i64) -> SignedDuration {
        SignedDuration::from_secs(n)
    }

    #[test]
    fn the_same_alert_key_is_stored_once_per_recipient() {
        let (_d, conn) = db();
        let keyed = |r: &str| NewMessage {
            alert_key: Some("42:opened:high".into()),
            ..msg(Channel::Email, r, 42)
        };
        assert_eq!(enqueue(&conn, &keyed("a@example.com"), t0()).unwrap(), Some(1));
        assert_eq!(enqueue(&conn, &keyed("a@example.com"), t0() + secs(600)).unwrap(), None);
        assert_eq!(enqueue(&conn, &keyed("b@example.com"), t0()).unwrap(), Some(2));
        // Without a key, nothing is deduplicated.
        assert_eq!(
            enqueue(&conn, &msg(Channel::Email, "a@example.com", 42), t0()).unwrap(),
            Some(3)
        );
        assert_eq!(
            enqueue(&conn, &msg(Channel::Email, "a@example.com", 42), t0()).unwrap(),
            Some(4)
        );
        assert_eq!(pending(&conn).unwrap().len(), 4);
    }

    #[test]
    fn schema_is_idempotent() {
        let (_d, conn) = db();
        conn.execute_batch(SCHEMA).unwrap();
    }

    #[test]
    fn a_rejected_recipient_does_not_hold_up_the_others() {
        let (_d, conn) = db();
        let (senders, sent) = fake(Channel::Email, |m| {
            if m.recipient == "bad@example.com" {
                Err(SendError::message("550 no such user"))
            } else {
                Ok(())
            }
        });
        for r in ["a@example.com", "bad@example.com", "c@example.com"] {
            enqueue(&conn, &msg(Channel::Email, r, 1), t0()).unwrap();
        }
        let report = deliver_due(&conn, t0(), &senders, &OutboxPolicy::default()).unwrap();
        assert_eq!(report.delivered, [1, 3]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].error, "550 no such user");
        assert_eq!(report.postponed, 0);
        assert_eq!(sent.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_failing_server_is_tried_once_per_round_and_flagged_stuck_but_never_dropped() {
        let (_d, conn) = db();
        let (senders, sent) =
            fake(Channel::Email, |_| Err(SendError::server("connection refused")));
        for r in ["a@example.com", "b@example.com"] {
            enqueue(&conn, &msg(Channel::Email, r, 1), t0()).unwrap();
        }
        let policy = OutboxPolicy::default();
        let mut now = t0();
        for round in 1..=10u32 {
            let report = deliver_due(&conn, now, &senders, &policy).unwrap();
            // Row 1 fails, row 2 (same server) waits with it.
            assert_eq!(report.failed.len(), 1, "round {round}: {report:?}");
            assert_eq!(report.postponed, 1);
            assert_eq!(report.failed[0].attempts, round);
            assert_eq!(report.failed[0].stuck, round >= policy.retry.stuck_after);
            now = report.failed[0].next_attempt_at;
        }
        assert_eq!(sent.lock().unwrap().len(), 10);
        assert_eq!(pending(&conn).unwrap().len(), 2);
    }

    #[test]
    fn a_channel_without_sender_keeps_its_messages() {
        let (_d, conn) = db();
        let (senders, _) = fake(Channel::Email, |_| Ok(()));
        let id = enqueue(&conn, &msg(Channel::WebhookSlack, "https://hooks.example/x", 1), t0())
            .unwrap()
            .unwrap();
        let report = deliver_due(&conn, t0(), &senders, &OutboxPolicy::default()).unwrap();
        assert_eq!(report.unroutable, 1);
        let row = get(&conn, id).unwrap().unwrap();
        assert!(row.delivered_at.is_none());
        assert!(row.last_error.unwrap().contains("webhook_slack"));
        assert_eq!(row.next_attempt_at, t0() + secs(3600));
    }

    #[test]
    fn a_failed_digest_is_retried_whole_and_delivered_once() {
        let (_d, conn) = db();
        let fail = Arc::new(Mutex::new(true));
        let fail2 = fail.clone();
        let (senders, sent) = fake(Channel::Stdout, move |_| {
            if *fail2.lock().unwrap() {
                Err(SendError::server("disk full"))
            } else {
                Ok(())
            }
        });
        let policy = OutboxPolicy {
            rate_limit: RateLimit { max_per_window: 1, window: secs(600) },
            ..OutboxPolicy::default()
        };
        for n in 1..=3 {
            enqueue(&conn, &msg(Channel::Stdout, "-", n), t0()).unwrap();
        }
        let report = deliver_due(&conn, t0(), &senders, &policy).unwrap();
        assert_eq!(report.failed.len(), 3);
        assert!(report.failed[0].error.starts_with("digest of 3 alerts: disk full"));
        *fail.lock().unwrap() = false;
        let report = deliver_due(&conn, t0() + secs(30), &senders, &policy).unwrap();
        assert_eq!((report.sent, report.digests, report.delivered.len()), (1, 1, 3));
        let rows: Vec<OutboxRow> = (1..=3).map(|id| get(&conn, id).unwrap().unwrap()).collect();
        assert!(rows.iter().all(|r| r.digest_id == Some(1) && r.attempts == 2));
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert!(sent[1].body.contains("===== 3/3: Incident Alert #3 =====\nbody 3"));
        assert_eq!(sent[1].subject, "Incident Alert digest: 3 alerts held by the rate limit");
        drop(sent);
        assert_eq!(deliver_due(&conn, t0() + secs(9999), &senders, &policy).unwrap().sent, 0);
    }

    #[test]
    fn claimed_rows_are_not_sent_by_a_second_deliverer() {
        let (dir, conn) = db();
        let path = dir.path().join("t.db");
        let nested_reports = Arc::new(Mutex::new(Vec::new()));
        let reports = nested_reports.clone();
        // While the first deliverer is sending, a second process (another
        // connection) delivers too: it must find nothing to send.
        let (senders, sent) = fake(Channel::Stdout, move |_| {
            let other = Connection::open(&path).unwrap();
            let (inner, _) = fake(Channel::Stdout, |_| Ok(()));
            let report = deliver_due(&other, t0(), &inner, &OutboxPolicy::default()).unwrap();
            reports.lock().unwrap().push(report);
            Ok(())
        });
        for n in 1..=2 {
            enqueue(&conn, &msg(Channel::Stdout, "-", n), t0()).unwrap();
        }
        let report = deliver_due(&conn, t0(), &senders, &OutboxPolicy::default()).unwrap();
        assert_eq!(report.delivered, [1, 2]);
        assert_eq!(sent.lock().unwrap().len(), 2);
        let nested = nested_reports.lock().unwrap();
        assert_eq!(nested.len(), 2);
        assert!(nested.iter().all(|r| *r == DeliveryReport::default()), "{nested:?}");
    }

    #[test]
    fn stdout_sender_prints_subject_and_body() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let mut senders = Senders::new();
        senders.insert(Channel::Stdout, Box::new(StdoutSender::to_writer(Box::new(buf.clone()))));
        let (_d, conn) = db();
        enqueue(&conn, &msg(Channel::Stdout, "-", 4), t0()).unwrap();
        deliver_due(&conn, t0(), &senders, &OutboxPolicy::default()).unwrap();
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out, "Incident Alert #4\n\nbody 4\n----\n");
    }

    #[test]
    fn next_due_is_the_earliest_pending_attempt() {
        let (_d, conn) = db();
        assert_eq!(next_due(&conn).unwrap(), None);
        enqueue(&conn, &msg(Channel::Stdout, "-", 1), t0() + secs(5)).unwrap();
        enqueue(&conn, &msg(Channel::Stdout, "-", 2), t0()).unwrap();
        assert_eq!(next_due(&conn).unwrap(), Some(t0()));
    }
}
