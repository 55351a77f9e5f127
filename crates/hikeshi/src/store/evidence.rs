//! How evidence lines are packed into the database.
//!
//! A scan can attribute hundreds of thousands of lines to incidents; one
//! SQLite row per line would cost more than parsing them. Lines are
//! therefore written as *chunks*: one row per incident per batch (or per
//! [`CHUNK_BYTES`]), whose `data` packs many lines. Stored chunks are
//! evidence and are never rewritten, so every format ever written stays
//! readable.
//!
//! # Current format (schema version 5; bit 2 from version 7)
//!
//! `evidence_lines` holds a record for **every** line attributed to an
//! incident: where it was read (file, offset) and its SHA-256, plus its
//! text when the evidence cap keeps it for good (the first lines, the
//! line that escalated, explicit attachments). A chunk's records are the
//! consecutive lines `first_seq..=last_seq` (the `seq` of a line is its
//! number among the incident's lines, 0-based). `data` is
//!
//! ```text
//! encoding u8 (0: plain; 1: LZ4, see below)  then, per line:
//!   flags u8            bit 0: the file changes here; bit 1: the text is kept;
//!                       bit 2: the SHA-256 is in another incident's record
//!   [file]              if bit 0: varint length, UTF-8 bytes (this line's and the next ones' file)
//!   offset delta        zigzag varint: offset minus the previous line's (0 before the first)
//!   sha256 [32]         if bits 1 and 2 are clear
//!   [text]              if bit 1: varint length, the exact bytes; the line's SHA-256 is theirs
//!   [same as]           if bit 2: varint incident id, varint seq: the record of this very
//!                       line (same file, same offset) in that incident, which holds its
//!                       SHA-256 (by digest or text, never by another reference)
//! ```
//!
//! A kept line does not repeat its SHA-256: it is the SHA-256 of the
//! stored bytes, recomputed when read. Bit 2 is for a line that counts in
//! two incidents, its source's and the attacked account's: its digest is
//! stored once, in the source incident, and the account incident's record
//! points there (a few bytes instead of 32; digests do not compress, and
//! they are most of what a long attack writes). Records are never
//! rewritten or deleted, so the pointer stays valid; a reader checks that
//! it leads to a record of the same file and offset. Bits 1 and 2 never go
//! together. Varints are LEB128. With encoding
//! 1, what follows the encoding byte is the uncompressed length (u32 LE)
//! and one LZ4 block of the records; a chunk is stored compressed when
//! that is smaller, which it is several times over for log lines.
//!
//! `evidence_latest` holds the text of each incident's latest lines (the
//! rolling window of the cap, whose chunks are deleted once all their
//! lines have left it); their file, offset and SHA-256 are in
//! `evidence_lines`. `data` is the encoding byte (as above) then, per line,
//! `seq delta varint` (from the previous line's seq, from 0 for the first)
//! and `varint length, the exact bytes`.
//!
//! # Legacy format (schema versions 1 to 4)
//!
//! Tables `evidence` (kept for good) and `evidence_recent` (rolling), one
//! record per *kept* line:
//!
//! ```text
//! seq u64 LE | offset u64 LE | sha256 [32] | file_len u32 LE | file | line_len u32 LE | line
//! ```
//!
//! A store still opened at such a schema (only tests and benchmarks do:
//! opening a store migrates it) writes this format; a migrated database
//! keeps its legacy chunks and reads them beside the new ones.

use hikeshi_core::incident::{Evidence, EvidenceRef, IncidentId, Sha256Digest};
use sha2::{Digest, Sha256};

/// A batch's records of one incident are written as a chunk once they
/// reach this size, rather than all at commit: memory stays bounded
/// whatever the length of an attack.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// Encoding byte: the body as it is.
const ENCODING_PLAIN: u8 = 0;
/// Encoding byte: the body compressed as one LZ4 block, after its
/// uncompressed length (u32 LE).
const ENCODING_LZ4: u8 = 1;

