//! `hikeshi watch`, the live daemon: sources → one bounded channel → the
//! owner thread (parse, detect, record, enqueue alerts, one store
//! transaction per batch) → the workers (containment, alert delivery).
//!
//! Data flow and its guarantees:
//! - Each source runs on its own threads and sends [`Incoming`] items into
//!   one bounded channel ([`crate::config::WatchConfig::queue`] items). A
//!   file or the journal waits when it is full (the lines stay on disk);
//!   a network receiver drops and counts what it cannot queue. The status
//!   shows both.
//! - The owner takes what is queued (up to [`MAX_BATCH`] items), handles it
//!   in one transaction, and only then commits the file positions and the
//!   journal cursor: a crash re-reads at most what was handled since the
//!   last cursor flush, and never skips a line. A failed transaction is
//!   retried with the same items (the sources wait meanwhile).
//! - Ban requests and alerts leave the owner after the commit, to the
//!   [`workers`]; a slow firewall or mail server never stalls reading.
//! - SIGTERM and SIGINT: stop the sources, handle what is queued, save the
//!   detection state and the cursors, finish the queued bans, exit 0.
//!   SIGHUP: the same, then start again with the configuration re-read
//!   (a bad one is refused and the running one kept); detection state,
//!   incidents and bans carry over.
//! - Every [`status::STATUS_EVERY`] the owner rewrites the status file
//!   (`hikeshi status`, `hikeshi verify`) and the metrics page.

pub mod cursors;
pub mod ingest;
pub mod metrics;
pub mod status;
pub mod workers;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use jiff::Timestamp;

use crate::cli::Context;
use crate::config::Config;
use crate::sources::journal::{JournalCursorStore, JournalHandle, JournalSource};
use crate::sources::lines::{Line, LineReader};
use crate::sources::syslog_server::SyslogServer;
use crate::sources::tail::{CursorStore, FileSource, TailCounters};
use crate::sources::{Incoming, Payload, SourceStats};
use crate::store::Store;
use ingest::Ingest;
use status::{DaemonStatus, SourceStatus};
use workers::Workers;

/// Items handled in one transaction at most.
pub const MAX_BATCH: usize = 4096;
/// How long the owner waits for input before looking at signals and timers.
const TICK: Duration = Duration::from_millis(200);
/// How often idle connections are resolved.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How often the parsers' clocks move and ended ban requests are forgotten.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
/// How often the detection state is saved (it is also saved on stop).
const SAVE_STATE_EVERY: Duration = Duration::from_secs(300);
/// The line that tells a supervisor (and the tests) that every source is
/// started: lines written from now on will be seen.
pub const READY_LINE: &str = "hikeshi watch: ready";

/// How `hikeshi watch` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Read lines from standard input too.
    pub stdin: bool,
    /// Detect, record and alert, but change no firewall.
    pub no_ban: bool,
}

/// Why a run of the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
    /// Standard input, the only source, ended.
    InputEnded,
}

/// The signal flags.
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .context("cannot install signal handlers")?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&reload))
            .context("cannot install signal handlers")?;
        Ok(Signals { stop, reload })
    }
}

/// What lives across reloads.
struct Daemon {
    ctx: Arc<Context>,
    options: WatchOptions,
    signals: Signals,
    tx: SyncSender<Incoming>,
    rx: Receiver<Incoming>,
    cursors: Arc<CursorStore>,
    stdin: Option<StdinSource>,
    started_at: Timestamp,
    reloads: u64,
    reload_failures: u64,
    metrics_page: Arc<Mutex<String>>,
    /// The configuration before a reload, until the reloaded one has
    /// started.
    previous: Option<Arc<Context>>,
}

