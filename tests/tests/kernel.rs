//! The kernel programs on crafted packets, through `BPF_PROG_TEST_RUN`: exact
//! verdicts and exact counter changes. Needs root (CAP_BPF).

mod common;

use common::*;
use policy_common::{Counters, Event, event_kind, global_counter};
use policyd_tests::packet::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V {
    Pass,
    Deny,
    Limit,
    Monitor,
}

impl Kernel {
    /// Runs `frame` through XDP and checks the verdict and that exactly the
    /// (user, class, dir) counter for that verdict moved, by one packet of
    /// the frame's length.
    fn expect(&self, frame: &[u8], user: &str, class: &str, direction: u8, v: V) {
        let want = if matches!(v, V::Pass | V::Monitor) {
            XDP_PASS
        } else {
            XDP_DROP
        };
        self.expect_with(
            || self.run(frame),
            want,
            frame.len(),
            (user, class, direction),
            v,
        );
    }

    fn expect_with(
        &self,
        run: impl FnOnce() -> u32,
        want: u32,
        len: usize,
        (user, class, direction): (&str, &str, u8),
        v: V,
    ) {
        let before = self.counters(user, class, direction);
        assert_eq!(run(), want, "verdict for {user}/{class}: {v:?}");
        let after = self.counters(user, class, direction);
        let mut expected = before;
        let len = len as u64;
        let (p, b) = match v {
            V::Pass => (&mut expected.pass_packets, &mut expected.pass_bytes),
            V::Deny => (&mut expected.deny_packets, &mut expected.deny_bytes),
            V::Limit => (&mut expected.limit_packets, &mut expected.limit_bytes),
            V::Monitor => (&mut expected.monitor_packets, &mut expected.monitor_bytes),
        };
        *p += 1;
        *b += len;
        assert_eq!(after, expected, "counters of {user}/{class} ({v:?})");
    }
}

const IDENTITY: &str = r#"
[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]

[[user]]
name = "bob"
ips = ["10.1.0.0/16"]

[[user]]
name = "dave"
ips = ["10.1.2.0/24"]
action = "deny"

[[user]]
name = "carol"
ips = ["2001:db8:c::/48"]
action = "deny"
"#;

const ALICE4: [u8; 4] = [10, 0, 0, 2];
const BOB4: [u8; 4] = [10, 1, 9, 9];
const DAVE4: [u8; 4] = [10, 1, 2, 77];
const STRANGER4: [u8; 4] = [10, 0, 0, 3];
const REMOTE4: [u8; 4] = [192, 0, 2, 1];

fn v6(third: u8, last: u8) -> [u8; 16] {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, third, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 17, &udp(sport, dport, &vec![0; len])),
    )
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 6, &tcp(sport, dport, 0x10, &[0; 10])),
    )
}

