//! Classic pcap: byte orders, timestamp units, snap lengths, damage.

use std::io::Cursor;

use super::make::{Pcap, frame, read};
use crate::capture::{Capture, CaptureError, Format};

const ETHERNET: u32 = 1;

#[test]
fn little_endian_microseconds() {
    let (a, b) = (frame(1, 60), frame(2, 1514));
    let bytes = Pcap::new(false, false, 65535, ETHERNET)
        .record(1_700_000_000, 123_456, &a, 60)
        .record(1_700_000_001, 999_999, &b, 1514)
        .bytes;
    let capture = Capture::from_reader(Cursor::new(bytes.clone())).unwrap();
    assert_eq!(
        capture.format(),
        Format::Pcap {
            nanos: false,
            big_endian: false
        }
    );
    let (records, stats) = read(bytes);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].ts_ns, 1_700_000_000_123_456_000);
    assert_eq!(records[1].ts_ns, 1_700_000_001_999_999_000);
    assert_eq!(
        (
            records[0].frame.as_slice(),
            records[0].orig_len,
            records[0].interface
        ),
        (a.as_slice(), 60, 0)
    );
    assert_eq!(
        (records[1].frame.as_slice(), records[1].orig_len),
        (b.as_slice(), 1514)
    );
    assert_eq!(
        (
            stats.records,
            stats.damaged,
            stats.truncated_packets,
            stats.truncated_file
        ),
        (2, 0, 0, false)
    );
}

#[test]
fn big_endian_nanoseconds() {
    let a = frame(1, 60);
    let bytes = Pcap::new(true, true, 262_144, ETHERNET)
        .record(1_700_000_000, 123_456_789, &a, 60)
        .bytes;
    let capture = Capture::from_reader(Cursor::new(bytes.clone())).unwrap();
    assert_eq!(
        capture.format(),
        Format::Pcap {
            nanos: true,
            big_endian: true
        }
    );
    let (records, _) = read(bytes);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ts_ns, 1_700_000_000_123_456_789);
    assert_eq!(records[0].frame, a);
}

#[test]
fn little_endian_nanoseconds_and_big_endian_microseconds() {
    let a = frame(1, 60);
    let (le_ns, _) = read(
        Pcap::new(false, true, 65535, ETHERNET)
            .record(7, 5, &a, 60)
            .bytes,
    );
    assert_eq!(le_ns[0].ts_ns, 7_000_000_005);
    let (be_us, _) = read(
        Pcap::new(true, false, 65535, ETHERNET)
            .record(7, 5, &a, 60)
            .bytes,
    );
    assert_eq!(be_us[0].ts_ns, 7_000_005_000);
}

/// `tcpdump -s 96`: every record is shorter than its packet.
#[test]
fn snap_length_shorter_than_packets() {
    let full = frame(3, 1514);
    let bytes = Pcap::new(false, false, 96, ETHERNET)
        .record(1_700_000_000, 0, &full[..96], 1514)
        .record(1_700_000_000, 1, &full[..60], 60)
        .bytes;
    let (records, stats) = read(bytes);
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].frame.as_slice(), records[0].orig_len),
        (&full[..96], 1514)
    );
    assert_eq!(records[1].orig_len, 60);
    assert_eq!((stats.truncated_packets, stats.damaged), (1, 0));
}

/// What Wireshark shows too: a record longer than the snap length the
/// header claims, followed by a good record.
#[test]
fn record_over_the_snap_length_is_read() {
    let (a, b) = (frame(1, 200), frame(2, 60));
    let (records, stats) = read(
        Pcap::new(false, false, 96, ETHERNET)
            .at_ms(0, &a)
            .at_ms(1, &b)
            .bytes,
    );
    assert_eq!(
        records.iter().map(|r| r.frame.len()).collect::<Vec<_>>(),
        [200, 60]
    );
    assert_eq!(stats.damaged, 0);
}

fn good_records(mut pcap: Pcap, range: std::ops::Range<u32>) -> Pcap {
    for i in range {
        pcap = pcap.at_ms(i, &frame(i as u8, 60 + i as usize));
    }
    pcap
}

#[test]
fn damaged_captured_length_is_skipped() {
    let mut pcap = good_records(Pcap::new(false, false, 65535, ETHERNET), 0..4);
    pcap.header(1_700_000_000, 4_000, 0x00ff_ffff, 100);
    pcap.bytes.extend_from_slice(&frame(0xee, 100));
    let (records, stats) = read(good_records(pcap, 5..9).bytes);
    let frames: Vec<u8> = records.iter().map(|r| r.frame[20]).collect();
    assert_eq!(frames, [0, 1, 2, 3, 5, 6, 7, 8]);
    assert_eq!(
        (stats.damaged, stats.skipped_bytes, stats.records),
        (1, 16 + 100, 8)
    );
}