/// Makes every thread of the daemon allocate from one glibc malloc arena
/// (unless `MALLOC_ARENA_MAX` is set). With an arena per thread, memory a
/// worker frees stays in its own arena, and the RSS of a long-running
/// daemon climbs in steps of megabytes as one arena after another grows;
/// `bench/watch-ingest.sh` measured those steps at 200,000 lines/s, and
/// none with one arena, at the same CPU time (each thread's cache of small
/// blocks still allocates without the arena's lock).
fn share_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // `mallopt` only sets a tunable of the allocator; it has no
        // preconditions and returns 0 if the value is refused.
        #[allow(unsafe_code)]
        let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        if set == 0 {
            tracing::debug!("malloc refused M_ARENA_MAX = 1");
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or the end of standard input when
/// it is the only source).
pub fn run(ctx: Context, options: WatchOptions) -> Result<()> {
    share_one_malloc_arena();
    crate::data_dir::ensure(&ctx.data_dir)?;
    let signals = Signals::install()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(ctx.config.watch.queue.max(1));
    let cursors = CursorStore::open(&ctx.data_dir.join("cursors"), cursors::FLUSH_EVERY)
        .context("file positions")?;
    let stdin = if options.stdin {
        Some(StdinSource::spawn(tx.clone(), ctx.config.parse.max_line_bytes)?)
    } else {
        None
    };
    let mut daemon = Daemon {
        ctx: Arc::new(ctx),
        options,
        signals,
        tx,
        rx,
        cursors,
        stdin,
        started_at: Timestamp::now(),
        reloads: 0,
        reload_failures: 0,
        metrics_page: Arc::default(),
        previous: None,
    };
    loop {
        match daemon.run_once() {
            Ok(Exit::Stop | Exit::InputEnded) => return Ok(()),
            Ok(Exit::Reload) => daemon.reload(),
            Err(err) => match daemon.previous.take() {
                // A reloaded configuration that parses but cannot run (a
                // port taken, a file source that cannot start): back to
                // the one that ran.
                Some(previous) => {
                    tracing::error!(
                        "the reloaded configuration cannot run, going back to the previous one: {err:#}"
                    );
                    daemon.reloads -= 1;
                    daemon.reload_failures += 1;
                    daemon.ctx = previous;
                }
                None => return Err(err),
            },
        }
    }
}

impl Daemon {
    fn reload(&mut self) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let path = self.ctx.config_path.clone();
        match Config::load(path.as_deref()).and_then(|(config, path)| {
            validate(&config, self.options.stdin)?;
            Ok((config, path))
        }) {
            Ok((config, config_path)) => {
                self.reloads += 1;
                tracing::info!("configuration reloaded");
                let data_dir = self.ctx.data_dir.clone();
                let new = Arc::new(Context { config, config_path, data_dir });
                self.previous = Some(std::mem::replace(&mut self.ctx, new));
            }
            Err(err) => {
                self.reload_failures += 1;
                tracing::error!("reload refused, keeping the running configuration: {err:#}");
            }
        }
    }

    /// One run with one configuration: start, loop, stop.
    fn run_once(&mut self) -> Result<Exit> {
        let ctx = Arc::clone(&self.ctx);
        validate(&ctx.config, self.options.stdin)?;
        let mut store = open_store(&ctx, Role::Owner)?;
        // The owner never checkpoints the WAL itself: a checkpoint fsyncs
        // (milliseconds on a disk), and one inside the commit of a batch
        // would hold back the bans that batch asks for. A worker does it
        // (`workers::checkpoint_loop`).
        store.conn().pragma_update(None, "wal_autocheckpoint", 0)?;
        // The writer is the one that starts the WAL again after a
        // restarting checkpoint, and cuts the file back to this size then.
        store.conn().pragma_update(None, "journal_size_limit", workers::WAL_SIZE_LIMIT)?;
        let journal_cursor =
            cursors::JournalCursor::new(ctx.config.watch.journal.cursor_path(&ctx.data_dir));
        let mut ingest = Ingest::new(
            &ctx,
            &store,
            Timestamp::now(),
            self.options.no_ban,
            journal_cursor.clone(),
        )?;
        let flusher = cursors::Flusher::start(Arc::clone(&self.cursors), journal_cursor.clone())?;
        let workers = Workers::start(Arc::clone(&ctx), !self.options.no_ban)?;
        let sources = Sources::start(&ctx, &self.tx, &self.cursors, self.options.stdin)?;
        let metrics = match ctx.config.watch.metrics_addr()? {
            Some(addr) => {
                Some(metrics::MetricsServer::start(addr, Arc::clone(&self.metrics_page))?)
            }
            None => None,
        };
        let backend = if self.options.no_ban { "none" } else { ctx.config.contain.backend.name() };
        let mut reporter = Reporter {
            path: status::status_path(&ctx.data_dir),
            config: ctx.config_path.as_ref().map(|p| p.display().to_string()),
            backend: backend.to_string(),
            silent_after_seconds: ctx.config.watch.silent_after_seconds()?,
            metrics: metrics.as_ref().map(|m| m.addr().to_string()),
            started_at: self.started_at,
            sources_started_at: Timestamp::now(),
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            page: Arc::clone(&self.metrics_page),
        };
        reporter.write(sources.statuses(), self.stdin.as_ref(), (&ingest, &store), &workers, true);
        let count = sources.count() + usize::from(self.stdin.is_some());
        eprintln!("{READY_LINE} (sources: {count}, firewall: {backend})");
        // After a reload too: systemd waits for it after RELOADING=1.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        self.previous = None;

        let mut timers = Timers::new();
        let mut items: Vec<Incoming> = Vec::with_capacity(MAX_BATCH);
        let exit = loop {
            if self.signals.stop.load(Ordering::SeqCst) {
                break Exit::Stop;
            }
            if self.signals.reload.swap(false, Ordering::SeqCst) {
                break Exit::Reload;
            }
            match self.rx.recv_timeout(TICK) {
                Ok(item) => {
                    items.push(item);
                    while items.len() < MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(item) => items.push(item),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the daemon holds a sender"),
            }
            if !items.is_empty() {
                self.handle(&mut store, &mut ingest, &workers, &items)?;
                items.clear();
            }
            self.on_timers(&mut timers, &mut store, &mut ingest, &workers, &sources, &mut reporter);
            if sources.count() == 0 && self.stdin.as_ref().is_some_and(StdinSource::ended) {
                // Whatever stdin sent before it ended is queued by now, and
                // handled below with the rest of the queue.
                break Exit::InputEnded;
            }
        };

        // Stop reading, then handle what the sources had already queued.
        sources.stop();
        let queued: Vec<Incoming> = self.rx.try_iter().collect();
        for chunk in queued.chunks(MAX_BATCH) {
            self.handle(&mut store, &mut ingest, &workers, chunk)?;
        }
        let now = Timestamp::now();
        match ingest.expire(&mut store, now) {
            Ok(outcome) => workers.dispatch(outcome),
            Err(err) => tracing::error!("resolving idle connections: {err:#}"),
        }
        ingest.save_state(&mut store).context("saving the detection state")?;
        drop(flusher);
        cursors::flush(&self.cursors, &journal_cursor);
        workers.deliver_soon();
        let running = exit == Exit::Reload;
        reporter.write(Vec::new(), self.stdin.as_ref(), (&ingest, &store), &workers, running);
        workers.stop();
        drop(metrics);
        if exit != Exit::Reload {
            tracing::info!("stopped");
        }
        Ok(exit)
    }

    /// Handles one batch, retrying it while the store refuses (the sources
    /// wait meanwhile: the channel fills up).
    fn handle(
        &self,
        store: &mut Store,
        ingest: &mut Ingest,
        workers: &Workers,
        items: &[Incoming],
    ) -> Result<()> {
        let mut delay = Duration::from_millis(250);
        loop {
            match ingest.handle(store, items, Timestamp::now()) {
                Ok(outcome) => {
                    for item in items {
                        self.cursors.commit_incoming(item);
                    }
                    workers.dispatch(outcome);
                    return Ok(());
                }
                Err(err) => {
                    if self.signals.stop.load(Ordering::SeqCst) {
                        // Not committed: the lines are read again next start.
                        return Err(err.context("stopping with lines not recorded"));
                    }
                    tracing::error!(
                        "recording {} lines failed, retrying in {delay:?}: {err:#}",
                        items.len()
                    );
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(8));
                }
            }
        }
    }

    fn on_timers(
        &self,
        timers: &mut Timers,
        store: &mut Store,
        ingest: &mut Ingest,
        workers: &Workers,
        sources: &Sources,
        reporter: &mut Reporter,
    ) {
        let now = Instant::now();
        if Timers::due(&mut timers.expire, now, EXPIRE_EVERY) {
            match ingest.expire(store, Timestamp::now()) {
                Ok(outcome) => workers.dispatch(outcome),
                Err(err) => tracing::error!("resolving idle connections: {err:#}"),
            }
        }
        if Timers::due(&mut timers.status, now, status::STATUS_EVERY) {
            reporter.write(sources.statuses(), self.stdin.as_ref(), (ingest, store), workers, true);
        }
        if Timers::due(&mut timers.maintain, now, MAINTAIN_EVERY) {
            ingest.maintain(Timestamp::now());
        }
        if Timers::due(&mut timers.save_state, now, SAVE_STATE_EVERY) {
            if let Err(err) = ingest.save_state(store) {
                tracing::error!("saving the detection state: {err:#}");
            }
        }
    }
}

