//! Map definitions. Names come from policy-common so the loader finds them;
//! sizes are defaults the loader may raise at load time. Each map says why
//! it has its type.
//!
//! Every named map is pinned by name (under the loader's pin directory):
//! a restarted policyd adopts them, so enforcement and counters carry on
//! across its restarts. The two scratch maps are per-run and not pinned.

use crate::{conn::Flow, parse::Packet, quota::QuotaScratch};
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use policy_common::{
    ActionEntry, BucketKey, ClassRule, Config, CounterKey, Counters, DEFAULT_CONN_FLOW_WIDTH,
    DEFAULT_MAX_ACTIONS, DEFAULT_MAX_ADDRS, DEFAULT_MAX_BUCKETS, DEFAULT_MAX_CIDRS,
    DEFAULT_MAX_COUNTERS, DEFAULT_MAX_LEARNED, DEFAULT_MAX_NAME_FLOWS, DEFAULT_MAX_SET_CIDRS,
    DEFAULT_MAX_SOCKET_OWNERS, DEFAULT_MAX_USERS, DEFAULT_SKETCH_WIDTH, DEFAULT_UNID_SLOTS,
    DaemonInfo, DomainName, EVENTS_BYTES, EventTimes, GENERATIONS, GenAddr, GenMac, GenPrefix,
    GenPrefix4, GenU32, GenU64, IfaceConfig, LearnedKey4, LearnedKey6, LearnedSets,
    MAX_CLASS_RULES, MAX_CLASSES, MAX_IFINDEX, MAX_PROFILES, MAX_SETS, MacBinding,
    NAMES_RING_BYTES, NameFlowKey, NameSlot, QuotaSlot, SET_FILTER_WORDS, SKETCH_ROWS, ScanState,
    UnidSlot, UserId, UserInfo, global_counter,
};

// Identity. Written only by userspace, so plain (preallocated) hashes: a
// lookup never allocates and an entry never disappears under load.
#[map(name = "USERS")]
pub(crate) static USERS: HashMap<GenAddr, UserId> =
    HashMap::pinned(DEFAULT_MAX_ADDRS * GENERATIONS, 0);

// IPv4 apart: an 8-byte key hashes in about half the time of the 20-byte
// one (11 against 20 ns, kernel 6.18).
#[map(name = "USERS4")]
pub(crate) static USERS4: HashMap<GenU32, UserId> =
    HashMap::pinned(DEFAULT_MAX_ADDRS * GENERATIONS, 0);

// Longest-prefix match is what LPM tries do (kernel >= 4.11).
#[map(name = "USER_CIDRS")]
pub(crate) static USER_CIDRS: LpmTrie<GenPrefix, UserId> =
    LpmTrie::pinned(DEFAULT_MAX_CIDRS * GENERATIONS, 0);

// IPv4 apart: the trie walks 64 bits of key instead of 160.
#[map(name = "USER_CIDRS4")]
pub(crate) static USER_CIDRS4: LpmTrie<GenPrefix4, UserId> =
    LpmTrie::pinned(DEFAULT_MAX_CIDRS * GENERATIONS, 0);

#[map(name = "USER_MACS")]
pub(crate) static USER_MACS: HashMap<GenMac, UserId> =
    HashMap::pinned(DEFAULT_MAX_ADDRS * GENERATIONS, 0);

#[map(name = "USER_UIDS")]
pub(crate) static USER_UIDS: HashMap<GenU32, UserId> =
    HashMap::pinned(DEFAULT_MAX_SOCKET_OWNERS * GENERATIONS, 0);

#[map(name = "USER_CGROUPS")]
pub(crate) static USER_CGROUPS: HashMap<GenU64, UserId> =
    HashMap::pinned(DEFAULT_MAX_SOCKET_OWNERS * GENERATIONS, 0);

#[map(name = "IP_BINDINGS")]
pub(crate) static IP_BINDINGS: HashMap<GenAddr, MacBinding> =
    HashMap::pinned(DEFAULT_MAX_ADDRS * GENERATIONS, 0);

// Dense user ids make per-user data an array: one bounds-checked index.
#[map(name = "USER_INFO")]
pub(crate) static USER_INFO: Array<UserInfo> = Array::pinned(DEFAULT_MAX_USERS * GENERATIONS, 0);

