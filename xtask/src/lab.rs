//! `cargo xtask lab`: policyd on a throwaway network of namespaces, with
//! live traffic, so a new user can watch it enforce an acceptable-use policy.
//!
//! Layout: namespace `gw` runs `policyd run --iface gw0` with the built-in
//! baseline plus the lab's layer (`lab/policy.toml`); namespace `users` holds
//! the users' machines behind `users0`, the other end of the veth pair. Each
//! sender repeats one kind of traffic (business, a large transfer, a mass
//! mailing, personal webmail, a spoofed address, an unregistered host); the
//! table shows what policyd counted and what reached the gateway. Everything
//! is removed at the end, also on Ctrl-C.

use std::{
    fmt::Write as _,
    io::IsTerminal as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use policyd_tests::{
    Daemon, NetNs, http_get, metric_sum, metric_value,
    packet::{ETH_P_IP, eth_macs, ipv4, tcp},
    pin_neighbours,
    topology::{ArrivalCounter, Pacer},
    veth_pair,
};

use crate::{build_cmd, cmd, privileges};

#[derive(clap::Args)]
pub(crate) struct LabArgs {
    /// How long to run traffic through the lab, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
}

const LAB_POLICY: &str = include_str!("lab/policy.toml");
const METRICS: &str = "127.0.0.1:9617";
const GW_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x01];
const USERS_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x10];
const OTHER_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x66];
/// Each user's machine has its own MAC (the frames are built by hand, so one
/// veth can stand for several machines); alice's is `users0`'s own.
const BOB_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x11];
const CAROL_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x12];
const DAVE_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x13];
const STRANGER_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x14];

/// What a sender's traffic should meet.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Pass,
    /// At most this many bits per second reach the gateway (whole frames),
    /// plus the burst.
    LimitBits(u64, u64),
    /// At most this many packets per second, plus the burst.
    LimitPackets(u64, u64),
    Deny,
    Spoofed,
}

struct Sender {
    label: &'static str,
    what: &'static str,
    src: [u8; 4],
    mac: [u8; 6],
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    payload: usize,
    pps: u64,
    /// The user and class policyd counts the traffic under.
    user: &'static str,
    class: &'static str,
    expect: Expect,
}

const SENDERS: &[Sender] = &[
    Sender {
        label: "alice",
        what: "business (TCP 443)",
        src: [10, 77, 0, 2],
        mac: USERS_MAC,
        dst: [10, 77, 0, 1],
        dport: 443,
        flags: 0x18,
        payload: 600,
        pps: 200,
        user: "alice",
        class: "default",
        expect: Expect::Pass,
    },
    Sender {
        label: "bob",
        what: "large transfer (TCP 445)",
        src: [10, 77, 0, 3],
        mac: BOB_MAC,
        dst: [10, 77, 0, 1],
        dport: 445,
        flags: 0x18,
        payload: 1400,
        pps: 1500,
        user: "bob",
        class: "bulk",
        expect: Expect::LimitBits(4_000_000, 64 * 1024),
    },
    Sender {
        label: "carol",
        what: "mass mailing (TCP 25)",
        src: [10, 77, 0, 4],
        mac: CAROL_MAC,
        dst: [10, 77, 0, 1],
        dport: 25,
        flags: 0x02,
        payload: 0,
        pps: 100,
        user: "carol",
        class: "mail",
        expect: Expect::LimitPackets(10, 50),
    },
    Sender {
        label: "dave",
        what: "personal webmail",
        src: [10, 77, 0, 5],
        mac: DAVE_MAC,
        dst: [10, 77, 9, 1],
        dport: 443,
        flags: 0x18,
        payload: 400,
        pps: 50,
        user: "dave",
        class: "webmail",
        expect: Expect::Deny,
    },
    Sender {
        label: "mallory",
        what: "alice's address, own MAC",
        src: [10, 77, 0, 2],
        mac: OTHER_MAC,
        dst: [10, 77, 0, 1],
        dport: 443,
        flags: 0x18,
        payload: 400,
        pps: 50,
        user: "alice",
        class: "default",
        expect: Expect::Spoofed,
    },
    Sender {
        label: "unregistered host",
        what: "web (TCP 80)",
        src: [10, 77, 0, 100],
        mac: STRANGER_MAC,
        dst: [10, 77, 0, 1],
        dport: 80,
        flags: 0x18,
        payload: 1000,
        pps: 400,
        user: "unidentified",
        class: "default",
        expect: Expect::LimitBits(1_000_000, 64 * 1024),
    },
];

fn frame(s: &Sender) -> Vec<u8> {
    let l4 = tcp(40000, s.dport, s.flags, &vec![0x42; s.payload]);
    eth_macs(GW_MAC, s.mac, ETH_P_IP, &ipv4(s.src, s.dst, 6, &l4))
}