/// Who opens a store connection in the daemon: the caches follow.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Parses, detects, writes incidents: the working set of the attacks
    /// in progress.
    Owner,
    /// Containment and delivery: a few rows per ban or alert.
    Worker,
}

/// SQLite page cache of the owner's connection, in KiB. Its hot set is the
/// open incidents' rows and index pages and the right edge of the
/// evidence tables (appends): 4 MiB holds it with room to spare at
/// 200,000 lines/s (a bigger cache only fills with pages never read
/// again, and RSS grows until it is full).
pub const OWNER_PAGE_CACHE_KIB: u32 = 4 * 1024;
/// SQLite page cache of each worker's connection (containment writes a
/// few rows per ban, delivery reads the outbox, the checkpoint none), KiB.
pub const WORKER_PAGE_CACHE_KIB: u32 = 1024;
/// The owner's incident cache, in incidents.
pub const OWNER_CACHED_INCIDENTS: usize = 5_000;
/// The owner's incident cache, in the estimated memory of the incidents'
/// names (an incident keeps up to 1,000 users, so the count alone bounds
/// nothing): 8 MiB, about 130,000 names. Past it the incidents used
/// longest ago let their names go (their attempts' names are then checked
/// against the database at commit).
pub const OWNER_CACHED_NAME_BYTES: usize = 8 << 20;

