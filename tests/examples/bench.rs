//! Per-packet cost of policyd's programs, measured with `BPF_PROG_TEST_RUN`
//! beside do-nothing programs in the same run. Prints Markdown tables;
//! `cargo xtask bench` writes them into BENCHMARKS.md. Needs root.
//!
//! Each figure is the kernel's own average over `REPEAT` runs of one packet;
//! every configuration is measured `ROUNDS` times, interleaved with the
//! floor, and the median is reported, because these machines are noisy.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use aya::programs::{TestRun as _, TestRunOptions};
use policy_common::{ClassRule, USER_UNIDENTIFIED, field, v4_mapped};
use policyd::{
    dataplane::{Capacity, Dataplane, Pins, TC_EGRESS_PROGRAM},
    policy::{CompiledPolicy, CompiledUser},
};
use policyd_tests::{
    NetNs,
    packet::*,
    topology::{Blast, ChildGuard, Net, Topology, UdpSink, send_udp},
};

struct Settings {
    repeat: u32,
    rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// A policy with `users` users at 10.x.y.z, `cidrs` remote CIDRs in one set
/// used by a deny class, and a handful of port classes.
fn policy(users: u32, cidrs: u32) -> CompiledPolicy {
    let mut p = CompiledPolicy {
        classes: vec![
            "default".into(),
            "banned".into(),
            "mail".into(),
            "bulk".into(),
        ],
        ..CompiledPolicy::default()
    };
    p.users.push(CompiledUser {
        id: USER_UNIDENTIFIED,
        name: "unidentified".into(),
        group: 0,
    });
    for i in 1..=users {
        p.users.push(CompiledUser {
            id: i,
            name: format!("u{i}"),
            group: 0,
        });
        let [_, a, b, c] = i.to_be_bytes();
        p.exact.push((v4_mapped([10, a, b, c]), i));
    }
    for i in 0..cidrs {
        let [_, a, b, _] = i.to_be_bytes();
        p.set_cidrs.push((96 + 24, v4_mapped([100, a, b, 0]), 1));
    }
    p.class_rules = vec![
        ClassRule {
            fields: field::REMOTE_SETS,
            class: 1,
            remote_sets: 1,
            ..ClassRule::default()
        },
        ClassRule {
            fields: field::PROTO | field::REMOTE_PORT,
            class: 2,
            proto: 6,
            remote_port_lo: 25,
            remote_port_hi: 25,
            ..ClassRule::default()
        },
        ClassRule {
            fields: field::PROTO | field::REMOTE_PORT,
            class: 3,
            proto: 6,
            remote_port_lo: 6000,
            remote_port_hi: 6010,
            ..ClassRule::default()
        },
    ];
    p.config.rule_count = 3;
    p.config.present = p.present();
    p
}

fn load(p: &CompiledPolicy) -> Dataplane {
    let mut dp = Dataplane::load(Capacity::default().fit(p), Pins::ephemeral())
        .expect("load (are you root?)");
    dp.apply(p).expect("apply");
    dp
}

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let user = [10, 0, 0, 1];
    vec![
        (
            "IPv4 UDP",
            eth(
                ETH_P_IP,
                &ipv4(user, [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "IPv6 TCP",
            eth(
                ETH_P_IPV6,
                &ipv6(
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    6,
                    &tcp(40000, 443, 0x10, &[0; 64]),
                ),
            ),
        ),
        (
            "802.1Q IPv4 TCP",
            vlan_tagged(
                &eth(
                    ETH_P_IP,
                    &ipv4(user, [100, 0, 0, 9], 6, &tcp(40000, 6005, 0x10, &[0; 64])),
                ),
                &[ETH_P_8021Q],
            ),
        ),
    ]
}

fn run_xdp(prog: &aya::programs::Xdp, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    ns(prog.test_run(opts).expect("test run").duration)
}

fn run_tc(prog: &aya::programs::SchedClassifier, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    ns(prog.test_run(opts).expect("test run").duration)
}

fn cost_table(s: &Settings) {
    let p = policy(10_000, 1_000);
    let mut dp = load(&p);
    println!("### Per-packet cost, XDP and TC egress (10 000 users, 1 000 CIDRs in a set)\n");
    println!(
        "| packet | empty XDP (ns) | policyd XDP (ns) | ratio | empty TC (ns) | policyd TC egress (ns) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, frame) in packets() {
        let (mut floor, mut xdp, mut tcf, mut tc) = (vec![], vec![], vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), &frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), &frame, s.repeat));
            tcf.push(run_tc(dp.tc_floor().unwrap(), &frame, s.repeat));
            tc.push(run_tc(dp.tc(TC_EGRESS_PROGRAM).unwrap(), &frame, s.repeat));
        }
        let (f, x, tf, t) = (median(floor), median(xdp), median(tcf), median(tc));
        println!(
            "| {name} | {f:.1} | {x:.1} | {:.2} | {tf:.1} | {t:.1} | {:.2} |",
            x / f.max(0.1),
            t / tf.max(0.1)
        );
    }
    println!();
}

