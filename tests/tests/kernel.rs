//! The XDP program on crafted packets, through `BPF_PROG_TEST_RUN`: exact
//! verdicts and exact counter changes. Needs root (CAP_BPF).

use std::path::Path;

use aya::programs::{TestRun as _, TestRunOptions};
use policy_common::{USER_UNIDENTIFIED, UserCounters, global_counter};
use policyd::{
    dataplane::{Capacity, Dataplane},
    policy::{self, CompiledPolicy},
};
use policyd_tests::packet::*;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const POLICY: &str = r#"
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

struct Kernel {
    dp: Dataplane,
    policy: CompiledPolicy,
}

impl Kernel {
    fn new(src: &str) -> Self {
        let policy = CompiledPolicy::compile(&policy::parse(Path::new("test.toml"), src).unwrap());
        let mut dp = Dataplane::load(Capacity::for_policy(&policy))
            .expect("loading the XDP program (are you root?)");
        dp.apply(&policy).unwrap();
        Self { dp, policy }
    }

    fn run(&self, frame: &[u8]) -> u32 {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        self.dp.xdp().unwrap().test_run(opts).unwrap().return_value
    }

    fn user(&self, name: &str) -> UserCounters {
        let id = if name == "unidentified" {
            USER_UNIDENTIFIED
        } else {
            self.policy.user(name).unwrap().id
        };
        self.dp.counters().user(id).unwrap()
    }

    fn global(&self, index: u32) -> u64 {
        self.dp.counters().global(index).unwrap()
    }

    /// Runs `frame` and checks the verdict and that exactly `user`'s counter
    /// for that verdict moved, by one packet of the frame's length.
    fn expect(&self, frame: &[u8], user: &str, verdict: u32) {
        let before = self.user(user);
        assert_eq!(self.run(frame), verdict, "verdict for a frame from {user}");
        let after = self.user(user);
        let len = frame.len() as u64;
        let mut want = before;
        if verdict == XDP_PASS {
            want.passed_packets += 1;
            want.passed_bytes += len;
        } else {
            want.dropped_packets += 1;
            want.dropped_bytes += len;
        }
        assert_eq!(after, want, "counters of {user}");
    }
}

const ALICE4: [u8; 4] = [10, 0, 0, 2];
const BOB4: [u8; 4] = [10, 1, 9, 9];
const DAVE4: [u8; 4] = [10, 1, 2, 77];
const STRANGER4: [u8; 4] = [10, 0, 0, 3];

