//! Per-source token buckets of the `unidentified` user: a fixed table of
//! slots, each a GCRA bucket word (see policy-ebpf's bucket.rs) and the tag
//! of the sender that last held it. docs/datapath.md, "Buckets of
//! unidentified senders", gives the rules; the kernel side is
//! policy-ebpf's unid.rs.

use crate::sketch::{MAPPED, SEED, V4, mix};

/// One slot of [`crate::MAP_UNID_BUCKETS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnidSlot {
    /// [`unid_owner`] of the sender that last took the slot; 0 for a slot
    /// never used (tags are odd).
    pub owner: u32,
    pub _pad: u32,
    /// The bucket's theoretical arrival time in ns (0: full).
    pub tat: u64,
}

/// Slots of the table when the policy does not say (`[unidentified]
/// slots`): 64 KiB of kernel memory.
pub const DEFAULT_UNID_SLOTS: u32 = 4_096;
/// Most slots a policy may ask for (16 MiB).
pub const MAX_UNID_SLOTS: u32 = 1 << 20;

/// The sender's key from its address as two 64-bit words (native byte
/// order, as the kernel loads them): an IPv4-mapped address whole, an IPv6
/// address by its /64 (one host's SLAAC and privacy addresses are one
/// sender, as nftables meters and hashlimit's default /64 treat them).
#[inline(always)]
pub const fn unid_source(words: [u64; 2]) -> [u64; 2] {
    if words[0] == 0 && words[1] & !V4 == MAPPED {
        words
    } else {
        [words[0], 0]
    }
}

/// The second word of a non-IP sender's key. Keys of IP senders never have
/// it: an IPv6 key's second word is 0 and an IPv4 key's holds the mapped
/// prefix's 0xffff (bits 16 to 31), so a MAC shares no key with an address.
pub const NON_IP_KEY: u64 = 1;

/// The key of a non-IP frame's sender (ARP and the like carry no
/// addresses policyd reads): its MAC, as parse.rs loads it.
#[inline(always)]
pub const fn unid_mac_source(mac: u64) -> [u64; 2] {
    [mac, NON_IP_KEY]
}

/// The hash of (sender key, class, direction): its low bits pick the slot,
/// its high bits make the owner tag.
#[inline(always)]
pub const fn unid_hash(key: [u64; 2], class: u32, dir: u8) -> u64 {
    let h = mix(key[0] ^ SEED);
    mix(h ^ key[1] ^ ((class as u64) << 8 | dir as u64))
}

/// The slot index for `hash` in a table of `slots` (a power of two).
#[inline(always)]
pub const fn unid_slot(hash: u64, slots: u32) -> u32 {
    (hash as u32) & slots.wrapping_sub(1)
}

/// The owner tag for `hash`: odd, so never a fresh slot's 0.
#[inline(always)]
pub const fn unid_owner(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

#[cfg(test)]
mod tests {
    use super::{NON_IP_KEY, unid_hash, unid_mac_source, unid_owner, unid_slot, unid_source};
    use crate::v4_mapped;

    fn words(a: [u8; 16]) -> [u64; 2] {
        let mut lo = [0; 8];
        let mut hi = [0; 8];
        lo.copy_from_slice(&a[..8]);
        hi.copy_from_slice(&a[8..]);
        [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
    }

    #[test]
    fn ipv4_senders_are_whole_addresses_and_ipv6_ones_their_64() {
        let a = words(v4_mapped([10, 0, 0, 1]));
        assert_eq!(unid_source(a), a);
        let mut v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        let k = unid_source(words(v6));
        v6[15] = 9;
        assert_eq!(unid_source(words(v6)), k, "one /64, one sender");
        assert_eq!(k[1], 0);
    }

    #[test]
    fn a_mac_never_has_an_address_key() {
        // Every MAC whose low 32 bits could pass for the mapped prefix, and
        // the all-zero one, against the IPv4 and IPv6 keys they come
        // closest to.
        for mac in [0, 0xffff_0000, 0x0000_ffff_ffff_0000, 0xffff_ffff_ffff] {
            let k = unid_mac_source(mac);
            assert_eq!(k[1], NON_IP_KEY);
            for a in [
                v4_mapped([0, 0, 0, 0]),
                v4_mapped([255, 255, 255, 255]),
                [0; 16],
                [0xff; 16],
            ] {
                assert_ne!(unid_source(words(a)), k);
            }
        }
    }

    #[test]
    fn slots_stay_in_the_table_and_tags_are_never_zero() {
        for i in 0..1_000u32 {
            let h = unid_hash(words(v4_mapped([10, 0, (i >> 8) as u8, i as u8])), i % 3, 0);
            assert!(unid_slot(h, 4_096) < 4_096);
            assert_eq!(unid_slot(h, 1), 0);
            assert_ne!(unid_owner(h), 0);
        }
    }

    #[test]
    fn class_and_direction_change_the_hash() {
        let a = unid_source(words(v4_mapped([10, 0, 0, 1])));
        assert_ne!(unid_hash(a, 0, 0), unid_hash(a, 1, 0));
        assert_ne!(unid_hash(a, 0, 0), unid_hash(a, 0, 1));
    }
}