fn scale_table(s: &Settings, what: &str, sizes: &[u32], make: impl Fn(u32) -> CompiledPolicy) {
    println!("### Scale: {what}\n");
    println!("| {what} | empty XDP (ns) | policyd XDP (ns) | ratio |");
    println!("|---:|---:|---:|---:|");
    let frame = &packets()[0].1;
    for &n in sizes {
        let mut dp = load(&make(n));
        let (mut floor, mut xdp) = (vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), frame, s.repeat));
        }
        let (f, x) = (median(floor), median(xdp));
        println!("| {n} | {f:.1} | {x:.1} | {:.2} |", x / f.max(0.1));
    }
    println!();
}

/// The policyd binary the rate benchmarks run: `$POLICYD_BIN`, else the
/// release build next to this example.
fn policyd_bin() -> PathBuf {
    std::env::var_os("POLICYD_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("own path");
            let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            dir.join("policyd")
        },
        PathBuf::from,
    )
}

/// What the rate benchmarks compare.
#[derive(Clone, Copy, PartialEq)]
enum Limiter {
    Policyd,
    /// nftables `limit rate over ... drop` at netdev ingress of the same
    /// interface: a policer, like policyd at XDP.
    Nft,
}

const RATE_BPS: f64 = 20e6;
const GW: &str = "10.230.0.1";
const CLIENT: &str = "10.230.0.2";

/// Either limiter on `gw0`, 20 Mbit/s for the client, burst 250 ms.
enum Setup {
    Policyd(Topology),
    Nft(Net),
}

impl Setup {
    fn new(l: Limiter) -> Setup {
        let net = Net::new("rate", 230, &[], &["10.230.0.2/24"]).expect("namespaces");
        match l {
            Limiter::Policyd => {
                let policy = "[[user]]\nname = \"alice\"\nips = [\"10.230.0.2\"]\naction = \"limit 20Mbit\"\n";
                Setup::Policyd(Topology::start(net, &policyd_bin(), policy, &[]).expect("policyd"))
            }
            Limiter::Nft => {
                // nft's byte units are 1024-based: 2 500 000 B/s is 2441
                // kbytes; its burst is 610 kbytes, 250 ms as for policyd. It
                // counts L3 bytes (the Ethernet header is already pulled at
                // netdev ingress), policyd whole frames: 1% more for nft.
                let rules = "table netdev bench {\n chain in {\n  type filter hook ingress device gw0 priority 0;\n  ip saddr 10.230.0.2 limit rate over 2441 kbytes/second burst 610 kbytes drop\n }\n}\n";
                let mut nft = net.gw.command("nft");
                nft.args(["-f", "-"]).stdin(Stdio::piped());
                let mut child = nft.spawn().expect("nft");
                std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), rules.as_bytes())
                    .expect("nft rules");
                drop(child.stdin.take());
                assert!(
                    child.wait().expect("nft").success(),
                    "nft refused the rules"
                );
                Setup::Nft(net)
            }
        }
    }

    fn namespaces(&self) -> (&NetNs, &NetNs) {
        match self {
            Setup::Policyd(t) => (&t.gw, &t.cl),
            Setup::Nft(n) => (&n.gw, &n.cl),
        }
    }
}