/// What the arrival counter keys a frame by: source address and MAC, and
/// the destination port (IPv4/TCP frames only).
type Key = ([u8; 4], [u8; 6], u16);

fn key(f: &[u8]) -> Option<Key> {
    if f.len() < 14 + 20 + 4 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&f[6..12]);
    let src = [f[26], f[27], f[28], f[29]];
    let dport = u16::from_be_bytes([*f.get(l4 + 2)?, *f.get(l4 + 3)?]);
    Some((src, mac, dport))
}

#[derive(Default, Clone, Copy)]
struct Row {
    sent: u64,
    reached: u64,
    pass: u64,
    deny: u64,
    limit: u64,
}

pub(crate) fn run(args: LabArgs) -> anyhow::Result<()> {
    privileges::require("lab")?;
    build_cmd::run(&build_cmd::BuildArgs { release: false })?;
    let policyd = build_cmd::target_dir().join("debug").join("policyd");

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }

    println!("\n==> lab: namespaces `gw` (policyd) and `users`, joined by veth gw0 <-> users0");
    let gw = NetNs::new("lab-gw").context("creating the gateway namespace (are you root?)")?;
    let users = NetNs::new("lab-users").context("creating the users namespace")?;
    veth_pair(
        (&gw, "gw0", &["10.77.0.1/24"]),
        (&users, "users0", &["10.77.0.2/24"]),
    )
    .context("creating the veth pair")?;
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    gw.ip(&["link", "set", "gw0", "address", &mac(GW_MAC)])?;
    users.ip(&["link", "set", "users0", "address", &mac(USERS_MAC)])?;
    // The neighbour entries veth_pair pinned name the old MAC addresses.
    pin_neighbours(
        (&gw, "gw0", &["10.77.0.1/24"]),
        (&users, "users0", &["10.77.0.2/24"]),
    )
    .context("pinning the neighbours")?;

    let dir = std::env::temp_dir().join(format!("policyd-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the lab's temporary directory")?;
    let baseline = dir.join("baseline.toml");
    let lab = dir.join("lab.toml");
    let printed = cmd::probe(std::process::Command::new(&policyd).arg("default-policy"))
        .context("policyd default-policy failed")?;
    std::fs::write(&baseline, printed).context("writing the baseline")?;
    std::fs::write(&lab, LAB_POLICY).context("writing the lab policy")?;
    println!("==> policy: the built-in baseline (`policyd default-policy`), plus this layer:\n");
    for line in LAB_POLICY.lines() {
        println!("    {line}");
    }

    let metrics: SocketAddr = METRICS.parse().context("metrics address")?;
    let log = dir.join("policyd.log");
    println!(
        "\n==> starting policyd in `gw`, business-hours profile pinned so the bulk limit shows \
         (log: {})",
        log.display()
    );
    let lab_arg = lab.display().to_string();
    let result = (|| {
        let daemon = Daemon::start(
            &gw,
            &policyd,
            &["gw0"],
            &baseline,
            metrics,
            &log,
            &["--policy", &lab_arg, "--profile", "business"],
        )
        .context("policyd did not start")?;
        let outcome = traffic(&gw, &users, &daemon, args.seconds, &stop);
        let events = daemon.events_text();
        drop(daemon);
        if outcome.is_ok() {
            print_events(&events);
        }
        outcome
    })();
    let _ = std::fs::remove_dir_all(&dir);
    drop(users);
    drop(gw);
    println!("==> lab removed (namespaces, veth pair and policyd are gone)");
    result
}

fn traffic(
    gw: &NetNs,
    users: &NetNs,
    daemon: &Daemon,
    seconds: u64,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let arrivals = ArrivalCounter::start(gw, "gw0", key).context("counting arrivals on gw0")?;
    let mut pacers = Vec::new();
    for s in SENDERS {
        pacers.push(Pacer::start(users, "users0", frame(s), s.pps).context("starting a sender")?);
    }
    println!(
        "==> {} senders for {seconds} s (Ctrl-C ends early)\n",
        SENDERS.len()
    );
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut rows = vec![Row::default(); SENDERS.len()];
    let mut body = String::new();
    let mut drawn = 0;
    while started.elapsed() < Duration::from_secs(seconds) && !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_secs(1));
        let metrics = daemon.metrics;
        let Ok(Ok(b)) = gw.run(move || http_get(metrics, "/metrics")) else {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            bail!(
                "cannot read policyd's metrics; its log:\n{}",
                daemon.log_text()
            );
        };
        body = b;
        rows = SENDERS
            .iter()
            .zip(&pacers)
            .map(|(s, p)| {
                let m = |verdict: &str| {
                    metric_sum(
                        &body,
                        "policyd_packets_total",
                        &[
                            ("user", s.user),
                            ("class", s.class),
                            ("direction", "upload"),
                            ("verdict", verdict),
                        ],
                    )
                };
                Row {
                    sent: p.sent(),
                    reached: arrivals.get(&(s.src, s.mac, s.dport)),
                    pass: m("pass"),
                    deny: m("deny"),
                    limit: m("limit"),
                }
            })
            .collect();
        let table = render(&rows, started.elapsed());
        if tty && drawn > 0 {
            // Redraw in place: up `drawn` lines, clear to the end of screen.
            print!("\x1b[{drawn}A\x1b[J");
        }
        print!("{table}");
        drawn = table.lines().count();
        if !tty {
            println!();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for p in pacers {
        p.stop().context("a sender failed")?;
    }
    thread::sleep(Duration::from_millis(300));
    for (row, s) in rows.iter_mut().zip(SENDERS) {
        row.reached = arrivals.get(&(s.src, s.mac, s.dport));
    }
    drop(arrivals);
    summary(&rows, &body, elapsed)
}

