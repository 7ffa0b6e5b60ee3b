//! Header parsing shared by every program. All reads go through [`ptr_at`],
//! which proves to the verifier that the read stays inside the packet.
//!
//! What is parsed: Ethernet with up to two 802.1Q/802.1ad tags; IPv4 with
//! options and fragments; IPv6 with up to [`MAX_EXT_HEADERS`] extension
//! headers (hop-by-hop, routing, fragment, destination options, AH); the
//! ports of TCP, UDP and SCTP and the type of ICMP and ICMPv6.

use policy_common::{Addr16, SKETCH_ROWS, cast};

use crate::load::{u16_at, u32_at, u64_at};

/// The packet is shorter than the headers it announces, or a header field is
/// invalid. Counted by the caller, whose configured verdict applies.
pub(crate) struct Malformed;

/// Everything later stages need to know about an IP packet. C layout,
/// aligned to 8, with the addresses first: they can then be read as 64-bit
/// words (one load each, see [`Packet::src_words`]).
#[repr(C, align(8))]
pub(crate) struct Packet {
    pub src: Addr16,
    pub dst: Addr16,
    /// The MAC addresses as [`policy_common::Mac8`] values (six bytes and
    /// two zero bytes) read as one native-endian word: what the MAC maps
    /// are keyed by, compared and stored in one instruction.
    pub src_mac: u64,
    pub dst_mac: u64,
    /// Offset of the IP header (for ECN marking).
    pub l3: usize,
    pub is_v6: bool,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Ports, or 0 when the packet has none (see [`Packet::has_ports`]).
    pub sport: u16,
    pub dport: u16,
    pub has_ports: bool,
    pub icmp_type: u8,
    pub has_icmp_type: bool,
    pub dscp: u8,
    pub ecn: u8,
    /// Bits of [`cast`] for the destination MAC.
    pub l2_cast: u8,
    /// Extension-header chain longer than we follow: no transport info.
    pub too_deep: bool,
    /// TCP header flags (policy-common's conn.rs), 0 for other protocols or
    /// a TCP header cut short before them.
    pub tcp_flags: u8,
    /// The EtherType after VLAN tags (host order), for class rules that
    /// match non-IP frames by it.
    pub ethertype: u16,
    /// Offset of the transport header, 0 when the packet has none the
    /// parser read (a non-first fragment, an unknown protocol).
    pub l4: u16,
    /// The flow's cells in the elephant sketch, from its lookup to the
    /// packet's accounting.
    pub flow_cells: [u32; SKETCH_ROWS as usize],
}

impl Packet {
    /// The source address as two native-endian 64-bit words.
    #[inline(always)]
    pub(crate) fn src_words(&self) -> [u64; 2] {
        words(&self.src)
    }

    #[inline(always)]
    pub(crate) fn dst_words(&self) -> [u64; 2] {
        words(&self.dst)
    }

    /// The IPv4 address in the source (`src`) or destination address, as
    /// its four bytes in memory order, if that address is IPv4-mapped (as
    /// every IPv4 packet's are): such addresses are looked up in the IPv4
    /// maps.
    #[inline(always)]
    pub(crate) fn mapped_v4(&self, src: bool) -> Option<u32> {
        let w = self.words32(src);
        (w[0] == 0 && w[1] == 0 && w[2] == MAPPED_TAG).then_some(w[3])
    }

    /// The source (`src`) or destination address as four native-endian
    /// 32-bit words.
    #[inline(always)]
    pub(crate) fn words32(&self, src: bool) -> [u32; 4] {
        let a = if src { &self.src } else { &self.dst };
        let p = a.as_ptr().cast::<u32>();
        // SAFETY: as for `words`: `a` is at offset 0 or 16 of this struct,
        // aligned to 8, so the four u32 words are aligned and inside it.
        unsafe { [p.read(), p.add(1).read(), p.add(2).read(), p.add(3).read()] }
    }

