//! Byte quotas (policy-common's quota.rs): before the verdict, the
//! strictest exhausted slot whose action adds to the class's; after it, a
//! passed packet's bytes counted into every slot that covers its class.
//!
//! `used` is shared by the user's packets on every CPU: one atomic add per
//! slot per passed packet. The check reads it without a lock, so a budget
//! is overrun by at most the packets in flight on the other CPUs between
//! one's add and another's read (one packet each).
//!
//! The loops keep what they find in this CPU's slot of QUOTA_SCRATCH, not
//! in registers: a register that differed by slot would keep the
//! verifier's states after the loop apart (the first version, with the
//! action applied inside the loop, did not verify within 1M instructions).

use policy_common::{
    Config, MAX_QUOTA_SLOTS, QUOTA_ALL_BUCKET, QUOTA_ALL_CLASSES, QuotaSlot, USER_UNIDENTIFIED,
    event_kind, kind, quota_crossing,
};

use crate::{
    atomic,
    enforce::Traffic,
    events,
    maps::{QUOTA_SCRATCH, QUOTAS},
    opaque::unlinked,
    parse::Packet,
};

/// What the loops found, per CPU (see maps.rs).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct QuotaScratch {
    /// Index of the chosen slot plus one; 0: none.
    chosen: u32,
    /// How strict the chosen slot's action is (see `strictness`).
    strictness: u32,
    /// Its limit's cost per unit, to pick the slowest of two limits.
    cost_fp: u64,
    /// The first crossing of this packet: percent (0: none) and class.
    crossing: u32,
    crossing_class: u32,
}

/// Deny over a limit over monitor.
#[inline(always)]
fn strictness(k: u32) -> u32 {
    match k {
        kind::DENY => 3,
        kind::LIMIT => 2,
        kind::MONITOR => 1,
        _ => 0,
    }
}

/// The index of `user`'s first slot, if they have a row.
#[inline(always)]
fn first(user: u32, cfg: &Config) -> Option<u32> {
    let user = unlinked(user);
    (user != USER_UNIDENTIFIED && user < cfg.quota_users).then(|| user * cfg.quota_slots)
}

/// The strictest of `user`'s exhausted slots covering `class` (deny over a
/// limit, of two limits the slower), with the class of the bucket its
/// limit uses.
#[inline(always)]
pub(crate) fn exhausted(user: u32, class: u32, cfg: &Config) -> Option<(*const QuotaSlot, u16)> {
    let base = first(user, cfg)?;
    let s = QUOTA_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot of a per-CPU array, unique for the run (as
    // SCRATCH's, main.rs).
    let s = unsafe { &mut *s };
    s.chosen = 0;
    s.strictness = 0;
    s.cost_fp = 0;
    let class = unlinked(class);
    let mut i = 0;
    while i < MAX_QUOTA_SLOTS && i < cfg.quota_slots {
        if let Some(q) = QUOTAS.get_ptr(base + i) {
            // SAFETY: a pointer to an array value, valid for the run;
            // `used` is read whole (aligned u64) while other CPUs add.
            let (q, used) = unsafe { (&*q, core::ptr::read_volatile(&(*q).used)) };
            if q.covers(class) && used >= q.limit {
                let rank = strictness(q.exhausted.kind);
                if rank > s.strictness || rank == s.strictness && q.exhausted.cost_fp > s.cost_fp {
                    s.chosen = i + 1;
                    s.strictness = rank;
                    s.cost_fp = q.exhausted.cost_fp;
                }
            }
        }
        i += 1;
    }
    let chosen = unlinked(s.chosen);
    if chosen == 0 || chosen > MAX_QUOTA_SLOTS {
        return None;
    }
    let q = QUOTAS.get_ptr(base + chosen - 1)?;
    // SAFETY: as above.
    let bucket = if unsafe { (*q).class } == QUOTA_ALL_CLASSES {
        QUOTA_ALL_BUCKET
    } else {
        class as u16
    };
    Some((q, bucket))
}

/// Counts a passed packet into `t.user`'s slots that cover its class; the
/// packet that crosses 80 % or 100 % of one sends a QUOTA event (of the
/// first slot it crossed in, if several: one packet crossing two budgets at
/// once is told once).
#[inline(always)]
pub(crate) fn account(t: &Traffic, p: &Packet, cfg: &Config) {
    let Some(base) = first(t.user, cfg) else {
        return;
    };
    let Some(s) = QUOTA_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `exhausted`.
    let s = unsafe { &mut *s };
    s.crossing = 0;
    let class = unlinked(t.class);
    let mut i = 0;
    while i < MAX_QUOTA_SLOTS && i < cfg.quota_slots {
        if let Some(q) = QUOTAS.get_ptr_mut(base + i) {
            // SAFETY: as in `exhausted`; the add is atomic.
            let (slot_class, limit) = unsafe { ((*q).class, (*q).limit) };
            if limit != 0 && (slot_class == QUOTA_ALL_CLASSES || slot_class == class) {
                // SAFETY: `used` is an aligned u64 of the value.
                let before = unsafe { atomic::fetch_add(&raw mut (*q).used, t.len) };
                if s.crossing == 0
                    && let Some(percent) = quota_crossing(limit, before, before.wrapping_add(t.len))
                {
                    s.crossing = u32::from(percent);
                    s.crossing_class = slot_class;
                }
            }
        }
        i += 1;
    }
    let crossing = unlinked(s.crossing);
    if crossing != 0 {
        let of = Traffic {
            class: s.crossing_class,
            ..*t
        };
        events::emit_with(event_kind::QUOTA, crossing as u8, &of, p, 0);
    }
}
