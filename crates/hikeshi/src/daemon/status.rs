//! What `hikeshi watch` says about itself, for `hikeshi status`, the
//! metrics endpoint and `hikeshi verify`'s "monitoring resumed" check.
//!
//! The daemon rewrites [`DaemonStatus`] as JSON in the data directory
//! every [`STATUS_EVERY`] (write to a temporary file, rename over the old
//! one: a reader sees the old document or the new one). A status whose
//! `updated_at` is older than [`STALE_AFTER`], or whose process is gone,
//! belongs to a daemon that is not running any more.
//!
//! [`assess`] turns a status into the warnings a person must act on: a
//! daemon that stopped, a source silent for long, a source whose lines do
//! not look like sshd's or that sshd's lines do not match, messages
//! dropped under overload. It reads no clock: `now` is an argument.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// How often the daemon rewrites its status.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);
/// A status not rewritten for this long belongs to a daemon that stopped
/// (or hangs).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// A source needs this many lines before "no sshd lines" or "sshd lines
/// not understood" is a warning rather than chance.
const UNPARSEABLE_MIN_LINES: u64 = 1_000;
const UNRECOGNISED_MIN_SSHD_LINES: u64 = 20;
/// A file this far ahead of the daemon is worth a warning.
const BEHIND_WARNING_BYTES: u64 = 16 * 1024 * 1024;

/// The status file of the data directory `data_dir`.
pub fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("watch").join("status.json")
}

/// The daemon's state, as written to its status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub version: String,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    /// False once the daemon has stopped cleanly.
    pub running: bool,
    /// The configuration file in use, if any.
    pub config: Option<String>,
    /// Configuration reloads (SIGHUP) that took effect.
    pub reloads: u64,
    /// Reloads refused because the new configuration was bad.
    pub reload_failures: u64,
    /// The firewall backend (`nftables`, ..., `none`).
    pub backend: String,
    /// Seconds without lines after which a source is reported silent.
    pub silent_after_seconds: u64,
    /// The configured sources: what each read.
    pub sources: Vec<SourceStatus>,
    /// What was parsed, per file (or per non-file source).
    pub streams: Vec<StreamStatus>,
    pub totals: Totals,
    /// The bounded per-address state and its caps (older status files
    /// have none).
    #[serde(default)]
    pub memory: MemoryStatus,
    /// The metrics endpoint's address, when enabled.
    pub metrics: Option<String>,
}

/// One configured source (a `[[watch.files]]` entry, the journal, a
/// syslog listener, stdin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub name: String,
    /// `files`, `journal`, `syslog`, `stdin`.
    pub kind: String,
    pub lines: u64,
    pub bytes: u64,
    /// Dropped because the daemon could not keep up (network sources).
    pub dropped: u64,
    /// Refused: oversized, sender not allowed, bad framing.
    pub rejected: u64,
    pub errors: u64,
    /// When it last read something (the daemon's clock).
    pub last_read: Option<Timestamp>,
    /// When this source was started (or restarted by a reload).
    pub started_at: Timestamp,
    /// File sources: what following the files met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileCounters>,
}

/// What a file source met while following its files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileCounters {
    /// Files followed now.
    pub followed: u64,
    /// Rotations by rename (or deletion and re-creation).
    pub rotations: u64,
    /// Truncations in place (copytruncate).
    pub truncations: u64,
    /// Times lines were lost for sure (rotated or truncated away unread).
    pub gaps: u64,
    /// Saved positions whose file was gone at a restart.
    pub lost_files: u64,
}

/// What the parser made of one stream of lines (one file, or one
/// non-file source).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub name: String,
    pub lines: u64,
    /// Lines of sshd's programs.
    pub sshd_lines: u64,
    /// sshd lines of a known shape.
    pub matched: u64,
    /// Lines that look like sshd's but matched no known shape.
    pub unrecognised: u64,
    /// Lines not parsed at all (too long, NUL bytes, no syslog envelope).
    pub skipped: u64,
    pub failures: u64,
    pub successes: u64,
    /// When its last line arrived (the daemon's clock).
    pub last_line: Option<Timestamp>,
    /// The log time of its last sshd event.
    pub last_event: Option<Timestamp>,
    /// Files: bytes written to the file and not handled yet (how far the
    /// daemon is behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind_bytes: Option<u64>,
}

