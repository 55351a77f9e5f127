//! The audit trail in the database: the `audit_log` table, the triggers
//! that append to it, and reading it back for `hikeshi audit`.
//!
//! Every insert or update of an audited row appends one entry, *in the
//! same statement* (an SQLite trigger), so an entry commits or rolls back
//! with its row whoever writes it: the incident batches, containment's
//! ban transactions, the alert outbox. Entries are chained as
//! [`hikeshi_core::audit`] describes; the digests are computed by two SQL
//! functions this module registers on every connection the store opens
//! (`hikeshi_row_digest`, `hikeshi_audit_digest`). A connection without
//! them (the `sqlite3` shell) cannot write to an audited table at all: it
//! has to drop the triggers first, and then the chain no longer matches.
//!
//! Audited tables and what an entry is written for:
//!
//! | table             | entries                                              |
//! |-------------------|------------------------------------------------------|
//! | `incidents`       | insert; every update (one per incident per batch)    |
//! | `incident_names`  | per incident per batch that added names: `row_id` is the incident, the digest covers all its names |
//! | `timeline`        | insert                                               |
//! | `evidence`        | insert (one chunk)                                   |
//! | `evidence_recent` | insert, delete (the rolling window)                  |
//! | `evidence_lines`  | insert (one chunk; schema version 5)                 |
//! | `evidence_latest` | insert, delete (the rolling window; version 5)       |
//! | `bans`            | insert, update (expiry moved, lifted)                |
//! | `alert_outbox`    | insert, update (attempts, delivery)                  |
//!
//! Not audited: `cursors` (file positions), `ban_offences` (a counter
//! derived from bans), and the schema itself.

use hikeshi_core::audit::{self, ChainBreak, ChainEntry, LiveRow, Value};
use hikeshi_core::incident::{hex, Sha256Digest};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde::Serialize;

use super::{Store, StoreError};

/// Each table audited row by row, the expression that identifies a row,
/// and the columns its row digest covers, in order. The triggers in
/// [`SCHEMA`] use the same lists (a test checks it). `incident_names` is
/// audited per incident instead (see [`NAMES_TABLE`]).
pub const AUDITED: &[(&str, &str, &str)] = &[
    (
        "incidents",
        "rowid",
        "subject_kind, subject, rule, severity, state, first_seen, last_seen, attempts, \
         rules_omitted, hosts_omitted, users_omitted, evidence_lines, evidence_digest, opened_at",
    ),
    ("timeline", "rowid", "incident_id, at, actor, kind, detail"),
    ("evidence", "rowid", "incident_id, first_seq, last_seq, lines, data"),
    ("evidence_recent", "rowid", "incident_id, first_seq, last_seq, lines, data"),
    ("evidence_lines", "rowid", "incident_id, first_seq, last_seq, lines, data"),
    ("evidence_latest", "rowid", "incident_id, first_seq, last_seq, lines, data"),
    (
        "bans",
        "rowid",
        "address, family, incident_id, reason, backend, created_at, expires_at, offence, \
         removed_at, removed_reason",
    ),
    (
        "alert_outbox",
        "rowid",
        "incident_id, created_at, channel, recipient, subject, body, attempts, \
         next_attempt_at, last_error, delivered_at, digest_id, alert_key",
    ),
];

/// The table audited per incident rather than per row: the kept names of
/// an incident, one entry per incident per batch that added names, whose
/// `row_id` is the incident id and whose `row_digest` is
/// [`audit::names_digest`] of all its names after the batch.
pub const NAMES_TABLE: &str = "incident_names";

