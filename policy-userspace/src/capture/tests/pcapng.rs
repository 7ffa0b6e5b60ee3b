//! pcapng: interfaces, timestamp resolutions, sections, damaged blocks.

use std::borrow::Cow;
use std::io::Cursor;
use std::time::Duration;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::{DataLink, Endianness};

use super::make::{Ng, frame, read};
use crate::capture::{Capture, CaptureError, Format};

/// An SLL2 header (unicast to us, from `MAC`) before an IPv4 packet.
fn sll2_ipv4() -> (Vec<u8>, Vec<u8>) {
    let mac = [0x52, 0x54, 0, 1, 2, 3];
    let ip = {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend([7; 8]);
        p
    };
    let mut cooked = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    cooked.extend(mac);
    cooked.extend([0, 0]);
    cooked.extend_from_slice(&ip);
    let mut ethernet = vec![0; 6];
    ethernet.extend(mac);
    ethernet.extend([0x08, 0x00]);
    ethernet.extend_from_slice(&ip);
    (cooked, ethernet)
}

/// Two interfaces, one of nanosecond timestamps and Ethernet, one of the
/// default microseconds and `tcpdump -i any`'s SLL2; written by pcap-file.
#[test]
fn two_interfaces_written_by_pcap_file() {
    let (cooked, converted) = sll2_ipv4();
    let eth = frame(1, 60);
    let mut writer = PcapNgWriter::with_endianness(Vec::new(), Endianness::Little).unwrap();
    let mut nanos = InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65535);
    nanos.options.push(InterfaceDescriptionOption::IfTsResol(9));
    writer.write_pcapng_block(nanos).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock::new(
            DataLink::LINUX_SLL2,
            262_144,
        ))
        .unwrap();
    let epb = |interface_id, ticks, data: &[u8]| EnhancedPacketBlock {
        interface_id,
        // pcap-file writes a Duration's nanoseconds as the raw units.
        timestamp: Duration::from_nanos(ticks),
        original_len: data.len() as u32,
        data: Cow::Owned(data.to_vec()),
        options: vec![],
    };
    writer
        .write_pcapng_block(epb(0, 1_700_000_000_123_456_789, &eth))
        .unwrap();
    writer
        .write_pcapng_block(epb(1, 1_700_000_001_000_001, &cooked))
        .unwrap();
    // A simple packet block: interface 0, the last timestamp.
    let spb = frame(2, 61);
    writer
        .write_pcapng_block(SimplePacketBlock {
            original_len: 61,
            data: Cow::Borrowed(&spb),
        })
        .unwrap();
    let bytes = writer.into_inner();

    assert_eq!(
        Capture::from_reader(Cursor::new(bytes.clone()))
            .unwrap()
            .format(),
        Format::PcapNg
    );
    let (records, stats) = read(bytes);
    assert_eq!(records.len(), 3);
    assert_eq!(
        (records[0].ts_ns, records[0].interface, &records[0].frame),
        (1_700_000_000_123_456_789, 0, &eth)
    );
    assert_eq!(
        (records[1].ts_ns, records[1].interface, &records[1].frame),
        (1_700_000_001_000_001_000, 1, &converted)
    );
    assert_eq!(records[1].orig_len, cooked.len() as u32 - 20 + 14);
    // The SPB's data is padded to 64 bytes in the file; its length says 61.
    assert_eq!(
        (records[2].ts_ns, records[2].interface, &records[2].frame),
        (records[1].ts_ns, 0, &spb)
    );
    assert_eq!(
        (stats.damaged, stats.unsupported, stats.truncated_packets),
        (0, 0, 0)
    );
}

fn good_section(big_endian: bool, first: u8, count: u8) -> Ng {
    let mut ng = Ng::new().shb(big_endian).idb(1, 65535, None);
    for i in first..first + count {
        ng = ng.epb(0, 1_700_000_000_000_000 + u64::from(i), &frame(i, 60), 60);
    }
    ng
}

fn payload_bytes(records: &[crate::capture::Record]) -> Vec<u8> {
    records.iter().map(|r| r.frame[20]).collect()
}

#[test]
fn damaged_trailer_is_skipped() {
    let mut ng = good_section(false, 0, 3);
    let start = ng.bytes.len();
    ng = ng.epb(0, 1_700_000_000_000_003, &frame(3, 60), 60);
    let end = ng.bytes.len();
    ng.bytes[end - 4] ^= 0x40;
    for i in 4..7 {
        ng = ng.epb(0, 1_700_000_000_000_000 + i, &frame(i as u8, 60), 60);
    }
    let (records, stats) = read(ng.bytes);
    assert_eq!(payload_bytes(&records), [0, 1, 2, 4, 5, 6]);
    assert_eq!(
        (stats.damaged, stats.skipped_bytes),
        (1, (end - start) as u64)
    );
    assert_eq!(records[3].ts_ns, 1_700_000_000_000_004_000);
}

