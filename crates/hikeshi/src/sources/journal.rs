//! The systemd journal as a source of sshd records (Debian 12 has no
//! `auth.log` unless rsyslog is installed).
//!
//! hikeshi never links libsystemd: it runs `journalctl -o json` through
//! [`crate::exec`] and reads one JSON object per line. What it owns:
//!
//! - **Which records count as sshd's.** `SYSLOG_IDENTIFIER` is chosen by
//!   the logging program (`logger -t sshd "Failed password ... from X"`
//!   forges it), so records are selected by the fields journald itself
//!   fills in from the kernel's view of the sender: `_EXE` (the sender's
//!   executable) and `_SYSTEMD_UNIT` (its cgroup's unit). journalctl is
//!   given `_SYSTEMD_UNIT=a _SYSTEMD_UNIT=b + _EXE=x _EXE=y` (the same field
//!   ORs, `+` ORs the two groups) and every record is checked again here
//!   ([`TrustFilter`]), because a process inside `ssh.service` that is not
//!   sshd (a user's shell when `pam_systemd` is not used) must not count:
//!   a record is sshd's when its `_EXE` is a configured sshd executable,
//!   or when it has no `_EXE` (its sender exited before journald looked)
//!   and its `_SYSTEMD_UNIT` is a configured unit.
//! - **Decoding** `journalctl -o json`: a field is a string, an array of
//!   byte values (not UTF-8, or control characters), an array of those
//!   (a field given more than once) or `null` (too large; `--all` is
//!   passed so this does not happen for the fields read).
//! - **Following**: [`JournalSource::spawn`] runs `journalctl -f` on a
//!   thread, restarts it from the last cursor it delivered when it exits
//!   (with a growing delay, never a busy loop, each exit counted as an
//!   error), and blocks when the daemon's channel is full (the journal
//!   keeps what is not read yet).
//! - **Reading once** ([`JournalSource::read_once`]): a journal to its end,
//!   for `scan` and tests, optionally after a cursor.
//! - **Cursor persistence** ([`JournalCursorStore`]): the cursor of the last
//!   record the daemon processed, saved atomically (temporary file, fsync,
//!   rename, fsync of the directory) in `<data dir>/cursors/journal`.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::lines::{Line, LineReader};
use super::{Incoming, Payload, SourceStats};
use crate::exec::{self, ExecError};

/// The unit names sshd runs under: Debian's and everyone else's.
pub const DEFAULT_UNITS: [&str; 2] = ["ssh.service", "sshd.service"];

/// Where sshd and its per-connection programs live: the classic binary,
/// and OpenSSH 9.8+'s `sshd-session` / `sshd-auth` (Debian 13 puts them in
/// `/usr/lib/openssh`, Fedora in `/usr/libexec/openssh`).
pub const DEFAULT_EXECUTABLES: [&str; 7] = [
    "/usr/sbin/sshd",
    "/usr/bin/sshd",
    "/usr/lib/openssh/sshd-session",
    "/usr/lib/openssh/sshd-auth",
    "/usr/libexec/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-auth",
    "/usr/libexec/sshd-session",
];

/// Default limit on one JSON record from journalctl. sshd's records are
/// well under 2 KiB; a larger one is skipped whole and counted.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// The fields asked of journalctl (`__CURSOR` and `__REALTIME_TIMESTAMP`
/// always come): less JSON to read and decode per record.
const OUTPUT_FIELDS: &str =
    "MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,_PID,SYSLOG_PID,_EXE,_SYSTEMD_UNIT";

/// First and longest wait before journalctl is restarted.
const RESTART_DELAY_MIN: Duration = Duration::from_millis(250);
const RESTART_DELAY_MAX: Duration = Duration::from_secs(30);

/// A journalctl that ran this long before exiting is considered to have
/// been working: the restart delay starts over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How often a source blocked on a full channel looks for a stop request.
const FULL_CHANNEL_POLL: Duration = Duration::from_millis(5);

/// Bytes of journalctl's standard error kept for error messages.
const STDERR_KEEP: usize = 4096;

/// `[watch.journal]`: reading sshd's records from the systemd journal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Read the journal: `true`, `false`, or unset to read it only when no
    /// `[[watch.files]]` or `[[watch.syslog]]` source is configured (on a
    /// host where rsyslog copies the journal into auth.log, reading both
    /// would count every attempt twice).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `_SYSTEMD_UNIT` values whose records are sshd's (when the record has
    /// no `_EXE`): Debian's `ssh.service`, elsewhere `sshd.service`.
    #[serde(default = "default_units")]
    pub units: Vec<String>,
    /// `_EXE` values (absolute paths) of sshd and its helper programs.
    #[serde(default = "default_executables")]
    pub executables: Vec<String>,
    /// Read this journal file instead of the system journal
    /// (`journalctl --file`), e.g. one written by `systemd-journal-remote`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Read the journal files in this directory instead of the system
    /// journal (`journalctl --directory`), e.g. `/var/log/journal/remote`.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// The journalctl program (a name looked up on PATH, or a path).
    #[serde(default = "default_journalctl")]
    pub journalctl: String,
    /// Where the cursor of the last processed record is kept. Default:
    /// `<data dir>/cursors/journal`.
    #[serde(default)]
    pub cursor_file: Option<PathBuf>,
    /// Longest JSON record read from journalctl; larger ones are skipped
    /// and counted.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_units() -> Vec<String> {
    DEFAULT_UNITS.iter().map(|s| s.to_string()).collect()
}