/// Opens the store with caches sized for a process that runs for months.
pub fn open_store(ctx: &Context, role: Role) -> Result<Store> {
    let options = crate::store::StoreOptions::from_config(&ctx.config);
    let options = match role {
        Role::Owner => options.long_running(
            OWNER_PAGE_CACHE_KIB,
            OWNER_CACHED_INCIDENTS,
            OWNER_CACHED_NAME_BYTES,
        ),
        Role::Worker => options.long_running(WORKER_PAGE_CACHE_KIB, 500, 1 << 20),
    };
    Store::open_for_with(ctx, options)
}

/// Checks what must hold before anything starts.
fn validate(config: &Config, stdin: bool) -> Result<()> {
    let watch = &config.watch;
    let others = has_other_sources(watch, stdin);
    if !others && !watch.journal.is_enabled(others) {
        anyhow::bail!(
            "nothing to watch: configure [[watch.files]], [[watch.syslog]] or \
             [watch.journal] enabled = true, or pass --stdin"
        );
    }
    watch.metrics_addr()?;
    watch.silent_after_seconds()?;
    Ok(())
}

/// Whether sources other than the journal are configured (the journal is
/// read by default only when there are none).
fn has_other_sources(watch: &crate::config::WatchConfig, stdin: bool) -> bool {
    stdin || !watch.files.is_empty() || !watch.syslog.is_empty()
}

/// The periodic jobs' last runs.
struct Timers {
    expire: Instant,
    status: Instant,
    maintain: Instant,
    save_state: Instant,
}

impl Timers {
    fn new() -> Timers {
        let now = Instant::now();
        Timers { expire: now, status: now, maintain: now, save_state: now }
    }

    fn due(last: &mut Instant, now: Instant, every: Duration) -> bool {
        if now.duration_since(*last) >= every {
            *last = now;
            true
        } else {
            false
        }
    }
}

