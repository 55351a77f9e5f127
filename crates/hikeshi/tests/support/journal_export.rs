//! Real journal files for tests: entries in systemd's Journal Export
//! Format, turned into journal files by `systemd-journal-remote`.
#![allow(dead_code)]

use std::path::Path;

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
pub const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";
/// 2026-01-15T10:33:14Z in microseconds.
pub const BASE_USEC: u64 = 1_768_473_194_000_000;

/// One journal entry: its fields in order. Values are bytes, written in
/// the export format's binary-safe form when they are not plain text.
pub struct Entry(pub Vec<(&'static str, Vec<u8>)>);

impl Entry {
    /// An entry at `BASE_USEC + seconds` with the envelope fields every
    /// journald entry has.
    pub fn at(seconds: u64) -> Entry {
        let usec = BASE_USEC + seconds * 1_000_000;
        Entry(vec![
            ("__REALTIME_TIMESTAMP", usec.to_string().into_bytes()),
            ("__MONOTONIC_TIMESTAMP", (seconds * 1_000_000 + 1).to_string().into_bytes()),
            ("_BOOT_ID", BOOT_ID.into()),
            ("_HOSTNAME", "web1".into()),
        ])
    }

    pub fn with(mut self, field: &'static str, value: impl Into<Vec<u8>>) -> Entry {
        self.0.push((field, value.into()));
        self
    }

    /// An sshd record as journald writes it on Debian 12.
    pub fn sshd(seconds: u64, pid: u32, message: impl Into<Vec<u8>>) -> Entry {
        Entry::at(seconds)
            .with("_SYSTEMD_UNIT", "ssh.service")
            .with("_EXE", "/usr/sbin/sshd")
            .with("_COMM", "sshd")
            .with("_PID", pid.to_string())
            .with("SYSLOG_IDENTIFIER", "sshd")
            .with("MESSAGE", message)
    }
}

pub fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        for (field, value) in &entry.0 {
            let plain = value.iter().all(|&b| b.is_ascii_graphic() || b == b' ');
            out.extend_from_slice(field.as_bytes());
            if plain {
                out.push(b'=');
                out.extend_from_slice(value);
            } else {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
                out.extend_from_slice(value);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` into the journal file `output` (appending if it exists)
/// with systemd-journal-remote.
pub fn write_journal(output: &Path, entries: &[Entry]) {
    let dir = output.parent().unwrap();
    let export_path =
        dir.join(format!("export-{}.txt", output.file_name().unwrap().to_string_lossy()));
    std::fs::write(&export_path, export(entries)).unwrap();
    let mut out_arg = std::ffi::OsString::from("--output=");
    out_arg.push(output);
    hikeshi::exec::run(JOURNAL_REMOTE, [out_arg, export_path.clone().into()]).unwrap();
    std::fs::remove_file(export_path).unwrap();
}
