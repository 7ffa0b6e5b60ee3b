//! What the daemon serving a pin directory says about itself, pinned beside
//! the state it enforces ([`crate::MAP_DAEMON`]), so that a reader of the
//! pins (`policyd status`) can tell a serving daemon from one that was
//! killed: pid, start time, version and how each interface is attached. A
//! clean stop marks the record stopped; a SIGKILL leaves it `SERVING` with
//! a pid that no longer holds the directory's lock. Only userspace reads
//! and writes it; no program looks at it.
//!
//! The profile names of each generation are pinned too
//! ([`crate::MAP_PROFILE_NAMES`], [`crate::NameSlot`]s at
//! `generation * MAX_PROFILES + profile`), so the profile in force can be
//! named without the policy files.

/// [`DaemonInfo::state`] codes.
pub mod daemon_state {
    /// No daemon ever wrote the record (or one older than the record).
    pub const NONE: u32 = 0;
    /// A daemon started and has not stopped cleanly: it serves, or it was
    /// killed (its pid then no longer holds the pin directory's lock).
    pub const SERVING: u32 = 1;
    /// The daemon stopped cleanly at [`super::DaemonInfo::stopped_ns`].
    pub const STOPPED: u32 = 2;
}

/// [`DaemonIface::ingress`] codes: how the ingress program is attached.
pub mod ingress_mode {
    /// Not known: the link was adopted from a policyd that recorded nothing.
    pub const UNKNOWN: u32 = 0;
    /// XDP in the driver.
    pub const XDP_NATIVE: u32 = 1;
    /// XDP in the core stack (skb mode), after a native attach failed.
    pub const XDP_GENERIC: u32 = 2;
    /// TC ingress (TCX).
    pub const TC: u32 = 3;
    /// XDP, in a mode not known: a link adopted from a policyd that
    /// recorded nothing, on an interface whose mode could not be read.
    pub const XDP: u32 = 4;
}

/// [`DaemonIface::side`] codes (as [`crate::side`]).
pub const DAEMON_IFACE_USERS: u32 = 0;
pub const DAEMON_IFACE_NETWORK: u32 = 1;

/// Longest interface name (IFNAMSIZ, with its NUL).
pub const IFACE_NAME_LEN: usize = 16;
/// Longest version string recorded.
pub const VERSION_LEN: usize = 32;
/// Interfaces recorded; a daemon on more records the first ones and the
/// count ([`DaemonInfo::iface_count`]).
pub const MAX_DAEMON_IFACES: usize = 64;

/// One interface a daemon attached to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaemonIface {
    /// The name, NUL-padded.
    pub name: [u8; IFACE_NAME_LEN],
    pub ifindex: u32,
    /// An [`ingress_mode`] code.
    pub ingress: u32,
    /// `DAEMON_IFACE_USERS` or `DAEMON_IFACE_NETWORK`.
    pub side: u32,
    /// 1 when TC runs on egress too.
    pub egress: u32,
}

/// Value of [`crate::MAP_DAEMON`] (one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DaemonInfo {
    /// A [`daemon_state`] code.
    pub state: u32,
    pub pid: u32,
    /// Unix time in ns when the daemon started enforcing.
    pub started_ns: u64,
    /// Unix time in ns of the clean stop (0 while serving).
    pub stopped_ns: u64,
    /// Unix time in ns when the policy in force was written (start or the
    /// last reload that changed it).
    pub applied_ns: u64,
    /// Reloads that changed the policy since the start.
    pub reloads: u32,
    /// Bytes of `version` in use.
    pub version_len: u32,
    pub version: [u8; VERSION_LEN],
    /// Interfaces attached (may exceed [`MAX_DAEMON_IFACES`]).
    pub iface_count: u32,
    pub _pad: u32,
    pub ifaces: [DaemonIface; MAX_DAEMON_IFACES],
}

impl Default for DaemonInfo {
    fn default() -> Self {
        Self {
            state: daemon_state::NONE,
            pid: 0,
            started_ns: 0,
            stopped_ns: 0,
            applied_ns: 0,
            reloads: 0,
            version_len: 0,
            version: [0; VERSION_LEN],
            iface_count: 0,
            _pad: 0,
            ifaces: [DaemonIface::default(); MAX_DAEMON_IFACES],
        }
    }
}

impl DaemonInfo {
    /// Records `version` (cut at [`VERSION_LEN`] bytes).
    pub fn set_version(&mut self, version: &[u8]) {
        let len = version.len().min(VERSION_LEN);
        self.version = [0; VERSION_LEN];
        self.version[..len].copy_from_slice(&version[..len]);
        self.version_len = len as u32;
    }

    pub fn version(&self) -> &[u8] {
        &self.version[..(self.version_len as usize).min(VERSION_LEN)]
    }

    /// The interfaces recorded.
    pub fn ifaces(&self) -> &[DaemonIface] {
        &self.ifaces[..(self.iface_count as usize).min(MAX_DAEMON_IFACES)]
    }

    /// Records an interface (the count goes on past the table's end).
    pub fn push_iface(&mut self, iface: DaemonIface) {
        if let Some(slot) = self.ifaces.get_mut(self.iface_count as usize) {
            *slot = iface;
        }
        self.iface_count = self.iface_count.saturating_add(1);
    }
}

impl DaemonIface {
    pub fn new(name: &[u8], ifindex: u32, ingress: u32, side: u32, egress: bool) -> Self {
        let mut n = [0; IFACE_NAME_LEN];
        let len = name.len().min(IFACE_NAME_LEN - 1);
        n[..len].copy_from_slice(&name[..len]);
        Self {
            name: n,
            ifindex,
            ingress,
            side,
            egress: u32::from(egress),
        }
    }

    /// The name's bytes (up to the first NUL).
    pub fn name(&self) -> &[u8] {
        let end = self
            .name
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(IFACE_NAME_LEN);
        &self.name[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_are_cut_to_fit() {
        let i = DaemonIface::new(b"a-very-long-interface-name", 3, ingress_mode::TC, 0, true);
        assert_eq!(i.name(), b"a-very-long-int");
        let mut d = DaemonInfo::default();
        d.set_version(&[b'x'; 40]);
        assert_eq!(d.version().len(), VERSION_LEN);
        for n in 0..MAX_DAEMON_IFACES + 2 {
            d.push_iface(DaemonIface::new(b"eth", n as u32, 0, 0, false));
        }
        assert_eq!(d.iface_count as usize, MAX_DAEMON_IFACES + 2);
        assert_eq!(d.ifaces().len(), MAX_DAEMON_IFACES);
    }
}
