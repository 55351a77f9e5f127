//! The thread that runs ahead of `hikeshi scan`'s recording: it reads a
//! stretch of a log file, parses it and hashes each line that matters; the
//! scan's own thread detects and records what that means (incidents,
//! evidence, SQLite).
//!
//! Reading, parsing and hashing cost about as much as detecting and
//! recording (measured: with detection here too, the recorder waited for
//! this thread), so on a machine with more than one CPU the two overlap.
//! It hands over, in [`Chunk`]s, only the events detection looks at
//! ([`crate::pipeline::detects`]), each with a copy of its raw line (read
//! back from the file when the parser released the event after its line
//! had gone by) and the line's SHA-256. Chunks go round between the two
//! threads and are reused, so the hand-over allocates nothing once warm.
//!
//! Order is kept: events arrive in the order the parser released them,
//! exactly as a single-threaded loop would see them. The channel is
//! bounded, so a slow recorder holds the reader back instead of letting
//! memory grow.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};

use anyhow::{Context as _, Result};
use hikeshi_core::incident::Sha256Digest;
use hikeshi_core::parse::{LineParser, Origin, ParseOptions, ParseStats, Parsed, SkipReason};
use sha2::{Digest as _, Sha256};

use crate::pipeline::detects;
use crate::sources::lines::{read_line_at, Line, LineReader};

/// Events per chunk: large enough that the hand-over costs nothing per
/// event, small enough that the recorder starts at once.
const EVENTS_PER_CHUNK: usize = 1024;
/// Chunks read ahead of the recorder at most.
const CHUNKS_AHEAD: usize = 4;

/// An event detection looks at, with its line.
pub struct ParsedLine<'a> {
    pub parsed: &'a Parsed,
    /// The raw line, without its `\n`.
    pub line: &'a [u8],
    /// SHA-256 of `line`: its evidence digest.
    pub sha256: Sha256Digest,
}

struct Entry {
    parsed: Parsed,
    line: Range<usize>,
    sha256: Sha256Digest,
}

/// Events detection looks at, with their lines.
#[derive(Default)]
struct Chunk {
    entries: Vec<Entry>,
    text: Vec<u8>,
}

impl Chunk {
    fn iter(&self) -> impl Iterator<Item = ParsedLine<'_>> {
        self.entries.iter().map(|entry| ParsedLine {
            parsed: &entry.parsed,
            line: &self.text[entry.line.clone()],
            sha256: entry.sha256,
        })
    }

    fn push(&mut self, parsed: Parsed, line: &[u8]) {
        let start = self.text.len();
        self.text.extend_from_slice(line);
        let sha256 = Sha256::digest(line).into();
        self.entries.push(Entry { parsed, line: start..self.text.len(), sha256 });
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= EVENTS_PER_CHUNK
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
    }
}

/// One stretch of a file to read: from `start` to its end.
pub struct Stretch {
    /// Positioned at `start`.
    pub file: File,
    /// Where to start; the start of a line.
    pub start: u64,
    /// A file still being written: its unterminated last line is left for
    /// the next run. (A rotated file will not grow: its last line is read
    /// as it is.)
    pub live: bool,
    /// The name errors use.
    pub name: String,
}

/// What the reader found once it reached the end.
pub struct StretchEnd {
    /// The offset after the last complete line.
    pub end: u64,
    pub stats: ParseStats,
}

/// Reads and parses `stretch` on a new thread of `scope`, and calls
/// `record` on this thread with each event detection looks at, in order.
/// An error of `record` stops the reader; an error reading the file ends
/// the stretch with that error after the events before it.
pub fn read_ahead<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    stretch: Stretch,
    options: ParseOptions,
    mut record: impl FnMut(ParsedLine<'_>) -> Result<()>,
) -> Result<StretchEnd> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS_AHEAD);
    // Chunks come back here to be reused: at most CHUNKS_AHEAD + 2 exist.
    let (empty_tx, empty_rx) = mpsc::channel::<Chunk>();
    let reader = std::thread::Builder::new()
        .name("hikeshi-read".into())
        .spawn_scoped(scope, move || read_stretch(stretch, options, &full_tx, &empty_rx))
        .context("cannot start the reader thread")?;
    let mut recorded = Ok(());
    'chunks: for chunk in full_rx.iter() {
        for parsed in chunk.iter() {
            recorded = record(parsed);
            if recorded.is_err() {
                break 'chunks;
            }
        }
        // The reader may have finished: then the chunk is just dropped.
        let _ = empty_tx.send(chunk);
    }
    // Dropping the receiver stops a reader still sending.
    drop(full_rx);
    let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    recorded?;
    read
}

