//! Classification: ordered classes, downloads by the remote end, elephants.

use std::path::Path;

use policyd::policy::{self, CompiledPolicy};

use super::*;

#[test]
fn classes_first_match_wins() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(CLASSES);
    let web = [203, 0, 113, 9];
    // The set rule comes first, so even mail to webmail is webmail.
    k.expect(
        &tcp4(ALICE4, web, 40000, 25),
        "alice",
        "webmail",
        UP,
        V::Deny,
    );
    k.expect(
        &tcp4(ALICE4, REMOTE4, 40000, 587),
        "alice",
        "mail",
        UP,
        V::Pass,
    );
    k.expect(
        &tcp4(ALICE4, REMOTE4, 40000, 26),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &udp4(ALICE4, REMOTE4, 40000, 54, 8),
        "alice",
        "dns",
        UP,
        V::Pass,
    );
    k.expect(
        &udp4(ALICE4, REMOTE4, 40000, 55, 8),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    // UDP to port 25 is not mail (the rule says tcp).
    k.expect(
        &udp4(ALICE4, REMOTE4, 40000, 25, 8),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    // user_ports: alice's own port 22 (her ssh server answering).
    k.expect(
        &tcp4(ALICE4, REMOTE4, 22, 50000),
        "alice",
        "ssh-out",
        UP,
        V::Pass,
    );
    let bcast = eth_macs(
        BROADCAST_MAC,
        SRC_MAC,
        ETH_P_IP,
        &ipv4(ALICE4, [10, 0, 0, 255], 17, &udp(1, 2, &[])),
    );
    k.expect(&bcast, "alice", "broadcast", UP, V::Pass);
    let mcast = eth_macs(
        [0x01, 0, 0x5e, 0, 0, 1],
        SRC_MAC,
        ETH_P_IP,
        &ipv4(ALICE4, [224, 0, 0, 1], 17, &udp(1, 2, &[])),
    );
    k.expect(&mcast, "alice", "broadcast", UP, V::Pass);
    k.expect(
        &eth(ETH_P_IP, &ipv4(ALICE4, REMOTE4, 1, &icmp(8))),
        "alice",
        "ping",
        UP,
        V::Pass,
    );
    k.expect(
        &eth(ETH_P_IP, &ipv4(ALICE4, REMOTE4, 1, &icmp(0))),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    let mut ef = udp4(ALICE4, REMOTE4, 1, 9, 8);
    set_tos(&mut ef, 46, 0);
    k.expect(&ef, "alice", "ef", UP, V::Pass);
    // IPv6 remote in the set.
    let v6web = eth(
        ETH_P_IPV6,
        &ipv6(
            v6(0x0a, 2),
            [0x20, 1, 0xd, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            17,
            &udp(1, 2, &[]),
        ),
    );
    k.expect(&v6web, "alice", "webmail", UP, V::Deny);
}

#[test]
fn downloads_are_classified_by_the_remote_end() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(CLASSES).with_tc();
    // On TC egress of a users-facing interface, traffic goes *to* the user:
    // the destination identifies her, the source is the remote end.
    let down = |frame: &[u8], class: &str, v: V, verdict: u32| {
        k.expect_with(
            || k.run_tc(true, frame),
            verdict,
            frame.len(),
            ("alice", class, DOWN),
            v,
        );
    };
    down(
        &tcp4(REMOTE4, ALICE4, 587, 40000),
        "mail",
        V::Pass,
        TC_ACT_OK,
    );
    down(
        &tcp4([203, 0, 113, 9], ALICE4, 443, 40000),
        "webmail",
        V::Deny,
        TC_ACT_SHOT,
    );
    down(
        &udp4(REMOTE4, ALICE4, 53, 40000, 8),
        "dns",
        V::Pass,
        TC_ACT_OK,
    );
    // TC ingress sees uploads, like XDP.
    let frame = tcp4(ALICE4, [203, 0, 113, 9], 40000, 443);
    k.expect_with(
        || k.run_tc(false, &frame),
        TC_ACT_SHOT,
        frame.len(),
        ("alice", "webmail", UP),
        V::Deny,
    );
}

#[test]
fn elephant_flows_become_bulk() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        r#"
[[class]]
name = "bulk"
elephant = "3000B"

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[rule]]
class = "bulk"
action = "deny"
"#,
    );
    let flow = udp4(ALICE4, REMOTE4, 40000, 443, 958);
    let other = udp4(ALICE4, REMOTE4, 40001, 443, 958);
    // 1000-byte frames: after three (3000 bytes, not more than 3000) comes
    // the fourth (still default); from the fifth on the flow is an elephant.
    for _ in 0..4 {
        k.expect(&flow, "alice", "default", UP, V::Pass);
    }
    k.expect(&flow, "alice", "bulk", UP, V::Deny);
    k.expect(&flow, "alice", "bulk", UP, V::Deny);
    // Another flow of the same user is still small.
    k.expect(&other, "alice", "default", UP, V::Pass);
}

