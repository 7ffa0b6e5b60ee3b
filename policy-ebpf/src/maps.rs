//! Map definitions. Names come from policy-common so the loader finds them;
//! sizes are compiled-in defaults the loader may raise at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray},
};
use policy_common::{
    DEFAULT_MAX_ADDRS, DEFAULT_MAX_CIDRS, DEFAULT_MAX_USERS, UserCounters, UserId, UserPolicy,
    global_counter,
};

// Exact addresses: a hash lookup is O(1) whatever the number of users, so
// these are tried before the tries. Written only by userspace, hence a plain
// (preallocated) hash rather than an LRU.
#[map(name = "USERS_V4")]
pub(crate) static USERS_V4: HashMap<[u8; 4], UserId> =
    HashMap::with_max_entries(DEFAULT_MAX_ADDRS, 0);

#[map(name = "USERS_V6")]
pub(crate) static USERS_V6: HashMap<[u8; 16], UserId> =
    HashMap::with_max_entries(DEFAULT_MAX_ADDRS, 0);

// CIDRs: longest-prefix match is exactly what LPM tries do (kernel >= 4.11).
#[map(name = "USER_CIDRS_V4")]
pub(crate) static USER_CIDRS_V4: LpmTrie<[u8; 4], UserId> =
    LpmTrie::with_max_entries(DEFAULT_MAX_CIDRS, 0);

#[map(name = "USER_CIDRS_V6")]
pub(crate) static USER_CIDRS_V6: LpmTrie<[u8; 16], UserId> =
    LpmTrie::with_max_entries(DEFAULT_MAX_CIDRS, 0);

// Dense user ids make the policy an array: one bounds-checked index, no hashing.
#[map(name = "USER_POLICY")]
pub(crate) static USER_POLICY: Array<UserPolicy> = Array::with_max_entries(DEFAULT_MAX_USERS, 0);

// Per-CPU so the hot path increments without atomics; userspace sums the CPUs.
#[map(name = "USER_COUNTERS")]
pub(crate) static USER_COUNTERS: PerCpuArray<UserCounters> =
    PerCpuArray::with_max_entries(DEFAULT_MAX_USERS, 0);

#[map(name = "GLOBAL_COUNTERS")]
pub(crate) static GLOBAL_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(global_counter::COUNT, 0);
