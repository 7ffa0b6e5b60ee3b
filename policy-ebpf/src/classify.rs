//! Which class a packet is in: the first matching rule (elephant flows are
//! reclassified after, in elephant.rs).

use policy_common::{
    CLASS_DEFAULT, ClassRule, Config, MAX_CLASS_RULES, dir, field, matches_non_ip, present,
    set_filter_bit,
};

use crate::{
    keys, learn,
    maps::{CLASS_RULES, SET_CIDRS, SET_CIDRS4, SET_FILTER},
    parse::Packet,
};

/// How many rule slots the loops below walk: [`MAX_CLASS_RULES`] unless the
/// loader set it lower (policy-common's `rule_slots`). In `.rodata`, which
/// the loader freezes: to the verifier it is a constant, and it walks the
/// loops that many times, not 64 (a third of the XDP program's verified
/// instructions at 64).
#[unsafe(no_mangle)]
static RULE_SLOTS: u32 = MAX_CLASS_RULES;

/// The loops' bound: [`RULE_SLOTS`], never past the rule array's half.
#[inline(always)]
fn slots(cfg: &Config) -> u32 {
    // SAFETY: a plain read of a static. Volatile so that the compiler does
    // not fold the value it was built with: the loader may have set it.
    let slots = unsafe { core::ptr::read_volatile(&RULE_SLOTS) };
    slots.min(MAX_CLASS_RULES).min(cfg.rule_count)
}

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
    if f & field::ETHERTYPE != 0 && r.ethertype != p.ethertype {
        return false;
    }
    true
}

/// The class of a non-IP frame: the first rule that can match non-IP
/// frames ([`matches_non_ip`]) and does, or [`CLASS_DEFAULT`] when none
/// does (the caller then passes the frame unenforced).
#[inline(always)]
pub(crate) fn classify_non_ip(p: &Packet, cfg: &Config, generation: u32) -> u32 {
    let slots = slots(cfg);
    for i in 0..MAX_CLASS_RULES {
        if i >= slots {
            break;
        }
        if let Some(r) = CLASS_RULES.get(generation * MAX_CLASS_RULES + i)
            && matches_non_ip(r.fields)
            // No IP conditions: the direction and sets are not read.
            && matches(r, p, dir::UPLOAD, 0)
        {
            return r.class;
        }
    }
    CLASS_DEFAULT
}

/// Whether SET_FILTER has the bit of an address whose first word (memory
/// order) is `first`: if not, no set prefix can hold it.
#[inline(always)]
fn may_be_in_a_set(generation: u32, v6: bool, first: u32) -> bool {
    let b = first.to_ne_bytes();
    let (word, bit) = set_filter_bit(generation, v6, u32::from(u16::from_be_bytes([b[0], b[1]])));
    SET_FILTER.get(word).is_some_and(|w| (w >> bit) & 1 != 0)
}

/// The class of the first matching rule, or [`CLASS_DEFAULT`].
#[inline(always)]
pub(crate) fn classify(
    p: &Packet,
    direction: u8,
    cfg: &Config,
    generation: u32,
    user: policy_common::UserId,
) -> u32 {
    let remote_is_src = direction != dir::UPLOAD;
    let sets = if cfg.present & present::SETS == 0 {
        0
    } else {
        let names = cfg.present & present::NAMES != 0;
        let scope = learn::scope(cfg, user);
        // One branch per IP version, each with its own filter check and
        // lookups: a second branch on the version after the first doubles
        // the paths the verifier walks.
        let by_addr = match p.mapped_v4(remote_is_src) {
            Some(a) => {
                let cidrs = if may_be_in_a_set(generation, false, a) {
                    SET_CIDRS4
                        .get(keys::Prefix4::new(generation, a).key())
                        .copied()
                        .unwrap_or(0)
                } else {
                    0
                };
                cidrs
                    | if names {
                        learn::sets4(scope, a, generation)
                    } else {
                        0
                    }
            }
            None => {
                let cidrs = if may_be_in_a_set(generation, true, p.words32(remote_is_src)[0]) {
                    SET_CIDRS
                        .get(keys::Prefix6::new(generation, p.words64(remote_is_src)).key())
                        .copied()
                        .unwrap_or(0)
                } else {
                    0
                };
                cidrs
                    | if names {
                        learn::sets6(scope, p.words32(remote_is_src), generation)
                    } else {
                        0
                    }
            }
        };
        by_addr
            | if names {
                learn::flow_sets(p, direction, generation)
            } else {
                0
            }
    };
    let slots = slots(cfg);
    for i in 0..MAX_CLASS_RULES {
        if i >= slots {
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
