//! Destinations by name (policy-common's learn.rs): the sets a packet's
//! remote address or TLS flow was learned for, and the copies of DNS
//! answers and TLS handshakes the daemon learns them from.
//!
//! Both run only when some set names domains ([`present::NAMES`]): a policy
//! without domain sets pays one bit test per packet.

use policy_common::{
    Config, DNS_PORT, LearnedKey4, LearnedKey6, LearnedSets, NameFlowKey, SCOPE_EVERYONE,
    SNOOP_BYTES, SnoopRecord, TLS_PORT, UserId, dir, global_counter, names_scope, snoop_kind,
};

use crate::{
    clock, counters,
    identity::Who,
    maps::{LEARNED4, LEARNED6, NAME_FLOWS, NAMES_RING},
    parse::{Packet, ptr_at},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// TLS record type of handshake messages (RFC 8446, 5.1).
const TLS_HANDSHAKE: u8 = 22;
/// Farthest transport header the parser reaches (two VLAN tags, IPv6 and
/// four extension headers of at most 2 KiB... in practice far less): a
/// bound the verifier needs on an offset read from memory.
const MAX_L4: usize = 1024;

/// The bitmap of [`LearnedSets::sets`] for `generation`.
#[inline(always)]
fn of_generation(v: &LearnedSets, generation: u32) -> u64 {
    // An index, not a branch: a branch on the generation would make it a
    // constant on each side, and the verifier could then never merge the
    // two sides' states again (every later table index depends on it), so
    // the rest of the program would be walked twice.
    v.sets[(generation & 1) as usize]
}

/// The packet's flow seen from the user (the same key both ways).
#[inline(always)]
fn flow_key(p: &Packet, direction: u8) -> NameFlowKey {
    let up = direction == dir::UPLOAD;
    let (user, remote) = if up {
        (&p.src, &p.dst)
    } else {
        (&p.dst, &p.src)
    };
    let (user_port, remote_port) = if up {
        (p.sport, p.dport)
    } else {
        (p.dport, p.sport)
    };
    NameFlowKey {
        user_addr: *user,
        remote_addr: *remote,
        user_port,
        remote_port,
    }
}

#[inline(always)]
fn remote_port(p: &Packet, direction: u8) -> u16 {
    if direction == dir::UPLOAD {
        p.dport
    } else {
        p.sport
    }
}

/// The scope the remote address is looked up under: the user's own
/// learned addresses, or everyone's.
#[inline(always)]
pub(crate) fn scope(cfg: &Config, user: UserId) -> u32 {
    if cfg.names_scope == names_scope::EVERYONE {
        SCOPE_EVERYONE
    } else {
        user
    }
}

/// The bits of an entry if it has not expired. The clock is read only on
/// a hit: expiry is checked here so that an entry the daemon has not yet
/// removed stops counting on time.
#[inline(always)]
fn live(v: Option<&LearnedSets>, generation: u32) -> u64 {
    match v {
        Some(v) if clock::coarse_ns() < v.expires_ns => of_generation(v, generation),
        _ => 0,
    }
}

/// The sets an IPv4 remote address was learned for (from a DNS answer to
/// the scope's user, or to anyone under `scope = "everyone"`). Called in
/// classify's IPv4 branch: a branch on the IP version of its own here
/// would double the paths the verifier walks.
#[inline(always)]
pub(crate) fn sets4(scope: u32, addr: u32, generation: u32) -> u64 {
    // SAFETY: HashMap::get's hazard is an entry removed and its memory
    // reused while held; the fields are copied out at once, so at worst
    // they are another entry's, for one packet.
    live(
        unsafe { LEARNED4.get(LearnedKey4 { scope, addr }) },
        generation,
    )
}

/// [`sets4`] for an IPv6 remote address (its four words, memory order).
#[inline(always)]
pub(crate) fn sets6(scope: u32, words: [u32; 4], generation: u32) -> u64 {
    let key = LearnedKey6 {
        scope,
        // SAFETY: four u32 are sixteen bytes, every pattern valid.
        addr: unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words) },
    };
    // SAFETY: as in `sets4`.
    live(unsafe { LEARNED6.get(key) }, generation)
}

