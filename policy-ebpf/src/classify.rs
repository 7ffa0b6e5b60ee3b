//! Which class a packet is in: the first matching rule (elephant flows are
//! reclassified after, in elephant.rs).

use policy_common::{
    CLASS_DEFAULT, ClassRule, Config, MAX_CLASS_RULES, dir, field, present, set_filter_bit,
};

use crate::{
    keys,
    maps::{CLASS_RULES, SET_CIDRS, SET_CIDRS4, SET_FILTER},
    parse::Packet,
};

/// The packet's ports seen from the user: (user's port, remote port).
#[inline(always)]
fn ports(p: &Packet, direction: u8) -> (u16, u16) {
    if direction == dir::UPLOAD {
        (p.sport, p.dport)
    } else {
        (p.dport, p.sport)
    }
}

#[inline(always)]
fn matches(r: &ClassRule, p: &Packet, direction: u8, sets: u64) -> bool {
    let f = r.fields;
    if f & field::PROTO != 0 && r.proto != p.proto {
        return false;
    }
    let (user_port, remote_port) = ports(p, direction);
    if f & field::USER_PORT != 0
        && !(p.has_ports && r.user_port_lo <= user_port && user_port <= r.user_port_hi)
    {
        return false;
    }
    if f & field::REMOTE_PORT != 0
        && !(p.has_ports && r.remote_port_lo <= remote_port && remote_port <= r.remote_port_hi)
    {
        return false;
    }
    if f & field::REMOTE_SETS != 0 && r.remote_sets & sets == 0 {
        return false;
    }
    if f & field::L2_CAST != 0 && r.l2_cast & p.l2_cast == 0 {
        return false;
    }
    if f & field::ICMP_TYPE != 0 && !(p.has_icmp_type && r.icmp_type == p.icmp_type) {
        return false;
    }
    if f & field::DSCP != 0 && r.dscp != p.dscp {
        return false;
    }
    true
}

/// The class of the first matching rule, or [`CLASS_DEFAULT`].
#[inline(always)]
pub(crate) fn classify(p: &Packet, direction: u8, cfg: &Config, generation: u32) -> u32 {
    let remote_is_src = direction != dir::UPLOAD;
    let sets = if cfg.present & present::SETS == 0 {
        0
    } else {
        let v4 = p.mapped_v4(remote_is_src);
        // The first 16 bits of the remote address (of the IPv4 address for
        // a mapped one), in network order.
        let first = match v4 {
            Some(a) => a.to_ne_bytes(),
            None => p.words32(remote_is_src)[0].to_ne_bytes(),
        };
        let top16 = u32::from(u16::from_be_bytes([first[0], first[1]]));
        let (word, bit) = set_filter_bit(generation, v4.is_none(), top16);
        if SET_FILTER.get(word).is_none_or(|w| (w >> bit) & 1 == 0) {
            0
        } else {
            match v4 {
                Some(a) => SET_CIDRS4.get(keys::Prefix4::new(generation, a).key()),
                None => {
                    SET_CIDRS.get(keys::Prefix6::new(generation, p.words64(remote_is_src)).key())
                }
            }
            .copied()
            .unwrap_or(0)
        }
    };
    for i in 0..MAX_CLASS_RULES {
        if i >= cfg.rule_count {
            break;
        }
        if let Some(r) = CLASS_RULES.get(generation * MAX_CLASS_RULES + i)
            && matches(r, p, direction, sets)
        {
            return r.class;
        }
    }
    CLASS_DEFAULT
}