/// The sources of one run.
struct Sources {
    files: Vec<(String, FileSource, Arc<SourceStats>, Arc<TailCounters>)>,
    journal: Option<(String, JournalHandle, Arc<SourceStats>)>,
    syslog: Vec<SyslogServer>,
    started_at: Timestamp,
}

impl Sources {
    /// Starts every configured source; any that cannot start stops the
    /// whole start with its error (a daemon silently missing a source is
    /// worse than one that refuses to run).
    fn start(
        ctx: &Context,
        tx: &SyncSender<Incoming>,
        cursors: &Arc<CursorStore>,
        stdin: bool,
    ) -> Result<Sources> {
        let watch = &ctx.config.watch;
        let mut sources = Sources {
            files: Vec::new(),
            journal: None,
            syslog: Vec::new(),
            started_at: Timestamp::now(),
        };
        for (i, config) in watch.files.iter().enumerate() {
            let stats = SourceStats::new();
            let source =
                FileSource::spawn(config, Arc::clone(cursors), tx.clone(), Arc::clone(&stats))
                    .with_context(|| format!("[[watch.files]] entry {}", i + 1))?;
            let counters = source.counters();
            let name = format!("files {}", config.paths.join(" "));
            sources.files.push((name, source, stats, counters));
        }
        if watch.journal.is_enabled(has_other_sources(watch, stdin)) {
            let stats = SourceStats::new();
            let source = JournalSource::new(&watch.journal, Arc::clone(&stats))
                .context("[watch.journal]")?;
            let name = source.name().to_string();
            let saved = JournalCursorStore::new(watch.journal.cursor_path(&ctx.data_dir))
                .load()
                .context("[watch.journal]")?;
            let handle = source.spawn(saved, tx.clone()).context("[watch.journal]")?;
            sources.journal = Some((name, handle, stats));
        }
        for (i, config) in watch.syslog.iter().enumerate() {
            let server = SyslogServer::start(config, tx.clone())
                .with_context(|| format!("[[watch.syslog]] entry {}", i + 1))?;
            sources.syslog.push(server);
        }
        Ok(sources)
    }

    fn count(&self) -> usize {
        self.files.len()
            + usize::from(self.journal.is_some())
            + self.syslog.iter().map(|s| s.listeners().len()).sum::<usize>()
    }

    fn statuses(&self) -> Vec<SourceStatus> {
        let mut all = Vec::new();
        let row = |name: &str, kind: &str, stats: &SourceStats| {
            source_status(name, kind, stats, self.started_at)
        };
        for (name, _, stats, counters) in &self.files {
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            let mut status = row(name, "files", stats);
            status.files = Some(status::FileCounters {
                followed: load(&counters.files),
                rotations: load(&counters.rotations),
                truncations: load(&counters.truncations),
                gaps: load(&counters.gaps),
                lost_files: load(&counters.lost_files),
            });
            all.push(status);
        }
        if let Some((name, _, stats)) = &self.journal {
            all.push(row(name, "journal", stats));
        }
        for server in &self.syslog {
            for listener in server.listeners() {
                all.push(row(&listener.source, "syslog", &listener.stats));
            }
        }
        all
    }

    fn stop(self) {
        for (name, source, _, _) in self.files {
            if let Err(err) = source.stop() {
                tracing::error!("{name}: {err}");
            }
        }
        if let Some((_, handle, _)) = self.journal {
            handle.stop();
        }
        for server in self.syslog {
            server.stop();
        }
    }
}

fn source_status(
    name: &str,
    kind: &str,
    stats: &SourceStats,
    started_at: Timestamp,
) -> SourceStatus {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let last = load(&stats.last_read_unix);
    SourceStatus {
        name: name.to_string(),
        kind: kind.to_string(),
        lines: load(&stats.lines),
        bytes: load(&stats.bytes),
        dropped: load(&stats.dropped),
        rejected: load(&stats.rejected),
        errors: load(&stats.errors),
        last_read: (last > 0).then(|| Timestamp::from_second(last as i64).ok()).flatten(),
        started_at,
        files: None,
    }
}

