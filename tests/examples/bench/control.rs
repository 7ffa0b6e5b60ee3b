//! The control plane: how long a reload takes, how long `policyd replay`
//! takes to start, and what a daemon with many active users costs in
//! memory and per scrape.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use pcap_file::pcap::{PcapPacket, PcapWriter};
use policyd::policy::CompiledPolicy;
use policyd_tests::{
    packet::*,
    topology::{Net, ScratchDir, Topology},
};

use crate::{
    median, policyd_bin,
    workload::{load, policy},
};

/// `p` with every user's address moved to `11 + k`.x.y.z (from 10.x.y.z).
fn renumbered(p: &CompiledPolicy, k: u8) -> CompiledPolicy {
    let mut q = p.clone();
    for (addr, _) in &mut q.exact {
        addr[12] = 11 + k;
    }
    q
}

/// `p` with user `i`'s address moved to 9.x.y.z: an operator's one edit.
fn one_edit(p: &CompiledPolicy, i: u32) -> CompiledPolicy {
    let mut q = p.clone();
    if let Some((addr, _)) = q.exact.iter_mut().find(|(_, u)| *u == i) {
        addr[12] = 9;
    }
    q
}

/// Time to reload a policy of `users` users (exact addresses) into a loaded
/// object: write the idle generation, switch, tidy up. Two kinds: an edit
/// of one user's address (a reload writes what changed since the
/// generation it overwrites was written, two reloads ago), and every
/// address changed (the most a reload writes). Returns (users, ms of each)
/// per size.
pub(crate) fn reload_table(quick: bool) -> Vec<(u32, f64, f64)> {
    println!("### Control plane: applying a policy (a reload)\n");
    println!(
        "_Reloads into one loaded object, each writing the idle generation, switching, and tidying up (a generation keeps what it held until it is written again, so a reload writes only what differs from the policy two reloads back). One user changed: each reload moves another user to a new address (and the one before back). Every address changed: three policies with all addresses different, in turn. Wall time of `Dataplane::apply`, median of 3 reloads after a first one._\n"
    );
    println!("| users | one user changed (ms) | every address changed (ms) |");
    println!("|---:|---:|---:|");
    let sizes: &[u32] = if quick {
        &[1_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let mut rows = Vec::new();
    for &n in sizes {
        let base = policy(n, 1);
        let mut dp = load(&base);
        let mut time = |p: &CompiledPolicy| {
            let start = Instant::now();
            dp.apply(p).expect("apply");
            start.elapsed().as_secs_f64() * 1e3
        };
        let edits: Vec<f64> = (1..=4).map(|i| time(&one_edit(&base, i))).collect();
        let all: Vec<f64> = (0..4).map(|k| time(&renumbered(&base, k % 3))).collect();
        let (edit, every) = (median(edits[1..].to_vec()), median(all[1..].to_vec()));
        println!("| {n} | {edit:.0} | {every:.0} |");
        rows.push((n, edit, every));
    }
    println!();
    rows
}

/// The policy `policyd replay` tries: one user allowed, one denied.
const REPLAY_POLICY: &str = "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n\
                             [[user]]\nname = \"mallory\"\nips = [\"10.0.0.66\"]\naction = \"deny\"\n";

/// `policyd replay` from exec to exit on a capture of a few packets: with
/// so few packets that is its start-up (parse and compile the policy, load
/// and verify the program, create and fill the maps), what trying a policy
/// costs before the first packet. Returns the median in seconds.
pub(crate) fn replay_table(quick: bool) -> f64 {
    const RUNS: usize = 3;
    let dir = ScratchDir::new("replay").expect("scratch dir");
    let (cap, pol) = (dir.path().join("c.pcap"), dir.path().join("p.toml"));
    let frames: Vec<Vec<u8>> = [[10, 0, 0, 2], [10, 0, 0, 66], [10, 9, 9, 9], [10, 0, 0, 2]]
        .into_iter()
        .map(|src| {
            eth(
                ETH_P_IP,
                &ipv4(src, [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 18])),
            )
        })
        .collect();
    let mut w = PcapWriter::new(Vec::new()).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).expect("frame length");
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), len, f))
            .expect("pcap record");
    }
    std::fs::write(&cap, w.into_writer()).expect("capture");
    std::fs::write(&pol, REPLAY_POLICY).expect("policy");
    println!("### Control plane: `policyd replay` start-up\n");
    println!(
        "_`policyd replay --quiet` on a capture of {} packets with a two-user policy, from exec to exit: \
         with so few packets, the time to parse and compile the policy, load and verify the XDP program and \
         create and fill its maps. Wall time, median of {RUNS}._\n",
        frames.len()
    );
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(policyd_bin())
            .arg("replay")
            .arg("--pcap")
            .arg(&cap)
            .arg("--policy")
            .arg(&pol)
            .arg("--quiet")
            .output()
            .expect("policyd replay");
        times.push(start.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "policyd replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let secs = median(times);
    let (kernel_pps, model_pps, packets) = replay_throughput(&dir, quick);
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| `policyd replay` start-up | {secs:.2} s |");
    println!(
        "| replay throughput, kernel path (test run per packet, model beside it), {packets} packets | {kernel_pps:.0} packets/s |"
    );
    println!("| replay throughput, model path alone | {model_pps:.0} packets/s |");
    println!();
    secs
}

