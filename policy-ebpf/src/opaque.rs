//! Values the verifier cannot narrow: tests on copies that leave the
//! originals' known ranges alone, so that the states after a stage still
//! prune against each other.

/// `x`, as a value the verifier does not link to `x`'s register, so that a
/// test of the copy narrows only the copy. `user == 0` tested directly
/// left the verifier (kernel 6.18) knowing the user exactly on one side,
/// and as the user stays live (counters, events), the states after the
/// limit never pruned against each other: TC egress verified at 350 131
/// instructions instead of 191 327. A copy by `mov` would share the id and
/// be narrowed with it; an `xor` makes a new scalar.
#[inline(always)]
pub(crate) fn unlinked(x: u32) -> u32 {
    let out: u64;
    // SAFETY: register arithmetic only.
    unsafe {
        core::arch::asm!(
            "{out} = {x}",
            "{out} ^= 0",
            x = in(reg) u64::from(x),
            out = out(reg) out,
            options(pure, nomem, nostack),
        );
    }
    out as u32
}