fn default_executables() -> Vec<String> {
    DEFAULT_EXECUTABLES.iter().map(|s| s.to_string()).collect()
}

fn default_journalctl() -> String {
    "journalctl".to_string()
}

fn default_max_record_bytes() -> usize {
    DEFAULT_MAX_RECORD_BYTES
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: None,
            units: default_units(),
            executables: default_executables(),
            file: None,
            directory: None,
            journalctl: default_journalctl(),
            cursor_file: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl JournalConfig {
    /// Whether `hikeshi watch` reads the journal, given whether other
    /// sources are configured.
    pub fn is_enabled(&self, other_sources: bool) -> bool {
        self.enabled.unwrap_or(!other_sources)
    }

    /// Checks what serde cannot: at least one trusted selector, sane
    /// values, not both `file` and `directory`.
    pub fn validate(&self) -> Result<(), JournalError> {
        let bad = |why: String| Err(JournalError::Config(why));
        if self.units.is_empty() && self.executables.is_empty() {
            return bad("[watch.journal] needs at least one of `units` or `executables`: \
                 without them every program could speak for sshd"
                .into());
        }
        for unit in &self.units {
            if unit.is_empty() || unit.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return bad(format!("[watch.journal] units: {unit:?} is not a unit name"));
            }
        }
        for exe in &self.executables {
            if !exe.starts_with('/') || exe.chars().any(char::is_control) {
                return bad(format!(
                    "[watch.journal] executables: {exe:?} is not an absolute path"
                ));
            }
        }
        if self.file.is_some() && self.directory.is_some() {
            return bad("[watch.journal] give `file` or `directory`, not both".into());
        }
        if self.journalctl.is_empty() {
            return bad("[watch.journal] journalctl: empty program name".into());
        }
        if self.max_record_bytes < 1024 {
            return bad(format!(
                "[watch.journal] max_record_bytes: at least 1024, got {}",
                self.max_record_bytes
            ));
        }
        Ok(())
    }

    /// The cursor file: `cursor_file`, or `<data_dir>/cursors/journal`.
    pub fn cursor_path(&self, data_dir: &Path) -> PathBuf {
        self.cursor_file.clone().unwrap_or_else(|| data_dir.join("cursors").join("journal"))
    }
}

/// What can go wrong reading the journal.
#[derive(Debug, Error)]
pub enum JournalError {
    /// A configuration value that cannot work (the message names it).
    #[error("{0}")]
    Config(String),
    /// journalctl could not be started (missing, not executable).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// journalctl ran and failed.
    #[error("`{program}` failed with {status}: {stderr}")]
    Failed { program: String, status: std::process::ExitStatus, stderr: String },
    /// Reading journalctl's output failed.
    #[error("reading the output of `{program}`: {source}")]
    Read {
        program: String,
        #[source]
        source: io::Error,
    },
    /// The cursor file cannot be read, written or understood.
    #[error("journal cursor file {path}: {why}")]
    Cursor { path: PathBuf, why: String },
}

/// Why one line of journalctl's output was not a record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// A field the record needs is absent (or `null`).
    #[error("field {0} is missing")]
    Missing(&'static str),
    /// A field is neither a string nor bytes, or repeated where it must
    /// not be.
    #[error("field {0} has an unexpected form")]
    BadField(&'static str),
}

/// A value of one journal field as `journalctl -o json` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Absent, or `null` (journalctl's "too large to show").
    Missing,
    /// Exactly one value.
    One(Vec<u8>),
    /// The field was given more than once in the record.
    Many(Vec<Vec<u8>>),
}

impl FieldValue {
    /// Decodes one field: a string, an array of byte values, or an array
    /// of those (a repeated field).
    pub fn decode(value: Option<&Value>) -> Option<FieldValue> {
        let Some(value) = value else { return Some(FieldValue::Missing) };
        match value {
            Value::Null => Some(FieldValue::Missing),
            Value::String(s) => Some(FieldValue::One(s.as_bytes().to_vec())),
            Value::Array(items) if items.iter().all(Value::is_number) => {
                bytes_of(items).map(FieldValue::One)
            }
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Some(s.as_bytes().to_vec()),
                    Value::Array(bytes) => bytes_of(bytes),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(FieldValue::Many),
            _ => None,
        }
    }

    /// The single value, if there is exactly one.
    pub fn one(&self) -> Option<&[u8]> {
        match self {
            FieldValue::One(v) => Some(v),
            _ => None,
        }
    }
}

fn bytes_of(items: &[Value]) -> Option<Vec<u8>> {
    items.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect()
}

/// Decides from trusted fields whether a record is sshd's (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustFilter {
    units: Vec<Vec<u8>>,
    executables: Vec<Vec<u8>>,
}

/// The trusted fields of one record.
#[derive(Debug, Clone, Copy)]
pub struct TrustedFields<'a> {
    /// `_EXE`.
    pub exe: &'a FieldValue,
    /// `_SYSTEMD_UNIT`.
    pub unit: &'a FieldValue,
}

impl TrustFilter {
    /// The filter of `config`'s units and executables.
    pub fn new(config: &JournalConfig) -> Self {
        TrustFilter {
            units: config.units.iter().map(|u| u.as_bytes().to_vec()).collect(),
            executables: config.executables.iter().map(|e| e.as_bytes().to_vec()).collect(),
        }
    }

