//! `cargo xtask bench`: policyd measured beside what network teams already
//! use. Prints Markdown tables (xtask writes them into BENCHMARKS.md) and,
//! with `--plots DIR`, SVG plots into DIR. Needs root.
//!
//! Every comparison runs in one process, interleaved round by round, and
//! reports medians, because these machines are noisy. `--quick` checks the
//! harness with tiny sizes and short runs; its numbers mean nothing.

mod control;
mod cost;
mod features;
mod figures;
mod flood;
mod gateway;
mod goals;
mod limiters;
mod memory;
mod names;
mod nft;
mod plot;
mod rate;
mod stages;
mod workload;
mod xdp_filter;

use std::path::PathBuf;

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

fn main() {
    let started = std::time::Instant::now();
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
    let part = |name: &str| {
        let run = only.as_deref().is_none_or(|o| o == name);
        if run {
            // On stderr, so the tables stay clean: where a run's time goes.
            eprintln!(
                "bench: part {name} from {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        run
    };
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
    let mut r = figures::Results::default();
    if part("control") {
        // First: after a large dataplane is dropped, the kernel frees its
        // maps for a while, beside whatever runs next (0.47-0.50 s instead
        // of 0.14-0.18 s for the start-up when it came after the scale
        // part or the reloads).
        r.replay_secs = Some(control::replay_table(quick));
    }
    if part("cost") {
        r.cost = cost::cost_table(&s);
        stages::stage_table(&s);
        features::features_table(&s, quick);
        names::names_table(&s);
    }
    if part("scale") {
        let sizes: &[u32] = if quick {
            &[10, 1_000]
        } else {
            &[10, 10_000, 100_000, 1_000_000]
        };
        cost::memory_table();
        r.users = cost::scale_table(
            &s,
            "users (exact addresses)",
            sizes,
            |n| workload::policy(n, 1),
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
            |n| workload::policy(1_000, n),
            workload::in_last_cidr,
        );
    }
    if part("control") {
        r.reload = control::reload_table(quick);
        control::daemon_table(quick);
    }
    if part("flood") {
        r.flood = flood::flood_table(quick);
    }
    if part("rate") {
        // `--rates 10,100` (Mbit/s): only these rates (a developer's
        // shortcut; the full run has 10, 100 and 1000).
        let rates: Option<Vec<u64>> = args
            .iter()
            .position(|a| a == "--rates")
            .and_then(|i| args.get(i + 1))
            .map(|r| {
                r.split(',')
                    .map(|m| m.trim().parse::<u64>().expect("--rates in Mbit/s") * 1_000_000)
                    .collect()
            });
        r.rate = rate::rate_table(quick, &limiters::RATE_LIMITERS, rates.as_deref());
    }
    if part("fairness") {
        r.fair = rate::fairness_table(quick, &limiters::FAIR_LIMITERS);
    }
    eprintln!(
        "bench: tables done at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Last, over whatever ran: the goals against this run's figures.
    goals::goals_table(&r, quick);
    if let Some(dir) = plot_dir {
        figures::write(&dir, &r);
    }
}
