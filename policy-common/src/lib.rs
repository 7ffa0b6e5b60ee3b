//! The contract between policyd's kernel programs and its userspace.
//!
//! Everything that crosses the boundary lives here, once: map names (used by
//! both `#[map(name = ...)]` and the loader), the `#[repr(C)]` key and value
//! types, and the numeric codes stored in them. Types hold fixed-size fields
//! only (no `bool`, no `Option`, explicit padding) so that both sides agree on
//! every byte; `tests` at the bottom pin sizes and alignments.
#![no_std]

pub mod maps;

pub use maps::*;

/// A user's index. `0` is reserved for the `unidentified` user: every packet
/// whose identity lookup finds nothing is accounted and enforced under it.
pub type UserId = u32;

/// The user id that unmatched packets fall under.
pub const USER_UNIDENTIFIED: UserId = 0;

/// What the data path does with a user's packets.
///
/// Stored as a `u32` code in [`UserPolicy::action`] so the layout is fixed.
pub mod action {
    /// Pass the packet on.
    pub const ALLOW: u32 = 0;
    /// Drop the packet (XDP_DROP) and count it as dropped.
    pub const DENY: u32 = 1;
}

/// Per-user enforcement settings, indexed by [`UserId`] in [`MAP_USER_POLICY`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserPolicy {
    /// One of the [`action`] codes. An all-zero entry (never written) allows.
    pub action: u32,
    /// Reserved; keeps the struct 8 bytes so fields can be added without
    /// changing its alignment. Always zero.
    pub _pad: u32,
}

/// Per-user packet and byte counters, one slot per CPU per user in
/// [`MAP_USER_COUNTERS`]. Userspace sums the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserCounters {
    pub passed_packets: u64,
    pub passed_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

impl UserCounters {
    /// Adds `other` into `self` (used to sum per-CPU slots).
    pub fn accumulate(&mut self, other: &Self) {
        self.passed_packets = self.passed_packets.wrapping_add(other.passed_packets);
        self.passed_bytes = self.passed_bytes.wrapping_add(other.passed_bytes);
        self.dropped_packets = self.dropped_packets.wrapping_add(other.dropped_packets);
        self.dropped_bytes = self.dropped_bytes.wrapping_add(other.dropped_bytes);
    }
}

/// Indexes of [`MAP_GLOBAL_COUNTERS`] (a per-CPU array of `u64`).
pub mod global_counter {
    /// Packets too short for the headers they announce (truncated Ethernet,
    /// VLAN tag, IPv4 or IPv6 header) or with an invalid IPv4 header length.
    /// They are passed untouched: the kernel stack drops them itself.
    pub const MALFORMED: u32 = 0;
    /// Packets that are neither IPv4 nor IPv6 (ARP, LLDP, ...): passed.
    pub const NON_IP: u32 = 1;
    /// Number of slots; the map is sized with this.
    pub const COUNT: u32 = 2;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all): repr(C) types made only of integers and byte arrays, with
    // no implicit padding, so every bit pattern is valid.
    unsafe impl aya::Pod for super::UserPolicy {}
    unsafe impl aya::Pod for super::UserCounters {}
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, size_of};

    use super::*;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(size_of::<UserPolicy>(), 8);
        assert_eq!(align_of::<UserPolicy>(), 4);
        assert_eq!(size_of::<UserCounters>(), 32);
        assert_eq!(align_of::<UserCounters>(), 8);
        assert_eq!(size_of::<UserId>(), 4);
    }

    #[test]
    fn accumulate_sums_every_field() {
        let mut total = UserCounters::default();
        let one = UserCounters {
            passed_packets: 1,
            passed_bytes: 2,
            dropped_packets: 3,
            dropped_bytes: 4,
        };
        total.accumulate(&one);
        total.accumulate(&one);
        assert_eq!(
            total,
            UserCounters {
                passed_packets: 2,
                passed_bytes: 4,
                dropped_packets: 6,
                dropped_bytes: 8
            }
        );
    }
}
