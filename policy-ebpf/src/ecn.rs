//! Setting ECN Congestion Experienced in place (RFC 3168), so TCP senders
//! slow down before a limit has to drop.

use crate::parse::{MAX_L3_OFFSET, Packet, ptr_at};

/// Sets CE on an ECN-capable packet; IPv4's header checksum is updated
/// incrementally (RFC 1624). Returns whether the packet was changed.
#[inline(always)]
pub(crate) fn mark_ce(data: usize, data_end: usize, p: &Packet) -> bool {
    if p.ecn == 0 || p.ecn == 3 {
        return false;
    }
    // The offset comes back from a map value, where the verifier has lost
    // its bounds: re-establish them (Ethernet plus at most two VLAN tags).
    let l3 = p.l3;
    if l3 > MAX_L3_OFFSET {
        return false;
    }
    if p.is_v6 {
        // Traffic class is bits 4..12 of the first word; ECN is its low two
        // bits, i.e. bits 4..6 of byte 1.
        let Ok(word) = ptr_at::<[u8; 2]>(data, data_end, l3) else {
            return false;
        };
        // SAFETY: ptr_at checked the bytes are inside the packet, and packet
        // data is writable from XDP and (after pull) from TC.
        unsafe { (*(word as *mut [u8; 2]))[1] |= 0x30 };
        return true;
    }
    let Ok(hdr) = ptr_at::<[u8; 12]>(data, data_end, l3) else {
        return false;
    };
    // SAFETY: as above; the reference lives only within this function,
    // while nothing else touches the packet.
    let hdr = unsafe { &mut *(hdr as *mut [u8; 12]) };
    let old_word = u16::from_be_bytes([hdr[0], hdr[1]]);
    hdr[1] |= 0x03;
    let new_word = u16::from_be_bytes([hdr[0], hdr[1]]);
    let check = u16::from_be_bytes([hdr[10], hdr[11]]);
    // HC' = ~(~HC + ~m + m')
    let mut sum = u32::from(!check) + u32::from(!old_word) + u32::from(new_word);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    let new_check = !(sum as u16);
    hdr[10..12].copy_from_slice(&new_check.to_be_bytes());
    true
}