    /// The source (`src`) or destination address as two 64-bit words.
    #[inline(always)]
    pub(crate) fn words64(&self, src: bool) -> [u64; 2] {
        words(if src { &self.src } else { &self.dst })
    }
}

impl Packet {
    /// Sets both addresses to IPv4-mapped ones, from the IPv4 addresses
    /// as words in memory order.
    #[inline(always)]
    fn set_v4(&mut self, src: u32, dst: u32) {
        for (a, v4) in [(&mut self.src, src), (&mut self.dst, dst)] {
            let p = a.as_mut_ptr().cast::<u32>();
            // SAFETY: as for `words`: an aligned field of this struct.
            unsafe {
                p.write(0);
                p.add(1).write(0);
                p.add(2).write(MAPPED_TAG);
                p.add(3).write(v4);
            }
        }
    }

    /// A non-IP frame has no addresses: zero the previous packet's, which
    /// an event would otherwise report.
    #[inline(always)]
    pub(crate) fn clear_addresses(&mut self) {
        self.set_v6([0; 2], [0; 2]);
    }

    #[inline(always)]
    fn set_v6(&mut self, src: [u64; 2], dst: [u64; 2]) {
        for (a, w) in [(&mut self.src, src), (&mut self.dst, dst)] {
            let p = a.as_mut_ptr().cast::<u64>();
            // SAFETY: as for `words`: an aligned field of this struct.
            unsafe {
                p.write(w[0]);
                p.add(1).write(w[1]);
            }
        }
    }
}

/// The six bytes of a MAC address in a word read from the packet (the two
/// after it zeroed): the word's memory order is the address's.
const MAC_MASK: u64 = u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);

/// Bytes 8..12 of an IPv4-mapped address (`::ffff:a.b.c.d`) as a word.
const MAPPED_TAG: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

#[inline(always)]
fn words(a: &Addr16) -> [u64; 2] {
    let p = a.as_ptr().cast::<u64>();
    // SAFETY: `a` is `src` or `dst` of a `Packet`, at offsets 0 and 16 of a
    // struct aligned to 8 (repr(C, align(8)), the addresses first), so both
    // words are aligned and inside the 16 bytes.
    unsafe { [p.read(), p.add(1).read()] }
}

pub(crate) enum Parsed {
    Ip,
    /// Not IPv4/IPv6 (or deeper than two VLAN tags).
    Other,
}

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// 802.1ad (QinQ) carries an outer and an inner tag; deeper stacks are not
/// followed (the frame counts as non-IP).
const MAX_VLAN_TAGS: usize = 2;
const IPV6_HLEN: usize = 40;
/// Where the network header can start at the latest.
pub(crate) const MAX_L3_OFFSET: usize = ETH_HLEN + MAX_VLAN_TAGS * VLAN_HLEN;
/// Extension headers followed before giving up on the transport header.
/// Real traffic rarely has more than two; the bound keeps the verifier's
/// path count small.
pub(crate) const MAX_EXT_HEADERS: usize = 4;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_SCTP: u8 = 132;

/// Returns a pointer to a `T` at `offset` into the packet, or [`Malformed`]
/// if the packet is too short.
///
/// Use it for types of 2 bytes or more: for one byte LLVM turns the check
/// into `start >= end`, from which the verifier (6.18) learns no readable
/// range when the offset is variable.
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

/// Stores `v` in `slot` as a store of its own (volatile), which LLVM does not
/// merge with its neighbours into a memset.
#[inline(always)]
fn set<T: Copy>(slot: &mut T, v: T) {
    // SAFETY: a pointer made from a reference: valid, aligned, exclusive.
    unsafe { core::ptr::write_volatile(slot, v) }
}

/// Bounds-checks `N` bytes at `offset` and returns their address.
#[inline(always)]
fn bytes_at<const N: usize>(
    data: usize,
    data_end: usize,
    offset: usize,
) -> Result<usize, Malformed> {
    ptr_at::<[u8; N]>(data, data_end, offset).map(|p| p as usize)
}

