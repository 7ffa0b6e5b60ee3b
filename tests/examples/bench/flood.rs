//! Drop throughput end to end: one denied (or limited) user floods the
//! gateway over veth with minimum-size UDP datagrams; what each dropper
//! gets through and what the whole machine spends on it.

use std::{
    net::SocketAddrV4,
    time::{Duration, Instant},
};

use policyd_tests::{
    NetNs, metric_sum,
    topology::{Flood, Net},
};

use crate::{
    gateway::Gateway,
    median, nft,
    xdp_filter::{self, XdpFilter},
};

const SUBNET: u8 = 232;
const FLOODER: [u8; 4] = [10, SUBNET, 0, 2];
/// Other users every dropper also knows, so lookups run over a populated
/// table rather than a single entry.
const OTHERS: u32 = 1_000;
/// The packet-per-second limit of the rate-limiting variants.
const LIMIT_PPS: u32 = 1_000;
/// 18 bytes of payload make 60-byte frames, Ethernet's minimum.
const PAYLOAD: usize = 18;

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Dropper {
    /// Nothing filters: the gateway's UDP layer drops the datagrams (port
    /// closed), after the whole receive path.
    None,
    PolicydDeny,
    /// policyd with `--hook tc`: TC ingress instead of XDP.
    PolicydDenyTc,
    PolicydLimit,
    /// xdp-filter at XDP (native): the same addresses denied.
    XdpFilter,
    /// nftables at netdev ingress: `ip saddr @denied drop`.
    NftSet,
    /// nftables at netdev ingress: a meter (dynamic set) limiting each
    /// source to LIMIT_PPS.
    NftMeter,
}

const DROPPERS: [(&str, Dropper); 7] = [
    ("none (port closed)", Dropper::None),
    ("policyd deny (XDP)", Dropper::PolicydDeny),
    ("policyd deny (TC ingress)", Dropper::PolicydDenyTc),
    ("policyd limit 1000 pps", Dropper::PolicydLimit),
    ("xdp-filter deny", Dropper::XdpFilter),
    ("nftables set drop", Dropper::NftSet),
    ("nftables meter 1000 pps", Dropper::NftMeter),
];

/// The `i`th other user's address, in a subnet of its own.
fn other(i: u32) -> [u8; 4] {
    let [_, _, b, c] = (i + 256).to_be_bytes();
    [10, SUBNET + 1, b, c]
}

fn dotted([a, b, c, d]: [u8; 4]) -> String {
    format!("{a}.{b}.{c}.{d}")
}

/// A gateway with one dropper in place.
struct Setup {
    gateway: Gateway,
    /// xdp-filter, when it is the dropper; dropped after the namespaces,
    /// whose device going away detaches it.
    filter: Option<XdpFilter>,
}

impl Setup {
    fn new(d: Dropper) -> Self {
        let flooder = format!("{}/24", dotted(FLOODER));
        let net = Net::new("flood", SUBNET, &[], &[&flooder]).expect("namespaces");
        let mut filter = None;
        let gateway = match d {
            Dropper::PolicydDeny => Gateway::policyd(net, &flood_policy("deny")),
            Dropper::PolicydDenyTc => {
                Gateway::policyd_with(net, &flood_policy("deny"), &["--hook", "tc"])
            }
            Dropper::PolicydLimit => {
                Gateway::policyd(net, &flood_policy(&format!("limit {LIMIT_PPS}pps")))
            }
            Dropper::XdpFilter => {
                filter = Some(attach_xdp_filter(&net.gw));
                Gateway::Plain(net)
            }
            Dropper::NftSet => {
                let elements: Vec<String> = denied().into_iter().map(dotted).collect();
                nft::apply(
                    &net.gw,
                    &format!(
                        "table netdev bench {{\n set denied {{\n  type ipv4_addr\n  elements = {{ {} }}\n }}\n \
                         chain in {{\n  type filter hook ingress device gw0 priority 0\n  ip saddr @denied counter drop\n }}\n}}\n",
                        elements.join(", ")
                    ),
                );
                Gateway::Plain(net)
            }
            Dropper::NftMeter => {
                nft::apply(
                    &net.gw,
                    &format!(
                        "table netdev bench {{\n set sources {{\n  type ipv4_addr\n  size 65535\n  flags dynamic,timeout\n  timeout 60s\n }}\n \
                         chain in {{\n  type filter hook ingress device gw0 priority 0\n  \
                         ip saddr 10.0.0.0/8 update @sources {{ ip saddr limit rate over {LIMIT_PPS}/second burst {LIMIT_PPS} packets }} counter drop\n }}\n}}\n"
                    ),
                );
                Gateway::Plain(net)
            }
            Dropper::None => Gateway::Plain(net),
        };
        Self { gateway, filter }
    }

