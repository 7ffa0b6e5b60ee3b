//! The clock of a replay (`policyd replay`): the kernel programs read time
//! and randomness from [`crate::MAP_REPLAY_CLOCK`] instead of the kernel
//! when loaded with the global [`VIRTUAL_CLOCK_GLOBAL`] set, so a capture's
//! packets are judged at the capture's timestamps and the same capture and
//! policy always give the same verdicts. A daemon never sets it: the
//! verifier then removes the reads (a frozen `.rodata` value is a
//! constant to it), and no map write can move a daemon's clock.

/// The name of the kernel's `.rodata` flag (a `u8`, 1 = virtual clock) the
/// loader sets (`EbpfLoader::set_global`).
pub const VIRTUAL_CLOCK_GLOBAL: &str = "VIRTUAL_CLOCK";

/// Indexes of [`crate::MAP_REPLAY_CLOCK`], an array of `u64`: two entries
/// rather than one struct, so that the replay moves the time with one
/// write and leaves the generator's state to the kernel.
pub mod replay_clock {
    /// The time of the packet in the programs' clock, ns (any origin but
    /// 0, which the kernel's tables read as "never"); both the precise and
    /// the coarse clock read it.
    pub const NOW: u32 = 0;
    /// State of the generator the early drops draw from (xorshift64,
    /// never 0): seeded by the replay, stepped by each draw.
    pub const RANDOM: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// One step of the generator behind [`replay_clock::RANDOM`] (Marsaglia's
/// xorshift64): the kernel steps it, and a test can predict it.
#[inline(always)]
pub const fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
