//! Reads sshd's effective settings for `hikeshi harden ssh`: by running
//! `sshd -T` (through [`crate::exec`]), or from the configuration files
//! under a root directory (another system's tree, a fixture, a mounted
//! disk), expanding `Include` globs the way sshd does. The judging is
//! `hikeshi_core::harden`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hikeshi_core::eradicate::accounts::{parse_passwd, TextFile};
use hikeshi_core::harden::{self, ConfigFile, IncidentContext, SshdSettings};
use hikeshi_core::incident::IncidentId;

use crate::store::Store;

/// The sshd binary: Debian installs it in /usr/sbin, which is not on every
/// user's PATH.
fn sshd_program() -> &'static str {
    if Path::new("/usr/sbin/sshd").exists() {
        "/usr/sbin/sshd"
    } else {
        "sshd"
    }
}

/// Runs `sshd -T` (with `-f CONFIG` and `-h HOST_KEY` if given) and parses
/// what it prints: the settings the daemon would really use.
pub fn settings_from_sshd(config: Option<&Path>, host_key: Option<&Path>) -> Result<SshdSettings> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["-T".as_ref()];
    if let Some(config) = config {
        args.extend(["-f".as_ref(), config.as_os_str()]);
    }
    if let Some(key) = host_key {
        args.extend(["-h".as_ref(), key.as_os_str()]);
    }
    let output = crate::exec::run(sshd_program(), &args).context(
        "`sshd -T` failed (it needs root and host keys: run as root, `ssh-keygen -A`, or audit \
         the files with --root)",
    )?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(harden::parse_sshd_test(&text))
}

/// `path` (absolute, as on the audited system) inside `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read_config(root: &Path, path: &str) -> Result<ConfigFile, String> {
    let real = under(root, path);
    let bytes = std::fs::read(&real).map_err(|e| format!("cannot read {}: {e}", real.display()))?;
    Ok(ConfigFile { path: path.to_string(), text: String::from_utf8_lossy(&bytes).into_owned() })
}

/// Expands one `Include` argument: relative paths are relative to
/// `/etc/ssh`; a glob in the last component matches file names in lexical
/// order (no match is not an error, as in sshd).
fn expand_include(root: &Path, pattern: &str) -> Result<Vec<ConfigFile>, String> {
    let absolute =
        if pattern.starts_with('/') { pattern.to_string() } else { format!("/etc/ssh/{pattern}") };
    let (dir, name) = absolute.rsplit_once('/').unwrap_or(("", &absolute));
    let dir = if dir.is_empty() { "/" } else { dir };
    let is_glob = |s: &str| s.contains(['*', '?', '[']);
    if is_glob(dir) {
        return Err(format!("glob in a directory name is not supported: {pattern}"));
    }
    if !is_glob(name) {
        return read_config(root, &absolute).map(|f| vec![f]);
    }
    let matcher =
        globset::Glob::new(name).map_err(|e| format!("bad glob {pattern}: {e}"))?.compile_matcher();
    let real_dir = under(root, dir);
    let entries = match std::fs::read_dir(&real_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", real_dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| matcher.is_match(n))
        .collect();
    names.sort();
    names.iter().map(|n| read_config(root, &format!("{dir}/{n}"))).collect()
}

/// Parses `ROOT/etc/ssh/sshd_config` and what it includes.
pub fn settings_from_root(root: &Path) -> Result<SshdSettings> {
    let main = read_config(root, "/etc/ssh/sshd_config").map_err(anyhow::Error::msg)?;
    Ok(harden::parse_config(&main, &mut |pattern| expand_include(root, pattern)))
}

/// What incident `id` showed: the user names tried, and which of them
/// exist in `ROOT/etc/passwd`.
pub fn incident_context(store: &Store, id: IncidentId, root: &Path) -> Result<IncidentContext> {
    let detail = store.get_incident(id)?;
    let c = &detail.incident.campaign;
    let passwd_path = under(root, "/etc/passwd");
    let bytes = std::fs::read(&passwd_path)
        .with_context(|| format!("cannot read {}", passwd_path.display()))?;
    let (entries, _malformed) = parse_passwd(&TextFile::new("/etc/passwd", bytes));
    let attacked_users: Vec<String> = c.users.kept.iter().cloned().collect();
    let existing_attacked_users =
        attacked_users.iter().filter(|u| entries.iter().any(|e| &e.name == *u)).cloned().collect();
    Ok(IncidentContext {
        incident: id.0,
        attacked_users,
        existing_attacked_users,
        attempts: c.attempts,
    })
}
