//! What happens to a packet once its user and class are known.

use crate::UserId;

/// Schedule profiles (business hours, off-hours, ...) preloaded side by
/// side; [`crate::MAP_ACTIVE_PROFILE`] holds the index in force (one slot per
/// generation), so a switch is a single store.
pub const MAX_PROFILES: usize = 4;

/// [`ActionParams::kind`] codes.
pub mod kind {
    pub const ALLOW: u32 = 0;
    pub const DENY: u32 = 1;
    /// Token bucket: pass while within rate + burst, else drop.
    pub const LIMIT: u32 = 2;
    /// Count what `deny` would do, never drop.
    pub const MONITOR: u32 = 3;
}

/// [`ActionParams::flags`] bits.
pub mod flag {
    /// The limit is in packets, not bytes.
    pub const PACKETS: u32 = 1 << 0;
    /// `LIMIT` only: signal congestion early while more than half of the
    /// burst is in use: CE-mark ECN-capable packets, so TCP slows down
    /// before anything is dropped, and drop TCP packets that are not
    /// ECN-capable now and then (policy-ebpf's bucket.rs, `drop_early`), so
    /// such a flow sees single losses rather than a burst of them.
    pub const ECN: u32 = 1 << 1;
    /// `LIMIT` only: do not drop, count as `monitor` (dry run of a limit).
    pub const MONITOR_ONLY: u32 = 1 << 2;
}

/// One action with everything the kernel needs precomputed by userspace.
///
/// A limit is a GCRA (virtual-scheduling) token bucket: each packet costs
/// `cost_fp * size >> 16` nanoseconds of the bucket's time line, where size is
/// bytes (or 1 for a packet limit); the packet conforms while the bucket's
/// theoretical arrival time stays within `tolerance_ns` of now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ActionParams {
    pub kind: u32,
    pub flags: u32,
    /// Nanoseconds per byte (or per packet), as 48.16 fixed point.
    pub cost_fp: u64,
    /// The burst, as time: burst size times the cost of one unit, in ns.
    pub tolerance_ns: u64,
    /// Traffic-control class id (major:minor as `u32`) set as skb priority
    /// on TC egress for `LIMIT` with HTB hand-off; 0 for none.
    pub tc_classid: u32,
    pub _pad: u32,
    /// `LIMIT` only: nanoseconds per connection opened (see conn.rs), 0 for
    /// no connection limit. A second GCRA bucket, beside the byte or
    /// packet one: a packet that opens a connection must conform to both.
    pub conn_cost_ns: u64,
    /// The connection burst, as time: connections times `conn_cost_ns`.
    pub conn_tolerance_ns: u64,
}

/// An action per profile.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ActionEntry {
    pub profiles: [ActionParams; MAX_PROFILES],
}

/// (subject, class), as the compiled policy lists actions: the subject is
/// a user id, a group (`GROUP_BIT | group`) or everybody ([`SUBJECT_ANY`]).
/// The kernel never sees these: userspace folds them into rows (see
/// [`crate::MAP_ACTIONS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionKey {
    pub subject: u32,
    pub class: u32,
}

pub const GROUP_BIT: u32 = 1 << 31;
pub const SUBJECT_ANY: u32 = u32::MAX;

/// A per-user token bucket: one per (user, class, direction) and
/// [`bucket`] kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub user: UserId,
    pub class: u16,
    pub dir: u8,
    /// A [`bucket`] code.
    pub bucket: u8,
}

/// [`BucketKey::bucket`] codes.
pub mod bucket {
    /// The byte or packet rate.
    pub const RATE: u8 = 0;
    /// The connection rate.
    pub const CONN: u8 = 1;
    /// An exhausted quota's limit.
    pub const QUOTA: u8 = 2;
}

/// The highest early-drop probability, as a fraction of 2^16: 1/8.
pub const EARLY_DROP_MAX_P16: u64 = 1 << 13;

/// Early drops: an active queue management on a policer (after RED, Floyd
/// and Jacobson 1993, with the bucket's backlog as the queue). A TCP flow
/// that overruns a plain policer finds the bucket empty and loses a burst
/// of segments in a row, and backs off hard (retransmission timeouts); one
/// that is not ECN-capable (most hosts') cannot be told by a CE mark
/// either. So while more than half of the burst is in use, a packet is
/// dropped with a probability rising linearly from 0 to
/// [`EARLY_DROP_MAX_P16`] at a full bucket: the flow sees single losses
/// early, halves its window, and the bucket does not run dry. A packet
/// dropped early costs no tokens. The probability, as a fraction of 2^16,
/// for a packet that would leave `backlog` ns of `tolerance` in use.
#[inline(always)]
pub const fn early_drop_p16(backlog: u64, tolerance: u64) -> u64 {
    let half = tolerance / 2;
    if backlog <= half || half == 0 {
        return 0;
    }
    // No overflow: backlog <= tolerance, which userspace keeps below 2^47.
    let excess = if backlog > tolerance {
        half
    } else {
        backlog - half
    };
    ((excess << 16) / half * EARLY_DROP_MAX_P16) >> 16
}

/// [`Config::mode`] codes.
pub mod mode {
    pub const ENFORCE: u32 = 0;
    /// Dry run: every drop becomes a `monitor` count, nothing is dropped.
    pub const MONITOR: u32 = 1;
}