#[test]
fn ipv4_exact_cidr_and_longest_prefix() {
    let k = Kernel::new(IDENTITY);
    k.expect(&udp4_frame(ALICE4, 100), "alice", "default", UP, V::Pass);
    k.expect(&udp4_frame(BOB4, 10), "bob", "default", UP, V::Pass);
    // dave's /24 lies inside bob's /16: the longer prefix decides.
    k.expect(&udp4_frame(DAVE4, 10), "dave", "default", UP, V::Deny);
    k.expect(
        &udp4_frame(STRANGER4, 10),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
    assert_eq!(k.global(global_counter::UNIDENTIFIED), 1);
}

#[test]
fn ipv6_exact_and_cidr() {
    let k = Kernel::new(IDENTITY);
    k.expect(
        &udp6_frame(v6(0x0a, 2), 64),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &udp6_frame(v6(0x0c, 0x34), 64),
        "carol",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &udp6_frame(v6(0x0b, 2), 64),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
}

#[test]
fn vlan_and_qinq_tagged_traffic_is_enforced_like_untagged() {
    let k = Kernel::new(IDENTITY);
    let one = [ETH_P_8021Q];
    let qinq = [ETH_P_8021AD, ETH_P_8021Q];
    k.expect(
        &vlan_tagged(&udp4_frame(DAVE4, 10), &one),
        "dave",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &vlan_tagged(&udp4_frame(ALICE4, 10), &one),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &vlan_tagged(&udp4_frame(DAVE4, 10), &qinq),
        "dave",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &vlan_tagged(&udp6_frame(v6(0x0c, 9), 8), &qinq),
        "carol",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &vlan_tagged(&udp6_frame(v6(0x0a, 2), 8), &qinq),
        "alice",
        "default",
        UP,
        V::Pass,
    );
}

#[test]
fn non_ip_frames_pass_and_are_counted() {
    let k = Kernel::new(IDENTITY);
    let arp = eth(ETH_P_ARP, &[0u8; 28]);
    // A third tag is deeper than any real frame: not parsed, so not IP.
    let three_tags = vlan_tagged(
        &udp4_frame(DAVE4, 10),
        &[ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q],
    );
    for frame in [&arp, &three_tags] {
        let before = k.global(global_counter::NON_IP);
        assert_eq!(k.run(frame), XDP_PASS);
        assert_eq!(k.global(global_counter::NON_IP), before + 1);
    }
    assert_eq!(k.counters("dave", "default", UP), Counters::default());
    assert_eq!(k.global(global_counter::MALFORMED), 0);
}

/// Cuts a denied user's frame at every length the test run accepts (it needs
/// at least an Ethernet header): shorter than the headers up to the ports,
/// it is malformed and passes; from there on the user is known and dropped.
fn truncations(k: &Kernel, frame: &[u8], ports_end: usize, user: &str) {
    for len in 14..=frame.len() {
        let cut = &frame[..len];
        let malformed = k.global(global_counter::MALFORMED);
        if len < ports_end {
            let counters = k.counters(user, "default", UP);
            assert_eq!(k.run(cut), XDP_PASS, "frame cut at {len} bytes");
            assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed + 1,
                "cut at {len}"
            );
            assert_eq!(k.counters(user, "default", UP), counters, "cut at {len}");
        } else {
            k.expect(cut, user, "default", UP, V::Deny);
            assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed,
                "cut at {len}"
            );
        }
    }
}

#[test]
fn truncated_frames_at_every_offset() {
    let k = Kernel::new(IDENTITY);
    truncations(&k, &udp4_frame(DAVE4, 20), 14 + 20 + 4, "dave");
    truncations(&k, &udp6_frame(v6(0x0c, 1), 20), 14 + 40 + 4, "carol");
    let tagged = vlan_tagged(&udp4_frame(DAVE4, 20), &[ETH_P_8021AD, ETH_P_8021Q]);
    truncations(&k, &tagged, 22 + 20 + 4, "dave");
    let ext = eth(
        ETH_P_IPV6,
        &ipv6_with_ext(v6(0x0c, 1), v6(0xff, 1), &[0, 60], 6, &tcp(1, 2, 0, &[])),
    );
    truncations(&k, &ext, 14 + 40 + 16 + 4, "carol");
}

#[test]
fn malformed_frames_can_be_dropped() {
    let k = Kernel::new("[settings]\nmalformed = \"drop\"\n");
    assert_eq!(k.run(&udp4_frame(ALICE4, 20)[..30]), XDP_DROP);
    assert_eq!(k.global(global_counter::MALFORMED), 1);
    assert_eq!(
        k.run(&eth(ETH_P_ARP, &[0u8; 28])),
        XDP_PASS,
        "non-IP is not malformed"
    );
}

#[test]
fn invalid_ip_headers_are_malformed() {
    let k = Kernel::new(IDENTITY);
    let mut bad_ihl = udp4_frame(DAVE4, 20);
    bad_ihl[14] = 0x44;
    let mut long_ihl = udp4_frame(DAVE4, 4);
    long_ihl[14] = 0x4f;
    let mut wrong_version = udp4_frame(DAVE4, 20);
    wrong_version[14] = 0x65;
    let mut v6_wrong_version = udp6_frame(v6(0x0c, 1), 20);
    v6_wrong_version[14] = 0x40;
    for (what, frame) in [
        ("IHL below 5", bad_ihl),
        ("IHL past the end", long_ihl),
        ("IPv4 EtherType, version 6", wrong_version),
        ("IPv6 EtherType, version 4", v6_wrong_version),
    ] {
        let before = k.global(global_counter::MALFORMED);
        assert_eq!(k.run(&frame), XDP_PASS, "{what}");
        assert_eq!(k.global(global_counter::MALFORMED), before + 1, "{what}");
    }
    assert_eq!(k.counters("dave", "default", UP), Counters::default());
}

