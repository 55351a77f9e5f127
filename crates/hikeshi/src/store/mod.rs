//! The incident database: one SQLite file, `<data dir>/hikeshi.db`.
//!
//! This module owns opening it safely (a private file, WAL, a bounded wait
//! for locks, foreign keys, migrations) and turning SQLite's failures into
//! errors that name the file and say what to do. [`incidents`] owns the
//! incident tables; other modules add their tables as further
//! [`schema::Migration`]s and use [`Store::conn`] / [`Batch::conn`].
//!
//! Every write happens in a [`Batch`]: one IMMEDIATE transaction that
//! either commits whole (incidents, evidence, timeline and the caller's
//! file cursor together) or leaves no trace, so a crash or an error
//! mid-scan never leaves a half-written incident.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hikeshi_core::incident::{IncidentId, Limits, TransitionError};
use rusqlite::{Connection, ErrorCode, OpenFlags};

// `#[macro_use]`: schema.rs writes the audit triggers of later tables with
// the same macros.
#[macro_use]
pub mod audit;
mod evidence;
pub mod incidents;
pub mod lifecycle;
mod names;
pub mod schema;

pub use evidence::RecordedLine;
pub use incidents::{
    Batch, EvidenceRecord, Incident, IncidentDetail, IncidentFilter, StoredEvidence,
    StoredTimelineEntry,
};
pub use schema::{Migration, MIGRATIONS};

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "hikeshi.db";

/// The database path for a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE_NAME)
}

/// How long a write waits for another process (another `hikeshi scan`,
/// the daemon) to finish its transaction before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long to wait for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Bounds on what one incident remembers (users, hosts, evidence).
    pub limits: Limits,
    /// The schema steps to apply. Always [`MIGRATIONS`] outside tests.
    pub migrations: &'static [Migration],
    /// SQLite's page cache, in KiB.
    pub page_cache_kib: u32,
    /// Incidents kept in memory between transactions at most (beyond, the
    /// cache is emptied after a commit).
    pub max_cached_incidents: usize,
    /// The same, in the memory of their names (kept users and hosts, and
    /// the index of users), estimated: an incident may keep 1,000 users,
    /// so a count alone does not bound the bytes.
    pub max_cached_name_bytes: usize,
}

impl StoreOptions {
    /// The options the configuration asks for.
    pub fn from_config(config: &crate::config::Config) -> StoreOptions {
        StoreOptions { limits: config.incidents.limits(), ..StoreOptions::default() }
    }

    /// Smaller caches, for a process that runs for months (the daemon):
    /// memory follows the attacks in progress, not the history.
    pub fn long_running(
        mut self,
        page_cache_kib: u32,
        max_cached_incidents: usize,
        max_cached_name_bytes: usize,
    ) -> Self {
        self.page_cache_kib = page_cache_kib;
        self.max_cached_incidents = max_cached_incidents;
        self.max_cached_name_bytes = max_cached_name_bytes;
        self
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            limits: Limits::default(),
            migrations: MIGRATIONS,
            page_cache_kib: 65_536,
            max_cached_incidents: 50_000,
            max_cached_name_bytes: 512 << 20,
        }
    }
}

/// Everything that can go wrong with the database. Each message names the
/// file; the ones a person can fix say how.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the incident database {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },

    #[error(
        "the incident database {} is locked by another process (waited {}s): another \
         hikeshi (scan or daemon) is writing; try again when it has finished",
        path.display(), waited.as_secs_f64()
    )]
    Locked { path: PathBuf, waited: Duration },

    #[error(
        "the incident database {} is corrupt or not a hikeshi database ({detail}); it may \
         hold evidence, so keep a copy: move it aside (hikeshi then starts a new one) and \
         try `sqlite3 <copy> .recover` to salvage it",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the incident database {} was written by a newer hikeshi (schema version {found}; \
         this one knows up to {known}): upgrade hikeshi",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32, known: u32 },

    #[error(
        "cannot upgrade the incident database {} to schema version {version} ({name}): \
         {source}; the database was left at the previous version",
        path.display()
    )]
    Migration { path: PathBuf, version: u32, name: &'static str, source: rusqlite::Error },

    #[error("there is no incident {0}")]
    NoSuchIncident(IncidentId),

    #[error("incident {id}: {source}")]
    Transition { id: IncidentId, source: TransitionError },

    #[error("the incident database {}: {what}", path.display())]
    BadValue { path: PathBuf, what: String },

    #[error("the incident database {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
}

impl StoreError {
    /// Classifies a SQLite error: locks and corruption get their own,
    /// actionable, variants.
    pub(crate) fn from_sqlite(path: &Path, waited: Duration, err: rusqlite::Error) -> StoreError {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Locked { path: path.to_path_buf(), waited }
            }
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path: path.to_path_buf(), detail: err.to_string() }
            }
            _ => StoreError::Sqlite { path: path.to_path_buf(), source: err },
        }
    }
}

/// Where a store writes evidence lines (see [`evidence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EvidenceLayout {
    /// Schema version 5 on: a record per line in `evidence_lines`, the
    /// latest texts in `evidence_latest`. `legacy_rolling`: the database
    /// was migrated with rows in the old rolling table, which the window
    /// still trims. `shared_records` (version 7 on): a line counted in
    /// two incidents may have its SHA-256 stored only in the first.
    Current { legacy_rolling: bool, shared_records: bool },
    /// A store opened at an older schema (tests, benchmarks): the kept
    /// lines in `evidence` and `evidence_recent`.
    Legacy,
}

/// A store's incident cache against its caps (see [`StoreOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub incidents: usize,
    pub incidents_max: usize,
    pub name_bytes: usize,
    pub name_bytes_max: usize,
}

/// An open incident database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    layout: EvidenceLayout,
    cache: incidents::Cache,
}

