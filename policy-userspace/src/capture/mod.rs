//! Reading what capture tools write: classic pcap (either byte order,
//! microsecond or nanosecond timestamps, any snap length) and pcapng (several
//! sections and interfaces), as Ethernet frames for [`crate::cli`]'s replay.
//!
//! Captures met in practice are cut short (a full disk, a killed tcpdump),
//! damaged, or taken with `tcpdump -i any` (Linux cooked headers, not
//! Ethernet). So reading never stops at a problem before the end: damaged
//! records are skipped (resynchronising on the next plausible one), packets
//! that have no Ethernet form are skipped, and both are counted in [`Stats`]
//! and logged once. Only an I/O error ends the iteration early
//! ([`Capture::error`]).

mod input;
mod interface;
mod link;
mod pcap;
mod pcapng;
mod tally;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use input::Input;
use tally::{At, Tally};

/// The longest packet read (Wireshark's and libpcap's limit for Ethernet):
/// a longer captured length is damage, and no length field allocates more.
pub const MAX_PACKET: usize = 262_144;
/// The longest pcapng block read.
pub const MAX_BLOCK: usize = 16 << 20;
/// How far past a damaged record or block the next good one is looked for.
const RESYNC_WINDOW: usize = 1 << 20;

/// One packet of a capture, as an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was captured, in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The Ethernet frame (made for non-Ethernet link types, see `link.rs`),
    /// possibly shorter than on the wire (snap length).
    pub frame: Vec<u8>,
    /// Its length on the wire as an Ethernet frame: the captured original
    /// length, less a cooked header, plus an Ethernet header; never less
    /// than `frame.len()`.
    pub orig_len: u32,
    /// The pcapng interface it was captured on; 0 in a classic pcap.
    pub interface: u32,
}

/// The kind of file being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    Pcap { nanos: bool, big_endian: bool },
    PcapNg,
}

/// What reading met so far (all of the file once the iteration has ended).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Records returned by the iteration.
    pub records: u64,
    /// Records or blocks skipped because damaged.
    pub damaged: u64,
    /// Packets skipped because they have no Ethernet form (link type, or a
    /// cooked header whose protocol is not an Ethertype).
    pub unsupported: u64,
    /// Records returned that were captured shorter than on the wire.
    pub truncated_packets: u64,
    /// The file ends inside a record or block.
    pub truncated_file: bool,
    /// Bytes skipped while looking for the next record after damage.
    pub skipped_bytes: u64,
}

#[derive(thiserror::Error, Debug)]
pub enum CaptureError {
    #[error("cannot open the capture {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a pcap or pcapng capture: {}", describe_start(start))]
    NotACapture {
        /// The first bytes of the file (up to where the magic was looked for).
        start: Vec<u8>,
    },
    #[error("reading the capture")]
    Io(#[source] io::Error),
}

fn describe_start(start: &[u8]) -> String {
    if start.is_empty() {
        return "the file is empty".to_owned();
    }
    let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "it starts with {} (pcap magic is a1b2c3d4 or a1b23c4d in either byte order, pcapng 0a0d0d0a)",
        hex.join(" ")
    )
}

enum Reader {
    Pcap(pcap::Reader),
    PcapNg(pcapng::Reader),
}

/// A capture being read: iterate it for its [`Record`]s.
pub struct Capture {
    input: Input,
    reader: Reader,
    format: Format,
    tally: Tally,
    error: Option<CaptureError>,
    done: bool,
}

impl Capture {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(file)
    }

    /// Reads the file header from `source` (which need not seek: a pipe does).
    pub fn from_reader(source: impl Read + 'static) -> Result<Self, CaptureError> {
        let mut input = Input::new(Box::new(source));
        let mut tally = Tally::default();
        input.fill(4).map_err(CaptureError::Io)?;
        let start = input.bytes();
        let start = start[..start.len().min(4)].to_vec();
        let magic: Option<[u8; 4]> = start.as_slice().try_into().ok();
        let (reader, format) = match magic {
            Some(pcapng::SHB_TYPE) => (
                Reader::PcapNg(pcapng::Reader::new(&mut input, &mut tally)?),
                Format::PcapNg,
            ),
            Some(magic)
                if let Some(format @ Format::Pcap { nanos, big_endian }) = pcap::format(magic) =>
            {
                let reader = pcap::Reader::new(&mut input, &mut tally, nanos, big_endian);
                (Reader::Pcap(reader.map_err(CaptureError::Io)?), format)
            }
            _ => return Err(CaptureError::NotACapture { start }),
        };
        Ok(Self {
            input,
            reader,
            format,
            tally,
            error: None,
            done: false,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn stats(&self) -> &Stats {
        &self.tally.stats
    }

    /// The I/O error that ended the iteration, if one did.
    pub fn error(&self) -> Option<&CaptureError> {
        self.error.as_ref()
    }
}

impl Iterator for Capture {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.done {
            return None;
        }
        let next = match &mut self.reader {
            Reader::Pcap(r) => r.next(&mut self.input, &mut self.tally),
            Reader::PcapNg(r) => r.next(&mut self.input, &mut self.tally),
        };
        match next {
            Ok(Some(record)) => return Some(record),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(
                    offset = self.input.offset(),
                    "capture: reading stopped: {e}"
                );
                self.error = Some(CaptureError::Io(e));
            }
        }
        self.done = true;
        None
    }
}

/// The record of one captured packet, or `None` (counted) when it has no
/// Ethernet form.
fn packet(
    tally: &mut Tally,
    at: At,
    link: u32,
    data: &[u8],
    orig_len: u32,
    ts_ns: u64,
    interface: u32,
) -> Option<Record> {
    match link::to_ethernet(link, data, orig_len) {
        Ok((frame, orig_len)) => {
            if frame.len() < orig_len as usize {
                tally.truncated_packet(at, data.len(), orig_len);
            }
            tally.stats.records += 1;
            Some(Record {
                ts_ns,
                frame,
                orig_len,
                interface,
            })
        }
        Err(why) => {
            tally.not_ethernet(at, why);
            None
        }
    }
}
