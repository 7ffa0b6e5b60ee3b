//! `cargo xtask bench`: policyd measured beside what network teams already
//! use. Prints Markdown tables (xtask writes them into BENCHMARKS.md) and,
//! with `--plots DIR`, SVG plots into DIR. Needs root.
//!
//! Every comparison runs in one process, interleaved round by round, and
//! reports medians, because these machines are noisy. `--quick` checks the
//! harness with tiny sizes and short runs; its numbers mean nothing.

mod control;
mod cost;
mod flood;
mod limiters;
mod memory;
mod nft;
mod plot;
mod rate;
mod xdp_filter;

use std::path::{Path, PathBuf};

pub struct Settings {
    /// `BPF_PROG_TEST_RUN` repeats per measurement.
    pub repeat: u32,
    /// Interleaved rounds per test-run figure.
    pub rounds: usize,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The policyd binary the end-to-end benchmarks run: `$POLICYD_BIN`, else
/// the build next to this example.
pub fn policyd_bin() -> PathBuf {
    std::env::var_os("POLICYD_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("own path");
            let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            dir.join("policyd")
        },
        PathBuf::from,
    )
}

fn plot_or_warn(what: &str, r: std::io::Result<()>) {
    if let Err(e) = r {
        eprintln!("plot {what}: {e}");
    }
}

/// Everything measured, for the plots.
#[derive(Default)]
struct Results {
    cost: Vec<cost::CostRow>,
    users: Vec<cost::ScaleRow>,
    cidrs: Vec<cost::ScaleRow>,
    flood: flood::FloodResult,
    rate: Vec<rate::RateRow>,
    fair: Vec<rate::FairRow>,
}

