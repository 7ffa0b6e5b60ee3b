//! Map keys built in place with word stores.
//!
//! aya-ebpf's LPM `Key` is `repr(packed)` and policy-common's `GenAddr` has
//! a byte-array field: built field by field, both become byte stores (and
//! a memset subprogram call for the zeroed part). These buffers have the
//! same layout at an alignment that lets every field be one store, and
//! are handed to the map helpers as the key type they stand for.

use aya_ebpf::maps::lpm_trie::Key;
use policy_common::{GENERATION_BITS, GenAddr, GenPrefix, GenPrefix4};

/// `Key<GenPrefix>`: prefix length, generation (big-endian), address.
#[repr(C, align(8))]
pub(crate) struct Prefix6 {
    prefix_len: u32,
    generation_be: u32,
    addr: [u64; 2],
}

impl Prefix6 {
    /// The full-length key for `addr` (as native-endian words).
    #[inline(always)]
    pub(crate) fn new(generation: u32, addr: [u64; 2]) -> Self {
        Self {
            prefix_len: GENERATION_BITS + 128,
            generation_be: generation.to_be(),
            addr,
        }
    }

    #[inline(always)]
    pub(crate) fn key(&self) -> &Key<GenPrefix> {
        const { assert!(size_of::<Self>() == size_of::<Key<GenPrefix>>()) };
        // SAFETY: `Key<GenPrefix>` is repr(C, packed) (alignment 1): a u32
        // prefix length then 20 data bytes, the generation's big-endian
        // bytes and the address's, which is this struct's layout byte for
        // byte, with the same size (asserted above).
        unsafe { &*core::ptr::from_ref(self).cast::<Key<GenPrefix>>() }
    }
}

/// `Key<GenPrefix4>`: prefix length, generation (big-endian), IPv4 address.
#[repr(C, align(4))]
pub(crate) struct Prefix4 {
    prefix_len: u32,
    generation_be: u32,
    addr: u32,
}

impl Prefix4 {
    /// The full-length key for `addr` (the address's bytes in memory order).
    #[inline(always)]
    pub(crate) fn new(generation: u32, addr: u32) -> Self {
        Self {
            prefix_len: GENERATION_BITS + 32,
            generation_be: generation.to_be(),
            addr,
        }
    }

    #[inline(always)]
    pub(crate) fn key(&self) -> &Key<GenPrefix4> {
        const { assert!(size_of::<Self>() == size_of::<Key<GenPrefix4>>()) };
        // SAFETY: as for Prefix6: a u32 prefix length then 8 data bytes,
        // the generation's big-endian bytes and the address's.
        unsafe { &*core::ptr::from_ref(self).cast::<Key<GenPrefix4>>() }
    }
}

/// `GenAddr`: generation, then the address.
#[repr(C, align(4))]
pub(crate) struct Addr {
    generation: u32,
    addr: [u32; 4],
}

impl Addr {
    /// `addr` as four native-endian words.
    #[inline(always)]
    pub(crate) fn new(generation: u32, addr: [u32; 4]) -> Self {
        Self { generation, addr }
    }

    #[inline(always)]
    pub(crate) fn key(&self) -> &GenAddr {
        const {
            assert!(size_of::<Self>() == size_of::<GenAddr>());
            assert!(align_of::<Self>() == align_of::<GenAddr>());
        };
        // SAFETY: `GenAddr` is repr(C): a u32 generation then 16 address
        // bytes, at alignment 4: this struct's layout, size and alignment
        // (asserted above).
        unsafe { &*core::ptr::from_ref(self).cast::<GenAddr>() }
    }
}
