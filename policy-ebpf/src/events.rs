//! Enforcement events to userspace, at most one per (user, kind) per
//! configured interval, so a flood of denied packets is a trickle of events.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use policy_common::{Event, global_counter};

use crate::{
    counters,
    enforce::Traffic,
    maps::{EVENT_LIMITER, EVENTS},
    parse::Packet,
};

#[inline(always)]
pub(crate) fn emit(kind: u32, t: &Traffic, p: &Packet, interval_ns: u64) {
    let Traffic {
        user,
        class,
        dir: direction,
        len,
        ..
    } = *t;
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let key = (u64::from(user) << 8) | u64::from(kind);
    // SAFETY: LruHashMap::get's hazard is an entry evicted and reused for
    // another key while we hold the reference; one u64 is read at once, so
    // at worst an event is suppressed or let through early.
    if let Some(last) = unsafe { EVENT_LIMITER.get(key) }
        && now.wrapping_sub(*last) < interval_ns
    {
        return;
    }
    // Racing CPUs may both pass the check: at most one extra event each.
    let _ = EVENT_LIMITER.insert(key, now, 0);
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        counters::global(global_counter::EVENTS_LOST);
        return;
    };
    // Filled in place: an Event built on the stack and copied would cost 72
    // of the program's 512 stack bytes.
    let e: *mut Event = entry.as_mut_ptr();
    // SAFETY: the reservation is an exclusive, Event-sized, aligned slot; all
    // fields are written before submit.
    unsafe {
        (*e).ts_ns = now;
        (*e).kind = kind;
        (*e).user = user;
        (*e).class = class;
        (*e).len = len as u32;
        (*e).src = p.src;
        (*e).dst = p.dst;
        (*e).src_mac = [
            p.src_mac[0],
            p.src_mac[1],
            p.src_mac[2],
            p.src_mac[3],
            p.src_mac[4],
            p.src_mac[5],
            0,
            0,
        ];
        (*e).sport = p.sport;
        (*e).dport = p.dport;
        (*e).proto = p.proto;
        (*e).dir = direction;
        (*e)._pad = [0; 2];
    }
    entry.submit(0);
}
