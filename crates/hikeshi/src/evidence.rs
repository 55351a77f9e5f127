//! Attaching what a command saw to an incident (`--incident N` on
//! `accounts`, `recent`, `persistence`, `fim check` and `verify`).
//!
//! Each command renders one *document* (its JSON output, byte for byte)
//! and this module attaches it, in one store transaction, as one piece of
//! evidence with one `evidence_added` timeline entry that summarises it.
//! The evidence's `file` names what produced it (`hikeshi accounts --root
//! /`), its content is the document, its SHA-256 is the document's.
//!
//! Size policy: a document up to [`INLINE_MAX_BYTES`] is kept in the
//! database. A larger one (`recent` on a whole host lists tens of MB) is
//! written to `<data dir>/evidence/<sha256>.<ext>` (atomically, mode 0600,
//! named by its digest), and the database keeps a small JSON pointer
//! instead: `{"stored_in", "sha256", "bytes", "summary"}`. The pointer's
//! own SHA-256 is what the incident's evidence digest chains, and it
//! contains the document's SHA-256, so the chain covers the document
//! either way. The file is written before the transaction: a failed
//! transaction can leave an unreferenced file (harmless, content-named),
//! never a reference to a missing one.
//!
//! The incident must exist and be open: evidence is refused on a closed
//! incident (closing is final; a new attack opens a new incident). This is
//! checked before the command does any work, and again inside the
//! transaction.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use hikeshi_core::incident::{hex, Actor, Evidence, IncidentId, State};
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::Context;
use crate::store::{self, Batch, Store, StoreError, StoreOptions};

/// Documents up to this size are kept inside the database; larger ones go
/// to `<data dir>/evidence/`.
pub const INLINE_MAX_BYTES: usize = 1024 * 1024;

/// The directory, under the data directory, of documents too large to keep
/// inline.
pub const EVIDENCE_DIR: &str = "evidence";

/// What a command saw, ready to attach.
#[derive(Debug, Clone)]
pub struct Document {
    /// What produced it, as a command line (`hikeshi accounts --root /`).
    pub producer: String,
    /// The exact bytes (the command's JSON output).
    pub bytes: Vec<u8>,
    /// File name extension when stored outside the database (`json`, `jsonl`).
    pub extension: &'static str,
    /// One sentence for the timeline: `accounts audit of /: 3 findings (1 high)`.
    pub summary: String,
}

/// Where an attached document is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In the database, as the evidence's content.
    Inline,
    /// In this file; the database holds a pointer to it.
    File(PathBuf),
}

/// The result of an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub incident: IncidentId,
    /// Lowercase hex SHA-256 of the whole document.
    pub sha256: String,
    pub bytes: usize,
    pub storage: Storage,
}

impl Attached {
    /// One line for the command's stderr.
    pub fn describe(&self) -> String {
        let place = match &self.storage {
            Storage::Inline => "in the incident database".to_string(),
            Storage::File(path) => format!("in {}", path.display()),
        };
        format!(
            "attached to incident {} as evidence: sha256 {}, {} bytes, kept {place}",
            self.incident, self.sha256, self.bytes
        )
    }
}

/// The pointer kept in the database for a document stored in a file.
#[derive(Debug, Serialize)]
struct Pointer<'a> {
    stored_in: &'a Path,
    sha256: &'a str,
    bytes: usize,
    summary: &'a str,
}

/// An incident that will receive evidence: checked to exist and be open
/// before the command does its work.
#[derive(Debug)]
pub struct Target {
    store: Store,
    data_dir: PathBuf,
    id: IncidentId,
}

impl Target {
    /// Checks that incident `id` exists and is open. Writes nothing: when
    /// there is no database yet, there is no incident, and none is created.
    pub fn open(ctx: &Context, id: IncidentId) -> Result<Target> {
        let path = store::db_path(&ctx.data_dir);
        if !path.exists() {
            bail!(
                "--incident {id}: there is no incident {id} (no incident database at {}; \
                 see `hikeshi incident list`)",
                path.display()
            );
        }
        let store = Store::open_with(&path, StoreOptions::from_config(&ctx.config))?;
        let incident = store.incident(id).map_err(|e| refusal(id, e))?;
        refuse_closed(id, incident.campaign.state)?;
        Ok(Target { store, data_dir: ctx.data_dir.clone(), id })
    }

    /// The incident's number.
    pub fn id(&self) -> IncidentId {
        self.id
    }