// Indexed by ifindex: every packet reads its interface's role, and an
// array read is a bounds check where a hash cost a lookup (and a miss for
// every interface policyd is not on). 65 536 entries of 8 bytes.
#[map(name = "IFACES")]
pub(crate) static IFACES: Array<IfaceConfig> = Array::pinned(MAX_IFINDEX, 0);

// Classification.
#[map(name = "CLASS_RULES")]
pub(crate) static CLASS_RULES: Array<ClassRule> = Array::pinned(MAX_CLASS_RULES * GENERATIONS, 0);

// One lookup gives every set the remote address is in: each prefix carries
// the bitmap of all sets that contain it (computed by userspace).
#[map(name = "SET_CIDRS")]
pub(crate) static SET_CIDRS: LpmTrie<GenPrefix, u64> =
    LpmTrie::pinned(DEFAULT_MAX_SET_CIDRS * GENERATIONS, 0);

// Most remote addresses are in no set: a bit per value of the first 16
// address bits (per generation and IP version, 32 KiB) says whether the
// trie can match at all, for the cost of an array read.
#[map(name = "SET_FILTER")]
pub(crate) static SET_FILTER: Array<u64> = Array::pinned(GENERATIONS * 2 * SET_FILTER_WORDS, 0);

// IPv4 apart, as USER_CIDRS4: 41 against 66 ns at 1 000 prefixes.
#[map(name = "SET_CIDRS4")]
pub(crate) static SET_CIDRS4: LpmTrie<GenPrefix4, u64> =
    LpmTrie::pinned(DEFAULT_MAX_SET_CIDRS * GENERATIONS, 0);

// The count-min sketch of elephant detection (policy-common's sketch.rs):
// two array cells per packet at indexes hashed once, where a flow table
// cost a hash lookup per packet and an LRU insert per new flow. Fixed
// memory whatever the number of flows; the loader sets the width.
#[map(name = "FLOW_SKETCH")]
pub(crate) static FLOW_SKETCH: Array<u64> = Array::pinned(SKETCH_ROWS * DEFAULT_SKETCH_WIDTH, 0);

// The UDP flows seen in the last half minute, for connection-rate limits
// (policy-common's conn.rs): two array slots per flow at indexes hashed
// once, fixed memory whatever the number of flows, no insert or eviction
// on the packet path (an LRU hash would allocate per new flow, 90-127 ns
// on this kernel). 2 x 32 768 slots of 8 bytes by default (512 KiB); the
// loader sets the width.
#[map(name = "CONN_FLOWS")]
pub(crate) static CONN_FLOWS: Array<u64> = Array::pinned(2 * DEFAULT_CONN_FLOW_WIDTH, 0);

// Scan detection and quarantine, indexed by user id (scan.rs in
// policy-common): an array, because a user's state must never be evicted
// (an LRU would forget a scanner half way, or a quarantine), and a
// packet reads it with one bounds check. 88 bytes a user; the loader sizes
// it to the users only when the policy detects scans, else one entry.
#[map(name = "SCAN")]
pub(crate) static SCAN: Array<ScanState> = Array::pinned(1, 0);

// Byte quotas (quota.rs in policy-common): `quota_slots` per user id. An
// array for the same reasons as SCAN: a budget must never be evicted, and
// the slots of a user are found by index. 80 bytes a slot; sized to the
// users times the most slots any user has only when the policy has quotas,
// else one entry. Pinned: usage survives restarts.
#[map(name = "QUOTAS")]
pub(crate) static QUOTAS: Array<QuotaSlot> = Array::pinned(1, 0);

// What quota.rs's loops found for the packet being processed: one slot per
// CPU like SCRATCH and for the same reasons.
#[map]
pub(crate) static QUOTA_SCRATCH: PerCpuArray<QuotaScratch> = PerCpuArray::with_max_entries(1, 0);

// Actions.
// Rows of actions by class, indexed through the user's row (dataplane's
// rows.rs folds user, group and everyone's rules together): one array read
// where the (user | group | everyone, class) hash cost up to three lookups.
#[map(name = "ACTIONS")]
pub(crate) static ACTIONS: Array<ActionEntry> = Array::pinned(DEFAULT_MAX_ACTIONS * GENERATIONS, 0);

