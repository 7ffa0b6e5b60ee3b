//! The bytes of a capture with lookahead: record and block headers are
//! checked before they are trusted, and resynchronisation after damage looks
//! at the bytes ahead, so the readers need more than `BufRead::fill_buf`'s
//! "whatever is buffered". One buffer, filled by large reads, also spares
//! the copy through a `BufReader`.

use std::io::{self, Read};

/// What one read asks the source for (and the buffer's starting size).
const CHUNK: usize = 1 << 20;

pub(super) struct Input {
    source: Box<dyn Read>,
    buf: Vec<u8>,
    /// `buf[pos..end]` holds the bytes not consumed yet.
    pos: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[pos]`.
    offset: u64,
}

impl Input {
    pub(super) fn new(source: Box<dyn Read>) -> Self {
        Self {
            source,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            offset: 0,
        }
    }

    /// Makes at least `n` bytes available (the caller bounds `n`); false when
    /// the source ends first (what there is stays available).
    pub(super) fn fill(&mut self, n: usize) -> io::Result<bool> {
        while self.end - self.pos < n {
            if self.eof {
                return Ok(false);
            }
            if self.pos + n > self.buf.len() {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
                if n > self.buf.len() {
                    self.buf.resize(n.next_multiple_of(CHUNK), 0);
                }
            }
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The bytes available now (see [`Input::fill`]).
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.pos += n;
        self.offset += n as u64;
    }

    /// File offset of the first available byte.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }
}
