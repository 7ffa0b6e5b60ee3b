//! Rate accuracy and fairness: iperf3 TCP and UDP through per-user limits,
//! with policyd and the limiters teams already use configured to the same
//! rate, one setup at a time on a fresh pair of namespaces.

use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use policyd_tests::{
    NetNs,
    topology::{ChildGuard, Net, ScratchDir},
};

use crate::{
    gateway::Gateway,
    limiters::{self, Limiter},
    median,
};

const SUBNET: u8 = 230;
pub(crate) const GW: &str = "10.230.0.1";
/// The first port the gateway's iperf3 servers listen on (one per user).
const PORT: u16 = 5230;
/// UDP payload per datagram: frames are PAYLOAD + 42 bytes on the wire.
const PAYLOAD: usize = 1400;

/// User `i`'s address (0-based), all on the gateway's /24.
pub(crate) fn user_addr(i: usize) -> String {
    format!("10.{SUBNET}.0.{}", i + 2)
}

/// A fresh pair of namespaces with `users` client addresses and the
/// limiter configured for each at `rate` bit/s.
fn setup(l: Limiter, rate: u64, users: usize) -> Gateway {
    let addrs: Vec<String> = (0..users).map(|i| format!("{}/24", user_addr(i))).collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let net = Net::new("rate", SUBNET, &[], &addrs).expect("namespaces");
    let users: Vec<String> = (0..users).map(user_addr).collect();
    if l == Limiter::Policyd {
        return Gateway::policyd(net, &limiters::policyd_policy(&users, rate));
    }
    limiters::configure(l, &net, &users, rate);
    Gateway::Plain(net)
}

/// One iperf3 client's result.
#[derive(Clone, Copy, Debug)]
struct Flow {
    /// Goodput (TCP) or payload received (UDP), bit/s.
    bps: f64,
    /// TCP retransmits (0 for UDP).
    retransmits: u64,
}

/// Runs one iperf3 client per user at once (each from its own address to
/// its own server port) and returns their results in user order.
///
/// What one iperf3 run sends.
#[derive(Clone, Copy)]
enum Traffic {
    /// TCP CUBIC; `ecn`: the client requests ECN (`net.ipv4.tcp_ecn=1`;
    /// otherwise 0: neither asks nor answers, as most clients).
    Tcp { ecn: bool },
    /// UDP with 1400-byte datagrams offered at this many bit/s.
    Udp(u64),
}

/// The first `omit` seconds are left out of the figures (iperf3
/// `--omit`), so a limit's initial burst does not count.
fn iperf(
    gw: &NetNs,
    cl: &NetNs,
    users: usize,
    secs: u32,
    omit: u32,
    traffic: Traffic,
) -> Vec<Flow> {
    let dir = ScratchDir::new("iperf").expect("scratch dir");
    let _servers: Vec<ChildGuard> = (0..users)
        .map(|i| {
            let port = (PORT + i as u16).to_string();
            ChildGuard::spawn(
                gw.command("iperf3")
                    .args(["-s", "-1", "-B", GW, "-p", &port])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .expect("iperf3 server")
        })
        .collect();
    wait_listening(gw, users);
    let ecn = matches!(traffic, Traffic::Tcp { ecn: true });
    let set = cl
        .command("sysctl")
        .args(["-qw", &format!("net.ipv4.tcp_ecn={}", u8::from(ecn))])
        .status()
        .expect("sysctl");
    assert!(set.success());
    // `timeout` bounds each client whatever happens to its server.
    let limit = (secs + omit + 15).to_string();
    let clients: Vec<(Child, std::path::PathBuf)> = (0..users)
        .map(|i| {
            let out = dir.path().join(format!("{i}.json"));
            let port = (PORT + i as u16).to_string();
            let mut cmd = cl.command("timeout");
            cmd.args([
                &limit,
                "iperf3",
                "-c",
                GW,
                "-B",
                &user_addr(i),
                "-p",
                &port,
                "-J",
            ])
            .args(["-t", &secs.to_string(), "-O", &omit.to_string()]);
            match traffic {
                // 4 MB socket buffers: with the default, the receiving
                // iperf3 itself drops 8-26% at 1 Gbit/s.
                Traffic::Udp(bps) => cmd.args([
                    "-u",
                    "-b",
                    &bps.to_string(),
                    "-l",
                    &PAYLOAD.to_string(),
                    "-w",
                    "4M",
                ]),
                Traffic::Tcp { .. } => cmd.args(["-C", "cubic"]),
            };
            let child = cmd
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).expect("iperf3 output file"))
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 client");
            (child, out)
        })
        .collect();
    clients
        .into_iter()
        .map(|(mut child, out)| {
            child.wait().expect("iperf3 client");
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let end = &json["end"];
            // A run that failed (iperf3 -J then reports `error`) must not
            // pass for a measured zero.
            let bps = end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or_else(|| panic!("iperf3 gave no result: {}", json["error"]));
            Flow {
                bps,
                // UDP runs have none.
                retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            }
        })
        .collect()
}

