//! How evidence lines are packed into the database.
//!
//! A scan can attribute hundreds of thousands of lines to incidents; one
//! SQLite row per line would cost more than parsing them. Lines are
//! therefore written as *chunks*: one row per incident per batch, whose
//! `data` is a sequence of records, each
//!
//! ```text
//! seq u64 LE | offset u64 LE | sha256 [32] | file_len u32 LE | file | line_len u32 LE | line
//! ```
//!
//! where `seq` is the line's number among all the incident's evidence
//! lines (0-based), `file`/`offset` say where it was read, `sha256` is the
//! SHA-256 of the exact `line` bytes. The format is fixed: stored chunks
//! are evidence and are never rewritten.

use hikeshi_core::incident::{Evidence, EvidenceRef, Sha256Digest};

/// A chunk being built: records appended in `seq` order.
#[derive(Debug, Default)]
pub(super) struct ChunkBuilder {
    pub data: Vec<u8>,
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
}

impl ChunkBuilder {
    pub fn push(&mut self, seq: u64, ev: &Evidence) {
        self.push_ref(seq, ev.as_ref());
    }

    pub fn push_ref(&mut self, seq: u64, ev: EvidenceRef<'_>) {
        encode_ref(&mut self.data, seq, ev);
        self.lines += 1;
        self.first_seq.get_or_insert(seq);
        self.last_seq = seq;
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.lines = 0;
        self.first_seq = None;
        self.last_seq = 0;
    }
}

/// Appends one record to `out`.
#[cfg(test)]
pub(super) fn encode(out: &mut Vec<u8>, seq: u64, ev: &Evidence) {
    encode_ref(out, seq, ev.as_ref());
}

/// Appends one record to `out`, from borrowed evidence.
pub(super) fn encode_ref(out: &mut Vec<u8>, seq: u64, ev: EvidenceRef<'_>) {
    out.reserve(56 + ev.file.len() + ev.line.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ev.offset.to_le_bytes());
    out.extend_from_slice(&ev.sha256);
    push_bytes(out, ev.file.as_bytes());
    push_bytes(out, ev.line);
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lines longer than 4 GiB cannot come out of a line reader; saturate
    // rather than wrap if one ever did, and truncate to match.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Decodes every record of a chunk; says what is wrong with a damaged one.
pub(super) fn decode(mut data: &[u8]) -> Result<Vec<(u64, Evidence)>, String> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let seq = take_u64(&mut data)?;
        let offset = take_u64(&mut data)?;
        let sha256: Sha256Digest = take(&mut data, 32)?.try_into().expect("32 bytes");
        let file = take_sized(&mut data)?;
        let file = String::from_utf8(file.to_vec())
            .map_err(|_| format!("record {seq}: file name is not UTF-8"))?;
        let line = take_sized(&mut data)?.to_vec();
        records.push((seq, Evidence { file, offset, line, sha256 }));
    }
    Ok(records)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if data.len() < n {
        return Err(format!("chunk truncated: {} bytes left, {n} needed", data.len()));
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Ok(head)
}

fn take_u64(data: &mut &[u8]) -> Result<u64, String> {
    Ok(u64::from_le_bytes(take(data, 8)?.try_into().expect("8 bytes")))
}

fn take_sized<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = u32::from_le_bytes(take(data, 4)?.try_into().expect("4 bytes"));
    take(data, len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_including_hostile_bytes() {
        let a = Evidence::new("/var/log/auth.log", 7, b"Failed password for \xff\x1b[2J");
        let b = Evidence::new("journal", u64::MAX, b"");
        let mut chunk = ChunkBuilder::default();
        chunk.push(3, &a);
        chunk.push(9, &b);
        assert_eq!((chunk.lines, chunk.first_seq, chunk.last_seq), (2, Some(3), 9));
        assert_eq!(decode(&chunk.data).unwrap(), vec![(3, a), (9, b)]);
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let mut data = Vec::new();
        encode(&mut data, 1, &Evidence::new("f", 0, b"line"));
        for cut in 0..data.len() {
            if cut == 0 {
                assert_eq!(decode(&data[..0]).unwrap(), vec![]);
            } else {
                let err = decode(&data[..cut]).unwrap_err();
                assert!(err.contains("truncated"), "{err}");
            }
        }
        let mut huge = data.clone();
        huge[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