fn render(rows: &[Row], elapsed: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  policyd lab, {:>3} s   (policyd's counters from /metrics; 'reached' = arrived at the gateway)",
        elapsed.as_secs()
    );
    let _ = writeln!(
        out,
        "  {:<18} {:<26} {:<13} {:<9} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "sender", "traffic", "user", "class", "sent", "pass", "deny", "limit", "reached"
    );
    for (s, r) in SENDERS.iter().zip(rows) {
        let _ = writeln!(
            out,
            "  {:<18} {:<26} {:<13} {:<9} {:>7} {:>7} {:>7} {:>7} {:>8}",
            s.label, s.what, s.user, s.class, r.sent, r.pass, r.deny, r.limit, r.reached
        );
    }
    out
}

/// Explains what was enforced and checks it; an error if the lab saw
/// something the policy does not say.
fn summary(rows: &[Row], body: &str, elapsed: f64) -> anyhow::Result<()> {
    println!("\n==> summary ({elapsed:.0} s of traffic)");
    let spoofed = metric_value(body, "policyd_spoofed_packets_total", &[]).unwrap_or(0);
    let mut wrong = 0;
    for (s, r) in SENDERS.iter().zip(rows) {
        let frame_bits = (frame(s).len() * 8) as f64;
        let reached_rate = r.reached as f64 / elapsed;
        let (ok, why) = match s.expect {
            // (alice's `deny` counts are mallory's spoofed packets.)
            Expect::Pass => (
                r.reached + 5 >= r.sent && r.limit == 0,
                format!(
                    "allowed: {} of {} packets reached the gateway",
                    r.reached, r.sent
                ),
            ),
            Expect::LimitBits(bits, burst) => {
                let max = bits as f64 * elapsed / frame_bits + (burst * 8) as f64 / frame_bits;
                (
                    r.limit > 0 && (r.reached as f64) <= max * 1.05 + 5.0,
                    format!(
                        "limited to {} Mbit/s in class `{}`: {:.2} Mbit/s reached the gateway, {} packets dropped by the limit",
                        bits as f64 / 1e6,
                        s.class,
                        reached_rate * frame_bits / 1e6,
                        r.limit
                    ),
                )
            }
            Expect::LimitPackets(pps, burst) => (
                r.limit > 0 && (r.reached as f64) <= pps as f64 * elapsed + burst as f64 + 5.0,
                format!(
                    "class `{}` limited to {pps} packets/s (no mass mailings): {} of {} reached the gateway",
                    s.class, r.reached, r.sent
                ),
            ),
            Expect::Deny => (
                r.reached == 0 && r.deny > 0,
                format!(
                    "class `{}` is denied: {} packets dropped, none reached the gateway",
                    s.class, r.deny
                ),
            ),
            Expect::Spoofed => (
                r.reached == 0 && spoofed > 0,
                format!(
                    "used alice's address from another MAC: {spoofed} packets dropped as spoofed, none reached the gateway"
                ),
            ),
        };
        println!(
            "  [{}] {:<18} {why}",
            if ok { "ok" } else { "WRONG" },
            s.label
        );
        if !ok {
            wrong += 1;
        }
    }
    if wrong > 0 {
        bail!("{wrong} senders were not treated as the policy says");
    }
    println!("  every sender was treated as the policy says");
    Ok(())
}

/// A few of policyd's enforcement events (JSON lines), one per kind.
fn print_events(events: &str) {
    println!("\n==> enforcement events (policyd writes them as JSON lines; one per kind shown)");
    for kind in ["\"deny\"", "\"limit\"", "\"spoof\""] {
        if let Some(line) = events
            .lines()
            .find(|l| l.contains(&format!("\"event\":{kind}")))
        {
            println!("  {line}");
        }
    }
}