/// Appends one entry about row `$id` of `$table` ($action: insert, update,
/// delete, adopt): the next seq, the database's time, the previous
/// digest (zeros for the first), the row's digest and the entry's.
macro_rules! append {
    ($action:literal, $table:literal, $id:literal, $cols:literal) => {
        concat!(
            "INSERT INTO audit_log (seq, at, action, tbl, row_id, row_digest, prev, digest) ",
            "SELECT n.seq, n.at, '", $action, "', '", $table, "', ", $id, ", n.rd, n.prev, ",
            "hikeshi_audit_digest(n.seq, n.at, '", $action, "', '", $table, "', ", $id,
            ", n.rd, n.prev) FROM (SELECT ",
            "coalesce((SELECT max(seq) FROM audit_log), 0) + 1 AS seq, ",
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS at, ",
            "coalesce((SELECT digest FROM audit_log ORDER BY seq DESC LIMIT 1), zeroblob(32)) AS prev, ",
            "(SELECT hikeshi_row_digest('", $table, "', ", $cols, ") FROM ", $table,
            " WHERE rowid = ", $id, ") AS rd) AS n;"
        )
    };
}

/// The trigger `<table>_audit_<action>` that appends an `$action` entry
/// about row `$id` `$when` (`AFTER INSERT`, `BEFORE DELETE`, ...).
macro_rules! audit_trigger {
    ($table:literal, $cols:literal, $action:literal, $when:literal, $id:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $table,
            "_audit_",
            $action,
            " ",
            $when,
            " ON ",
            $table,
            " BEGIN ",
            append!($action, $table, $id, $cols),
            " END;\n",
        )
    };
}

/// Queues every row of `$table` that exists now for adoption.
macro_rules! adopt_rows {
    ($table:literal) => {
        concat!(
            "INSERT INTO audit_adopt (tbl, row_id) SELECT '",
            $table,
            "', rowid FROM ",
            $table,
            " ORDER BY rowid;\n",
        )
    };
}

/// The triggers of one audited table: insert and update (or delete, or
/// neither for an append-only table), then its existing rows adopted.
macro_rules! audit_triggers {
    ($table:literal, $cols:literal, update) => {
        concat!(
            audit_trigger!($table, $cols, "insert", "AFTER INSERT", "NEW.rowid"),
            audit_trigger!($table, $cols, "update", "AFTER UPDATE", "NEW.rowid"),
            adopt_rows!($table),
        )
    };
    ($table:literal, $cols:literal, delete) => {
        concat!(
            audit_trigger!($table, $cols, "insert", "AFTER INSERT", "NEW.rowid"),
            audit_trigger!($table, $cols, "delete", "BEFORE DELETE", "OLD.rowid"),
            adopt_rows!($table),
        )
    };
    ($table:literal, $cols:literal, append_only) => {
        concat!(
            audit_trigger!($table, $cols, "insert", "AFTER INSERT", "NEW.rowid"),
            adopt_rows!($table),
        )
    };
}

/// One adoption trigger: rows that existed before the trail are chained
/// as `adopt` entries while the migration runs.
macro_rules! adopt_trigger {
    ($table:literal, $cols:literal) => {
        concat!(
            "CREATE TEMP TRIGGER ",
            $table,
            "_audit_adopt AFTER INSERT ON audit_adopt WHEN NEW.tbl = '",
            $table,
            "' BEGIN ",
            append!("adopt", $table, "NEW.row_id", $cols),
            " END;\n"
        )
    };
}

