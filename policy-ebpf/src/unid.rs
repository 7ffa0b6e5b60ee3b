//! The `unidentified` user's limits per sender: a bucket per (sender,
//! class, direction) in a fixed table of slots (policy-common's unid.rs).
//!
//! Eviction never hands anyone a fresh burst: a slot's bucket word (its
//! TAT) is never reset, only the owner tag beside it changes. A sender
//! whose hash lands on a slot another sender holds takes the slot over if
//! that bucket is idle (TAT at or before now: the bucket is full, so the
//! newcomer starts from what a bucket of its own would hold and the old
//! owner loses nothing it would not get back on return); if the bucket is
//! still in use, both police against the one word and the packet is
//! counted (`UNID_SHARED`).
//!
//! Sharing is never looser than a bucket of one's own: the packets of
//! sender A admitted by a shared bucket also conform to A's limit alone,
//! because the shared TAT is at least the TAT A's admitted packets alone
//! would give (each admitted packet moves both by its cost from a point
//! that is not lower; B's packets only move the shared one further).
//!
//! Concurrency: the TAT is updated by bucket.rs's compare-and-swap as any
//! bucket's; the tag is a plain aligned 32-bit store, read without a lock.
//! Two CPUs racing on the tag can only make the count wrong (a takeover
//! while the old owner sends again, counted as sharing on its next packet,
//! or a sharing packet not counted), never the limit: every packet polices
//! against the slot's one TAT whatever the tag says. Two senders with the
//! same slot and the same 32-bit tag share uncounted (odds 2^-31 per pair
//! in a slot).

use policy_common::{
    Config, USER_UNIDENTIFIED, UserId, ethertype, global_counter, unid_hash, unid_mac_source,
    unid_owner, unid_slot, unid_source,
};

use crate::{counters, maps::UNID_BUCKETS, parse::Packet};

/// Whether `user`'s limits are kept per sender here: the unidentified
/// user, unless the policy shares one bucket among them
/// (`Config::unid_slots` 0).
#[inline(always)]
pub(crate) fn applies(user: UserId, cfg: &Config) -> bool {
    cfg.unid_slots != 0 && crate::opaque::unlinked(user) == USER_UNIDENTIFIED
}

/// The sender a packet of the unidentified user is limited as: the address
/// that failed identification, the user's end (source on upload,
/// destination on download); a non-IP frame (non_ip.rs) has none, so its
/// MAC at that end. The one place the key is built from the packet.
#[inline(always)]
fn sender(p: &Packet, upload: bool) -> [u64; 2] {
    if p.ethertype == ethertype::IPV4 || p.ethertype == ethertype::IPV6 {
        unid_source(p.words64(upload))
    } else {
        unid_mac_source(if upload { p.src_mac } else { p.dst_mac })
    }
}

/// The bucket word for this packet's sender in `class` and direction `dir`
/// (`dir::UPLOAD` or `DOWNLOAD`), at time `now`. `None` only if the table
/// is smaller than `cfg.unid_slots` says (the caller fails closed).
#[inline(always)]
pub(crate) fn bucket(p: &Packet, class: u32, dir: u8, cfg: &Config, now: u64) -> Option<*mut u64> {
    let hash = unid_hash(sender(p, dir == policy_common::dir::UPLOAD), class, dir);
    let slot = UNID_BUCKETS.get_ptr_mut(unid_slot(hash, cfg.unid_slots))?;
    let owner = unid_owner(hash);
    // SAFETY: `slot` points to a value of the array, valid for this run;
    // the fields are aligned (the layout is pinned in policy-common) and
    // read and written one machine word at a time, so no access is torn.
    unsafe {
        let tag = core::ptr::addr_of_mut!((*slot).owner);
        if core::ptr::read_volatile(tag) != owner {
            if core::ptr::read_volatile(core::ptr::addr_of!((*slot).tat)) > now {
                counters::global(global_counter::UNID_SHARED);
            } else {
                core::ptr::write_volatile(tag, owner);
            }
        }
        Some(core::ptr::addr_of_mut!((*slot).tat))
    }
}
