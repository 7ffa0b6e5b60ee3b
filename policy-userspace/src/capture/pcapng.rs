//! pcapng: blocks framed here (type, total length, body, the length again)
//! so that a damaged one can be skipped, and parsed by pcap-file.

use std::io;

use pcap_file::pcapng::{Block, PcapNgParser};

use super::input::Input;
use super::interface::Interface;
use super::tally::{At, Tally};
use super::{CaptureError, MAX_BLOCK, MAX_PACKET, RESYNC_WINDOW, Record};

/// The section header block's type, also a pcapng file's first four bytes.
pub(super) const SHB_TYPE: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
/// Block types of the pcapng specification: when resynchronising, a block
/// must be one of these to be believed.
const KNOWN: [u32; 13] = [
    SHB,
    IDB,
    PB,
    SPB,
    4,
    5,
    EPB,
    7,
    8,
    9,
    0x0a,
    0x0bad,
    0x4000_0bad,
];
/// Type, total length, and the trailing copy of the length.
const FRAMING: usize = 12;
/// An SHB's framing, byte-order magic, versions and section length.
const MIN_SHB: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Big,
    Little,
}

impl Order {
    /// The byte order an SHB's byte-order magic says.
    fn of_shb(bom: &[u8]) -> Option<Self> {
        match bom {
            [0x1a, 0x2b, 0x3c, 0x4d] => Some(Self::Big),
            [0x4d, 0x3c, 0x2b, 0x1a] => Some(Self::Little),
            _ => None,
        }
    }

    fn u32_at(self, b: &[u8], at: usize) -> u32 {
        let bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Self::Big => u32::from_be_bytes(bytes),
            Self::Little => u32::from_le_bytes(bytes),
        }
    }
}

pub(super) struct Reader {
    order: Order,
    /// pcap-file's parser for the current section (its byte order).
    parser: PcapNgParser,
    interfaces: Vec<Interface>,
    /// The number of the block being read (from 1).
    block: u64,
    /// For simple packet blocks, which have no timestamp.
    last_ts: u64,
    ended: bool,
}

impl Reader {
    pub(super) fn new(input: &mut Input, tally: &mut Tally) -> Result<Self, CaptureError> {
        let complete = input.fill(FRAMING).map_err(CaptureError::Io)?;
        let bytes = input.bytes();
        let order = match bytes.get(8..12).map(Order::of_shb) {
            Some(Some(order)) => order,
            Some(None) => {
                return Err(CaptureError::NotACapture {
                    start: bytes[..FRAMING].to_vec(),
                });
            }
            None => {
                tally.truncated_file(At {
                    record: 1,
                    offset: 0,
                });
                Order::Little
            }
        };
        let parser = section_parser(order).map_err(|e| CaptureError::Io(io::Error::other(e)))?;
        Ok(Self {
            order,
            parser,
            interfaces: Vec::new(),
            block: 0,
            last_ts: 0,
            ended: !complete,
        })
    }

    pub(super) fn next(
        &mut self,
        input: &mut Input,
        tally: &mut Tally,
    ) -> io::Result<Option<Record>> {
        while !self.ended {
            let at = At {
                record: self.block + 1,
                offset: input.offset(),
            };
            let framed = match self.frame(input)? {
                Framed::Block(len, order) => (len, order),
                Framed::End => break,
                Framed::Cut => {
                    tally.truncated_file(at);
                    break;
                }
                Framed::Damaged(why) => {
                    tally.damaged(at, why);
                    if !self.resync(input, tally, at)? {
                        break;
                    }
                    continue;
                }
            };
            let (len, order) = framed;
            self.block += 1;
            let record = self.block_of(&input.bytes()[..len], order, tally, at);
            input.consume(len);
            if record.is_some() {
                return Ok(record);
            }
        }
        self.ended = true;
        Ok(None)
    }

