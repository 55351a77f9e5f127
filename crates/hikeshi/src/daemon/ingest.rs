//! The daemon's owner thread: turns batches of [`Incoming`] items into
//! parsed events, detection, incidents and alerts, in one store
//! transaction per batch.
//!
//! It keeps one parser per stream (a followed file, or a non-file source)
//! because sshd's lines are joined per connection, and a file's host (from
//! its path) must go to the events of that file only. It keeps the last
//! recognised lines of each stream so that an event the parser releases
//! after its line has gone by (a pending failure resolved when its
//! connection closes) still carries its own line as evidence.
//!
//! Nothing here starts threads or talks to the firewall: a batch yields
//! the ban requests and the number of alerts it enqueued, and the daemon
//! hands them to its workers once the batch has committed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use anyhow::Result;
use hikeshi_core::detect::Detector;
use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions, Parsed, Record};
use hikeshi_core::Outcome;
use jiff::Timestamp;

use super::status::{MemoryStatus, StreamStatus, Totals};
use crate::cli::Context;
use crate::notify::Notifier;
use crate::pipeline::{BanIntent, LineRef, Pipeline};
use crate::sources::{Incoming, Payload};
use crate::store::Store;

/// Recognised lines kept per stream for late events.
const RECENT_LINES: usize = 256;
/// A stream without a line for this long is forgotten.
const STREAM_IDLE_LIMIT: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// What one committed batch asks of the workers.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub ban_intents: Vec<BanIntent>,
    pub alerts_enqueued: usize,
}

/// One stream of lines and its parser.
struct Stream {
    parser: LineParser,
    /// Offsets and bytes of the last recognised lines.
    recent: VecDeque<(u64, Vec<u8>)>,
    /// Line counter of streams without file positions.
    seq: u64,
    status: StreamStatus,
    /// The file the stream reads, for reading back an old line.
    path: Option<Arc<str>>,
    /// Files: the identity of the file of the last line handled, and the
    /// offset after it.
    handled_to: Option<(u64, u64, u64)>,
}

impl Stream {
    fn remember(&mut self, offset: u64, bytes: &[u8]) {
        if self.recent.len() == RECENT_LINES {
            let (_, mut buffer) = self.recent.pop_front().expect("full");
            buffer.clear();
            buffer.extend_from_slice(bytes);
            self.recent.push_back((offset, buffer));
        } else {
            self.recent.push_back((offset, bytes.to_vec()));
        }
    }

    /// The line at `offset` into `buf`: from memory, else read back from
    /// its file; empty when it is in neither.
    fn recall(&self, offset: u64, max: usize, buf: &mut Vec<u8>) {
        buf.clear();
        if let Some((_, bytes)) = self.recent.iter().rev().find(|(o, _)| *o == offset) {
            buf.extend_from_slice(bytes);
            return;
        }
        let Some(path) = &self.path else { return };
        let read = std::fs::File::open(&**path)
            .and_then(|file| crate::sources::lines::read_line_at(&file, offset, max, buf));
        if read.is_err() {
            buf.clear();
        }
    }

    fn count(&mut self, verdict: LineVerdict, now: Timestamp) {
        let s = &mut self.status;
        s.lines += 1;
        s.last_line = Some(now);
        match verdict {
            LineVerdict::Recognised(_) | LineVerdict::SshdIgnored => {
                s.sshd_lines += 1;
                s.matched += 1;
            }
            LineVerdict::SshdUnrecognised => {
                s.sshd_lines += 1;
                s.unrecognised += 1;
            }
            LineVerdict::NotSshd => {}
            LineVerdict::Skipped(_) => s.skipped += 1,
        }
    }
}

/// Parsing, detection and recording for the daemon.
pub struct Ingest {
    detector: Detector,
    pipeline: Pipeline,
    notifier: Notifier,
    backend: &'static str,
    parse: ParseOptions,
    streams: HashMap<Arc<str>, Stream>,
    events: Vec<Parsed>,
    evidence: Vec<u8>,
    /// Where the journal cursor of the last record committed goes.
    journal: super::cursors::JournalCursor,
    pub totals: Totals,
}

