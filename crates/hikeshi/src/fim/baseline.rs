//! The baseline file: a trusted record of every watched file.
//!
//! Layout (text lines, then binary):
//!
//! ```text
//! hikeshi-fim-baseline v1\n
//! {"format":1,"created_at":...,"body_digest":"sha256:...",...}\n   (the header)
//! signature ed25519 <public key hex> <signature hex>\n   or   unsigned\n
//! <body: records in path order, see `codec`>
//! ```
//!
//! The header carries the body's length and SHA-256, and the signature
//! covers the magic line and the header, so it covers the body too. A
//! reader checks the signature (required when a public key is configured),
//! then hashes the whole body before decoding a single record: nothing in
//! a tampered baseline is ever parsed. Files are written to a temporary
//! file, fsynced and renamed, so a crash leaves the old baseline or the new
//! one, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hikeshi_core::fim::record::hex;
use hikeshi_core::fim::report::{BaselineInfo, SignatureStatus};
use hikeshi_core::fim::{FileRecord, HashAlgo};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::codec::{DecodeError, Decoder, Encoder};

const MAGIC: &[u8] = b"hikeshi-fim-baseline v1\n";
const FORMAT: u32 = 1;
/// Longest header or signature line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// Why a baseline cannot be trusted or used.
#[derive(Debug, Error)]
pub enum BaselineError {
    #[error("no baseline at {0}: run `hikeshi fim init` first")]
    Missing(PathBuf),
    #[error("cannot read baseline {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("baseline {path} is not a hikeshi baseline or is damaged: {what}")]
    Format { path: PathBuf, what: String },
    #[error(
        "baseline {path} has been altered: its body digest is {actual}, its header says {expected}"
    )]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
    #[error("baseline {path} is not signed, but a public key is configured: refusing to trust it")]
    SignatureMissing { path: PathBuf },
    #[error("baseline {path} is signed by key {found}, not by the configured key {expected}: refusing to trust it")]
    WrongKey { path: PathBuf, found: String, expected: String },
    #[error("baseline {path} has an invalid signature: refusing to trust it")]
    BadSignature { path: PathBuf },
    #[error("baseline {path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
}

/// The baseline header (the second line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    pub created_at: Timestamp,
    /// `user@host`, with the sudo user if any.
    pub created_by: String,
    pub host: String,
    /// `init` or `update`.
    pub reason: String,
    /// The [`Baseline::id`] of the baseline this one replaced.
    pub supersedes: Option<String>,
    pub rules_digest: String,
    pub hash: HashAlgo,
    pub records: u64,
    pub body_len: u64,
    pub body_digest: String,
}

/// Who writes a baseline, and why.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub created_at: Timestamp,
    pub created_by: String,
    pub host: String,
    pub reason: String,
    pub supersedes: Option<String>,
    pub rules_digest: String,
    pub hash: HashAlgo,
}

/// Writes a new baseline next to `path` and renames it into place when
/// [`BaselineWriter::finish`] is called. Dropped unfinished, it leaves
/// the old baseline untouched.
pub struct BaselineWriter {
    path: PathBuf,
    body_path: PathBuf,
    body: BufWriter<File>,
    encoder: Encoder,
    digest: Sha256,
    len: u64,
    records: u64,
    finished: bool,
}

/// Hashes what passes through on its way to the body file.
struct Tee<'a> {
    inner: &'a mut BufWriter<File>,
    digest: &'a mut Sha256,
    len: &'a mut u64,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        *self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}-{}", std::process::id()))
}

