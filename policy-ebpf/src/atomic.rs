//! Atomic read-modify-write on map values, written as BPF instructions.
//!
//! `core::sync::atomic` offers no compare-exchange on bpfel, and
//! the intrinsics need `-C target-cpu=v3`, which aya-build (0.2.0) gives no
//! way to pass: it sets CARGO_ENCODED_RUSTFLAGS itself. These instructions
//! (BPF_ATOMIC with BPF_CMPXCHG) are in every kernel since 5.12
//! whatever the compiler's CPU setting, so we emit them directly.

use core::arch::asm;

/// Atomically replaces `*p` with `new` if it equals `old`; returns the value
/// found (equal to `old` on success).
///
/// # Safety
/// `p` must point to a valid, 8-byte aligned `u64` in a map value.
#[inline(always)]
pub(crate) unsafe fn compare_exchange(p: *mut u64, old: u64, new: u64) -> u64 {
    // BPF_CMPXCHG compares with and returns into r0.
    let mut r0 = old;
    // SAFETY: the caller guarantees `p`.
    unsafe {
        asm!(
            "r0 = cmpxchg_64({p} + 0, r0, {new})",
            p = in(reg) p,
            new = in(reg) new,
            inout("r0") r0,
        );
    }
    r0
}

/// Atomically adds `v` to `*p`; returns the value before the add.
///
/// # Safety
/// As for [`compare_exchange`].
#[inline(always)]
pub(crate) unsafe fn fetch_add(p: *mut u64, v: u64) -> u64 {
    // BPF_ADD | BPF_FETCH (kernel 5.12): the old value comes back in the
    // source register.
    let mut r = v;
    // SAFETY: the caller guarantees `p`.
    unsafe {
        asm!(
            "{r} = atomic_fetch_add((u64 *)({p} + 0), {r})",
            p = in(reg) p,
            r = inout(reg) r,
        );
    }
    r
}