/// No chunk body is larger (a chunk is written once past [`CHUNK_BYTES`],
/// and no line is near this size): a larger stated length is damage, and
/// is refused rather than allocated.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// The bytes to store for a chunk built as `data` (encoding byte, body):
/// the body compressed into `scratch` if that makes it smaller. Log lines
/// are repetitive, so this usually divides the bytes written several
/// times (and with them SQLite's, the WAL's and the audit trail's work).
pub(super) fn stored<'a>(data: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let body = &data[1..];
    let Ok(len) = u32::try_from(body.len()) else { return data };
    // Grown, never cleared: zeroing a worst-case buffer for every chunk
    // would cost more than compressing it.
    let needed = 5 + lz4_flex::block::get_maximum_output_size(body.len());
    if scratch.len() < needed {
        scratch.resize(needed, 0);
    }
    scratch[0] = ENCODING_LZ4;
    scratch[1..5].copy_from_slice(&len.to_le_bytes());
    let n = lz4_flex::block::compress_into(body, &mut scratch[5..needed])
        .expect("the output is sized for the worst case");
    if 5 + n < data.len() {
        &scratch[..5 + n]
    } else {
        data
    }
}

const FLAG_FILE: u8 = 1;
const FLAG_TEXT: u8 = 2;
const FLAG_SAME_AS: u8 = 4;

/// Where one line's record is: line `seq` of incident `incident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordedLine {
    pub incident: IncidentId,
    pub seq: u64,
}

