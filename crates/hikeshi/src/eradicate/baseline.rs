//! Baselines: snapshots of accounts and persistence items kept under the
//! data directory (`<data dir>/baselines/accounts.json`,
//! `persistence.json`) so that later runs report what changed.
//!
//! A baseline is written atomically (temporary file in the same directory,
//! fsync, rename, fsync of the directory): a crash leaves the old baseline
//! or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Baselines larger than this are refused (a snapshot of a host is a few MiB).
const MAX_BASELINE_BYTES: u64 = 256 * 1024 * 1024;

/// The file format version written in every baseline.
pub const FORMAT_VERSION: u32 = 1;

/// A stored snapshot and the root it was taken of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored<T> {
    pub version: u32,
    /// The `--root` the snapshot describes: a baseline of `/` is not compared with an image.
    pub root: String,
    pub snapshot: T,
}

/// `<data dir>/baselines/<name>.json`.
pub fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("baselines").join(format!("{name}.json"))
}

/// The snapshot of the baseline at `path` if it describes `root`;
/// `Ok(None)` if there is none, or if it describes another root, which
/// is not compared and is said in `warnings`.
pub fn load_for_root<T: DeserializeOwned>(
    path: &Path,
    root: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<T>> {
    Ok(match load::<T>(path)? {
        Some(stored) if stored.root == root => Some(stored.snapshot),
        Some(stored) => {
            warnings.push(format!(
                "baseline {} describes root {:?}, not {root:?}: not compared",
                path.display(),
                stored.root
            ));
            None
        }
        None => None,
    })
}

/// Saves `snapshot` of `root` as the baseline at `path`.
pub fn save_for_root<T: Serialize>(path: &Path, root: &str, snapshot: T) -> Result<()> {
    save(path, &Stored { version: FORMAT_VERSION, root: root.to_string(), snapshot })
}

/// Loads a baseline, `Ok(None)` if there is none.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<Stored<T>>> {
    let bytes = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_BASELINE_BYTES => {
            anyhow::bail!(
                "baseline {} is {} bytes, more than {MAX_BASELINE_BYTES}",
                path.display(),
                meta.len()
            )
        }
        Ok(_) => std::fs::read(path)
            .with_context(|| format!("cannot read baseline {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read baseline {}", path.display()))
        }
    };
    let stored: Stored<T> = serde_json::from_slice(&bytes).with_context(|| {
        format!("baseline {} is damaged (record a new one with --baseline)", path.display())
    })?;
    if stored.version != FORMAT_VERSION {
        anyhow::bail!(
            "baseline {} has format version {}, expected {FORMAT_VERSION}",
            path.display(),
            stored.version
        );
    }
    Ok(Some(stored))
}

/// Writes a baseline atomically (mode 0600: it describes the host's accounts).
pub fn save<T: Serialize>(path: &Path, stored: &Stored<T>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("baseline path has no directory")?;
    crate::data_dir::ensure(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        serde_json::to_writer_pretty(&mut file, stored)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write baseline {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "accounts");
        assert!(load::<Vec<u32>>(&p).unwrap().is_none());
        let stored = Stored { version: FORMAT_VERSION, root: "/".into(), snapshot: vec![1u32, 2] };
        save(&p, &stored).unwrap();
        assert_eq!(load::<Vec<u32>>(&p).unwrap().unwrap(), stored);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["accounts.json"]);
        std::fs::write(&p, "{\"version\":1,").unwrap();
        let err = load::<Vec<u32>>(&p).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("accounts.json"), "{err}");
    }
}
