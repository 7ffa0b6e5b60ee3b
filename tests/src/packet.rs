//! Crafting Ethernet frames for `BPF_PROG_TEST_RUN`.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// An Ethernet II frame.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
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