/// Waits (at most 10 s) until `users` iperf3 servers listen on the gateway
/// (on their ports only: policyd's metrics port is above them).
fn wait_listening(gw: &NetNs, users: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = PORT as usize + users - 1;
    while Instant::now() < deadline {
        let ss = gw
            .command("ss")
            .args([
                "-Hltn",
                &format!("( sport >= :{PORT} and sport <= :{last} )"),
            ])
            .output()
            .expect("ss");
        if String::from_utf8_lossy(&ss.stdout).lines().count() >= users {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One limiter at one rate: medians over rounds.
pub(crate) struct RateRow {
    pub limiter: &'static str,
    pub kind: Limiter,
    pub rate: u64,
    /// TCP with ECN requested.
    pub tcp_bps: f64,
    pub retransmits: f64,
    /// TCP without ECN.
    pub tcp_plain_bps: f64,
    pub plain_retransmits: f64,
    pub udp_frame_bps: f64,
}

pub(crate) fn mbit(bps: u64) -> String {
    if bps >= 1_000_000_000 && bps.is_multiple_of(1_000_000_000) {
        format!("{} Gbit/s", bps / 1_000_000_000)
    } else {
        format!("{} Mbit/s", bps / 1_000_000)
    }
}

/// `only`: the rates (bit/s) to run instead of all (a developer's shortcut:
/// `--rates 10,100` in Mbit/s).
pub(crate) fn rate_table(
    quick: bool,
    limiters: &[(&'static str, Limiter)],
    only: Option<&[u64]>,
) -> Vec<RateRow> {
    let (rounds, secs, rates): (usize, u32, &[u64]) = if quick {
        (1, 1, &[100_000_000])
    } else {
        (3, 6, &[10_000_000, 100_000_000, 1_000_000_000])
    };
    let rates = only.unwrap_or(rates);
    // Quick runs are too short to leave a second out.
    let omit = u32::from(!quick);
    println!("### Rate accuracy: one user limited to 10, 100 and 1000 Mbit/s, over veth\n");
    println!(
        "_Each limiter set to the same rate with a burst of 250 ms at that rate (hashlimit: 1.02 s, the least \
         iptables accepts in byte mode). iperf3 {secs} s after {omit} s left out (`-O {omit}`): TCP CUBIC, once with ECN requested (`net.ipv4.tcp_ecn=1`) and once without (`=0`: most clients never request it); UDP \
         1400-byte datagrams offered at twice the limit, received payload converted to frame bytes \
         (×1442/1400, what policyd, HTB and TBF count; nftables and hashlimit count IP bytes, 1% less). A full \
         TCP segment carries 1448 payload bytes in a 1514-byte frame, so TCP goodput tops out at 95.6% of a \
         frame-byte limit (96.5% of an IP-byte one); more means the limiter let more through than its rate. Median \
         of {rounds} rounds, limiters interleaved within each round. {}_\n",
        limiters::WHERE
    );
    println!(
        "| limit | limiter | TCP with ECN (Mbit/s) | of the limit | retransmits | TCP without ECN (Mbit/s) | of the limit | retransmits | UDP received (Mbit/s) | UDP error |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &rate in rates {
        // [limiter] -> [TCP with ECN bit/s, its retransmits, TCP without
        // ECN bit/s, its retransmits, UDP frame bit/s], per round.
        let mut got: Vec<[Vec<f64>; 5]> = (0..limiters.len()).map(|_| Default::default()).collect();
        for _ in 0..rounds {
            for (i, (_, l)) in limiters.iter().enumerate() {
                let gateway = setup(*l, rate, 1);
                let (gw, cl) = (gateway.gw(), gateway.cl());
                let ecn = iperf(gw, cl, 1, secs, omit, Traffic::Tcp { ecn: true })[0];
                let plain = iperf(gw, cl, 1, secs, omit, Traffic::Tcp { ecn: false })[0];
                let udp = iperf(gw, cl, 1, secs, omit, Traffic::Udp(2 * rate))[0];
                got[i][0].push(ecn.bps);
                got[i][1].push(ecn.retransmits as f64);
                got[i][2].push(plain.bps);
                got[i][3].push(plain.retransmits as f64);
                got[i][4].push(udp.bps * (PAYLOAD + 42) as f64 / PAYLOAD as f64);
            }
        }
        for ((name, kind), [tcp, retrans, plain, plain_retrans, udp]) in limiters.iter().zip(got) {
            let row = RateRow {
                limiter: name,
                kind: *kind,
                rate,
                tcp_bps: median(tcp),
                retransmits: median(retrans),
                tcp_plain_bps: median(plain),
                plain_retransmits: median(plain_retrans),
                udp_frame_bps: median(udp),
            };
            let of = |bps: f64| 100.0 * bps / rate as f64;
            println!(
                "| {} | {name} | {:.2} | {:.0}% | {:.0} | {:.2} | {:.0}% | {:.0} | {:.2} | {:+.2}% |",
                mbit(rate),
                row.tcp_bps / 1e6,
                of(row.tcp_bps),
                row.retransmits,
                row.tcp_plain_bps / 1e6,
                of(row.tcp_plain_bps),
                row.plain_retransmits,
                row.udp_frame_bps / 1e6,
                100.0 * (row.udp_frame_bps / rate as f64 - 1.0)
            );
            rows.push(row);
        }
    }
    println!();
    rows
}

/// One limiter's per-user TCP goodputs (bit/s, sorted) with users at once.
pub(crate) struct FairRow {
    pub limiter: &'static str,
    pub per_user: Vec<f64>,
}

/// Jain's fairness index: 1 when all equal, 1/n when one takes all.
fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if sq == 0.0 {
        return 0.0;
    }
    sum * sum / (x.len() as f64 * sq)
}

pub(crate) fn fairness_table(quick: bool, limiters: &[(&'static str, Limiter)]) -> Vec<FairRow> {
    let (users, secs, rounds) = if quick { (5, 1, 1) } else { (50, 8, 3) };
    const RATE: u64 = 10_000_000;
    // Quick runs are too short to leave a second out.
    let omit = u32::from(!quick);
    println!("### Fairness: {users} users at once, each limited to 10 Mbit/s\n");
    println!(
        "_{users} iperf3 TCP clients at once, one per user address, each to its own server port; {secs} s after \
         {omit} s left out, ECN requested. Per-user goodput: min / median / max over users, Jain's index (1 = all equal), \
         aggregate against {users}×10 Mbit/s. The round with the median Jain index is shown; {rounds} rounds. \
         TBF is left out: it shapes an interface, not users._\n"
    );
    println!(
        "| limiter | min (Mbit/s) | median (Mbit/s) | max (Mbit/s) | Jain's index | aggregate (Mbit/s) | of the limit |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut runs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); limiters.len()];
    for _ in 0..rounds {
        for (i, (_, l)) in limiters.iter().enumerate() {
            let gateway = setup(*l, RATE, users);
            let (gw, cl) = (gateway.gw(), gateway.cl());
            let mut per_user: Vec<f64> =
                iperf(gw, cl, users, secs, omit, Traffic::Tcp { ecn: true })
                    .iter()
                    .map(|f| f.bps)
                    .collect();
            per_user.sort_by(f64::total_cmp);
            runs[i].push(per_user);
        }
    }
    let mut rows = Vec::new();
    for ((name, _), mut r) in limiters.iter().zip(runs) {
        r.sort_by(|a, b| jain(a).total_cmp(&jain(b)));
        let per_user = r.swap_remove(r.len() / 2);
        let total: f64 = per_user.iter().sum();
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.3} | {:.1} | {:.0}% |",
            per_user[0] / 1e6,
            per_user[per_user.len() / 2] / 1e6,
            per_user[per_user.len() - 1] / 1e6,
            jain(&per_user),
            total / 1e6,
            100.0 * total / (RATE as f64 * users as f64)
        );
        rows.push(FairRow {
            limiter: name,
            per_user,
        });
    }
    println!();
    rows
}
