//! What kind of traffic a packet is: ordered class rules, first match wins.

/// Class ids are `0..MAX_CLASSES`; class 0 is `default`, which a packet gets
/// when no rule matches.
pub const MAX_CLASSES: u32 = 64;
pub const CLASS_DEFAULT: u32 = 0;
/// Most rules the kernel evaluates (a bounded loop, so the verifier can
/// prove it ends).
pub const MAX_CLASS_RULES: u32 = 64;
/// The `.rodata` global that bounds the kernel's rule loops at load: the
/// verifier walks every iteration up to the bound (about 2 400 verified
/// instructions each in XDP, twice that in TC on kernel 6.18), so the
/// loader sets it to what the policy needs with room to grow
/// ([`rule_slots`]) instead of [`MAX_CLASS_RULES`].
pub const RULE_SLOTS_GLOBAL: &str = "RULE_SLOTS";
/// The fewest rule slots a load gets.
pub const MIN_RULE_SLOTS: u32 = 16;

/// The rule slots a load gets for a policy of `rules` kernel rules: a
/// quarter more, at least [`MIN_RULE_SLOTS`], rounded up to a multiple of
/// 8, at most [`MAX_CLASS_RULES`]. A reload needing more is refused (a
/// restart verifies the programs again with a larger bound).
pub const fn rule_slots(rules: u32) -> u32 {
    let want = rules.saturating_add(rules / 4);
    let want = if want < MIN_RULE_SLOTS {
        MIN_RULE_SLOTS
    } else {
        want
    };
    let rounded = want.saturating_add(7) / 8 * 8;
    if rounded > MAX_CLASS_RULES {
        MAX_CLASS_RULES
    } else {
        rounded
    }
}
/// Most named CIDR sets: membership is a `u64` bitmap.
pub const MAX_SETS: u32 = 64;

/// Bits of [`ClassRule::fields`]: which conditions the rule has. A rule with
/// no bits matches every IP packet.
pub mod field {
    /// Conditions only an IP packet can meet: a rule with any of them never
    /// matches a non-IP frame.
    pub const IP_ONLY: u32 = PROTO | USER_PORT | REMOTE_PORT | REMOTE_SETS | ICMP_TYPE | DSCP;
    /// Conditions a non-IP frame can meet: a rule needs one of them (and
    /// none of [`IP_ONLY`]) to match non-IP frames, so a rule without
    /// conditions, or a policy written before non-IP frames were
    /// classified, leaves ARP and the like alone.
    pub const NON_IP: u32 = L2_CAST | ETHERTYPE;

    pub const PROTO: u32 = 1 << 0;
    pub const USER_PORT: u32 = 1 << 1;
    pub const REMOTE_PORT: u32 = 1 << 2;
    pub const REMOTE_SETS: u32 = 1 << 3;
    pub const L2_CAST: u32 = 1 << 4;
    pub const ICMP_TYPE: u32 = 1 << 5;
    pub const DSCP: u32 = 1 << 6;
    /// The frame's EtherType (after VLAN tags) is [`super::ClassRule::ethertype`];
    /// never an IP one (validation refuses those), so such a rule matches
    /// non-IP frames only.
    pub const ETHERTYPE: u32 = 1 << 7;
}

/// Whether a rule with these [`field`] bits can match a non-IP frame.
#[inline(always)]
pub const fn matches_non_ip(fields: u32) -> bool {
    fields & field::IP_ONLY == 0 && fields & field::NON_IP != 0
}

/// EtherTypes the policy language names.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86DD;
    pub const QINQ: u16 = 0x88A8;
    pub const LLDP: u16 = 0x88CC;
    /// Smaller values in the EtherType field are 802.3 lengths (IEEE
    /// 802.3 clause 3.2.6), not types.
    pub const MIN: u16 = 0x0600;
}

/// What [`field::L2_CAST`] matches (bits, so "broadcast or multicast" is 3).
pub mod cast {
    pub const BROADCAST: u8 = 1 << 0;
    pub const MULTICAST: u8 = 1 << 1;
}