/// Counters of the whole daemon since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Lines and records handled (parsed, detected, committed).
    pub handled: u64,
    /// Failures and successes that reached detection.
    pub events: u64,
    /// Store transactions committed.
    pub batches: u64,
    /// Store transactions that failed (and were retried).
    pub batch_errors: u64,
    pub incidents_opened: u64,
    pub incidents_escalated: u64,
    pub ban_requests: u64,
    pub bans_applied: u64,
    pub bans_failed: u64,
    /// Bans refused by the allowlist at the firewall layer.
    pub bans_refused: u64,
    pub alerts_enqueued: u64,
    pub alerts_sent: u64,
    pub alerts_failed: u64,
    /// Lines read by the sources and not handled yet.
    pub lag: u64,
    /// Reconciliations of the firewall with the store that failed.
    pub reconcile_errors: u64,
}

/// The daemon's memory: its resident size, and each piece of state that
/// grows with the number of distinct sources, against its cap. A cap that
/// was hit (`*_evicted`, `*_forgotten`, `pending_dropped`) is a warning:
/// the attack is wider than the state sized for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStatus {
    /// VmRSS of the daemon (None where /proc says nothing).
    pub rss_bytes: Option<u64>,
    /// Subjects (addresses, prefixes, host names, accounts) the detector
    /// tracks, and its cap (`[detect] max_tracked_sources`).
    pub detector_subjects: u64,
    pub detector_subjects_max: u64,
    /// Subjects evicted at the cap with failures still in a window; of
    /// those, hot ones (in an episode): detection may have missed them.
    pub detector_evicted: u64,
    pub detector_hot_evicted: u64,
    /// Addresses and networks whose ban request is remembered (so that it
    /// is not asked again while the ban runs), the cap, and requests
    /// forgotten at it.
    pub ban_requests: u64,
    pub ban_requests_max: u64,
    pub ban_requests_forgotten: u64,
    /// Lines buffered for campaigns without an incident yet, their memory,
    /// its cap, and lines dropped (at the caps, or past a campaign's 32).
    pub pending_campaigns: u64,
    pub pending_bytes: u64,
    pub pending_bytes_max: u64,
    pub pending_dropped: u64,
    /// Incidents the owner's store keeps in memory between batches, the
    /// estimated memory of their names, and the caps of both (past one,
    /// the incidents the last batch did not use are forgotten).
    pub incident_cache: u64,
    pub incident_cache_max: u64,
    pub incident_cache_name_bytes: u64,
    pub incident_cache_name_bytes_max: u64,
}

/// The resident set size of this process, from /proc/self/status.
pub fn own_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Something in a status a person should look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// What it is about: `daemon`, or a source or stream name.
    pub subject: String,
    pub message: String,
}