#[map(name = "CLASS_LIMITS")]
pub(crate) static CLASS_LIMITS: Array<ActionEntry> = Array::pinned(MAX_CLASSES * GENERATIONS, 0);

// Shared by all CPUs on purpose (not per-CPU): see bucket.rs.
#[map(name = "CLASS_BUCKETS")]
pub(crate) static CLASS_BUCKETS: Array<u64> = Array::pinned(MAX_CLASSES * 2, 0);

// Created by traffic, but a plain preallocated hash, not LRU: an LRU map
// evicts a busy limited user's bucket when more triples are active than it
// has slots, and the user starts again with a full burst. The loader sizes
// it to fit every limited (user, class, direction) of the policy; an insert
// into a full map fails and the packet is treated as over the limit.
#[map(name = "BUCKETS")]
pub(crate) static BUCKETS: HashMap<BucketKey, u64> = HashMap::pinned(DEFAULT_MAX_BUCKETS, 0);

// The unidentified user's buckets, one per sender (unid.rs): an array of
// slots indexed by a hash, not a hash map or LRU, so its memory is fixed
// whatever the number of senders and nothing is ever evicted behind the
// data path's back: a sender only takes over a slot whose bucket is full
// again, and a slot still in use is shared (stricter) and counted. The
// loader sizes it from the policy (`[unidentified] slots`), 16 bytes a slot.
#[map(name = "UNID_BUCKETS")]
pub(crate) static UNID_BUCKETS: Array<UnidSlot> = Array::pinned(DEFAULT_UNID_SLOTS, 0);

#[map(name = "ACTIVE_PROFILE")]
pub(crate) static ACTIVE_PROFILE: Array<u32> = Array::pinned(GENERATIONS, 0);

#[map(name = "CONFIG")]
pub(crate) static CONFIG: Array<Config> = Array::pinned(GENERATIONS, 0);

// The one word a reload stores to switch generations (see generation.rs in
// policy-common): every policy table above holds two.
#[map(name = "GENERATION")]
pub(crate) static GENERATION: Array<u32> = Array::pinned(1, 0);

// Accounting. Per-CPU so the hot path increments without atomics. A plain
// hash (not LRU) so counters are never silently evicted: when it is full the
// MAP_FULL counter says so. No preallocation: entries cost memory only once
// traffic creates them.
#[map(name = "COUNTERS")]
pub(crate) static COUNTERS: PerCpuHashMap<CounterKey, Counters> =
    PerCpuHashMap::pinned(DEFAULT_MAX_COUNTERS, BPF_F_NO_PREALLOC);

// Always zero: the value new COUNTERS entries are created from. A map value
// rather than a stack variable, because the stack (512 bytes) is scarce.
#[map]
pub(crate) static ZERO_COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

// The packet being processed: too big for the 512-byte stack. One slot per
// CPU, shared by all three programs (XDP, TC ingress, TC egress): a run
// takes its CPU's slot from parse to its last event, and parse overwrites
// every field first, so nothing carries over between packets. One slot is
// enough because runs of these programs never overlap on a CPU: each runs
// to completion with bottom halves disabled and migration off, and none
// starts another hook while it runs. The argument, and the kernels it does
// not hold on (PREEMPT_RT), is in docs/datapath.md, "One scratch slot per
// CPU".
#[map]
pub(crate) static SCRATCH: PerCpuArray<Packet> = PerCpuArray::with_max_entries(1, 0);

// The packet's flow as connection limits and scan detection see it
// (conn.rs): in map memory for the verifier's sake (conn.rs says why), one
// slot per CPU like SCRATCH and for the same reasons.
#[map]
pub(crate) static FLOW: PerCpuArray<Flow> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "GLOBAL_COUNTERS")]
pub(crate) static GLOBAL_COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(global_counter::COUNT, 0);

#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::pinned(EVENTS_BYTES, 0);