#[test]
fn ipv4_options_are_skipped() {
    let k = Kernel::new(IDENTITY);
    let mut ip = ipv4(DAVE4, REMOTE4, 17, &[]);
    ip[0] = 0x46;
    ip.extend_from_slice(&[1, 1, 1, 1]);
    ip.extend_from_slice(&udp(1, 2, &[0; 8]));
    k.expect(&eth(ETH_P_IP, &ip), "dave", "default", UP, V::Deny);
}

#[test]
fn unidentified_senders_can_be_denied() {
    let k = Kernel::new(
        "[unidentified]\naction = \"deny\"\n[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n",
    );
    k.expect(
        &udp4_frame(STRANGER4, 10),
        "unidentified",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &udp6_frame(v6(0x0c, 1), 10),
        "unidentified",
        "default",
        UP,
        V::Deny,
    );
    k.expect(&udp4_frame(ALICE4, 10), "alice", "default", UP, V::Pass);
}

const CLASSES: &str = r#"
[sets]
webmail = ["203.0.113.0/24", "2001:db8:ffff::/48"]

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[class]]
name = "mail"
match = { proto = "tcp", ports = [25, 587] }

[[class]]
name = "ssh-out"
match = { proto = "tcp", user_ports = [22] }

[[class]]
name = "dns"
match = { proto = "udp", ports = ["53-54"] }

[[class]]
name = "broadcast"
match = { l2 = "broadcast-or-multicast" }

[[class]]
name = "ping"
match = { proto = "icmp", icmp_type = 8 }

[[class]]
name = "ef"
match = { dscp = 46 }

[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]

[[rule]]
class = "webmail"
action = "deny"
"#;

