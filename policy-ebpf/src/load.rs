//! Loads from packet memory as one instruction each.
//!
//! A Rust read of a `u32` at a byte offset has alignment 1, which LLVM's
//! BPF backend splits into four byte loads and three shift-or pairs (the
//! parser spent most of its time so, with the bytes spilled to the stack).
//! The verifier accepts unaligned packet loads where the architecture has
//! efficient unaligned access and the program was not loaded with
//! `BPF_F_STRICT_ALIGNMENT` (kernel/bpf/verifier.c,
//! `check_pkt_ptr_alignment`; x86-64, arm64), so these emit the load
//! itself, in inline assembly that LLVM does not split. The value is in
//! memory order, as `from_ne_bytes` would give it.

use core::arch::asm;

/// # Safety
/// `p` must point into the packet with at least 8 bytes after it, as a
/// `ptr_at` check just established (the verifier rejects the program
/// otherwise, so a wrong call cannot load and run).
#[inline(always)]
pub(crate) unsafe fn u64_at(p: usize) -> u64 {
    let r: u64;
    // SAFETY: the caller guarantees the 8 bytes are in the packet.
    unsafe {
        asm!(
            "{r} = *(u64 *)({p} + 0)",
            p = in(reg) p,
            r = lateout(reg) r,
            options(readonly, nostack, preserves_flags),
        );
    }
    r
}

/// # Safety
/// As [`u64_at`], for 4 bytes.
#[inline(always)]
pub(crate) unsafe fn u32_at(p: usize) -> u32 {
    let r: u64;
    // SAFETY: the caller guarantees the 4 bytes are in the packet.
    unsafe {
        asm!(
            "{r} = *(u32 *)({p} + 0)",
            p = in(reg) p,
            r = lateout(reg) r,
            options(readonly, nostack, preserves_flags),
        );
    }
    r as u32
}

/// # Safety
/// As [`u64_at`], for 2 bytes.
#[inline(always)]
pub(crate) unsafe fn u16_at(p: usize) -> u16 {
    let r: u64;
    // SAFETY: the caller guarantees the 2 bytes are in the packet.
    unsafe {
        asm!(
            "{r} = *(u16 *)({p} + 0)",
            p = in(reg) p,
            r = lateout(reg) r,
            options(readonly, nostack, preserves_flags),
        );
    }
    r as u16
}
