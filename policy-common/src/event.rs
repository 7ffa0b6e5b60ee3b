//! Enforcement events, sent to userspace through a ring buffer.

use crate::UserId;

/// [`Event::kind`] codes.
pub mod event_kind {
    /// A `deny` action dropped a packet.
    pub const DENY: u32 = 1;
    /// A rate limit started dropping (first drop after a quiet interval).
    pub const LIMIT: u32 = 2;
    /// A packet claimed an address bound to other MAC addresses: "using the
    /// identifiers of another person as your own".
    pub const SPOOF: u32 = 3;
    /// A `monitor` action (or monitor mode) saw a packet it would drop.
    pub const MONITOR: u32 = 4;
    /// Kinds, for the limiter's per-user slots (kind `k` is slot `k - 1`).
    pub const COUNT: usize = 4;
    /// A user crossed a scan threshold and was put in quarantine (or, in a
    /// dry run, would have been): [`super::Event::reason`] says which.
    /// Once per quarantine (or window), so never rate-limited.
    pub const QUARANTINE: u32 = 5;
    /// A user's passed bytes crossed 80 % or 100 % of a quota
    /// ([`super::Event::reason`]: the percentage; `class` the quota's, or
    /// [`crate::QUOTA_ALL_CLASSES`]). Once per crossing: not rate-limited.
    pub const QUOTA: u32 = 6;
}

/// Value of [`crate::MAP_EVENT_LIMITER`] at a user's id: when the last
/// event of each kind was sent, in units of 2^20 ns (about 1.05 ms) of the
/// coarse monotonic clock, wrapping after 52 days. A quarter of the size of
/// a nanosecond `u64` per kind: the array has an entry for every user id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventTimes {
    pub last: [u32; event_kind::COUNT],
}

/// The unit of [`EventTimes`]: `ns >> EVENT_TIME_SHIFT`.
pub const EVENT_TIME_SHIFT: u32 = 20;

/// One event. At most one per (user, kind) per event interval leaves the
/// kernel, so a flood cannot flood userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub kind: u32,
    pub user: UserId,
    pub class: u32,
    pub len: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_mac: [u8; 8],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub dir: u8,
    /// [`crate::reason`] code of a QUARANTINE event, the percentage of a
    /// QUOTA event, else 0.
    pub reason: u8,
    pub _pad: u8,
}