/// One iperf3 TCP run (CUBIC, ECN requested) through the limiter: goodput
/// in bit/s and retransmits.
fn tcp_run(l: Limiter, secs: u32) -> (f64, u64) {
    let setup = Setup::new(l);
    let (gw, cl) = setup.namespaces();
    let ok = cl
        .command("sysctl")
        .args(["-qw", "net.ipv4.tcp_ecn=1"])
        .status()
        .expect("sysctl");
    assert!(ok.success());
    let _server = ChildGuard::spawn(
        gw.command("iperf3")
            .args(["-s", "-1", "-B", GW, "-p", "5230"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("iperf3 server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ss = gw
            .command("ss")
            .args(["-Hltn", "sport = :5230"])
            .output()
            .expect("ss");
        if !ss.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = cl
        .command("iperf3")
        .args([
            "-c",
            GW,
            "-B",
            CLIENT,
            "-p",
            "5230",
            "-C",
            "cubic",
            "-J",
            "-t",
            &secs.to_string(),
        ])
        .output()
        .expect("iperf3 client");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second");
    let retrans = json["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .expect("retransmits");
    (bps, retrans)
}

/// A UDP flood (1400-byte payloads, as fast as the sender goes) through the
/// limiter: frame bit/s received after the first half second.
fn udp_run(l: Limiter, secs: u64) -> f64 {
    let setup = Setup::new(l);
    let (gw, cl) = setup.namespaces();
    let sink = UdpSink::start(gw, 5231).expect("sink");
    let target: SocketAddr = format!("{GW}:5231").parse().expect("addr");
    send_udp(
        cl,
        Blast {
            src: format!("{CLIENT}:0").parse().expect("addr"),
            dst: target,
            payload: 1400,
            tag: 1,
            max_packets: 50_000_000,
            max_time: Duration::from_secs(secs),
            gap: None,
        },
    )
    .expect("flood");
    let got = sink.finish(Duration::from_millis(300)).expect("sink");
    let Some(first) = got.first() else { return 0.0 };
    let from = first.at + Duration::from_millis(500);
    let window: Vec<_> = got.iter().filter(|r| r.at >= from).collect();
    if window.len() < 2 {
        return 0.0;
    }
    let span = window[window.len() - 1].at - window[0].at;
    ((window.len() - 1) * (1400 + 42) * 8) as f64 / span.as_secs_f64()
}

fn rate_table(quick: bool) {
    let (rounds, secs) = if quick { (1, 2) } else { (3, 8) };
    println!("### Rate accuracy: one user limited to 20 Mbit/s (burst 250 ms), over veth\n");
    println!(
        "_policyd at XDP against an nftables policer (`limit rate over ... drop`, netdev ingress) on the same interface; \
         iperf3 {secs} s, CUBIC, ECN requested; UDP: 1400-byte datagrams as fast as one sender goes, frame bytes \
         received after the first 0.5 s. Median of {rounds} interleaved rounds._\n"
    );
    println!(
        "| limiter | TCP goodput (Mbit/s) | of the limit | TCP retransmits | UDP received (Mbit/s) | UDP error |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let limiters = [
        ("policyd (XDP)", Limiter::Policyd),
        ("nftables limit", Limiter::Nft),
    ];
    // [limiter] -> (TCP bit/s, retransmits, UDP bit/s) per round; rounds
    // alternate between the limiters so drifting machine load hits both.
    let mut results: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        vec![(vec![], vec![], vec![]); limiters.len()];
    for _ in 0..rounds {
        for (i, (_, l)) in limiters.iter().enumerate() {
            let (bps, r) = tcp_run(*l, secs as u32);
            results[i].0.push(bps);
            results[i].1.push(r as f64);
            results[i].2.push(udp_run(*l, secs.min(4)));
        }
    }
    for ((name, _), (tcp, retrans, udp)) in limiters.iter().zip(results) {
        let (t, r, u) = (median(tcp), median(retrans), median(udp));
        println!(
            "| {name} | {:.2} | {:.0}% | {r:.0} | {:.3} | {:+.2}% |",
            t / 1e6,
            100.0 * t / RATE_BPS,
            u / 1e6,
            100.0 * (u / RATE_BPS - 1.0)
        );
    }
    println!();
}

/// Time to apply a policy of `users` users (exact addresses) as a reload:
/// the second apply into an already loaded object, which writes the idle
/// generation, switches, and removes the old one.
fn reload_table(quick: bool) {
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

/// A running daemon with 10 000 users that all sent a packet: its memory
/// and the cost of a scrape.
fn daemon_table() {
    const USERS: u32 = 10_000;
    println!("### Control plane: the daemon with {USERS} active users\n");
    let mut text = String::new();
    for i in 1..=USERS {
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
    let frames: Vec<Vec<u8>> = (1..=USERS)
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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let s = if quick {
        Settings {
            repeat: 10_000,
            rounds: 3,
        }
    } else {
        Settings {
            repeat: 1_000_000,
            rounds: 5,
        }
    };
    println!(
        "_`BPF_PROG_TEST_RUN`, repeat {} per measurement, median of {} interleaved rounds._\n",
        s.repeat, s.rounds
    );
    cost_table(&s);
    let users: &[u32] = if quick {
        &[1, 1_000]
    } else {
        &[1, 1_000, 100_000, 1_000_000]
    };
    scale_table(&s, "users (exact addresses)", users, |n| policy(n, 1));
    let cidrs: &[u32] = if quick {
        &[1, 1_000]
    } else {
        &[1, 1_000, 100_000]
    };
    scale_table(&s, "CIDRs in a set", cidrs, |n| policy(1_000, n));
    reload_table(quick);
    daemon_table();
    rate_table(quick);
}