/// Writes `status` to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, status: &DaemonStatus) -> Result<()> {
    let dir = path.parent().context("status path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut file, status)?;
    file.write_all(b"\n")?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads the status file at `path`: `None` when there is none (the daemon
/// never ran with this data directory).
pub fn read(path: &Path) -> Result<Option<DaemonStatus>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let status = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a hikeshi status file", path.display()))?;
    Ok(Some(status))
}

/// Whether the status describes a daemon running now: it says so, it was
/// rewritten recently, and (when `process_alive` says) its process exists.
pub fn is_live(status: &DaemonStatus, now: Timestamp, process_alive: bool) -> bool {
    status.running && process_alive && now.duration_since(status.updated_at) <= STALE_AFTER
}

/// The warnings `status` deserves at `now`.
pub fn assess(status: &DaemonStatus, now: Timestamp, process_alive: bool) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let daemon = |message: String| Warning { subject: "daemon".into(), message };
    if !status.running {
        warnings.push(daemon(format!("hikeshi watch stopped at {}", status.updated_at)));
        return warnings;
    }
    if !process_alive {
        warnings.push(daemon(format!(
            "hikeshi watch (pid {}) is gone without stopping cleanly (last status {})",
            status.pid, status.updated_at
        )));
        return warnings;
    }
    let age = now.duration_since(status.updated_at);
    if age > STALE_AFTER {
        warnings.push(daemon(format!(
            "hikeshi watch (pid {}) has not updated its status for {} (hung?)",
            status.pid,
            human(age)
        )));
    }
    let silent_after = SignedDuration::from_secs(status.silent_after_seconds as i64);
    for source in &status.sources {
        let subject = || source.name.clone();
        let quiet_since = source.last_read.unwrap_or(source.started_at);
        let quiet = now.duration_since(quiet_since);
        if quiet > silent_after {
            let message = match source.last_read {
                Some(_) => format!("silent for {}", human(quiet)),
                None => format!("nothing read in {} since it started", human(quiet)),
            };
            warnings.push(Warning { subject: subject(), message });
        }
        if source.dropped > 0 {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "{} messages dropped because the daemon could not keep up",
                    source.dropped
                ),
            });
        }
        if let Some(files) = source.files.as_ref().filter(|f| f.gaps + f.lost_files > 0) {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "lines may be missing: {} rotations or truncations outran the reader, \
                     {} followed files were gone at a restart",
                    files.gaps, files.lost_files
                ),
            });
        }
        if source.errors > 0 {
            warnings.push(Warning {
                subject: subject(),
                message: format!("{} read errors (see the daemon's log)", source.errors),
            });
        }
    }
    for stream in &status.streams {
        let subject = || stream.name.clone();
        if stream.lines >= UNPARSEABLE_MIN_LINES && stream.sshd_lines == 0 {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "no sshd lines in {} lines read: is this sshd's log?",
                    stream.lines
                ),
            });
        }
        if stream.sshd_lines >= UNRECOGNISED_MIN_SSHD_LINES
            && stream.unrecognised * 2 > stream.sshd_lines
        {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "{} of {} sshd lines matched no known message: log format not understood",
                    stream.unrecognised, stream.sshd_lines
                ),
            });
        }
        if let Some(behind) = stream.behind_bytes.filter(|b| *b >= BEHIND_WARNING_BYTES) {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "{} MiB written and not handled yet: the daemon is behind",
                    behind / (1024 * 1024)
                ),
            });
        }
        if stream.skipped * 2 > stream.lines && stream.lines >= UNRECOGNISED_MIN_SSHD_LINES {
            warnings.push(Warning {
                subject: subject(),
                message: format!(
                    "{} of {} lines could not be parsed (no syslog header, NUL bytes, too long)",
                    stream.skipped, stream.lines
                ),
            });
        }
    }
    if status.totals.bans_failed > 0 {
        warnings.push(daemon(format!(
            "{} bans failed in the firewall (see the incidents' timelines)",
            status.totals.bans_failed
        )));
    }
    let memory = &status.memory;
    if memory.detector_hot_evicted > 0 {
        warnings.push(daemon(format!(
            "the detector tracked {} sources, its cap: {} were evicted in an attack episode \
             (raise [detect] max_tracked_sources)",
            memory.detector_subjects_max, memory.detector_hot_evicted
        )));
    }
    if memory.ban_requests_forgotten > 0 {
        warnings.push(daemon(format!(
            "{} ban requests forgotten at the cap of {} addresses: those addresses, seen \
             again while banned, are banned again as repeat offenders",
            memory.ban_requests_forgotten, memory.ban_requests_max
        )));
    }
    if status.totals.alerts_failed > 0 {
        warnings.push(daemon(format!(
            "{} alert deliveries failed (they are retried; see `hikeshi incident show`)",
            status.totals.alerts_failed
        )));
    }
    warnings
}

