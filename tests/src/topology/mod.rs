//! Fixtures for the traffic tests: a gateway namespace whose `gw0` runs
//! policyd, a client namespace on the other end of the veth pair, and tools
//! to send traffic across and count what arrives.

pub mod dns;
mod flood;
mod gateway;
mod hello;
mod listener;
mod pace;
mod process;
mod raw;
mod sender;
mod tcpdump;
mod udp;

use std::{
    io,
    net::SocketAddr,
    path::Path,
    thread,
    time::{Duration, Instant},
};

pub use self::{
    dns::Dnsmasq,
    flood::Flood,
    gateway::Gateway,
    hello::{AFTER_HELLO, EchoServer, Exchange, Served, send_hello},
    pace::{ArrivalCounter, Pacer},
    process::ChildGuard,
    raw::{Captured, PacketTap, send_frames},
    tcpdump::{Pcap, Tcpdump, pcapng_from_pcaps, read_pcap},
    udp::{Blast, Received, Sent, UdpSink, datagrams_through, send_udp},
};
use crate::{Daemon, NetNs, veth_pair};

/// Where policyd serves metrics, on the gateway namespace's own loopback
/// (every gateway has its own, so tests running at once do not collide).
pub const METRICS_ADDR: &str = "127.0.0.1:9617";

/// A directory under the system's temporary directory, removed with
/// everything in it on drop. The tag (a namespace's name) is in its name so
/// that a directory left behind by a killed test says whose it was.
#[derive(Debug)]
pub struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    pub fn new(tag: &str) -> io::Result<Self> {
        tempfile::Builder::new()
            .prefix(&format!("policyd-{tag}-"))
            .tempdir()
            .map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Replaces the file at `path` in one step (write a temporary file, rename
/// it over), as editors and configuration tools do.
pub fn replace_file(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Two namespaces joined by a veth pair: `gw0` in `gw`, `cl0` in `cl`.
#[derive(Debug)]
pub struct Net {
    // Dropped in reverse order of creation (either order removes the pair).
    pub cl: NetNs,
    pub gw: NetNs,
}

impl Net {
    /// `gw0` gets `10.<subnet>.0.1/24` and `fd00:<subnet>::1/64` plus
    /// `gw_extra`; `cl0` gets `cl_addrs` (the users' addresses).
    pub fn new(tag: &str, subnet: u8, gw_extra: &[&str], cl_addrs: &[&str]) -> io::Result<Self> {
        let gw = NetNs::new(&format!("{tag}g"))?;
        let cl = NetNs::new(&format!("{tag}c"))?;
        let v4 = format!("10.{subnet}.0.1/24");
        let v6 = format!("fd00:{subnet}::1/64");
        let mut gw_addrs = vec![v4.as_str(), v6.as_str()];
        gw_addrs.extend_from_slice(gw_extra);
        veth_pair((&gw, "gw0", &gw_addrs), (&cl, "cl0", cl_addrs))?;
        Ok(Self { cl, gw })
    }
}

/// A [`Net`] with policyd enforcing a policy on `gw0` (`--iface gw0`: what
/// arrives on it is the users' upload).
#[derive(Debug)]
pub struct Topology {
    // Drop order is declaration order: policyd stops (and detaches) while
    // its interface still exists, then the namespaces go, and the directory
    // holding its policy and log goes last.
    pub daemon: Daemon,
    pub cl: NetNs,
    pub gw: NetNs,
    pub dir: ScratchDir,
}

impl Topology {
    /// Writes `policy` into a scratch directory and starts `policyd` (the
    /// binary at `policyd`) on `gw0` with `extra` arguments; returns once it
    /// is ready.
    pub fn start(net: Net, policyd: &Path, policy: &str, extra: &[&str]) -> io::Result<Self> {
        let dir = ScratchDir::new(net.gw.name())?;
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy)?;
        let daemon = Daemon::start(
            &net.gw,
            policyd,
            &["gw0"],
            &policy_path,
            Self::metrics_addr(),
            &dir.path().join("policyd.log"),
            extra,
        )?;
        Ok(Self {
            daemon,
            cl: net.cl,
            gw: net.gw,
            dir,
        })
    }

    pub fn metrics_addr() -> SocketAddr {
        METRICS_ADDR.parse().expect("a socket address")
    }

    /// The body of `/metrics`.
    pub fn metrics(&self) -> io::Result<String> {
        self.daemon.metrics_in(&self.gw)
    }

    /// Text for a failed assertion: the metrics given and policyd's log.
    pub fn diag(&self, metrics: &str) -> String {
        self.daemon.diag(metrics)
    }

    /// Sends `count` datagrams from `src` (a user's address on `cl0`) to
    /// `port` on the gateway (`.1` of the sender's /24) and returns how many
    /// arrived: "does this user's traffic get through?".
    pub fn through(&self, src: &str, port: u16, count: u64) -> io::Result<u64> {
        let src: std::net::IpAddr = src.parse().map_err(io::Error::other)?;
        let std::net::IpAddr::V4(v4) = src else {
            return Err(io::Error::other("an IPv4 sender"));
        };
        let [a, b, c, _] = v4.octets();
        let gw = SocketAddr::from(([a, b, c, 1], port));
        datagrams_through(&self.cl, &self.gw, src, gw, count)
    }

    /// `policyd_reloads_total{result}` now (0 when unreadable).
    pub fn reloads(&self, result: &str) -> u64 {
        let body = self.metrics().unwrap_or_default();
        crate::metric_value(&body, "policyd_reloads_total", &[("result", result)]).unwrap_or(0)
    }

    /// Sends SIGHUP to the daemon (reload).
    pub fn hup(&self) {
        let pid = libc::pid_t::try_from(self.daemon.pid()).expect("a pid");
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    }

    /// Polls `cond` every 50 ms for at most 10 s; panics with `what` and
    /// the daemon's log if it never holds.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}{}", self.diag(""));
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `timeout`) for an event line for which `pred` holds;
    /// returns it, or `None`.
    pub fn wait_for_event(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.daemon.events_text().lines().find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}