/// What a line's record holds besides where the line was read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Content<'a> {
    /// The exact bytes (the line's SHA-256 is theirs).
    Text(&'a [u8]),
    /// The line's SHA-256.
    Digest(&'a Sha256Digest),
    /// The same line's record in another incident, which holds its SHA-256.
    SameAs(RecordedLine),
}

/// The records of one incident's consecutive lines, being built
/// (`evidence_lines.data`).
#[derive(Debug, Default)]
pub(super) struct LinesChunk {
    /// Encoding byte, then the records.
    pub data: Vec<u8>,
    pub lines: u64,
    pub first_seq: u64,
    /// Lines whose text the chunk holds: without any, the records are
    /// mostly SHA-256 digests, which no compressor shrinks.
    pub texts: u64,
    /// The file of the last record (said again only when it changes).
    file: String,
    offset: u64,
}

impl LinesChunk {
    /// Appends the record of line `seq`, read from `file` at `offset`.
    pub fn push(&mut self, seq: u64, file: &str, offset: u64, content: Content<'_>) {
        if self.lines == 0 {
            self.data.clear();
            self.data.push(ENCODING_PLAIN);
            self.first_seq = seq;
            self.offset = 0;
            self.texts = 0;
        } else {
            debug_assert_eq!(seq, self.first_seq + self.lines, "a chunk's lines are consecutive");
        }
        let file_changes = self.lines == 0 || self.file != file;
        let mut flags = match content {
            Content::Text(_) => FLAG_TEXT,
            Content::Digest(_) => 0,
            Content::SameAs(_) => FLAG_SAME_AS,
        };
        if file_changes {
            flags |= FLAG_FILE;
        }
        self.data.push(flags);
        if file_changes {
            self.file.clear();
            self.file.push_str(file);
            put_bytes(&mut self.data, file.as_bytes());
        }
        put_varint(&mut self.data, zigzag(offset.wrapping_sub(self.offset) as i64));
        self.offset = offset;
        match content {
            Content::Text(text) => {
                put_bytes(&mut self.data, text);
                self.texts += 1;
            }
            Content::Digest(sha256) => self.data.extend_from_slice(sha256),
            Content::SameAs(line) => {
                // Ids are positive (SQLite rowids).
                put_varint(&mut self.data, line.incident.0 as u64);
                put_varint(&mut self.data, line.seq);
            }
        }
        self.lines += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The bytes to store: compressed into `scratch` when that pays.
    pub fn stored<'a>(&'a self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if self.texts == 0 {
            &self.data
        } else {
            stored(&self.data, scratch)
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.lines.saturating_sub(1)
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.lines = 0;
        self.texts = 0;
    }
}

/// The texts of some of an incident's latest lines, being built
/// (`evidence_latest.data`), in increasing `seq`.
#[derive(Debug, Default)]
pub(super) struct LatestChunk {
    pub data: Vec<u8>,
    pub lines: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl LatestChunk {
    pub fn push(&mut self, seq: u64, text: &[u8]) {
        let previous = if self.lines == 0 {
            self.data.clear();
            self.data.push(ENCODING_PLAIN);
            self.first_seq = seq;
            0
        } else {
            debug_assert!(seq > self.last_seq, "latest lines in increasing seq");
            self.last_seq
        };
        put_varint(&mut self.data, seq - previous);
        put_bytes(&mut self.data, text);
        self.last_seq = seq;
        self.lines += 1;
    }
}

/// One line's record as read back from `evidence_lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub seq: u64,
    pub file: String,
    pub offset: u64,
    pub digest: RecordDigest,
    /// The exact bytes, if this chunk kept them.
    pub text: Option<Vec<u8>>,
}

/// A record's SHA-256, or where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordDigest {
    Sha256(Sha256Digest),
    SameAs(RecordedLine),
}

/// Decodes an `evidence_lines` chunk whose first line is `first_seq`;
/// says what is wrong with a damaged one.
pub(super) fn decode_lines(data: &[u8], first_seq: u64) -> Result<Vec<Record>, String> {
    let body = body(data)?;
    let mut data = &body[..];
    let mut records: Vec<Record> = Vec::new();
    let mut file: Option<String> = None;
    let mut offset = 0u64;
    while !data.is_empty() {
        let seq = first_seq + records.len() as u64;
        let flags = take(&mut data, 1)?[0];
        if flags & !(FLAG_FILE | FLAG_TEXT | FLAG_SAME_AS) != 0 {
            return Err(format!("line {seq}: unknown flags {flags:#04x}"));
        }
        if flags & FLAG_TEXT != 0 && flags & FLAG_SAME_AS != 0 {
            return Err(format!("line {seq}: both a text and a reference (flags {flags:#04x})"));
        }
        if flags & FLAG_FILE != 0 {
            let name = take_sized(&mut data)?;
            file = Some(
                String::from_utf8(name.to_vec())
                    .map_err(|_| format!("line {seq}: file name is not UTF-8"))?,
            );
        }
        let file = file.clone().ok_or_else(|| format!("line {seq}: no file named before it"))?;
        offset = offset.wrapping_add(unzigzag(take_varint(&mut data)?) as u64);
        let (digest, text) = if flags & FLAG_TEXT != 0 {
            let text = take_sized(&mut data)?.to_vec();
            (RecordDigest::Sha256(Sha256::digest(&text).into()), Some(text))
        } else if flags & FLAG_SAME_AS != 0 {
            let incident = take_varint(&mut data)?;
            let incident = i64::try_from(incident)
                .ok()
                .filter(|&id| id > 0)
                .ok_or_else(|| format!("line {seq}: refers to incident {incident}, not an id"))?;
            let line =
                RecordedLine { incident: IncidentId(incident), seq: take_varint(&mut data)? };
            (RecordDigest::SameAs(line), None)
        } else {
            (RecordDigest::Sha256(take(&mut data, 32)?.try_into().expect("32 bytes")), None)
        };
        records.push(Record { seq, file, offset, digest, text });
    }
    Ok(records)
}

/// Decodes an `evidence_latest` chunk into `(seq, text)` pairs.
pub(super) fn decode_latest(data: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let body = body(data)?;
    let mut data = &body[..];
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut seq = 0u64;
    while !data.is_empty() {
        let delta = take_varint(&mut data)?;
        if !out.is_empty() && delta == 0 {
            return Err(format!("line {seq} repeated"));
        }
        seq = seq.checked_add(delta).ok_or("seq overflows")?;
        out.push((seq, take_sized(&mut data)?.to_vec()));
    }
    Ok(out)
}

fn body(data: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    match data.split_first() {
        None => Err("empty chunk".to_string()),
        Some((&ENCODING_PLAIN, body)) => Ok(body.into()),
        Some((&ENCODING_LZ4, mut packed)) => {
            let len = u32::from_le_bytes(take(&mut packed, 4)?.try_into().expect("4 bytes"));
            let len = len as usize;
            if len > MAX_BODY_BYTES {
                return Err(format!("stated length {len} too large"));
            }
            let mut body = vec![0; len];
            let n = lz4_flex::block::decompress_into(packed, &mut body)
                .map_err(|e| format!("damaged compression: {e}"))?;
            if n != len {
                return Err(format!("decompressed to {n} bytes, {len} stated"));
            }
            Ok(body.into())
        }
        Some((other, _)) => Err(format!("unknown encoding {other}")),
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn take_varint(data: &mut &[u8]) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take(data, 1)?[0];
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            if shift == 63 && byte > 1 {
                break;
            }
            return Ok(n);
        }
    }
    Err("varint longer than 64 bits".to_string())
}

