//! The `bans` and `ban_offences` tables: every ban hikeshi applied, with
//! its incident, and how often each target has offended (repeat
//! offenders get longer bans, remembered across restarts). A target is
//! stored as a [`BanTarget`] prints: an address as itself, a network as
//! `ADDR/LEN`.
//!
//! Times are Unix seconds (UTC). An active ban has `removed_at IS NULL`;
//! at most one ban per target is active. `expires_at IS NULL` is a
//! permanent ban. Rows are never deleted: they are evidence.

use hikeshi_core::contain::BanTarget;

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};

/// The tables this module owns; the store's migrations run it.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bans (
    id             INTEGER PRIMARY KEY,
    address        TEXT    NOT NULL,
    family         INTEGER NOT NULL CHECK (family IN (4, 6)),
    incident_id    INTEGER,
    reason         TEXT    NOT NULL,
    backend        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    offence        INTEGER NOT NULL,
    removed_at     INTEGER,
    removed_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS bans_one_active ON bans(address) WHERE removed_at IS NULL;
CREATE INDEX IF NOT EXISTS bans_by_incident ON bans(incident_id);
CREATE TABLE IF NOT EXISTS ban_offences (
    address         TEXT    PRIMARY KEY,
    offences        INTEGER NOT NULL,
    last_offence_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One row of `bans`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BanRecord {
    pub id: i64,
    pub address: BanTarget,
    pub incident_id: Option<i64>,
    pub reason: String,
    pub backend: String,
    pub created_at: Timestamp,
    /// `None`: permanent.
    pub expires_at: Option<Timestamp>,
    /// Which offence of this address the ban answered (1 = first).
    pub offence: u32,
    pub removed_at: Option<Timestamp>,
    pub removed_reason: Option<String>,
}

/// A ban about to be recorded.
#[derive(Debug, Clone)]
pub struct NewBan<'a> {
    pub address: BanTarget,
    pub incident_id: Option<i64>,
    pub reason: &'a str,
    pub backend: &'a str,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub offence: u32,
}

/// Creates the tables if missing.
pub fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// Counts one more offence of `address` and returns the new count.
pub fn record_offence(
    conn: &Connection,
    address: BanTarget,
    now: Timestamp,
) -> rusqlite::Result<u32> {
    conn.prepare_cached(
        "INSERT INTO ban_offences (address, offences, last_offence_at) VALUES (?1, 1, ?2)
         ON CONFLICT (address) DO UPDATE
           SET offences = offences + 1, last_offence_at = excluded.last_offence_at
         RETURNING offences",
    )?
    .query_row(params![address.to_string(), now.as_second()], |r| r.get(0))
}

