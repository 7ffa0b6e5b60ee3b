//! Per-packet cost of the threat features (issue 11), each enabled and
//! unused, in test runs: the same packet through a policy without the
//! feature and one with it, side by side in the same rounds.

use std::path::Path;

use policyd::policy::{self, CompiledPolicy};
use policyd_tests::packet::*;

use crate::{Settings, cost::run_xdp, median, workload::load};

/// Mail and a UDP service, each limited far above anything a test run
/// reaches; `CONN` swaps in the feature under test.
const POLICY: &str = r#"
[[class]]
name = "mail"
match = { proto = "tcp", ports = [25] }

[[class]]
name = "voip"
match = { proto = "udp", ports = [5060] }

[[user]]
name = "alice"
ips = ["10.0.0.1"]

[[rule]]
class = "mail"
action = "limit 10Gbit CONN"

[[rule]]
class = "voip"
action = "limit 10Gbit CONN"
"#;

fn compile(src: &str) -> CompiledPolicy {
    CompiledPolicy::compile(&policy::parse(Path::new("bench.toml"), src).expect("a valid policy"))
}

/// (feature, packet, policy without it, policy with it, frame).
fn cases() -> Vec<(&'static str, &'static str, String, String, Vec<u8>)> {
    let alice = [10, 0, 0, 1];
    let remote = [192, 0, 2, 1];
    let without = POLICY.replace(" CONN", "");
    // A rate no test run refuses, so the repeated flow stays seen and the
    // repeated SYN keeps taking tokens.
    let with = POLICY.replace("CONN", "conn 1000000000/s");
    let refusing = POLICY.replace("CONN", "conn 1/h");
    vec![
        (
            "connection rate",
            "UDP, flow already seen",
            without.clone(),
            with.clone(),
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 17, &udp(40000, 5060, &[0; 64])),
            ),
        ),
        (
            "connection rate",
            "TCP ACK (opens nothing)",
            without.clone(),
            with.clone(),
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 6, &tcp(40000, 25, 0x10, &[0; 64])),
            ),
        ),
        (
            "connection rate",
            "TCP SYN, admitted",
            without.clone(),
            with,
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 6, &tcp(40000, 25, 0x02, &[])),
            ),
        ),
        (
            "connection rate",
            "TCP SYN, refused (dropped)",
            without.clone(),
            refusing,
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 6, &tcp(40000, 25, 0x02, &[])),
            ),
        ),
        // Thresholds a repeated packet never crosses: one destination.
        (
            "scan detection",
            "TCP ACK (opens nothing)",
            without.clone(),
            format!("{SCAN}{without}"),
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 6, &tcp(40000, 25, 0x10, &[0; 64])),
            ),
        ),
        (
            "scan detection",
            "TCP SYN (counted)",
            without.clone(),
            format!("{SCAN}{without}"),
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 6, &tcp(40000, 25, 0x02, &[])),
            ),
        ),
        (
            "scan detection",
            "UDP, flow already seen",
            without.clone(),
            format!("{SCAN}{without}"),
            eth(
                ETH_P_IP,
                &ipv4(alice, remote, 17, &udp(40000, 5060, &[0; 64])),
            ),
        ),
    ]
}

const SCAN: &str = "[detect.scan]\nhosts = 100\nports = 100\n";

/// The kernel memory of the scan table, which has an entry per user when
/// the policy detects scans (and one otherwise).
fn scan_memory(quick: bool) {
    let sizes: &[u32] = if quick {
        &[10_000]
    } else {
        &[10_000, 1_000_000]
    };
    println!("| users | `SCAN` with `[detect.scan]` (MiB) | without (MiB) |");
    println!("|---:|---:|---:|");
    for &n in sizes {
        let mib = |scan: bool| {
            let mut p = crate::workload::policy(n, 1);
            if scan {
                p.config.present |= policy_common::present::SCAN;
                p.config.scan_port_bits = policy_common::bits_for(100);
            }
            let _dp = load(&p);
            crate::memory::maps()
                .iter()
                .filter(|m| m.name == policy_common::MAP_SCAN)
                .map(|m| m.memlock)
                .sum::<u64>() as f64
                / (1024.0 * 1024.0)
        };
        println!("| {n} | {:.1} | {:.3} |", mib(true), mib(false));
    }
    println!();
}

pub(crate) fn features_table(s: &Settings, quick: bool) {
    println!("### Threat features: per-packet cost, unused and enabled\n");
    println!(
        "_XDP test runs of one packet of a limited class (a 10 Gbit/s limit no test run reaches) through a policy without the feature and one with it, both loaded, rounds interleaved. Unused, a feature costs its packet nothing beyond one branch on a field the action entry already holds._\n"
    );
    println!("| feature | packet | without (ns) | with (ns) | difference (ns) |");
    println!("|---|---|---:|---:|---:|");
    for (feature, packet, without, with, frame) in cases() {
        let (a, b) = (load(&compile(&without)), load(&compile(&with)));
        let (mut off, mut on) = (vec![], vec![]);
        for _ in 0..s.rounds {
            off.push(run_xdp(a.xdp().unwrap(), &frame, s.repeat));
            on.push(run_xdp(b.xdp().unwrap(), &frame, s.repeat));
        }
        let (off, on) = (median(off), median(on));
        println!(
            "| {feature} | {packet} | {off:.1} | {on:.1} | {:+.1} |",
            on - off
        );
    }
    println!();
    scan_memory(quick);
}
