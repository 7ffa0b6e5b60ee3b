//! What the per-packet benchmarks run: a policy of any number of users and
//! CIDRs, loaded into a dataplane of its own, and a fixed set of packets.

use policy_common::{ClassRule, USER_UNIDENTIFIED, field, v4_mapped};
use policyd::{
    dataplane::{Capacity, Dataplane, Pins, TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM, XDP_PROGRAM},
    policy::{self, CompiledPolicy, CompiledUser},
};
use policyd_tests::packet::*;

/// A policy with `users` users at 10.x.y.z, `cidrs` remote CIDRs in one set
/// that a class matches, and a handful of port classes.
pub(crate) fn policy(users: u32, cidrs: u32) -> CompiledPolicy {
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
    // Users 2-4 (when there are that many) keep their reference actions:
    // denied, limited far above the test's rate, limited far below it.
    p.actions = reference
        .actions
        .into_iter()
        .filter(|(k, _)| (2..=4).contains(&k.subject) && k.subject <= users)
        .collect();
    // The baseline's elephant detection: every packet with ports is
    // tracked, into the bulk class past 100 MiB.
    p.config.elephant_bytes = reference.config.elephant_bytes;
    p.config.elephant_class = 3;
    p.config.rule_count = 3;
    p.config.present = p.present();
    p
}

/// Four users: the second denied, the third limited to a rate no test run
/// reaches, the fourth to one packet a second (so nearly every repeat is
/// over the limit); the baseline's elephant threshold; every other setting
/// at its default.
fn reference_policy() -> CompiledPolicy {
    let src = "[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\", ports = [21] }\n\
               elephant = \"100MiB\"\n\
               [[user]]\nname = \"u1\"\nips = [\"10.0.0.1\"]\n\
               [[user]]\nname = \"u2\"\nips = [\"10.0.0.2\"]\naction = \"deny\"\n\
               [[user]]\nname = \"u3\"\nips = [\"10.0.0.3\"]\naction = \"limit 100Gbit\"\n\
               [[user]]\nname = \"u4\"\nips = [\"10.0.0.4\"]\naction = \"limit 1pps burst 1\"\n";
    CompiledPolicy::compile(
        &policy::parse(std::path::Path::new("bench.toml"), src).expect("bench policy"),
    )
}

/// User `i`'s address: 10.0.0.1 is user 1.
pub(crate) fn user_addr(i: u32) -> [u8; 4] {
    let [_, a, b, c] = i.to_be_bytes();
    [10, a, b, c]
}

/// `p` loaded with the XDP program verified (each TC program costs the
/// verifier seconds, and only the cost table runs them).
pub(crate) fn load(p: &CompiledPolicy) -> Dataplane {
    load_programs(p, &[XDP_PROGRAM])
}

/// [`load`] with the TC programs verified too.
pub(crate) fn load_with_tc(p: &CompiledPolicy) -> Dataplane {
    load_programs(p, &[XDP_PROGRAM, TC_INGRESS_PROGRAM, TC_EGRESS_PROGRAM])
}

fn load_programs(p: &CompiledPolicy, programs: &[&'static str]) -> Dataplane {
    let mut dp = Dataplane::load_programs(Capacity::default().fit(p), Pins::ephemeral(), programs)
        .expect("load (are you root?)");
    dp.apply(p).expect("apply");
    dp
}

/// What policyd does with a packet of the cost table: the goals
/// are set per treatment.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Treatment {
    Allowed,
    Denied,
    LimitedConforming,
    LimitedOver,
}

pub(crate) fn packets() -> Vec<(&'static str, Treatment, Vec<u8>)> {
    let user = user_addr(1);
    vec![
        (
            "IPv4 UDP",
            Treatment::Allowed,
            eth(
                ETH_P_IP,
                &ipv4(user, [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "IPv6 TCP",
            Treatment::Allowed,
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
            Treatment::Denied,
            eth(
                ETH_P_IP,
                &ipv4(user_addr(2), [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "IPv4 UDP, limited user, conforming",
            Treatment::LimitedConforming,
            eth(
                ETH_P_IP,
                &ipv4(user_addr(3), [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "IPv4 UDP, limited user, over the limit",
            Treatment::LimitedOver,
            eth(
                ETH_P_IP,
                &ipv4(user_addr(4), [192, 0, 2, 1], 17, &udp(40000, 443, &[0; 64])),
            ),
        ),
        (
            "802.1Q IPv4 TCP",
            Treatment::Allowed,
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

/// The `i`th CIDR of the set: consecutive /24s from 64.0.0.0 (100 000 of
/// them end in 65.134.159.0/24).
fn cidr(i: u32) -> [u8; 4] {
    (0x4000_0000 + (i << 8)).to_be_bytes()
}

/// An address in the last CIDR of a set of `n`: the lookup walks the trie
/// down to a leaf (a destination outside every prefix stops near the root).
pub(crate) fn in_last_cidr(n: u32) -> [u8; 4] {
    let [a, b, c, _] = cidr(n.saturating_sub(1));
    [a, b, c, 9]
}
