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
    let frames = packets();
    let frame = |name: &str| {
        frames
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.clone())
            .expect("a packet of the cost table")
    };
    let allowed = frame("IPv4 UDP");
    let full = policy(USERS, 1_000);
    let mut dp = load(&full);
    let (total, floor) = measure(&mut dp, &allowed, s);
    let row = |what: &str, ns: f64| println!("| {what} | {ns:.1} |");
    println!("### Where the time goes (XDP, allowed IPv4 UDP packet)\n");
    println!(
        "_The cost table's policy ({USERS} users, 1 000 CIDRs in a set, elephant detection on) and packet; each \
         stage's figure is what the packet costs less with that stage switched off in the policy (its own \
         dataplane, same run). The rest is what no policy switches off: parse, identity (an IPv4 exact-address \
         hash), the per-CPU counters, the configuration reads. The last rows are what a limit and an event check \
         add, from the cost table's other packets._\n"
    );
    println!("| stage | ns |");
    println!("|---|---:|");
    let mut saved_sum = 0.0;
    for (stage, what) in [
        (
            "elephant",
            "elephant detection (sketch: hash, two array cells, two adds)",
        ),
        ("sets", "destination-set trie (IPv4, 1 000 prefixes)"),
        ("rules", "class rules (3) and the set trie"),
        ("actions", "action table (user's row)"),
    ] {
        let mut dp = load(&without(full.clone(), stage));
        let (t, _) = measure(&mut dp, &allowed, s);
        let saved = total - t;
        if stage != "rules" {
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
    let (limited, _) = measure(&mut dp, &frame("IPv4 UDP, limited user, conforming"), s);
    row(
        "a limit, conforming (clock, bucket compare-and-swap)",
        limited - total,
    );
    let (denied, _) = measure(&mut dp, &frame("IPv4 UDP, denied user"), s);
    row("a deny (event limiter check, coarse clock)", denied - total);
    println!();
}
