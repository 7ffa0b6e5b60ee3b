//! The rate limiters compared with policyd, configured from one place so
//! that every one gets the same per-user rate and burst.
//!
//! Policers (policyd at XDP, nftables `limit`, iptables `hashlimit`) sit on
//! the gateway and drop what exceeds the rate; shapers (HTB, TBF) sit on
//! the sender's egress and queue it, which TCP feels as back-pressure
//! rather than loss. A gateway cannot shape its users' upload, so the
//! shapers are the best case a host could configure for itself.

use std::process::Stdio;

use policyd_tests::{NetNs, topology::Net};

use crate::nft;

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Limiter {
    /// policyd at XDP on `gw0`: one `limit` per user.
    Policyd,
    /// nftables at netdev ingress of `gw0`: one `limit rate over ... drop`
    /// rule per user.
    NftLimit,
    /// iptables `hashlimit` in the gateway's INPUT chain, one bucket per
    /// source address.
    Hashlimit,
    /// HTB on the client's `cl0` egress: one class per user, selected by
    /// source address.
    Htb,
    /// TBF on the client's `cl0` egress: one bucket for the interface.
    Tbf,
}

pub(crate) const RATE_LIMITERS: [(&str, Limiter); 5] = [
    ("policyd (XDP)", Limiter::Policyd),
    ("nftables limit", Limiter::NftLimit),
    ("iptables hashlimit", Limiter::Hashlimit),
    ("HTB (sender)", Limiter::Htb),
    ("TBF (sender)", Limiter::Tbf),
];

/// Per-user limiters only.
pub(crate) const FAIR_LIMITERS: [(&str, Limiter); 4] = [
    ("policyd (XDP)", Limiter::Policyd),
    ("nftables limit", Limiter::NftLimit),
    ("iptables hashlimit", Limiter::Hashlimit),
    ("HTB (sender)", Limiter::Htb),
];

pub(crate) const WHERE: &str = "policyd, nftables and hashlimit police the gateway's `gw0`; HTB and TBF shape the \
                         client's `cl0` egress (a shaper queues where a policer drops).";

/// Burst for every limiter: 250 ms at the rate, policyd's default.
fn burst_bytes(rate: u64) -> u64 {
    rate / 8 / 4
}

/// A policy giving each of `users` (addresses) a limit of `rate` bit/s.
pub(crate) fn policyd_policy(users: &[String], rate: u64) -> String {
    users
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "[[user]]\nname = \"u{i}\"\nips = [\"{a}\"]\naction = \"limit {}kbit\"\n",
                rate / 1000
            )
        })
        .collect()
}

fn run(cmd: &mut std::process::Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Configures `l` (not policyd) for `users` at `rate` bit/s each.
pub(crate) fn configure(l: Limiter, net: &Net, users: &[String], rate: u64) {
    let burst = burst_bytes(rate);
    match l {
        Limiter::Policyd => unreachable!("policyd runs as a daemon"),
        Limiter::NftLimit => {
            // nft's byte units are 1024-based. It counts IP bytes (the
            // Ethernet header is already pulled at netdev ingress).
            let rules: String = users
                .iter()
                .map(|a| {
                    format!(
                        "  ip saddr {a} limit rate over {} kbytes/second burst {} kbytes drop\n",
                        rate / 8 / 1024,
                        burst / 1024
                    )
                })
                .collect();
            nft::apply(
                &net.gw,
                &format!(
                    "table netdev bench {{\n chain in {{\n  type filter hook ingress device gw0 priority 0\n{rules} }}\n}}\n"
                ),
            );
        }
        Limiter::Hashlimit => {
            // Byte mode (`kb/s`: 1024-based); counts IP bytes, in 16-byte
            // steps (XT_HASHLIMIT_BYTE_SHIFT). iptables refuses a byte
            // burst below a little over one second of the rate (its own
            // rounding), so it gets 1.02 s.
            let rate_kb = rate / 8 / 1024;
            run(net.gw.command("iptables").args([
                "-A",
                "INPUT",
                "-i",
                "gw0",
                "-m",
                "hashlimit",
                "--hashlimit-name",
                "pdbench",
                "--hashlimit-mode",
                "srcip",
                "--hashlimit-above",
                &format!("{rate_kb}kb/s"),
                "--hashlimit-burst",
                &format!("{}kb", (burst / 1024).max(rate_kb * 102 / 100)),
                "-j",
                "DROP",
            ]));
        }
        Limiter::Htb => tc_batch(&net.cl, &htb_script(users, rate, burst)),
        Limiter::Tbf => run(net.cl.command("tc").args([
            "qdisc",
            "replace",
            "dev",
            "cl0",
            "root",
            "tbf",
            "rate",
            &format!("{rate}bit"),
            "burst",
            &burst.to_string(),
            "latency",
            "50ms",
        ])),
    }
}

/// HTB with one class per user (rate = ceil = `rate`), filtered on the
/// source address (u32: this kernel has no flower); the rest (ARP, say) is
/// unclassified and passes. An explicit quantum: the default (rate / r2q)
/// is out of range above ~20 Mbit/s and tc warns.
fn htb_script(users: &[String], rate: u64, burst: u64) -> String {
    let mut s = String::from("qdisc replace dev cl0 root handle 1: htb default 0\n");
    for (i, a) in users.iter().enumerate() {
        let id = i + 1;
        s.push_str(&format!(
            "class add dev cl0 parent 1: classid 1:{id:x} htb rate {rate}bit ceil {rate}bit burst {burst} cburst {burst} quantum 60000\n\
             filter add dev cl0 parent 1: protocol ip prio 1 u32 match ip src {a}/32 flowid 1:{id:x}\n"
        ));
    }
    s
}

fn tc_batch(ns: &NetNs, script: &str) {
    let mut child = ns
        .command("tc")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tc");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
        .expect("tc script");
    let out = child.wait_with_output().expect("tc");
    assert!(
        out.status.success(),
        "tc refused the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