impl Ingest {
    /// Goes on from the detection state the store holds.
    pub fn new(
        ctx: &Context,
        store: &Store,
        now: Timestamp,
        no_ban: bool,
        journal: super::cursors::JournalCursor,
    ) -> Result<Ingest> {
        let (detector, pipeline) = crate::cli::scan::new_pipeline(ctx, store, now, no_ban)?;
        let notifier = Notifier::from_config(&ctx.config.team, &ctx.config.alert, false)
            .map_err(|e| anyhow::anyhow!("alert configuration: {e}"))?;
        let mut parse =
            ParseOptions::new(ctx.config.parse.mode, ctx.config.parse.time_zone()?, now);
        parse.max_line_len = ctx.config.parse.max_line_bytes;
        parse.max_connections = ctx.config.parse.max_connections;
        let backend = if no_ban { "none" } else { ctx.config.contain.backend.name() };
        Ok(Ingest {
            detector,
            pipeline,
            notifier,
            backend,
            parse,
            streams: HashMap::new(),
            events: Vec::new(),
            evidence: Vec::new(),
            journal,
            totals: Totals::default(),
        })
    }

    /// Parses, detects and records `items` in one transaction; on error
    /// nothing of them is recorded (the caller retries).
    pub fn handle(
        &mut self,
        store: &mut Store,
        items: &[Incoming],
        now: Timestamp,
    ) -> Result<BatchOutcome> {
        self.pipeline.set_now(now);
        let mut batch = store.batch()?;
        let mut journal_cursor = None;
        let result = (|| -> Result<()> {
            for item in items {
                self.handle_item(&mut batch, item, now, &mut journal_cursor)?;
            }
            Ok(())
        })();
        let outcome = result.and_then(|()| self.finish_batch(&mut batch, now));
        match outcome.and_then(|o| batch.commit().map(|()| o).map_err(Into::into)) {
            Ok(outcome) => {
                self.totals.handled += items.len() as u64;
                self.totals.batches += 1;
                if let Some(cursor) = journal_cursor {
                    self.journal.committed(&cursor);
                }
                Ok(outcome)
            }
            Err(err) => {
                self.totals.batch_errors += 1;
                self.pipeline.touched.clear();
                self.pipeline.ban_intents.clear();
                Err(err)
            }
        }
    }

    /// Resolves the connections idle for long (their pending failures
    /// count now), in one transaction if there is anything to record.
    pub fn expire(&mut self, store: &mut Store, now: Timestamp) -> Result<BatchOutcome> {
        let mut released: Vec<(Arc<str>, Parsed)> = Vec::new();
        for (name, stream) in &mut self.streams {
            self.events.clear();
            stream.parser.expire(now, &mut self.events);
            released.extend(self.events.drain(..).map(|p| (name.clone(), p)));
        }
        released.retain(|(_, p)| crate::pipeline::counts(&p.event));
        if released.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.pipeline.set_now(now);
        let mut batch = store.batch()?;
        for (name, parsed) in &released {
            let stream = self.streams.get_mut(name).expect("released by this stream");
            stream.recall(parsed.origin.offset, self.parse.max_line_len, &mut self.evidence);
            let file = stream.path.clone().unwrap_or_else(|| name.clone());
            let line = LineRef::new(&file, parsed.origin.offset, &self.evidence);
            let (detector, pipeline) = (&mut self.detector, &mut self.pipeline);
            record_event(detector, pipeline, &mut self.totals, stream, &mut batch, parsed, line)?;
        }
        let outcome = self.finish_batch(&mut batch, now)?;
        batch.commit()?;
        Ok(outcome)
    }

    /// Writes the detection state, so that a restart goes on from here.
    pub fn save_state(&mut self, store: &mut Store) -> Result<()> {
        let mut batch = store.batch()?;
        self.pipeline.save_state(&mut batch, &mut self.detector)?;
        batch.commit()?;
        Ok(())
    }

    /// Moves the parsers' reference time for yearless timestamps, and
    /// forgets the ban requests whose bans have ended.
    pub fn maintain(&mut self, now: Timestamp) {
        // Streams of files gone quiet for a day (a host that left the
        // central collector) are forgotten: the map follows the live files.
        self.streams.retain(|_, stream| {
            stream.parser.open_connections() > 0
                || stream
                    .status
                    .last_line
                    .is_some_and(|t| now.duration_since(t) < STREAM_IDLE_LIMIT)
        });
        for stream in self.streams.values_mut() {
            stream.parser.set_reference_time(now);
        }
        self.pipeline.set_now(now);
        self.pipeline.forget_ended_ban_requests();
    }

