//! The database schema and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`. [`MIGRATIONS`]
//! lists every step in order; opening a store applies the ones it has not
//! seen yet, in one transaction together with the version bump, so a
//! crash or a failing step leaves the database at its previous version,
//! never between.
//! A database written by a newer hikeshi (a higher version) is refused
//! rather than misread.
//!
//! To add tables (the alert outbox, bans, the audit chain, ...), append a
//! [`Migration`] with the next version number; never edit a released one.

use rusqlite::{Connection, TransactionBehavior};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `user_version` after this step: 1, 2, 3, ... without gaps.
    pub version: u32,
    /// A short name, said in errors.
    pub name: &'static str,
    /// The SQL (several statements allowed).
    pub sql: &'static str,
}

/// Every migration of the hikeshi database, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "incidents", sql: INCIDENTS_V1 },
    Migration { version: 2, name: "alert_outbox", sql: crate::notify::outbox::SCHEMA },
    Migration { version: 3, name: "bans", sql: crate::contain::store::SCHEMA },
    Migration { version: 4, name: "audit_log", sql: super::audit::SCHEMA },
    Migration { version: EVIDENCE_LINES_VERSION, name: "evidence_lines", sql: EVIDENCE_LINES },
    Migration { version: 6, name: "incident_changes", sql: INCIDENT_CHANGES },
    Migration { version: SHARED_RECORDS_VERSION, name: "shared_records", sql: SHARED_RECORDS },
];

/// The schema version from which evidence is written as a record per line
/// (`evidence_lines`, `evidence_latest`).
pub const EVIDENCE_LINES_VERSION: u32 = 5;

/// The schema version from which a line counted in two incidents has its
/// SHA-256 stored once (`store::evidence`, flag bit 2).
pub const SHARED_RECORDS_VERSION: u32 = 7;

/// No table changes: version 7 marks that `evidence_lines` records may
/// point to another incident's record of the same line for its SHA-256,
/// so that a hikeshi which cannot read such records refuses the database
/// (as too new) instead of failing on them.
pub const SHARED_RECORDS: &str =
    "-- evidence_lines records may refer to another incident's record\n";

/// The schema version this build writes.
pub fn latest_version(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(0, |m| m.version)
}

/// Incidents, their timeline and evidence, and the file cursors.
///
/// `timeline` and `evidence` are append-only (triggers refuse UPDATE and
/// DELETE), so their ids only grow (a row's id is one more than the
/// largest, and no row ever goes away): a hash chain over them can be
/// added later without rewriting history. (AUTOINCREMENT would add a
/// write per row for the same guarantee.)
/// Evidence lines are stored in chunks of packed records (one row per
/// incident per batch, see `store::evidence`): the first lines of an
/// incident, and any line that raised its severity, in `evidence` for
/// good; its latest lines in `evidence_recent`, the one rolling table,
/// whose chunks are deleted once all their lines have left the "latest"
/// window. Every line, kept or not, is counted and digested in its
/// incident's row.
pub const INCIDENTS_V1: &str = r#"
CREATE TABLE incidents (
    id               INTEGER PRIMARY KEY,
    subject_kind     TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    rule             TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    first_seen       TEXT    NOT NULL,           -- RFC 3339
    last_seen        TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    rules_omitted    INTEGER NOT NULL,           -- sightings beyond the kept names
    hosts_omitted    INTEGER NOT NULL,
    users_omitted    INTEGER NOT NULL,
    evidence_lines   INTEGER NOT NULL,           -- every line, kept or not
    evidence_digest  BLOB    NOT NULL,           -- chained SHA-256 over them
    opened_at        TEXT    NOT NULL
);
-- At most one open incident per campaign.
CREATE UNIQUE INDEX incidents_open_campaign
    ON incidents (subject_kind, subject) WHERE state <> 'closed';
CREATE INDEX incidents_state ON incidents (state, id);

-- The bounded name sets of each incident (rules fired, hosts attacked,
-- user names tried): one row per kept name, written once when first seen.
CREATE TABLE incident_names (
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    kind         TEXT    NOT NULL,               -- 'rule', 'host' or 'user'
    name         TEXT    NOT NULL,
    PRIMARY KEY (incident_id, kind, name)
) WITHOUT ROWID;

CREATE TABLE timeline (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    at           TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);

CREATE TABLE evidence (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    first_seq    INTEGER NOT NULL,               -- seq of its first record
    last_seq     INTEGER NOT NULL,               -- seq of its last record
    lines        INTEGER NOT NULL,               -- records in it
    data         BLOB    NOT NULL                -- packed records (store::evidence)
);
CREATE INDEX evidence_incident ON evidence (incident_id, id);

CREATE TABLE evidence_recent (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    lines        INTEGER NOT NULL,
    data         BLOB    NOT NULL
);
CREATE INDEX evidence_recent_incident ON evidence_recent (incident_id, last_seq);