fn v6(last_group: [u8; 2], third: u8) -> [u8; 16] {
    let mut a = [
        0x20, 0x01, 0x0d, 0xb8, 0, third, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    a[14..].copy_from_slice(&last_group);
    a
}

#[test]
fn ipv4_exact_cidr_and_longest_prefix() {
    let k = Kernel::new(POLICY);
    k.expect(&udp4_frame(ALICE4, 100), "alice", XDP_PASS);
    k.expect(&udp4_frame(BOB4, 10), "bob", XDP_PASS);
    // dave's /24 lies inside bob's /16: the longer prefix decides.
    k.expect(&udp4_frame(DAVE4, 10), "dave", XDP_DROP);
    k.expect(&udp4_frame(STRANGER4, 10), "unidentified", XDP_PASS);
    assert_eq!(k.user("bob").dropped_packets, 0);
}

#[test]
fn ipv6_exact_and_cidr() {
    let k = Kernel::new(POLICY);
    k.expect(&udp6_frame(v6([0, 2], 0x0a), 64), "alice", XDP_PASS);
    k.expect(&udp6_frame(v6([0x12, 0x34], 0x0c), 64), "carol", XDP_DROP);
    k.expect(&udp6_frame(v6([0, 2], 0x0b), 64), "unidentified", XDP_PASS);
}

#[test]
fn vlan_and_qinq_tagged_traffic_is_enforced_like_untagged() {
    let k = Kernel::new(POLICY);
    let one = [ETH_P_8021Q];
    let qinq = [ETH_P_8021AD, ETH_P_8021Q];
    k.expect(&vlan_tagged(&udp4_frame(DAVE4, 10), &one), "dave", XDP_DROP);
    k.expect(
        &vlan_tagged(&udp4_frame(ALICE4, 10), &one),
        "alice",
        XDP_PASS,
    );
    k.expect(
        &vlan_tagged(&udp4_frame(DAVE4, 10), &qinq),
        "dave",
        XDP_DROP,
    );
    k.expect(
        &vlan_tagged(&udp6_frame(v6([0, 9], 0x0c), 8), &qinq),
        "carol",
        XDP_DROP,
    );
    k.expect(
        &vlan_tagged(&udp6_frame(v6([0, 2], 0x0a), 8), &qinq),
        "alice",
        XDP_PASS,
    );
}

#[test]
fn non_ip_frames_pass_and_are_counted() {
    let k = Kernel::new(POLICY);
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
    assert_eq!(k.user("dave"), UserCounters::default());
    assert_eq!(k.global(global_counter::MALFORMED), 0);
}

/// Cuts a denied user's frame at every length the test run accepts (it needs
/// at least an Ethernet header): anything shorter than the network header is
/// malformed and passes; from there on the user is known and dropped.
fn truncations(k: &Kernel, frame: &[u8], l3_end: usize, user: &str) {
    for len in 14..=frame.len() {
        let cut = &frame[..len];
        let malformed = k.global(global_counter::MALFORMED);
        if len < l3_end {
            let counters = k.user(user);
            assert_eq!(k.run(cut), XDP_PASS, "frame cut at {len} bytes");
            assert_eq!(
                k.global(global_counter::MALFORMED),
                malformed + 1,
                "cut at {len}"
            );
            assert_eq!(
                k.user(user),
                counters,
                "cut at {len}: not accounted to {user}"
            );
        } else {
            k.expect(cut, user, XDP_DROP);
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
    let k = Kernel::new(POLICY);
    truncations(&k, &udp4_frame(DAVE4, 20), 14 + 20, "dave");
    truncations(&k, &udp6_frame(v6([0, 1], 0x0c), 20), 14 + 40, "carol");
    let tagged = vlan_tagged(&udp4_frame(DAVE4, 20), &[ETH_P_8021AD, ETH_P_8021Q]);
    truncations(&k, &tagged, 22 + 20, "dave");
}

#[test]
fn invalid_ip_headers_are_malformed() {
    let k = Kernel::new(POLICY);
    let mut bad_ihl = udp4_frame(DAVE4, 20);
    bad_ihl[14] = 0x44; // IHL 4 (< 5)
    let mut long_ihl = udp4_frame(DAVE4, 4);
    long_ihl[14] = 0x4f; // IHL 15: 60 bytes of header, more than the frame has
    let mut wrong_version = udp4_frame(DAVE4, 20);
    wrong_version[14] = 0x65;
    let mut v6_wrong_version = udp6_frame(v6([0, 1], 0x0c), 20);
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
    assert_eq!(k.user("dave"), UserCounters::default());
    assert_eq!(k.user("carol"), UserCounters::default());
}

#[test]
fn ipv4_options_are_accepted() {
    let k = Kernel::new(POLICY);
    // IHL 6: one 4-byte option word (NOPs) before the UDP header.
    let mut ip = ipv4(DAVE4, [192, 0, 2, 1], 17, &[]);
    ip[0] = 0x46;
    ip.extend_from_slice(&[1, 1, 1, 1]);
    ip.extend_from_slice(&udp(1, 2, &[0; 8]));
    k.expect(&eth(ETH_P_IP, &ip), "dave", XDP_DROP);
}

#[test]
fn unidentified_senders_can_be_denied() {
    let k = Kernel::new(
        "[unidentified]\naction = \"deny\"\n[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n",
    );
    k.expect(&udp4_frame(STRANGER4, 10), "unidentified", XDP_DROP);
    k.expect(&udp6_frame(v6([0, 1], 0x0c), 10), "unidentified", XDP_DROP);
    k.expect(&udp4_frame(ALICE4, 10), "alice", XDP_PASS);
}

#[test]
fn kernel_identity_agrees_with_the_compiled_tables() {
    let k = Kernel::new(POLICY);
    // Walk a spread of sources across the configured ranges and around them.
    for third in [0u8, 1, 2, 3, 255] {
        for fourth in [0u8, 1, 2, 3, 77, 255] {
            for second in [0u8, 1, 2] {
                let src = [10, second, third, fourth];
                let id = k.policy.user_of(std::net::IpAddr::from(src));
                let user = k.policy.users[id as usize].clone();
                let verdict = if user.policy.action == policy_common::action::DENY {
                    XDP_DROP
                } else {
                    XDP_PASS
                };
                k.expect(&udp4_frame(src, 1), &user.name, verdict);
            }
        }
    }
}