/// `3h 2m`, `45s`: a duration for people.
pub fn human(duration: SignedDuration) -> String {
    let secs = duration.as_secs().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn status() -> DaemonStatus {
        DaemonStatus {
            pid: 42,
            version: "0".into(),
            started_at: at(0),
            updated_at: at(100),
            running: true,
            config: None,
            reloads: 0,
            reload_failures: 0,
            backend: "nftables".into(),
            silent_after_seconds: 3_600,
            sources: vec![SourceStatus {
                name: "files /var/log/auth.log".into(),
                kind: "files".into(),
                lines: 10,
                bytes: 900,
                dropped: 0,
                rejected: 0,
                errors: 0,
                last_read: Some(at(90)),
                started_at: at(0),
                files: Some(FileCounters { followed: 1, ..FileCounters::default() }),
            }],
            streams: vec![StreamStatus {
                name: "file:/var/log/auth.log".into(),
                lines: 10,
                sshd_lines: 8,
                matched: 8,
                ..StreamStatus::default()
            }],
            totals: Totals::default(),
            memory: MemoryStatus::default(),
            metrics: None,
        }
    }

    #[test]
    fn caps_hit_are_warnings_and_caps_in_use_are_not() {
        let mut busy = status();
        busy.memory = MemoryStatus {
            detector_subjects: 900_000,
            detector_subjects_max: 1_200_000,
            detector_evicted: 12,
            ban_requests: 150_000,
            ban_requests_max: 200_000,
            ..MemoryStatus::default()
        };
        // Full tables and cold evictions are the caps doing their work.
        assert_eq!(assess(&busy, at(101), true), vec![]);
        busy.memory.detector_hot_evicted = 3;
        busy.memory.ban_requests_forgotten = 100_000;
        let messages: Vec<String> =
            assess(&busy, at(101), true).into_iter().map(|w| w.message).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("3 were evicted in an attack episode"), "{messages:?}");
        assert!(messages[1].contains("100000 ban requests forgotten at the cap of 200000"));
    }

    #[test]
    fn a_status_without_memory_reads_as_empty_memory() {
        let mut json = serde_json::to_value(status()).unwrap();
        json.as_object_mut().unwrap().remove("memory");
        let read: DaemonStatus = serde_json::from_value(json).unwrap();
        assert_eq!(read.memory, MemoryStatus::default());
    }

    #[test]
    fn own_rss_is_read_from_proc() {
        let rss = own_rss_bytes().expect("Linux has /proc/self/status");
        assert!(rss > 1024 * 1024, "{rss}");
    }

    #[test]
    fn a_healthy_daemon_has_no_warnings() {
        assert_eq!(assess(&status(), at(101), true), vec![]);
        assert!(is_live(&status(), at(101), true));
    }

    #[test]
    fn a_stopped_gone_or_hung_daemon_is_not_live() {
        let mut stopped = status();
        stopped.running = false;
        assert!(!is_live(&stopped, at(101), true));
        assert!(assess(&stopped, at(101), true)[0].message.contains("stopped"));
        assert!(!is_live(&status(), at(101), false));
        assert!(assess(&status(), at(101), false)[0].message.contains("gone"));
        assert!(!is_live(&status(), at(200), true));
        assert!(assess(&status(), at(200), true)[0].message.contains("has not updated"));
    }

    #[test]
    fn silent_and_overloaded_sources_are_named() {
        let mut s = status();
        s.updated_at = at(5_000);
        s.sources[0].dropped = 7;
        let warnings = assess(&s, at(5_001), true);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0].subject, "files /var/log/auth.log");
        assert!(warnings[0].message.contains("silent for 1h 21m"), "{warnings:?}");
        assert!(warnings[1].message.contains("7 messages dropped"));
        // A source that never read anything is silent from its start.
        s.sources[0].last_read = None;
        s.sources[0].dropped = 0;
        assert!(assess(&s, at(5_001), true)[0].message.contains("nothing read"));
    }

    #[test]
    fn streams_that_are_not_sshd_or_not_understood_are_named() {
        let mut s = status();
        s.streams[0] =
            StreamStatus { name: "file:/x".into(), lines: 5_000, ..StreamStatus::default() };
        assert!(assess(&s, at(101), true)[0].message.contains("no sshd lines in 5000"));
        s.streams[0] = StreamStatus {
            name: "file:/x".into(),
            lines: 100,
            sshd_lines: 40,
            matched: 10,
            unrecognised: 30,
            ..StreamStatus::default()
        };
        assert!(assess(&s, at(101), true)[0].message.contains("30 of 40 sshd lines"));
        // A few unknown lines are normal (sshd has many messages).
        s.streams[0].unrecognised = 3;
        assert_eq!(assess(&s, at(101), true), vec![]);
        // Far behind the file, or lines lost to a rotation: said.
        s.streams[0].behind_bytes = Some(40 * 1024 * 1024);
        assert!(assess(&s, at(101), true)[0].message.contains("40 MiB written and not handled"));
        s.streams[0].behind_bytes = Some(1024);
        s.sources[0].files.as_mut().unwrap().gaps = 1;
        assert!(assess(&s, at(101), true)[0].message.contains("lines may be missing"));
    }

    #[test]
    fn the_status_file_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = status_path(dir.path());
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &status()).unwrap();
        assert_eq!(read(&path).unwrap(), Some(status()));
        std::fs::write(&path, b"{not json").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("is not a hikeshi status file"), "{err}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(SignedDuration::from_secs(45)), "45s");
        assert_eq!(human(SignedDuration::from_secs(125)), "2m 5s");
        assert_eq!(human(SignedDuration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(human(SignedDuration::from_secs(2 * 86_400 + 3600)), "2d 1h");
    }
}