/// A header whose lengths disagree (captured more than on the wire) and
/// whose next "record" is inside its packet.
#[test]
fn inconsistent_header_is_skipped() {
    let mut pcap = good_records(Pcap::new(true, true, 65535, ETHERNET), 0..3);
    pcap.header(1_700_000_000, 3_000_000, 30, 20);
    pcap.bytes.extend_from_slice(&frame(0xee, 100));
    let (records, stats) = read(good_records(pcap, 4..6).bytes);
    let frames: Vec<u8> = records.iter().map(|r| r.frame[20]).collect();
    assert_eq!(frames, [0, 1, 2, 4, 5]);
    assert_eq!((stats.damaged, stats.skipped_bytes), (1, 16 + 100));
}

#[test]
fn file_cut_inside_a_record() {
    let bytes = good_records(Pcap::new(false, false, 65535, ETHERNET), 0..3).bytes;
    let (records, stats) = read(bytes[..bytes.len() - 10].to_vec());
    assert_eq!(records.len(), 2);
    assert!(stats.truncated_file);
    assert_eq!(stats.damaged, 0);
    // Inside a record header.
    let cut = 24 + 16 + 60 + 5;
    let (records, stats) = read(bytes[..cut].to_vec());
    assert_eq!((records.len(), stats.truncated_file), (1, true));
    // Inside the file header.
    let (records, stats) = read(bytes[..10].to_vec());
    assert_eq!((records.len(), stats.truncated_file), (0, true));
}

#[test]
fn unknown_link_type_is_counted() {
    // 147: LINKTYPE_USER0.
    let (records, stats) = read(good_records(Pcap::new(false, false, 65535, 147), 0..3).bytes);
    assert!(records.is_empty());
    assert_eq!((stats.unsupported, stats.records, stats.damaged), (3, 0, 0));
}

/// An IPv4 header (20 bytes) and an IPv6 header (40 bytes) with payload.
fn ip_packets() -> (Vec<u8>, Vec<u8>) {
    let mut v4 = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    v4.extend([9; 8]);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    v6.extend([0xfe; 32]);
    v6.extend([9; 8]);
    (v4, v6)
}

fn ethernet(ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0; 12];
    frame.extend(ethertype);
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn raw_ip_becomes_ethernet() {
    let (v4, v6) = ip_packets();
    let bytes = Pcap::new(false, false, 65535, 101)
        .record(1, 0, &v4, 28)
        .record(1, 1, &v6, 48)
        .record(1, 2, &[0x20; 20], 20)
        .bytes;
    let (records, stats) = read(bytes);
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].frame.clone(), records[0].orig_len),
        (ethernet([0x08, 0x00], &v4), 42)
    );
    assert_eq!(
        (records[1].frame.clone(), records[1].orig_len),
        (ethernet([0x86, 0xdd], &v6), 62)
    );
    // The version-2 "packet".
    assert_eq!(stats.unsupported, 1);
    let (records, _) = read(
        Pcap::new(false, false, 65535, 228)
            .record(1, 0, &v4, 28)
            .bytes,
    );
    assert_eq!(records[0].frame, ethernet([0x08, 0x00], &v4));
    let (records, _) = read(
        Pcap::new(false, false, 65535, 229)
            .record(1, 0, &v6, 48)
            .bytes,
    );
    assert_eq!(records[0].frame, ethernet([0x86, 0xdd], &v6));
}

#[test]
fn not_a_capture() {
    for bytes in [Vec::new(), b"GET / HTTP/1.1\r\n".to_vec(), vec![0xd4, 0xc3]] {
        let err = Capture::from_reader(Cursor::new(bytes.clone()))
            .err()
            .expect("not a capture");
        assert!(matches!(err, CaptureError::NotACapture { .. }), "{err:?}");
        let text = err.to_string();
        match bytes.first() {
            None => assert!(text.contains("empty"), "{text}"),
            Some(&first) => assert!(text.contains(&format!("starts with {first:02x}")), "{text}"),
        }
    }
    let err = Capture::from_reader(Cursor::new(b"GET / HTTP/1.1".to_vec()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("47 45 54 20"), "{err}");
}

#[test]
fn open_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    let err = Capture::open(&missing).err().expect("no file");
    assert!(
        matches!(err, CaptureError::Open { .. }) && err.to_string().contains("missing.pcap"),
        "{err}"
    );
    let path = dir.path().join("two.pcap");
    std::fs::write(
        &path,
        good_records(Pcap::new(false, false, 65535, ETHERNET), 0..2).bytes,
    )
    .unwrap();
    assert_eq!(Capture::open(&path).unwrap().count(), 2);
}