impl Store {
    /// Opens the database of the data directory `ctx` names (creating the
    /// directory and the file if needed) with the configured limits.
    pub fn open_for(ctx: &crate::cli::Context) -> Result<Store, anyhow::Error> {
        Store::open_for_with(ctx, StoreOptions::from_config(&ctx.config))
    }

    /// [`Store::open_for`] with `options` (see [`StoreOptions::long_running`]).
    pub fn open_for_with(
        ctx: &crate::cli::Context,
        options: StoreOptions,
    ) -> Result<Store, anyhow::Error> {
        crate::data_dir::ensure(&ctx.data_dir)?;
        Ok(Store::open_with(&db_path(&ctx.data_dir), options)?)
    }

    /// Opens (creating it if needed) the database at `path` with the
    /// default options.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (creating it if needed, mode 0600: it holds evidence) the
    /// database at `path`, and brings its schema up to date.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        // Create the file ourselves so that it is private from its first
        // byte; SQLite gives its -wal and -shm files the same mode.
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let fail = |e| StoreError::from_sqlite(path, options.busy_timeout, e);
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(options.busy_timeout).map_err(fail)?;
        // Reading the header here turns a file that is not a database into
        // a clear error before anything else touches it.
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get::<_, String>(0))
            .map_err(fail)?;
        // NORMAL is consistent under WAL: a crash can lose the last
        // transactions, never corrupt them, and the file cursor commits in
        // the same transaction as the incidents it produced, so the lines
        // are simply read again.
        // A bigger page cache than SQLite's 2 MiB default keeps the
        // incident and index pages of a busy scan in memory.
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{};",
            options.page_cache_kib
        ))
        .map_err(fail)?;
        // Before migrating: the audit migration's triggers call them.
        audit::register_functions(&conn).map_err(fail)?;
        refuse_foreign_database(&conn, path).map_err(|e| match e {
            Ok(err) => err,
            Err(sqlite) => fail(sqlite),
        })?;
        schema::migrate(&mut conn, options.migrations).map_err(|e| match e {
            schema::MigrateError::TooNew { found, known } => {
                StoreError::TooNew { path: path.to_path_buf(), found, known }
            }
            schema::MigrateError::Step { version, name, source } => {
                match StoreError::from_sqlite(path, options.busy_timeout, source) {
                    StoreError::Sqlite { path, source } => {
                        StoreError::Migration { path, version, name, source }
                    }
                    other => other,
                }
            }
            schema::MigrateError::Sqlite(e) => fail(e),
        })?;
        conn.set_prepared_statement_cache_capacity(64);
        let layout = if schema::latest_version(options.migrations) < schema::EVIDENCE_LINES_VERSION
        {
            EvidenceLayout::Legacy
        } else {
            let legacy_rolling = conn
                .query_row("SELECT EXISTS (SELECT 1 FROM evidence_recent)", [], |r| r.get(0))
                .map_err(fail)?;
            let shared_records =
                schema::latest_version(options.migrations) >= schema::SHARED_RECORDS_VERSION;
            EvidenceLayout::Current { legacy_rolling, shared_records }
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            options,
            layout,
            cache: incidents::Cache::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub(crate) fn layout(&self) -> EvidenceLayout {
        self.layout
    }

    /// The connection, for other modules' reads of their own tables.
    /// Write through a [`Batch`].
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for modules that run their own transactions on
    /// their own tables (containment's bans). Incidents are written only
    /// through [`Store::batch`].
    pub fn conn_mut(&mut self) -> &mut Connection {
        self.cache_invalidate();
        &mut self.conn
    }

    /// The incidents cached between batches and the estimated memory of
    /// their names, against their caps. It walks the cache: for a status,
    /// not for every batch.
    pub fn cache_usage(&self) -> CacheUsage {
        CacheUsage {
            incidents: self.cache.len(),
            incidents_max: self.options.max_cached_incidents,
            name_bytes: self.cache.name_bytes(),
            name_bytes_max: self.options.max_cached_name_bytes,
        }
    }

    fn cache_invalidate(&mut self) {
        self.cache = incidents::Cache::default();
    }

    /// Runs SQLite's `quick_check` (reads the whole file: for `doctor`
    /// style commands, not for every open).
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check").map_err(|e| self.error(e))?;
        let problems: Vec<String> = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.error(e))?;
        if problems.len() == 1 && problems[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt { path: self.path.clone(), detail: problems.join("; ") })
        }
    }

    /// Starts a write batch (an IMMEDIATE transaction: it waits up to the
    /// busy timeout for other writers). Dropping it without
    /// [`Batch::commit`] rolls everything back.
    pub fn batch(&mut self) -> Result<Batch<'_>, StoreError> {
        Batch::begin(&self.conn, &self.path, &self.options, self.layout, &mut self.cache)
    }

    /// Runs `f` in one batch: commits if it returns `Ok`, rolls back
    /// (leaving no trace) if it returns `Err`.
    pub fn write<T, E>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut batch = self.batch()?;
        let value = f(&mut batch)?;
        batch.commit()?;
        Ok(value)
    }

    pub(crate) fn error(&self, err: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, self.options.busy_timeout, err)
    }
}

/// A database at version 0 must be empty: otherwise it belongs to some
/// other program and must not get our tables. The outer `Result` is
/// "refused", the inner a SQLite failure.
fn refuse_foreign_database(
    conn: &Connection,
    path: &Path,
) -> Result<(), Result<StoreError, rusqlite::Error>> {
    let version = schema::user_version(conn).map_err(Err)?;
    if version > 0 {
        return Ok(());
    }
    let objects: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0)).map_err(Err)?;
    if objects > 0 {
        return Err(Ok(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("it is a SQLite database with {objects} objects but no hikeshi schema"),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