    /// True if the record was written by sshd. A repeated trusted field
    /// never occurs in a journal journald wrote: such a record is refused.
    pub fn is_sshd(&self, fields: TrustedFields<'_>) -> bool {
        let known = |list: &[Vec<u8>], value: &[u8]| list.iter().any(|item| item == value);
        match fields.exe {
            FieldValue::One(exe) => known(&self.executables, exe),
            FieldValue::Many(_) => false,
            // Without an executable (the sender exited before journald
            // read /proc), the unit is all there is.
            FieldValue::Missing => fields.unit.one().is_some_and(|u| known(&self.units, u)),
        }
    }

    /// journalctl match arguments: units ORed, `+`, executables ORed.
    pub fn match_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        let group = |field: &str, values: &[Vec<u8>]| -> Vec<OsString> {
            values
                .iter()
                .map(|v| {
                    let mut arg = OsString::from(format!("{field}="));
                    arg.push(String::from_utf8_lossy(v).as_ref());
                    arg
                })
                .collect()
        };
        let units = group("_SYSTEMD_UNIT", &self.units);
        let exes = group("_EXE", &self.executables);
        let both = !units.is_empty() && !exes.is_empty();
        args.extend(units);
        if both {
            args.push("+".into());
        }
        args.extend(exes);
        args
    }
}

/// One sshd record from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecord {
    /// `__REALTIME_TIMESTAMP`, when present and valid.
    pub time: Option<Timestamp>,
    /// `_HOSTNAME`.
    pub host: Option<Vec<u8>>,
    /// `SYSLOG_IDENTIFIER`, else `_COMM`, else empty.
    pub process: Vec<u8>,
    /// `_PID` (set by journald), else `SYSLOG_PID`.
    pub pid: Option<u32>,
    /// `MESSAGE`, as bytes (it need not be UTF-8).
    pub message: Vec<u8>,
    /// `__CURSOR`: where to resume after this record.
    pub cursor: Option<String>,
}

impl JournalRecord {
    /// The record as the parser takes it.
    pub fn as_parse_record(&self) -> hikeshi_core::parse::Record<'_> {
        hikeshi_core::parse::Record {
            time: self.time,
            host: self.host.as_deref(),
            process: &self.process,
            pid: self.pid,
            message: &self.message,
        }
    }

    /// The record as a live source hands it to the daemon.
    pub fn into_payload(self) -> Payload {
        Payload::Record {
            time: self.time,
            host: self.host,
            process: self.process,
            pid: self.pid,
            message: self.message,
            cursor: self.cursor,
        }
    }
}

/// The parser's view of a [`Payload::Record`] (`None` for a line).
pub fn parse_record_of(payload: &Payload) -> Option<hikeshi_core::parse::Record<'_>> {
    match payload {
        Payload::Record { time, host, process, pid, message, .. } => {
            Some(hikeshi_core::parse::Record {
                time: *time,
                host: host.as_deref(),
                process,
                pid: *pid,
                message,
            })
        }
        Payload::Line { .. } => None,
    }
}

/// What one line of journalctl's output turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A record of sshd's.
    Sshd(JournalRecord),
    /// A record the trusted fields do not attribute to sshd (its cursor,
    /// so that reading can go on after it).
    NotSshd { cursor: Option<String> },
}

/// Decodes one line of `journalctl -o json` and applies `filter`.
pub fn decode_record(json: &[u8], filter: &TrustFilter) -> Result<Decoded, RecordError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| RecordError::Json(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(RecordError::Json("not an object".into()));
    };
    let field = |name: &'static str| {
        FieldValue::decode(object.get(name)).ok_or(RecordError::BadField(name))
    };
    let cursor = match object.get("__CURSOR") {
        Some(Value::String(c)) => Some(c.clone()),
        None => None,
        Some(_) => return Err(RecordError::BadField("__CURSOR")),
    };
    let exe = field("_EXE")?;
    let unit = field("_SYSTEMD_UNIT")?;
    if !filter.is_sshd(TrustedFields { exe: &exe, unit: &unit }) {
        return Ok(Decoded::NotSshd { cursor });
    }
    let message = match field("MESSAGE")? {
        FieldValue::One(m) => m,
        FieldValue::Missing => return Err(RecordError::Missing("MESSAGE")),
        FieldValue::Many(_) => return Err(RecordError::BadField("MESSAGE")),
    };
    let time = field("__REALTIME_TIMESTAMP")?
        .one()
        .and_then(|t| std::str::from_utf8(t).ok()?.parse::<i64>().ok())
        .and_then(|micros| Timestamp::from_microsecond(micros).ok());
    let number = |v: FieldValue| v.one().and_then(|p| std::str::from_utf8(p).ok()?.parse().ok());
    let pid = number(field("_PID")?).or(number(field("SYSLOG_PID")?));
    let process = match field("SYSLOG_IDENTIFIER")? {
        FieldValue::One(id) => id,
        _ => field("_COMM")?.one().map(<[u8]>::to_vec).unwrap_or_default(),
    };
    let host = field("_HOSTNAME")?.one().map(<[u8]>::to_vec);
    Ok(Decoded::Sshd(JournalRecord { time, host, process, pid, message, cursor }))
}

/// Where journalctl starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The oldest entry.
    Beginning,
    /// Just after the entry with this cursor.
    AfterCursor(String),
    /// The last N entries (`doctor`).
    Last(u64),
    /// After the newest entry (`--lines=0`).
    End,
}