    /// Frames the block at the start of `input`.
    fn frame(&self, input: &mut Input) -> io::Result<Framed> {
        if !input.fill(8)? {
            return Ok(if input.bytes().is_empty() {
                Framed::End
            } else {
                Framed::Cut
            });
        }
        let mut order = self.order;
        if input.bytes()[..4] == SHB_TYPE {
            if !input.fill(FRAMING)? {
                return Ok(Framed::Cut);
            }
            match Order::of_shb(&input.bytes()[8..12]) {
                Some(o) => order = o,
                None => {
                    return Ok(Framed::Damaged(
                        "section header with no byte-order magic".to_owned(),
                    ));
                }
            }
        }
        let b = input.bytes();
        let (type_, len) = (order.u32_at(b, 0), order.u32_at(b, 4) as usize);
        let min = if type_ == SHB { MIN_SHB } else { FRAMING };
        if len % 4 != 0 || !(min..=MAX_BLOCK).contains(&len) {
            return Ok(Framed::Damaged(format!(
                "block of type {type_:#x} has length {len}"
            )));
        }
        if !input.fill(len)? {
            return Ok(Framed::Cut);
        }
        let trailer = order.u32_at(input.bytes(), len - 4) as usize;
        if trailer != len {
            return Ok(Framed::Damaged(format!(
                "block of type {type_:#x} has length {len} and trailing length {trailer}"
            )));
        }
        Ok(Framed::Block(len, order))
    }

    /// Whether a block whose framing agrees starts `at` bytes into `input`,
    /// and if so its length.
    fn frames_at(&self, input: &mut Input, at: usize) -> io::Result<Option<usize>> {
        if !input.fill(at + FRAMING)? {
            return Ok(None);
        }
        let b = &input.bytes()[at..];
        let order = if b[..4] == SHB_TYPE {
            Order::of_shb(&b[8..12])
        } else {
            Some(self.order)
        };
        let Some(order) = order else { return Ok(None) };
        let (type_, len) = (order.u32_at(b, 0), order.u32_at(b, 4) as usize);
        if !KNOWN.contains(&type_) || len % 4 != 0 || !(FRAMING..=MAX_BLOCK).contains(&len) {
            return Ok(None);
        }
        if !input.fill(at + len)? {
            return Ok(None);
        }
        Ok((order.u32_at(input.bytes(), at + len - 4) as usize == len).then_some(len))
    }

    /// Skips to the next block whose framing agrees and that is followed by
    /// another (or by the end of the file), looking at most
    /// [`RESYNC_WINDOW`] bytes ahead; false when there is none.
    fn resync(&self, input: &mut Input, tally: &mut Tally, at: At) -> io::Result<bool> {
        for skip in 1..=RESYNC_WINDOW {
            if !input.fill(skip + FRAMING)? {
                break;
            }
            let Some(len) = self.frames_at(input, skip)? else {
                continue;
            };
            let next = skip + len;
            let ends = !input.fill(next + 1)?;
            if ends || self.frames_at(input, next)?.is_some() {
                tally.skipped(at, skip as u64);
                input.consume(skip);
                return Ok(true);
            }
        }
        tally.give_up(input, at, "block");
        Ok(false)
    }

    /// Takes in one well-framed block: the record of a packet block,
    /// section and interface changes, nothing for other blocks.
    fn block_of(
        &mut self,
        bytes: &[u8],
        order: Order,
        tally: &mut Tally,
        at: At,
    ) -> Option<Record> {
        match order.u32_at(bytes, 0) {
            SHB => {
                self.section(bytes, order, tally, at);
                None
            }
            IDB => {
                let interface = match self.parser.next_block(bytes) {
                    Ok((_, Block::InterfaceDescription(idb))) => Interface::of(&idb),
                    other => {
                        tally.damaged(
                            at,
                            format!(
                                "interface description {}: {}",
                                self.interfaces.len(),
                                error(other)
                            ),
                        );
                        Interface::damaged()
                    }
                };
                self.interfaces.push(interface);
                None
            }
            EPB | PB | SPB => self.packet(bytes, tally, at),
            _ => None,
        }
    }

