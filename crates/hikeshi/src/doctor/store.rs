//! The data directory, the SQLite store in it, and its audit trail.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{effective_uid, file_kind, Check, Doctor};

impl Doctor<'_> {
    /// The data directory: present (or creatable), a directory, writable,
    /// private; the store opens, passes quick_check, and its audit chain
    /// verifies.
    pub fn check_data_dir(&self) -> Vec<Check> {
        let dir = self.data_dir;
        let subject = dir.display().to_string();
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return vec![self.missing_data_dir(dir)];
            }
            Err(e) => {
                return vec![Check::fail(
                    "data-dir",
                    subject,
                    format!("cannot stat: {e}"),
                    "choose another --data-dir, or fix the permissions of its parents",
                )]
            }
        };
        if !meta.is_dir() {
            return vec![Check::fail(
                "data-dir",
                subject,
                format!("is a {}, not a directory", file_kind(&meta)),
                "choose another --data-dir (or HIKESHI_DATA_DIR)",
            )];
        }
        let mut checks = Vec::new();
        let probe = dir.join(format!(".hikeshi-doctor-{}", std::process::id()));
        let writable = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
        match writable {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return vec![Check::fail(
                    "data-dir",
                    subject,
                    format!("not writable by uid {}: {e}", effective_uid()),
                    format!(
                        "run hikeshi as the directory's owner (uid {}), or `chown USER {}`; \
                         a read-only file system needs another --data-dir",
                        meta.uid(),
                        dir.display()
                    ),
                )]
            }
        }
        let mode = meta.permissions().mode() & 0o777;
        checks.push(if mode & 0o077 != 0 {
            Check::warn(
                "data-dir",
                subject.clone(),
                format!("writable, but mode {mode:03o}: others can read the evidence it holds"),
                format!("chmod 700 {}", dir.display()),
            )
        } else {
            Check::ok("data-dir", subject.clone(), format!("writable, mode {mode:03o}"))
        });
        checks.extend(self.check_store());
        checks
    }

    fn missing_data_dir(&self, dir: &Path) -> Check {
        let subject = dir.display().to_string();
        let parent = dir.ancestors().skip(1).find(|p| p.exists()).unwrap_or(Path::new("/"));
        match access_writable(parent) {
            Ok(()) => Check::ok(
                "data-dir",
                subject,
                format!(
                    "does not exist yet; created (mode 0700) on first use ({} is writable)",
                    parent.display()
                ),
            ),
            Err(e) => Check::fail(
                "data-dir",
                subject,
                format!(
                    "does not exist and cannot be created: {} is not writable: {e}",
                    parent.display()
                ),
                format!(
                    "create it: `install -d -m 700 {}` as root, or choose another --data-dir",
                    dir.display()
                ),
            ),
        }
    }

    fn check_store(&self) -> Vec<Check> {
        let path = crate::store::db_path(self.data_dir);
        let subject = path.display().to_string();
        let existed = path.exists();
        let options = crate::store::StoreOptions::from_config(self.config);
        let store = match crate::store::Store::open_with(&path, options) {
            Ok(s) => s,
            Err(e) => {
                return vec![Check::fail(
                    "store",
                    subject,
                    e.to_string(),
                    "if another program's file is there, move it away; if the database is \
                     damaged, restore it from a backup",
                )]
            }
        };
        let mut checks = Vec::new();
        match store.quick_check() {
            Ok(()) => checks.push(Check::ok(
                "store",
                subject.clone(),
                if existed {
                    "opens, schema current, quick_check ok"
                } else {
                    "created (empty), quick_check ok"
                },
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "store",
                    subject.clone(),
                    e.to_string(),
                    "stop hikeshi, copy the file aside as evidence, then `sqlite3 hikeshi.db \
                     .recover` or restore a backup",
                ));
                return checks;
            }
        }
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                checks.push(Check::warn(
                    "store",
                    subject.clone(),
                    format!("mode {mode:03o}: others can read incidents and evidence"),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
        checks.push(match store.audit_verify(None) {
            Ok(report) => match report.broken {
                None => Check::ok(
                    "audit",
                    subject,
                    format!(
                        "chain of {} entries verifies ({} rows checked)",
                        report.entries, report.rows
                    ),
                ),
                Some(broken) => Check::fail(
                    "audit",
                    subject,
                    format!("the audit trail does not hold: {broken}"),
                    "the store was changed outside hikeshi: keep a copy as evidence, run \
                     `hikeshi audit verify` for details, and treat it as an incident",
                ),
            },
            Err(e) => Check::fail(
                "audit",
                subject,
                e.to_string(),
                "run `hikeshi audit verify` for details",
            ),
        });
        checks
    }
}

/// Whether this user may create entries in `dir` (also false on a
/// read-only file system, even for root).
fn access_writable(dir: &Path) -> std::io::Result<()> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
        .map_err(std::io::Error::from)
}