#[test]
fn classes_first_match_wins() {
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
    let k = Kernel::new(CLASSES);
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
fn fragments_without_ports_fall_through_port_rules() {
    let k = Kernel::new(CLASSES);
    // The first fragment carries the TCP header: classified by port.
    let first = eth(
        ETH_P_IP,
        &ipv4_fragment(ALICE4, REMOTE4, 6, 0x2000, &tcp(40000, 25, 0, &[0; 16])),
    );
    k.expect(&first, "alice", "mail", UP, V::Pass);
    // A later fragment has no ports: port rules cannot match it.
    let later = eth(
        ETH_P_IP,
        &ipv4_fragment(ALICE4, REMOTE4, 6, 0x0003, &[0; 24]),
    );
    k.expect(&later, "alice", "default", UP, V::Pass);
    // But address rules still do.
    let later_web = eth(
        ETH_P_IP,
        &ipv4_fragment(ALICE4, [203, 0, 113, 1], 6, 0x0003, &[0; 24]),
    );
    k.expect(&later_web, "alice", "webmail", UP, V::Deny);
    // IPv6: a fragment header with a non-zero offset.
    let mut v6later = ipv6_with_ext(v6(0x0a, 2), v6(0x0b, 1), &[44], 6, &[0; 24]);
    v6later[40 + 2] = 0x01; // offset 32 (in 8-byte units: 0x0100 >> 3)
    k.expect(&eth(ETH_P_IPV6, &v6later), "alice", "default", UP, V::Pass);
}

#[test]
fn ipv6_extension_headers_are_followed_to_the_ports() {
    let k = Kernel::new(CLASSES);
    for exts in [
        &[0u8][..],
        &[0, 60],
        &[0, 43, 60],
        &[51],
        &[44, 60],
        &[0, 43, 44, 60],
    ] {
        let pkt = ipv6_with_ext(v6(0x0a, 2), v6(0x0b, 1), exts, 6, &tcp(40000, 587, 0, &[]));
        k.expect(&eth(ETH_P_IPV6, &pkt), "alice", "mail", UP, V::Pass);
    }
    // Five headers: more than the parser follows; counted, no ports.
    let deep = ipv6_with_ext(
        v6(0x0a, 2),
        v6(0x0b, 1),
        &[0, 60, 43, 60, 60],
        6,
        &tcp(40000, 587, 0, &[]),
    );
    k.expect(&eth(ETH_P_IPV6, &deep), "alice", "default", UP, V::Pass);
    assert_eq!(k.global(global_counter::EXT_HEADERS_DEEP), 1);
}

#[test]
fn monitor_mode_drops_nothing_and_counts_what_it_would_drop() {
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

const RULES: &str = r#"
[schedule.business]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "17:00"

[[class]]
name = "bulk"
match = { proto = "tcp", ports = [21] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]
group = "finance"

[[user]]
name = "bob"
ips = ["10.0.0.3"]
group = "finance"

[[user]]
name = "carol"
ips = ["10.0.0.4"]

[[rule]]
class = "bulk"
action = "monitor"

[[rule]]
class = "bulk"
group = "finance"
business = "deny"
off_hours = "allow"

[[rule]]
class = "bulk"
user = "bob"
action = "allow"
"#;

#[test]
fn user_beats_group_beats_everyone_per_profile() {
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
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 8Mbit burst 3000 no-ecn\"\n",
    );
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
fn spoofed_sources_are_dropped_counted_and_reported() {
    let mut k = Kernel::new(
        r#"
[[user]]
name = "alice"
ips = ["10.0.0.2"]
macs = ["02:00:00:00:00:aa"]
[[user]]
name = "eve"
ips = ["10.0.0.9"]
"#,
    );
    let mut events = k.dp.take_events().unwrap();
    let from = |mac| {
        eth_macs(
            DST_MAC,
            mac,
            ETH_P_IP,
            &ipv4(ALICE4, REMOTE4, 17, &udp(1, 2, &[0; 8])),
        )
    };
    k.expect(
        &from([2, 0, 0, 0, 0, 0xaa]),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    // eve's machine claims alice's address.
    for _ in 0..3 {
        k.expect(
            &from([2, 0, 0, 0, 0, 0xee]),
            "alice",
            "default",
            UP,
            V::Deny,
        );
    }
    assert_eq!(k.global(global_counter::SPOOFED), 3);
    let mut got = Vec::new();
    while let Some(item) = events.next() {
        // SAFETY: the kernel writes whole Events.
        got.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
    }
    assert_eq!(
        got.len(),
        1,
        "one event per user and kind per interval: {got:?}"
    );
    assert_eq!(got[0].kind, event_kind::SPOOF);
    assert_eq!(got[0].user, k.user_id("alice"));
    assert_eq!(&got[0].src_mac[..6], &[2, 0, 0, 0, 0, 0xee]);
}

#[test]
fn a_mac_identifies_its_user_whatever_the_address() {
    let k = Kernel::new(
        "[[user]]\nname = \"printer\"\nmacs = [\"02:00:00:00:00:77\"]\naction = \"deny\"\n",
    );
    let frame = eth_macs(
        DST_MAC,
        [2, 0, 0, 0, 0, 0x77],
        ETH_P_IP,
        &ipv4([10, 9, 9, 9], REMOTE4, 17, &udp(1, 2, &[])),
    );
    k.expect(&frame, "printer", "default", UP, V::Deny);
}

#[test]
fn deny_events_are_rate_limited_per_user() {
    let mut k = Kernel::new(IDENTITY);
    let mut events = k.dp.take_events().unwrap();
    for _ in 0..50 {
        k.run(&udp4_frame(DAVE4, 10));
        k.run(&udp6_frame(v6(0x0c, 1), 10));
    }
    let mut got = Vec::new();
    while let Some(item) = events.next() {
        // SAFETY: the kernel writes whole Events.
        got.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
    }
    let mut users: Vec<u32> = got.iter().map(|e| e.user).collect();
    users.sort_unstable();
    assert_eq!(
        users,
        [k.user_id("dave"), k.user_id("carol")],
        "one deny event each"
    );
    assert!(got.iter().all(|e| e.kind == event_kind::DENY));
    assert_eq!(k.global(global_counter::EVENTS_LOST), 0);
}

#[test]
fn elephant_flows_become_bulk() {
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

#[test]
fn limits_can_hand_downloads_to_an_htb_class_instead_of_policing() {
    let k = Kernel::new(
        "[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\naction = \"limit 10pps burst 1 htb 1:10\"\n",
    );
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