/// The reader thread: everything in `stretch` up to its end, then the
/// events the parser still held.
fn read_stretch(
    stretch: Stretch,
    options: ParseOptions,
    full: &SyncSender<Chunk>,
    empty: &Receiver<Chunk>,
) -> Result<StretchEnd> {
    let Stretch { file, start, live, name } = stretch;
    let what = || format!("cannot read {name}");
    let max_line = options.max_line_len;
    let reader_file = file.try_clone().with_context(what)?;
    let mut reader = LineReader::resume(reader_file.take(u64::MAX), max_line, start, 1);
    let mut parser = LineParser::new(options);
    let mut released: Vec<Parsed> = Vec::new();
    let mut read_back = Vec::new();
    let mut chunk = Chunk::default();
    let mut end = start;
    // False once the recorder has gone (it failed): stop reading.
    let hand_over = |chunk: &mut Chunk| -> bool {
        let mut next = empty.try_recv().unwrap_or_default();
        next.clear();
        full.send(std::mem::replace(chunk, next)).is_ok()
    };
    loop {
        let line = match reader.next_line().with_context(what)? {
            None => break,
            Some(line) => line,
        };
        match line {
            Line::Text { terminated: false, .. } | Line::TooLong { terminated: false, .. }
                if live =>
            {
                break;
            }
            Line::TooLong { .. } => {
                parser.record_skipped(SkipReason::TooLong);
                end = line.end_offset();
            }
            Line::Text { bytes, number, offset, .. } => {
                end = line.end_offset();
                parser.push_line(bytes, Origin { line: number, offset }, &mut released);
                for parsed in released.drain(..).filter(|p| detects(&p.event)) {
                    if parsed.origin.offset == offset {
                        chunk.push(parsed, bytes);
                    } else {
                        read_line_at(&file, parsed.origin.offset, max_line, &mut read_back)
                            .with_context(what)?;
                        chunk.push(parsed, &read_back);
                    }
                    if chunk.is_full() && !hand_over(&mut chunk) {
                        return Ok(StretchEnd { end, stats: parser.stats().clone() });
                    }
                }
            }
        }
    }
    parser.finish(&mut released);
    for parsed in released.drain(..).filter(|p| detects(&p.event)) {
        read_line_at(&file, parsed.origin.offset, max_line, &mut read_back).with_context(what)?;
        chunk.push(parsed, &read_back);
        if chunk.is_full() && !hand_over(&mut chunk) {
            break;
        }
    }
    if !chunk.entries.is_empty() {
        hand_over(&mut chunk);
    }
    Ok(StretchEnd { end, stats: parser.stats().clone() })
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use hikeshi_core::Mode;
    use jiff::tz::TimeZone;
    use jiff::Timestamp;

    use super::*;

    fn options() -> ParseOptions {
        let reference: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        ParseOptions::new(Mode::Normal, TimeZone::UTC, reference)
    }

    /// `attackers` addresses failing `failures` times each, interleaved,
    /// with pam_unix lines whose failure is only known when the connection
    /// ends (their event is released after their line: read back).
    fn auth_log(attackers: u32, failures: u32) -> Vec<u8> {
        let mut log = Vec::new();
        let mut pid = 1000;
        for round in 0..failures {
            for a in 0..attackers {
                pid += 1;
                let (addr, s) = (format!("198.18.{}.{}", a / 250, a % 250 + 1), round % 60);
                let t = format!("Mar  1 10:{:02}:{s:02}", round / 60);
                writeln!(
                    log,
                    "{t} web1 sshd[{pid}]: pam_unix(sshd:auth): authentication failure; \
                     logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user=root"
                )
                .unwrap();
                writeln!(
                    log,
                    "{t} web1 sshd[{pid}]: Connection closed by {addr} port 22 [preauth]"
                )
                .unwrap();
                writeln!(
                    log,
                    "{t} web1 sshd[{}]: Failed password for invalid user a{a} from {addr} port 4{a} ssh2",
                    pid + 100_000
                )
                .unwrap();
                writeln!(log, "{t} web1 CRON[7]: pam_unix(cron:session): session closed").unwrap();
            }
        }
        log
    }

    fn file_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file
    }

    fn stretch(file: File, live: bool) -> Stretch {
        Stretch { file, start: 0, live, name: "auth.log".into() }
    }

    /// What one thread reading, parsing and detecting in turn sees.
    fn sequential(log: &[u8]) -> Vec<(u64, Vec<u8>, Sha256Digest)> {
        let mut parser = LineParser::new(options());
        let mut released = Vec::new();
        let mut offset = 0;
        for line in log.split_inclusive(|&b| b == b'\n') {
            let text = &line[..line.len() - 1];
            parser.push_line(text, Origin { line: 0, offset }, &mut released);
            offset += line.len() as u64;
        }
        parser.finish(&mut released);
        let mut seen = Vec::new();
        for parsed in released.into_iter().filter(|p| detects(&p.event)) {
            let start = parsed.origin.offset as usize;
            let end = start + log[start..].iter().position(|&b| b == b'\n').unwrap();
            let line = log[start..end].to_vec();
            let sha = Sha256::digest(&line).into();
            seen.push((parsed.origin.offset, line, sha));
        }
        seen
    }

    #[test]
    fn the_recorder_sees_what_a_single_thread_would() {
        // Several chunks' worth, with events released after their line.
        let log = auth_log(300, 8);
        let mut seen = Vec::new();
        let end = std::thread::scope(|scope| {
            read_ahead(scope, stretch(file_with(&log), true), options(), |d| {
                seen.push((d.parsed.origin.offset, d.line.to_vec(), d.sha256));
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(end.end, log.len() as u64);
        assert_eq!(end.stats.lines, 300 * 8 * 4);
        let expected = sequential(&log);
        assert!(expected.len() > 2 * EVENTS_PER_CHUNK, "{} events", expected.len());
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected, "same events, lines and digests, in the same order");
    }

    #[test]
    fn a_failing_recorder_stops_the_reader() {
        let log = auth_log(500, 10);
        let mut calls = 0;
        let result = std::thread::scope(|scope| {
            read_ahead(scope, stretch(file_with(&log), true), options(), |_| {
                calls += 1;
                if calls == 3 {
                    anyhow::bail!("database is locked");
                }
                Ok(())
            })
        });
        let err = result.err().expect("the recorder's error");
        assert_eq!(err.to_string(), "database is locked");
        assert_eq!(calls, 3, "nothing recorded after the error");
    }

    #[test]
    fn a_live_file_keeps_its_unfinished_line_for_next_time() {
        let mut log = auth_log(1, 2);
        let complete = log.len() as u64;
        log.extend_from_slice(
            b"Mar  1 10:00:09 web1 sshd[9]: Failed password for root from 198.18.9.9 port 1 ssh2",
        );
        for (live, end) in [(true, complete), (false, log.len() as u64)] {
            let mut lines = Vec::new();
            let read = std::thread::scope(|scope| {
                read_ahead(scope, stretch(file_with(&log), live), options(), |d| {
                    lines.push(d.line.to_vec());
                    Ok(())
                })
            })
            .unwrap();
            assert_eq!(read.end, end, "live: {live}");
            let last_read = lines.iter().any(|l| l.ends_with(b"198.18.9.9 port 1 ssh2"));
            assert_eq!(last_read, !live, "live: {live}");
        }
    }
}
