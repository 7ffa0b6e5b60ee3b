//! Byte quotas (`[[quota]]`): a budget of bytes per user (optionally for
//! one class) per day, week or month.
//!
//! The kernel counts a user's passed bytes (both directions) into each of
//! their quota slots that covers the packet's class, with an atomic add, and
//! compares before the verdict: a slot whose `used` has reached its `limit`
//! adds its `exhausted` action to whatever the class's action says (a deny
//! denies; a limit is one more bucket the packet must conform to), so
//! exhaustion can only tighten. The packet that crosses 80 % or 100 % of a
//! budget sends an event, from the value the add returns: exactly once per
//! crossing, whatever the CPUs race. Periods (time zones, reset times) are
//! userspace's: it starts a slot's new period by zeroing `used`.

use crate::ActionParams;

/// Most quota slots a user may have (the kernel walks them all per packet
/// of a user with quotas).
pub const MAX_QUOTA_SLOTS: u32 = 4;

/// [`QuotaSlot::class`] of a quota on all the user's traffic.
pub const QUOTA_ALL_CLASSES: u32 = u32::MAX;

/// [`crate::BucketKey::class`] of the bucket an exhausted all-classes
/// quota's limit polices against (class ids are below [`crate::MAX_CLASSES`]).
pub const QUOTA_ALL_BUCKET: u16 = u16::MAX;

/// Value of [`crate::MAP_QUOTAS`] at `user * Config::quota_slots + slot`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaSlot {
    /// Bytes of passed packets in this period (the kernel adds, atomically).
    pub used: u64,
    /// The budget in bytes; 0: the slot is unused.
    pub limit: u64,
    /// Start of the period `used` belongs to (Unix seconds), for userspace:
    /// a daemon that finds it past (after a restart, say) starts the new one.
    pub period_start: u64,
    /// The class whose packets count, or [`QUOTA_ALL_CLASSES`].
    pub class: u32,
    /// Whose slot it is (for userspace readers: the kernel finds it by
    /// index).
    pub user: crate::UserId,
    /// In force once `used >= limit`, on top of the class's own action:
    /// `kind::DENY`, `kind::MONITOR` (report only) or a `kind::LIMIT`.
    pub exhausted: ActionParams,
}

impl QuotaSlot {
    /// Whether a packet of `class` counts against this slot.
    #[inline(always)]
    pub const fn covers(&self, class: u32) -> bool {
        self.limit != 0 && (self.class == QUOTA_ALL_CLASSES || self.class == class)
    }
}

/// The percentages of a budget whose crossing sends an event
/// ([`crate::Event::reason`]).
pub mod quota_reason {
    pub const WARN: u8 = 80;
    pub const EXHAUSTED: u8 = 100;
}

/// The crossing, if any, of a slot with budget `limit` going from `before`
/// to `after` bytes: exhausted takes precedence when one packet does both.
#[inline(always)]
pub const fn quota_crossing(limit: u64, before: u64, after: u64) -> Option<u8> {
    let warn = limit - limit / 5;
    if before < limit && after >= limit {
        Some(quota_reason::EXHAUSTED)
    } else if before < warn && after >= warn {
        Some(quota_reason::WARN)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_is_crossed_once() {
        assert_eq!(quota_crossing(1000, 0, 799), None);
        assert_eq!(quota_crossing(1000, 799, 800), Some(quota_reason::WARN));
        assert_eq!(quota_crossing(1000, 800, 999), None);
        assert_eq!(
            quota_crossing(1000, 999, 1000),
            Some(quota_reason::EXHAUSTED)
        );
        assert_eq!(quota_crossing(1000, 1000, 5000), None);
        // One big packet over both: the exhaustion is what matters.
        assert_eq!(
            quota_crossing(1000, 10, 2000),
            Some(quota_reason::EXHAUSTED)
        );
    }

    #[test]
    fn a_slot_covers_its_class_or_everything() {
        let mut s = QuotaSlot {
            limit: 1,
            class: 3,
            ..QuotaSlot::default()
        };
        assert!(s.covers(3) && !s.covers(4));
        s.class = QUOTA_ALL_CLASSES;
        assert!(s.covers(4));
        s.limit = 0;
        assert!(!s.covers(4), "an unused slot covers nothing");
    }
}
