//! Captures as operators make them: tcpdump in a test's namespace, and a
//! pcap-to-pcapng conversion (tcpdump 4.99 writes only classic pcap, and
//! editcap is not installed here).

use std::{
    borrow::Cow,
    io::{self, BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};

use super::ChildGuard;
use crate::NetNs;

/// A running tcpdump writing a capture file; [`Tcpdump::stop`] ends it
/// cleanly (the file complete), dropping it kills it.
#[derive(Debug)]
pub struct Tcpdump(ChildGuard);

impl Tcpdump {
    /// Starts `tcpdump --immediate-mode -U -w file ARGS` in `ns` and returns
    /// once it is capturing (it says "listening on" when its socket is
    /// open). Immediate mode: without it, libpcap hands packets over a
    /// ring block at a time, and the block being filled when tcpdump is
    /// stopped is lost (150 of 1500 packets in a test here).
    pub fn start(ns: &NetNs, file: &Path, args: &[&str]) -> io::Result<Self> {
        let mut cmd: Command = ns.command("tcpdump");
        cmd.arg("--immediate-mode")
            .arg("-U")
            .arg("-w")
            .arg(file)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(&mut cmd)?;
        let stderr = guard
            .stderr()
            .ok_or_else(|| io::Error::other("tcpdump has no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(io::Error::other("tcpdump ended before capturing")),
            }
        }
        // Its later lines (the packet counts) must not block it on a full
        // pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self(guard))
    }

    /// Stops the capture with SIGINT (tcpdump writes out what it has) and
    /// waits for it, at most 5 s.
    pub fn stop(mut self) -> io::Result<()> {
        self.0.signal(libc::SIGINT)?;
        match self.0.wait_timeout(Duration::from_secs(5))? {
            Some(_) => Ok(()),
            None => Err(io::Error::other("tcpdump did not stop within 5 s")),
        }
    }
}

/// A classic pcap file's contents.
#[derive(Debug, Clone)]
pub struct Pcap {
    pub linktype: u32,
    pub snaplen: u32,
    /// (timestamp ns, original length, captured bytes).
    pub records: Vec<(u64, u32, Vec<u8>)>,
}

/// The records of a classic pcap file (little-endian, as tcpdump writes
/// on x86).
/// pcap-file's reader refuses records longer on the wire than the snap
/// length, which is every record of `tcpdump -s 96`: hence by hand.
pub fn read_pcap(bytes: &[u8]) -> io::Result<Pcap> {
    let bad = |what: &str| io::Error::other(format!("not a pcap file: {what}"));
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    if bytes.len() < 24 {
        return Err(bad("shorter than its header"));
    }
    let nanos = match u32_at(bytes, 0) {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        _ => return Err(bad("magic")),
    };
    let (snaplen, linktype) = (u32_at(bytes, 16), u32_at(bytes, 20));
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (secs, frac) = (
            u64::from(u32_at(bytes, at)),
            u64::from(u32_at(bytes, at + 4)),
        );
        let (incl, orig) = (u32_at(bytes, at + 8) as usize, u32_at(bytes, at + 12));
        let data = bytes
            .get(at + 16..at + 16 + incl)
            .ok_or_else(|| bad("a record past the end"))?;
        let ts = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        out.push((ts, orig, data.to_vec()));
        at += 16 + incl;
    }
    Ok(Pcap {
        linktype,
        snaplen,
        records: out,
    })
}

/// A pcapng file of one section with an interface per capture given
/// (classic pcap bytes each; timestamps in ns, `if_tsresol` 9), the
/// captures' packets interleaved in time order.
pub fn pcapng_from_pcaps(pcaps: &[&[u8]]) -> io::Result<Vec<u8>> {
    let mut writer = PcapNgWriter::new(Vec::new()).map_err(io::Error::other)?;
    let mut packets = Vec::new();
    for (i, bytes) in pcaps.iter().enumerate() {
        let Pcap {
            linktype,
            snaplen,
            records,
        } = read_pcap(bytes)?;
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::from(linktype),
                snaplen,
                options: vec![InterfaceDescriptionOption::IfTsResol(9)],
            })
            .map_err(io::Error::other)?;
        packets.extend(records.into_iter().map(|r| (i as u32, r)));
    }
    packets.sort_by_key(|(_, (ts, _, _))| *ts);
    for (interface_id, (ts, orig, data)) in packets {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id,
                timestamp: Duration::from_nanos(ts),
                original_len: orig,
                data: Cow::Owned(data),
                options: vec![],
            })
            .map_err(io::Error::other)?;
    }
    Ok(writer.into_inner())
}
