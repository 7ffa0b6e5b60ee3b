//! What the tests that send real traffic share: one lock so that only one
//! of them floods at a time, and the sizes and pauses they measure with.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

/// One lock for the whole privileged binary, whichever module a test is in:
/// floods and timing-sensitive checks must not meet on a 2-core machine.
static RATE_TESTS: RwLock<()> = RwLock::new(());

/// Held by every test that measures a rate or floods: alone, since two at
/// once would distort each other's figures.
pub(crate) fn serial() -> RwLockWriteGuard<'static, ()> {
    RATE_TESTS.write().unwrap_or_else(PoisonError::into_inner)
}

/// Held by every other test of the binary: any number of them at once, but
/// never beside a flood or a rate measurement, which then have the machine
/// to themselves (and a bucket refilling during a test run, or a paced
/// sender that must lose nothing, never meets a flood).
pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    RATE_TESTS.read().unwrap_or_else(PoisonError::into_inner)
}

/// Ethernet (14) + IPv4 (20) + UDP (8): policyd counts whole frames.
pub(crate) const UDP4_OVERHEAD: usize = 42;
/// Ethernet (14) + IPv6 (40) + UDP (8).
pub(crate) const UDP6_OVERHEAD: usize = 62;
pub(crate) const SINK_PORT: u16 = 5000;
/// How long a sink must stay silent before a test stops listening.
pub(crate) const QUIET: Duration = Duration::from_millis(300);
/// Gap between datagrams of counted (not flooding) senders: slow enough
/// that no queue on the way can overflow, so every datagram reaches every
/// hook.
pub(crate) const PACE: Duration = Duration::from_micros(200);

pub(crate) fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP address"), port)
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}
