//! Map names and default sizes, shared by `#[map(name = ...)]` in the kernel
//! crate and by the loader. Names are at most 15 bytes (BPF_OBJ_NAME_LEN - 1).

/// Exact IPv4 source address (`[u8; 4]`, network order) -> [`crate::UserId`].
pub const MAP_USERS_V4: &str = "USERS_V4";
/// Exact IPv6 source address (`[u8; 16]`) -> [`crate::UserId`].
pub const MAP_USERS_V6: &str = "USERS_V6";
/// IPv4 CIDR (LPM key: `u32` prefix length + `[u8; 4]`) -> [`crate::UserId`];
/// the longest matching prefix wins.
pub const MAP_USER_CIDRS_V4: &str = "USER_CIDRS_V4";
/// IPv6 CIDR (LPM key: `u32` prefix length + `[u8; 16]`) -> [`crate::UserId`].
pub const MAP_USER_CIDRS_V6: &str = "USER_CIDRS_V6";
/// [`crate::UserId`] -> [`crate::UserPolicy`].
pub const MAP_USER_POLICY: &str = "USER_POLICY";
/// [`crate::UserId`] -> per-CPU [`crate::UserCounters`].
pub const MAP_USER_COUNTERS: &str = "USER_COUNTERS";
/// [`crate::global_counter`] index -> per-CPU `u64`.
pub const MAP_GLOBAL_COUNTERS: &str = "GLOBAL_COUNTERS";

/// Compiled-in capacity of the per-user arrays (ids `0..MAX_USERS`). The
/// loader can raise it at load time; this default keeps the per-CPU counter
/// array small (65 536 x 32 B per CPU).
pub const DEFAULT_MAX_USERS: u32 = 65_536;
/// Compiled-in capacity of each exact-address hash map.
pub const DEFAULT_MAX_ADDRS: u32 = 65_536;
/// Compiled-in capacity of each CIDR LPM trie.
pub const DEFAULT_MAX_CIDRS: u32 = 16_384;
