//! Header parsing shared by every program. All reads go through [`ptr_at`],
//! which proves to the verifier that the read stays inside the packet.

use core::mem::size_of;

/// The packet is shorter than the headers it announces, or a header field is
/// invalid. Callers count it and let it pass; it is never an abort.
pub(crate) struct Malformed;

/// The network-layer source address of a packet.
pub(crate) enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// 802.1ad (QinQ) carries at most an outer and an inner tag; a deeper stack is
/// not a frame any bridge would forward, so we stop there.
const MAX_VLAN_TAGS: usize = 2;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// Returns a pointer to a `T` at `offset` into the packet, or [`Malformed`]
/// if the packet is too short.
#[inline(always)]
pub(crate) fn ptr_at<T>(
    data: usize,
    data_end: usize,
    offset: usize,
) -> Result<*const T, Malformed> {
    let start = data + offset;
    if start + size_of::<T>() > data_end {
        return Err(Malformed);
    }
    Ok(start as *const T)
}

#[inline(always)]
fn read_be16(data: usize, data_end: usize, offset: usize) -> Result<u16, Malformed> {
    let p = ptr_at::<[u8; 2]>(data, data_end, offset)?;
    // SAFETY: ptr_at checked the two bytes are inside the packet.
    Ok(u16::from_be_bytes(unsafe { p.read_unaligned() }))
}

/// Skips Ethernet and up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags; returns the
/// inner EtherType and the offset of the network header.
#[inline(always)]
pub(crate) fn l2(data: usize, data_end: usize) -> Result<(u16, usize), Malformed> {
    let mut proto = read_be16(data, data_end, 12)?;
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        // The tag is TCI (2 bytes) then the encapsulated EtherType.
        proto = read_be16(data, data_end, offset + 2)?;
        offset += VLAN_HLEN;
    }
    Ok((proto, offset))
}

/// The source address of an IPv4 or IPv6 packet; `Ok(None)` for any other
/// EtherType (including a third stacked VLAN tag).
#[inline(always)]
pub(crate) fn source_address(data: usize, data_end: usize) -> Result<Option<Addr>, Malformed> {
    let (proto, l3) = l2(data, data_end)?;
    match proto {
        ETH_P_IP => {
            let hdr = ptr_at::<[u8; IPV4_MIN_HLEN]>(data, data_end, l3)?;
            // SAFETY: ptr_at checked the fixed header is inside the packet.
            let hdr = unsafe { hdr.read_unaligned() };
            let (version, ihl) = (hdr[0] >> 4, hdr[0] & 0x0f);
            if version != 4 || ihl < 5 {
                return Err(Malformed);
            }
            // Options are part of the header: the whole of it must be there.
            ptr_at::<u8>(data, data_end, l3 + usize::from(ihl) * 4 - 1)?;
            Ok(Some(Addr::V4([hdr[12], hdr[13], hdr[14], hdr[15]])))
        }
        ETH_P_IPV6 => {
            let hdr = ptr_at::<[u8; IPV6_HLEN]>(data, data_end, l3)?;
            // SAFETY: ptr_at checked the fixed header is inside the packet.
            let hdr = unsafe { &*hdr };
            if hdr[0] >> 4 != 6 {
                return Err(Malformed);
            }
            let mut src = [0u8; 16];
            src.copy_from_slice(&hdr[8..24]);
            Ok(Some(Addr::V6(src)))
        }
        _ => Ok(None),
    }
}
