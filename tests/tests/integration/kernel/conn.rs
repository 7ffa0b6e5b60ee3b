//! Connection-rate limits (`limit ... conn N/period`): which packets open a
//! connection, and that only those take from the connection bucket.

use super::*;

/// Mail at a generous byte rate and 3 connections an hour (burst 3): within
/// a test run no connection token comes back, so the counts are exact.
const MAIL: &str = r#"
[[class]]
name = "mail"
match = { proto = "tcp", ports = [25] }

[[class]]
name = "voip"
match = { proto = "udp", ports = [5060] }

[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]

[[user]]
name = "bob"
ips = ["10.0.0.3"]

[[rule]]
class = "mail"
action = "limit 50Mbit conn 3/h"

[[rule]]
class = "voip"
action = "limit 2conn/h"
"#;

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;

fn tcp4_flags(src: [u8; 4], sport: u16, flags: u8) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, REMOTE4, 6, &tcp(sport, 25, flags, &[0; 10])),
    )
}

#[test]
fn syns_beyond_the_connection_burst_are_dropped_and_the_rest_flows() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(MAIL);
    for sport in 40000..40003 {
        k.expect(
            &tcp4_flags(ALICE4, sport, SYN),
            "alice",
            "mail",
            UP,
            V::Pass,
        );
    }
    // The fourth connection is refused, a retransmitted SYN too.
    k.expect(
        &tcp4_flags(ALICE4, 40003, SYN),
        "alice",
        "mail",
        UP,
        V::Limit,
    );
    k.expect(
        &tcp4_flags(ALICE4, 40003, SYN),
        "alice",
        "mail",
        UP,
        V::Limit,
    );
    // Everything that opens nothing only meets the byte rate: the admitted
    // connections' data, and answers (SYN+ACK) whatever way they go.
    for _ in 0..50 {
        k.expect(
            &tcp4_flags(ALICE4, 40000, ACK),
            "alice",
            "mail",
            UP,
            V::Pass,
        );
    }
    k.expect(
        &tcp4_flags(ALICE4, 40001, SYN_ACK),
        "alice",
        "mail",
        UP,
        V::Pass,
    );
    // Per user: bob has his own three.
    for sport in 40000..40003 {
        k.expect(
            &tcp4_flags([10, 0, 0, 3], sport, SYN),
            "bob",
            "mail",
            UP,
            V::Pass,
        );
    }
    k.expect(
        &tcp4_flags([10, 0, 0, 3], 41000, SYN),
        "bob",
        "mail",
        UP,
        V::Limit,
    );
}

#[test]
fn a_udp_flow_counts_once_and_a_refused_one_keeps_asking() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(MAIL).with_tc();
    let flow = |sport| udp4(ALICE4, REMOTE4, sport, 5060, 20);
    // Two flows admitted; each one's later packets are not new.
    for _ in 0..3 {
        k.expect(&flow(5000), "alice", "voip", UP, V::Pass);
        k.expect(&flow(5001), "alice", "voip", UP, V::Pass);
    }
    // A third flow is refused on every packet: it was never remembered.
    for _ in 0..3 {
        k.expect(&flow(5002), "alice", "voip", UP, V::Limit);
    }
    // The other direction is a flow of its own, with its own bucket.
    let answer = udp4(REMOTE4, ALICE4, 5060, 5000, 20);
    let k_down = |v| {
        k.expect_with(
            || k.run_tc(true, &answer),
            if v == V::Pass { TC_ACT_OK } else { TC_ACT_SHOT },
            answer.len(),
            ("alice", "voip", DOWN),
            v,
        )
    };
    k_down(V::Pass);
    k_down(V::Pass);
    // IPv6 flows are flows too (the same bucket as alice's IPv4 ones).
    let v6flow = eth(
        ETH_P_IPV6,
        &ipv6(v6(0xa, 2), v6(0xff, 1), 17, &udp(5003, 5060, &[0; 20])),
    );
    k.expect(&v6flow, "alice", "voip", UP, V::Limit);
}

#[test]
fn a_limit_without_conn_ignores_syns_and_a_dry_run_only_counts() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(&MAIL.replace("limit 50Mbit conn 3/h", "limit 50Mbit"));
    for sport in 40000..40010 {
        k.expect(
            &tcp4_flags(ALICE4, sport, SYN),
            "alice",
            "mail",
            UP,
            V::Pass,
        );
    }
    let k = Kernel::new(&MAIL.replace("conn 3/h", "conn 3/h monitor"));
    for sport in 40000..40003 {
        k.expect(
            &tcp4_flags(ALICE4, sport, SYN),
            "alice",
            "mail",
            UP,
            V::Pass,
        );
    }
    k.expect(
        &tcp4_flags(ALICE4, 40003, SYN),
        "alice",
        "mail",
        UP,
        V::Monitor,
    );
    // A truncated TCP header (ports, no flags) opens nothing.
    let mut cut = tcp4_flags(ALICE4, 40004, SYN);
    cut.truncate(14 + 20 + 4);
    k.expect(&cut, "alice", "mail", UP, V::Pass);
}