/// Migration: the `audit_log` table, its append-only triggers, the audit
/// triggers of every audited table, and the adoption of rows written
/// before it (in table order, then row order).
pub const SCHEMA: &str = concat!(
    "CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,             -- 1, 2, 3, ... without gaps
    at          TEXT    NOT NULL,                -- RFC 3339 (UTC), when appended
    action      TEXT    NOT NULL,                -- insert | update | delete | adopt
    tbl         TEXT    NOT NULL,                -- the audited table
    row_id      INTEGER NOT NULL,                -- the row's id in it
    row_digest  BLOB    NOT NULL,                -- SHA-256 of the row's content
    prev        BLOB    NOT NULL,                -- digest of the entry before
    digest      BLOB    NOT NULL                 -- SHA-256 of this entry
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log rows are append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log rows are append-only'); END;
CREATE TEMP TABLE audit_adopt (tbl TEXT NOT NULL, row_id INTEGER NOT NULL);
",
    adopt_trigger!("incidents", "subject_kind, subject, rule, severity, state, first_seen, last_seen, attempts, rules_omitted, hosts_omitted, users_omitted, evidence_lines, evidence_digest, opened_at"),
    "CREATE TEMP TRIGGER incident_names_audit_adopt AFTER INSERT ON audit_adopt WHEN NEW.tbl = 'incident_names' BEGIN ",
    "INSERT INTO audit_log (seq, at, action, tbl, row_id, row_digest, prev, digest) ",
    "SELECT n.seq, n.at, 'adopt', 'incident_names', NEW.row_id, n.rd, n.prev, ",
    "hikeshi_audit_digest(n.seq, n.at, 'adopt', 'incident_names', NEW.row_id, n.rd, n.prev) FROM (SELECT ",
    "coalesce((SELECT max(seq) FROM audit_log), 0) + 1 AS seq, ",
    "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS at, ",
    "coalesce((SELECT digest FROM audit_log ORDER BY seq DESC LIMIT 1), zeroblob(32)) AS prev, ",
    "(SELECT hikeshi_names_digest(kind, name) FROM incident_names WHERE incident_id = NEW.row_id) AS rd) AS n;",
    " END;\n",
    adopt_trigger!("timeline", "incident_id, at, actor, kind, detail"),
    adopt_trigger!("evidence", "incident_id, first_seq, last_seq, lines, data"),
    adopt_trigger!("evidence_recent", "incident_id, first_seq, last_seq, lines, data"),
    adopt_trigger!("bans", "address, family, incident_id, reason, backend, created_at, expires_at, offence, removed_at, removed_reason"),
    adopt_trigger!("alert_outbox", "incident_id, created_at, channel, recipient, subject, body, attempts, next_attempt_at, last_error, delivered_at, digest_id, alert_key"),
    audit_triggers!("incidents", "subject_kind, subject, rule, severity, state, first_seen, last_seen, attempts, rules_omitted, hosts_omitted, users_omitted, evidence_lines, evidence_digest, opened_at", update),
    "INSERT INTO audit_adopt (tbl, row_id) SELECT DISTINCT 'incident_names', incident_id \
     FROM incident_names ORDER BY incident_id;\n",
    audit_triggers!("timeline", "incident_id, at, actor, kind, detail", append_only),
    audit_triggers!("evidence", "incident_id, first_seq, last_seq, lines, data", append_only),
    audit_triggers!("evidence_recent", "incident_id, first_seq, last_seq, lines, data", delete),
    audit_triggers!("bans", "address, family, incident_id, reason, backend, created_at, expires_at, offence, removed_at, removed_reason", update),
    audit_triggers!("alert_outbox", "incident_id, created_at, channel, recipient, subject, body, attempts, next_attempt_at, last_error, delivered_at, digest_id, alert_key", update),
    "DROP TABLE temp.audit_adopt;\n",
);

/// Registers the two SQL functions the audit triggers call. Every
/// connection that writes the database must have them: the store
/// registers them before it migrates.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    // hikeshi_row_digest(table, col, col, ...) → 32-byte blob.
    conn.create_scalar_function("hikeshi_row_digest", -1, flags, |ctx| {
        let table = text_of(ctx.get_raw(0));
        let values: Vec<Value<'_>> = (1..ctx.len()).map(|i| value_of(ctx.get_raw(i))).collect();
        Ok(audit::row_digest(&table, &values).to_vec())
    })?;
    // hikeshi_names_digest(kind, name): aggregate → blob.
    conn.create_aggregate_function("hikeshi_names_digest", 2, flags, NamesDigest)?;
    // hikeshi_audit_digest(seq, at, action, table, row_id, row_digest, prev) → blob.
    conn.create_scalar_function("hikeshi_audit_digest", 7, flags, |ctx| {
        let seq: i64 = ctx.get(0)?;
        let at = text_of(ctx.get_raw(1));
        let action = text_of(ctx.get_raw(2));
        let table = text_of(ctx.get_raw(3));
        let row_id: i64 = ctx.get(4)?;
        let row_digest = digest_of(ctx.get_raw(5));
        let prev = digest_of(ctx.get_raw(6));
        Ok(audit::entry_digest(seq, &at, &action, &table, row_id, &row_digest, &prev).to_vec())
    })?;
    Ok(())
}