fn plots(dir: &Path, r: &Results) {
    if !r.cost.is_empty() {
        let categories: Vec<String> = r.cost.iter().map(|c| c.packet.to_owned()).collect();
        let col = |f: fn(&cost::CostRow) -> f64| r.cost.iter().map(f).collect::<Vec<f64>>();
        let series = vec![
            ("empty XDP".to_owned(), col(|c| c.floor)),
            ("policyd XDP".to_owned(), col(|c| c.policyd)),
            (
                "xdp-filter".to_owned(),
                col(|c| c.xdp_filter.unwrap_or(f64::NAN)),
            ),
            ("empty TC".to_owned(), col(|c| c.tc_floor)),
            ("policyd TC egress".to_owned(), col(|c| c.tc)),
        ];
        plot_or_warn(
            "cost",
            plot::bars(
                &dir.join("cost.svg"),
                "Per-packet cost (BPF_PROG_TEST_RUN, 10 000 users, 1 000 CIDRs)",
                "ns per packet",
                &categories,
                &series,
            ),
        );
    }
    if !r.users.is_empty() || !r.cidrs.is_empty() {
        let pts = |rows: &[cost::ScaleRow], f: fn(&cost::ScaleRow) -> f64| {
            rows.iter()
                .map(|row| (f64::from(row.n), f(row)))
                .collect::<Vec<_>>()
        };
        plot_or_warn(
            "scale",
            plot::lines(
                &dir.join("scale.svg"),
                "policyd XDP cost against table size",
                "entries (log scale)",
                "ns per packet",
                true,
                &[
                    (
                        "users (exact addresses)".to_owned(),
                        pts(&r.users, |x| x.policyd),
                    ),
                    ("CIDRs in a set".to_owned(), pts(&r.cidrs, |x| x.policyd)),
                    ("empty XDP".to_owned(), pts(&r.users, |x| x.floor)),
                ],
            ),
        );
        let mib = |x: &cost::ScaleRow| x.memlock as f64 / (1024.0 * 1024.0);
        plot_or_warn(
            "memory",
            plot::lines(
                &dir.join("memory.svg"),
                "Memory of policyd's maps (memlock) against table size",
                "entries (log scale)",
                "MiB",
                true,
                &[
                    ("users (exact addresses)".to_owned(), pts(&r.users, mib)),
                    ("CIDRs in a set".to_owned(), pts(&r.cidrs, mib)),
                ],
            ),
        );
    }
    if !r.rate.is_empty() {
        let mut rates: Vec<u64> = r.rate.iter().map(|x| x.rate).collect();
        rates.dedup();
        let categories: Vec<String> = rates
            .iter()
            .map(|x| format!("{} Mbit/s", x / 1_000_000))
            .collect();
        let mut names: Vec<&str> = Vec::new();
        for x in &r.rate {
            if !names.contains(&x.limiter) {
                names.push(x.limiter);
            }
        }
        for (file, title, f) in [
            (
                "rate-tcp.svg",
                "TCP goodput through a per-user limit",
                (|x: &rate::RateRow| x.tcp_bps) as fn(&rate::RateRow) -> f64,
            ),
            (
                "rate-udp.svg",
                "UDP (frames) through a per-user limit",
                |x: &rate::RateRow| x.udp_frame_bps,
            ),
        ] {
            let series: Vec<(String, Vec<f64>)> = names
                .iter()
                .map(|n| {
                    let v = rates
                        .iter()
                        .map(|rate| {
                            r.rate
                                .iter()
                                .find(|x| x.limiter == *n && x.rate == *rate)
                                .map_or(f64::NAN, |x| 100.0 * f(x) / *rate as f64)
                        })
                        .collect();
                    ((*n).to_owned(), v)
                })
                .collect();
            plot_or_warn(
                file,
                plot::bars(
                    &dir.join(file),
                    title,
                    "% of the configured rate",
                    &categories,
                    &series,
                ),
            );
        }
    }
    if !r.fair.is_empty() {
        let series: Vec<(String, Vec<(f64, f64)>)> = r
            .fair
            .iter()
            .map(|f| {
                let pts = f
                    .per_user
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1) as f64, v / 1e6))
                    .collect();
                (f.limiter.to_owned(), pts)
            })
            .collect();
        plot_or_warn(
            "fairness",
            plot::lines(
                &dir.join("fairness.svg"),
                "Per-user TCP goodput, users at once, each limited to 10 Mbit/s",
                "user (sorted by goodput)",
                "Mbit/s",
                false,
                &series,
            ),
        );
    }
    if !r.flood.is_empty() {
        let categories: Vec<String> = r.flood.iter().map(|f| f.0.to_owned()).collect();
        plot_or_warn(
            "drop",
            plot::bars(
                &dir.join("drop.svg"),
                "Dropping a flood over veth: CPU per packet, sender included",
                "ns of CPU per packet",
                &categories,
                &[(
                    "CPU per packet".to_owned(),
                    r.flood.iter().map(|f| f.1).collect(),
                )],
            ),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let plot_dir = args
        .iter()
        .position(|a| a == "--plots")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    // `--only PART` runs one part (cost, scale, control, flood, rate,
    // fairness).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
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
    let mut r = Results::default();
    if part("cost") {
        r.cost = cost::cost_table(&s);
    }
    if part("scale") {
        let sizes: &[u32] = if quick {
            &[1, 1_000]
        } else {
            &[1, 1_000, 100_000, 1_000_000]
        };
        cost::memory_table();
        r.users = cost::scale_table(
            &s,
            "users (exact addresses)",
            sizes,
            |n| cost::policy(n, 1),
            |_| [192, 0, 2, 1],
        );
        let sizes: &[u32] = if quick {
            &[1, 1_000]
        } else {
            &[1, 1_000, 100_000]
        };
        r.cidrs = cost::scale_table(
            &s,
            "CIDRs in a set",
            sizes,
            |n| cost::policy(1_000, n),
            cost::in_last_cidr,
        );
    }
    if part("control") {
        control::reload_table(quick);
        control::daemon_table(quick);
    }
    if part("flood") {
        r.flood = flood::flood_table(quick);
    }
    if part("rate") {
        r.rate = rate::rate_table(quick, &limiters::RATE_LIMITERS);
    }
    if part("fairness") {
        r.fair = rate::fairness_table(quick, &limiters::FAIR_LIMITERS);
    }
    if let Some(dir) = plot_dir {
        plots(&dir, &r);
    }
}