/// Counters beyond [`SourceStats`], for `hikeshi status` and `doctor`.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Records the trusted fields did not attribute to sshd (also in
    /// `SourceStats::rejected`).
    pub not_sshd: AtomicU64,
    /// Lines that were not a record we understand (also `rejected`).
    pub malformed: AtomicU64,
    /// Records over `max_record_bytes` (also `rejected`).
    pub oversized: AtomicU64,
    /// Times journalctl was started again after it exited.
    pub restarts: AtomicU64,
}

/// What [`JournalSource::read_once`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnceSummary {
    /// sshd records handed to the sink.
    pub records: u64,
    /// Records refused by the trusted-field check.
    pub not_sshd: u64,
    /// Lines that were not a record we understand.
    pub malformed: u64,
    /// Records over `max_record_bytes`.
    pub oversized: u64,
    /// The cursor of the last record read (sshd's or not): resume here.
    pub last_cursor: Option<String>,
    /// What journalctl wrote on standard error (hints such as "not seeing
    /// messages from other users"), trimmed.
    pub stderr: String,
}

/// The systemd journal, read through journalctl.
#[derive(Debug, Clone)]
pub struct JournalSource {
    config: JournalConfig,
    filter: TrustFilter,
    name: Arc<str>,
    stats: Arc<SourceStats>,
    journal_stats: Arc<JournalStats>,
}

impl JournalSource {
    /// A source for `config` (validated here). Its name in [`Incoming`] is
    /// `journal`, `journal:file=PATH` or `journal:directory=DIR`.
    pub fn new(config: &JournalConfig, stats: Arc<SourceStats>) -> Result<Self, JournalError> {
        config.validate()?;
        let name = match (&config.file, &config.directory) {
            (Some(file), _) => format!("journal:file={}", file.display()),
            (None, Some(dir)) => format!("journal:directory={}", dir.display()),
            (None, None) => "journal".to_string(),
        };
        Ok(JournalSource {
            filter: TrustFilter::new(config),
            config: config.clone(),
            name: Arc::from(name),
            stats,
            journal_stats: Arc::new(JournalStats::default()),
        })
    }

    /// The name carried by every [`Incoming`] of this source.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The shared counters (`lines` counts sshd records delivered).
    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    /// The journal's own counters.
    pub fn journal_stats(&self) -> &Arc<JournalStats> {
        &self.journal_stats
    }

    /// journalctl's arguments: JSON output of the fields read, the
    /// configured journal, `--follow` if `follow`, where to start, and the
    /// trusted-field matches (after `--`, so no configured value is ever
    /// read as an option).
    pub fn args(&self, follow: bool, start: &Start) -> Vec<OsString> {
        let mut args = self.base_args();
        if follow {
            args.push("--follow".into());
        }
        match start {
            Start::AfterCursor(cursor) => args.push(format!("--after-cursor={cursor}").into()),
            Start::Last(n) => args.push(format!("--lines={n}").into()),
            // `--follow` alone would show the last 10 entries first.
            Start::Beginning if follow => args.push("--lines=all".into()),
            Start::Beginning => {}
            Start::End => args.push("--lines=0".into()),
        }
        args.push("--".into());
        args.extend(self.filter.match_args());
        args
    }