    /// The bounded per-address state against its caps, the RSS, and
    /// `cache`: the store's incident cache.
    pub fn memory(&self, cache: crate::store::CacheUsage) -> MemoryStatus {
        let detector = &self.detector;
        let stats = detector.stats();
        let asked = self.pipeline.asked_bans();
        let (pending_campaigns, pending_bytes) = self.pipeline.pending_usage();
        MemoryStatus {
            rss_bytes: super::status::own_rss_bytes(),
            detector_subjects: detector.tracked_subjects() as u64,
            detector_subjects_max: u64::from(detector.config().max_tracked_sources),
            detector_evicted: stats.evictions,
            detector_hot_evicted: stats.hot_evictions,
            ban_requests: asked.len() as u64,
            ban_requests_max: asked.max() as u64,
            ban_requests_forgotten: asked.forgotten_at_cap(),
            pending_campaigns: pending_campaigns as u64,
            pending_bytes: pending_bytes as u64,
            pending_bytes_max: crate::pipeline::PENDING_BYTES_MAX as u64,
            pending_dropped: self.pipeline.pending_dropped,
            incident_cache: cache.incidents as u64,
            incident_cache_max: cache.incidents_max as u64,
            incident_cache_name_bytes: cache.name_bytes as u64,
            incident_cache_name_bytes_max: cache.name_bytes_max as u64,
        }
    }