/// The 2 bytes at `offset`, in memory order.
#[inline(always)]
fn two(data: usize, data_end: usize, offset: usize) -> Result<[u8; 2], Malformed> {
    let p = bytes_at::<2>(data, data_end, offset)?;
    // SAFETY: bytes_at checked the 2 bytes are inside the packet.
    Ok(unsafe { u16_at(p) }.to_ne_bytes())
}

/// The 4 bytes at `offset`, in memory order.
#[inline(always)]
fn four(data: usize, data_end: usize, offset: usize) -> Result<[u8; 4], Malformed> {
    let p = bytes_at::<4>(data, data_end, offset)?;
    // SAFETY: bytes_at checked the 4 bytes are inside the packet.
    Ok(unsafe { u32_at(p) }.to_ne_bytes())
}

#[inline(always)]
fn read_be16(data: usize, data_end: usize, offset: usize) -> Result<u16, Malformed> {
    two(data, data_end, offset).map(u16::from_be_bytes)
}

/// Parses into `p` (which lives in a per-CPU map: the stack is too small
/// for it). Every field is (re)written, so `p`'s previous content is
/// irrelevant.
#[inline(always)]
pub(crate) fn parse(data: usize, data_end: usize, p: &mut Packet) -> Result<Parsed, Malformed> {
    let eth = bytes_at::<14>(data, data_end, 0)?;
    // SAFETY: bytes_at checked the 14 bytes of the Ethernet header: the
    // words at 0 and 6 end at 8 and 14.
    let (dst_mac, src_mac) = unsafe { (u64_at(eth) & MAC_MASK, u64_at(eth + 6) & MAC_MASK) };
    let mut proto = read_be16(data, data_end, 12)?;
    let mut l3 = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        // The tag is TCI (2 bytes) then the encapsulated EtherType.
        proto = read_be16(data, data_end, l3 + 2)?;
        l3 += VLAN_HLEN;
    }
    let l2_cast = if dst_mac == MAC_MASK {
        cast::BROADCAST
    } else if dst_mac.to_ne_bytes()[0] & 1 == 1 {
        cast::MULTICAST
    } else {
        0
    };
    p.src_mac = src_mac;
    p.dst_mac = dst_mac;
    p.l3 = l3;
    // One store each: plain stores of these neighbours become a memset
    // call, which the BPF backend makes a byte loop.
    set(&mut p.is_v6, false);
    set(&mut p.proto, 0);
    set(&mut p.sport, 0);
    set(&mut p.dport, 0);
    set(&mut p.has_ports, false);
    set(&mut p.icmp_type, 0);
    set(&mut p.has_icmp_type, false);
    set(&mut p.dscp, 0);
    set(&mut p.ecn, 0);
    set(&mut p.l2_cast, l2_cast);
    set(&mut p.too_deep, false);
    set(&mut p.tcp_flags, 0);
    set(&mut p.ethertype, proto);
    set(&mut p.l4, 0);
    let (l4, first_fragment) = match proto {
        ETH_P_IP => ipv4(data, data_end, p)?,
        ETH_P_IPV6 => ipv6(data, data_end, p)?,
        _ => return Ok(Parsed::Other),
    };
    if first_fragment && !p.too_deep {
        transport(data, data_end, l4, p)?;
        // Below 64 KiB: an offset is at most the headers the parser walks.
        set(&mut p.l4, l4 as u16);
    }
    Ok(Parsed::Ip)
}

