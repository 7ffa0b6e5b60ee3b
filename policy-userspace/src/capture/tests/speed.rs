//! How fast a million records read (`cargo test --release -p
//! policy-userspace capture::tests::speed -- --ignored --nocapture`).

use std::io::Cursor;
use std::time::Instant;

use super::make::{Ng, Pcap, frame};
use crate::capture::Capture;

const RECORDS: u32 = 1_000_000;

fn time(what: &str, bytes: Vec<u8>) {
    let len = bytes.len();
    let start = Instant::now();
    let mut capture = Capture::from_reader(Cursor::new(bytes)).unwrap();
    let frame_bytes: usize = capture.by_ref().map(|r| r.frame.len()).sum();
    let took = start.elapsed();
    assert_eq!(capture.stats().records, u64::from(RECORDS));
    println!(
        "{what}: {RECORDS} records, {} MB ({} MB of frames) in {:.3} s",
        len / 1_000_000,
        frame_bytes / 1_000_000,
        took.as_secs_f64()
    );
}

#[test]
#[ignore = "a measurement, not a check: run it in a release build"]
fn speed() {
    let frames: Vec<Vec<u8>> = (0..16)
        .map(|i| frame(i, 60 + 90 * usize::from(i)))
        .collect();
    let mut pcap = Pcap::new(false, false, 262_144, 1);
    for i in 0..RECORDS {
        pcap = pcap.at_ms(i, &frames[i as usize % 16]);
    }
    time("pcap, Ethernet", pcap.bytes);
    let mut ng = Ng::new().shb(false).idb(1, 0, Some(9));
    for i in 0..RECORDS {
        ng = ng.epb(
            0,
            1_700_000_000_000_000_000 + u64::from(i),
            &frames[i as usize % 16],
            1514,
        );
    }
    time("pcapng, Ethernet", ng.bytes);
}
