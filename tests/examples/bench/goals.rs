//! The goals of issue 10 (the fast path), each marked met or missed with
//! this run's figure, so BENCHMARKS.md says where policyd stands against
//! them without a reader redoing the arithmetic from the tables above.
//!
//! Only the targets are written here (they are the issue's); every figure
//! comes from the run's `Results`, so a goal whose table did not run, or
//! ran without the size the goal is set at, has none.

use crate::{figures::Results, flood::Dropper, limiters::Limiter, rate, workload::Treatment};

/// One line of the table.
struct Goal {
    goal: String,
    target: String,
    /// The figure, or why there is none.
    measured: String,
    /// `None`: not measured.
    met: Option<bool>,
}

fn judged(goal: &str, target: &str, measured: String, met: bool) -> Goal {
    Goal {
        goal: goal.to_owned(),
        target: target.to_owned(),
        measured,
        met: Some(met),
    }
}

fn unmeasured(goal: &str, target: &str, why: String) -> Goal {
    Goal {
        goal: goal.to_owned(),
        target: target.to_owned(),
        measured: why,
        met: None,
    }
}

/// A goal whose part did not run (`--only`).
const NOT_RUN: &str = "not measured";

/// Why a goal set at one size has no figure: its part did not run, or ran
/// at the quick sizes (or `--rates`), which leave that size out; comparing
/// another size would say nothing about the goal.
fn not_measured(ran: bool, quick: bool) -> String {
    if ran && quick {
        "not measured (quick)".to_owned()
    } else {
        NOT_RUN.to_owned()
    }
}

