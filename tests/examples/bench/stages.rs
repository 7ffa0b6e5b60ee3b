//! Where policyd's per-packet time goes: the cost table's packets through
//! the same policy with one stage switched off at a time (what a policy
//! can switch off: elephant detection, the destination-set trie, the class
//! rules, the action table), and what limits and events add.

use aya::programs::{TestRun as _, TestRunOptions};
use policyd::{dataplane::Dataplane, policy::CompiledPolicy};

use crate::{
    Settings, median,
    workload::{load, packets, policy},
};

/// Median ns per run of the XDP program on `frame`, interleaved with the
/// empty program; returns (policyd, floor).
fn measure(dp: &mut Dataplane, frame: &[u8], s: &Settings) -> (f64, f64) {
    let run = |prog: &aya::programs::Xdp| {
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat: s.repeat,
            ..TestRunOptions::default()
        };
        prog.test_run(opts).expect("test run").duration.as_nanos() as f64
    };
    let (mut xdp, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..s.rounds {
        floor.push(run(dp.floor().expect("floor")));
        xdp.push(run(dp.xdp().expect("xdp")));
    }
    (median(xdp), median(floor))
}

/// Policy `p` with one stage switched off.
fn without(mut p: CompiledPolicy, stage: &str) -> CompiledPolicy {
    match stage {
        "elephant" => p.config.elephant_bytes = 0,
        "sets" => {
            p.set_cidrs.clear();
            p.class_rules
                .retain(|r| r.fields & policy_common::field::REMOTE_SETS == 0);
            p.config.rule_count = p.class_rules.len() as u32;
        }
        "rules" => {
            p.class_rules.clear();
            p.set_cidrs.clear();
            p.config.rule_count = 0;
        }
        "actions" => p.actions.clear(),
        _ => unreachable!("{stage}"),
    }
    p.config.present = p.present();
    p
}

pub(crate) fn stage_table(s: &Settings) {
    const USERS: u32 = 10_000;
    const STAGES: [(&str, &str); 4] = [
        (
            "elephant",
            "elephant detection (sketch: hash, two array cells, two adds)",
        ),
        (
            "sets",
            "destination-set lookup (prefilter; the packet is in no set)",
        ),
        ("rules", "class rules (3) and the set lookup"),
        ("actions", "action table (user's row)"),
    ];
    let frames = packets();
    let frame = |name: &str| {
        frames
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, f)| f.clone())
            .expect("a packet of the cost table")
    };
    let allowed = frame("IPv4 UDP");
    let limited = frame("IPv4 UDP, limited user, conforming");
    let denied = frame("IPv4 UDP, denied user");
    let full = policy(USERS, 1_000);
    // Every variant loaded first, then measured in interleaved rounds, so
    // the machine's drift falls on all of them alike.
    let mut dps: Vec<Dataplane> = std::iter::once(load(&full))
        .chain(
            STAGES
                .iter()
                .map(|(stage, _)| load(&without(full.clone(), stage))),
        )
        .collect();
    let one = Settings {
        repeat: s.repeat,
        rounds: 1,
    };
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); dps.len() + 3];
    for _ in 0..s.rounds {
        for (i, dp) in dps.iter_mut().enumerate() {
            runs[i].push(measure(dp, &allowed, &one).0);
        }
        let n = dps.len();
        runs[n].push(measure(&mut dps[0], &allowed, &one).1);
        runs[n + 1].push(measure(&mut dps[0], &limited, &one).0);
        runs[n + 2].push(measure(&mut dps[0], &denied, &one).0);
    }
    let m: Vec<f64> = runs.into_iter().map(median).collect();
    let (total, floor) = (m[0], m[STAGES.len() + 1]);
    let row = |what: &str, ns: f64| println!("| {what} | {ns:.1} |");
    println!("### Where the time goes (XDP, allowed IPv4 UDP packet)\n");
    println!(
        "_The cost table's policy ({USERS} users, 1 000 CIDRs in a set, elephant detection on) and packet; each \
         stage's figure is what the packet costs less with that stage switched off in the policy (each variant in \
         its own dataplane, all measured in the same interleaved rounds; the differences are of the order of the \
         noise, a few ns). The rest is what no policy switches off: parse, identity (an IPv4 exact-address hash), \
         the per-CPU counters, the configuration reads. The last rows are what a limit and a deny add, from the \
         cost table's other packets._\n"
    );
    println!("| stage | ns |");
    println!("|---|---:|");
    let mut saved_sum = 0.0;
    for (i, (stage, what)) in STAGES.iter().enumerate() {
        let saved = total - m[i + 1];
        if *stage != "rules" {
            saved_sum += saved;
        }
        row(what, saved);
    }
    row(
        "the rest (parse, identity, counters, configuration)",
        total - floor - saved_sum,
    );
    row("empty XDP program (the floor)", floor);
    row("**allowed packet, in all**", total);
    row(
        "a limit, conforming (clock, bucket compare-and-swap)",
        m[STAGES.len() + 2] - total,
    );
    row(
        "a deny (event limiter check, coarse clock)",
        m[STAGES.len() + 3] - total,
    );
    println!();
}