/// The offence counts of `addresses` (absent: never offended), read in
/// one statement.
pub fn offences_of(
    conn: &Connection,
    addresses: &[BanTarget],
) -> rusqlite::Result<std::collections::HashMap<BanTarget, u32>> {
    let list: Vec<String> = addresses.iter().map(BanTarget::to_string).collect();
    let json = serde_json::to_string(&list).expect("strings serialize");
    let mut stmt = conn.prepare_cached(
        "SELECT o.address, o.offences FROM json_each(?1) AS j
         JOIN ban_offences AS o ON o.address = j.value",
    )?;
    let rows = stmt.query_map([json], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
    let mut counts = std::collections::HashMap::new();
    for row in rows {
        let (address, offences) = row?;
        if let Ok(addr) = address.parse() {
            counts.insert(addr, offences);
        }
    }
    Ok(counts)
}

/// Sets the offence counts of many addresses (at `now`).
pub fn set_offences(
    conn: &Connection,
    counts: &[(BanTarget, u32)],
    now: Timestamp,
) -> rusqlite::Result<()> {
    let addresses: Vec<String> = counts.iter().map(|(a, _)| a.to_string()).collect();
    let now = now.as_second();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(counts.len() * 3);
    for (address, (_, n)) in addresses.iter().zip(counts) {
        values.extend([address as &dyn ToSql, n, &now]);
    }
    execute_rows(
        conn,
        "INSERT INTO ban_offences (address, offences, last_offence_at)",
        "ON CONFLICT (address) DO UPDATE
           SET offences = excluded.offences, last_offence_at = excluded.last_offence_at",
        3,
        &values,
    )
}

/// Records many new active bans, a few hundred rows per statement.
pub fn insert_bans(conn: &Connection, bans: &[NewBan<'_>]) -> rusqlite::Result<()> {
    let addresses: Vec<String> = bans.iter().map(|b| b.address.to_string()).collect();
    let families: Vec<i64> = bans.iter().map(|b| if b.address.is_ipv4() { 4 } else { 6 }).collect();
    let created: Vec<i64> = bans.iter().map(|b| b.created_at.as_second()).collect();
    let expires: Vec<Option<i64>> =
        bans.iter().map(|b| b.expires_at.map(|t| t.as_second())).collect();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(bans.len() * 8);
    for (i, b) in bans.iter().enumerate() {
        values.extend([
            &addresses[i] as &dyn ToSql,
            &families[i],
            &b.incident_id,
            &b.reason,
            &b.backend,
            &created[i],
            &expires[i],
            &b.offence,
        ]);
    }
    execute_rows(
        conn,
        "INSERT INTO bans (address, family, incident_id, reason, backend, created_at, expires_at, offence)",
        "",
        8,
        &values,
    )
}

/// Runs `head VALUES (?,..),(?,..) tail` over `values` (`width` per row),
/// 256 rows per statement: far fewer statements than rows, which is what
/// makes a 100,000-address ban cheap to record.
fn execute_rows(
    conn: &Connection,
    head: &str,
    tail: &str,
    width: usize,
    values: &[&dyn ToSql],
) -> rusqlite::Result<()> {
    const ROWS: usize = 256;
    let row = format!("({})", vec!["?"; width].join(","));
    for chunk in values.chunks(ROWS * width) {
        let rows = chunk.len() / width;
        let sql = format!("{head} VALUES {} {tail}", vec![row.as_str(); rows].join(","));
        conn.prepare_cached(&sql)?.execute(chunk)?;
    }
    Ok(())
}

/// How many offences `address` has committed (0 if none).
pub fn offences(conn: &Connection, address: BanTarget) -> rusqlite::Result<u32> {
    conn.prepare_cached("SELECT offences FROM ban_offences WHERE address = ?1")?
        .query_row([address.to_string()], |r| r.get(0))
        .optional()
        .map(|n| n.unwrap_or(0))
}

/// Records a new active ban; returns its id.
pub fn insert_ban(conn: &Connection, ban: &NewBan<'_>) -> rusqlite::Result<i64> {
    let family = if ban.address.is_ipv4() { 4 } else { 6 };
    conn.prepare_cached(
        "INSERT INTO bans (address, family, incident_id, reason, backend, created_at, expires_at, offence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ban.address.to_string(),
        family,
        ban.incident_id,
        ban.reason,
        ban.backend,
        ban.created_at.as_second(),
        ban.expires_at.map(|t| t.as_second()),
        ban.offence,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Moves the end of active ban `id` (extending a ban refreshes it).
pub fn set_expiry(
    conn: &Connection,
    id: i64,
    expires_at: Option<Timestamp>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE bans SET expires_at = ?2 WHERE id = ?1")?
        .execute(params![id, expires_at.map(|t| t.as_second())])?;
    Ok(())
}

const COLUMNS: &str = "id, address, incident_id, reason, backend, created_at, expires_at, offence, removed_at, removed_reason";

fn from_row(row: &Row<'_>) -> rusqlite::Result<BanRecord> {
    let address: String = row.get(1)?;
    let address = address.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let time = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        let secs: Option<i64> = row.get(i)?;
        secs.map(|s| {
            Timestamp::from_second(s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Integer,
                    Box::new(e),
                )
            })
        })
        .transpose()
    };
    Ok(BanRecord {
        id: row.get(0)?,
        address,
        incident_id: row.get(2)?,
        reason: row.get(3)?,
        backend: row.get(4)?,
        created_at: time(5)?.unwrap_or(Timestamp::UNIX_EPOCH),
        expires_at: time(6)?,
        offence: row.get(7)?,
        removed_at: time(8)?,
        removed_reason: row.get(9)?,
    })
}

/// The active ban of `address`, if any.
pub fn active_ban(conn: &Connection, address: BanTarget) -> rusqlite::Result<Option<BanRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM bans WHERE address = ?1 AND removed_at IS NULL"
    ))?
    .query_row([address.to_string()], from_row)
    .optional()
}