/// The `hikeshi_names_digest` aggregate: collects `(kind, name)` pairs
/// and gives [`audit::names_digest`] of them.
struct NamesDigest;

impl rusqlite::functions::Aggregate<Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>> for NamesDigest {
    fn init(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
    ) -> rusqlite::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(Vec::new())
    }

    fn step(
        &self,
        ctx: &mut rusqlite::functions::Context<'_>,
        acc: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> rusqlite::Result<()> {
        acc.push((text_of(ctx.get_raw(0)).into_bytes(), text_of(ctx.get_raw(1)).into_bytes()));
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        acc: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    ) -> rusqlite::Result<Vec<u8>> {
        let acc = acc.unwrap_or_default();
        Ok(audit::names_digest(acc.iter().map(|(k, n)| (k.as_slice(), n.as_slice()))).to_vec())
    }
}

/// Appends one entry to the chain, in the caller's transaction: for rows
/// the triggers do not see (the names of an incident, per batch).
pub fn append(
    conn: &Connection,
    action: audit::Action,
    table: &str,
    row_id: i64,
    row_digest: &Sha256Digest,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, action, tbl, row_id, row_digest, prev, digest) \
         SELECT n.seq, n.at, ?1, ?2, ?3, ?4, n.prev, \
                hikeshi_audit_digest(n.seq, n.at, ?1, ?2, ?3, ?4, n.prev) \
         FROM (SELECT coalesce((SELECT max(seq) FROM audit_log), 0) + 1 AS seq, \
                      strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS at, \
                      coalesce((SELECT digest FROM audit_log ORDER BY seq DESC LIMIT 1), \
                               zeroblob(32)) AS prev) AS n",
    )?
    .execute(rusqlite::params![action.as_str(), table, row_id, &row_digest[..]])?;
    Ok(())
}

fn value_of(v: ValueRef<'_>) -> Value<'_> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(t) => Value::Text(t),
        ValueRef::Blob(b) => Value::Blob(b),
    }
}

/// Text as stored; anything else (an edited value of another type) in a
/// form that cannot be mistaken for the original.
fn text_of(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(n) => format!("\u{0}integer {n}"),
        ValueRef::Real(x) => format!("\u{0}real {x}"),
        ValueRef::Blob(b) => format!("\u{0}blob {}", hex(b)),
        ValueRef::Null => "\u{0}null".to_string(),
    }
}

/// A 32-byte blob as a digest; anything else becomes a digest of what it
/// is, which matches no genuine one (so a damaged value is reported as an
/// edit, not an error).
fn digest_of(v: ValueRef<'_>) -> Sha256Digest {
    match v {
        ValueRef::Blob(b) if b.len() == 32 => b.try_into().expect("32 bytes"),
        other => audit::row_digest("\u{0}not a digest", &[value_of(other)]),
    }
}

/// The latest entry of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// 0 when the chain is empty.
    pub seq: i64,
    pub at: Option<String>,
    /// All zeros when the chain is empty.
    #[serde(with = "hikeshi_core::incident::digest_hex")]
    pub digest: Sha256Digest,
}

/// What `hikeshi audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub entries: usize,
    /// Audited rows checked against the chain.
    pub rows: usize,
    pub head: Head,
    /// The first break, if the trail does not hold.
    pub broken: Option<ChainBreak>,
}

impl Store {
    /// The latest entry's digest, to keep off the host.
    pub fn audit_head(&self) -> Result<Head, StoreError> {
        read_head(self.conn()).map_err(|e| self.error(e))
    }

    /// Every entry, in `seq` order.
    pub fn audit_entries(&self) -> Result<Vec<ChainEntry>, StoreError> {
        read_entries(self.conn()).map_err(|e| self.error(e))
    }

