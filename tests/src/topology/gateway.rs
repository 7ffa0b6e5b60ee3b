//! A forwarding gateway between the users and the network, as the README's
//! `--iface users0 --uplink net0` example: three namespaces, the users'
//! client, the gateway (IPv4 forwarding on) and a server beyond it.

use std::{io, path::Path};

use super::{ScratchDir, Topology};
use crate::{Daemon, NetNs, veth_pair};

/// `cl0` (client, `10.<users>.0.2/24`) -- `users0` (`10.<users>.0.1/24`) in
/// the gateway, whose `net0` (`10.<net>.0.1/24`) -- `sv0` (server,
/// `10.<net>.0.2/24`). Client and server route through the gateway.
#[derive(Debug)]
pub struct Gateway {
    // Drop order is declaration order: policyd stops while its interfaces
    // exist, then the namespaces go, then the directory with its log.
    pub daemon: Daemon,
    pub cl: NetNs,
    pub sv: NetNs,
    pub gw: NetNs,
    pub dir: ScratchDir,
}

impl Gateway {
    /// Builds the three namespaces and starts `policyd run --iface users0
    /// --uplink net0` with `policy` and `extra` arguments on the gateway;
    /// returns once it is ready.
    pub fn start(
        tag: &str,
        (users, net): (u8, u8),
        policyd: &Path,
        policy: &str,
        extra: &[&str],
    ) -> io::Result<Self> {
        let gw = NetNs::new(&format!("{tag}g"))?;
        let cl = NetNs::new(&format!("{tag}c"))?;
        let sv = NetNs::new(&format!("{tag}s"))?;
        let addr = |subnet: u8, host: u8| format!("10.{subnet}.0.{host}/24");
        veth_pair(
            (&gw, "users0", &[&addr(users, 1)]),
            (&cl, "cl0", &[&addr(users, 2)]),
        )?;
        veth_pair(
            (&gw, "net0", &[&addr(net, 1)]),
            (&sv, "sv0", &[&addr(net, 2)]),
        )?;
        cl.ip(&["route", "add", "default", "via", &format!("10.{users}.0.1")])?;
        sv.ip(&["route", "add", "default", "via", &format!("10.{net}.0.1")])?;
        // /proc/sys/net is the writing thread's own network namespace.
        gw.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))??;
        let dir = ScratchDir::new(gw.name())?;
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy)?;
        let mut args = vec!["--uplink", "net0"];
        args.extend_from_slice(extra);
        let daemon = Daemon::start(
            &gw,
            policyd,
            &["users0"],
            &policy_path,
            Topology::metrics_addr(),
            &dir.path().join("policyd.log"),
            &args,
        )?;
        Ok(Self {
            daemon,
            cl,
            sv,
            gw,
            dir,
        })
    }

    /// The body of `/metrics`.
    pub fn metrics(&self) -> io::Result<String> {
        self.daemon.metrics_in(&self.gw)
    }

    /// Text for a failed assertion: the metrics given and policyd's log.
    pub fn diag(&self, metrics: &str) -> String {
        self.daemon.diag(metrics)
    }
}
