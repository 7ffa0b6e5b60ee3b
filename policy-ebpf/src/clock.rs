//! Time and randomness: the kernel's, or a replay's (policy-common's
//! replay.rs). Every stage reads them here, so a replay's programs judge
//! each packet at its capture timestamp.

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns};
use policy_common::{replay_clock, xorshift64};

use crate::maps::REPLAY_CLOCK;

/// 1 in a replay's programs (`policyd replay` sets it at load), 0 in a
/// daemon's. In `.rodata`, which the loader freezes: to the verifier it is
/// a constant, so a daemon's programs keep only the kernel's clocks.
#[unsafe(no_mangle)]
static VIRTUAL_CLOCK: u8 = 0;

#[inline(always)]
fn is_virtual() -> bool {
    // SAFETY: a plain read of a static. Volatile so that the compiler does
    // not fold the 0 it was built with: the loader may have set it.
    unsafe { core::ptr::read_volatile(&VIRTUAL_CLOCK) != 0 }
}

/// The replay's time; 1 (never 0, "never" to the tables) if the map is
/// missing, which a loaded object cannot be.
#[inline(always)]
fn replay_now() -> u64 {
    REPLAY_CLOCK.get(replay_clock::NOW).copied().unwrap_or(1)
}

/// The precise monotonic clock, ns (`bpf_ktime_get_ns`: about 33 ns).
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    if is_virtual() {
        return replay_now();
    }
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

/// The coarse monotonic clock, ns (`bpf_ktime_get_coarse_ns`, kernel 5.11+:
/// the last tick's time, about 4 ns): for windows of milliseconds or more.
/// A replay's is its precise time.
#[inline(always)]
pub(crate) fn coarse_ns() -> u64 {
    if is_virtual() {
        return replay_now();
    }
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// A uniformly random `u32`; a replay's comes from its seeded generator, so
/// its early drops fall on the same packets every time.
#[inline(always)]
pub(crate) fn random() -> u32 {
    if is_virtual() {
        if let Some(state) = REPLAY_CLOCK.get_ptr_mut(replay_clock::RANDOM) {
            // SAFETY: the map's value, valid for the run; a replay runs one
            // packet at a time.
            unsafe {
                let next = xorshift64(*state | 1);
                *state = next;
                return (next >> 32) as u32;
            }
        }
        return 0;
    }
    // SAFETY: a helper without arguments.
    unsafe { bpf_get_prandom_u32() }
}
