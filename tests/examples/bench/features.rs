//! Per-packet cost of the threat features (issue 11), each enabled and
//! unused, and the memory of the tables they size to the users, in test runs: the same packet through a policy without the
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
        // A budget no test run uses up; one used up by the first packet
        // (its limit, which nothing reaches, is then policed too); one of
        // another class (looked at, not counted).
        (
            "byte quota",
            "UDP, budget not used up",
            without.clone(),
            format!("{without}{}", quota("1000GiB/day", "deny", None)),
            udp_frame(alice, remote),
        ),
        (
            "byte quota",
            "UDP, used up: its limit added",
            without.clone(),
            format!("{without}{}", quota("1B/day", "limit 10Gbit", None)),
            udp_frame(alice, remote),
        ),
        (
            "byte quota",
            "UDP, a quota of another class",
            without.clone(),
            format!("{without}{}", quota("1000GiB/day", "deny", Some("mail"))),
            udp_frame(alice, remote),
        ),
        // L2 classes: an IP packet never looks at them; an ARP broadcast
        // passes uncounted without one and is identified, classified and
        // limited with one.
        (
            "L2 classes",
            "UDP (IP: unaffected)",
            without.clone(),
            format!("{without}{L2}"),
            udp_frame(alice, remote),
        ),
        (
            "L2 classes",
            "ARP broadcast, limited",
            without.clone(),
            format!("{without}{L2}"),
            eth_macs(BROADCAST_MAC, [2, 0, 0, 0, 0, 1], ETH_P_ARP, &[0; 28]),
        ),
        // The unidentified user's limit, one bucket for all against one
        // per sender.
        (
            "per-source buckets",
            "UDP of an unregistered sender",
            format!("{without}{UNID}buckets = \"shared\"\n"),
            format!("{without}{UNID}"),
            udp_frame([10, 9, 9, 9], remote),
        ),
    ]
}

fn udp_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    eth(ETH_P_IP, &ipv4(src, dst, 17, &udp(40000, 5060, &[0; 64])))
}

fn quota(budget: &str, exhausted: &str, class: Option<&str>) -> String {
    let class = class.map_or_else(String::new, |c| format!("class = \"{c}\"\n"));
    format!(
        "\n[[quota]]\nuser = \"alice\"\n{class}quota = \"{budget}\"\nexhausted = \"{exhausted}\"\n"
    )
}

const L2: &str = "\n[[class]]\nname = \"broadcast\"\nmatch = { l2 = \"broadcast\" }\n\n[[rule]]\nclass = \"broadcast\"\naction = \"limit 10Gbit\"\n";

const UNID: &str = "\n[unidentified]\naction = \"limit 10Gbit\"\n";

const SCAN: &str = "[detect.scan]\nhosts = 100\nports = 100\n";

/// The kernel memory of the tables a feature sizes to the users: the scan
/// table (an entry per user when the policy detects scans) and the quota
/// table (a slot per user and quota; here one quota each), one otherwise.
fn feature_memory(quick: bool) {
    let sizes: &[u32] = if quick {
        &[10_000]
    } else {
        &[10_000, 1_000_000]
    };
    println!(
        "| users | `SCAN` with `[detect.scan]` (MiB) | without (MiB) | `QUOTAS` with a quota each (MiB) | without (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let mib = |map: &str, on: bool| {
            let mut p = crate::workload::policy(n, 1);
            if on && map == policy_common::MAP_SCAN {
                p.config.present |= policy_common::present::SCAN;
                p.config.scan_port_bits = policy_common::bits_for(100);
            }
            if on && map == policy_common::MAP_QUOTAS {
                p.config.present |= policy_common::present::QUOTAS;
                p.config.quota_slots = 1;
            }
            let _dp = load(&p);
            crate::memory::maps()
                .iter()
                .filter(|m| m.name == map)
                .map(|m| m.memlock)
                .sum::<u64>() as f64
                / (1024.0 * 1024.0)
        };
        let (scan, quotas) = (policy_common::MAP_SCAN, policy_common::MAP_QUOTAS);
        println!(
            "| {n} | {:.1} | {:.3} | {:.1} | {:.3} |",
            mib(scan, true),
            mib(scan, false),
            mib(quotas, true),
            mib(quotas, false)
        );
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
    feature_memory(quick);
}
