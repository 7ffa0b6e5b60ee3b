//! Token buckets shared by all CPUs, as one 64-bit word each.
//!
//! The algorithm is GCRA (the virtual-scheduling form of a token bucket,
//! ITU-T I.371): the word holds the bucket's theoretical arrival time (TAT)
//! in ns. A packet costing `c` ns conforms if `max(TAT, now) + c - now <=
//! tolerance`, and then moves TAT to `max(TAT, now) + c`. This is exactly a
//! token bucket of rate `1/cost` and depth `tolerance/cost`, but its state is
//! a single word, so a compare-and-swap updates it without a lock and without
//! lost updates: no per-CPU copies, so the burst is not multiplied by the CPU
//! count.
//!
//! Error bound: the cost is computed in 48.16 fixed point, so each packet's
//! cost is short by less than 1 ns (truncation); over `n` packets the bucket
//! admits at most `n` ns of extra time, i.e. a relative rate error below
//! `1 / cost_of_one_packet_in_ns` (< 0.01% for any packet at 1 Gbit/s or
//! less). A CAS that keeps failing ([`MAX_TRIES`]) treats the packet as
//! non-conforming, which can only make the limit stricter.

use policy_common::early_drop_p16;

use crate::atomic::compare_exchange;

/// Attempts before giving up on a contended bucket. Contention needs another
/// CPU to update the same bucket between our read and our CAS; with 4 tries
/// giving up requires four such races in a row.
const MAX_TRIES: usize = 4;

pub(crate) enum Outcome {
    /// Conforms. `backlog_ns` is how much of the tolerance is now in use.
    Conform {
        backlog_ns: u64,
    },
    Exceed,
    /// Would conform, but is dropped early (see [`drop_early`]); the bucket
    /// is left as it was, so the packet costs no tokens.
    EarlyDrop,
    /// Gave up after [`MAX_TRIES`] lost races; treated as `Exceed`.
    Contended,
}

/// Cost in ns of `units` (bytes or packets) at `cost_fp` ns per unit (48.16).
#[inline(always)]
pub(crate) fn cost(cost_fp: u64, units: u64) -> u64 {
    // Both factors are clamped so the product fits in 64 bits: packets are
    // below 64 KiB and userspace keeps cost_fp below 2^47 (rates of at least
    // 1 byte/s). An overflow check would need a 128-bit multiply, which BPF
    // does not have.
    (cost_fp.min(MAX_COST_FP) * units.min(MAX_UNITS)) >> 16
}

/// Largest cost per unit accepted (48.16 fixed point): about 2.1e9 ns per
/// byte, i.e. rates down to 0.5 byte/s.
pub(crate) const MAX_COST_FP: u64 = 1 << 47;
const MAX_UNITS: u64 = 1 << 16;

/// # Safety
/// `tat` must point to the bucket word in a map value.
#[inline(always)]
///
/// `early`, when given, makes the bucket drop packets early (see
/// [`drop_early`]); it gives a uniform random value and is called only for
/// packets in the early-drop zone.
pub(crate) unsafe fn take(
    tat: *mut u64,
    now: u64,
    cost: u64,
    tolerance: u64,
    early: Option<impl Fn() -> u32>,
) -> Outcome {
    // Decided once, on a first read, outside the compare-and-swap loop: a
    // test in each of its unrolled tries multiplied the paths the verifier
    // walks. A race meanwhile moves the backlog by one packet at most.
    if let Some(random) = &early {
        // SAFETY: as below.
        let old = unsafe { core::ptr::read_volatile(tat) };
        let backlog = old.max(now).saturating_add(cost) - now;
        if backlog <= tolerance && drop_early(backlog, tolerance, random) {
            return Outcome::EarlyDrop;
        }
    }
    for _ in 0..MAX_TRIES {
        // SAFETY: the caller guarantees `tat`; a torn read is impossible for
        // an aligned u64 and a stale one only makes the CAS fail.
        let old = unsafe { core::ptr::read_volatile(tat) };
        let base = if old > now { old } else { now };
        let new = base.saturating_add(cost);
        if new - now > tolerance {
            return Outcome::Exceed;
        }
        // SAFETY: as above.
        if unsafe { compare_exchange(tat, old, new) } == old {
            return Outcome::Conform {
                backlog_ns: new - now,
            };
        }
    }
    Outcome::Contended
}

/// Whether a packet that would leave `backlog` of `tolerance` in use is
/// dropped early (policy-common's `early_drop_p16` says why and how often);
/// `random` is called only where the probability is not 0.
#[inline(always)]
fn drop_early(backlog: u64, tolerance: u64, random: &impl Fn() -> u32) -> bool {
    let p = early_drop_p16(backlog, tolerance);
    p != 0 && u64::from(random() & 0xffff) < p
}
