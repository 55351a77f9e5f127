//! Saving where each source is, off the owner thread: every
//! [`FLUSH_EVERY`] the file positions the owner has committed and the
//! journal cursor of the last committed record are written (tmp + fsync +
//! rename), so that the fsyncs never delay a batch, and with it a ban.
//! On stop the owner flushes once more itself, after its last batch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sources::journal::JournalCursorStore;
use crate::sources::tail::CursorStore;

/// How often positions are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The journal cursor the owner last committed, and where it is saved.
#[derive(Debug, Clone)]
pub struct JournalCursor {
    committed: Arc<Mutex<Option<String>>>,
    store: Arc<JournalCursorStore>,
    saved: Arc<Mutex<Option<String>>>,
}

impl JournalCursor {
    pub fn new(path: PathBuf) -> JournalCursor {
        JournalCursor {
            committed: Arc::default(),
            store: Arc::new(JournalCursorStore::new(path)),
            saved: Arc::default(),
        }
    }

    /// Owner: the records up to `cursor` are committed.
    pub fn committed(&self, cursor: &str) {
        *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor.to_string());
    }

    /// Writes the committed cursor if it changed since the last write.
    fn save(&self) {
        let committed = self.committed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if committed.is_some() && committed != *saved {
            match self.store.save(committed.as_deref().expect("checked")) {
                Ok(()) => *saved = committed,
                Err(err) => tracing::error!("saving the journal cursor: {err}"),
            }
        }
    }
}

/// Writes positions and the journal cursor, now.
pub fn flush(files: &CursorStore, journal: &JournalCursor) {
    if let Err(err) = files.flush() {
        tracing::error!("saving file positions: {err}");
    }
    journal.save();
}

/// The thread that flushes every [`FLUSH_EVERY`]. Dropping it stops it.
pub struct Flusher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(files: Arc<CursorStore>, journal: JournalCursor) -> std::io::Result<Flusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread =
            std::thread::Builder::new().name("hikeshi-cursors".into()).spawn(move || {
                let step = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                while !thread_stop.load(Ordering::SeqCst) {
                    std::thread::sleep(step);
                    waited += step;
                    if waited >= FLUSH_EVERY {
                        waited = Duration::ZERO;
                        flush(&files, &journal);
                    }
                }
            })?;
        Ok(Flusher { stop, thread: Some(thread) })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
