//! Enforcement events to userspace, at most one per (user, kind) per
//! configured interval, so a flood of denied packets is a trickle of events.
//!
//! Time is the coarse monotonic clock (`bpf_ktime_get_coarse_ns`, kernel
//! 5.11+: the tick's time, about 4 ns to read where the precise clock
//! costs 33): an interval of milliseconds or more needs no better, and
//! every denied or limited packet reads it.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use policy_common::{EVENT_TIME_SHIFT, Event, event_kind, global_counter};

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
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let slot = kind.wrapping_sub(1) as usize;
    if slot >= event_kind::COUNT {
        return;
    }
    // A user id past the array (never written by userspace) has no slot
    // and its events go unlimited: none is lost.
    if let Some(times) = EVENT_LIMITER.get_ptr_mut(user) {
        let stamp = (now >> EVENT_TIME_SHIFT) as u32;
        // SAFETY: the pointer is to this user's array value, valid for the
        // run. Racing CPUs may both read the old time and pass: at most one
        // extra event each, the same as the hash this replaced.
        let last = unsafe { core::ptr::read_volatile(&(*times).last[slot]) };
        // 0 is never written (`max(1)` below): it means no event yet.
        if last != 0 && u64::from(stamp.wrapping_sub(last)) < interval_ns >> EVENT_TIME_SHIFT {
            return;
        }
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&mut (*times).last[slot], stamp.max(1)) };
    }
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
