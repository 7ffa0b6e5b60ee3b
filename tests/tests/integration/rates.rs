//! What the tests that send real traffic share: one lock so that only one
//! of them floods at a time, and the sizes and pauses they measure with.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use policyd_tests::{
    NetNs,
    topology::{Blast, Received, Sent, UdpSink, send_udp},
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

/// Floods a limit for three seconds, as fast as the sender can, with
/// `payload`-byte datagrams from `src` (an address of `from`) to a sink on
/// `dst` (an address of `to`); returns what was sent and what arrived.
pub(crate) fn flood(
    (from, src): (&NetNs, &str),
    (to, dst): (&NetNs, &str),
    payload: usize,
) -> (Sent, Vec<Received>) {
    let sink = UdpSink::start(to, SINK_PORT).unwrap();
    let sent = send_udp(
        from,
        Blast {
            src: sa(src, 0),
            dst: sa(dst, SINK_PORT),
            payload,
            tag: 1,
            max_packets: 20_000_000,
            max_time: Duration::from_secs(3),
            gap: None,
        },
    )
    .unwrap();
    (sent, sink.finish(QUIET).unwrap())
}

/// The rate a receiver saw of a [`flood`] through a limit of `limit_bps`.
#[derive(Debug)]
pub(crate) struct Measured {
    pub offered_bps: f64,
    /// From the first arrival of the window to its last.
    pub span: Duration,
    /// Frame bits between the window's first and last arrival (all but the
    /// first arrival's), per second of `span`.
    pub rate_bps: f64,
}

/// Measures the arrivals `got` of `frame` bytes each, from `skip` after the
/// first on (the burst drains within the first milliseconds; after it the
/// receiver sees the rate alone). Asserts that the measurement is worth
/// something: the sender offered over twice the limit, and over 100
/// datagrams arrived in the window. `diag` ends every failure message.
pub(crate) fn measure(
    (sent, got): (&Sent, &[Received]),
    frame: usize,
    limit_bps: f64,
    skip: Duration,
    diag: &str,
) -> Measured {
    let offered_bps = (sent.packets * frame as u64 * 8) as f64 / sent.elapsed.as_secs_f64();
    assert!(
        offered_bps > 2.0 * limit_bps,
        "the sender must offer well above the limit to test it: {offered_bps:.0} bit/s ({sent:?}){diag}"
    );
    assert!(!got.is_empty(), "nothing arrived{diag}");
    let from = got[0].at + skip;
    let window: Vec<&Received> = got.iter().filter(|r| r.at >= from).collect();
    assert!(
        window.len() > 100,
        "only {} datagrams after the first {skip:?}{diag}",
        window.len()
    );
    let span = window[window.len() - 1].at - window[0].at;
    let rate_bps = ((window.len() - 1) * frame * 8) as f64 / span.as_secs_f64();
    Measured {
        offered_bps,
        span,
        rate_bps,
    }
}
