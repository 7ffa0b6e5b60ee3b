//! Crafting Ethernet frames for `BPF_PROG_TEST_RUN`.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// An Ethernet II frame between the default MACs.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    eth_macs(DST_MAC, SRC_MAC, ethertype, payload)
}

/// An Ethernet II frame with the given MACs.
pub fn eth_macs(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sets the DSCP and ECN bits of the IP header of an untagged frame.
pub fn set_tos(frame: &mut [u8], dscp: u8, ecn: u8) {
    let tos = (dscp << 2) | (ecn & 3);
    if frame[14] >> 4 == 4 {
        frame[15] = tos;
        frame[24] = 0;
        frame[25] = 0;
        let sum = checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
    } else {
        frame[14] = (frame[14] & 0xf0) | (tos >> 4);
        frame[15] = (frame[15] & 0x0f) | (tos << 4);
    }
}

/// Whether an IPv4 header (at `off`) has a valid checksum.
pub fn ipv4_checksum_ok(frame: &[u8], off: usize) -> bool {
    let ihl = usize::from(frame[off] & 0x0f) * 4;
    checksum(&frame[off..off + ihl]) == 0
}

/// `frame` with VLAN tags inserted after the MAC addresses, outermost first
/// (e.g. `[ETH_P_8021AD, ETH_P_8021Q]` for QinQ).
pub fn vlan_tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for (i, tpid) in tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        let vid = 100 + u16::try_from(i).expect("few tags");
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded")
}

/// An IPv4 header (no options) followed by `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("small packet");
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv6 header followed by `payload` (`next` is the payload's protocol).
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("small packet");
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// An IPv4 fragment: `frag` is the flags/offset field (offset in 8-byte
/// units, 0x2000 = more fragments).
pub fn ipv4_fragment(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = ipv4(src, dst, proto, payload);
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[10] = 0;
    h[11] = 0;
    let sum = checksum(&h[..20]);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// An IPv6 packet with the extension headers `exts` (types, in order: 0
/// hop-by-hop, 43 routing, 44 fragment, 51 AH, 60 destination options), each
/// with a minimal valid body, then `payload` of protocol `last`. The
/// fragment header says: first fragment, more to follow.
pub fn ipv6_with_ext(
    src: [u8; 16],
    dst: [u8; 16],
    exts: &[u8],
    last: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, ext) in exts.iter().enumerate() {
        let next = exts.get(i + 1).copied().unwrap_or(last);
        match ext {
            // Fragment header: next, reserved, offset/flags, id.
            44 => chain.extend_from_slice(&[next, 0, 0, 1, 0, 0, 0, 7]),
            // Authentication header: length in 4-byte units minus 2.
            51 => chain.extend_from_slice(&[next, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]),
            // Hop-by-hop, routing, destination options: 8 bytes, PadN.
            _ => chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
        }
    }
    chain.extend_from_slice(payload);
    ipv6(src, dst, exts.first().copied().unwrap_or(last), &chain)
}

/// A TCP header (20 bytes, no options, checksum left zero) and `payload`.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(20 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An ICMP (or ICMPv6) header of `icmp_type`, code 0.
pub fn icmp(icmp_type: u8) -> Vec<u8> {
    vec![icmp_type, 0, 0, 0, 0, 1, 0, 1]
}

/// A UDP header (checksum left zero) followed by `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small packet");
    let mut h = Vec::with_capacity(8 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// A complete UDP/IPv4 frame from `src`.
pub fn udp4_frame(src: [u8; 4], payload_len: usize) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(
            src,
            [192, 0, 2, 1],
            17,
            &udp(40000, 53, &vec![0xab; payload_len]),
        ),
    )
}

/// A complete UDP/IPv6 frame from `src`.
pub fn udp6_frame(src: [u8; 16], payload_len: usize) -> Vec<u8> {
    let dst = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    eth(
        ETH_P_IPV6,
        &ipv6(src, dst, 17, &udp(40000, 53, &vec![0xcd; payload_len])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let h = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &[]);
        assert_eq!(checksum(&h), 0, "a header with its checksum sums to zero");
    }

    #[test]
    fn vlan_tags_go_after_the_macs() {
        let f = vlan_tagged(&eth(ETH_P_IP, &[1, 2]), &[ETH_P_8021AD, ETH_P_8021Q]);
        assert_eq!(&f[12..14], &ETH_P_8021AD.to_be_bytes());
        assert_eq!(&f[16..18], &ETH_P_8021Q.to_be_bytes());
        assert_eq!(&f[20..22], &ETH_P_IP.to_be_bytes());
        assert_eq!(&f[22..], &[1, 2]);
    }
}