    fn base_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--output=json".into(),
            "--no-pager".into(),
            "--all".into(),
            format!("--output-fields={OUTPUT_FIELDS}").into(),
        ];
        if let Some(file) = &self.config.file {
            let mut arg = OsString::from("--file=");
            arg.push(file);
            args.push(arg);
        }
        if let Some(dir) = &self.config.directory {
            let mut arg = OsString::from("--directory=");
            arg.push(dir);
            args.push(arg);
        }
        args
    }

    /// The cursor of the journal's newest entry, whoever wrote it (`None`
    /// for an empty journal). Following from it rather than with
    /// `--lines=0` makes "from now on" exact: nothing written after this
    /// call is missed however long journalctl takes to start.
    pub fn tail_cursor(&self) -> Result<Option<String>, JournalError> {
        let mut args = self.base_args();
        // The smallest output: `__CURSOR` always comes with it.
        args.retain(|a| !a.to_string_lossy().starts_with("--output-fields="));
        args.extend(["--output-fields=_PID".into(), "--lines=1".into()]);
        let output = exec::run(&self.config.journalctl, &args).map_err(|e| match e {
            ExecError::Failed { program, status, stderr, .. } => {
                JournalError::Failed { program, status, stderr }
            }
            other => JournalError::Exec(other),
        })?;
        let Some(line) = output.stdout.split(|&b| b == b'\n').find(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let value: Value = serde_json::from_slice(line).map_err(|e| JournalError::Read {
            program: self.config.journalctl.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        match value.get("__CURSOR") {
            Some(Value::String(c)) if valid_cursor(c) => Ok(Some(c.clone())),
            _ => Err(JournalError::Read {
                program: self.config.journalctl.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, "newest entry has no cursor"),
            }),
        }
    }

    fn start(&self, args: &[OsString]) -> Result<Child, JournalError> {
        let program = &self.config.journalctl;
        exec::command(program, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ExecError::Spawn { program: program.clone(), source }.into())
    }

    /// Handles one output line; returns the record to deliver, if any, and
    /// updates `last_cursor`.
    fn handle_line(&self, line: Line<'_>, last_cursor: &mut Option<String>) -> Option<Incoming> {
        let reject = |counter: &AtomicU64| {
            SourceStats::add(counter);
            SourceStats::add(&self.stats.rejected);
        };
        let bytes = match line {
            Line::TooLong { len, .. } => {
                tracing::warn!("{}: skipped a journal record of {len} bytes", self.name);
                reject(&self.journal_stats.oversized);
                return None;
            }
            Line::Text { bytes, .. } => bytes,
        };
        match decode_record(bytes, &self.filter) {
            Ok(Decoded::Sshd(record)) => {
                if record.cursor.is_some() {
                    last_cursor.clone_from(&record.cursor);
                }
                self.stats.read(bytes.len(), Timestamp::now());
                Some(Incoming { source: Arc::clone(&self.name), payload: record.into_payload() })
            }
            Ok(Decoded::NotSshd { cursor }) => {
                if cursor.is_some() {
                    *last_cursor = cursor;
                }
                reject(&self.journal_stats.not_sshd);
                None
            }
            Err(e) => {
                tracing::warn!("{}: skipped a journal record: {e}", self.name);
                reject(&self.journal_stats.malformed);
                None
            }
        }
    }

    /// Reads the journal to its end (no `-f`), after `after_cursor` if
    /// given, handing every sshd record to `sink`. journalctl exiting with
    /// an error is an error (it names the program and its stderr).
    pub fn read_once(
        &self,
        after_cursor: Option<&str>,
        mut sink: impl FnMut(Incoming),
    ) -> Result<OnceSummary, JournalError> {
        let start = after_cursor.map_or(Start::Beginning, |c| Start::AfterCursor(c.to_string()));
        self.read_once_with(self.args(false, &start), &mut sink)
    }

    /// The last `lines` sshd records (newest last), for `doctor`: proves
    /// journalctl runs and the journal is readable.
    pub fn probe(&self, lines: u64) -> Result<(Vec<Incoming>, OnceSummary), JournalError> {
        let mut found = Vec::new();
        let summary = self
            .read_once_with(self.args(false, &Start::Last(lines)), &mut |item| found.push(item))?;
        Ok((found, summary))
    }

    fn read_once_with(
        &self,
        args: Vec<OsString>,
        sink: &mut dyn FnMut(Incoming),
    ) -> Result<OnceSummary, JournalError> {
        let program = &self.config.journalctl;
        let mut child = ChildGuard(self.start(&args)?);
        let stderr = collect_stderr(child.0.stderr.take());
        let stdout = child.0.stdout.take().expect("stdout is piped");
        let before = Snapshot::of(&self.journal_stats);
        let mut summary = OnceSummary::default();
        let mut reader = LineReader::new(stdout, self.config.max_record_bytes);
        let mut last_cursor = None;
        loop {
            let line = reader
                .next_line()
                .map_err(|source| JournalError::Read { program: program.clone(), source })?;
            let Some(line) = line else { break };
            if let Some(item) = self.handle_line(line, &mut last_cursor) {
                summary.records += 1;
                sink(item);
            }
        }
        let status = child
            .0
            .wait()
            .map_err(|source| JournalError::Read { program: program.clone(), source })?;
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            return Err(JournalError::Failed { program: program.clone(), status, stderr });
        }
        let after = Snapshot::of(&self.journal_stats);
        summary.not_sshd = after.not_sshd - before.not_sshd;
        summary.malformed = after.malformed - before.malformed;
        summary.oversized = after.oversized - before.oversized;
        summary.last_cursor = last_cursor;
        summary.stderr = stderr;
        Ok(summary)
    }

    /// Follows the journal on a new thread, from just after `after_cursor`
    /// (the daemon's saved cursor) or else from its current end (see
    /// [`JournalSource::tail_cursor`]; history is `scan`'s job), sending
    /// sshd records into `tx`. Fails at once if journalctl cannot be run;
    /// later exits are logged, counted in `errors` and `restarts`, and
    /// journalctl is started again from the last record it delivered.
    pub fn spawn(
        self,
        after_cursor: Option<String>,
        tx: SyncSender<Incoming>,
    ) -> Result<JournalHandle, JournalError> {
        let after_cursor = match after_cursor {
            Some(cursor) => Some(cursor),
            None => self.tail_cursor()?,
        };
        let start = after_cursor.clone().map_or(Start::Beginning, Start::AfterCursor);
        let child = self.start(&self.args(true, &start))?;
        let current: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let stopping = Arc::new(AtomicBool::new(false));
        let last_cursor = Arc::new(Mutex::new(after_cursor));
        let follower = Follower {
            source: self,
            current: Arc::clone(&current),
            stop_rx,
            stopping: Arc::clone(&stopping),
            last_cursor: Arc::clone(&last_cursor),
            tx,
            without_cursor: Start::Beginning,
        };
        let thread = std::thread::Builder::new()
            .name("hikeshi-journal".into())
            .spawn(move || follower.run(child))
            .map_err(|e| JournalError::Config(format!("cannot start the journal thread: {e}")))?;
        Ok(JournalHandle {
            current,
            stop_tx: Some(stop_tx),
            stopping,
            last_cursor,
            thread: Some(thread),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    not_sshd: u64,
    malformed: u64,
    oversized: u64,
}

impl Snapshot {
    fn of(stats: &JournalStats) -> Snapshot {
        Snapshot {
            not_sshd: stats.not_sshd.load(Ordering::Relaxed),
            malformed: stats.malformed.load(Ordering::Relaxed),
            oversized: stats.oversized.load(Ordering::Relaxed),
        }
    }
}

/// Kills and reaps a child that is dropped before it was waited for (an
/// early return, a panic).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a child's stderr on a thread (so a chatty child never blocks on
/// it), keeping the first [`STDERR_KEEP`] bytes.
fn collect_stderr(stderr: Option<ChildStderr>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut stderr) = stderr else { return String::new() };
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        String::from_utf8_lossy(&kept).trim().to_string()
    })
}

