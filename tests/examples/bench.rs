//! Per-packet cost of policyd's programs, measured with `BPF_PROG_TEST_RUN`
//! beside do-nothing programs in the same run. Prints Markdown tables;
//! `cargo xtask bench` writes them into BENCHMARKS.md. Needs root.
//!
//! Each figure is the kernel's own average over `REPEAT` runs of one packet;
//! every configuration is measured `ROUNDS` times, interleaved with the
//! floor, and the median is reported, because these machines are noisy.

use std::time::Duration;

use aya::programs::{TestRun as _, TestRunOptions};
use policy_common::{ClassRule, USER_UNIDENTIFIED, field, v4_mapped};
use policyd::{
    dataplane::{Capacity, Dataplane, TC_EGRESS_PROGRAM},
    policy::{CompiledPolicy, CompiledUser},
};
use policyd_tests::packet::*;

struct Settings {
    repeat: u32,
    rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// A policy with `users` users at 10.x.y.z, `cidrs` remote CIDRs in one set
/// used by a deny class, and a handful of port classes.
fn policy(users: u32, cidrs: u32) -> CompiledPolicy {
    let mut p = CompiledPolicy {
        classes: vec![
            "default".into(),
            "banned".into(),
            "mail".into(),
            "bulk".into(),
        ],
        ..CompiledPolicy::default()
    };
    p.users.push(CompiledUser {
        id: USER_UNIDENTIFIED,
        name: "unidentified".into(),
        group: 0,
    });
    for i in 1..=users {
        p.users.push(CompiledUser {
            id: i,
            name: format!("u{i}"),
            group: 0,
        });
        let [_, a, b, c] = i.to_be_bytes();
        p.exact.push((v4_mapped([10, a, b, c]), i));
    }
    for i in 0..cidrs {
        let [_, a, b, _] = i.to_be_bytes();
        p.set_cidrs.push((96 + 24, v4_mapped([100, a, b, 0]), 1));
    }
    p.class_rules = vec![
        ClassRule {
            fields: field::REMOTE_SETS,
            class: 1,
            remote_sets: 1,
            ..ClassRule::default()
        },
        ClassRule {
            fields: field::PROTO | field::REMOTE_PORT,
            class: 2,
            proto: 6,
            remote_port_lo: 25,
            remote_port_hi: 25,
            ..ClassRule::default()
        },
        ClassRule {
            fields: field::PROTO | field::REMOTE_PORT,
            class: 3,
            proto: 6,
            remote_port_lo: 6000,
            remote_port_hi: 6010,
            ..ClassRule::default()
        },
    ];
    p.config.rule_count = 3;
    p.config.present = p.present();
    p
}

fn load(p: &CompiledPolicy) -> Dataplane {
    let mut dp = Dataplane::load(Capacity::default().fit(p)).expect("load (are you root?)");
    dp.apply(p).expect("apply");
    dp
}

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let user = [10, 0, 0, 1];
    vec![
        (
            "IPv4 UDP",
            eth(
                ETH_P_IP,
                &ipv4(user, [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "IPv6 TCP",
            eth(
                ETH_P_IPV6,
                &ipv6(
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    6,
                    &tcp(40000, 443, 0x10, &[0; 64]),
                ),
            ),
        ),
        (
            "802.1Q IPv4 TCP",
            vlan_tagged(
                &eth(
                    ETH_P_IP,
                    &ipv4(user, [100, 0, 0, 9], 6, &tcp(40000, 6005, 0x10, &[0; 64])),
                ),
                &[ETH_P_8021Q],
            ),
        ),
    ]
}

fn run_xdp(prog: &aya::programs::Xdp, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    ns(prog.test_run(opts).expect("test run").duration)
}

fn run_tc(prog: &aya::programs::SchedClassifier, frame: &[u8], repeat: u32) -> f64 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    ns(prog.test_run(opts).expect("test run").duration)
}

fn cost_table(s: &Settings) {
    let p = policy(10_000, 1_000);
    let mut dp = load(&p);
    println!("### Per-packet cost, XDP and TC egress (10 000 users, 1 000 CIDRs in a set)\n");
    println!(
        "| packet | empty XDP (ns) | policyd XDP (ns) | ratio | empty TC (ns) | policyd TC egress (ns) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, frame) in packets() {
        let (mut floor, mut xdp, mut tcf, mut tc) = (vec![], vec![], vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), &frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), &frame, s.repeat));
            tcf.push(run_tc(dp.tc_floor().unwrap(), &frame, s.repeat));
            tc.push(run_tc(dp.tc(TC_EGRESS_PROGRAM).unwrap(), &frame, s.repeat));
        }
        let (f, x, tf, t) = (median(floor), median(xdp), median(tcf), median(tc));
        println!(
            "| {name} | {f:.1} | {x:.1} | {:.2} | {tf:.1} | {t:.1} | {:.2} |",
            x / f.max(0.1),
            t / tf.max(0.1)
        );
    }
    println!();
}

fn scale_table(s: &Settings, what: &str, sizes: &[u32], make: impl Fn(u32) -> CompiledPolicy) {
    println!("### Scale: {what}\n");
    println!("| {what} | empty XDP (ns) | policyd XDP (ns) | ratio |");
    println!("|---:|---:|---:|---:|");
    let frame = &packets()[0].1;
    for &n in sizes {
        let mut dp = load(&make(n));
        let (mut floor, mut xdp) = (vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), frame, s.repeat));
        }
        let (f, x) = (median(floor), median(xdp));
        println!("| {n} | {f:.1} | {x:.1} | {:.2} |", x / f.max(0.1));
    }
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
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
    cost_table(&s);
    let users: &[u32] = if quick {
        &[1, 1_000]
    } else {
        &[1, 1_000, 100_000, 1_000_000]
    };
    scale_table(&s, "users (exact addresses)", users, |n| policy(n, 1));
    let cidrs: &[u32] = if quick {
        &[1, 1_000]
    } else {
        &[1, 1_000, 100_000]
    };
    scale_table(&s, "CIDRs in a set", cidrs, |n| policy(1_000, n));
}
