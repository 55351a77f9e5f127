//! The daemon's workers, each a thread with its own store connection,
//! so that neither a slow firewall nor a slow mail server ever holds up
//! reading and detection:
//!
//! - containment carries out the ban requests of each committed batch
//!   (as soon as they come: ban latency is the point), records each
//!   outcome on its incident, and reconciles the firewall with the store
//!   at start and every [`RECONCILE_EVERY`] (closing expired bans,
//!   re-applying bans someone flushed);
//! - delivery sends what is due in the alert outbox when woken, and every
//!   [`DELIVERY_POLL`] for retries;
//! - checkpoint moves the WAL into the database every
//!   [`CHECKPOINT_EVERY`], so that no batch commit of the owner pays for a
//!   checkpoint's fsync.
//!
//! On stop, containment finishes the requests already queued (a ban asked
//! for is a ban applied); delivery stops after its current round (what is
//! left stays in the outbox for the next start).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Result;
use hikeshi_core::contain::BanTarget;
use jiff::Timestamp;

use crate::cli::Context;
use crate::contain::ContainmentOutcome;
use crate::notify::Notifier;
use crate::pipeline::BanIntent;
use crate::store::Store;

/// How often the firewall is brought in line with the store.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How often the outbox is looked at without being woken (retries).
pub const DELIVERY_POLL: Duration = Duration::from_secs(10);
/// How often the WAL is checkpointed (the owner never does it).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The WAL file is cut back to this size after a checkpoint.
pub const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// Frames in the WAL past which the checkpoint restarts it: 16,384
/// frames, 64 MiB of 4 KiB pages. A passive checkpoint never waits for
/// the owner, so under sustained writes the owner has always appended
/// frames by the time one ends: the WAL is never wholly copied, SQLite
/// never starts it again from its beginning, and it grows without end
/// (512 MiB in 17 s at 200,000 lines/s), and with it the WAL index that
/// every connection maps (8 bytes a frame, resident). A RESTART
/// checkpoint holds the owner's next commit for as long as copying the
/// frames written since the last passive one and a sync take.
pub const WAL_RESTART_FRAMES: i64 = 16_384;

/// What the workers did, for the status.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub bans_applied: AtomicU64,
    pub bans_failed: AtomicU64,
    pub bans_refused: AtomicU64,
    pub alerts_sent: AtomicU64,
    pub alerts_failed: AtomicU64,
    pub reconcile_errors: AtomicU64,
}

/// The running workers.
pub struct Workers {
    bans: Option<Sender<Vec<BanIntent>>>,
    wake_delivery: Option<Sender<()>>,
    stop_checkpoint: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    pub counters: Arc<WorkerCounters>,
}

