//! Which class a packet is in: the first matching rule, then elephant-flow
//! reclassification.

use aya_ebpf::maps::lpm_trie::Key;
use policy_common::{
    CLASS_DEFAULT, ClassRule, Config, GENERATION_BITS, MAX_CLASS_RULES, dir, field, gen_prefix,
    present,
};

use crate::{
    atomic::fetch_add,
    maps::{CLASS_RULES, FLOWS, SET_CIDRS},
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
    let remote = if direction == dir::UPLOAD {
        &p.dst
    } else {
        &p.src
    };
    let sets = if cfg.present & present::SETS != 0 {
        SET_CIDRS
            .get(Key::new(
                GENERATION_BITS + 128,
                gen_prefix(generation, remote),
            ))
            .copied()
            .unwrap_or(0)
    } else {
        0
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

/// Fills `p.flow` with the packet's flow key.
#[inline(always)]
fn set_flow_key(p: &mut Packet, direction: u8) {
    p.flow.src = p.src;
    p.flow.dst = p.dst;
    p.flow.sport = p.sport;
    p.flow.dport = p.dport;
    p.flow.proto = p.proto;
    p.flow.dir = direction;
    p.flow._pad = [0; 2];
}

/// Whether the packet's flow has already carried more than the elephant
/// threshold (in passed bytes). Only flows with ports are tracked.
#[inline(always)]
pub(crate) fn is_elephant(p: &mut Packet, direction: u8, cfg: &Config) -> bool {
    if cfg.elephant_bytes == 0 || !p.has_ports {
        return false;
    }
    set_flow_key(p, direction);
    // SAFETY: LruHashMap::get's hazard is an entry removed (here: evicted)
    // and reused for another key while we hold the reference; we read one
    // u64 at once, so at worst it is another flow's byte count, never
    // memory outside the map.
    unsafe { FLOWS.get(p.flow) }.is_some_and(|b| *b > cfg.elephant_bytes)
}

/// Adds a passed packet's bytes to its flow. Call after [`is_elephant`],
/// which filled the flow key.
#[inline(always)]
pub(crate) fn account_flow(p: &Packet, cfg: &Config, len: u64) {
    if cfg.elephant_bytes == 0 || !p.has_ports {
        return;
    }
    let key = &p.flow;
    match FLOWS.get_ptr_mut(key) {
        // SAFETY: the pointer is to the map value, valid for this run;
        // several CPUs may add at once, hence the atomic.
        Some(bytes) => unsafe {
            fetch_add(bytes, len);
        },
        None => {
            // Two CPUs may race to create the entry; one insert fails
            // (BPF_NOEXIST) and that packet's bytes are not counted.
            let _ = FLOWS.insert(key, len, u64::from(aya_ebpf::bindings::BPF_NOEXIST));
        }
    }
}
