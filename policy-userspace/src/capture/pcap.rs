//! Classic pcap: a 24-byte file header, then records of a 16-byte header
//! and the captured bytes. Read here rather than with pcap-file, whose
//! reader refuses a record longer on the wire than the snap length (every
//! packet of `tcpdump -s 96`).

use std::io;

use super::input::Input;
use super::tally::{At, Tally};
use super::{Format, MAX_PACKET, RESYNC_WINDOW, Record};

const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// How far a record's time may be from the previous one's and still look
/// like the next record when resynchronising.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The format a file's first four bytes announce, if classic pcap.
pub(super) fn format(magic: [u8; 4]) -> Option<Format> {
    let (nanos, big_endian) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, true),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        _ => return None,
    };
    Some(Format::Pcap { nanos, big_endian })
}

pub(super) struct Reader {
    big_endian: bool,
    nanos: bool,
    snaplen: u32,
    link: u32,
    /// The number of the record being read (from 1).
    record: u64,
    /// The time of the last good record: damage seldom keeps it.
    last_ts: Option<u64>,
    ended: bool,
}

struct Header {
    ts_ns: u64,
    /// The sub-second field is below one second.
    frac_ok: bool,
    incl: u32,
    orig: u32,
}

impl Reader {
    pub(super) fn new(
        input: &mut Input,
        tally: &mut Tally,
        nanos: bool,
        big_endian: bool,
    ) -> io::Result<Self> {
        let mut reader = Self {
            big_endian,
            nanos,
            snaplen: 0,
            link: 0,
            record: 0,
            last_ts: None,
            ended: false,
        };
        if !input.fill(FILE_HEADER)? {
            tally.truncated_file(At {
                record: 0,
                offset: 0,
            });
            reader.ended = true;
            return Ok(reader);
        }
        let h = input.bytes();
        reader.snaplen = reader.u32_at(h, 16);
        // The upper 16 bits carry FCS information, not the link type.
        reader.link = reader.u32_at(h, 20) & 0xffff;
        input.consume(FILE_HEADER);
        Ok(reader)
    }

    pub(super) fn next(
        &mut self,
        input: &mut Input,
        tally: &mut Tally,
    ) -> io::Result<Option<Record>> {
        while !self.ended {
            self.record += 1;
            let at = At {
                record: self.record,
                offset: input.offset(),
            };
            if !input.fill(RECORD_HEADER)? {
                if !input.bytes().is_empty() {
                    tally.truncated_file(at);
                }
                break;
            }
            let h = self.header(input.bytes());
            if let Some(why) = self.damage(input, &h)? {
                tally.damaged(at, why);
                if !self.resync(input, tally, at)? {
                    break;
                }
                continue;
            }
            let len = RECORD_HEADER + h.incl as usize;
            if !input.fill(len)? {
                tally.truncated_file(at);
                break;
            }
            let data = &input.bytes()[RECORD_HEADER..len];
            let record = super::packet(tally, at, self.link, data, h.orig, h.ts_ns, 0);
            input.consume(len);
            self.last_ts = Some(h.ts_ns);
            if record.is_some() {
                return Ok(record);
            }
        }
        self.ended = true;
        Ok(None)
    }

    /// Why the record header at the start of `input` is damage, if it is.
    /// Lenient where Wireshark is: a header that only looks odd (longer than
    /// the snap length or than on the wire, a jump in time) is taken when the
    /// record after it is plausible.
    fn damage(&self, input: &mut Input, h: &Header) -> io::Result<Option<String>> {
        if h.incl as usize > MAX_PACKET {
            return Ok(Some(format!(
                "captured length {} is over {MAX_PACKET}",
                h.incl
            )));
        }
        if self.plausible(h, self.last_ts) {
            return Ok(None);
        }
        let next = RECORD_HEADER + h.incl as usize;
        if !input.fill(next + RECORD_HEADER)?
            || self.plausible(&self.header(&input.bytes()[next..]), Some(h.ts_ns))
        {
            return Ok(None);
        }
        Ok(Some(format!(
            "implausible header (captured {} of {} bytes, snap length {}, time {} ns) and no record after it",
            h.incl, h.orig, self.snaplen, h.ts_ns
        )))
    }

    /// Whether `h` looks like a record header written by a capture tool.
    fn plausible(&self, h: &Header, last_ts: Option<u64>) -> bool {
        let snaplen = if self.snaplen == 0 {
            MAX_PACKET as u32
        } else {
            self.snaplen
        };
        h.frac_ok
            && h.orig > 0
            && h.incl <= h.orig
            && h.orig as usize <= MAX_PACKET
            && h.incl <= snaplen
            && last_ts.is_none_or(|last| h.ts_ns.abs_diff(last) <= DAY_NS)
    }

    /// Skips to the next record header that is plausible and followed by a
    /// plausible one (or the end of the file), looking at most
    /// [`RESYNC_WINDOW`] bytes ahead; false when there is none.
    fn resync(&self, input: &mut Input, tally: &mut Tally, at: At) -> io::Result<bool> {
        for skip in 1..=RESYNC_WINDOW {
            if !input.fill(skip + RECORD_HEADER)? {
                break;
            }
            let h = self.header(&input.bytes()[skip..]);
            if h.incl == 0 || !self.plausible(&h, self.last_ts) {
                continue;
            }
            let next = skip + RECORD_HEADER + h.incl as usize;
            if input.fill(next + RECORD_HEADER)?
                && !self.plausible(&self.header(&input.bytes()[next..]), Some(h.ts_ns))
            {
                continue;
            }
            tally.skipped(at, skip as u64);
            input.consume(skip);
            return Ok(true);
        }
        tally.give_up(input, at, "record");
        Ok(false)
    }

    fn header(&self, b: &[u8]) -> Header {
        let sec = u64::from(self.u32_at(b, 0));
        let frac = u64::from(self.u32_at(b, 4));
        let (unit, limit) = if self.nanos {
            (1, 1_000_000_000)
        } else {
            (1_000, 1_000_000)
        };
        Header {
            ts_ns: sec * 1_000_000_000 + frac * unit,
            frac_ok: frac < limit,
            incl: self.u32_at(b, 8),
            orig: self.u32_at(b, 12),
        }
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }
}