    /// What each stream parsed, by name; for files, how far the file is
    /// ahead of what was handled.
    pub fn stream_statuses(&self) -> Vec<StreamStatus> {
        use std::os::unix::fs::MetadataExt;
        let mut all: Vec<StreamStatus> = self
            .streams
            .values()
            .map(|s| {
                let mut status = s.status.clone();
                if let (Some(path), Some((dev, ino, end))) = (&s.path, s.handled_to) {
                    status.behind_bytes = std::fs::metadata(&**path)
                        .ok()
                        .filter(|m| m.dev() == dev && m.ino() == ino)
                        .map(|m| m.len().saturating_sub(end));
                }
                status
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn finish_batch(
        &mut self,
        batch: &mut crate::store::Batch<'_>,
        now: Timestamp,
    ) -> Result<BatchOutcome> {
        let touched = std::mem::take(&mut self.pipeline.touched);
        let ban_intents = std::mem::take(&mut self.pipeline.ban_intents);
        for touch in touched.values() {
            if touch.opened {
                self.totals.incidents_opened += 1;
            } else if touch.escalated_from.is_some() {
                self.totals.incidents_escalated += 1;
            }
        }
        let alerts_enqueued = crate::respond::enqueue_alerts(
            batch,
            &self.notifier,
            &touched,
            &ban_intents,
            self.backend,
            now,
        )?;
        self.totals.ban_requests += ban_intents.len() as u64;
        self.totals.alerts_enqueued += alerts_enqueued as u64;
        Ok(BatchOutcome { ban_intents, alerts_enqueued })
    }

    fn handle_item(
        &mut self,
        batch: &mut crate::store::Batch<'_>,
        item: &Incoming,
        now: Timestamp,
        journal_cursor: &mut Option<String>,
    ) -> Result<()> {
        let (key, path) = match &item.payload {
            Payload::Line { position: Some(position), .. } => {
                (position.path.clone(), Some(position.path.clone()))
            }
            _ => (item.source.clone(), None),
        };
        let parse = &self.parse;
        let stream = self.streams.entry(key.clone()).or_insert_with(|| Stream {
            parser: LineParser::new(parse.clone()),
            recent: VecDeque::new(),
            seq: 0,
            status: StreamStatus { name: display_name(&key, path.is_some()), ..Default::default() },
            path: path.clone(),
            handled_to: None,
        });
        self.events.clear();
        let (origin, host_hint) = match &item.payload {
            Payload::Line { bytes, position, host_hint, .. } => {
                let origin = match position {
                    Some(p) => {
                        stream.handled_to = Some((p.dev, p.ino, p.offset + bytes.len() as u64 + 1));
                        Origin { line: p.line, offset: p.offset }
                    }
                    None => {
                        stream.seq += 1;
                        Origin { line: stream.seq, offset: stream.seq }
                    }
                };
                let verdict = stream.parser.push_line(bytes, origin, &mut self.events);
                stream.count(verdict, now);
                if matches!(verdict, LineVerdict::Recognised(_)) {
                    stream.remember(origin.offset, bytes);
                }
                (origin, host_hint.clone())
            }
            Payload::Record { time, host, process, pid, message, cursor } => {
                stream.seq += 1;
                let origin = Origin { line: stream.seq, offset: stream.seq };
                let record =
                    Record { time: *time, host: host.as_deref(), process, pid: *pid, message };
                let verdict = stream.parser.push_record(record, origin, &mut self.events);
                stream.count(verdict, now);
                if matches!(verdict, LineVerdict::Recognised(_)) {
                    let line = record_line(*time, host.as_deref(), process, *pid, message);
                    stream.remember(origin.offset, &line);
                }
                if let Some(cursor) = cursor {
                    *journal_cursor = Some(cursor.clone());
                }
                (origin, None)
            }
        };
        let file = path.unwrap_or(key);
        for parsed in &mut self.events {
            if !crate::pipeline::counts(&parsed.event) {
                continue;
            }
            if let Some(host) = &host_hint {
                parsed.event.host = Some(host.clone());
            }
            let bytes: &[u8] = match &item.payload {
                Payload::Line { bytes, .. } if parsed.origin.offset == origin.offset => bytes,
                _ => {
                    stream.recall(
                        parsed.origin.offset,
                        self.parse.max_line_len,
                        &mut self.evidence,
                    );
                    &self.evidence
                }
            };
            let line = LineRef::new(&file, parsed.origin.offset, bytes);
            let (detector, pipeline) = (&mut self.detector, &mut self.pipeline);
            record_event(detector, pipeline, &mut self.totals, stream, batch, parsed, line)?;
        }
        Ok(())
    }
}

/// One event with its line: counted for its stream, then detected and
/// recorded.
fn record_event(
    detector: &mut Detector,
    pipeline: &mut Pipeline,
    totals: &mut Totals,
    stream: &mut Stream,
    batch: &mut crate::store::Batch<'_>,
    parsed: &Parsed,
    line: LineRef<'_>,
) -> Result<()> {
    count_event(&mut stream.status, &parsed.event);
    totals.events += 1;
    pipeline.handle(batch, detector, &parsed.event, line)?;
    Ok(())
}

fn count_event(status: &mut StreamStatus, event: &hikeshi_core::AuthEvent) {
    match event.outcome {
        Outcome::Failure => status.failures += 1,
        Outcome::Success => status.successes += 1,
        _ => {}
    }
    if status.last_event.map_or(true, |last| last < event.time) {
        status.last_event = Some(event.time);
    }
}

/// `file:/var/log/auth.log` for files; the source's own name otherwise.
fn display_name(key: &str, is_file: bool) -> String {
    if is_file {
        format!("file:{key}")
    } else {
        key.to_string()
    }
}

/// A journal record as a syslog-like line, for evidence:
/// `2026-11-26T10:00:00Z host sshd[42]: message`.
fn record_line(
    time: Option<Timestamp>,
    host: Option<&[u8]>,
    process: &[u8],
    pid: Option<u32>,
    message: &[u8],
) -> Vec<u8> {
    let mut line = Vec::with_capacity(message.len() + 64);
    match time {
        Some(time) => line.extend_from_slice(time.to_string().as_bytes()),
        None => line.push(b'-'),
    }
    line.push(b' ');
    line.extend_from_slice(host.unwrap_or(b"-"));
    line.push(b' ');
    line.extend_from_slice(process);
    if let Some(pid) = pid {
        line.extend_from_slice(format!("[{pid}]").as_bytes());
    }
    line.extend_from_slice(b": ");
    line.extend_from_slice(message);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_records_read_as_syslog_lines() {
        let at: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        assert_eq!(
            record_line(Some(at), Some(b"web1"), b"sshd", Some(42), b"Failed password"),
            b"2026-11-26T10:00:00Z web1 sshd[42]: Failed password".to_vec()
        );
        assert_eq!(record_line(None, None, b"sshd", None, b"x"), b"- - sshd: x".to_vec());
    }
}
