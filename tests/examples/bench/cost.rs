//! Per-packet cost with `BPF_PROG_TEST_RUN`: policyd's programs beside
//! do-nothing programs (the floor) and xdp-filter, and how the cost and the
//! maps' memory grow with users and CIDRs.

use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};
use policyd::{dataplane::TC_EGRESS_PROGRAM, policy::CompiledPolicy};
use policyd_tests::packet::*;

use crate::{
    Settings, median,
    memory::{self, maps_memlock},
    workload::{Treatment, load, load_with_tc, packets, policy, user_addr},
    xdp_filter,
};

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

pub(crate) fn run_xdp(prog: &Xdp, frame: &[u8], repeat: u32) -> f64 {
    xdp_verdict(prog, frame, repeat).1
}

/// The verdict (as xdp-tools names it) and the mean ns per run.
fn xdp_verdict(prog: &Xdp, frame: &[u8], repeat: u32) -> (&'static str, f64) {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    let r = prog.test_run(opts).expect("test run");
    let verdict = match r.return_value {
        0 => "aborted",
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "?",
    };
    (verdict, ns(r.duration))
}

fn run_tc(prog: &SchedClassifier, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    ns(prog.test_run(opts).expect("test run").duration)
}

/// One packet's medians, in ns.
pub(crate) struct CostRow {
    pub packet: &'static str,
    pub treatment: Treatment,
    pub floor: f64,
    pub policyd: f64,
    pub xdp_filter: Option<f64>,
    pub tc_floor: f64,
    pub tc: f64,
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_owned(), f)
}

pub(crate) fn cost_table(s: &Settings) -> Vec<CostRow> {
    const USERS: u32 = 10_000;
    let p = policy(USERS, 1_000);
    let mut dp = load_with_tc(&p);
    // xdp-filter denies as many source addresses as policyd knows users,
    // none of them the packets' own, and the same TCP ports policyd
    // classifies: every lookup runs and the packets go on, as in policyd.
    let denied: Vec<[u8; 4]> = (2..2 + xdp_filter::MAX_IPV4.min(USERS))
        .map(user_addr)
        .collect();
    let filter = match xdp_filter::object() {
        Some(path) => match xdp_filter::XdpFilter::load(&path, &denied) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("xdp-filter left out: {e}");
                None
            }
        },
        None => {
            eprintln!(
                "xdp-filter left out: xdpfilt_alw_all.o not found (apt-get install xdp-tools)"
            );
            None
        }
    };
    println!("### Per-packet cost, XDP and TC egress ({USERS} users, 1000 CIDRs in a set)\n");
    println!(
        "_xdp-filter: `xdpfilt_alw_all` from xdp-tools (default policy allow, i.e. a deny list; all features), {} source addresses and 12 TCP ports denied; \
         the user behind 10.0.0.1 is allowed and not in xdp-filter's list, so both look up every header; the one behind 10.0.0.2 is denied by both; policyd limits the users behind 10.0.0.3 (to a rate no test run reaches) and 10.0.0.4 (to one packet a second), which xdp-filter denies; policyd tracks elephant flows (the baseline's 100 MiB threshold); the 802.1Q packet goes to TCP port 6005, which xdp-filter denies and policyd classes as bulk (passed)._\n",
        denied.len()
    );
    println!(
        "| packet | empty XDP (ns) | policyd XDP (ns) | ratio | xdp-filter (ns) | ratio | policyd / xdp-filter | verdicts (policyd, xdp-filter) | empty TC (ns) | policyd TC egress (ns) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for (name, treatment, frame) in packets() {
        let (mut floor, mut xdp, mut xf, mut tcf, mut tc) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), &frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), &frame, s.repeat));
            if let Some(f) = &filter {
                xf.push(run_xdp(f.program(), &frame, s.repeat));
            }
            tcf.push(run_tc(dp.tc_floor().unwrap(), &frame, s.repeat));
            tc.push(run_tc(dp.tc(TC_EGRESS_PROGRAM).unwrap(), &frame, s.repeat));
        }
        // The verdict of the second of two runs: the limited user's bucket
        // refills between the rounds, so the first may conform.
        let verdicts = format!(
            "{}, {}",
            xdp_verdict(dp.xdp().unwrap(), &frame, 2).0,
            filter
                .as_ref()
                .map_or("n/a", |f| xdp_verdict(f.program(), &frame, 2).0)
        );
        let row = CostRow {
            packet: name,
            treatment,
            floor: median(floor),
            policyd: median(xdp),
            xdp_filter: filter.as_ref().map(|_| median(xf)),
            tc_floor: median(tcf),
            tc: median(tc),
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {} | {} | {} | {verdicts} | {:.1} | {:.1} | {:.2} |",
            row.floor,
            row.policyd,
            row.policyd / row.floor.max(0.1),
            fmt_opt(row.xdp_filter, |v| format!("{v:.1}")),
            fmt_opt(row.xdp_filter, |v| format!("{:.2}", v / row.floor.max(0.1))),
            fmt_opt(row.xdp_filter, |v| format!(
                "{:.2}",
                row.policyd / v.max(0.1)
            )),
            row.tc_floor,
            row.tc,
            row.tc / row.tc_floor.max(0.1)
        );
        rows.push(row);
    }
    println!();
    program_sizes(&dp, filter.as_ref());
    rows
}