impl Workers {
    /// Starts both workers. `contain`: false when bans are off (`--no-ban`).
    pub fn start(ctx: Arc<Context>, contain: bool) -> Result<Workers> {
        let counters = Arc::new(WorkerCounters::default());
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let (ban_tx, ban_rx) = mpsc::channel::<Vec<BanIntent>>();
        // Opened here, so that a store that cannot be opened stops the
        // start with its error.
        let delivery_store = super::open_store(&ctx, super::Role::Worker)?;
        let delivery_notifier = notifier(&ctx)?;
        let mut threads = Vec::new();
        let delivery_counters = Arc::clone(&counters);
        threads.push(std::thread::Builder::new().name("hikeshi-deliver".into()).spawn(
            move || deliver_loop(delivery_store, delivery_notifier, wake_rx, delivery_counters),
        )?);
        let checkpoint_store = super::open_store(&ctx, super::Role::Worker)?;
        checkpoint_store.conn().pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let (stop_checkpoint, checkpoint_stop) = mpsc::channel::<()>();
        threads.push(
            std::thread::Builder::new()
                .name("hikeshi-ckpt".into())
                .spawn(move || checkpoint_loop(checkpoint_store, checkpoint_stop))?,
        );
        let bans = if contain {
            let store = super::open_store(&ctx, super::Role::Worker)?;
            let notifier = notifier(&ctx)?;
            let counters = Arc::clone(&counters);
            let wake = wake_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("hikeshi-contain".into())
                    .spawn(move || contain_loop(ctx, store, notifier, ban_rx, wake, counters))?,
            );
            Some(ban_tx)
        } else {
            None
        };
        Ok(Workers {
            bans,
            wake_delivery: Some(wake_tx),
            stop_checkpoint: Some(stop_checkpoint),
            threads,
            counters,
        })
    }

    /// Hands what a committed batch asks for to the workers (at once; it
    /// never blocks). With bans to apply, delivery waits for containment
    /// (which wakes it), so that an alert reaches the team once the ban
    /// is in place, with its outcome on the timeline.
    pub fn dispatch(&self, outcome: super::ingest::BatchOutcome) {
        match &self.bans {
            Some(bans) if !outcome.ban_intents.is_empty() => {
                let _ = bans.send(outcome.ban_intents);
            }
            _ if outcome.alerts_enqueued > 0 => self.deliver_soon(),
            _ => {}
        }
    }

    /// Asks delivery to look at the outbox now.
    pub fn deliver_soon(&self) {
        if let Some(wake) = &self.wake_delivery {
            let _ = wake.send(());
        }
    }

    /// Stops both: containment after the requests already queued.
    pub fn stop(mut self) {
        self.bans.take();
        self.wake_delivery.take();
        self.stop_checkpoint.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn notifier(ctx: &Context) -> Result<Notifier> {
    Notifier::from_config(&ctx.config.team, &ctx.config.alert, ctx.config.alert.stdout)
        .map_err(|e| anyhow::anyhow!("alert configuration: {e}"))
}

fn contain_loop(
    ctx: Arc<Context>,
    mut store: Store,
    notifier: Notifier,
    requests: Receiver<Vec<BanIntent>>,
    wake_delivery: Sender<()>,
    counters: Arc<WorkerCounters>,
) {
    reconcile(&ctx, &counters);
    let mut firewall = crate::respond::FirewallSlot::deferring_conntrack();
    let disconnect = Disconnect::start(&ctx);
    loop {
        let mut intents = match requests.recv_timeout(RECONCILE_EVERY) {
            Ok(intents) => intents,
            Err(RecvTimeoutError::Timeout) => {
                reconcile(&ctx, &counters);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Whatever else is queued goes to the firewall in the same batch.
        while let Ok(more) = requests.try_recv() {
            intents.extend(more);
        }
        let now = Timestamp::now();
        let outcomes = crate::respond::contain_in(&ctx, &mut store, &mut firewall, &intents, now);
        for outcome in &outcomes {
            match outcome {
                ContainmentOutcome::Banned { .. } => {
                    counters.bans_applied.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("{outcome}");
                }
                ContainmentOutcome::Failed { .. } => {
                    counters.bans_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("{outcome}");
                }
                ContainmentOutcome::Refused { .. } => {
                    counters.bans_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{outcome}");
                }
                _ => tracing::info!("{outcome}"),
            }
        }
        if let Some(disconnect) = &disconnect {
            disconnect.end_connections_of(&outcomes);
        }
        if let Err(err) = crate::respond::record_containment(&mut store, &notifier, &outcomes, now)
        {
            tracing::error!("recording containment on the incidents: {err:#}");
        }
        let _ = wake_delivery.send(());
    }
}

/// Ends the established connections of banned sources (`conntrack -D`)
/// on a thread of its own, after their bans are in place: a DROP rule
/// alone leaves an open SSH session's state, and the next ban must not
/// wait for conntrack.
struct Disconnect {
    tx: Sender<BTreeSet<BanTarget>>,
}

impl Disconnect {
    /// `None` when `[contain] kill_connections` is off or nothing is banned
    /// for real (the `none` backend).
    fn start(ctx: &Context) -> Option<Disconnect> {
        let config = &ctx.config.contain;
        if !config.kill_connections || config.backend == crate::contain::BackendKind::None {
            return None;
        }
        let program = config.conntrack.clone();
        let (tx, rx) = mpsc::channel::<BTreeSet<BanTarget>>();
        let spawned =
            std::thread::Builder::new().name("hikeshi-conntrack".into()).spawn(move || {
                while let Ok(mut addrs) = rx.recv() {
                    while let Ok(more) = rx.try_recv() {
                        addrs.extend(more);
                    }
                    match crate::contain::conntrack::kill(&program, &addrs) {
                        Ok(killed) => {
                            for (addr, n) in killed.iter().filter(|(_, n)| **n > 0) {
                                tracing::info!("ended {n} established connection(s) of {addr}");
                            }
                        }
                        Err(err) => {
                            tracing::warn!("could not end connections of banned sources: {err}")
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Disconnect { tx }),
            Err(err) => {
                tracing::warn!("connections of banned sources will not be ended: {err}");
                None
            }
        }
    }

    fn end_connections_of(&self, outcomes: &[ContainmentOutcome]) {
        let banned: BTreeSet<BanTarget> = outcomes
            .iter()
            .filter_map(|o| match o {
                ContainmentOutcome::Banned { addr, dry_run: false, .. } => Some(*addr),
                _ => None,
            })
            .collect();
        if !banned.is_empty() {
            let _ = self.tx.send(banned);
        }
    }
}

fn reconcile(ctx: &Context, counters: &WorkerCounters) {
    let now = Timestamp::now();
    let result = crate::cli::ban::with_containment(ctx, |containment| {
        containment.reconcile(now).map_err(anyhow::Error::from)
    });
    match result {
        Ok(report) => {
            for addr in &report.expired {
                tracing::info!("ban of {addr} ended");
            }
            if !report.reapplied.is_empty() {
                tracing::warn!(
                    "re-applied {} bans missing from the firewall",
                    report.reapplied.len()
                );
            }
        }
        Err(err) => {
            counters.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("reconciling the firewall with the store: {err:#}");
        }
    }
}

fn deliver_loop(
    mut store: Store,
    notifier: Notifier,
    wake: Receiver<()>,
    counters: Arc<WorkerCounters>,
) {
    loop {
        match wake.recv_timeout(DELIVERY_POLL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while wake.try_recv().is_ok() {}
        match crate::respond::deliver(&mut store, &notifier, Timestamp::now()) {
            Ok(report) => {
                counters.alerts_sent.fetch_add(report.sent as u64, Ordering::Relaxed);
                counters.alerts_failed.fetch_add(report.failed.len() as u64, Ordering::Relaxed);
                for failed in &report.failed {
                    tracing::warn!(
                        "alert via {} to {} failed (attempt {}): {}",
                        failed.channel,
                        failed.recipient,
                        failed.attempts,
                        failed.error
                    );
                }
            }
            Err(err) => tracing::warn!("delivering alerts: {err:#}"),
        }
    }
}

/// What one round of [`checkpoint`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpointed {
    /// Frames in the WAL when the passive checkpoint ran.
    pub frames: i64,
    /// Whether the WAL was restarted (see [`WAL_RESTART_FRAMES`]).
    pub restarted: bool,
}

/// A passive checkpoint, then a restarting one when the WAL holds more
/// than `restart_frames` frames.
pub fn checkpoint(
    conn: &rusqlite::Connection,
    restart_frames: i64,
) -> rusqlite::Result<Checkpointed> {
    let frames = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
    };
    let (_, in_wal) = frames("PASSIVE")?;
    if in_wal <= restart_frames {
        return Ok(Checkpointed { frames: in_wal, restarted: false });
    }
    // Busy (0 or 1): the owner kept its write lock past the busy
    // timeout; the next round tries again.
    let (busy, _) = frames("RESTART")?;
    Ok(Checkpointed { frames: in_wal, restarted: busy == 0 })
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] (PASSIVE: it never waits
/// for a writer, and a busy round is simply done at the next), so that the
/// owner's commits never carry a checkpoint's fsync. A last one on stop.
fn checkpoint_loop(store: Store, stop: Receiver<()>) {
    let checkpoint = || {
        if let Err(err) = checkpoint(store.conn(), WAL_RESTART_FRAMES) {
            tracing::warn!("checkpointing the store: {err}");
        }
    };
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(RecvTimeoutError::Timeout) => checkpoint(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                checkpoint();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(conn: &rusqlite::Connection, n: usize) {
        for i in 0..n {
            conn.execute("INSERT INTO t VALUES (?1, zeroblob(3000))", [i as i64]).unwrap();
        }
    }

    #[test]
    fn a_wal_written_without_pause_is_restarted_past_its_frame_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let open = || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
            conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            conn
        };
        let writer = open();
        writer.execute("CREATE TABLE t (i INTEGER, b BLOB)", []).unwrap();
        let checkpointer = open();
        let reader = open();
        // A passive checkpoint that cannot copy every frame (here a reader
        // holds an old snapshot; in the daemon the owner commits while it
        // runs) leaves the writer appending: the WAL grows.
        write(&writer, 50);
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        write(&writer, 50);
        let first = checkpoint(&checkpointer, 1_000).unwrap();
        assert!(!first.restarted, "{first:?}");
        reader.execute_batch("COMMIT").unwrap();
        write(&writer, 1);
        // Past the limit: restarted, and the writer's next frames go to
        // the start of the WAL again.
        let second = checkpoint(&checkpointer, 60).unwrap();
        assert!(second.frames > first.frames, "the WAL grew: {first:?} then {second:?}");
        assert!(second.restarted, "{second:?}");
        write(&writer, 1);
        let after = checkpoint(&checkpointer, 60).unwrap();
        assert!(after.frames < 10, "the WAL did not start again: {after:?}");
    }
}
