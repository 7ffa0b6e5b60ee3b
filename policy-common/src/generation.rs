//! Double-buffered policy generations.
//!
//! Every table filled from the policy holds two generations side by side:
//! hash and LPM keys carry the generation, arrays have one half per
//! generation. A packet reads [`crate::MAP_GENERATION`] once and looks up
//! only that generation, so a reload writes the idle generation in full,
//! then switches with one store: no packet ever sees half a policy.

use crate::Addr16;

/// Two: the one in force and the one being written.
pub const GENERATIONS: u32 = 2;

/// An address in a generation (exact-address and binding maps).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenAddr {
    pub generation: u32,
    pub addr: Addr16,
}

/// A MAC address (padded to 8 bytes) in a generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenMac {
    pub generation: u32,
    pub mac: [u8; 8],
}

/// A 32-bit value (UID) in a generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenU32 {
    pub generation: u32,
    pub value: u32,
}

/// A 64-bit value (cgroup id) in a generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenU64 {
    pub generation: u32,
    pub _pad: u32,
    pub value: u64,
}

/// LPM trie data: the generation (big-endian, so it is the first 32 bits of
/// every prefix) then the address. A prefix of length `n` is stored as
/// `32 + n`.
pub type GenPrefix = [u8; 20];

/// Bits of a [`GenPrefix`] taken by the generation.
pub const GENERATION_BITS: u32 = 32;

pub const fn gen_prefix(generation: u32, addr: &Addr16) -> GenPrefix {
    let g = generation.to_be_bytes();
    let mut out = [0u8; 20];
    out[0] = g[0];
    out[1] = g[1];
    out[2] = g[2];
    out[3] = g[3];
    let mut i = 0;
    while i < 16 {
        out[4 + i] = addr[i];
        i += 1;
    }
    out
}
