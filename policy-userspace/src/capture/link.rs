//! Link-layer types -> the Ethernet frames the kernel program sees.
//!
//! Cooked captures (`tcpdump -i any`) and raw-IP captures carry no Ethernet
//! header: one is made from what the capture does record, so that replay
//! feeds the program what it would see on an Ethernet interface.

use std::fmt;

pub(super) const ETHERNET: u32 = 1;
pub(super) const RAW: u32 = 101;
pub(super) const LINUX_SLL: u32 = 113;
pub(super) const IPV4: u32 = 228;
pub(super) const IPV6: u32 = 229;
pub(super) const LINUX_SLL2: u32 = 276;

const ETH_HLEN: usize = 14;
const SLL_HLEN: usize = 16;
const SLL2_HLEN: usize = 20;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Below this a cooked header's protocol is an 802.3 length or a Linux
/// `ETH_P_*` pseudo-protocol (802.2 LLC, CAN, ...), not an Ethertype.
const ETHERTYPE_MIN: u16 = 0x0600;
/// `PACKET_*` values of a cooked header's packet type.
const PACKET_BROADCAST: u16 = 1;
const PACKET_MULTICAST: u16 = 2;

/// Why a packet yields no Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotEthernet {
    /// A link type this module does not convert.
    LinkType(u32),
    /// A cooked header whose protocol is not an Ethertype.
    CookedProtocol(u16),
    /// Raw IP whose version nibble is neither 4 nor 6.
    IpVersion(u8),
    /// Shorter than its link-layer header: damage, not a kind of traffic.
    TooShort { link: u32, len: usize },
}

impl fmt::Display for NotEthernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LinkType(link) => write!(f, "link type {link} is not converted to Ethernet"),
            Self::CookedProtocol(p) => {
                write!(
                    f,
                    "cooked header protocol {p:#06x} is not an Ethertype (802.2 or non-Ethernet frame)"
                )
            }
            Self::IpVersion(v) => write!(f, "raw IP packet of version {v}"),
            Self::TooShort { link, len } => {
                write!(
                    f,
                    "{len}-byte packet is shorter than the link type {link} header"
                )
            }
        }
    }
}

/// The Ethernet frame of a captured packet of link type `link`, and its
/// length on the wire as an Ethernet frame (never less than the frame).
pub(super) fn to_ethernet(
    link: u32,
    data: &[u8],
    orig_len: u32,
) -> Result<(Vec<u8>, u32), NotEthernet> {
    let too_short = NotEthernet::TooShort {
        link,
        len: data.len(),
    };
    let (frame, header_len) = match link {
        ETHERNET => (data.to_vec(), ETH_HLEN),
        LINUX_SLL => {
            let h = data.get(..SLL_HLEN).ok_or(too_short)?;
            let pkttype = be16(h, 0);
            let addr_len = usize::from(be16(h, 4));
            let protocol = be16(h, 14);
            (
                cooked(pkttype, &h[6..14], addr_len, protocol, &data[SLL_HLEN..])?,
                SLL_HLEN,
            )
        }
        LINUX_SLL2 => {
            let h = data.get(..SLL2_HLEN).ok_or(too_short)?;
            let protocol = be16(h, 0);
            let pkttype = u16::from(h[10]);
            let addr_len = usize::from(h[11]);
            (
                cooked(pkttype, &h[12..20], addr_len, protocol, &data[SLL2_HLEN..])?,
                SLL2_HLEN,
            )
        }
        RAW | IPV4 | IPV6 => {
            let ethertype = match (link, data.first().map(|b| b >> 4)) {
                (IPV4, _) | (RAW, Some(4)) => ETHERTYPE_IPV4,
                (IPV6, _) | (RAW, Some(6)) => ETHERTYPE_IPV6,
                (_, Some(v)) => return Err(NotEthernet::IpVersion(v)),
                (_, None) => return Err(too_short),
            };
            (ethernet([0; 6], [0; 6], ethertype, data), 0)
        }
        other => return Err(NotEthernet::LinkType(other)),
    };
    let on_wire = u64::from(orig_len).saturating_sub(header_len as u64) + ETH_HLEN as u64;
    let on_wire = u32::try_from(on_wire)
        .unwrap_or(u32::MAX)
        .max(frame.len() as u32);
    Ok((frame, on_wire))
}

/// The Ethernet frame of a Linux cooked packet. The cooked header holds the
/// sender's link address (for outgoing packets too) and only the kind of the
/// destination: broadcast and multicast get their group address, a unicast
/// destination stays zero (unknown).
fn cooked(
    pkttype: u16,
    addr: &[u8],
    addr_len: usize,
    protocol: u16,
    payload: &[u8],
) -> Result<Vec<u8>, NotEthernet> {
    if protocol < ETHERTYPE_MIN {
        return Err(NotEthernet::CookedProtocol(protocol));
    }
    let mut src = [0; 6];
    if addr_len == 6 {
        src.copy_from_slice(&addr[..6]);
    }
    let dst = match pkttype {
        PACKET_BROADCAST => [0xff; 6],
        PACKET_MULTICAST => multicast_mac(protocol, payload),
        _ => [0; 6],
    };
    Ok(ethernet(dst, src, protocol, payload))
}

/// The Ethernet group address an IP multicast destination maps to (RFC 1112
/// section 6.4, RFC 2464 section 7); 01:00:5e:00:00:00 when the packet does
/// not show its destination.
fn multicast_mac(protocol: u16, payload: &[u8]) -> [u8; 6] {
    match protocol {
        ETHERTYPE_IPV4 if payload.len() >= 20 => [
            0x01,
            0x00,
            0x5e,
            payload[17] & 0x7f,
            payload[18],
            payload[19],
        ],
        ETHERTYPE_IPV6 if payload.len() >= 40 => [
            0x33,
            0x33,
            payload[36],
            payload[37],
            payload[38],
            payload[39],
        ],
        _ => [0x01, 0x00, 0x5e, 0, 0, 0],
    }
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETH_HLEN + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