/// Ageing halves every cell of the sketch (the daemon does it every
/// minute): a flow's estimate falls by half, so it takes longer to become
/// an elephant; a reset empties it.
#[test]
fn the_sketch_ages_by_halves() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(
        "[[class]]\nname = \"bulk\"\nelephant = \"3000B\"\n\
         [[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n\
         [[rule]]\nclass = \"bulk\"\naction = \"deny\"\n",
    );
    let flow = udp4(ALICE4, REMOTE4, 40000, 443, 958);
    for _ in 0..3 {
        k.expect(&flow, "alice", "default", UP, V::Pass);
    }
    let sketch = k.dp.flow_sketch();
    let (used, all) = sketch.occupancy().unwrap();
    assert_eq!(used, 2, "one cell per row");
    assert_eq!(all, 2 * 65_536);
    // 3000 bytes become 1500: the next two frames see 1500 and 2500 (not
    // past 3000), the third 3500. Without ageing the second would be bulk
    // (elephant_flows_become_bulk).
    sketch.decay().unwrap();
    k.expect(&flow, "alice", "default", UP, V::Pass);
    k.expect(&flow, "alice", "default", UP, V::Pass);
    k.expect(&flow, "alice", "bulk", UP, V::Deny);
    k.dp.reset_state().unwrap();
    assert_eq!(sketch.occupancy().unwrap().0, 0);
    k.expect(&flow, "alice", "default", UP, V::Pass);
}

/// The set prefilter follows reloads: each generation's bits are rewritten
/// (only the words that change), so an address a set no longer holds
/// falls back to `default`, and one it now holds is found, also when a
/// generation comes back into use.
#[test]
fn set_membership_follows_reloads() {
    let _timing = crate::rates::shared();
    let policy = |net: &str| {
        format!(
            "[sets]\nwebmail = [\"{net}\"]\n[[class]]\nname = \"webmail\"\nmatch = {{ sets = [\"webmail\"] }}\n\
             [[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n[[rule]]\nclass = \"webmail\"\naction = \"deny\"\n"
        )
    };
    let to = |dst: [u8; 4]| {
        eth(
            ETH_P_IP,
            &ipv4([10, 0, 0, 2], dst, 17, &udp(40000, 443, &[])),
        )
    };
    let compile =
        |src: &str| CompiledPolicy::compile(&policy::parse(Path::new("t.toml"), src).unwrap());
    let mut k = Kernel::new(&policy("203.0.113.0/24"));
    k.expect(&to([203, 0, 113, 5]), "alice", "webmail", UP, V::Deny);
    k.expect(&to([198, 51, 100, 5]), "alice", "default", UP, V::Pass);
    for (net, inside, outside) in [
        ("198.51.100.0/24", [198, 51, 100, 5], [203, 0, 113, 5]),
        ("203.0.113.0/24", [203, 0, 113, 5], [198, 51, 100, 5]),
        ("0.0.0.0/1", [10, 9, 9, 9], [203, 0, 113, 5]),
    ] {
        let next = k.dp.assign_ids(&compile(&policy(net))).unwrap();
        k.dp.apply(&next).unwrap();
        k.policy = next;
        k.expect(&to(inside), "alice", "webmail", UP, V::Deny);
        k.expect(&to(outside), "alice", "default", UP, V::Pass);
    }
}

/// `n` classes for alice, class `cI` for TCP to remote port 1000 + I:
/// one kernel rule each.
fn port_classes(n: u32) -> String {
    let mut src = String::from("[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n");
    for i in 1..=n {
        src += &format!(
            "[[class]]\nname = \"c{i}\"\nmatch = {{ proto = \"tcp\", ports = [{}] }}\n",
            1000 + i
        );
    }
    src
}

fn compile(src: &str) -> CompiledPolicy {
    CompiledPolicy::compile(&policy::parse(Path::new("test.toml"), src).unwrap())
}

/// The kernel's rule loop is verified for the rule slots the load chose
/// (policy-common's `rule_slots`): every rule of the policy is reached, and
/// a reload needing more slots is refused with the old policy in force.
#[test]
fn the_rule_loop_reaches_every_rule_and_a_reload_past_its_slots_is_refused() {
    let to_port = |port: u16| tcp4(ALICE4, REMOTE4, 40000, port);
    let mut k = Kernel::new(&port_classes(12));
    assert_eq!(k.policy.class_rules.len(), 12);
    assert_eq!(k.dp.capacity().rules, 16);
    k.expect(&to_port(1012), "alice", "c12", UP, V::Pass);
    k.expect(&to_port(1013), "alice", "default", UP, V::Pass);

    let refused = k.dp.apply(&compile(&port_classes(17))).unwrap_err();
    assert!(
        matches!(
            refused,
            policyd::dataplane::DataplaneError::TableFull {
                map: policy_common::MAP_CLASS_RULES,
                need: 17,
                capacity: 16,
                ..
            }
        ),
        "{refused}"
    );
    k.expect(&to_port(1012), "alice", "c12", UP, V::Pass);

    // Up to the slots, a reload fits: the 16th rule is reached.
    k.policy = compile(&port_classes(16));
    k.dp.apply(&k.policy).unwrap();
    k.expect(&to_port(1016), "alice", "c16", UP, V::Pass);

    // A policy of 60 rules gets all 64 slots, and its last rule matches.
    let k = Kernel::new(&port_classes(60));
    assert_eq!(k.dp.capacity().rules, policy_common::MAX_CLASS_RULES);
    k.expect(&to_port(1060), "alice", "c60", UP, V::Pass);
    k.expect(&to_port(1061), "alice", "default", UP, V::Pass);
}