    /// Attaches `doc` as evidence, with an `evidence_added` timeline entry
    /// saying `doc.summary`, in one transaction.
    pub fn attach(&mut self, doc: &Document, at: Timestamp, actor: &Actor) -> Result<Attached> {
        self.attach_with(doc, at, actor, |_, _| Ok(())).map(|(attached, ())| attached)
    }

    /// [`Target::attach`], then `more` in the same transaction (given the
    /// incident's state): everything commits together or nothing does.
    pub fn attach_with<T>(
        &mut self,
        doc: &Document,
        at: Timestamp,
        actor: &Actor,
        more: impl FnOnce(&mut Batch<'_>, State) -> Result<T, StoreError>,
    ) -> Result<(Attached, T)> {
        let id = self.id;
        let sha256 = hex(&Sha256::digest(&doc.bytes));
        let (content, storage) = if doc.bytes.len() <= INLINE_MAX_BYTES {
            (doc.bytes.clone(), Storage::Inline)
        } else {
            let path = store_file(&self.data_dir, &sha256, doc.extension, &doc.bytes)?;
            let pointer = Pointer {
                stored_in: &path,
                sha256: &sha256,
                bytes: doc.bytes.len(),
                summary: &doc.summary,
            };
            let content = serde_json::to_vec(&pointer).context("cannot serialise the pointer")?;
            (content, Storage::File(path))
        };
        let place = match &storage {
            Storage::Inline => "kept inline".to_string(),
            Storage::File(path) => format!("stored in {}", path.display()),
        };
        let detail = format!(
            "{}; {}: sha256 {sha256}, {} bytes, {place}",
            doc.summary,
            doc.producer,
            doc.bytes.len()
        );
        let evidence = Evidence::new(doc.producer.clone(), 0, &content);
        let more = self
            .store
            .write(|batch| -> Result<T, Refused> {
                let state = batch.incident_state(id)?;
                if !state.is_open() {
                    return Err(Refused::Closed);
                }
                batch.add_evidence_described(id, at, actor, evidence, &detail)?;
                Ok(more(batch, state)?)
            })
            .map_err(|e| match e {
                Refused::Closed => closed_error(id),
                Refused::Store(e) => refusal(id, e),
            })?;
        Ok((Attached { incident: id, sha256, bytes: doc.bytes.len(), storage }, more))
    }
}

/// Why the transaction was abandoned.
enum Refused {
    Closed,
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

fn refusal(id: IncidentId, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NoSuchIncident(_) => anyhow::anyhow!(
            "--incident {id}: there is no incident {id} (see `hikeshi incident list`)"
        ),
        other => anyhow::Error::new(other).context(format!("--incident {id}")),
    }
}

fn closed_error(id: IncidentId) -> anyhow::Error {
    anyhow::anyhow!(
        "--incident {id}: incident {id} is closed, and a closed incident is final: evidence \
         cannot be added to it (a new attack opens a new incident)"
    )
}

fn refuse_closed(id: IncidentId, state: State) -> Result<()> {
    if state.is_open() {
        Ok(())
    } else {
        Err(closed_error(id))
    }
}

/// Writes `bytes` to `<data dir>/evidence/<sha256>.<ext>` atomically
/// (temporary file, fsync, rename, fsync of the directory), mode 0600.
fn store_file(data_dir: &Path, sha256: &str, extension: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = data_dir.join(EVIDENCE_DIR);
    crate::data_dir::ensure(&dir)?;
    let path = dir.join(format!("{sha256}.{extension}"));
    let tmp = dir.join(format!(".{sha256}.{extension}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write evidence file {}", path.display()))?;
    Ok(path)
}

/// `hikeshi <command> --root <root>` style producer names: the arguments
/// that say what was looked at (not the output options).
pub fn producer(command: &str, args: &[(&str, String)]) -> String {
    let mut out = format!("hikeshi {command}");
    for (flag, value) in args {
        out.push_str(&format!(" --{flag} {value}"));
    }
    out
}

/// A JSON document as printed, without the newline that ends the output:
/// the bytes whose SHA-256 is recorded.
pub fn without_final_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

/// `3 findings (1 critical, 2 high)`: counts by severity, highest first.
pub fn findings_summary(findings: &[hikeshi_core::eradicate::Finding]) -> String {
    use hikeshi_core::Severity;
    let by: Vec<String> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
        .into_iter()
        .filter_map(|s| {
            let n = findings.iter().filter(|f| f.severity == s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str()))
        })
        .collect();
    let noun = if findings.len() == 1 { "finding" } else { "findings" };
    if by.is_empty() {
        format!("{} {noun}", findings.len())
    } else {
        format!("{} {noun} ({})", findings.len(), by.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_documents_are_written_atomically_and_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![b'x'; 10];
        let sha = hex(&Sha256::digest(&bytes));
        let path = store_file(dir.path(), &sha, "jsonl", &bytes).unwrap();
        assert_eq!(path, dir.path().join("evidence").join(format!("{sha}.jsonl")));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Writing the same document again is harmless; no temporary file stays.
        store_file(dir.path(), &sha, "jsonl", &bytes).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("evidence"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [format!("{sha}.jsonl")]);
    }

    #[test]
    fn an_unwritable_evidence_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory should be.
        std::fs::write(dir.path().join(EVIDENCE_DIR), "").unwrap();
        let err = store_file(dir.path(), "ab", "json", b"{}").unwrap_err();
        assert!(format!("{err:#}").contains("evidence"), "{err:#}");
    }

