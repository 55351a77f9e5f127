//! The compact binary encoding of file records in a baseline body.
//!
//! Each record stores its path as "bytes shared with the previous path +
//! new suffix" (paths arrive sorted, so most of a path is shared), then
//! varint-encoded metadata and optional hashes, link target, xattrs and
//! error text. The decoder treats its input as hostile: every length is
//! bounded before anything is allocated, and every error names the record
//! and the byte offset.

use std::io::{self, BufRead, Write};

use hikeshi_core::fim::{AttrSet, FileRecord, FileTime, FileType};
use thiserror::Error;

const HAS_SHA256: u8 = 1;
const HAS_BLAKE3: u8 = 2;
const HAS_LINK: u8 = 4;
const HAS_XATTRS: u8 = 8;
const HAS_ERROR: u8 = 16;
const NO_FTYPE: u8 = 255;

/// Longest path, link target, xattr name/value or error text accepted.
const MAX_BYTES: u64 = 1 << 20;
/// Most xattrs accepted on one file.
const MAX_XATTRS: u64 = 4096;

/// A body that cannot be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("baseline record {record} at body offset {offset}: {what}")]
    Corrupt { record: u64, offset: u64, what: String },
    #[error("cannot read baseline: {0}")]
    Io(#[from] io::Error),
}

/// Writes records, remembering the previous path for prefix compression.
#[derive(Default)]
pub struct Encoder {
    previous: Vec<u8>,
    buf: Vec<u8>,
}

