//! Per-packet cost with `BPF_PROG_TEST_RUN`: policyd's programs beside
//! do-nothing programs (the floor) and xdp-filter, and how the cost and the
//! maps' memory grow with users and CIDRs.

use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};
use policy_common::{ClassRule, USER_UNIDENTIFIED, field, v4_mapped};
use policyd::{
    dataplane::{Capacity, Dataplane, Pins, TC_EGRESS_PROGRAM},
    policy::{self, CompiledPolicy, CompiledUser},
};
use policyd_tests::packet::*;

use crate::{
    Settings, median,
    memory::{self, maps_memlock},
    xdp_filter,
};

/// A policy with `users` users at 10.x.y.z, `cidrs` remote CIDRs in one set
/// that a class matches, and a handful of port classes.
pub fn policy(users: u32, cidrs: u32) -> CompiledPolicy {
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
        p.exact.push((v4_mapped(user_addr(i)), i));
    }
    for i in 0..cidrs {
        p.set_cidrs.push((96 + 24, v4_mapped(cidr(i)), 1));
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
    // What the policy language sets by default (enforce mode, one event
    // per user and kind per interval), and user 2 denied, taken from a
    // compiled policy so it is what policyd would write.
    let reference = reference_policy();
    p.config.mode = reference.config.mode;
    p.config.malformed_drop = reference.config.malformed_drop;
    p.config.event_interval_ns = reference.config.event_interval_ns;
    if users >= 2 {
        p.actions = reference
            .actions
            .into_iter()
            .filter(|(k, _)| k.subject == 2)
            .collect();
    }
    p.config.rule_count = 3;
    p.config.present = p.present();
    p
}

/// Two users, the second denied, with every other setting at its default.
fn reference_policy() -> CompiledPolicy {
    let src = "[[user]]\nname = \"u1\"\nips = [\"10.0.0.1\"]\n\
               [[user]]\nname = \"u2\"\nips = [\"10.0.0.2\"]\naction = \"deny\"\n";
    CompiledPolicy::compile(
        &policy::parse(std::path::Path::new("bench.toml"), src).expect("bench policy"),
    )
}

/// User `i`'s address: 10.0.0.1 is user 1.
fn user_addr(i: u32) -> [u8; 4] {
    let [_, a, b, c] = i.to_be_bytes();
    [10, a, b, c]
}

pub fn load(p: &CompiledPolicy) -> Dataplane {
    let mut dp = Dataplane::load(Capacity::default().fit(p), Pins::ephemeral())
        .expect("load (are you root?)");
    dp.apply(p).expect("apply");
    dp
}

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let user = user_addr(1);
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
            "IPv4 UDP, denied user",
            eth(
                ETH_P_IP,
                &ipv4(user_addr(2), [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "802.1Q IPv4 TCP",
            vlan_tagged(
                &eth(
                    ETH_P_IP,
                    &ipv4(user, [192, 0, 2, 1], 6, &tcp(40000, 6005, 0x10, &[0; 64])),
                ),
                &[ETH_P_8021Q],
            ),
        ),
    ]
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn run_xdp(prog: &Xdp, frame: &[u8], repeat: u32) -> f64 {
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
pub struct CostRow {
    pub packet: &'static str,
    pub floor: f64,
    pub policyd: f64,
    pub xdp_filter: Option<f64>,
    pub tc_floor: f64,
    pub tc: f64,
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "n/a".to_owned(), f)
}

pub fn cost_table(s: &Settings) -> Vec<CostRow> {
    const USERS: u32 = 10_000;
    let p = policy(USERS, 1_000);
    let mut dp = load(&p);
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
         the user behind 10.0.0.1 is allowed and not in xdp-filter's list, so both look up every header; the one behind 10.0.0.2 is denied by both; the 802.1Q packet goes to TCP port 6005, which xdp-filter denies and policyd classes as bulk (passed)._\n",
        denied.len()
    );
    println!(
        "| packet | empty XDP (ns) | policyd XDP (ns) | ratio | xdp-filter (ns) | ratio | policyd / xdp-filter | verdicts (policyd, xdp-filter) | empty TC (ns) | policyd TC egress (ns) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for (name, frame) in packets() {
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
        let verdicts = format!(
            "{}, {}",
            xdp_verdict(dp.xdp().unwrap(), &frame, 1).0,
            filter
                .as_ref()
                .map_or("n/a", |f| xdp_verdict(f.program(), &frame, 1).0)
        );
        let row = CostRow {
            packet: name,
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
    rows
}

/// One size's medians (ns) and the maps' memory (bytes).
pub struct ScaleRow {
    pub n: u32,
    pub floor: f64,
    pub policyd: f64,
    pub memlock: u64,
}

/// The `i`th CIDR of the set: consecutive /24s from 64.0.0.0 (100 000 of
/// them end in 65.134.159.0/24).
fn cidr(i: u32) -> [u8; 4] {
    (0x4000_0000 + (i << 8)).to_be_bytes()
}

/// An address in the last CIDR of a set of `n`: the lookup walks the trie
/// down to a leaf (a destination outside every prefix stops near the root).
pub fn in_last_cidr(n: u32) -> [u8; 4] {
    let [a, b, c, _] = cidr(n.saturating_sub(1));
    [a, b, c, 9]
}

/// `dst` gives, for a size, where the packet (IPv4 UDP from user 1) goes.
pub fn scale_table(
    s: &Settings,
    what: &str,
    sizes: &[u32],
    make: impl Fn(u32) -> CompiledPolicy,
    dst: impl Fn(u32) -> [u8; 4],
) -> Vec<ScaleRow> {
    println!("### Scale: {what}\n");
    let [a, b, c, d] = dst(sizes.last().copied().unwrap_or(1));
    println!(
        "_An IPv4 UDP packet from user 1 (of 1 000 users in the CIDR table) to {a}.{b}.{c}.{d} for the largest size; memory: every map, from `/proc/self/fdinfo`._\n"
    );
    println!("| {what} | empty XDP (ns) | policyd XDP (ns) | ratio | maps' memory (MiB) |");
    println!("|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &n in sizes {
        let frame = &eth(
            ETH_P_IP,
            &ipv4(user_addr(1), dst(n), 17, &udp(40000, 443, &[0; 64])),
        );
        let mut dp = load(&make(n));
        // Read before anything else is loaded: this process then holds
        // only this dataplane's maps.
        let memlock = maps_memlock();
        let (mut floor, mut xdp) = (vec![], vec![]);
        for _ in 0..s.rounds {
            floor.push(run_xdp(dp.floor().unwrap(), frame, s.repeat));
            xdp.push(run_xdp(dp.xdp().unwrap(), frame, s.repeat));
        }
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
pub fn memory_table() {
    let _dp = load(&policy(1, 1));
    let mut maps = memory::maps();
    maps.sort_by_key(|m| std::cmp::Reverse(m.memlock));
    let total: u64 = maps.iter().map(|m| m.memlock).sum();
    println!("### Memory of the maps at default capacities\n");
    println!(
        "_One loaded copy of policyd's maps with a one-user policy, from `/proc/self/fdinfo` (`memlock`); maps under 1 MiB are summed in the last row. Policy tables grow to fit the policy (see the scale tables); traffic tables (`FLOWS`, `COUNTERS`, `BUCKETS`) have the sizes `policyd run --max-flows`, `--max-counters` and `--max-buckets` set; the others have fixed minimum sizes so reloads rarely outgrow them._\n"
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
