//! Who a packet belongs to.

/// A user's index. `0` is reserved for the `unidentified` user: every packet
/// whose identity lookup finds nothing is accounted and enforced under it.
pub type UserId = u32;

/// The user id that unmatched packets fall under.
pub const USER_UNIDENTIFIED: UserId = 0;

/// Addresses are stored as 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`, RFC 4291 2.5.5.2), so one map and one lookup serve both
/// families. An IPv4 prefix of length `n` is stored with length `96 + n`.
pub type Addr16 = [u8; 16];

/// The IPv4-mapped form of an IPv4 address.
pub const fn v4_mapped(a: [u8; 4]) -> Addr16 {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// A MAC address padded to 8 bytes (hash keys of 6 bytes would be padded by
/// the compiler on one side and not the other).
pub type Mac8 = [u8; 8];

pub const fn mac8(m: [u8; 6]) -> Mac8 {
    [m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]
}

/// Traffic direction from the user's point of view; counted and limited
/// separately.
pub mod dir {
    /// From the user: identified by the source address (or socket owner).
    pub const UPLOAD: u8 = 0;
    /// To the user: identified by the destination address.
    pub const DOWNLOAD: u8 = 1;
    pub const COUNT: usize = 2;

    /// The direction of a packet seen on an interface facing `side` (a
    /// [`super::side`]): ingress from the users and egress to the network
    /// are their upload; the other two their download.
    #[inline(always)]
    pub const fn at(side: u32, egress: bool) -> u8 {
        if (side == super::side::USERS) != egress {
            UPLOAD
        } else {
            DOWNLOAD
        }
    }
}

/// Which way an interface faces, set per interface in [`crate::MAP_IFACES`].
pub mod side {
    /// Faces the users: ingress is upload (source identifies), egress is
    /// download (destination identifies), MAC addresses are the users'.
    pub const USERS: u32 = 0;
    /// Faces the network: ingress is download, egress is upload; MACs are
    /// routers', so they identify nobody.
    pub const NETWORK: u32 = 1;
}

/// Per-interface settings, at index ifindex of [`crate::MAP_IFACES`]. An
/// interface without policyd's programs has the zero entry: the users' side,
/// not attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceConfig {
    pub side: u32,
    /// Bits of [`iface_flag`].
    pub flags: u32,
}

/// Bits of [`IfaceConfig::flags`].
pub mod iface_flag {
    /// policyd's XDP program runs on the interface (see the gateway check
    /// in the TC egress program).
    pub const ATTACHED: u32 = 1 << 0;
}

/// Entries of [`crate::MAP_IFACES`]: interfaces policyd attaches to must
/// have an ifindex below this (an array indexed by ifindex costs one
/// bounds check per packet where a hash cost a lookup; 512 KiB).
pub const MAX_IFINDEX: u32 = 1 << 16;

/// Per-user settings, indexed by [`UserId`] in [`crate::MAP_USER_INFO`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// Group id, `0` for none.
    pub group: u32,
    /// The user's row in [`crate::MAP_ACTIONS`]: their own rules, their
    /// group's and everyone's, folded together by userspace.
    pub row: u32,
}

/// Most MAC addresses one IP address may be bound to.
pub const MAX_MACS_PER_BINDING: usize = 4;

/// The MAC addresses allowed to send from an IP address (anti-spoofing),
/// value of [`crate::MAP_IP_BINDINGS`] keyed by [`Addr16`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MacBinding {
    pub macs: [Mac8; MAX_MACS_PER_BINDING],
    /// How many of `macs` are in use (1..=4).
    pub count: u32,
    /// The user the address belongs to (for accounting a spoofed packet).
    pub user: UserId,
}