/// Every active ban (including ones whose time has passed but that
/// [`expire_bans`] has not closed yet), oldest first.
pub fn active_bans(conn: &Connection) -> rusqlite::Result<Vec<BanRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM bans WHERE removed_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// The active bans of `addresses` (read in one statement).
pub fn active_bans_of(
    conn: &Connection,
    addresses: &[BanTarget],
) -> rusqlite::Result<Vec<BanRecord>> {
    let list: Vec<String> = addresses.iter().map(BanTarget::to_string).collect();
    let json = serde_json::to_string(&list).expect("strings serialize");
    let columns = COLUMNS.split(", ").map(|c| format!("b.{c}")).collect::<Vec<_>>().join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM json_each(?1) AS j
         JOIN bans AS b ON b.address = j.value AND b.removed_at IS NULL"
    ))?;
    let rows = stmt.query_map([json], from_row)?;
    rows.collect()
}

/// Every ban recorded for incident `incident_id`, oldest first (reports).
pub fn bans_of_incident(conn: &Connection, incident_id: i64) -> rusqlite::Result<Vec<BanRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM bans WHERE incident_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([incident_id], from_row)?;
    rows.collect()
}

/// Every ban ever recorded, newest first, at most `limit`.
pub fn all_bans(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<BanRecord>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM bans ORDER BY id DESC LIMIT ?1"))?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], from_row)?;
    rows.collect()
}

/// Closes the active ban of `address` (`removed_reason` says why) and
/// returns it, or `None` if it had none.
pub fn remove_ban(
    conn: &Connection,
    address: BanTarget,
    now: Timestamp,
    reason: &str,
) -> rusqlite::Result<Option<BanRecord>> {
    let Some(mut ban) = active_ban(conn, address)? else { return Ok(None) };
    conn.prepare_cached("UPDATE bans SET removed_at = ?2, removed_reason = ?3 WHERE id = ?1")?
        .execute(params![ban.id, now.as_second(), reason])?;
    ban.removed_at = Some(now);
    ban.removed_reason = Some(reason.to_string());
    Ok(Some(ban))
}