    /// Checks the chain, then every audited row against it, then (if
    /// given) that the chain still contains `kept_head`.
    pub fn audit_verify(
        &self,
        kept_head: Option<&Sha256Digest>,
    ) -> Result<AuditReport, StoreError> {
        let entries = self.audit_entries()?;
        let live = read_live_rows(self.conn()).map_err(|e| self.error(e))?;
        let head = match entries.last() {
            Some(e) => Head { seq: e.seq, at: Some(e.at.clone()), digest: e.digest },
            None => Head { seq: 0, at: None, digest: audit::GENESIS },
        };
        let broken = audit::verify_chain(&entries)
            .and_then(|()| audit::check_rows(&entries, &live))
            .and_then(|()| match kept_head {
                Some(h) => audit::check_head(&entries, h),
                None => Ok(()),
            })
            .err();
        Ok(AuditReport { entries: entries.len(), rows: live.len(), head, broken })
    }
}

fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
    use rusqlite::OptionalExtension;
    let row = conn
        .query_row("SELECT seq, at, digest FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok(Head {
                seq: r.get(0)?,
                at: Some(text_of(r.get_ref(1)?)),
                digest: digest_of(r.get_ref(2)?),
            })
        })
        .optional()?;
    Ok(row.unwrap_or(Head { seq: 0, at: None, digest: audit::GENESIS }))
}

fn read_entries(conn: &Connection) -> rusqlite::Result<Vec<ChainEntry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, action, tbl, row_id, row_digest, prev, digest FROM audit_log ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ChainEntry {
            seq: r.get(0)?,
            at: text_of(r.get_ref(1)?),
            action: text_of(r.get_ref(2)?),
            table: text_of(r.get_ref(3)?),
            row_id: match r.get_ref(4)? {
                ValueRef::Integer(n) => n,
                _ => i64::MIN,
            },
            row_digest: digest_of(r.get_ref(5)?),
            prev: digest_of(r.get_ref(6)?),
            digest: digest_of(r.get_ref(7)?),
        })
    })?;
    rows.collect()
}

fn read_live_rows(conn: &Connection) -> rusqlite::Result<Vec<LiveRow>> {
    let mut live = Vec::new();
    for (table, key, cols) in AUDITED {
        // A store opened at an older schema (tests) lacks the later tables.
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )?;
        if !exists {
            continue;
        }
        let sql = format!("SELECT {key}, hikeshi_row_digest('{table}', {cols}) FROM {table}");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(LiveRow {
                table: table.to_string(),
                row_id: r.get(0)?,
                digest: digest_of(r.get_ref(1)?),
            })
        })?;
        for row in rows {
            live.push(row?);
        }
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT incident_id, hikeshi_names_digest(kind, name) FROM {NAMES_TABLE} GROUP BY incident_id"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(LiveRow {
            table: NAMES_TABLE.to_string(),
            row_id: r.get(0)?,
            digest: digest_of(r.get_ref(1)?),
        })
    })?;
    for row in rows {
        live.push(row?);
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_digest_the_columns_verify_reads() {
        let compact = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let schema = compact(&format!("{SCHEMA}{}", super::super::schema::EVIDENCE_LINES));
        assert!(!schema.contains("hikeshi_row_digest('incident_names'"));
        for (table, _, cols) in AUDITED {
            let named: String = compact(cols)
                .split(", ")
                .map(|c| format!("NEW.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let expected = format!("hikeshi_row_digest('{table}', {})", compact(cols));
            let expected_named = format!("hikeshi_row_digest('{table}', {named})");
            let uses = schema.matches(&expected).count() + schema.matches(&expected_named).count();
            assert!(uses >= 1, "{table}: the triggers must digest exactly {cols}");
            let any = schema.matches(&format!("hikeshi_row_digest('{table}',")).count();
            assert_eq!(uses, any, "{table}: a trigger digests other columns");
        }
    }
}