fn take_sized<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = take_varint(data)?;
    let len = usize::try_from(len).map_err(|_| format!("length {len} too large"))?;
    take(data, len)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if data.len() < n {
        return Err(format!("chunk truncated: {} bytes left, {n} needed", data.len()));
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Ok(head)
}

/// A legacy chunk being built (schema before version 5): records appended
/// in `seq` order.
#[derive(Debug, Default)]
pub(super) struct LegacyChunk {
    pub data: Vec<u8>,
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
}

impl LegacyChunk {
    pub fn push_ref(&mut self, seq: u64, ev: EvidenceRef<'_>) {
        encode_legacy(&mut self.data, seq, ev);
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

/// Appends one legacy record to `out`.
pub(super) fn encode_legacy(out: &mut Vec<u8>, seq: u64, ev: EvidenceRef<'_>) {
    out.reserve(56 + ev.file.len() + ev.line.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ev.offset.to_le_bytes());
    out.extend_from_slice(&ev.sha256);
    push_legacy_bytes(out, ev.file.as_bytes());
    push_legacy_bytes(out, ev.line);
}

fn push_legacy_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lines longer than 4 GiB cannot come out of a line reader; saturate
    // rather than wrap if one ever did, and truncate to match.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Decodes every record of a legacy chunk; says what is wrong with a
/// damaged one.
pub(super) fn decode_legacy(mut data: &[u8]) -> Result<Vec<(u64, Evidence)>, String> {
    let mut records = Vec::new();
    while !data.is_empty() {
        let seq = take_u64(&mut data)?;
        let offset = take_u64(&mut data)?;
        let sha256: Sha256Digest = take(&mut data, 32)?.try_into().expect("32 bytes");
        let file = take_legacy_sized(&mut data)?;
        let file = String::from_utf8(file.to_vec())
            .map_err(|_| format!("record {seq}: file name is not UTF-8"))?;
        let line = take_legacy_sized(&mut data)?.to_vec();
        records.push((seq, Evidence { file, offset, line, sha256 }));
    }
    Ok(records)
}

fn take_u64(data: &mut &[u8]) -> Result<u64, String> {
    Ok(u64::from_le_bytes(take(data, 8)?.try_into().expect("8 bytes")))
}

fn take_legacy_sized<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = u32::from_le_bytes(take(data, 4)?.try_into().expect("4 bytes"));
    take(data, len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(file: &str, offset: u64, line: &[u8]) -> Evidence {
        Evidence::new(file, offset, line)
    }

    #[test]
    fn records_round_trip_with_and_without_text_across_files_and_hostile_bytes() {
        let lines = [
            (ev("/var/log/auth.log", 7, b"Failed password for \xff\x1b[2J"), true),
            (ev("/var/log/auth.log", 3, b"offset goes backwards"), false),
            (ev("journal", u64::MAX, b""), true),
            (ev("journal", 0, b"wraps around"), false),
            (ev("/var/log/auth.log.1", 1 << 40, &[b'x'; 300]), true),
        ];
        let mut chunk = LinesChunk::default();
        for (i, (e, text)) in lines.iter().enumerate() {
            let content = if *text { Content::Text(&e.line) } else { Content::Digest(&e.sha256) };
            chunk.push(10 + i as u64, &e.file, e.offset, content);
        }
        assert_eq!((chunk.first_seq, chunk.last_seq(), chunk.lines), (10, 14, 5));
        let records = decode_lines(&chunk.data, chunk.first_seq).unwrap();
        assert_eq!(records.len(), 5);
        for (i, (record, (e, text))) in records.iter().zip(&lines).enumerate() {
            assert_eq!(record.seq, 10 + i as u64);
            let digest = RecordDigest::Sha256(e.sha256);
            assert_eq!((&record.file, record.offset, record.digest), (&e.file, e.offset, digest));
            assert_eq!(record.text.as_deref(), text.then_some(&e.line[..]));
        }
        // The file is said once per run of lines, not per line.
        let named = chunk.data.windows(17).filter(|w| w == b"/var/log/auth.log").count();
        assert_eq!(named, 2, "said once, then once more after the journal's lines");
        chunk.clear();
        assert!(chunk.is_empty());
    }

    #[test]
    fn a_line_without_text_costs_about_its_digest() {
        let mut chunk = LinesChunk::default();
        let e = ev("/var/log/some/long/path/auth.log", 0, b"x");
        for seq in 0..1000 {
            chunk.push(seq, &e.file, seq * 110, Content::Digest(&e.sha256));
        }
        assert!(chunk.data.len() < 1000 * 36, "{} bytes", chunk.data.len());
    }

    #[test]
    fn a_line_recorded_elsewhere_costs_a_few_bytes_and_reads_back_as_a_reference() {
        let mut chunk = LinesChunk::default();
        let e = ev("/var/log/auth.log", 0, b"x");
        for seq in 0..1000 {
            let line = RecordedLine { incident: IncidentId(70_000 + seq as i64), seq: seq * 3 };
            let content =
                if seq == 500 { Content::Digest(&e.sha256) } else { Content::SameAs(line) };
            chunk.push(seq, &e.file, seq * 110, content);
        }
        assert!(chunk.data.len() < 1000 * 9, "{} bytes", chunk.data.len());
        let records = decode_lines(&chunk.data, 0).unwrap();
        assert_eq!(records.len(), 1000);
        for record in &records {
            let expected = if record.seq == 500 {
                RecordDigest::Sha256(e.sha256)
            } else {
                let incident = IncidentId(70_000 + record.seq as i64);
                RecordDigest::SameAs(RecordedLine { incident, seq: record.seq * 3 })
            };
            assert_eq!(
                (record.offset, record.digest, &record.text),
                (record.seq * 110, expected, &None)
            );
        }
    }

    #[test]
    fn a_reference_that_cannot_be_one_is_refused() {
        // Text and reference together.
        let both = [0, FLAG_FILE | FLAG_TEXT | FLAG_SAME_AS, 1, b'f', 0, 1, b'x'];
        assert!(decode_lines(&both, 0).unwrap_err().contains("both a text and a reference"));
        // Incident 0 and incidents beyond i64 are no rowids.
        let zero = [0, FLAG_FILE | FLAG_SAME_AS, 1, b'f', 0, 0, 4];
        assert!(decode_lines(&zero, 0).unwrap_err().contains("refers to incident 0"));
        let mut beyond = vec![0, FLAG_FILE | FLAG_SAME_AS, 1, b'f', 0];
        beyond.extend_from_slice(&[0xff; 9]);
        beyond.extend_from_slice(&[0x01, 4]);
        assert!(decode_lines(&beyond, 0).unwrap_err().contains("not an id"));
        // Cut inside the reference.
        let cut = [0, FLAG_FILE | FLAG_SAME_AS, 1, b'f', 0, 0x85];
        assert!(decode_lines(&cut, 0).unwrap_err().contains("truncated"));
    }

    #[test]
    fn chunks_are_stored_compressed_when_smaller_and_read_back_exactly() {
        let mut chunk = LinesChunk::default();
        for seq in 0..200u64 {
            let text = format!("Jan 15 00:00:{:02} server1 sshd[{}]: Failed password for invalid user u{seq} from 198.18.0.7 port {} ssh2", seq % 60, 4000 + seq, 30000 + seq);
            let e = ev("/var/log/auth.log", seq * 110, text.as_bytes());
            let content =
                if seq % 3 != 0 { Content::Text(&e.line) } else { Content::Digest(&e.sha256) };
            chunk.push(seq, &e.file, e.offset, content);
        }
        let mut scratch = Vec::new();
        let packed = stored(&chunk.data, &mut scratch).to_vec();
        assert_eq!(packed[0], ENCODING_LZ4);
        assert!(packed.len() * 2 < chunk.data.len(), "{} of {}", packed.len(), chunk.data.len());
        assert_eq!(decode_lines(&packed, 0).unwrap(), decode_lines(&chunk.data, 0).unwrap());

        // Incompressible: stored as it is.
        let mut tiny = LatestChunk::default();
        tiny.push(1, b"x");
        assert_eq!(stored(&tiny.data, &mut scratch), &tiny.data[..]);

        // Damage is an error, never a panic or a huge allocation.
        for cut in 1..packed.len() {
            assert!(decode_lines(&packed[..cut], 0).is_err(), "{cut}");
        }
        // Random damage to the compressed bytes: an error or some records,
        // never a panic (the test would abort).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut damaged = packed.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = 5 + (state % (damaged.len() as u64 - 5)) as usize;
                damaged[at] = (state >> 32) as u8;
            }
            let _ = decode_lines(&damaged, 0);
            let _ = decode_latest(&damaged);
        }
        let mut huge = packed.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_lines(&huge, 0).unwrap_err().contains("too large"));
        let mut short = packed.clone();
        short[1..5].copy_from_slice(&10u32.to_le_bytes());
        assert!(decode_lines(&short, 0).is_err());
    }

    #[test]
    fn latest_texts_round_trip() {
        let mut chunk = LatestChunk::default();
        chunk.push(500, b"a");
        chunk.push(501, b"");
        chunk.push(90_000, b"\x00\xff");
        assert_eq!((chunk.first_seq, chunk.last_seq, chunk.lines), (500, 90_000, 3));
        assert_eq!(
            decode_latest(&chunk.data).unwrap(),
            vec![(500, b"a".to_vec()), (501, vec![]), (90_000, b"\x00\xff".to_vec())]
        );
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let mut chunk = LinesChunk::default();
        let e = ev("f", 5, b"line");
        chunk.push(0, "f", 5, Content::Text(b"line"));
        chunk.push(1, "f", 9, Content::Digest(&e.sha256));
        for cut in 1..chunk.data.len() {
            match decode_lines(&chunk.data[..cut], 0) {
                // Cut between records: the ones before it.
                Ok(records) => assert!(records.len() < 2, "{cut}"),
                Err(err) => assert!(err.contains("truncated"), "{cut}: {err}"),
            }
        }
        assert!(decode_lines(&[], 0).unwrap_err().contains("empty"));
        assert!(decode_lines(&[9, 0], 0).unwrap_err().contains("encoding"));
        assert!(decode_lines(&[0, 0x80], 0).unwrap_err().contains("flags"));
        assert!(decode_lines(&[0, 0, 0], 0).unwrap_err().contains("no file"));
        let mut huge = vec![0, FLAG_TEXT | FLAG_FILE, 1, b'f', 0];
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x01);
        assert!(decode_lines(&huge, 0).is_err());
        let mut overlong = vec![0, FLAG_FILE];
        overlong.extend_from_slice(&[0xff; 11]);
        assert!(decode_lines(&overlong, 0).unwrap_err().contains("varint"));
        assert!(decode_latest(&[0, 5, 0, 0, 0]).unwrap_err().contains("repeated"));
        assert!(decode_latest(&[0, 5, 3, b'a']).unwrap_err().contains("truncated"));
    }

    #[test]
    fn legacy_records_round_trip_and_damage_is_an_error() {
        let a = ev("/var/log/auth.log", 7, b"Failed password for \xff\x1b[2J");
        let b = ev("journal", u64::MAX, b"");
        let mut chunk = LegacyChunk::default();
        chunk.push_ref(3, a.as_ref());
        chunk.push_ref(9, b.as_ref());
        assert_eq!((chunk.lines, chunk.first_seq, chunk.last_seq), (2, Some(3), 9));
        assert_eq!(decode_legacy(&chunk.data).unwrap(), vec![(3, a), (9, b)]);
        for cut in 1..chunk.data.len() {
            match decode_legacy(&chunk.data[..cut]) {
                Ok(records) => assert_eq!(records.len(), 1, "{cut}"),
                Err(err) => assert!(err.contains("truncated"), "{cut}: {err}"),
            }
        }
        let mut huge = chunk.data.clone();
        huge[48..52].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_legacy(&huge).is_err());
    }
}