/// The following thread's state.
struct Follower {
    source: JournalSource,
    /// The running journalctl, shared so that [`JournalHandle::stop`] can
    /// kill it. It is reaped only while this lock is held, so a kill never
    /// reaches a recycled process id.
    current: Arc<Mutex<Option<Child>>>,
    stop_rx: mpsc::Receiver<()>,
    stopping: Arc<AtomicBool>,
    last_cursor: Arc<Mutex<Option<String>>>,
    tx: SyncSender<Incoming>,
    /// Where a restart starts when there is no cursor: the beginning (the
    /// journal was empty when following began: all of it is new), or the
    /// end after a refused cursor whose place cannot be found.
    without_cursor: Start,
}

impl Follower {
    fn run(mut self, first: Child) {
        let mut delay = RESTART_DELAY_MIN;
        let mut child = Some(first);
        loop {
            let Some(mut running) = child.take() else { break };
            let started = std::time::Instant::now();
            let stdout = running.stdout.take().expect("stdout is piped");
            let stderr = collect_stderr(running.stderr.take());
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
            // A stop that raced with the start must still kill this child.
            if self.stopping.load(Ordering::SeqCst) {
                self.kill_current();
            }
            let (outcome, delivered) = self.pump(stdout);
            let status = {
                let mut slot = self.current.lock().unwrap_or_else(|e| e.into_inner());
                let mut done = slot.take();
                if outcome == Pump::ReceiverGone {
                    if let Some(c) = done.as_mut() {
                        let _ = c.kill();
                    }
                }
                done.map(|mut c| c.wait())
            };
            let stderr = stderr.join().unwrap_or_default();
            if outcome == Pump::ReceiverGone || self.stopping.load(Ordering::SeqCst) {
                break;
            }
            SourceStats::add(&self.source.stats.errors);
            let status = match status {
                Some(Ok(s)) => s.to_string(),
                Some(Err(e)) => e.to_string(),
                None => "unknown status".into(),
            };
            // A cursor journalctl refuses (a damaged cursor file) would
            // fail every restart: drop it and follow from the end.
            if delivered == 0 && self.cursor().is_some() && stderr.contains("cursor") {
                tracing::error!(
                    "{}: journalctl refused the saved cursor ({stderr}); following from the end",
                    self.source.name
                );
                let tail = self.source.tail_cursor();
                self.without_cursor = if tail.is_ok() { Start::Beginning } else { Start::End };
                *self.last_cursor.lock().unwrap_or_else(|e| e.into_inner()) = tail.ok().flatten();
            } else {
                tracing::error!(
                    "{}: `{}` exited ({status}): {stderr}; restarting in {delay:?}",
                    self.source.name,
                    self.source.config.journalctl
                );
            }
            if started.elapsed() >= HEALTHY_RUN {
                delay = RESTART_DELAY_MIN;
            }
            match self.stop_rx.recv_timeout(delay) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
            delay = (delay * 2).min(RESTART_DELAY_MAX);
            // A stop between the wait and here is seen by the next start.
            match self.source.start(&self.restart_args()) {
                Ok(c) => {
                    SourceStats::add(&self.source.journal_stats.restarts);
                    child = Some(c);
                }
                Err(e) => {
                    SourceStats::add(&self.source.stats.errors);
                    tracing::error!("{}: {e}; retrying in {delay:?}", self.source.name);
                    // Retry after the next delay without a child: loop
                    // until a start works or a stop comes.
                    child = self.retry_start(&mut delay);
                    if child.is_some() {
                        SourceStats::add(&self.source.journal_stats.restarts);
                    }
                }
            }
        }
    }

