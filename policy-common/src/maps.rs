//! Map names and default sizes, shared by `#[map(name = ...)]` in the kernel
//! crate and by the loader. Names are at most 15 bytes (BPF_OBJ_NAME_LEN - 1).
//! The loader may raise any size at load time (`Capacity` in userspace).

// Identity.
/// [`crate::GenAddr`] -> [`crate::UserId`]: exact IPv6 addresses (not
/// IPv4-mapped ones: those are in [`MAP_USERS4`]).
pub const MAP_USERS: &str = "USERS";
/// [`crate::GenU32`] (the IPv4 address's bytes in memory order) ->
/// [`crate::UserId`]: exact IPv4 addresses, an 8-byte key where IPv6 needs
/// 20.
pub const MAP_USERS4: &str = "USERS4";
/// LPM trie, [`crate::GenPrefix`] -> [`crate::UserId`]: IPv6 prefixes (see
/// [`crate::split_prefix`]).
pub const MAP_USER_CIDRS: &str = "USER_CIDRS";
/// LPM trie, [`crate::GenPrefix4`] -> [`crate::UserId`]: IPv4 prefixes.
pub const MAP_USER_CIDRS4: &str = "USER_CIDRS4";
/// [`crate::Mac8`] -> [`crate::UserId`].
pub const MAP_USER_MACS: &str = "USER_MACS";
/// Socket owner UID (`u32`) -> [`crate::UserId`]; TC egress only.
pub const MAP_USER_UIDS: &str = "USER_UIDS";
/// cgroup v2 id (`u64`) -> [`crate::UserId`]; TC egress only.
pub const MAP_USER_CGROUPS: &str = "USER_CGROUPS";
/// [`crate::Addr16`] -> [`crate::MacBinding`] (anti-spoofing).
pub const MAP_IP_BINDINGS: &str = "IP_BINDINGS";
/// [`crate::UserId`] -> [`crate::UserInfo`].
pub const MAP_USER_INFO: &str = "USER_INFO";
/// Array: ifindex -> [`crate::IfaceConfig`] (ifindex below
/// [`crate::MAX_IFINDEX`]).
pub const MAP_IFACES: &str = "IFACES";

// Classification.
/// Index -> [`crate::ClassRule`], evaluated in order.
pub const MAP_CLASS_RULES: &str = "CLASS_RULES";
/// LPM trie, [`crate::GenPrefix`] -> `u64` bitmap of the sets the prefix
/// is in: IPv6 prefixes.
pub const MAP_SET_CIDRS: &str = "SET_CIDRS";
/// LPM trie, [`crate::GenPrefix4`] -> `u64`: IPv4 prefixes.
pub const MAP_SET_CIDRS4: &str = "SET_CIDRS4";
/// Array of `u64` bitmaps: per generation and IP version, whether any set
/// prefix covers addresses with these first 16 bits
/// ([`crate::set_filter_bit`]); a clear bit spares the trie lookup.
pub const MAP_SET_FILTER: &str = "SET_FILTER";
/// Array of [`crate::SKETCH_ROWS`] x width `u64` byte counts: the
/// count-min sketch of elephant detection (see sketch.rs).
pub const MAP_FLOW_SKETCH: &str = "FLOW_SKETCH";
/// Array of two rows of `u64` slots: the UDP flows seen recently, for
/// connection-rate limits (see conn.rs).
pub const MAP_CONN_FLOWS: &str = "CONN_FLOWS";
/// Array: user id -> [`crate::ScanState`], scan detection and quarantine.
pub const MAP_SCAN: &str = "SCAN";
/// Array of [`crate::QuotaSlot`]: [`crate::Config::quota_slots`] per user
/// id, byte quotas (see quota.rs).
pub const MAP_QUOTAS: &str = "QUOTAS";