/// Fills addresses and protocol; returns the transport header's offset and
/// whether the packet carries it (not a non-first fragment).
#[inline(always)]
fn ipv4(data: usize, data_end: usize, p: &mut Packet) -> Result<(usize, bool), Malformed> {
    let h = bytes_at::<20>(data, data_end, p.l3)?;
    // SAFETY: bytes_at checked the 20 bytes of the fixed header; each
    // word below is inside them.
    let (w0, w1, w2, src, dst) = unsafe {
        (
            u32_at(h).to_ne_bytes(),
            u32_at(h + 4).to_ne_bytes(),
            u32_at(h + 8).to_ne_bytes(),
            u32_at(h + 12),
            u32_at(h + 16),
        )
    };
    let (version, ihl) = (w0[0] >> 4, usize::from(w0[0] & 0x0f));
    if version != 4 || ihl < 5 {
        return Err(Malformed);
    }
    // Options are part of the header: the whole of it must be there.
    ptr_at::<[u8; 2]>(data, data_end, p.l3 + ihl * 4 - 2)?;
    p.dscp = w0[1] >> 2;
    p.ecn = w0[1] & 0x03;
    p.proto = w2[1];
    p.set_v4(src, dst);
    // Fragment offset (13 bits, in 8-byte units): non-zero for every
    // fragment but the first, which alone carries the transport header.
    let frag_offset = u16::from_be_bytes([w1[2], w1[3]]) & 0x1fff;
    Ok((p.l3 + ihl * 4, frag_offset == 0))
}

#[inline(always)]
fn ipv6(data: usize, data_end: usize, p: &mut Packet) -> Result<(usize, bool), Malformed> {
    let h = bytes_at::<IPV6_HLEN>(data, data_end, p.l3)?;
    // SAFETY: bytes_at checked the 40 bytes of the header; each word below
    // is inside them.
    let (w0, w1, src, dst) = unsafe {
        (
            u32_at(h).to_ne_bytes(),
            u32_at(h + 4).to_ne_bytes(),
            [u64_at(h + 8), u64_at(h + 16)],
            [u64_at(h + 24), u64_at(h + 32)],
        )
    };
    if w0[0] >> 4 != 6 {
        return Err(Malformed);
    }
    p.is_v6 = true;
    let tclass = (w0[0] << 4) | (w0[1] >> 4);
    p.dscp = tclass >> 2;
    p.ecn = tclass & 0x03;
    p.set_v6(src, dst);
    let mut next = w1[2];
    let mut off = p.l3 + IPV6_HLEN;
    let mut first_fragment = true;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let e = two(data, data_end, off)?;
                next = e[0];
                off += (usize::from(e[1]) + 1) * 8;
            }
            IPPROTO_AH => {
                let e = two(data, data_end, off)?;
                next = e[0];
                off += (usize::from(e[1]) + 2) * 4;
            }
            IPPROTO_FRAGMENT => {
                let e = four(data, data_end, off)?;
                next = e[0];
                if u16::from_be_bytes([e[2], e[3]]) & 0xfff8 != 0 {
                    first_fragment = false;
                }
                off += 8;
            }
            _ => {
                p.proto = next;
                return Ok((off, first_fragment));
            }
        }
    }
    p.proto = next;
    // Still an extension header after the bound: transport unknown.
    p.too_deep = matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
    );
    Ok((off, first_fragment))
}

#[inline(always)]
fn transport(data: usize, data_end: usize, l4: usize, p: &mut Packet) -> Result<(), Malformed> {
    match p.proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            let ports = four(data, data_end, l4)?;
            p.sport = u16::from_be_bytes([ports[0], ports[1]]);
            p.dport = u16::from_be_bytes([ports[2], ports[3]]);
            p.has_ports = true;
            // Flags at byte 13; a header cut short before them is not
            // malformed here (it never was): it just opens no connection.
            if p.proto == IPPROTO_TCP
                && let Ok(b) = two(data, data_end, l4 + 12)
            {
                p.tcp_flags = b[1];
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            // Type and code: an ICMP header shorter than that is malformed.
            p.icmp_type = two(data, data_end, l4)?[0];
            p.has_icmp_type = true;
        }
        _ => {}
    }
    Ok(())
}