/// Writes the status file and the metrics page.
struct Reporter {
    path: PathBuf,
    config: Option<String>,
    backend: String,
    silent_after_seconds: u64,
    metrics: Option<String>,
    started_at: Timestamp,
    sources_started_at: Timestamp,
    reloads: u64,
    reload_failures: u64,
    page: Arc<Mutex<String>>,
}

impl Reporter {
    fn status(
        &self,
        sources: Vec<SourceStatus>,
        ingest: &Ingest,
        store: &Store,
        workers: &Workers,
        running: bool,
    ) -> DaemonStatus {
        let mut totals = ingest.totals.clone();
        let c = &workers.counters;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        totals.bans_applied = load(&c.bans_applied);
        totals.bans_failed = load(&c.bans_failed);
        totals.bans_refused = load(&c.bans_refused);
        totals.alerts_sent = load(&c.alerts_sent);
        totals.alerts_failed = load(&c.alerts_failed);
        totals.reconcile_errors = load(&c.reconcile_errors);
        let read: u64 = sources.iter().map(|s| s.lines).sum();
        totals.lag = read.saturating_sub(totals.handled);
        DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            updated_at: Timestamp::now(),
            running,
            config: self.config.clone(),
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            backend: self.backend.clone(),
            silent_after_seconds: self.silent_after_seconds,
            sources,
            streams: ingest.stream_statuses(),
            totals,
            memory: ingest.memory(store.cache_usage()),
            metrics: self.metrics.clone(),
        }
    }

    /// Writes the status with `rows` (the running sources; none once they
    /// have stopped) and stdin's.
    fn write(
        &mut self,
        mut rows: Vec<SourceStatus>,
        stdin: Option<&StdinSource>,
        (ingest, store): (&Ingest, &Store),
        workers: &Workers,
        running: bool,
    ) {
        if let Some(stdin) = stdin {
            rows.push(source_status("stdin", "stdin", &stdin.stats, self.sources_started_at));
        }
        self.publish(self.status(rows, ingest, store, workers, running));
    }

    fn publish(&mut self, status: DaemonStatus) {
        if self.metrics.is_some() {
            *self.page.lock().unwrap_or_else(|e| e.into_inner()) = metrics::render(&status);
        }
        if let Err(err) = status::write(&self.path, &status) {
            tracing::warn!("status file: {err:#}");
        }
    }
}

/// Standard input as a source: one line per item, for pipelines such as
/// `ssh gateway journalctl -f -o short | hikeshi watch --stdin`.
struct StdinSource {
    stats: Arc<SourceStats>,
    ended: Arc<AtomicBool>,
}

impl StdinSource {
    fn spawn(tx: SyncSender<Incoming>, max_line_bytes: usize) -> Result<StdinSource> {
        let stats = SourceStats::new();
        let ended = Arc::new(AtomicBool::new(false));
        let (thread_stats, thread_ended) = (Arc::clone(&stats), Arc::clone(&ended));
        std::thread::Builder::new().name("hikeshi-stdin".into()).spawn(move || {
            let source: Arc<str> = Arc::from("stdin");
            let mut reader = LineReader::new(std::io::stdin().lock(), max_line_bytes);
            loop {
                match reader.next_line() {
                    Ok(None) => break,
                    Ok(Some(Line::Text { bytes, .. })) => {
                        thread_stats.read(bytes.len(), Timestamp::now());
                        let item = Incoming {
                            source: Arc::clone(&source),
                            payload: Payload::Line {
                                bytes: bytes.to_vec(),
                                position: None,
                                host_hint: None,
                                peer: None,
                                backlog: None,
                            },
                        };
                        // Waits while the channel is full: stdin can wait,
                        // like a file.
                        if tx.send(item).is_err() {
                            break;
                        }
                    }
                    Ok(Some(Line::TooLong { .. })) => SourceStats::add(&thread_stats.rejected),
                    Err(err) => {
                        SourceStats::add(&thread_stats.errors);
                        tracing::error!("stdin: {err}");
                        break;
                    }
                }
            }
            thread_ended.store(true, Ordering::SeqCst);
        })?;
        Ok(StdinSource { stats, ended })
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}
