//! Actions: user, group and everyone per profile, packet and byte limits,
//! class aggregates, ECN marking, HTB hand-off, monitor mode.

use super::*;

#[test]
fn monitor_mode_drops_nothing_and_counts_what_it_would_drop() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(&format!("[settings]\nmode = \"monitor\"\n{CLASSES}"));
    k.expect(
        &tcp4(ALICE4, [203, 0, 113, 9], 40000, 443),
        "alice",
        "webmail",
        UP,
        V::Monitor,
    );
    let k = Kernel::new(&CLASSES.replace("action = \"deny\"", "action = \"monitor\""));
    k.expect(
        &tcp4(ALICE4, [203, 0, 113, 9], 40000, 443),
        "alice",
        "webmail",
        UP,
        V::Monitor,
    );
}

#[test]
fn user_beats_group_beats_everyone_per_profile() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(RULES);
    let bulk = |src| tcp4(src, REMOTE4, 40000, 21);
    k.expect(&bulk(ALICE4), "alice", "bulk", UP, V::Deny);
    k.expect(&bulk([10, 0, 0, 3]), "bob", "bulk", UP, V::Pass);
    k.expect(&bulk([10, 0, 0, 4]), "carol", "bulk", UP, V::Monitor);
    let mut k = k;
    // Switching the profile is one store; every profile is preloaded.
    k.dp.set_profile(k.policy.profile("off_hours").unwrap())
        .unwrap();
    k.expect(&bulk(ALICE4), "alice", "bulk", UP, V::Pass);
    k.expect(&bulk([10, 0, 0, 4]), "carol", "bulk", UP, V::Monitor);
}

#[test]
fn packet_rate_limit_passes_exactly_the_burst() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 10pps burst 5\"\n",
    );
    // 10 pps is one packet per 100 ms: a quick run of 20 packets gets the
    // burst of 5 and nothing more.
    let frame = udp4_frame(ALICE4, 10);
    for i in 0..20 {
        let v = if i < 5 { V::Pass } else { V::Limit };
        k.expect(&frame, "alice", "default", UP, v);
    }
}

#[test]
fn byte_rate_limit_passes_exactly_the_burst() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 8Mbit burst 3000 no-ecn\"\n",
    ).with_tc();
    // 1 MB/s; 1000-byte frames: a burst of 3000 bytes is three of them.
    let frame = udp4_frame(ALICE4, 1000 - 42);
    assert_eq!(frame.len(), 1000);
    for i in 0..10 {
        k.expect(
            &frame,
            "alice",
            "default",
            UP,
            if i < 3 { V::Pass } else { V::Limit },
        );
    }
    // Another user, another bucket; another direction, another bucket.
    let down = eth(ETH_P_IP, &ipv4(REMOTE4, ALICE4, 17, &udp(1, 2, &[0; 958])));
    for i in 0..4 {
        let (want, v) = if i < 3 {
            (TC_ACT_OK, V::Pass)
        } else {
            (TC_ACT_SHOT, V::Limit)
        };
        k.expect_with(
            || k.run_tc(true, &down),
            want,
            down.len(),
            ("alice", "default", DOWN),
            v,
        );
    }
}

#[test]
fn class_aggregate_limits_all_users_together() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        r#"
[[class]]
name = "bulk"
match = { proto = "udp", ports = [9] }
[[user]]
name = "alice"
ips = ["10.0.0.2"]
[[user]]
name = "bob"
ips = ["10.0.0.3"]
[[rule]]
class = "bulk"
aggregate = true
action = "limit 10pps burst 4"
"#,
    );
    let a = udp4(ALICE4, REMOTE4, 1, 9, 8);
    let b = udp4([10, 0, 0, 3], REMOTE4, 1, 9, 8);
    for v in [V::Pass, V::Pass] {
        k.expect(&a, "alice", "bulk", UP, v);
        k.expect(&b, "bob", "bulk", UP, v);
    }
    k.expect(&a, "alice", "bulk", UP, V::Limit);
    k.expect(&b, "bob", "bulk", UP, V::Limit);
    let class_limit = policy_common::drop_reason::CLASS_LIMIT;
    assert_eq!(k.dropped("alice", "bulk", UP, class_limit), 1);
    assert_eq!(k.dropped("bob", "bulk", UP, class_limit), 1);
    // Other classes are not affected.
    k.expect(
        &udp4(ALICE4, REMOTE4, 1, 10, 8),
        "alice",
        "default",
        UP,
        V::Pass,
    );
}

