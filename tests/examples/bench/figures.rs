//! The plots drawn from a run's results (under docs/bench/ for a full run).

use std::path::Path;

use crate::{cost, flood, plot, rate};

fn plot_or_warn(what: &str, r: std::io::Result<()>) {
    if let Err(e) = r {
        eprintln!("plot {what}: {e}");
    }
}

/// Everything measured, for the plots and the goals; what a part that did
/// not run would fill stays empty.
#[derive(Default)]
pub(crate) struct Results {
    pub cost: Vec<cost::CostRow>,
    pub users: Vec<cost::ScaleRow>,
    pub cidrs: Vec<cost::ScaleRow>,
    /// (users, median ms with one user changed, with every address
    /// changed) per reload size.
    pub reload: Vec<(u32, f64, f64)>,
    /// `policyd replay` start-up, median s.
    pub replay_secs: Option<f64>,
    pub flood: Vec<flood::FloodRow>,
    pub rate: Vec<rate::RateRow>,
    pub fair: Vec<rate::FairRow>,
}

/// Writes every plot the results allow into `dir`.
pub(crate) fn write(dir: &Path, r: &Results) {
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
        type Measure = fn(&rate::RateRow) -> f64;
        let figures: [(&str, &str, Measure); 2] = [
            (
                "rate-tcp.svg",
                "TCP goodput through a per-user limit",
                |x: &rate::RateRow| x.tcp_bps,
            ),
            (
                "rate-udp.svg",
                "UDP (frames) through a per-user limit",
                |x: &rate::RateRow| x.udp_frame_bps,
            ),
        ];
        for (file, title, f) in figures {
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
        let categories: Vec<String> = r.flood.iter().map(|f| f.name.to_owned()).collect();
        plot_or_warn(
            "drop",
            plot::bars(
                &dir.join("drop.svg"),
                "Dropping a flood over veth: CPU per packet, sender included",
                "ns of CPU per packet",
                &categories,
                &[(
                    "CPU per packet".to_owned(),
                    r.flood.iter().map(|f| f.cpu_ns).collect(),
                )],
            ),
        );
    }
}