/// Instructions the verifier walked for each program (kernel 5.16+ reports
/// it): its limit is 1 000 000 per program, and the features still to come
/// go into the same programs.
fn program_sizes(dp: &policyd::dataplane::Dataplane, filter: Option<&xdp_filter::XdpFilter>) {
    println!(
        "### Program size
"
    );
    println!(
        "_Verified instructions (`bpf_prog_info.verified_insns`: the instructions the verifier walked over every path; the limit is 1 000 000) and instructions loaded (`xlated_prog_len / 8`)._\n"
    );
    println!("| program | verified instructions | instructions |");
    println!("|---|---:|---:|");
    let row = |name: &str, info: Option<aya::programs::ProgramInfo>| {
        let verified = info
            .as_ref()
            .and_then(aya::programs::ProgramInfo::verified_instruction_count)
            .map_or_else(|| "n/a".to_owned(), |n| n.to_string());
        let size = info.as_ref().map_or_else(
            || "n/a".to_owned(),
            |i| (i.size_translated().unwrap_or(0) / 8).to_string(),
        );
        println!("| {name} | {verified} | {size} |");
    };
    row("policyd XDP", dp.xdp().ok().and_then(|p| p.info().ok()));
    for name in [TC_EGRESS_PROGRAM, policyd::dataplane::TC_INGRESS_PROGRAM] {
        row(name, dp.tc(name).ok().and_then(|p| p.info().ok()));
    }
    if let Some(f) = filter {
        row("xdp-filter (`xdpfilt_alw_all`)", f.program().info().ok());
    }
    println!();
}

/// One size's medians (ns) and the maps' memory (bytes).
pub(crate) struct ScaleRow {
    pub n: u32,
    pub floor: f64,
    pub policyd: f64,
    pub memlock: u64,
}

/// `dst` gives, for a size, where the packet (IPv4 UDP from user 1) goes.
pub(crate) fn scale_table(
    s: &Settings,
    what: &str,
    sizes: &[u32],
    make: impl Fn(u32) -> CompiledPolicy,
    dst: impl Fn(u32) -> [u8; 4],
) -> Vec<ScaleRow> {
    println!("### Scale: {what}\n");
    let [a, b, c, d] = dst(sizes.last().copied().unwrap_or(1));
    println!(
        "_An IPv4 UDP packet from user 1 (of 1 000 users in the CIDR table) to {a}.{b}.{c}.{d} for the largest size; every size loaded at once, rounds interleaved over them; memory: every map of each size's dataplane, from `/proc/self/fdinfo`._\n"
    );
    println!("| {what} | empty XDP (ns) | policyd XDP (ns) | ratio | maps' memory (MiB) |");
    println!("|---:|---:|---:|---:|---:|");
    // Every size loaded before any is measured, and the rounds interleaved
    // over the sizes: measured one after the other, the kernel's freeing
    // of the previous (large) dataplane's maps ran beside the next one's
    // rounds and made 1M users look 1.5 times slower than 10 (side by
    // side, pinned to a CPU, the two cost the same, kernel 6.18).
    let mut loaded = Vec::new();
    for &n in sizes {
        let frame = eth(
            ETH_P_IP,
            &ipv4(user_addr(1), dst(n), 17, &udp(40000, 443, &[0; 64])),
        );
        let before = maps_memlock();
        let dp = load(&make(n));
        // This dataplane's maps: what the process holds now, less what it
        // held before.
        let memlock = maps_memlock().saturating_sub(before);
        loaded.push((n, frame, dp, memlock, Vec::new(), Vec::new()));
    }
    for _ in 0..s.rounds {
        for (_, frame, dp, _, floor, xdp) in &mut loaded {
            floor.push(run_xdp(dp.floor().unwrap(), frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), frame, s.repeat));
        }
    }
    let mut rows = Vec::new();
    for (n, _, _, memlock, floor, xdp) in loaded {
        let row = ScaleRow {
            n,
            floor: median(floor),
            policyd: median(xdp),
            memlock,
        };
        println!(
            "| {n} | {:.1} | {:.1} | {:.2} | {:.1} |",
            row.floor,
            row.policyd,
            row.policyd / row.floor.max(0.1),
            row.memlock as f64 / (1024.0 * 1024.0)
        );
        rows.push(row);
    }
    println!();
    rows
}

/// Which maps the memory goes to, at the default capacities (a policy of
/// one user): what `--max-*` options trade.
pub(crate) fn memory_table() {
    let _dp = load(&policy(1, 1));
    let mut maps = memory::maps();
    maps.sort_by_key(|m| std::cmp::Reverse(m.memlock));
    let total: u64 = maps.iter().map(|m| m.memlock).sum();
    println!("### Memory of the maps at default capacities\n");
    println!(
        "_One loaded copy of policyd's maps with a one-user policy, from `/proc/self/fdinfo` (`memlock`); maps under 1 MiB are summed in the last row. Every table filled from the policy is sized to its need and a quarter more, at least its floor (4 096 entries; 1 024 for socket owners); `COUNTERS` to every user in every class both ways (at least 4 096, at most 2^21, unless `--max-counters`), `BUCKETS` to twice the policy's need (at least 1 024, unless `--max-buckets`), `UNID_BUCKETS` to `[unidentified] slots` (at least 4 096 of 16 bytes: 64 KiB), `FLOW_SKETCH` by `--sketch-width`; the scale tables show how memory follows the policy._\n"
    );
    println!("| map | capacity (entries) | memory (MiB) |");
    println!("|---|---:|---:|");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (big, small): (Vec<_>, Vec<_>) = maps.iter().partition(|m| m.memlock >= 1 << 20);
    for m in big {
        println!(
            "| `{}` | {} | {:.1} |",
            m.name,
            m.max_entries,
            mib(m.memlock)
        );
    }
    println!(
        "| {} smaller maps | | {:.1} |",
        small.len(),
        mib(small.iter().map(|m| m.memlock).sum())
    );
    println!("| **total** | | **{:.1}** |\n", mib(total));
}