    fn store_with_incident(dir: &Path) -> (Store, IncidentId) {
        use hikeshi_core::incident::{CampaignKey, Observation};
        let mut store = Store::open(&store::db_path(dir)).unwrap();
        let obs = Observation::new(
            CampaignKey::for_addr("192.0.2.1".parse().unwrap()),
            "ssh-bruteforce",
            hikeshi_core::Severity::High,
            Timestamp::from_second(1_700_000_000).unwrap(),
            5,
        );
        let (id, _) = store.open_or_update_incident(obs).unwrap();
        (store, id)
    }

    fn doc(bytes: &[u8]) -> Document {
        Document {
            producer: "hikeshi test".into(),
            bytes: bytes.to_vec(),
            extension: "json",
            summary: "test: 1 finding".into(),
        }
    }

    #[test]
    fn a_failure_after_attaching_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store_with_incident(dir.path());
        let before = store.get_incident(id).unwrap();
        let mut target = Target { store, data_dir: dir.path().to_path_buf(), id };
        let at = Timestamp::from_second(1_700_000_100).unwrap();
        let err = target
            .attach_with(&doc(b"{}"), at, &Actor::Automatic, |_, _| {
                Err::<(), _>(StoreError::BadValue { path: "db".into(), what: "boom".into() })
            })
            .unwrap_err();
        assert!(format!("{err:#}").contains("boom"), "{err:#}");
        assert_eq!(target.store.get_incident(id).unwrap(), before);
        // And a normal attachment after it works.
        let attached = target.attach(&doc(b"{}"), at, &Actor::Automatic).unwrap();
        assert_eq!(attached.sha256, hex(&Sha256::digest(b"{}")));
        assert_eq!(attached.storage, Storage::Inline);
        assert_eq!(target.store.get_incident(id).unwrap().evidence.len(), 1);
    }

    #[test]
    fn an_incident_closed_after_the_check_is_refused_in_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (store, id) = store_with_incident(dir.path());
        let mut target = Target { store, data_dir: dir.path().to_path_buf(), id };
        let at = Timestamp::from_second(1_700_000_100).unwrap();
        // Closed by someone else between Target::open and the attachment.
        let mut other = Store::open(&store::db_path(dir.path())).unwrap();
        other.set_state(id, State::Closed, at, &Actor::Automatic).unwrap();
        let before = other.get_incident(id).unwrap();
        let big = vec![b' '; INLINE_MAX_BYTES + 1];
        let err = target.attach(&doc(&big), at, &Actor::Automatic).unwrap_err();
        assert!(format!("{err:#}").contains("is closed"), "{err:#}");
        assert_eq!(other.get_incident(id).unwrap(), before);
    }

    #[test]
    fn summaries_count_by_severity() {
        use hikeshi_core::eradicate::{Evidence as Seen, Finding};
        use hikeshi_core::Severity;
        let seen = || Seen { file: "/etc/passwd".into(), line: Some(1), text: "x".into() };
        let f = |s| Finding::new("k", s, "x", "en", "ja", seen());
        assert_eq!(
            findings_summary(&[f(Severity::Critical), f(Severity::Low), f(Severity::Low)]),
            "3 findings (1 critical, 2 low)"
        );
        assert_eq!(findings_summary(&[f(Severity::High)]), "1 finding (1 high)");
        assert_eq!(findings_summary(&[]), "0 findings");
        assert_eq!(producer("accounts", &[("root", "/".into())]), "hikeshi accounts --root /");
    }
}