    /// Keeps trying to start journalctl with a growing delay; `None` on stop.
    fn retry_start(&self, delay: &mut Duration) -> Option<Child> {
        loop {
            match self.stop_rx.recv_timeout(*delay) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return None,
            }
            *delay = (*delay * 2).min(RESTART_DELAY_MAX);
            match self.source.start(&self.restart_args()) {
                Ok(c) => return Some(c),
                Err(e) => {
                    SourceStats::add(&self.source.stats.errors);
                    tracing::error!("{}: {e}; retrying in {delay:?}", self.source.name);
                }
            }
        }
    }

    fn restart_args(&self) -> Vec<OsString> {
        let start = self.cursor().map_or_else(|| self.without_cursor.clone(), Start::AfterCursor);
        self.source.args(true, &start)
    }

    fn cursor(&self) -> Option<String> {
        self.last_cursor.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn kill_current(&self) {
        if let Some(child) = self.current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = child.kill();
        }
    }

    /// Reads one journalctl's output until it ends; returns why it ended
    /// and how many records it delivered.
    fn pump(&self, stdout: impl Read) -> (Pump, u64) {
        let mut reader = LineReader::new(stdout, self.source.config.max_record_bytes);
        let mut delivered = 0;
        loop {
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return (Pump::Ended, delivered),
                Err(e) => {
                    tracing::error!("{}: reading journalctl: {e}", self.source.name);
                    return (Pump::Ended, delivered);
                }
            };
            let mut cursor = self.cursor();
            let item = self.source.handle_line(line, &mut cursor);
            if let Some(item) = item {
                if !self.send(item) {
                    return (Pump::ReceiverGone, delivered);
                }
                delivered += 1;
            }
            // Only once the record is in the channel does a restart resume
            // after it.
            *self.last_cursor.lock().unwrap_or_else(|e| e.into_inner()) = cursor;
        }
    }

    /// Sends, waiting while the channel is full (the journal keeps what we
    /// have not read) but giving up when asked to stop. False when the
    /// daemon is gone or stopping.
    fn send(&self, mut item: Incoming) -> bool {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    match self.stop_rx.recv_timeout(FULL_CHANNEL_POLL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return false,
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pump {
    /// journalctl's output ended (it exited or was killed).
    Ended,
    /// The daemon dropped its receiver, or asked to stop while we waited.
    ReceiverGone,
}

/// Controls a following journal source. Dropping it stops the source.
#[derive(Debug)]
pub struct JournalHandle {
    current: Arc<Mutex<Option<Child>>>,
    stop_tx: Option<mpsc::Sender<()>>,
    stopping: Arc<AtomicBool>,
    last_cursor: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl JournalHandle {
    /// The cursor after the last record handed to the channel (or skipped
    /// as not sshd's): where a restart resumes. The daemon saves the
    /// cursor of what it has *processed*, which it takes from each
    /// [`Payload::Record`].
    pub fn last_cursor(&self) -> Option<String> {
        self.last_cursor.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The process id of the running journalctl, if any (for status and
    /// tests).
    pub fn child_pid(&self) -> Option<u32> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Child::id)
    }

    /// Kills journalctl and waits for the thread. Prompt even when the
    /// channel is full.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes a thread waiting to restart or on a full channel.
        self.stop_tx.take();
        if let Some(child) = self.current.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = child.kill();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for JournalHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The saved journal cursor: one line of text in its own file, replaced
/// atomically so a crash leaves the old cursor or the new one, never a
/// mix.
#[derive(Debug, Clone)]
pub struct JournalCursorStore {
    path: PathBuf,
}

/// A journal cursor is `s=...;i=...;b=...;m=...;t=...;x=...`: short,
/// printable ASCII.
const MAX_CURSOR_LEN: usize = 1024;

fn valid_cursor(cursor: &str) -> bool {
    !cursor.is_empty()
        && cursor.len() <= MAX_CURSOR_LEN
        && cursor.bytes().all(|b| b.is_ascii_graphic())
}

impl JournalCursorStore {
    /// The store at `path` (typically [`JournalConfig::cursor_path`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JournalCursorStore { path: path.into() }
    }

    /// The cursor file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, why: impl Into<String>) -> JournalError {
        JournalError::Cursor { path: self.path.clone(), why: why.into() }
    }

    /// The saved cursor, or `None` if none was saved yet. A file that does
    /// not hold a cursor is an error (never silently "start over").
    pub fn load(&self) -> Result<Option<String>, JournalError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e.to_string())),
        };
        if bytes.len() > MAX_CURSOR_LEN + 1 {
            return Err(self.error(format!("{} bytes is too long for a cursor", bytes.len())));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| self.error("not UTF-8"))?;
        let cursor = text.strip_suffix('\n').unwrap_or(text);
        if !valid_cursor(cursor) {
            return Err(self.error("does not hold a journal cursor"));
        }
        Ok(Some(cursor.to_string()))
    }

    /// Saves `cursor` (temporary file, fsync, rename, fsync of the
    /// directory; mode 0600). Creates the directory (0700) if needed.
    pub fn save(&self, cursor: &str) -> Result<(), JournalError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if !valid_cursor(cursor) {
            return Err(self.error(format!("refusing to save {cursor:?}: not a journal cursor")));
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = self.path.file_name().ok_or_else(|| self.error("path has no file name"))?;
        let tmp = dir.join(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
        let write = || -> io::Result<()> {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(cursor.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.error(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> TrustFilter {
        TrustFilter::new(&JournalConfig::default())
    }

    fn decode(json: &str) -> Result<Decoded, RecordError> {
        decode_record(json.as_bytes(), &filter())
    }

    #[test]
    fn string_message_and_trusted_fields() {
        let d = decode(
            r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1768473194000000","_HOSTNAME":"web1",
            "_EXE":"/usr/sbin/sshd","_PID":"4242","SYSLOG_PID":"1","SYSLOG_IDENTIFIER":"sshd",
            "MESSAGE":"Failed password for root from 203.0.113.5 port 1 ssh2"}"#,
        )
        .unwrap();
        let Decoded::Sshd(r) = d else { panic!("{d:?}") };
        assert_eq!(r.time, Some("2026-01-15T10:33:14Z".parse().unwrap()));
        assert_eq!(r.host.as_deref(), Some(&b"web1"[..]));
        assert_eq!((r.pid, &r.process[..]), (Some(4242), &b"sshd"[..]));
        assert_eq!(r.cursor.as_deref(), Some("s=1;i=2"));
    }

    #[test]
    fn byte_array_message_and_fallbacks() {
        let d = decode(
            r#"{"_SYSTEMD_UNIT":"ssh.service","_COMM":"sshd","SYSLOG_PID":"7",
            "MESSAGE":[104,105,255]}"#,
        )
        .unwrap();
        let Decoded::Sshd(r) = d else { panic!("{d:?}") };
        assert_eq!(r.message, b"hi\xff");
        assert_eq!((r.pid, &r.process[..], r.time), (Some(7), &b"sshd"[..], None));
    }

    #[test]
    fn forged_identifier_is_not_sshd() {
        for json in [
            r#"{"_EXE":"/usr/bin/python3","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"x"}"#,
            // Inside ssh.service but another program (no pam_systemd).
            r#"{"_EXE":"/usr/bin/logger","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"x"}"#,
            r#"{"SYSLOG_IDENTIFIER":"sshd","MESSAGE":"x"}"#,
            // A repeated trusted field only comes from a forged file.
            r#"{"_EXE":["/usr/sbin/sshd","/usr/bin/python3"],"MESSAGE":"x"}"#,
        ] {
            assert_eq!(decode(json).unwrap(), Decoded::NotSshd { cursor: None }, "{json}");
        }
    }

    #[test]
    fn malformed_records_say_why() {
        assert!(matches!(decode("not json"), Err(RecordError::Json(_))));
        assert!(matches!(decode("[1]"), Err(RecordError::Json(_))));
        assert_eq!(decode(r#"{"_EXE":"/usr/sbin/sshd"}"#), Err(RecordError::Missing("MESSAGE")));
        assert_eq!(
            decode(r#"{"_EXE":"/usr/sbin/sshd","MESSAGE":null}"#),
            Err(RecordError::Missing("MESSAGE"))
        );
        assert_eq!(
            decode(r#"{"_EXE":"/usr/sbin/sshd","MESSAGE":[1,256]}"#),
            Err(RecordError::BadField("MESSAGE"))
        );
        assert_eq!(
            decode(r#"{"_EXE":"/usr/sbin/sshd","MESSAGE":["a","b"]}"#),
            Err(RecordError::BadField("MESSAGE"))
        );
        assert_eq!(decode(r#"{"_EXE":7,"MESSAGE":"x"}"#), Err(RecordError::BadField("_EXE")));
    }

    #[test]
    fn match_arguments_or_units_and_executables() {
        let config = JournalConfig {
            units: vec!["ssh.service".into()],
            executables: vec!["/usr/sbin/sshd".into(), "/usr/lib/openssh/sshd-session".into()],
            ..JournalConfig::default()
        };
        let args = TrustFilter::new(&config).match_args();
        assert_eq!(
            args,
            [
                "_SYSTEMD_UNIT=ssh.service",
                "+",
                "_EXE=/usr/sbin/sshd",
                "_EXE=/usr/lib/openssh/sshd-session"
            ]
            .map(OsString::from)
        );
        let only_exe = JournalConfig { units: vec![], ..config };
        assert!(!TrustFilter::new(&only_exe).match_args().contains(&OsString::from("+")));
    }

    #[test]
    fn config_validation_names_the_problem() {
        let err = |c: JournalConfig| c.validate().unwrap_err().to_string();
        let base = JournalConfig::default();
        assert!(err(JournalConfig { units: vec![], executables: vec![], ..base.clone() })
            .contains("at least one"));
        assert!(err(JournalConfig { executables: vec!["sshd".into()], ..base.clone() })
            .contains("\"sshd\" is not an absolute path"));
        assert!(err(JournalConfig { units: vec!["a b".into()], ..base.clone() })
            .contains("not a unit name"));
        assert!(err(JournalConfig {
            file: Some("a".into()),
            directory: Some("b".into()),
            ..base.clone()
        })
        .contains("not both"));
        base.validate().unwrap();
    }

    #[test]
    fn start_positions() {
        let source = JournalSource::new(&JournalConfig::default(), SourceStats::new()).unwrap();
        let args = source.args(true, &Start::End);
        assert!(args.contains(&"--lines=0".into()) && args.contains(&"--follow".into()));
        let args = source.args(true, &Start::Beginning);
        assert!(args.contains(&"--lines=all".into()));
        assert!(!source
            .args(false, &Start::Beginning)
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--lines")));
        let args = source.args(true, &Start::AfterCursor("s=1".into()));
        assert!(args.contains(&"--after-cursor=s=1".into()));
        assert!(!args.iter().any(|a| a.to_string_lossy().starts_with("--lines")));
        let dashdash = args.iter().position(|a| a == "--").unwrap();
        assert!(args[dashdash + 1..]
            .iter()
            .all(|a| a.to_string_lossy().starts_with('_') || a == "+"));
    }

    #[test]
    fn cursor_store_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalCursorStore::new(dir.path().join("cursors/journal"));
        assert_eq!(store.load().unwrap(), None);
        store.save("s=abc;i=1").unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some("s=abc;i=1"));
        store.save("s=abc;i=2").unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some("s=abc;i=2"));
        assert!(store.save("two\nlines").is_err());
        std::fs::write(store.path(), b"\xff\n").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("cursors/journal") && err.contains("UTF-8"), "{err}");
        std::fs::write(store.path(), "has space\n").unwrap();
        assert!(store.load().is_err());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cursors")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn the_example_config_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hikeshi.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = crate::config::Config::from_toml(&text, &path).unwrap();
        assert_eq!(config.watch.journal, JournalConfig::default());
        let err =
            crate::config::Config::from_toml("[watch.journal]\nunit = []\n", Path::new("x.toml"))
                .unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
    }
}