#[test]
fn damaged_length_is_skipped() {
    let mut ng = good_section(true, 0, 2);
    let start = ng.bytes.len();
    ng = ng.epb(0, 1_700_000_000_000_002, &frame(2, 60), 60);
    // Not a multiple of 4.
    ng.bytes[start + 7] = 0x4e;
    let skipped = ng.bytes.len() - start;
    let (records, stats) = read(good_section_tail(ng, 3..5).bytes);
    assert_eq!(payload_bytes(&records), [0, 1, 3, 4]);
    assert_eq!((stats.damaged, stats.skipped_bytes), (1, skipped as u64));
}

fn good_section_tail(mut ng: Ng, range: std::ops::Range<u8>) -> Ng {
    for i in range {
        ng = ng.epb(0, 1_700_000_000_000_000 + u64::from(i), &frame(i, 60), 60);
    }
    ng
}

/// Blocks whose framing is right but whose content pcap-file refuses or
/// that name what the section lacks.
#[test]
fn well_framed_bad_blocks_are_skipped() {
    let mut ng = good_section(false, 0, 1);
    // Interface 5 does not exist.
    ng = ng.epb(5, 1, &frame(9, 60), 60);
    // A captured length past the block.
    let mut body: Vec<u8> = [0u32, 0, 1, 4000, 4000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    body.extend(frame(9, 60));
    ng = ng.block(6, &body);
    // A name resolution block and a custom block: skipped, not damage.
    ng = ng.block(4, &[0, 0, 0, 0]).block(0x0bad, &[1, 2, 3, 4]);
    let (records, stats) = read(good_section_tail(ng, 1..3).bytes);
    assert_eq!(payload_bytes(&records), [0, 1, 2]);
    assert_eq!((stats.damaged, stats.skipped_bytes), (2, 0));
}

/// A second section, in the other byte order: its interfaces start anew.
#[test]
fn second_section_in_the_other_byte_order() {
    let (cooked, converted) = sll2_ipv4();
    let mut ng = good_section(false, 0, 2).shb(true).idb(276, 65535, Some(9));
    ng = ng.epb(0, 1_700_000_005_000_000_007, &cooked, cooked.len() as u32);
    // Interface 1 was the first section's... and it had only one.
    ng = ng.epb(1, 1_700_000_005_000_000_008, &frame(9, 60), 60);
    let (records, stats) = read(ng.bytes);
    assert_eq!(records.len(), 3);
    assert_eq!(
        (records[2].ts_ns, &records[2].frame, records[2].interface),
        (1_700_000_005_000_000_007, &converted, 0)
    );
    assert_eq!(stats.damaged, 1);
}

#[test]
fn timestamp_resolutions() {
    let eth = frame(1, 60);
    // 2^-10 s units; 10^-3 s units; if_tsresol 0 (seconds).
    let ng = Ng::new()
        .shb(false)
        .idb(1, 0, Some(0x80 | 10))
        .idb(1, 0, Some(3))
        .idb(1, 0, Some(0))
        .epb(0, 1024 * 1_700_000_000 + 512, &eth, 60)
        .epb(1, 1_700_000_000_001, &eth, 60)
        .epb(2, 1_700_000_000, &eth, 60);
    let (records, _) = read(ng.bytes);
    let ts: Vec<u64> = records.iter().map(|r| r.ts_ns).collect();
    assert_eq!(
        ts,
        [
            1_700_000_000_500_000_000,
            1_700_000_000_001_000_000,
            1_700_000_000_000_000_000
        ]
    );
}

/// The obsolete packet block, whose timestamp pcap-file reads as one
/// 64-bit number.
#[test]
fn packet_block_timestamps() {
    for big_endian in [false, true] {
        let ng = Ng::new().shb(big_endian).idb(1, 0, None);
        let ticks: u64 = 1_700_000_000_123_456;
        let put32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let put16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut body: Vec<u8> = [put16(0), put16(0)].concat();
        for v in [(ticks >> 32) as u32, ticks as u32, 60, 60] {
            body.extend(put32(v));
        }
        body.extend(frame(1, 60));
        let (records, stats) = read(ng.block(2, &body).bytes);
        assert_eq!(records.len(), 1, "{stats:?}");
        assert_eq!(records[0].ts_ns, ticks * 1000, "big endian: {big_endian}");
    }
}

#[test]
fn file_cut_inside_a_block() {
    let bytes = good_section(false, 0, 3).bytes;
    let (records, stats) = read(bytes[..bytes.len() - 6].to_vec());
    assert_eq!(
        (records.len(), stats.truncated_file, stats.damaged),
        (2, true, 0)
    );
    let (records, stats) = read(bytes[..bytes.len() - 92 - 50].to_vec());
    assert_eq!((records.len(), stats.truncated_file), (1, true));
    // Inside the first section header.
    let (records, stats) = read(bytes[..6].to_vec());
    assert_eq!((records.len(), stats.truncated_file), (0, true));
}

#[test]
fn pcapng_without_byte_order_magic_is_not_a_capture() {
    let mut bytes = good_section(false, 0, 1).bytes;
    bytes[8..12].copy_from_slice(b"abcd");
    let err = Capture::from_reader(Cursor::new(bytes))
        .err()
        .expect("not a capture");
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err:?}");
    assert!(err.to_string().contains("0a 0d 0d 0a"), "{err}");
}
