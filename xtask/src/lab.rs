//! `cargo xtask lab`: policyd on a throwaway network of namespaces, with
//! live traffic, so a new user can watch it enforce a policy.
//!
//! Layout: namespace `gw` runs `policyd run --iface gw0`; namespace `users`
//! holds every user's address on `users0`, the other end of the veth pair.
//! Each user sends UDP to a sink in `gw`; the table shows what policyd counted
//! and what actually reached the gateway. Everything is removed at the end,
//! also on Ctrl-C.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::IsTerminal as _,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use policyd_tests::{Daemon, NetNs, http_get, metric_sum, veth_pair};

use crate::{build_cmd, privileges};

#[derive(clap::Args)]
pub struct LabArgs {
    /// How long to run traffic through the lab, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
}

const POLICY: &str = include_str!("lab/policy.toml");
const GATEWAY: &str = "10.77.0.1";
const SINK_PORT: u16 = 9000;
const METRICS: &str = "127.0.0.1:9617";
/// Per sender: packets per second and UDP payload bytes. Light on purpose:
/// the lab shows verdicts, not throughput.
const PPS: u64 = 100;
const PAYLOAD: usize = 512;

/// A sender in the users namespace, and the user policyd should see.
struct Sender {
    label: &'static str,
    addr: &'static str,
    user: &'static str,
    denied: bool,
}

const SENDERS: &[Sender] = &[
    Sender {
        label: "alice",
        addr: "10.77.0.2",
        user: "alice",
        denied: false,
    },
    Sender {
        label: "bob",
        addr: "10.77.0.3",
        user: "bob",
        denied: false,
    },
    Sender {
        label: "mallory",
        addr: "10.77.0.66",
        user: "mallory",
        denied: true,
    },
    Sender {
        label: "a guest",
        addr: "10.77.0.200",
        user: "guests",
        denied: true,
    },
    Sender {
        label: "unregistered host",
        addr: "10.77.0.100",
        user: "unidentified",
        denied: false,
    },
];

#[derive(Default, Clone, Copy)]
struct Row {
    sent: u64,
    passed: u64,
    dropped: u64,
    passed_bytes: u64,
    dropped_bytes: u64,
    reached: u64,
}

pub fn run(args: LabArgs) -> anyhow::Result<()> {
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
    let user_addrs: Vec<String> = SENDERS.iter().map(|s| format!("{}/24", s.addr)).collect();
    let user_addrs: Vec<&str> = user_addrs.iter().map(String::as_str).collect();
    veth_pair(
        (&gw, "gw0", &[&format!("{GATEWAY}/24")]),
        (&users, "users0", &user_addrs),
    )
    .context("creating the veth pair")?;

    let dir = std::env::temp_dir().join(format!("policyd-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the lab's temporary directory")?;
    let policy = dir.join("lab-policy.toml");
    std::fs::write(&policy, POLICY).context("writing the lab policy")?;
    println!("==> policy ({}):\n", policy.display());
    for line in POLICY.lines() {
        println!("    {line}");
    }

    let metrics: SocketAddr = METRICS.parse().context("metrics address")?;
    let log = dir.join("policyd.log");
    println!("\n==> starting policyd in `gw` (log: {})", log.display());
    let result = (|| {
        let daemon = Daemon::start(&gw, &policyd, &["gw0"], &policy, metrics, &log, &[])
            .context("policyd did not start")?;
        let outcome = traffic(&gw, &users, &daemon, args.seconds, &stop);
        drop(daemon);
        outcome
    })();
    let _ = std::fs::remove_dir_all(&dir);
    drop(users);
    drop(gw);
    println!("==> lab removed (namespaces, veth pair and policyd are gone)");
    result
}

/// Runs the senders and the sink, shows live counters, and checks the
/// outcome: allowed senders reach the gateway, denied ones never do.
fn traffic(
    gw: &NetNs,
    users: &NetNs,
    daemon: &Daemon,
    seconds: u64,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let reached: Arc<Mutex<HashMap<IpAddr, u64>>> = Arc::default();
    let sent: Arc<Vec<AtomicU64>> = Arc::new(SENDERS.iter().map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));

    let sink = {
        let (reached, done) = (Arc::clone(&reached), Arc::clone(&done));
        gw.spawn(move || -> std::io::Result<()> {
            let sock = UdpSocket::bind((GATEWAY, SINK_PORT))?;
            sock.set_read_timeout(Some(Duration::from_millis(100)))?;
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let mut map = reached.lock().unwrap_or_else(|p| p.into_inner());
                    *map.entry(from.ip()).or_default() += 1;
                }
            }
            Ok(())
        })?
    };
    let mut senders = Vec::new();
    for (i, s) in SENDERS.iter().enumerate() {
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        let addr: IpAddr = s.addr.parse()?;
        senders.push(users.spawn(move || -> std::io::Result<()> {
            let sock = UdpSocket::bind((addr, 0))?;
            let start = Instant::now();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                // Paced by the clock, so the rate holds whatever the sleeps do.
                let due = start.elapsed().as_micros() as u64 * PPS / 1_000_000;
                while n < due {
                    sock.send_to(&[0x42; PAYLOAD], (GATEWAY, SINK_PORT))?;
                    n += 1;
                    sent[i].store(n, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })?);
    }

    println!(
        "==> {} senders, {PPS} packets/s each, for {seconds} s (Ctrl-C ends early)\n",
        SENDERS.len()
    );
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut rows = vec![Row::default(); SENDERS.len()];
    let mut drawn = 0;
    while started.elapsed() < Duration::from_secs(seconds) && !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_secs(1));
        let metrics = daemon.metrics;
        let Ok(Ok(body)) = gw.run(move || http_get(metrics, "/metrics")) else {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            bail!(
                "cannot read policyd's metrics; its log:\n{}",
                daemon.log_text()
            );
        };
        rows = collect(&body, &sent, &reached);
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
    done.store(true, Ordering::Relaxed);
    for s in senders {
        join(s, "a sender")?;
    }
    join(sink, "the sink")?;
    summary(&rows)
}