/// Global settings, the single entry of [`crate::MAP_CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub mode: u32,
    /// Number of rules in use in [`crate::MAP_CLASS_RULES`].
    pub rule_count: u32,
    /// A flow estimated past this many bytes (see sketch.rs) is
    /// reclassified as `elephant_class`; 0 disables flow tracking.
    pub elephant_bytes: u64,
    pub elephant_class: u32,
    /// Verdict for malformed packets: 0 pass, 1 drop.
    pub malformed_drop: u32,
    /// Least time between two events of one kind for one user.
    pub event_interval_ns: u64,
    /// Bits of [`present`]: which optional tables hold anything, so the
    /// data path skips lookups that cannot match (hash and LPM lookups are
    /// most of its cost).
    pub present: u32,
    /// Entries per generation in [`crate::MAP_USER_INFO`] (the array holds
    /// two generations: ids `0..users_per_generation` each).
    pub users_per_generation: u32,
    /// Cells per row of [`crate::MAP_FLOW_SKETCH`] minus one (the width is
    /// a power of two); set by the loader.
    pub sketch_mask: u32,
    /// Entries per generation in [`crate::MAP_ACTIONS`]; set by the loader.
    pub action_cells: u32,
    /// Entries per row of [`crate::MAP_ACTIONS`]: class ids are below it.
    pub action_stride: u32,
    /// Slots per row of [`crate::MAP_CONN_FLOWS`] minus one (the width is
    /// a power of two); set by the loader.
    pub conn_flow_mask: u32,
    /// Scan detection (scan.rs; on when [`present::SCAN`] is set): the
    /// window, in coarse ns.
    pub scan_window_ns: u64,
    /// How long a quarantine lasts, in ns.
    pub quarantine_ns: u64,
    /// Classes a quarantined user's packets may still be in (bit = class).
    pub quarantine_classes: u64,
    /// Set bits of the hosts / ports estimators that cross the thresholds
    /// (`scan::bits_for`); 0: that estimator is off.
    pub scan_host_bits: u32,
    pub scan_port_bits: u32,
    /// Bits of [`crate::scan_flag`].
    pub scan_flags: u32,
    /// Entries of [`crate::MAP_SCAN`]: user ids below it are watched.
    pub scan_users: u32,
    /// Slots of [`crate::MAP_UNID_BUCKETS`] in use (a power of two): the
    /// `unidentified` user's limits are per sender in them. 0: one bucket
    /// for all unidentified senders, in [`crate::MAP_BUCKETS`] like any
    /// user's (`buckets = "shared"`).
    pub unid_slots: u32,
    /// Quota slots per user in [`crate::MAP_QUOTAS`] (quota.rs; on when
    /// [`present::QUOTAS`] is set).
    pub quota_slots: u32,
    /// Users with rows in [`crate::MAP_QUOTAS`]: ids below it.
    pub quota_users: u32,
    /// Whose learned addresses a packet's remote address is looked up
    /// under: a [`crate::names_scope`] code (learn.rs; on when
    /// [`present::NAMES`] is set).
    pub names_scope: u32,
}

/// Bits of [`Config::present`].
pub mod present {
    pub const MACS: u32 = 1 << 0;
    pub const CIDRS: u32 = 1 << 1;
    pub const BINDINGS: u32 = 1 << 2;
    /// Some class rule tests remote sets.
    pub const SETS: u32 = 1 << 3;
    /// Action entries exist for single users / groups / everyone.
    pub const USER_ACTIONS: u32 = 1 << 4;
    pub const GROUP_ACTIONS: u32 = 1 << 5;
    pub const ANY_ACTIONS: u32 = 1 << 6;
    /// Some class has an aggregate limit.
    pub const CLASS_LIMITS: u32 = 1 << 7;
    /// Socket owners (UIDs or cgroups) identify users.
    pub const SOCKET_OWNERS: u32 = 1 << 8;
    /// Scan detection is on (`[detect.scan]`).
    pub const SCAN: u32 = 1 << 9;
    /// Some class rule can match non-IP frames ([`crate::matches_non_ip`]):
    /// only then are ARP and other non-IP frames identified, classified and
    /// enforced; otherwise they pass, counted in
    /// [`crate::global_counter::NON_IP`] alone.
    pub const NON_IP_RULES: u32 = 1 << 10;
    /// Some user has a byte quota (`[[quota]]`).
    pub const QUOTAS: u32 = 1 << 11;
    /// Some set names domains: DNS answers and TLS handshakes are copied
    /// to the daemon, and learned addresses and flows are looked up
    /// (learn.rs).
    pub const NAMES: u32 = 1 << 12;
}

#[cfg(test)]
mod tests {
    use super::{EARLY_DROP_MAX_P16, early_drop_p16};

    #[test]
    fn early_drops_start_at_half_the_burst_and_rise_to_the_most() {
        let tol = 250_000_000;
        assert_eq!(early_drop_p16(0, tol), 0);
        assert_eq!(early_drop_p16(tol / 2, tol), 0, "not at half");
        assert_eq!(
            early_drop_p16(tol, tol),
            EARLY_DROP_MAX_P16,
            "the most when full"
        );
        assert_eq!(
            early_drop_p16(tol * 3 / 4, tol),
            EARLY_DROP_MAX_P16 / 2,
            "linear"
        );
        assert_eq!(early_drop_p16(tol * 2, tol), EARLY_DROP_MAX_P16, "capped");
        assert_eq!(early_drop_p16(10, 1), 0, "no burst to speak of");
    }
}
