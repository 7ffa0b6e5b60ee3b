//! Accounting.

use crate::UserId;

/// Key of [`crate::MAP_COUNTERS`]: one entry per (user, class, direction)
/// that has seen traffic, and one more per [`drop_reason`] other than
/// [`drop_reason::RULE`] that dropped some of it (drops of those reasons
/// are counted only there, so entries of one (user, class, direction) add
/// up; most traffic never makes one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub user: UserId,
    pub class: u16,
    pub dir: u8,
    /// A [`drop_reason`]; the byte was padding (always 0) before drop
    /// reasons, so pinned counters of an older policyd read as `RULE`.
    pub reason: u8,
}

/// Why a packet was dropped: the `reason` of its counter key.
pub mod drop_reason {
    /// The user's own action: a `deny`, or their own limit (byte, packet
    /// or connection rate). Passed and monitored packets count here too.
    pub const RULE: u8 = 0;
    /// Its source address is bound to other MAC addresses; counted under
    /// the sender the MAC identifies (or `unidentified`), not the user
    /// whose address it claimed.
    pub const SPOOFED: u8 = 1;
    /// Its user is in quarantine (scan detection).
    pub const QUARANTINE: u8 = 2;
    /// The class's limit for all users together.
    pub const CLASS_LIMIT: u8 = 3;
    /// A used-up byte quota's `exhausted` action (deny or limit).
    pub const QUOTA: u8 = 4;
    /// Malformed (with `malformed = "drop"`): counted under `unidentified`,
    /// class `default`, before any identity.
    pub const MALFORMED: u8 = 5;
    /// One more than the highest reason.
    pub const COUNT: u8 = 6;
}

/// Packets and bytes by verdict, per CPU; userspace sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pass_packets: u64,
    pub pass_bytes: u64,
    /// Dropped by a `deny` action (or, in the entries of other
    /// [`drop_reason`]s, as spoofed, quarantined, by a quota or malformed).
    pub deny_packets: u64,
    pub deny_bytes: u64,
    /// Dropped by a rate limit.
    pub limit_packets: u64,
    pub limit_bytes: u64,
    /// Passed, but `deny` or a limit would have dropped them (monitor mode
    /// or a `monitor` action).
    pub monitor_packets: u64,
    pub monitor_bytes: u64,
    /// Passed with ECN CE set by a limit.
    pub ecn_marked_packets: u64,
}

impl Counters {
    /// Adds `other` into `self` (used to sum per-CPU slots).
    pub fn accumulate(&mut self, o: &Self) {
        self.pass_packets = self.pass_packets.wrapping_add(o.pass_packets);
        self.pass_bytes = self.pass_bytes.wrapping_add(o.pass_bytes);
        self.deny_packets = self.deny_packets.wrapping_add(o.deny_packets);
        self.deny_bytes = self.deny_bytes.wrapping_add(o.deny_bytes);
        self.limit_packets = self.limit_packets.wrapping_add(o.limit_packets);
        self.limit_bytes = self.limit_bytes.wrapping_add(o.limit_bytes);
        self.monitor_packets = self.monitor_packets.wrapping_add(o.monitor_packets);
        self.monitor_bytes = self.monitor_bytes.wrapping_add(o.monitor_bytes);
        self.ecn_marked_packets = self.ecn_marked_packets.wrapping_add(o.ecn_marked_packets);
    }
}

/// Indexes of [`crate::MAP_GLOBAL_COUNTERS`] (a per-CPU array of `u64`).
pub mod global_counter {
    /// Packets too short for the headers they announce, or with invalid
    /// header fields. Their verdict is [`crate::Config::malformed_drop`].
    pub const MALFORMED: u32 = 0;
    /// Frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...): all of them,
    /// whether a class rule then matches them (see
    /// [`crate::present::NON_IP_RULES`]) or they pass unenforced.
    pub const NON_IP: u32 = 1;
    /// Packets from an address bound to other MAC addresses: dropped.
    pub const SPOOFED: u32 = 2;
    /// Packets no identity matched (also counted under user 0).
    pub const UNIDENTIFIED: u32 = 3;
    /// Packets whose counter entry could not be created (map full).
    pub const MAP_FULL: u32 = 4;
    /// Events lost because the ring buffer was full.
    pub const EVENTS_LOST: u32 = 5;
    /// Token-bucket updates given up after repeated contention between CPUs
    /// (the packet is treated as over the limit).
    pub const BUCKET_CONTENDED: u32 = 6;
    /// IPv6 packets with more extension headers than the parser follows;
    /// classified without ports.
    pub const EXT_HEADERS_DEEP: u32 = 7;
    /// Packets of a limited user whose token bucket could not be created
    /// (bucket map full): treated as over the limit.
    pub const BUCKET_MAP_FULL: u32 = 8;
    /// TCP packets of flows that are not ECN-capable dropped early by a
    /// limit that signals congestion (`ecn`, the default): counted as
    /// `limit` drops of their user too.
    pub const EARLY_DROPS: u32 = 9;
    /// Users put in quarantine (or reported, by a dry run) for too many
    /// distinct destination addresses / ports (scan.rs).
    pub const QUARANTINES_HOSTS: u32 = 10;
    pub const QUARANTINES_PORTS: u32 = 11;
    /// Packets of quarantined users denied (also counted as `deny`).
    pub const QUARANTINE_DENIED: u32 = 12;
    /// Packets of an unidentified sender policed against a per-source
    /// bucket slot another sender still holds (its bucket not yet full
    /// again): the two share one limit until it refills.
    pub const UNID_SHARED: u32 = 13;
    /// DNS answers and TLS handshakes not copied to the daemon because the
    /// names ring buffer was full (learn.rs).
    pub const NAMES_LOST: u32 = 14;
    /// Number of slots; the map is sized with this.
    pub const COUNT: u32 = 15;
}