    /// A new section: its byte order, no interfaces yet.
    fn section(&mut self, bytes: &[u8], order: Order, tally: &mut Tally, at: At) {
        self.order = order;
        self.interfaces.clear();
        match PcapNgParser::new(bytes) {
            Ok((_, parser)) => self.parser = parser,
            Err(e) => {
                // Its options are what pcap-file refuses; the section's
                // blocks are still readable.
                tally.damaged(at, format!("section header: {e}"));
                match section_parser(order) {
                    Ok(parser) => self.parser = parser,
                    Err(e) => tally.damaged(at, format!("section header: {e}")),
                }
            }
        }
    }

    fn packet(&mut self, bytes: &[u8], tally: &mut Tally, at: At) -> Option<Record> {
        let (interface, ticks, data, orig_len) = match self.parser.next_block(bytes) {
            Ok((_, Block::EnhancedPacket(epb))) => {
                // pcap-file keeps the raw timestamp units in a Duration's
                // nanoseconds, whatever `if_tsresol` says.
                let ticks = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                (epb.interface_id, Some(ticks), epb.data, epb.original_len)
            }
            Ok((_, Block::Packet(pb))) => {
                // pcap-file reads the two 32-bit halves (high first) as one
                // 64-bit number, which is right in big-endian sections only.
                let ticks = if self.order == Order::Little {
                    pb.timestamp.rotate_left(32)
                } else {
                    pb.timestamp
                };
                (
                    u32::from(pb.interface_id),
                    Some(ticks),
                    pb.data,
                    pb.original_len,
                )
            }
            Ok((_, Block::SimplePacket(spb))) => (0, None, spb.data, spb.original_len),
            other => {
                tally.damaged(at, format!("packet block: {}", error(other)));
                return None;
            }
        };
        let Some(iface) = self.interfaces.get(interface as usize) else {
            tally.damaged(
                at,
                format!(
                    "packet of interface {interface}; the section has {}",
                    self.interfaces.len()
                ),
            );
            return None;
        };
        let Some(link) = iface.link else {
            tally.damaged(
                at,
                format!("packet of interface {interface}, whose description was damaged"),
            );
            return None;
        };
        let data = match ticks {
            Some(_) => &data[..],
            // A simple packet block's data is padded and holds at most the
            // snap length of the packet.
            None => {
                let snaplen = if iface.snaplen == 0 {
                    u32::MAX
                } else {
                    iface.snaplen
                };
                &data[..data.len().min(orig_len.min(snaplen) as usize)]
            }
        };
        if data.len() > MAX_PACKET {
            tally.damaged(
                at,
                format!("captured length {} is over {MAX_PACKET}", data.len()),
            );
            return None;
        }
        if let Some(ticks) = ticks {
            self.last_ts = iface.ts_ns(ticks);
        }
        super::packet(tally, at, link, data, orig_len, self.last_ts, interface)
    }
}

enum Framed {
    /// A block of this length, in this byte order, is available.
    Block(usize, Order),
    /// The file ends here.
    End,
    /// The file ends inside a block.
    Cut,
    Damaged(String),
}

/// A parser for a section of `order` whose header block pcap-file could not
/// read (or has not seen yet): a minimal header block of that byte order.
fn section_parser(order: Order) -> Result<PcapNgParser, pcap_file::PcapError> {
    let mut shb = Vec::with_capacity(MIN_SHB);
    let put = |shb: &mut Vec<u8>, v: u32| match order {
        Order::Big => shb.extend_from_slice(&v.to_be_bytes()),
        Order::Little => shb.extend_from_slice(&v.to_le_bytes()),
    };
    put(&mut shb, SHB);
    put(&mut shb, MIN_SHB as u32);
    put(&mut shb, 0x1a2b_3c4d);
    // Major version 1, minor 0 (in order), then a section length of -1.
    put(&mut shb, if order == Order::Big { 0x0001_0000 } else { 1 });
    put(&mut shb, u32::MAX);
    put(&mut shb, u32::MAX);
    put(&mut shb, MIN_SHB as u32);
    PcapNgParser::new(&shb).map(|(_, parser)| parser)
}

fn error(parsed: Result<(&[u8], Block<'_>), pcap_file::PcapError>) -> String {
    match parsed {
        Ok(_) => "not the block its type says".to_owned(),
        Err(e) => e.to_string(),
    }
}