/// The sets of the packet's TLS flow, if its ClientHello named a domain
/// of a set (TCP to or from remote port 443 only).
#[inline(always)]
pub(crate) fn flow_sets(p: &Packet, direction: u8, generation: u32) -> u64 {
    if p.proto != IPPROTO_TCP || !p.has_ports || remote_port(p, direction) != TLS_PORT {
        return 0;
    }
    // SAFETY: as in `sets4`.
    live(
        unsafe { NAME_FLOWS.get(flow_key(p, direction)) },
        generation,
    )
}

/// Why a passed packet is copied to the daemon, if it is: a DNS response
/// (UDP or TCP from port 53, with a payload), or a TCP segment to port 443
/// that starts a TLS handshake record of a flow not yet classified by
/// name. The daemon writes an entry for every flow whose ClientHello it
/// read, matched or not, so a flow's later handshake records (TLS 1.2 sends
/// more) stop being copied once it has.
#[inline(always)]
fn worth_copying(data: usize, data_end: usize, p: &Packet, direction: u8) -> Option<u8> {
    if !p.has_ports || (p.proto != IPPROTO_UDP && p.proto != IPPROTO_TCP) {
        return None;
    }
    let l4 = usize::from(p.l4);
    if l4 == 0 || l4 > MAX_L4 {
        return None;
    }
    let payload = if p.proto == IPPROTO_UDP {
        l4 + 8
    } else {
        let Ok(h) = ptr_at::<[u8; 2]>(data, data_end, l4 + 12) else {
            return None;
        };
        // SAFETY: ptr_at checked the two bytes are in the packet.
        let doff = usize::from(unsafe { (*h)[0] } >> 4) * 4;
        l4 + doff
    };
    // A payload of at least two bytes: a DNS message is 12 or more, and a
    // TLS record starts with its type and version.
    let Ok(first) = ptr_at::<[u8; 2]>(data, data_end, payload) else {
        return None;
    };
    if p.sport == DNS_PORT {
        return Some(snoop_kind::DNS);
    }
    // SAFETY: as above.
    let record_type = unsafe { (*first)[0] };
    if p.proto == IPPROTO_TCP
        && direction == dir::UPLOAD
        && p.dport == TLS_PORT
        && record_type == TLS_HANDSHAKE
        // SAFETY: as in `sets`.
        && unsafe { NAME_FLOWS.get(flow_key(p, direction)) }.is_none()
    {
        return Some(snoop_kind::TLS);
    }
    None
}

/// Copies the packet to [`NAMES_RING`] if the daemon should read it.
/// `load` copies the packet's first `len` bytes to `to` (the program
/// type's load-bytes helper, which also reads non-linear data).
#[inline(always)]
pub(crate) fn snoop(
    data: usize,
    data_end: usize,
    p: &Packet,
    who: &Who,
    len: u64,
    generation: u32,
    load: impl Fn(*mut u8, u32) -> bool,
) {
    let Some(kind) = worth_copying(data, data_end, p, who.dir) else {
        return;
    };
    let Some(mut entry) = NAMES_RING.reserve::<SnoopRecord>(0) else {
        counters::global(global_counter::NAMES_LOST);
        return;
    };
    let r: *mut SnoopRecord = entry.as_mut_ptr();
    let mut n = len as u32;
    if n > SNOOP_BYTES as u32 {
        n = SNOOP_BYTES as u32;
    }
    // SAFETY: the reservation is an exclusive, SnoopRecord-sized slot; the
    // header is written whole and `data` up to `n <= SNOOP_BYTES` bytes,
    // the only ones the daemon reads.
    let copied = n > 0 && unsafe { load((*r).data.as_mut_ptr(), n) };
    if !copied {
        entry.discard(0);
        return;
    }
    // SAFETY: as above.
    unsafe {
        (*r).header.kind = kind;
        (*r).header.dir = who.dir;
        (*r).header._pad = 0;
        (*r).header.user = who.user;
        (*r).header.len = n;
        (*r).header.orig_len = len as u32;
        (*r).header.generation = generation;
        (*r).header._pad2 = 0;
    }
    entry.submit(0);
}