// Indexed by user id, one slot per kind: a denied or limited packet reads
// it without a hash lookup, and no user's entry is ever evicted (an LRU
// evicting a flooding user's entry would let an event through early).
// Sized like USER_INFO's generation, 16 bytes a user.
#[map(name = "EVENT_LIMITER")]
pub(crate) static EVENT_LIMITER: Array<EventTimes> = Array::pinned(DEFAULT_MAX_USERS, 0);

// Ids. The name -> id allocation (policy-common's names.rs) lives here, in
// the object, so that it is pinned and adopted with the state keyed by ids:
// a restarted policyd gives every name the id its counters are under. No
// program reads it (the maps section keeps it in the object all the same).
// Arrays indexed by id (ids are dense), a zeroed slot for a free id: 72
// bytes an id, where a hash without preallocation took about 170 per id in
// use (element header, bucket, allocator rounding; 162 MiB at a million
// users against 86 for the array, kernel 6.18). A start reads them whole,
// in batches.
#[map(name = "USER_NAMES")]
pub(crate) static USER_NAMES: Array<NameSlot> = Array::pinned(DEFAULT_MAX_USERS, 0);

#[map(name = "CLASS_NAMES")]
pub(crate) static CLASS_NAMES: Array<NameSlot> = Array::pinned(MAX_CLASSES, 0);

// The profile names of each generation, and the daemon's record of itself
// (policy-common's daemon.rs): for `policyd status`, which reads the pins
// alone. In the object, like the names above, so that they are pinned with
// the state; a pin directory an older policyd made gets them created on
// adoption (a map whose pin is missing is made and pinned).
#[map(name = "PROFILE_NAMES")]
pub(crate) static PROFILE_NAMES: Array<NameSlot> =
    Array::pinned(GENERATIONS * MAX_PROFILES as u32, 0);

#[map(name = "DAEMON")]
pub(crate) static DAEMON: Array<DaemonInfo> = Array::pinned(1, 0);

// A replay's time and random state (clock.rs): an array so that the read
// is inlined. Not pinned: a daemon's programs never read it.
#[map(name = "REPLAY_CLOCK")]
pub(crate) static REPLAY_CLOCK: Array<u64> =
    Array::with_max_entries(policy_common::replay_clock::COUNT, 0);

// Learned destinations (learn.rs). Plain hashes written only by the daemon,
// which bounds them itself (`[names] max_learned`, counting what it
// evicts): an entry never disappears under load. Not preallocated: only
// userspace inserts (never a program, for which allocation could fail
// under load), and a policy without domain sets then costs their bucket
// arrays only. Sized at load.
#[map(name = "LEARNED4")]
pub(crate) static LEARNED4: HashMap<LearnedKey4, LearnedSets> =
    HashMap::pinned(DEFAULT_MAX_LEARNED, BPF_F_NO_PREALLOC);

#[map(name = "LEARNED6")]
pub(crate) static LEARNED6: HashMap<LearnedKey6, LearnedSets> =
    HashMap::pinned(DEFAULT_MAX_LEARNED, BPF_F_NO_PREALLOC);

// LRU: a flow's entry is written once, when its ClientHello is read, and
// never removed by the daemon (it does not see flows end); the least
// recently used give way to new ones.
#[map(name = "NAME_FLOWS")]
pub(crate) static NAME_FLOWS: LruHashMap<NameFlowKey, LearnedSets> =
    LruHashMap::pinned(DEFAULT_MAX_NAME_FLOWS, 0);

// For `policyd status` alone (no program reads them; the maps section keeps
// them in the object, as USER_NAMES): each learned address's name, without
// preallocation (256 bytes an entry in use), and each generation's set
// names.
#[map(name = "LEARNED_NAMES")]
pub(crate) static LEARNED_NAMES: HashMap<LearnedKey6, DomainName> =
    HashMap::pinned(2 * DEFAULT_MAX_LEARNED, BPF_F_NO_PREALLOC);

#[map(name = "SET_NAMES")]
pub(crate) static SET_NAMES: Array<NameSlot> = Array::pinned(GENERATIONS * MAX_SETS, 0);

// A ring of its own: a flood of DNS answers fills this one and never
// crowds out the events (and the reverse).
#[map(name = "NAMES_RING")]
pub(crate) static NAMES_RING: RingBuf = RingBuf::pinned(NAMES_RING_BYTES, 0);
