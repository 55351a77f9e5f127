//! Splits a byte stream (a file, stdin) into lines with bounded memory.
//!
//! [`LineReader`] reads in large blocks and finds line ends with `memchr`.
//! A line longer than the limit is never buffered whole: its bytes are
//! discarded as they arrive and it is reported as [`Line::TooLong`], so a
//! megabyte line (or a file without a single newline) costs one buffer.
//! Every line comes with its 1-based number and the byte offset of its
//! start, so callers can cite it and resume after it.

use std::io::{self, Read};

/// Bytes read per `read` call (and the least the buffer holds).
pub const READ_BLOCK: usize = 256 * 1024;

/// One line of input, without its `\n` (a `\r` before it is kept: the
/// parser strips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Text {
        bytes: &'a [u8],
        /// 1-based line number.
        number: u64,
        /// Byte offset of the line's first byte.
        offset: u64,
        /// False for a last line without `\n` (a file still being written,
        /// or truncated).
        terminated: bool,
    },
    /// A line longer than the limit: skipped, its bytes discarded.
    TooLong { number: u64, offset: u64, len: u64, terminated: bool },
}

impl Line<'_> {
    pub fn number(&self) -> u64 {
        match self {
            Line::Text { number, .. } | Line::TooLong { number, .. } => *number,
        }
    }

    pub fn offset(&self) -> u64 {
        match self {
            Line::Text { offset, .. } | Line::TooLong { offset, .. } => *offset,
        }
    }

    /// The offset just after this line (and its `\n`).
    pub fn end_offset(&self) -> u64 {
        match self {
            Line::Text { bytes, offset, terminated, .. } => {
                offset + bytes.len() as u64 + u64::from(*terminated)
            }
            Line::TooLong { offset, len, terminated, .. } => offset + len + u64::from(*terminated),
        }
    }
}

/// Reads lines from `R` with at most `max_line_len` bytes per line.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    max_line_len: usize,
    next_number: u64,
    /// Input offset of `buf[start]`.
    offset: u64,
}

impl<R: Read> LineReader<R> {
    /// A reader at the start of `inner`.
    pub fn new(inner: R, max_line_len: usize) -> Self {
        Self::resume(inner, max_line_len, 0, 1)
    }

    /// A reader whose `inner` is already positioned at byte `offset`, the
    /// start of line `line_number` (a tailer resuming from its cursor).
    pub fn resume(inner: R, max_line_len: usize, offset: u64, line_number: u64) -> Self {
        let capacity = READ_BLOCK.max(max_line_len.saturating_add(2));
        LineReader {
            inner,
            buf: vec![0; capacity],
            start: 0,
            end: 0,
            eof: false,
            max_line_len,
            next_number: line_number,
            offset,
        }
    }

