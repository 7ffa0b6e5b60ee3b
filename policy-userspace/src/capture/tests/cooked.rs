//! Linux cooked captures (`tcpdump -i any`) become Ethernet frames.

use super::make::{Pcap, read};

const LINUX_SLL: u32 = 113;
const LINUX_SLL2: u32 = 276;
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn sll(pkttype: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(pkttype.to_be_bytes());
    h.extend(1u16.to_be_bytes());
    h.extend((addr.len() as u16).to_be_bytes());
    let mut a = [0u8; 8];
    a[..addr.len()].copy_from_slice(addr);
    h.extend(a);
    h.extend(protocol.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn sll2(pkttype: u8, arphrd: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(protocol.to_be_bytes());
    h.extend([0, 0]);
    h.extend(7u32.to_be_bytes());
    h.extend(arphrd.to_be_bytes());
    h.extend([pkttype, addr.len() as u8]);
    let mut a = [0u8; 8];
    a[..addr.len()].copy_from_slice(addr);
    h.extend(a);
    h.extend_from_slice(payload);
    h
}

/// An IPv4 packet to `dst`.
fn ipv4_to(dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1];
    p.extend(dst);
    p.extend([7; 8]);
    p
}

fn expect(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend(src);
    f.extend(ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn sll_becomes_ethernet() {
    let unicast = ipv4_to([10, 0, 0, 2]);
    let group = ipv4_to([239, 129, 2, 3]);
    let arp = [0x00, 0x01, 0x08, 0x00, 6, 4, 0, 1];
    let packets = [
        sll(0, &MAC, 0x0800, &unicast),
        sll(4, &MAC, 0x0800, &unicast),
        sll(1, &MAC, 0x0806, &arp),
        sll(2, &MAC, 0x0800, &group),
        // No 6-byte link address (e.g. a tunnel's): the source stays zero.
        sll(0, &[1, 2, 3, 4], 0x0800, &unicast),
    ];
    let mut pcap = Pcap::new(false, false, 65535, LINUX_SLL);
    for (i, p) in packets.iter().enumerate() {
        pcap = pcap.record(1_700_000_000, i as u32, p, p.len() as u32);
    }
    let (records, stats) = read(pcap.bytes);
    let frames: Vec<Vec<u8>> = records.iter().map(|r| r.frame.clone()).collect();
    assert_eq!(
        frames,
        [
            expect([0; 6], MAC, 0x0800, &unicast),
            expect([0; 6], MAC, 0x0800, &unicast),
            expect([0xff; 6], MAC, 0x0806, &arp),
            expect([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03], MAC, 0x0800, &group),
            expect([0; 6], [0; 6], 0x0800, &unicast),
        ]
    );
    // 16 cooked bytes replaced by 14 Ethernet ones.
    assert_eq!(records[0].orig_len, unicast.len() as u32 + 14);
    assert_eq!(stats.unsupported, 0);
}

#[test]
fn sll2_becomes_ethernet() {
    let unicast = ipv4_to([10, 0, 0, 2]);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 58, 255];
    v6.extend([0xfe; 16]);
    v6.extend([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    let packets = [
        sll2(0, 1, &MAC, 0x0800, &unicast),
        sll2(2, 1, &MAC, 0x86dd, &v6),
        // A loopback packet (ARPHRD_LOOPBACK, zero address) and a tunnel's
        // (ARPHRD_NONE, no address): converted all the same.
        sll2(0, 772, &[0; 6], 0x0800, &unicast),
        sll2(4, 0xfffe, &[], 0x0800, &unicast),
    ];
    let mut pcap = Pcap::new(true, true, 262_144, LINUX_SLL2);
    for (i, p) in packets.iter().enumerate() {
        pcap = pcap.record(1_700_000_000, i as u32, p, p.len() as u32 + 100);
    }
    let (records, stats) = read(pcap.bytes);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].frame, expect([0; 6], MAC, 0x0800, &unicast));
    assert_eq!(
        records[1].frame,
        expect([0x33, 0x33, 0, 0, 0, 0x01], MAC, 0x86dd, &v6)
    );
    assert_eq!(records[2].frame, expect([0; 6], [0; 6], 0x0800, &unicast));
    assert_eq!(records[3].frame, expect([0; 6], [0; 6], 0x0800, &unicast));
    // Captured 100 bytes short of the wire: 20 cooked bytes become 14.
    assert_eq!(records[0].orig_len, unicast.len() as u32 + 100 + 14);
    assert_eq!(stats.truncated_packets, 4);
}

/// 802.2 frames and other non-Ethertype protocols have no Ethernet II form.
#[test]
fn cooked_non_ethertype_protocols_are_unsupported() {
    let llc = [0x42, 0x42, 0x03, 0, 0, 0];
    let bytes = Pcap::new(false, false, 65535, LINUX_SLL2)
        .record(1, 0, &sll2(0, 1, &MAC, 0x0004, &llc), 26)
        .record(1, 1, &sll2(0, 1, &MAC, 0x0800, &ipv4_to([10, 0, 0, 2])), 48)
        .record(1, 2, &sll2(0, 1, &MAC, 0x05ff, &llc), 26)
        .bytes;
    let (records, stats) = read(bytes);
    assert_eq!(records.len(), 1);
    assert_eq!((stats.unsupported, stats.damaged), (2, 0));
}

#[test]
fn cooked_packet_shorter_than_its_header_is_damaged() {
    let bytes = Pcap::new(false, false, 65535, LINUX_SLL)
        .record(1, 0, &[0; 10], 10)
        .bytes;
    let (records, stats) = read(bytes);
    assert!(records.is_empty());
    assert_eq!((stats.damaged, stats.unsupported), (1, 0));
}