/// A user count as the issue writes it: 10k, 1M.
fn count(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Per-packet cost against xdp-filter (test runs): the worst row of those
/// with `treatment`, named, since each kind of packet must meet the goal.
fn cost_goal(r: &Results, goal: &str, treatment: Treatment, limit: f64) -> Goal {
    let target = format!("≤ {limit:.1}× xdp-filter");
    if r.cost.is_empty() {
        return unmeasured(goal, &target, NOT_RUN.to_owned());
    }
    let worst = r
        .cost
        .iter()
        .filter(|c| c.treatment == treatment)
        .filter_map(|c| c.xdp_filter.map(|xf| (c, xf, c.policyd / xf)))
        .max_by(|a, b| a.2.total_cmp(&b.2));
    match worst {
        Some((c, xf, ratio)) => judged(
            goal,
            &target,
            format!("{}: {:.0} vs {xf:.0} ns = {ratio:.2}×", c.packet, c.policyd),
            ratio <= limit,
        ),
        None => unmeasured(goal, &target, "not measured (no xdp-filter)".to_owned()),
    }
}

/// policyd's cost over the users scale table, largest over smallest.
fn flat_goal(r: &Results, quick: bool) -> Goal {
    const LIMIT: f64 = 1.2;
    const LARGEST: u32 = 1_000_000;
    let goal = "flat from 10 to 1M users (users scale, policyd XDP)";
    let target = format!("max / min ≤ {LIMIT:.1}×");
    if !r.users.iter().any(|u| u.n == LARGEST) {
        return unmeasured(goal, &target, not_measured(!r.users.is_empty(), quick));
    }
    let ns: Vec<f64> = r.users.iter().map(|u| u.policyd).collect();
    let (min, max) = ns.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let each: Vec<String> = r
        .users
        .iter()
        .map(|u| format!("{}: {:.0}", count(u.n), u.policyd))
        .collect();
    let ratio = max / min;
    judged(
        goal,
        &target,
        format!("{} ns = {ratio:.2}×", each.join(", ")),
        ratio <= LIMIT,
    )
}

/// The kernel's own run time per packet of the denied flood, at XDP where
/// xdp-filter runs (TC ingress beside it, for reference: its program
/// starts from an skb, a different cost).
fn live_goal(r: &Results) -> Goal {
    const LIMIT: f64 = 1.0;
    let goal = "live cost: denied flood on veth, kernel statistics (XDP)";
    let target = format!("≤ {LIMIT:.1}× xdp-filter");
    let program = |d: Dropper| {
        r.flood
            .iter()
            .find(|f| f.dropper == d)
            .map(|f| f.program_ns)
            .filter(|ns| !ns.is_nan())
    };
    let (Some(xdp), Some(xf)) = (program(Dropper::PolicydDeny), program(Dropper::XdpFilter)) else {
        let why = if r.flood.is_empty() {
            NOT_RUN.to_owned()
        } else {
            "not measured (no kernel statistics)".to_owned()
        };
        return unmeasured(goal, &target, why);
    };
    let tc = program(Dropper::PolicydDenyTc)
        .map_or_else(String::new, |ns| format!(" (TC ingress: {ns:.0} ns)"));
    let ratio = xdp / xf;
    judged(
        goal,
        &target,
        format!("{xdp:.0} vs {xf:.0} ns = {ratio:.2}×{tc}"),
        ratio <= LIMIT,
    )
}

/// Maps' memory at one size of the users scale table.
fn memory_goal(r: &Results, quick: bool, users: u32, mib: f64) -> Goal {
    let goal = format!("kernel memory, {}-user policy", count(users));
    let target = format!("≤ {mib:.0} MiB");
    match r.users.iter().find(|u| u.n == users) {
        Some(u) => {
            let got = u.memlock as f64 / (1024.0 * 1024.0);
            judged(&goal, &target, format!("{got:.1} MiB"), got <= mib)
        }
        None => unmeasured(&goal, &target, not_measured(!r.users.is_empty(), quick)),
    }
}

/// Judged on a reload that edits one user (what an operator's reload is;
/// the figures of 3.5-4.8 s were a reload of an unchanged policy,
/// which rewrote everything then), with the most a reload can write,
/// every address changed, shown beside it.
fn reload_goal(r: &Results, quick: bool, users: u32, ms: f64) -> Goal {
    let goal = format!("reload of {} users (one user changed)", count(users));
    let target = if ms >= 1_000.0 {
        format!("≤ {} s", ms / 1_000.0)
    } else {
        format!("≤ {ms:.0} ms")
    };
    match r.reload.iter().find(|(n, _, _)| *n == users) {
        Some(&(_, got, every)) => judged(
            &goal,
            &target,
            format!("{got:.0} ms (every address changed: {every:.0} ms)"),
            got <= ms,
        ),
        None => unmeasured(&goal, &target, not_measured(!r.reload.is_empty(), quick)),
    }
}

fn replay_goal(r: &Results) -> Goal {
    const LIMIT: f64 = 0.3;
    let (goal, target) = ("`policyd replay` start-up", format!("≤ {LIMIT} s"));
    match r.replay_secs {
        Some(s) => judged(goal, &target, format!("{s:.2} s"), s <= LIMIT),
        None => unmeasured(goal, &target, NOT_RUN.to_owned()),
    }
}

/// TCP through policyd's limit at `rate` bit/s, with or without ECN.
fn tcp_goal(r: &Results, quick: bool, rate: u64, ecn: bool, min_share: f64, max_retr: f64) -> Goal {
    let goal = format!(
        "TCP through a {} limit, {} ECN",
        rate::mbit(rate),
        if ecn { "with" } else { "without" }
    );
    let target = format!(
        "≥ {:.0}% of the limit, retransmits ≤ {:.0}% of nftables'",
        100.0 * min_share,
        100.0 * max_retr
    );
    let row = |l: Limiter| r.rate.iter().find(|x| x.kind == l && x.rate == rate);
    let (Some(p), Some(nft)) = (row(Limiter::Policyd), row(Limiter::NftLimit)) else {
        return unmeasured(&goal, &target, not_measured(!r.rate.is_empty(), quick));
    };
    let (bps, retransmits, nft_retransmits) = if ecn {
        (p.tcp_bps, p.retransmits, nft.retransmits)
    } else {
        (p.tcp_plain_bps, p.plain_retransmits, nft.plain_retransmits)
    };
    let share = bps / rate as f64;
    let of_nft = if nft_retransmits > 0.0 {
        format!("{:.0}% of nft", 100.0 * retransmits / nft_retransmits)
    } else {
        "nft: 0".to_owned()
    };
    judged(
        &goal,
        &target,
        format!("{:.1}%, {retransmits:.0} retr. ({of_nft})", 100.0 * share),
        // nftables with no retransmits leaves policyd room for none.
        share >= min_share && retransmits <= max_retr * nft_retransmits,
    )
}

/// CPU per packet of the denied flood, policyd's better hook against the
/// nftables set drop.
fn drop_goal(r: &Results) -> Goal {
    let goal = "drop benchmark: CPU per dropped packet, policyd's better hook";
    let target = "≤ nftables set drop";
    let cpu = |d: Dropper| r.flood.iter().find(|f| f.dropper == d).map(|f| f.cpu_ns);
    let (Some(xdp), Some(tc), Some(nft)) = (
        cpu(Dropper::PolicydDeny),
        cpu(Dropper::PolicydDenyTc),
        cpu(Dropper::NftSet),
    ) else {
        return unmeasured(goal, target, NOT_RUN.to_owned());
    };
    let (better, best, other, other_ns) = if tc < xdp {
        ("TC ingress", tc, "XDP", xdp)
    } else {
        ("XDP", xdp, "TC ingress", tc)
    };
    judged(
        goal,
        target,
        format!(
            "{better}: {best:.0} vs {nft:.0} ns = {:.2}× ({other}: {other_ns:.0} ns)",
            best / nft
        ),
        best <= nft,
    )
}

/// Every goal of the issue, in its order.
fn goals(r: &Results, quick: bool) -> Vec<Goal> {
    let mut g = vec![
        cost_goal(
            r,
            "allowed packet, cost per packet (worst allowed row)",
            Treatment::Allowed,
            1.0,
        ),
        cost_goal(r, "denied packet, cost per packet", Treatment::Denied, 1.2),
        cost_goal(
            r,
            "limited user's conforming packet, cost per packet",
            Treatment::LimitedConforming,
            1.6,
        ),
        flat_goal(r, quick),
        live_goal(r),
        memory_goal(r, quick, 10, 16.0),
        memory_goal(r, quick, 10_000, 48.0),
        memory_goal(r, quick, 1_000_000, 400.0),
        reload_goal(r, quick, 100_000, 150.0),
        reload_goal(r, quick, 1_000_000, 1_000.0),
        replay_goal(r),
    ];
    for rate in [10_000_000, 100_000_000, 1_000_000_000] {
        g.push(tcp_goal(r, quick, rate, false, 0.90, 0.25));
        g.push(tcp_goal(r, quick, rate, true, 0.93, 0.10));
    }
    g.push(drop_goal(r));
    g
}

pub(crate) fn goals_table(r: &Results, quick: bool) {
    println!("### Goals (issue 10)\n");
    println!(
        "_Targets from issue 10 (the fast path), figures from this run's tables above, ratios within this run. \
         Cost: the per-packet cost table, policyd XDP against xdp-filter, the allowed goal on the worst of its \
         allowed packets; flat: the users scale table (it starts at 10 users); live cost: the drop table's program \
         per packet at XDP, xdp-filter's hook (policyd's TC ingress program beside it, not judged: it starts from \
         an skb); drop: the drop table's CPU per packet with the better of policyd's two hooks against the nftables \
         set drop; TCP: policyd's rows of the rate table against nftables limit at the same rate. Not measured: the \
         part did not run (`--only`), or ran without the size the goal is set at (`--quick`, `--rates`)._\n"
    );
    println!("| goal | target | measured | met? |");
    println!("|---|---|---|---|");
    for g in goals(r, quick) {
        let met = match g.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "–",
        };
        println!("| {} | {} | {} | {met} |", g.goal, g.target, g.measured);
    }
    println!();
}
