//! The control plane: how long a reload takes, and what a daemon with many
//! active users costs in memory and per scrape.

use std::time::{Duration, Instant};

use policyd_tests::{
    packet::*,
    topology::{Net, Topology},
};

use crate::{
    median, policyd_bin,
    workload::{load, policy},
};

/// Time to apply a policy of `users` users (exact addresses) as a reload:
/// the second apply into an already loaded object, which writes the idle
/// generation, switches, and removes the old one.
pub(crate) fn reload_table(quick: bool) {
    println!("### Control plane: applying a policy (a reload)\n");
    println!(
        "_Each policy applied twice into one loaded object; the second apply is the reload (write the idle generation, switch, remove the old one). Wall time, median of 3._\n"
    );
    println!("| users | reload (ms) |");
    println!("|---:|---:|");
    let sizes: &[u32] = if quick {
        &[1_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        let p = policy(n, 1);
        let mut dp = load(&p);
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            dp.apply(&p).expect("apply");
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!("| {n} | {:.0} |", median(times));
    }
    println!();
}

/// A running daemon with 10 000 users (1 000 in quick runs) that all sent a packet: its memory
/// and the cost of a scrape.
pub(crate) fn daemon_table(quick: bool) {
    let users: u32 = if quick { 1_000 } else { 10_000 };
    println!("### Control plane: the daemon with {users} active users\n");
    let mut text = String::new();
    for i in 1..=users {
        let [_, _, b, c] = (i + 256).to_be_bytes();
        text.push_str(&format!(
            "[[user]]\nname = \"u{i}\"\nips = [\"10.231.{b}.{c}\"]\n"
        ));
    }
    let net = Net::new("cp", 231, &[], &["10.231.0.2/16"]).expect("namespaces");
    let topo = Topology::start(net, &policyd_bin(), &text, &[]).expect("policyd");
    // One frame from each user's address, so every user has counters.
    let gw_mac = {
        let out = topo
            .gw
            .command("ip")
            .args(["-o", "link", "show", "gw0"])
            .output()
            .expect("ip");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or("ff:ff:ff:ff:ff:ff")
            .to_owned()
    };
    let mac: Vec<u8> = gw_mac
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    let dst_mac: [u8; 6] = mac.try_into().unwrap_or([0xff; 6]);
    let frames: Vec<Vec<u8>> = (1..=users)
        .map(|i| {
            let [_, _, b, c] = (i + 256).to_be_bytes();
            eth_macs(
                dst_mac,
                SRC_MAC,
                ETH_P_IP,
                &ipv4([10, 231, b, c], [10, 231, 0, 1], 17, &udp(1, 9, &[0; 8])),
            )
        })
        .collect();
    policyd_tests::topology::send_frames(&topo.cl, "cl0", frames, Duration::ZERO).expect("frames");
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let body = topo.metrics().expect("scrape");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        size = body.len();
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", topo.daemon.pid())).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .trim_start_matches("VmRSS:")
        .trim()
        .to_owned();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| daemon RSS (VmRSS) | {rss} |");
    println!(
        "| `/metrics` scrape, median of 5 | {:.0} ms |",
        median(times)
    );
    println!("| `/metrics` size | {:.1} MB |", size as f64 / 1e6);
    println!();
}