/// Packets a second through `policyd replay --quiet --json` (the time it
/// reports for its packets, after its start-up) and through the reference model alone (in process), on
/// a capture of UDP from 100 users and strangers, 10 µs apart, through a
/// policy that limits half of them.
fn replay_throughput(dir: &ScratchDir, quick: bool) -> (f64, f64, usize) {
    let packets: usize = if quick { 20_000 } else { 1_000_000 };
    let mut policy_text = String::new();
    for u in 0..100u32 {
        policy_text.push_str(&format!(
            "[[user]]\nname = \"u{u}\"\nips = [\"10.0.{}.{}\"]\n{}\n",
            u / 250,
            u % 250 + 1,
            if u % 2 == 0 {
                "action = \"limit 1Mbit\""
            } else {
                ""
            }
        ));
    }
    let frames: Vec<Vec<u8>> = (0..256u32)
        .map(|i| {
            // Most from users, one in eight from strangers.
            let src = if i % 8 == 7 {
                [10, 9, 9, i as u8]
            } else {
                [10, 0, 0, (i % 100 + 1) as u8]
            };
            eth(
                ETH_P_IP,
                &ipv4(
                    src,
                    [192, 0, 2, 1],
                    17,
                    &udp(40000 + i as u16, 443, &[0; 100]),
                ),
            )
        })
        .collect();
    let mut w = PcapWriter::new(Vec::new()).expect("pcap header");
    for i in 0..packets {
        let f = &frames[i % frames.len()];
        let len = u32::try_from(f.len()).expect("frame length");
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64 * 10),
            len,
            f,
        ))
        .expect("pcap record");
    }
    let (cap, pol) = (dir.path().join("big.pcap"), dir.path().join("big.toml"));
    std::fs::write(&cap, w.into_writer()).expect("capture");
    std::fs::write(&pol, &policy_text).expect("policy");
    let out = Command::new(policyd_bin())
        .args(["replay", "--quiet", "--json", "--pcap"])
        .arg(&cap)
        .arg("--policy")
        .arg(&pol)
        .output()
        .expect("policyd replay");
    assert!(
        out.status.success(),
        "policyd replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("replay's JSON report");
    let seconds = doc["seconds"].as_f64().expect("replay reports its time");
    let kernel_pps = packets as f64 / seconds.max(1e-9);
    let compiled = CompiledPolicy::compile(
        &policyd::policy::parse(std::path::Path::new("bench.toml"), &policy_text)
            .expect("the bench policy"),
    );
    let mut model = policyd::model::Model::new(&compiled, 0);
    let start = Instant::now();
    for i in 0..packets {
        std::hint::black_box(
            model.decide(&frames[i % frames.len()], policyd::model::Hook::XDP_USERS),
        );
    }
    let model_pps = packets as f64 / start.elapsed().as_secs_f64();
    (kernel_pps, model_pps, packets)
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
