//! End to end: a real `policyd run` in a namespace, real sockets across a
//! veth pair, and the CLI commands that read its pinned state.

mod conn;
mod daemon;
mod explain;
mod hook;
mod monitoring;
mod names;
mod non_ip;
mod quota;
mod reload;
mod replay;
mod replay_capture;
mod restart;
mod scan;
mod schedule;
mod traffic;
mod unidentified;

use policyd_tests::{policyd_bin, topology::Topology};

/// Runs `policyd ARGS` in the gateway's namespace; its output, after
/// checking that it succeeded.
pub(super) fn policyd(topo: &Topology, args: &[&str]) -> String {
    let out = topo
        .gw
        .command(&policyd_bin().display().to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
