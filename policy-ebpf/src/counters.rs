//! Per-CPU counters: plain increments are enough because no other CPU writes
//! this CPU's slot, and the program runs with preemption disabled.

use crate::{
    enforce::Verdict,
    maps::{GLOBAL_COUNTERS, USER_COUNTERS},
};

#[inline(always)]
pub(crate) fn user(user: u32, verdict: &Verdict, len: u64) {
    if let Some(c) = USER_COUNTERS.get_ptr_mut(user) {
        // SAFETY: the pointer is this CPU's slot, valid for the program's run.
        let c = unsafe { &mut *c };
        match verdict {
            Verdict::Pass => {
                c.passed_packets += 1;
                c.passed_bytes += len;
            }
            Verdict::Drop => {
                c.dropped_packets += 1;
                c.dropped_bytes += len;
            }
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
