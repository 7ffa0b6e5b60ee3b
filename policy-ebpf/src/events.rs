//! Enforcement events to userspace, at most one per (user, kind) per
//! configured interval, so a flood of denied packets is a trickle of events.
//!
//! Time is the coarse monotonic clock (`bpf_ktime_get_coarse_ns`, kernel
//! 5.11+: the tick's time, about 4 ns to read where the precise clock
//! costs 33): an interval of milliseconds or more needs no better, and
//! every denied or limited packet reads it.

use policy_common::{EVENT_TIME_SHIFT, Event, event_kind, global_counter};

use crate::{
    counters,
    enforce::{Decision, Traffic},
    maps::{EVENT_LIMITER, EVENTS},
    parse::Packet,
};

#[inline(always)]
pub(crate) fn emit(kind: u32, t: &Traffic, p: &Packet, interval_ns: u64) {
    emit_with(kind, 0, t, p, interval_ns);
}

/// The event of an enforcement decision, if it has one (a pass has none).
#[inline(always)]
pub(crate) fn of_decision(decision: Decision, t: &Traffic, p: &Packet, interval_ns: u64) {
    let kind = match decision {
        Decision::Deny => event_kind::DENY,
        Decision::Limited => event_kind::LIMIT,
        Decision::Monitor => event_kind::MONITOR,
        Decision::Pass => return,
    };
    emit(kind, t, p, interval_ns);
}

/// [`emit`] with a reason code (QUARANTINE events). Kinds past the
/// limiter's slots (QUARANTINE: once per quarantine) are not limited.
#[inline(always)]
pub(crate) fn emit_with(kind: u32, reason: u8, t: &Traffic, p: &Packet, interval_ns: u64) {
    let Traffic {
        user,
        class,
        dir: direction,
        len,
        ..
    } = *t;
    let now = crate::clock::coarse_ns();
    let slot = kind.wrapping_sub(1) as usize;
    // A user id past the array (never written by userspace) has no slot
    // and its events go unlimited: none is lost.
    if slot < event_kind::COUNT
        && let Some(times) = EVENT_LIMITER.get_ptr_mut(user)
    {
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
        // Word by word: the addresses are aligned in the packet's scratch
        // slot and the reservation is 8-aligned (a byte copy here was a
        // memmove subprogram).
        copy_addr(&mut (*e).src, &p.src);
        copy_addr(&mut (*e).dst, &p.dst);
        (*e).src_mac = p.src_mac.to_ne_bytes();
        (*e).sport = p.sport;
        (*e).dport = p.dport;
        (*e).proto = p.proto;
        (*e).dir = direction;
        (*e).reason = reason;
        (*e)._pad = 0;
    }
    entry.submit(0);
}

/// Copies a 16-byte address as two words.
///
/// # Safety
/// Both must be 8-byte aligned: `from` a `Packet` address (see parse.rs),
/// `to` an address field of an `Event` in a ring-buffer reservation (8-byte
/// aligned records; the fields at offsets 24 and 40).
#[inline(always)]
unsafe fn copy_addr(to: &mut [u8; 16], from: &[u8; 16]) {
    let (t, f) = (to.as_mut_ptr().cast::<u64>(), from.as_ptr().cast::<u64>());
    // SAFETY: the caller guarantees the alignment; both are 16 bytes.
    unsafe {
        t.write(f.read());
        t.add(1).write(f.add(1).read());
    }
}