    /// Packets the dropper has dropped so far.
    fn dropped(&self, d: Dropper) -> u64 {
        if let Some(f) = &self.filter {
            return f.dropped();
        }
        match (self.gateway.policyd_topology(), d) {
            (Some(t), _) => {
                let body = t.metrics().expect("scrape");
                let verdict = if d != Dropper::PolicydLimit {
                    "deny"
                } else {
                    "limit"
                };
                metric_sum(
                    &body,
                    "policyd_packets_total",
                    &[("user", "mallory"), ("verdict", verdict)],
                )
            }
            (None, Dropper::None) => udp_no_ports(self.gateway.gw()),
            (None, _) => nft::counter_packets(self.gateway.gw()),
        }
    }
}

/// The BPF program that drops, by the name the kernel knows it by (15
/// characters at most), for its run-time statistics.
fn program_name(d: Dropper) -> Option<&'static str> {
    match d {
        Dropper::PolicydDeny | Dropper::PolicydLimit => Some("policyd_xdp"),
        Dropper::PolicydDenyTc => Some("policyd_tc_ingr"),
        Dropper::XdpFilter => Some("xdpfilt_alw_all"),
        _ => None,
    }
}

/// (run time in ns, runs) of the newest loaded program named `name`: the
/// kernel's statistics, counted while `kernel.bpf_stats_enabled` is on.
fn program_stats(name: &str) -> Option<(u64, u64)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some(name))
        .max_by_key(aya::programs::ProgramInfo::id)
        .map(|p| (p.run_time().as_nanos() as u64, p.run_count()))
}

/// Every address the droppers deny: the flooder and the others.
fn denied() -> Vec<[u8; 4]> {
    std::iter::once(FLOODER)
        .chain((1..=OTHERS).map(other))
        .collect()
}

/// policyd's policy: the flooder (`mallory`) with `action`, and the others.
fn flood_policy(action: &str) -> String {
    let mut policy = format!(
        "[[user]]\nname = \"mallory\"\nips = [\"{}\"]\naction = \"{action}\"\n",
        dotted(FLOODER)
    );
    for i in 1..=OTHERS {
        policy.push_str(&format!(
            "[[user]]\nname = \"u{i}\"\nips = [\"{}\"]\n",
            dotted(other(i))
        ));
    }
    policy
}

/// xdp-filter denying the same addresses, attached natively to `gw0`.
fn attach_xdp_filter(gw: &NetNs) -> XdpFilter {
    let path = xdp_filter::object().expect("xdp-filter's object (apt-get install xdp-tools)");
    let mut filter = XdpFilter::load(&path, &denied()).expect("xdp-filter");
    let pinned = filter.pin_program().expect("pin");
    // `ip -n` enters a mount namespace without bpffs; nsenter (network
    // only) keeps the pin visible.
    let out = gw
        .command("ip")
        .args(["link", "set", "dev", "gw0", "xdpdrv", "pinned"])
        .arg(&pinned)
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "attaching xdp-filter: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    filter
}