// Destinations learned by name (see learn.rs).
/// [`crate::LearnedKey4`] -> [`crate::LearnedSets`]: IPv4 addresses DNS
/// answers gave for names in domain sets.
pub const MAP_LEARNED4: &str = "LEARNED4";
/// [`crate::LearnedKey6`] -> [`crate::LearnedSets`]: IPv6 ones.
pub const MAP_LEARNED6: &str = "LEARNED6";
/// LRU [`crate::NameFlowKey`] -> [`crate::LearnedSets`]: TLS flows whose
/// ClientHello named a name in a domain set.
pub const MAP_NAME_FLOWS: &str = "NAME_FLOWS";
/// Ring buffer of [`crate::SnoopRecord`]: DNS answers and TLS handshakes
/// for the daemon to read.
pub const MAP_NAMES_RING: &str = "NAMES_RING";
/// [`crate::LearnedKey6`] (IPv4 as mapped) -> [`crate::DomainName`]: the
/// name each learned address is in its sets for, for `policyd status`.
/// Only userspace reads and writes it.
pub const MAP_LEARNED_NAMES: &str = "LEARNED_NAMES";
/// `generation * MAX_SETS + set` -> [`crate::NameSlot`]: the set names of
/// each generation, for `policyd status`.
pub const MAP_SET_NAMES: &str = "SET_NAMES";

// Actions.
/// Array of [`crate::ActionEntry`]: per generation, rows of
/// [`crate::Config::action_stride`] entries (one per class), a row for each
/// distinct treatment; [`crate::UserInfo::row`] says whose is whose.
pub const MAP_ACTIONS: &str = "ACTIONS";
/// Class id -> [`crate::ActionEntry`]: limits on a class as a whole.
pub const MAP_CLASS_LIMITS: &str = "CLASS_LIMITS";
/// `class * 2 + dir` -> bucket time (`u64`), for the class limits.
pub const MAP_CLASS_BUCKETS: &str = "CLASS_BUCKETS";
/// Hash (not LRU) [`crate::BucketKey`] -> bucket time (`u64`).
pub const MAP_BUCKETS: &str = "BUCKETS";
/// Array of [`crate::UnidSlot`]: the `unidentified` user's per-source
/// buckets (see unid.rs).
pub const MAP_UNID_BUCKETS: &str = "UNID_BUCKETS";
/// Per generation: the active profile index (`u32`).
pub const MAP_ACTIVE_PROFILE: &str = "ACTIVE_PROFILE";
/// Per generation: [`crate::Config`].
pub const MAP_CONFIG: &str = "CONFIG";
/// Single entry: the generation in force (0 or 1). Switching it is the one
/// store that makes a reloaded policy take effect.
pub const MAP_GENERATION: &str = "GENERATION";

// Accounting.
/// Per-CPU hash [`crate::CounterKey`] -> [`crate::Counters`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// [`crate::global_counter`] index -> per-CPU `u64`.
pub const MAP_GLOBAL_COUNTERS: &str = "GLOBAL_COUNTERS";
/// Ring buffer of [`crate::Event`].
pub const MAP_EVENTS: &str = "EVENTS";
/// Array: user id -> [`crate::EventTimes`], when each kind of event was
/// last sent for the user.
pub const MAP_EVENT_LIMITER: &str = "EVENT_LIMITER";

// Ids (see names.rs).
/// User id (`u32`) -> [`crate::NameSlot`]: whose id it is.
pub const MAP_USER_NAMES: &str = "USER_NAMES";
/// Class id (`u32`) -> [`crate::NameSlot`].
pub const MAP_CLASS_NAMES: &str = "CLASS_NAMES";
/// `generation * MAX_PROFILES + profile` -> [`crate::NameSlot`]: the
/// profile names of each generation (see daemon.rs).
pub const MAP_PROFILE_NAMES: &str = "PROFILE_NAMES";

// The daemon (see daemon.rs).
/// One [`crate::DaemonInfo`]: the daemon serving the pins, or the last one.
pub const MAP_DAEMON: &str = "DAEMON";

// Replay (see replay.rs).
/// Array of `u64` at [`crate::replay_clock`] indexes: the time and random
/// state of a replay's programs. Not pinned: only a replay's own programs read it.
pub const MAP_REPLAY_CLOCK: &str = "REPLAY_CLOCK";