#[test]
fn ecn_capable_packets_are_marked_before_anything_is_dropped() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\", \"2001:db8:a::2\"]\naction = \"limit 8Mbit burst 10000\"\n",
    );
    // 1000-byte ECT(0) frames: the first 5 use up to half the burst and pass
    // untouched; the next 5 pass with CE set; then the limit drops.
    let mut frame = udp4_frame(ALICE4, 1000 - 42);
    set_tos(&mut frame, 0, 2);
    for i in 0..12 {
        let (verdict, out) = k.run_out(&frame);
        match i {
            0..5 => {
                assert_eq!(verdict, XDP_PASS, "packet {i}");
                assert_eq!(out[15] & 3, 2, "packet {i} unmarked");
            }
            5..10 => {
                assert_eq!(verdict, XDP_PASS, "packet {i}");
                assert_eq!(out[15] & 3, 3, "packet {i} CE");
                assert!(ipv4_checksum_ok(&out, 14), "checksum after marking {i}");
            }
            _ => assert_eq!(verdict, XDP_DROP, "packet {i}"),
        }
    }
    let c = k.counters("alice", "default", UP);
    assert_eq!(
        (c.pass_packets, c.ecn_marked_packets, c.limit_packets),
        (10, 5, 2)
    );
    // Not ECN-capable: never marked, dropped when over.
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 8Mbit burst 10000\"\n",
    );
    let plain = udp4_frame(ALICE4, 1000 - 42);
    for _ in 0..10 {
        let (_, out) = k.run_out(&plain);
        assert_eq!(out[15] & 3, 0);
    }
    assert_eq!(k.counters("alice", "default", UP).ecn_marked_packets, 0);
    // IPv6: traffic class bits.
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"2001:db8:a::2\"]\naction = \"limit 8Mbit burst 10000\"\n",
    );
    let mut f6 = udp6_frame(v6(0x0a, 2), 1000 - 62);
    set_tos(&mut f6, 0, 1);
    let marks: Vec<u8> = (0..10).map(|_| (k.run_out(&f6).1[15] >> 4) & 3).collect();
    assert_eq!(marks, [1, 1, 1, 1, 1, 3, 3, 3, 3, 3]);
}

#[test]
fn limits_can_hand_downloads_to_an_htb_class_instead_of_policing() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 10pps burst 1 htb 1:10\"\n",
    ).with_tc();
    // Far over 10 pps, yet nothing is dropped on TC egress: every packet
    // leaves with priority 1:10 (0x00010010) for the HTB qdisc to queue.
    let down = eth(ETH_P_IP, &ipv4(REMOTE4, ALICE4, 17, &udp(1, 2, &[0; 64])));
    for _ in 0..20 {
        assert_eq!(k.run_tc_egress_priority(&down), (TC_ACT_OK, 0x0001_0010));
    }
    assert_eq!(k.counters("alice", "default", DOWN).pass_packets, 20);
    // XDP cannot hand off: there the same limit polices.
    let up = udp4_frame(ALICE4, 10);
    k.expect(&up, "alice", "default", UP, V::Pass);
    k.expect(&up, "alice", "default", UP, V::Limit);
    // Another user's downloads keep priority 0.
    let other = eth(
        ETH_P_IP,
        &ipv4(REMOTE4, STRANGER4, 17, &udp(1, 2, &[0; 64])),
    );
    assert_eq!(k.run_tc_egress_priority(&other), (TC_ACT_OK, 0));
}