impl Encoder {
    /// Appends one record to `out`.
    pub fn write(&mut self, record: &FileRecord, out: &mut impl Write) -> io::Result<()> {
        let buf = &mut self.buf;
        buf.clear();
        let shared = self.previous.iter().zip(&record.path).take_while(|(a, b)| a == b).count();
        varint(buf, shared as u64);
        bytes(buf, &record.path[shared..]);
        varint(buf, u64::from(record.attrs.bits()));
        buf.push(record.ftype.map_or(NO_FTYPE, FileType::code));
        for value in [
            u64::from(record.mode),
            record.ino,
            record.nlink,
            u64::from(record.uid),
            u64::from(record.gid),
            record.size,
        ] {
            varint(buf, value);
        }
        for time in [record.mtime, record.ctime] {
            varint(buf, zigzag(time.sec));
            varint(buf, u64::from(time.nsec));
        }
        let mut flags = 0;
        flags |= if record.sha256.is_some() { HAS_SHA256 } else { 0 };
        flags |= if record.blake3.is_some() { HAS_BLAKE3 } else { 0 };
        flags |= if record.link_target.is_some() { HAS_LINK } else { 0 };
        flags |= if record.xattrs.is_some() { HAS_XATTRS } else { 0 };
        flags |= if record.unreadable.is_some() { HAS_ERROR } else { 0 };
        buf.push(flags);
        if let Some(h) = &record.sha256 {
            buf.extend_from_slice(h);
        }
        if let Some(h) = &record.blake3 {
            buf.extend_from_slice(h);
        }
        if let Some(link) = &record.link_target {
            bytes(buf, link);
        }
        if let Some(xattrs) = &record.xattrs {
            varint(buf, xattrs.len() as u64);
            for (name, value) in xattrs {
                bytes(buf, name);
                bytes(buf, value);
            }
        }
        if let Some(error) = &record.unreadable {
            bytes(buf, error.as_bytes());
        }
        self.previous.clear();
        self.previous.extend_from_slice(&record.path);
        out.write_all(buf)
    }
}

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn bytes(buf: &mut Vec<u8>, data: &[u8]) {
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads records back, one at a time.
pub struct Decoder<R> {
    input: R,
    previous: Vec<u8>,
    record: u64,
    offset: u64,
    remaining: u64,
    done: bool,
}

impl<R: BufRead> Decoder<R> {
    /// A decoder for `count` records from `input`.
    pub fn new(input: R, count: u64) -> Decoder<R> {
        Decoder { input, previous: Vec::new(), record: 0, offset: 0, remaining: count, done: false }
    }

    fn corrupt(&self, what: impl Into<String>) -> DecodeError {
        DecodeError::Corrupt { record: self.record, offset: self.offset, what: what.into() }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), DecodeError> {
        match self.input.read_exact(out) {
            Ok(()) => {
                self.offset += out.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.corrupt("truncated")),
            Err(e) => Err(DecodeError::Io(e)),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.corrupt("varint longer than 64 bits"))
    }

    fn small<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T, DecodeError> {
        let v = self.varint()?;
        T::try_from(v).map_err(|_| self.corrupt(format!("{what} {v} out of range")))
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let len = self.varint()?;
        if len > MAX_BYTES {
            return Err(self.corrupt(format!("{what} length {len} exceeds {MAX_BYTES}")));
        }
        let mut out = vec![0; len as usize];
        self.exact(&mut out)?;
        Ok(out)
    }

    fn hash(&mut self) -> Result<[u8; 32], DecodeError> {
        let mut h = [0u8; 32];
        self.exact(&mut h)?;
        Ok(h)
    }

    fn decode(&mut self) -> Result<FileRecord, DecodeError> {
        let shared = self.varint()?;
        if shared > self.previous.len() as u64 {
            return Err(
                self.corrupt(format!("shared prefix {shared} longer than the previous path"))
            );
        }
        let suffix = self.bytes("path")?;
        let mut path = self.previous[..shared as usize].to_vec();
        path.extend_from_slice(&suffix);
        if !path.starts_with(b"/") {
            return Err(self.corrupt("path is not absolute"));
        }
        let attrs = AttrSet::from_bits(self.small("attribute set")?);
        let code = self.byte()?;
        let ftype = match code {
            NO_FTYPE => None,
            c => Some(
                FileType::from_code(c)
                    .ok_or_else(|| self.corrupt(format!("unknown file type {c}")))?,
            ),
        };
        let mode = self.small("mode")?;
        let ino = self.varint()?;
        let nlink = self.varint()?;
        let uid = self.small("uid")?;
        let gid = self.small("gid")?;
        let size = self.varint()?;
        let mut times = [FileTime::default(); 2];
        for time in &mut times {
            time.sec = unzigzag(self.varint()?);
            time.nsec = self.small("nanoseconds")?;
            if time.nsec >= 1_000_000_000 {
                return Err(self.corrupt("nanoseconds out of range"));
            }
        }
        let flags = self.byte()?;
        if flags & !(HAS_SHA256 | HAS_BLAKE3 | HAS_LINK | HAS_XATTRS | HAS_ERROR) != 0 {
            return Err(self.corrupt(format!("unknown flags {flags:#x}")));
        }
        let sha256 = if flags & HAS_SHA256 != 0 { Some(self.hash()?) } else { None };
        let blake3 = if flags & HAS_BLAKE3 != 0 { Some(self.hash()?) } else { None };
        let link_target =
            if flags & HAS_LINK != 0 { Some(self.bytes("link target")?) } else { None };
        let xattrs = if flags & HAS_XATTRS != 0 {
            let count = self.varint()?;
            if count > MAX_XATTRS {
                return Err(self.corrupt(format!("{count} xattrs exceeds {MAX_XATTRS}")));
            }
            let mut list = Vec::with_capacity(count as usize);
            for _ in 0..count {
                list.push((self.bytes("xattr name")?, self.bytes("xattr value")?));
            }
            Some(list)
        } else {
            None
        };
        let unreadable = if flags & HAS_ERROR != 0 {
            Some(
                String::from_utf8(self.bytes("error text")?)
                    .map_err(|_| self.corrupt("error text is not UTF-8"))?,
            )
        } else {
            None
        };
        self.previous.clone_from(&path);
        Ok(FileRecord {
            path,
            attrs,
            ftype,
            mode,
            ino,
            nlink,
            uid,
            gid,
            size,
            mtime: times[0],
            ctime: times[1],
            sha256,
            blake3,
            link_target,
            xattrs,
            unreadable,
        })
    }
}

impl<R: BufRead> Iterator for Decoder<R> {
    type Item = Result<FileRecord, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            // Trailing bytes after the last record mean the header lies
            // about the count.
            self.done = true;
            return match self.input.fill_buf() {
                Ok([]) => None,
                Ok(_) => Some(Err(self.corrupt("data after the last record"))),
                Err(e) => Some(Err(DecodeError::Io(e))),
            };
        }
        self.remaining -= 1;
        self.record += 1;
        let result = self.decode();
        self.done = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hikeshi_core::fim::Attr;

    fn records() -> Vec<FileRecord> {
        vec![
            FileRecord {
                path: b"/usr/bin/ls".to_vec(),
                attrs: AttrSet::of(&[Attr::Perm, Attr::Sha256, Attr::Blake3]),
                ftype: Some(FileType::File),
                mode: 0o4755,
                ino: 1 << 40,
                nlink: 1,
                uid: 0,
                gid: u32::MAX,
                size: 12345,
                mtime: FileTime { sec: -5, nsec: 999_999_999 },
                ctime: FileTime { sec: 1_700_000_000, nsec: 1 },
                sha256: Some([7; 32]),
                blake3: Some([9; 32]),
                ..FileRecord::default()
            },
            FileRecord {
                path: b"/usr/bin/l\xffink".to_vec(),
                ftype: Some(FileType::Symlink),
                link_target: Some(b"../x".to_vec()),
                xattrs: Some(vec![(b"security.capability".to_vec(), vec![0, 1, 2])]),
                unreadable: Some("permission denied".into()),
                ..FileRecord::default()
            },
        ]
    }

    fn encode(records: &[FileRecord]) -> Vec<u8> {
        let mut enc = Encoder::default();
        let mut out = Vec::new();
        for r in records {
            enc.write(r, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn round_trip() {
        let body = encode(&records());
        let back: Vec<FileRecord> = Decoder::new(&body[..], 2).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, records());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let body = encode(&records());
        for cut in 0..body.len() {
            let result: Result<Vec<_>, _> = Decoder::new(&body[..cut], 2).collect();
            assert!(result.is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn trailing_data_and_hostile_lengths() {
        let mut body = encode(&records());
        body.push(0);
        let err = Decoder::new(&body[..], 2).collect::<Result<Vec<_>, _>>().unwrap_err();
        assert!(err.to_string().contains("after the last record"), "{err}");
        // A path length of 2^60 must be refused before allocating.
        let hostile = [0u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
        let err = Decoder::new(&hostile[..], 1).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }
}