/// `Udp: NoPorts` of the namespace: datagrams to a closed port.
fn udp_no_ports(ns: &NetNs) -> u64 {
    let out = ns
        .command("cat")
        .arg("/proc/net/snmp")
        .output()
        .expect("cat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "NoPorts")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Busy and softirq time of all CPUs, in clock ticks, from /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = fields.iter().take(8).sum::<u64>()
        - fields.get(3).copied().unwrap_or(0)
        - fields.get(4).copied().unwrap_or(0);
    (busy, fields.get(6).copied().unwrap_or(0))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// One measurement: sent and dropped per second, CPUs busy (of all), and
/// CPU ns per sent packet (whole machine: sender and dropper).
#[derive(Clone, Copy)]
struct Sample {
    sent_pps: f64,
    dropped_pps: f64,
    cpus_busy: f64,
    softirq: f64,
    ns_per_packet: f64,
    /// The dropping program's own run time per run (kernel statistics),
    /// NaN where no BPF program drops.
    program_ns: f64,
}

fn measure(d: Dropper, warmup: f64, secs: f64) -> Sample {
    let setup = Setup::new(d);
    let cl = setup.gateway.cl();
    let flood = Flood::start(
        cl,
        SocketAddrV4::new(FLOODER.into(), 0),
        SocketAddrV4::new([10, SUBNET, 0, 1].into(), 9),
        PAYLOAD,
        Duration::from_secs_f64(secs + 5.0),
    )
    .expect("flood");
    std::thread::sleep(Duration::from_secs_f64(warmup));
    // BPF_ENABLE_STATS: run-time statistics for as long as the descriptor
    // is open (so the host's setting is left as it was).
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS");
    let name = program_name(d);
    let p0 = name.and_then(program_stats);
    let (s0, d0, c0, t0) = (flood.sent(), setup.dropped(d), cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (s1, d1, c1, t1) = (flood.sent(), setup.dropped(d), cpu_ticks(), Instant::now());
    let p1 = name.and_then(program_stats);
    drop(stats);
    flood.stop().expect("flood");
    let program_ns = match (p0, p1) {
        (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => (t1 - t0) as f64 / (n1 - n0) as f64,
        _ => f64::NAN,
    };
    let wall = (t1 - t0).as_secs_f64();
    let hz = ticks_per_second();
    let busy = (c1.0 - c0.0) as f64 / hz;
    let sent = (s1 - s0) as f64;
    Sample {
        sent_pps: sent / wall,
        dropped_pps: (d1 - d0) as f64 / wall,
        cpus_busy: busy / wall,
        softirq: (c1.1 - c0.1) as f64 / hz / wall,
        ns_per_packet: busy * 1e9 / sent.max(1.0),
        program_ns,
    }
}

/// One dropper's medians.
pub(crate) struct FloodRow {
    pub name: &'static str,
    pub dropper: Dropper,
    /// CPU ns per sent packet, whole machine.
    pub cpu_ns: f64,
    /// The dropping program's own ns per run; NaN where no BPF program
    /// drops.
    pub program_ns: f64,
}

pub(crate) fn flood_table(quick: bool) -> Vec<FloodRow> {
    let (rounds, warmup, secs) = if quick { (1, 0.2, 0.3) } else { (3, 0.5, 4.0) };
    println!("### Drop throughput: one user floods the gateway over veth\n");
    println!(
        "_A `sendmmsg` generator (one thread, 64 datagrams per call, 60-byte frames) in the client namespace floods \
         `gw0`; every dropper knows {OTHERS} other users/addresses. policyd and xdp-filter run at XDP (native) on \
         `gw0`, nftables at its netdev ingress hook (`ip saddr @denied drop`; the meter: \
         `update @sources {{ ip saddr limit rate over {LIMIT_PPS}/second }} drop`); none: no filter, the \
         gateway's UDP layer drops the datagrams (port closed). Sent: datagrams the sender's kernel accepted; \
         dropped: the dropper's own counter; CPU: all {} CPUs from /proc/stat, sender included (it is the same in \
         every row); program: the dropping BPF program's own time per run, from the kernel's statistics \
         (`BPF_ENABLE_STATS`, run time / run count) over the same window: the live per-packet cost of the program \
         alone. {secs} s windows after {warmup} s of warm-up, median of {rounds} interleaved rounds._\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "| dropper | sent (kpps) | dropped (kpps) | CPUs busy | of which softirq | CPU per packet (ns) | program per packet (ns) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); DROPPERS.len()];
    for _ in 0..rounds {
        for (i, (_, d)) in DROPPERS.iter().enumerate() {
            samples[i].push(measure(*d, warmup, secs));
        }
    }
    let mut result = Vec::new();
    for ((name, dropper), s) in DROPPERS.iter().zip(samples) {
        let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        let (sent, dropped, busy, soft, per, program) = (
            m(|s| s.sent_pps),
            m(|s| s.dropped_pps),
            m(|s| s.cpus_busy),
            m(|s| s.softirq),
            m(|s| s.ns_per_packet),
            m(|s| s.program_ns),
        );
        let program_text = if program.is_nan() {
            "n/a".to_owned()
        } else {
            format!("{program:.0}")
        };
        println!(
            "| {name} | {:.0} | {:.0} | {busy:.2} | {soft:.2} | {per:.0} | {program_text} |",
            sent / 1e3,
            dropped / 1e3
        );
        result.push(FloodRow {
            name,
            dropper: *dropper,
            cpu_ns: per,
            program_ns: program,
        });
    }
    println!();
    result
}
