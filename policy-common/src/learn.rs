//! Destinations learned by name (domain sets, see docs/policy.md): the
//! addresses DNS answers gave for names in a set, and the TLS flows whose
//! ClientHello named one.
//!
//! The data path copies what it cannot parse itself (DNS responses, the
//! first TLS handshake segments) to userspace through
//! [`crate::MAP_NAMES_RING`]; the daemon parses them and writes
//! [`crate::MAP_LEARNED4`], [`crate::MAP_LEARNED6`] and
//! [`crate::MAP_NAME_FLOWS`], which classification then reads: a packet's
//! remote address or flow adds the sets it was learned for to the sets its
//! CIDRs are in.

/// [`LearnedKey4::scope`] of entries that apply to every user
/// (`[names] scope = "everyone"`); otherwise the scope is the id of the
/// user the answer was addressed to.
pub const SCOPE_EVERYONE: u32 = u32::MAX;

/// [`crate::Config::names_scope`] codes.
pub mod names_scope {
    /// A learned address applies to the user the answer went to.
    pub const USER: u32 = 0;
    /// A learned address applies to every user.
    pub const EVERYONE: u32 = 1;
}

/// Key of [`crate::MAP_LEARNED4`]: 8 bytes, as USERS4 has (an 8-byte key
/// hashes in about half the time of a 20-byte one, kernel 6.18).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LearnedKey4 {
    pub scope: u32,
    /// The IPv4 address's bytes in memory order.
    pub addr: u32,
}

/// Key of [`crate::MAP_LEARNED6`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LearnedKey6 {
    pub scope: u32,
    pub addr: [u8; 16],
}

/// Value of the learned maps and of [`crate::MAP_NAME_FLOWS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedSets {
    /// Bitmap of the sets, per policy generation: set indexes may change on
    /// a reload, so the daemon writes the idle generation's bitmap before
    /// switching, as for every other generation-keyed table.
    pub sets: [u64; crate::GENERATIONS as usize],
    /// `bpf_ktime_get_coarse_ns` time after which the entry no longer
    /// counts, whether or not the daemon has removed it yet.
    pub expires_ns: u64,
}

/// Key of [`crate::MAP_NAME_FLOWS`]: a TCP flow seen from the user (the
/// address and port on the user's side, then the remote's), addresses
/// as [`crate::Addr16`] (IPv4-mapped for IPv4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameFlowKey {
    pub user_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub user_port: u16,
    pub remote_port: u16,
}

/// [`SnoopHeader::kind`] codes: why the packet was copied.
pub mod snoop_kind {
    /// A DNS response: UDP or TCP from port 53.
    pub const DNS: u8 = 1;
    /// A TCP segment to port [`crate::TLS_PORT`] starting with a TLS
    /// handshake record, of a flow not yet in [`crate::MAP_NAME_FLOWS`].
    pub const TLS: u8 = 2;
}

/// The remote TCP port whose handshakes are read for a server name.
pub const TLS_PORT: u16 = 443;
/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Bytes of a packet copied, from its Ethernet header: a DNS answer over
/// UDP fits (EDNS answers larger than this are cut, and counted as such by
/// the daemon), and so does a ClientHello's first segment up to the server
/// name in practice (browsers put SNI early). A power of two, so that the
/// record is 2 KiB plus its header.
pub const SNOOP_BYTES: usize = 2048;

/// Header of a [`crate::MAP_NAMES_RING`] record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnoopHeader {
    /// A [`snoop_kind`] code.
    pub kind: u8,
    /// The packet's direction (`crate::dir`) as the data path saw it.
    pub dir: u8,
    pub _pad: u16,
    /// The user the data path identified (`crate::UserId`).
    pub user: u32,
    /// Bytes of `data` that hold the packet.
    pub len: u32,
    /// The packet's whole length (more than `len` when it was cut).
    pub orig_len: u32,
    /// The policy generation the packet was seen under.
    pub generation: u32,
    pub _pad2: u32,
}

/// A [`crate::MAP_NAMES_RING`] record: header and packet bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SnoopRecord {
    pub header: SnoopHeader,
    pub data: [u8; SNOOP_BYTES],
}

/// Size of the names ring buffer in bytes (a power of two, page multiple):
/// about 250 records in flight; a burst beyond that is counted in
/// [`crate::global_counter::NAMES_LOST`], never blocks a packet.
pub const NAMES_RING_BYTES: u32 = 512 * 1024;
/// Least capacity of each learned-address map (the daemon's
/// `[names] max_learned` sizes them when larger).
pub const DEFAULT_MAX_LEARNED: u32 = 65_536;
/// Flows classified by server name kept at once (LRU: a flow that ended
/// long ago gives way to a new one).
pub const DEFAULT_MAX_NAME_FLOWS: u32 = 65_536;

/// Longest domain name kept for `policyd status` (a name is at most 253
/// bytes; longer would not be one).
pub const MAX_DOMAIN_LEN: usize = 252;

/// Value of [`crate::MAP_LEARNED_NAMES`]: the name an address was learned
/// for (the first of its names that matched a set).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainName {
    /// Bytes of `name` in use.
    pub len: u32,
    pub name: [u8; MAX_DOMAIN_LEN],
}

impl Default for DomainName {
    fn default() -> Self {
        Self {
            len: 0,
            name: [0; MAX_DOMAIN_LEN],
        }
    }
}

impl DomainName {
    /// `name`, cut to [`MAX_DOMAIN_LEN`] bytes.
    pub fn new(name: &[u8]) -> Self {
        let mut out = Self::default();
        let n = name.len().min(MAX_DOMAIN_LEN);
        out.name[..n].copy_from_slice(&name[..n]);
        out.len = n as u32;
        out
    }

    pub fn bytes(&self) -> &[u8] {
        &self.name[..(self.len as usize).min(MAX_DOMAIN_LEN)]
    }
}