/// One classification rule, in [`crate::MAP_CLASS_RULES`] at its position.
///
/// Rules speak of the user's end and the remote end, not of source and
/// destination, so one rule covers both directions: on an upload the remote
/// end is the destination, on a download the source. Ports are inclusive
/// ranges. Packets without ports (non-first fragments,
/// protocols other than TCP/UDP/SCTP) never match a rule with a port
/// condition; packets without an ICMP type never match an ICMP-type rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassRule {
    /// Bits of [`field`].
    pub fields: u32,
    /// The class a matching packet gets.
    pub class: u32,
    /// The remote address must be in one of these sets (bit `i` = set `i`).
    pub remote_sets: u64,
    pub user_port_lo: u16,
    pub user_port_hi: u16,
    pub remote_port_lo: u16,
    pub remote_port_hi: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: u8,
    /// Bits of [`cast`].
    pub l2_cast: u8,
    pub icmp_type: u8,
    /// DSCP codepoint (0..=63).
    pub dscp: u8,
    /// EtherType for [`field::ETHERTYPE`], host order.
    pub ethertype: u16,
    pub _pad: u16,
}

/// Words of [`crate::MAP_SET_FILTER`] per IP version and generation: one
/// bit for each value of an address's first 16 bits.
pub const SET_FILTER_WORDS: u32 = (1 << 16) / 64;

/// The index of the filter word and the bit in it for an address whose
/// first 16 bits are `top16`, in generation `generation`, for IPv6 (`v6`)
/// or IPv4.
#[inline(always)]
pub const fn set_filter_bit(generation: u32, v6: bool, top16: u32) -> (u32, u32) {
    let base = (generation * 2 + v6 as u32) * SET_FILTER_WORDS;
    (base + (top16 >> 6), top16 & 63)
}

/// The first-16-bit values a prefix of `len` bits whose first 16 bits are
/// `top16` covers: `first..=last`.
pub const fn set_filter_range(len: u32, top16: u32) -> (u32, u32) {
    if len >= 16 {
        return (top16, top16);
    }
    let free = 16 - len;
    let first = (top16 >> free) << free;
    (first, first + (1 << free) - 1)
}

#[cfg(test)]
mod tests {
    use super::{
        MAX_CLASS_RULES, MIN_RULE_SLOTS, SET_FILTER_WORDS, rule_slots, set_filter_bit,
        set_filter_range,
    };

    #[test]
    fn rule_slots_leave_a_quarter_more_in_multiples_of_eight() {
        assert_eq!(rule_slots(0), MIN_RULE_SLOTS);
        assert_eq!(rule_slots(12), 16);
        assert_eq!(rule_slots(13), 16);
        assert_eq!(rule_slots(14), 24, "14 and a quarter (rounded down) is 17");
        assert_eq!(rule_slots(20), 32);
        assert_eq!(rule_slots(51), MAX_CLASS_RULES);
        assert_eq!(rule_slots(64), MAX_CLASS_RULES);
        assert_eq!(rule_slots(u32::MAX), MAX_CLASS_RULES);
        for n in 0..=MAX_CLASS_RULES {
            let slots = rule_slots(n);
            assert!(
                slots >= n && slots.is_multiple_of(8) && slots <= MAX_CLASS_RULES,
                "{n}: {slots}"
            );
        }
    }

    #[test]
    fn filter_bits_are_per_generation_and_version() {
        assert_eq!(set_filter_bit(0, false, 0), (0, 0));
        assert_eq!(set_filter_bit(0, false, 0xffff), (SET_FILTER_WORDS - 1, 63));
        assert_eq!(set_filter_bit(0, true, 65), (SET_FILTER_WORDS + 1, 1));
        assert_eq!(set_filter_bit(1, false, 0), (2 * SET_FILTER_WORDS, 0));
    }

    #[test]
    fn a_short_prefix_covers_a_range_of_first_words() {
        assert_eq!(set_filter_range(24, 0x0a0b), (0x0a0b, 0x0a0b));
        assert_eq!(set_filter_range(8, 0x0a0b), (0x0a00, 0x0aff));
        assert_eq!(set_filter_range(0, 0x1234), (0, 0xffff));
    }
}
