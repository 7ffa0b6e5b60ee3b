//! The kernel parser's rules, in plain Rust (policy-ebpf/src/parse.rs is the
//! original; the differential tests hold the two together).

use policy_common::{Addr16, cast, v4_mapped};

/// What the data path extracts from an IP packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacketInfo {
    pub src: Addr16,
    pub dst: Addr16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub has_ports: bool,
    pub icmp_type: Option<u8>,
    pub dscp: u8,
    pub ecn: u8,
    pub l2_cast: u8,
    pub too_deep: bool,
    /// TCP header flags, 0 for other protocols or a header cut short
    /// before them (the kernel needs bytes 12 and 13 to read them).
    pub tcp_flags: u8,
    /// After VLAN tags.
    pub ethertype: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Ip(PacketInfo),
    /// Neither IPv4 nor IPv6 (or behind more than two VLAN tags): only the
    /// MACs, `l2_cast` and `ethertype` are set.
    Other(PacketInfo),
    /// Shorter than its headers announce, or invalid.
    Malformed,
}

const MAX_VLAN_TAGS: usize = 2;
const MAX_EXT_HEADERS: usize = 4;

fn be16(f: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]))
}

pub fn parse(f: &[u8]) -> Parsed {
    parse_inner(f).unwrap_or(Parsed::Malformed)
}

fn parse_inner(f: &[u8]) -> Option<Parsed> {
    if f.len() < 14 {
        return None;
    }
    let mut p = PacketInfo::default();
    p.dst_mac.copy_from_slice(&f[0..6]);
    p.src_mac.copy_from_slice(&f[6..12]);
    p.l2_cast = if p.dst_mac == [0xff; 6] {
        cast::BROADCAST
    } else if p.dst_mac[0] & 1 == 1 {
        cast::MULTICAST
    } else {
        0
    };
    let mut proto = be16(f, 12)?;
    let mut l3 = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != 0x8100 && proto != 0x88A8 {
            break;
        }
        proto = be16(f, l3 + 2)?;
        l3 += 4;
    }
    p.ethertype = proto;
    let (l4, first) = match proto {
        0x0800 => {
            let h = f.get(l3..l3 + 20)?;
            let ihl = usize::from(h[0] & 0x0f);
            if h[0] >> 4 != 4 || ihl < 5 || f.len() < l3 + ihl * 4 {
                return None;
            }
            p.dscp = h[1] >> 2;
            p.ecn = h[1] & 3;
            p.proto = h[9];
            p.src = v4_mapped([h[12], h[13], h[14], h[15]]);
            p.dst = v4_mapped([h[16], h[17], h[18], h[19]]);
            (l3 + ihl * 4, u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0)
        }
        0x86DD => {
            let h = f.get(l3..l3 + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let tclass = (h[0] << 4) | (h[1] >> 4);
            p.dscp = tclass >> 2;
            p.ecn = tclass & 3;
            p.src.copy_from_slice(&h[8..24]);
            p.dst.copy_from_slice(&h[24..40]);
            let mut next = h[6];
            let mut off = l3 + 40;
            let mut first = true;
            let mut done = false;
            for _ in 0..MAX_EXT_HEADERS {
                match next {
                    0 | 43 | 60 => {
                        let e = f.get(off..off + 2)?;
                        next = e[0];
                        off += (usize::from(e[1]) + 1) * 8;
                    }
                    51 => {
                        let e = f.get(off..off + 2)?;
                        next = e[0];
                        off += (usize::from(e[1]) + 2) * 4;
                    }
                    44 => {
                        let e = f.get(off..off + 4)?;
                        next = e[0];
                        if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                            first = false;
                        }
                        off += 8;
                    }
                    _ => {
                        done = true;
                        break;
                    }
                }
            }
            p.proto = next;
            p.too_deep = !done && matches!(next, 0 | 43 | 60 | 51 | 44);
            (off, first)
        }
        _ => return Some(Parsed::Other(p)),
    };
    if first && !p.too_deep {
        match p.proto {
            6 | 17 | 132 => {
                p.sport = be16(f, l4)?;
                p.dport = be16(f, l4 + 2)?;
                p.has_ports = true;
                if p.proto == 6
                    && let Some(b) = f.get(l4 + 12..l4 + 14)
                {
                    p.tcp_flags = b[1];
                }
            }
            // Type and code, as the kernel reads them.
            1 | 58 => p.icmp_type = Some(*f.get(l4..l4 + 2)?.first()?),
            _ => {}
        }
    }
    Some(Parsed::Ip(p))
}