    /// The offset of the next unread line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let mut scan_from = self.start;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[scan_from..self.end]) {
                let newline = scan_from + pos;
                let line_start = self.start;
                let len = newline - line_start;
                let (number, offset) = self.advance(len as u64, true);
                self.start = newline + 1;
                if len > self.max_line_len {
                    return Ok(Some(Line::TooLong {
                        number,
                        offset,
                        len: len as u64,
                        terminated: true,
                    }));
                }
                return Ok(Some(Line::Text {
                    bytes: &self.buf[line_start..newline],
                    number,
                    offset,
                    terminated: true,
                }));
            }
            scan_from = self.end;
            let pending = self.end - self.start;
            if pending > self.max_line_len {
                return self.skip_rest_of_long_line().map(Some);
            }
            if self.eof {
                if pending == 0 {
                    return Ok(None);
                }
                let line_start = self.start;
                let (number, offset) = self.advance(pending as u64, false);
                self.start = self.end;
                return Ok(Some(Line::Text {
                    bytes: &self.buf[line_start..self.end],
                    number,
                    offset,
                    terminated: false,
                }));
            }
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                scan_from -= self.start;
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.fill()?;
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// Consumes a line of `len` bytes: returns its number and offset.
    fn advance(&mut self, len: u64, terminated: bool) -> (u64, u64) {
        let number = self.next_number;
        let offset = self.offset;
        self.next_number += 1;
        self.offset += len + u64::from(terminated);
        (number, offset)
    }

    /// The buffered start of a line is already over the limit: drop it
    /// and everything up to the next `\n` without keeping it.
    fn skip_rest_of_long_line(&mut self) -> io::Result<Line<'static>> {
        let mut len = (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        loop {
            if self.eof {
                let (number, offset) = self.advance(len, false);
                return Ok(Line::TooLong { number, offset, len, terminated: false });
            }
            let n = self.fill()?;
            if n == 0 {
                self.eof = true;
                continue;
            }
            match memchr::memchr(b'\n', &self.buf[..n]) {
                Some(pos) => {
                    len += pos as u64;
                    let (number, offset) = self.advance(len, true);
                    self.start = pos + 1;
                    return Ok(Line::TooLong { number, offset, len, terminated: true });
                }
                None => {
                    len += n as u64;
                    self.end = 0;
                }
            }
        }
    }

    /// Reads once into the free tail of the buffer.
    fn fill(&mut self) -> io::Result<usize> {
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads back the line of `file` starting at `offset`, without its `\n`,
/// into `buf` (at most `max + 1` bytes of it): the evidence of an event
/// the parser released after its line had gone by (a pending failure
/// resolved at the end of its connection).
pub fn read_line_at(
    file: &std::fs::File,
    offset: u64,
    max: usize,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    // sshd lines are short: read a little, and more only if needed.
    let mut want = 512.min(max + 1);
    loop {
        buf.clear();
        buf.resize(want, 0);
        let n = file.read_at(buf, offset)?;
        buf.truncate(n);
        if let Some(end) = memchr::memchr(b'\n', buf) {
            buf.truncate(end);
            return Ok(());
        }
        if n < want || want > max {
            return Ok(());
        }
        want = (want * 8).min(max + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `chunk` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Text(Vec<u8>, u64, u64, bool),
        Long(u64, u64, u64, bool),
    }

    fn collect(data: &[u8], max: usize, chunk: usize) -> Vec<Got> {
        let mut r = LineReader::new(Trickle { data, chunk }, max);
        let mut got = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            let end = line.end_offset();
            got.push(match line {
                Line::Text { bytes, number, offset, terminated } => {
                    Got::Text(bytes.to_vec(), number, offset, terminated)
                }
                Line::TooLong { number, offset, len, terminated } => {
                    Got::Long(number, offset, len, terminated)
                }
            });
            assert_eq!(end, r.offset());
        }
        assert_eq!(r.offset(), data.len() as u64);
        got
    }

    #[test]
    fn numbers_offsets_and_a_last_line_without_newline() {
        for chunk in [1, 3, 1 << 20] {
            let got = collect(b"ab\n\ncd\r\nef", 100, chunk);
            assert_eq!(
                got,
                vec![
                    Got::Text(b"ab".to_vec(), 1, 0, true),
                    Got::Text(b"".to_vec(), 2, 3, true),
                    Got::Text(b"cd\r".to_vec(), 3, 4, true),
                    Got::Text(b"ef".to_vec(), 4, 8, false),
                ],
                "chunk {chunk}"
            );
        }
        assert!(collect(b"", 100, 7).is_empty());
    }

    #[test]
    fn long_lines_are_skipped_and_counted_without_buffering() {
        let mut data = b"ok\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 3 * READ_BLOCK + 17));
        data.extend(b"\nafter\n");
        data.extend(std::iter::repeat_n(b'y', 2 * READ_BLOCK));
        for chunk in [4096, 1 << 20] {
            let got = collect(&data, 10, chunk);
            assert_eq!(got.len(), 4);
            assert_eq!(got[0], Got::Text(b"ok".to_vec(), 1, 0, true));
            assert_eq!(got[1], Got::Long(2, 3, 3 * READ_BLOCK as u64 + 17, true));
            assert_eq!(got[2], Got::Text(b"after".to_vec(), 3, 3 * READ_BLOCK as u64 + 21, true));
            assert_eq!(
                got[3],
                Got::Long(4, 3 * READ_BLOCK as u64 + 27, 2 * READ_BLOCK as u64, false)
            );
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_kept() {
        let got = collect(b"12345\n123456\n", 5, 2);
        assert_eq!(got[0], Got::Text(b"12345".to_vec(), 1, 0, true));
        assert_eq!(got[1], Got::Long(2, 6, 6, true));
    }

    #[test]
    fn resume_continues_numbering() {
        let mut r = LineReader::resume(&b"x\ny\n"[..], 10, 100, 7);
        let first = r.next_line().unwrap().unwrap();
        assert_eq!((first.number(), first.offset()), (7, 100));
        assert_eq!(r.offset(), 102);
    }

    #[test]
    fn read_errors_are_returned() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut r = LineReader::new(Broken, 10);
        assert_eq!(r.next_line().unwrap_err().to_string(), "disk on fire");
    }
}