impl BaselineWriter {
    /// Starts a baseline that will replace `path`.
    pub fn create(path: &Path) -> io::Result<BaselineWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::data_dir::ensure(dir).map_err(io::Error::other)?;
        }
        remove_stale_temporaries(path);
        let body_path = sibling(path, "body");
        let body = BufWriter::with_capacity(1 << 20, create_private(&body_path)?);
        Ok(BaselineWriter {
            path: path.to_path_buf(),
            body_path,
            body,
            encoder: Encoder::default(),
            digest: Sha256::new(),
            len: 0,
            records: 0,
            finished: false,
        })
    }

    /// Appends a record; records must come in path order.
    pub fn push(&mut self, record: &FileRecord) -> io::Result<()> {
        self.records += 1;
        let mut tee = Tee { inner: &mut self.body, digest: &mut self.digest, len: &mut self.len };
        self.encoder.write(record, &mut tee)
    }

    /// Writes header, signature and body to a temporary file, fsyncs it
    /// and renames it over the baseline. Returns the header written.
    pub fn finish(
        mut self,
        provenance: Provenance,
        key: Option<&SigningKey>,
    ) -> io::Result<Header> {
        self.body.flush()?;
        let header = Header {
            format: FORMAT,
            created_at: provenance.created_at,
            created_by: provenance.created_by,
            host: provenance.host,
            reason: provenance.reason,
            supersedes: provenance.supersedes,
            rules_digest: provenance.rules_digest,
            hash: provenance.hash,
            records: self.records,
            body_len: self.len,
            body_digest: format!("sha256:{:x}", self.digest.clone().finalize()),
        };
        let header_line = serde_json::to_vec(&header).map_err(io::Error::other)?;
        let signature_line = match key {
            Some(key) => {
                let signature = key.sign(&signed_message(&header_line));
                format!(
                    "signature ed25519 {} {}\n",
                    hex(key.verifying_key().as_bytes()),
                    hex(&signature.to_bytes())
                )
            }
            None => "unsigned\n".to_string(),
        };
        let tmp_path = sibling(&self.path, "tmp");
        let result = (|| {
            let mut out = BufWriter::with_capacity(1 << 20, create_private(&tmp_path)?);
            out.write_all(MAGIC)?;
            out.write_all(&header_line)?;
            out.write_all(b"\n")?;
            out.write_all(signature_line.as_bytes())?;
            let mut body = File::open(&self.body_path)?;
            io::copy(&mut body, &mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp_path, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&self.body_path);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp_path);
        }
        self.finished = true;
        result.map(|()| header)
    }
}

impl Drop for BaselineWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.body_path);
        }
    }
}

/// Removes temporary files left by a writer that was killed (its process
/// is gone), so an interrupted `init` does not leave a body copy behind forever.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let name = name.to_string_lossy();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let pid = [".body-", ".tmp-"].iter().find_map(|kind| {
            file_name
                .strip_prefix(&format!(".{name}{kind}"))
                .and_then(|pid| pid.parse::<u32>().ok())
        });
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn signed_message(header_line: &[u8]) -> Vec<u8> {
    let mut message = MAGIC.to_vec();
    message.extend_from_slice(header_line);
    message
}

/// A baseline whose signature and body digest have been verified.
#[derive(Debug)]
pub struct Baseline {
    path: PathBuf,
    /// The verified file, kept open so the records decoded are those of
    /// the inode that was verified even if the path is replaced meanwhile.
    file: File,
    pub header: Header,
    body_offset: u64,
    pub signature: SignatureStatus,
    id: String,
}

impl Baseline {
    /// Opens and verifies the baseline at `path`. With `pinned`, the
    /// baseline must carry a valid signature by that key; without, a
    /// signature present must still be valid.
    pub fn open(path: &Path, pinned: Option<&VerifyingKey>) -> Result<Baseline, BaselineError> {
        let io_err = |source: io::Error| BaselineError::Io { path: path.to_path_buf(), source };
        let format_err =
            |what: &str| BaselineError::Format { path: path.to_path_buf(), what: what.to_string() };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BaselineError::Missing(path.to_path_buf()))
            }
            Err(e) => return Err(io_err(e)),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_err)?);
        let mut magic = vec![0u8; MAGIC.len()];
        reader.read_exact(&mut magic).map_err(|_| format_err("too short"))?;
        if magic != MAGIC {
            return Err(format_err("wrong magic line"));
        }
        let header_line = read_line(&mut reader)
            .map_err(io_err)?
            .ok_or_else(|| format_err("header missing or too long"))?;
        let signature_line = read_line(&mut reader)
            .map_err(io_err)?
            .ok_or_else(|| format_err("signature line missing or too long"))?;
        let body_offset = (MAGIC.len() + header_line.len() + 1 + signature_line.len() + 1) as u64;

        // The signature is checked before the header is even parsed.
        let signature = verify_signature(path, &header_line, &signature_line, pinned)?;
        let header: Header = serde_json::from_slice(&header_line)
            .map_err(|e| format_err(&format!("header: {e}")))?;
        if header.format != FORMAT {
            return Err(format_err(&format!(
                "format {} is not supported (expected {FORMAT})",
                header.format
            )));
        }

        let mut digest = Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            len += n as u64;
        }
        let actual = format!("sha256:{:x}", digest.finalize());
        if actual != header.body_digest || len != header.body_len {
            return Err(BaselineError::DigestMismatch {
                path: path.to_path_buf(),
                expected: header.body_digest,
                actual,
            });
        }
        let id = format!("sha256:{:x}", Sha256::digest(signed_message(&header_line)));
        Ok(Baseline { path: path.to_path_buf(), file, header, body_offset, signature, id })
    }

    /// Identifies this baseline (a digest over its header, which covers
    /// the body): the next baseline's `supersedes`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The records, in path order, decoded as they are read.
    pub fn records(
        &self,
    ) -> Result<impl Iterator<Item = Result<FileRecord, BaselineError>> + '_, BaselineError> {
        let mut file = self
            .file
            .try_clone()
            .map_err(|source| BaselineError::Io { path: self.path.clone(), source })?;
        file.seek(SeekFrom::Start(self.body_offset))
            .map_err(|source| BaselineError::Io { path: self.path.clone(), source })?;
        let decoder = Decoder::new(BufReader::with_capacity(1 << 20, file), self.header.records);
        Ok(decoder
            .map(|r| r.map_err(|source| BaselineError::Decode { path: self.path.clone(), source })))
    }

    /// What the report says about this baseline.
    pub fn info(&self) -> BaselineInfo {
        BaselineInfo {
            created_at: self.header.created_at,
            created_by: self.header.created_by.clone(),
            reason: self.header.reason.clone(),
            supersedes: self.header.supersedes.clone(),
            rules_digest: self.header.rules_digest.clone(),
            body_digest: self.header.body_digest.clone(),
            records: self.header.records,
            signature: self.signature.clone(),
        }
    }
}

