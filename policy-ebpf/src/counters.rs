//! Per-CPU counters: plain increments are enough because no other CPU writes
//! this CPU's slot, and the program runs with preemption disabled.

use policy_common::{CounterKey, drop_reason, global_counter};

use crate::{
    enforce::{Decision, Traffic},
    maps::{COUNTERS, GLOBAL_COUNTERS, ZERO_COUNTERS},
};

/// Counts the packet under (user, class, direction) and, for a drop,
/// `reason` (a [`drop_reason`]: any but `RULE` has an entry of its own).
#[inline(always)]
pub(crate) fn account(t: &Traffic, decision: Decision, marked: bool, reason: u8) {
    let len = t.len;
    let key = CounterKey {
        user: t.user,
        class: t.class as u16,
        dir: t.dir,
        reason: if matches!(decision, Decision::Deny | Decision::Limited) {
            reason
        } else {
            drop_reason::RULE
        },
    };
    let ptr = match COUNTERS.get_ptr_mut(key) {
        Some(p) => p,
        None => {
            let Some(zero) = ZERO_COUNTERS.get(0) else {
                return;
            };
            if COUNTERS.insert(key, zero, 0).is_err() {
                global(global_counter::MAP_FULL);
                return;
            }
            match COUNTERS.get_ptr_mut(key) {
                Some(p) => p,
                None => {
                    global(global_counter::MAP_FULL);
                    return;
                }
            }
        }
    };
    // SAFETY: this CPU's slot of the entry, valid for the program's run.
    let c = unsafe { &mut *ptr };
    match decision {
        Decision::Pass => {
            c.pass_packets += 1;
            c.pass_bytes += len;
            if marked {
                c.ecn_marked_packets += 1;
            }
        }
        Decision::Deny => {
            c.deny_packets += 1;
            c.deny_bytes += len;
        }
        Decision::Limited => {
            c.limit_packets += 1;
            c.limit_bytes += len;
        }
        Decision::Monitor => {
            c.monitor_packets += 1;
            c.monitor_bytes += len;
        }
    }
}

#[inline(always)]
pub(crate) fn global(index: u32) {
    if let Some(c) = GLOBAL_COUNTERS.get_ptr_mut(index) {
        // SAFETY: as above.
        unsafe { *c += 1 };
    }
}