/// Waits for a thread started in a namespace and passes on its error.
fn join(
    handle: thread::JoinHandle<std::io::Result<std::io::Result<()>>>,
    what: &str,
) -> anyhow::Result<()> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("{what} panicked"))?
        .with_context(|| format!("{what} could not enter its namespace"))?
        .with_context(|| format!("{what} failed"))
}

fn collect(body: &str, sent: &[AtomicU64], reached: &Mutex<HashMap<IpAddr, u64>>) -> Vec<Row> {
    let reached = reached.lock().unwrap_or_else(|p| p.into_inner()).clone();
    SENDERS
        .iter()
        .zip(sent)
        .map(|(s, sent)| {
            let m = |metric: &str, verdict: &str| {
                metric_sum(body, metric, &[("user", s.user), ("verdict", verdict)])
            };
            let addr: IpAddr = s.addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            Row {
                sent: sent.load(Ordering::Relaxed),
                passed: m("policyd_packets_total", "pass"),
                dropped: m("policyd_packets_total", "deny") + m("policyd_packets_total", "limit"),
                passed_bytes: m("policyd_bytes_total", "pass"),
                dropped_bytes: m("policyd_bytes_total", "deny") + m("policyd_bytes_total", "limit"),
                reached: reached.get(&addr).copied().unwrap_or(0),
            }
        })
        .collect()
}

fn render(rows: &[Row], elapsed: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  policyd lab, {:>3} s   (counters from /metrics; 'reached' = received by the gateway)",
        elapsed.as_secs()
    );
    let _ = writeln!(
        out,
        "  {:<18} {:<15} {:<13} {:>7} {:>8} {:>8} {:>10} {:>10} {:>8}",
        "sender",
        "address",
        "policyd user",
        "sent",
        "passed",
        "dropped",
        "pass B",
        "drop B",
        "reached"
    );
    for (s, r) in SENDERS.iter().zip(rows) {
        let _ = writeln!(
            out,
            "  {:<18} {:<15} {:<13} {:>7} {:>8} {:>8} {:>10} {:>10} {:>8}",
            s.label,
            s.addr,
            s.user,
            r.sent,
            r.passed,
            r.dropped,
            r.passed_bytes,
            r.dropped_bytes,
            r.reached
        );
    }
    out
}

/// Explains what was enforced and checks it; an error if policyd let a
/// denied sender through or dropped an allowed one.
fn summary(rows: &[Row]) -> anyhow::Result<()> {
    println!("\n==> summary");
    let mut wrong = 0;
    for (s, r) in SENDERS.iter().zip(rows) {
        let ok = if s.denied {
            r.reached == 0 && r.passed == 0 && r.dropped > 0
        } else {
            r.dropped == 0 && r.passed > 0 && r.reached > 0
        };
        let why = if s.denied {
            format!(
                "denied: policyd dropped {} packets ({} bytes) at XDP; {} reached the gateway",
                r.dropped, r.dropped_bytes, r.reached
            )
        } else {
            format!(
                "allowed: {} packets passed ({} bytes), {} reached the gateway",
                r.passed, r.passed_bytes, r.reached
            )
        };
        println!(
            "  [{}] {:<18} as `{}`: {why}",
            if ok { "ok" } else { "WRONG" },
            s.label,
            s.user
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
