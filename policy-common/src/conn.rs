//! Connection-rate limits: which packets open a connection, and the table
//! of recent UDP flows that tells a flow's first packet from the rest.
//!
//! A TCP connection opens with a SYN without ACK: that packet is counted,
//! nothing else of the flow is (a retransmitted SYN counts again, as it does
//! for nftables' `ct state new` meters: a client whose SYN was dropped
//! retries after its backoff, so a held mass mailer waits 1, 3, 7 s ...).
//! UDP has no handshake: a packet opens a flow when its 5-tuple and
//! direction is not among the flows seen in the last [`UDP_IDLE_UNITS`]
//! (about 30 s, conntrack's `nf_conntrack_udp_timeout`).
//!
//! The table is two rows of slots (as the elephant sketch, indexed by the
//! two halves of [`crate::flow_hash`] through [`crate::cells`]): a flow is
//! *seen* if either of its two slots holds its tag and a fresh stamp. A new
//! flow takes a slot that is empty or stale, else the older of its two.
//! Error: a flow is forgotten early only when two other flows live at once
//! took both its slots: with `F` flows live and `W` slots a row, about
//! `(F / W)^2` (1k live flows in a 32 768-wide table: one in a thousand);
//! a forgotten flow's next packet counts as one more connection, so the
//! error only ever makes the limit stricter. Two flows with the same 16-bit
//! tag in one slot pass for one another: one in 65 536 of the collisions
//! above.

/// Flags byte of the TCP header: SYN and ACK.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Default slots per row of [`crate::MAP_CONN_FLOWS`] (a power of two) for
/// a policy with a connection limit; a policy without one gets a single
/// slot per row.
pub const DEFAULT_CONN_FLOW_WIDTH: u32 = 32_768;

/// Stamps are `ktime_coarse_ns >> STAMP_SHIFT`: units of 1.07 s, which is
/// all an idle timeout of half a minute needs.
pub const STAMP_SHIFT: u32 = 30;

/// A UDP flow idle for this many stamp units (about 30 s) is forgotten: its
/// next packet opens a new flow.
pub const UDP_IDLE_UNITS: u32 = 28;

/// The slot word for a flow of hash `hash` seen at stamp `stamp`: the tag
/// (16 bits of the hash that neither row's index uses at widths up to
/// 2^16) above the stamp. Never 0, which marks an empty slot.
#[inline(always)]
pub const fn slot_word(hash: u64, stamp: u32) -> u64 {
    (tag(hash) << 32) | (stamp | 1) as u64
}

#[inline(always)]
const fn tag(hash: u64) -> u64 {
    (hash >> 16) & 0xffff
}

/// Whether `word` records the flow of hash `hash` as seen no longer than
/// [`UDP_IDLE_UNITS`] before `stamp`.
#[inline(always)]
pub const fn seen(word: u64, hash: u64, stamp: u32) -> bool {
    word != 0 && word >> 32 == tag(hash) && fresh(word, stamp)
}

/// Whether the slot's stamp is recent (the owner may still be sending).
#[inline(always)]
pub const fn fresh(word: u64, stamp: u32) -> bool {
    word != 0 && (stamp | 1).wrapping_sub(word as u32) <= UDP_IDLE_UNITS
}

/// Which of a new flow's two slots it takes (0 or 1): an empty or stale one
/// first, else the one stamped longer ago.
#[inline(always)]
pub const fn victim(words: [u64; 2], stamp: u32) -> usize {
    if !fresh(words[0], stamp) {
        return 0;
    }
    if !fresh(words[1], stamp) {
        return 1;
    }
    let now = stamp | 1;
    if now.wrapping_sub(words[1] as u32) > now.wrapping_sub(words[0] as u32) {
        1
    } else {
        0
    }
}

/// Whether a TCP packet with these header flags opens a connection.
#[inline(always)]
pub const fn tcp_opens(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_syn_without_ack_opens() {
        assert!(tcp_opens(TCP_SYN));
        assert!(tcp_opens(TCP_SYN | 0x08), "SYN with PSH");
        assert!(!tcp_opens(TCP_SYN | TCP_ACK), "the server's answer");
        assert!(!tcp_opens(TCP_ACK));
        assert!(!tcp_opens(0));
    }

    #[test]
    fn a_flow_is_seen_until_it_idles_out() {
        let h = 0x1234_5678_9abc_def0;
        let w = slot_word(h, 100);
        assert!(seen(w, h, 100));
        assert!(seen(w, h, 100 + UDP_IDLE_UNITS));
        assert!(!seen(w, h, 102 + UDP_IDLE_UNITS), "idle too long");
        assert!(!seen(w, h ^ (1 << 20), 100), "another tag");
        assert!(!seen(0, h, 100), "empty slot");
        assert!(!seen(0, 0, 0), "empty slot even for hash 0 at stamp 0");
    }

    #[test]
    fn a_new_flow_takes_the_empty_stale_or_older_slot() {
        let old = slot_word(7, 10);
        let newer = slot_word(9, 20);
        assert_eq!(victim([0, newer], 21), 0);
        assert_eq!(victim([newer, 0], 21), 1);
        assert_eq!(victim([old, newer], 21), 0);
        assert_eq!(victim([newer, old], 21), 1);
        assert_eq!(victim([newer, slot_word(9, 1)], 40), 1, "stale");
    }
}