CREATE TABLE cursors (
    key         TEXT PRIMARY KEY,
    value       BLOB NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER timeline_no_update BEFORE UPDATE ON timeline
    BEGIN SELECT RAISE(ABORT, 'timeline rows are append-only'); END;
CREATE TRIGGER timeline_no_delete BEFORE DELETE ON timeline
    BEGIN SELECT RAISE(ABORT, 'timeline rows are append-only'); END;
CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence rows are append-only'); END;
CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence rows are append-only'); END;
"#;

/// Which incident each write changed (schema version 6), so that a
/// connection that keeps incidents in memory between transactions
/// (`store::incidents::Cache`) forgets only those another connection
/// changed, rather than all of them at every commit of another writer.
/// The daemon's workers commit ban outcomes and alert deliveries many
/// times a second while its owner keeps tens of thousands of incidents
/// cached.
///
/// Triggers write the rows, so that no write path can forget to. A row's
/// `seq` is one more than the largest (rows are pruned only from the
/// oldest end, never the newest): a reader that remembers the last `seq`
/// it has seen finds every change since, or sees that the rows it needed
/// were pruned and forgets everything.
pub const INCIDENT_CHANGES: &str = r#"
CREATE TABLE incident_changes (
    seq          INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL
);
CREATE TRIGGER incidents_changed_insert AFTER INSERT ON incidents
    BEGIN INSERT INTO incident_changes (incident_id) VALUES (NEW.id); END;
CREATE TRIGGER incidents_changed_update AFTER UPDATE ON incidents
    BEGIN INSERT INTO incident_changes (incident_id) VALUES (NEW.id); END;
"#;

/// Why migrating failed (mapped to a `StoreError` with the file name).
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The database is newer than this program.
    TooNew { found: u32, known: u32 },
    /// A step failed; nothing of the pending steps was applied.
    Step { version: u32, name: &'static str, source: rusqlite::Error },
    /// Reading the version failed.
    Sqlite(rusqlite::Error),
}

/// Brings `conn` up to the last of `migrations`. Applying an already
/// applied list does nothing, so it runs on every open.
pub(crate) fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<u32, MigrateError> {
    debug_assert!(
        migrations.iter().enumerate().all(|(i, m)| m.version as usize == i + 1),
        "migration versions must be 1, 2, 3, ... without gaps"
    );
    let known = latest_version(migrations);
    let current = user_version(conn).map_err(MigrateError::Sqlite)?;
    if current > known {
        return Err(MigrateError::TooNew { found: current, known });
    }
    if current == known {
        return Ok(known);
    }
    // All pending steps in one transaction: a new database is created in
    // one commit, and a crash or a failing step leaves the version the
    // database had. IMMEDIATE: two hikeshi processes opening a new
    // database at once must not both run the steps; the second waits,
    // then sees the new version and skips them.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(MigrateError::Sqlite)?;
    let now = user_version(&tx).map_err(MigrateError::Sqlite)?;
    if now > known {
        return Err(MigrateError::TooNew { found: now, known });
    }
    for m in migrations.iter().filter(|m| m.version > now) {
        tx.execute_batch(m.sql).map_err(|source| MigrateError::Step {
            version: m.version,
            name: m.name,
            source,
        })?;
    }
    if now < known {
        tx.pragma_update(None, "user_version", known).map_err(MigrateError::Sqlite)?;
    }
    tx.commit().map_err(MigrateError::Sqlite)?;
    Ok(known)
}

/// The schema version stored in the database.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// The evidence tables without their audit triggers (to measure the audit
/// trail's cost in benchmarks).
macro_rules! evidence_lines_tables {
    () => {
        r#"
CREATE TABLE evidence_lines (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    first_seq    INTEGER NOT NULL,               -- seq of its first line
    last_seq     INTEGER NOT NULL,               -- seq of its last line (consecutive)
    lines        INTEGER NOT NULL,
    data         BLOB    NOT NULL                -- records (store::evidence)
);
CREATE INDEX evidence_lines_incident ON evidence_lines (incident_id, id);

CREATE TABLE evidence_latest (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    lines        INTEGER NOT NULL,
    data         BLOB    NOT NULL                -- texts (store::evidence)
);
CREATE INDEX evidence_latest_incident ON evidence_latest (incident_id, last_seq);

CREATE TRIGGER evidence_lines_no_update BEFORE UPDATE ON evidence_lines
    BEGIN SELECT RAISE(ABORT, 'evidence rows are append-only'); END;
CREATE TRIGGER evidence_lines_no_delete BEFORE DELETE ON evidence_lines
    BEGIN SELECT RAISE(ABORT, 'evidence rows are append-only'); END;
"#
    };
}

/// Evidence as a record per line (schema version 5).
///
/// Every line attributed to an incident gets a compact record in
/// `evidence_lines` (append-only): its file, offset and SHA-256, with its
/// text when the cap keeps it for good (the first lines, a line that
/// raised the severity, explicit attachments). The texts of the latest
/// lines go to `evidence_latest`, the rolling table, whose chunks are
/// deleted once all their lines have left the "latest" window. Both are
/// audited like the tables they succeed. The version 1 tables `evidence`
/// and `evidence_recent` keep what was written before, read beside these.
/// See `store::evidence` for the chunk formats.
pub const EVIDENCE_LINES: &str = concat!(
    evidence_lines_tables!(),
    "CREATE TRIGGER evidence_lines_audit_insert AFTER INSERT ON evidence_lines BEGIN ",
    append!(
        "insert",
        "evidence_lines",
        "NEW.rowid",
        "incident_id, first_seq, last_seq, lines, data"
    ),
    " END;\n",
    "CREATE TRIGGER evidence_latest_audit_insert AFTER INSERT ON evidence_latest BEGIN ",
    append!(
        "insert",
        "evidence_latest",
        "NEW.rowid",
        "incident_id, first_seq, last_seq, lines, data"
    ),
    " END;\n",
    "CREATE TRIGGER evidence_latest_audit_delete BEFORE DELETE ON evidence_latest BEGIN ",
    append!(
        "delete",
        "evidence_latest",
        "OLD.rowid",
        "incident_id, first_seq, last_seq, lines, data"
    ),
    " END;\n",
);

/// [`EVIDENCE_LINES`] without the audit triggers, for a benchmark's store
/// without the audit trail (whose version 4 step is then a no-op).
pub const EVIDENCE_LINES_UNAUDITED: &str = evidence_lines_tables!();