/// Reads a line without its `\n`; `None` if the line is too long or
/// the file ends first.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.pop() != Some(b'\n') {
        return Ok(None);
    }
    Ok(Some(line))
}

fn verify_signature(
    path: &Path,
    header_line: &[u8],
    signature_line: &[u8],
    pinned: Option<&VerifyingKey>,
) -> Result<SignatureStatus, BaselineError> {
    let path = path.to_path_buf();
    if signature_line == b"unsigned" {
        return match pinned {
            Some(_) => Err(BaselineError::SignatureMissing { path }),
            None => Ok(SignatureStatus::Unsigned),
        };
    }
    let text = std::str::from_utf8(signature_line).unwrap_or("");
    let parts: Vec<&str> = text.split(' ').collect();
    let (key_hex, sig_hex) = match parts.as_slice() {
        ["signature", "ed25519", key, sig] => (*key, *sig),
        _ => return Err(BaselineError::Format { path, what: "malformed signature line".into() }),
    };
    let bad = || BaselineError::BadSignature { path: path.clone() };
    let key_bytes: [u8; 32] = parse_hex(key_hex).ok_or_else(bad)?;
    let sig_bytes: [u8; 64] = parse_hex(sig_hex).ok_or_else(bad)?;
    let embedded = VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad())?;
    if let Some(pinned) = pinned {
        if pinned != &embedded {
            return Err(BaselineError::WrongKey {
                path,
                found: key_hex.to_string(),
                expected: hex(pinned.as_bytes()),
            });
        }
    }
    embedded
        .verify_strict(&signed_message(header_line), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| bad())?;
    Ok(SignatureStatus::Verified { key: key_hex.to_string(), pinned: pinned.is_some() })
}

/// Decodes exactly `N` bytes of hex.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.hfim");
        // PID 4194304 is above Linux's maximum, so it never exists.
        let stale = dir.path().join(".baseline.hfim.body-4194304");
        let live = dir.path().join(format!(".baseline.hfim.tmp-{}", std::process::id()));
        let unrelated = dir.path().join(".other.body-4194304");
        for p in [&stale, &live, &unrelated] {
            std::fs::write(p, b"x").unwrap();
        }
        let writer = BaselineWriter::create(&path).unwrap();
        assert!(!stale.exists());
        assert!(live.exists(), "our own pid's files are left alone");
        assert!(unrelated.exists());
        drop(writer);
        assert!(!dir.path().join(format!(".baseline.hfim.body-{}", std::process::id())).exists());
    }

    #[test]
    fn hex_parsing_is_strict() {
        assert_eq!(parse_hex::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(parse_hex::<2>("0aF"), None);
        assert_eq!(parse_hex::<2>("0aFg"), None);
        assert_eq!(parse_hex::<2>("é0a"), None);
    }
}
