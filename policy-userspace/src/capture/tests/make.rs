//! Capture files built byte by byte (the damaged ones cannot be written by
//! a library) and read back.

use std::io::Cursor;

use crate::capture::{Capture, Record, Stats};

/// A classic pcap file.
pub(super) struct Pcap {
    big_endian: bool,
    nanos: bool,
    pub(super) bytes: Vec<u8>,
}

impl Pcap {
    pub(super) fn new(big_endian: bool, nanos: bool, snaplen: u32, link: u32) -> Self {
        let mut pcap = Self {
            big_endian,
            nanos,
            bytes: Vec::new(),
        };
        pcap.put32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        pcap.put16(2);
        pcap.put16(4);
        pcap.put32(0);
        pcap.put32(0);
        pcap.put32(snaplen);
        pcap.put32(link);
        pcap
    }

    /// A record at `sec` seconds and `frac` micro- or nanoseconds.
    pub(super) fn record(mut self, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> Self {
        self.header(sec, frac, data.len() as u32, orig_len);
        self.bytes.extend_from_slice(data);
        self
    }

    pub(super) fn header(&mut self, sec: u32, frac: u32, incl: u32, orig_len: u32) {
        for v in [sec, frac, incl, orig_len] {
            self.put32(v);
        }
    }

    /// A record at `i` milliseconds past 1.7e9 s.
    pub(super) fn at_ms(self, i: u32, data: &[u8]) -> Self {
        let frac = (i % 1000) * if self.nanos { 1_000_000 } else { 1_000 };
        self.record(1_700_000_000 + i / 1000, frac, data, data.len() as u32)
    }

    fn put32(&mut self, v: u32) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    fn put16(&mut self, v: u16) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }
}

/// A pcapng file, block by block, in one byte order per section.
pub(super) struct Ng {
    big_endian: bool,
    pub(super) bytes: Vec<u8>,
}

impl Ng {
    pub(super) fn new() -> Self {
        Self {
            big_endian: false,
            bytes: Vec::new(),
        }
    }

    /// A section header block, starting a section of that byte order.
    pub(super) fn shb(mut self, big_endian: bool) -> Self {
        self.big_endian = big_endian;
        let mut body = self.u32s(&[0x1a2b_3c4d]);
        body.extend(self.u16s(&[1, 0]));
        body.extend([0xff; 8]);
        self.block(0x0a0d_0d0a, &body)
    }

    /// An interface description block, with `if_tsresol` if given.
    pub(super) fn idb(self, link: u16, snaplen: u32, tsresol: Option<u8>) -> Self {
        let mut body = self.u16s(&[link, 0]);
        body.extend(self.u32s(&[snaplen]));
        if let Some(tsresol) = tsresol {
            body.extend(self.u16s(&[9, 1]));
            body.extend([tsresol, 0, 0, 0]);
            body.extend(self.u16s(&[0, 0]));
        }
        self.block(1, &body)
    }

    pub(super) fn epb(self, interface: u32, ticks: u64, data: &[u8], orig_len: u32) -> Self {
        let mut body = self.u32s(&[
            interface,
            (ticks >> 32) as u32,
            ticks as u32,
            data.len() as u32,
            orig_len,
        ]);
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    pub(super) fn spb(self, data: &[u8], orig_len: u32) -> Self {
        let mut body = self.u32s(&[orig_len]);
        body.extend_from_slice(data);
        self.block(3, &body)
    }

    /// A block of `type_` holding `body` (padded to 32 bits).
    pub(super) fn block(mut self, type_: u32, body: &[u8]) -> Self {
        let len = 12 + body.len().next_multiple_of(4);
        let head = self.u32s(&[type_, len as u32]);
        self.bytes.extend(head);
        self.bytes.extend_from_slice(body);
        self.bytes
            .resize(self.bytes.len() + len - 12 - body.len(), 0);
        let tail = self.u32s(&[len as u32]);
        self.bytes.extend(tail);
        self
    }

    fn u32s(&self, vs: &[u32]) -> Vec<u8> {
        vs.iter()
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }

    fn u16s(&self, vs: &[u16]) -> Vec<u8> {
        vs.iter()
            .flat_map(|v| {
                if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }
}

/// An Ethernet frame of `len` bytes whose payload bytes are all `n`.
pub(super) fn frame(n: u8, len: usize) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    frame.resize(len.max(14), n);
    frame
}

/// Every record of `bytes`, and the stats at the end; no I/O error.
pub(super) fn read(bytes: Vec<u8>) -> (Vec<Record>, Stats) {
    let mut capture = Capture::from_reader(Cursor::new(bytes)).expect("a capture");
    let records: Vec<Record> = capture.by_ref().collect();
    assert!(capture.error().is_none(), "{:?}", capture.error());
    (records, capture.stats().clone())
}
