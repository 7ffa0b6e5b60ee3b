//! Who a packet belongs to, and which way it goes.
//!
//! Lookup order: socket owner (TC egress of local traffic: cgroup, then
//! UID), then MAC (interfaces facing users only), then exact address, then
//! longest CIDR prefix; else the `unidentified` user.

use policy_common::{
    GenMac, GenU32, IfaceConfig, MacBinding, USER_UNIDENTIFIED, UserId, dir, present, side,
};

use crate::{
    keys,
    maps::{IFACES, IP_BINDINGS, USER_CIDRS, USER_CIDRS4, USER_MACS, USERS, USERS4},
    parse::Packet,
};

pub(crate) struct Who {
    pub user: UserId,
    pub dir: u8,
    /// The user's address is bound to MAC addresses and this packet came
    /// from another one.
    pub spoofed: bool,
}

/// The side interface `ifindex` faces; the users' side for an interface
/// without an entry (or past the array).
#[inline(always)]
pub(crate) fn iface_side(ifindex: u32) -> u32 {
    IFACES
        .get(ifindex)
        .map_or(side::USERS, |c: &IfaceConfig| c.side)
}

/// `socket_user` is the user owning the sending socket, if any (TC egress).
/// `present` (`policy_common::present`) says which tables are worth a lookup.
#[inline(always)]
pub(crate) fn identify(
    p: &Packet,
    iface_side: u32,
    egress: bool,
    socket_user: Option<UserId>,
    present: u32,
    generation: u32,
) -> Who {
    let direction = dir::at(iface_side, egress);
    if let Some(user) = socket_user {
        return Who {
            user,
            dir: dir::UPLOAD,
            spoofed: false,
        };
    }
    let upload = direction == dir::UPLOAD;
    let mac = if upload { &p.src_mac } else { &p.dst_mac };
    let v4 = p.mapped_v4(upload);
    let by_mac = iface_side == side::USERS && present & present::MACS != 0;
    // Straight-line, not `Option::or_else` closures: LLVM kept one of those
    // as a BPF subprogram call.
    let mac_user = by_mac.then(|| by_mac_address(*mac, generation)).flatten();
    let user = if let Some(u) = mac_user {
        u
    } else if let Some(u) = by_address(p, upload, v4, generation) {
        u
    } else if present & present::CIDRS == 0 {
        USER_UNIDENTIFIED
    } else {
        by_prefix(p, upload, v4, generation).unwrap_or(USER_UNIDENTIFIED)
    };

    // Anti-spoofing needs the sender's own MAC: ingress from the users' side.
    if iface_side == side::USERS
        && !egress
        && present & present::BINDINGS != 0
        // SAFETY: HashMap::get's hazard is an entry removed and its slot
        // reused while we hold the reference; the binding is read at once,
        // so at worst it is another address's binding, always map memory.
        && let Some(b) = unsafe { IP_BINDINGS.get(keys::Addr::new(generation, p.words32(true)).key()) }
        && !bound(b, p.src_mac)
    {
        // Counted under whoever sent it: the user its MAC identifies, or
        // nobody, never the user whose address it claimed.
        return Who {
            user: mac_user.unwrap_or(USER_UNIDENTIFIED),
            dir: direction,
            spoofed: true,
        };
    }
    Who {
        user,
        dir: direction,
        spoofed: false,
    }
}

/// Who a non-IP frame belongs to: it has no addresses and no socket owner
/// (ARP and the like come from the kernel, not from a socket), so only its
/// MAC identifies it, as for IP on the users' side: the source MAC on
/// upload, the destination on download. Never spoofed: anti-spoofing binds
/// IP addresses.
#[inline(always)]
pub(crate) fn identify_non_ip(
    p: &Packet,
    iface_side: u32,
    egress: bool,
    present: u32,
    generation: u32,
) -> Who {
    let users = iface_side == side::USERS;
    let direction = dir::at(iface_side, egress);
    let mac = if direction == dir::UPLOAD {
        p.src_mac
    } else {
        p.dst_mac
    };
    let user = if users && present & present::MACS != 0 {
        by_mac_address(mac, generation).unwrap_or(USER_UNIDENTIFIED)
    } else {
        USER_UNIDENTIFIED
    };
    Who {
        user,
        dir: direction,
        spoofed: false,
    }
}

/// Whether `mac` (a Mac8 as a native-endian word) is one the binding allows.
#[inline(always)]
fn bound(b: &MacBinding, mac: u64) -> bool {
    let mut i = 0;
    while i < policy_common::MAX_MACS_PER_BINDING {
        if (i as u32) < b.count && u64::from_ne_bytes(b.macs[i]) == mac {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn by_mac_address(mac: u64, generation: u32) -> Option<UserId> {
    // SAFETY: HashMap::get's hazard is an entry removed and its slot
    // reused while we hold the reference; the value is a plain id copied
    // out at once, so at worst it is another entry's id.
    unsafe {
        USER_MACS.get(GenMac {
            generation,
            mac: mac.to_ne_bytes(),
        })
    }
    .copied()
}

/// The exact-address lookup of the source (`src`) or destination address:
/// IPv4 (mapped) addresses in USERS4.
#[inline(always)]
fn by_address(p: &Packet, src: bool, v4: Option<u32>, generation: u32) -> Option<UserId> {
    match v4 {
        // SAFETY: as for USER_MACS: a plain id copied out at once.
        Some(a) => unsafe {
            USERS4.get(GenU32 {
                generation,
                value: a,
            })
        }
        .copied(),
        // SAFETY: as above.
        None => unsafe { USERS.get(keys::Addr::new(generation, p.words32(src)).key()) }.copied(),
    }
}

/// The longest user prefix holding the source (`src`) or destination
/// address.
#[inline(always)]
fn by_prefix(p: &Packet, src: bool, v4: Option<u32>, generation: u32) -> Option<UserId> {
    match v4 {
        Some(a) => USER_CIDRS4
            .get(keys::Prefix4::new(generation, a).key())
            .copied(),
        None => USER_CIDRS
            .get(keys::Prefix6::new(generation, p.words64(src)).key())
            .copied(),
    }
}