/// Every `MAP_*` name above, in the same order: the one list a check
/// walks (the kernel's `#[map(name = ...)]` must spell each of them, as
/// aya ignores a size or pin set for a name the object does not have).
/// The test below keeps it complete.
pub const ALL_MAPS: &[&str] = &[
    MAP_USERS,
    MAP_USERS4,
    MAP_USER_CIDRS,
    MAP_USER_CIDRS4,
    MAP_USER_MACS,
    MAP_USER_UIDS,
    MAP_USER_CGROUPS,
    MAP_IP_BINDINGS,
    MAP_USER_INFO,
    MAP_IFACES,
    MAP_CLASS_RULES,
    MAP_SET_CIDRS,
    MAP_SET_CIDRS4,
    MAP_SET_FILTER,
    MAP_FLOW_SKETCH,
    MAP_CONN_FLOWS,
    MAP_SCAN,
    MAP_QUOTAS,
    MAP_LEARNED4,
    MAP_LEARNED6,
    MAP_NAME_FLOWS,
    MAP_NAMES_RING,
    MAP_LEARNED_NAMES,
    MAP_SET_NAMES,
    MAP_ACTIONS,
    MAP_CLASS_LIMITS,
    MAP_CLASS_BUCKETS,
    MAP_BUCKETS,
    MAP_UNID_BUCKETS,
    MAP_ACTIVE_PROFILE,
    MAP_CONFIG,
    MAP_GENERATION,
    MAP_COUNTERS,
    MAP_GLOBAL_COUNTERS,
    MAP_EVENTS,
    MAP_EVENT_LIMITER,
    MAP_USER_NAMES,
    MAP_CLASS_NAMES,
    MAP_PROFILE_NAMES,
    MAP_DAEMON,
    MAP_REPLAY_CLOCK,
];

// Least sizes of the tables filled from the policy (per generation). The
// loader sizes each to the policy's need and a quarter more (userspace's
// capacity.rs), never below these, so a small policy costs little (about
// 7 MiB in all) and a reload that grows it a little still fits.

/// Least capacity of the per-user arrays (ids `0..MAX_USERS`).
pub const DEFAULT_MAX_USERS: u32 = 4_096;
/// Least capacity of the exact-address, MAC and binding maps.
pub const DEFAULT_MAX_ADDRS: u32 = 4_096;
/// Least capacity of the user CIDR trie.
pub const DEFAULT_MAX_CIDRS: u32 = 4_096;
/// Least capacity of the UID and cgroup maps.
pub const DEFAULT_MAX_SOCKET_OWNERS: u32 = 1_024;
/// Least capacity of the destination-set trie.
pub const DEFAULT_MAX_SET_CIDRS: u32 = 4_096;
/// Least capacity of the action table, in entries per generation (rows x
/// classes); 128 bytes each.
pub const DEFAULT_MAX_ACTIONS: u32 = 4_096;
/// Least number of (user, class, direction) counter entries; the loader
/// sizes the map for every user in every class both ways, up to
/// [`MAX_FITTED_COUNTERS`].
pub const DEFAULT_MAX_COUNTERS: u32 = 4_096;
/// Most counter entries the loader makes room for by itself (the map has
/// no preallocation, but its bucket array, 16 bytes per entry, does).
pub const MAX_FITTED_COUNTERS: u32 = 1 << 21;
/// Size of the token-bucket map in the object; the loader sizes it to fit
/// the policy (a plain hash: a limited user's bucket is never evicted).
pub const DEFAULT_MAX_BUCKETS: u32 = 1_024;
/// Size of the event ring buffer in bytes (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::ALL_MAPS;

    /// The value of each `pub const MAP_...: &str = "..."` in this file's
    /// source: a constant added without a place in [`ALL_MAPS`] fails here.
    fn declared() -> impl Iterator<Item = &'static str> {
        include_str!("maps.rs").lines().filter_map(|line| {
            let rest = line.strip_prefix("pub const MAP_")?;
            let (_, value) = rest.split_once("= \"")?;
            value.strip_suffix("\";")
        })
    }

    #[test]
    fn all_maps_lists_every_map_constant_once() {
        for name in declared() {
            assert!(ALL_MAPS.contains(&name), "{name} is missing from ALL_MAPS");
        }
        assert_eq!(declared().count(), ALL_MAPS.len(), "{ALL_MAPS:?}");
        for (i, name) in ALL_MAPS.iter().enumerate() {
            assert!(!ALL_MAPS[..i].contains(name), "{name} is listed twice");
        }
    }

    /// The kernel limits map names to BPF_OBJ_NAME_LEN - 1 bytes.
    #[test]
    fn map_names_fit_the_kernel_limit() {
        for name in ALL_MAPS {
            assert!(name.len() <= 15, "{name} is longer than 15 bytes");
        }
    }
}