/// Closes every active ban that has ended by `now` (reason "expired")
/// and returns them.
pub fn expire_bans(conn: &Connection, now: Timestamp) -> rusqlite::Result<Vec<BanRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE bans SET removed_at = ?1, removed_reason = 'expired'
         WHERE removed_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?1
         RETURNING {COLUMNS}"
    ))?;
    let rows = stmt.query_map([now.as_second()], from_row)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        create_tables(&conn).unwrap();
        conn
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn ban<'a>(addr: &str, at: i64, until: Option<i64>) -> NewBan<'a> {
        NewBan {
            address: addr.parse().unwrap(),
            incident_id: Some(7),
            reason: "brute force",
            backend: "nftables",
            created_at: t(at),
            expires_at: until.map(t),
            offence: 1,
        }
    }

    #[test]
    fn offences_are_counted_per_address() {
        let conn = db();
        let a: BanTarget = "203.0.113.5".parse().unwrap();
        assert_eq!(offences(&conn, a).unwrap(), 0);
        assert_eq!(record_offence(&conn, a, t(0)).unwrap(), 1);
        assert_eq!(record_offence(&conn, a, t(5)).unwrap(), 2);
        assert_eq!(record_offence(&conn, "2001:db8::1".parse().unwrap(), t(5)).unwrap(), 1);
        assert_eq!(offences(&conn, a).unwrap(), 2);
    }

    #[test]
    fn batches_match_single_row_versions() {
        let conn = db();
        let a: BanTarget = "203.0.113.5".parse().unwrap();
        let b: BanTarget = "2001:db8::7".parse().unwrap();
        record_offence(&conn, a, t(0)).unwrap();
        let counts = offences_of(&conn, &[a, b]).unwrap();
        assert_eq!(counts.get(&a), Some(&1));
        assert_eq!(counts.get(&b), None);
        set_offences(&conn, &[(a, 2), (b, 1)], t(1)).unwrap();
        assert_eq!(offences(&conn, a).unwrap(), 2);
        assert_eq!(offences(&conn, b).unwrap(), 1);
        // Many rows: more than one statement's worth.
        let many: Vec<(BanTarget, u32)> =
            (0..1000u32).map(|i| (BanTarget::addr(i.to_be_bytes().into()), i + 1)).collect();
        set_offences(&conn, &many, t(2)).unwrap();
        assert_eq!(offences_of(&conn, &[many[999].0]).unwrap()[&many[999].0], 1000);
        let mut first = ban("203.0.113.5", 1, Some(61));
        first.offence = 2;
        let second = NewBan {
            incident_id: None,
            reason: "it's \"quoted\" ✓",
            ..ban("2001:db8::7", 1, None)
        };
        insert_bans(&conn, &[first, second]).unwrap();
        let got = active_bans(&conn).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].address, got[0].offence, got[0].expires_at), (a, 2, Some(t(61))));
        assert_eq!(got[0].incident_id, Some(7));
        assert_eq!((got[1].address, got[1].incident_id, got[1].expires_at), (b, None, None));
        assert_eq!(got[1].reason, "it's \"quoted\" ✓");
        let family: i64 = conn
            .query_row("SELECT family FROM bans WHERE id = ?1", [got[1].id], |r| r.get(0))
            .unwrap();
        assert_eq!(family, 6);
        let of = active_bans_of(&conn, &[b, "192.0.2.99".parse().unwrap()]).unwrap();
        assert_eq!(of.len(), 1);
        assert_eq!(of[0].address, b);
        // The one-active-ban rule holds for batches too.
        assert!(insert_bans(&conn, &[ban("203.0.113.5", 2, None)]).is_err());
    }

    #[test]
    fn one_active_ban_per_address_and_round_trip() {
        let conn = db();
        let id = insert_ban(&conn, &ban("2001:db8::5", 0, Some(60))).unwrap();
        assert!(insert_ban(&conn, &ban("2001:db8::5", 1, None)).is_err());
        let got = active_ban(&conn, "2001:db8::5".parse().unwrap()).unwrap().unwrap();
        assert_eq!(got.id, id);
        assert_eq!(got.expires_at, Some(t(60)));
        assert_eq!(got.incident_id, Some(7));
        set_expiry(&conn, id, None).unwrap();
        assert_eq!(active_bans(&conn).unwrap()[0].expires_at, None);
        let removed = remove_ban(&conn, got.address, t(9), "unban by operator").unwrap().unwrap();
        assert_eq!(removed.removed_reason.as_deref(), Some("unban by operator"));
        assert!(active_ban(&conn, got.address).unwrap().is_none());
        // A new ban after removal is allowed; the old row stays as evidence.
        insert_ban(&conn, &ban("2001:db8::5", 10, None)).unwrap();
        assert_eq!(all_bans(&conn, 10).unwrap().len(), 2);
    }

    #[test]
    fn networks_round_trip_and_a_damaged_address_is_an_error() {
        let conn = db();
        insert_ban(&conn, &ban("2001:db8:1:2::/64", 0, Some(60))).unwrap();
        let got = active_bans(&conn).unwrap();
        assert_eq!(got[0].address.to_string(), "2001:db8:1:2::/64");
        assert_eq!(active_ban(&conn, got[0].address).unwrap().unwrap().id, got[0].id);
        for damaged in ["2001:db8::/129", "203.0.113.5; rm -rf /", ""] {
            conn.execute("UPDATE bans SET address = ?1", [damaged]).unwrap();
            let err = active_bans(&conn).unwrap_err().to_string();
            assert!(err.contains("not an IP address or network"), "{damaged:?}: {err}");
        }
        conn.execute("UPDATE bans SET address = CAST(X'FFFE' AS TEXT)", []).unwrap();
        assert!(active_bans(&conn).is_err());
    }

    #[test]
    fn expiry_closes_only_ended_timed_bans() {
        let conn = db();
        insert_ban(&conn, &ban("192.0.2.1", 0, Some(10))).unwrap();
        insert_ban(&conn, &ban("192.0.2.2", 0, Some(100))).unwrap();
        insert_ban(&conn, &ban("192.0.2.3", 0, None)).unwrap();
        let expired = expire_bans(&conn, t(10)).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].address.to_string(), "192.0.2.1");
        assert_eq!(expired[0].removed_reason.as_deref(), Some("expired"));
        let active: Vec<String> =
            active_bans(&conn).unwrap().iter().map(|b| b.address.to_string()).collect();
        assert_eq!(active, ["192.0.2.2", "192.0.2.3"]);
    }
}
