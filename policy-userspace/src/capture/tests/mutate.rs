//! Valid captures with random damage (flipped bytes, a cut) never panic,
//! never loop, and never yield more than the file can hold.

use std::io::Cursor;

use proptest::prelude::*;

use super::make::{Ng, Pcap, frame};
use crate::capture::{Capture, MAX_PACKET};

fn pcap(big_endian: bool, nanos: bool, link: u32) -> Vec<u8> {
    let mut pcap = Pcap::new(big_endian, nanos, 65535, link);
    for i in 0..12 {
        pcap = pcap.at_ms(i, &frame(i as u8, 30 + 13 * i as usize));
    }
    pcap.bytes
}

fn pcapng(big_endian: bool) -> Vec<u8> {
    let mut ng = Ng::new()
        .shb(big_endian)
        .idb(1, 65535, Some(9))
        .idb(276, 0, None);
    for i in 0..10u8 {
        ng = ng.epb(
            u32::from(i % 2),
            1_700_000_000_000_000_000 + u64::from(i),
            &frame(i, 30 + 11 * usize::from(i)),
            200,
        );
        if i == 5 {
            ng = ng
                .spb(&frame(i, 50), 50)
                .shb(!big_endian)
                .idb(113, 96, None);
        }
    }
    ng.bytes
}

fn inputs() -> Vec<Vec<u8>> {
    vec![
        pcap(false, false, 1),
        pcap(true, true, 113),
        pcap(false, true, 276),
        pcap(true, false, 101),
        pcapng(false),
        pcapng(true),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn damage_never_panics(
        which in 0usize..6,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = inputs().swap_remove(which);
        // Past the magic: a file without one is not a capture, and damage
        // after it is what reading must survive.
        for (at, byte) in flips {
            let at = 4 + at.index(bytes.len() - 4);
            bytes[at] ^= byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let len = bytes.len();
        let Ok(mut capture) = Capture::from_reader(Cursor::new(bytes)) else { return Ok(()) };
        let mut records = 0;
        for record in capture.by_ref() {
            records += 1;
            // Every record consumes at least a 12-byte block or 16-byte header.
            prop_assert!(records <= len / 12 + 1);
            prop_assert!(record.frame.len() <= MAX_PACKET + 14);
            prop_assert!(record.orig_len as usize >= record.frame.len());
        }
        prop_assert!(capture.next().is_none());
        prop_assert!(capture.error().is_none());
        let stats = capture.stats();
        prop_assert_eq!(stats.records, records as u64);
        prop_assert!(stats.skipped_bytes <= len as u64);
    }
}
