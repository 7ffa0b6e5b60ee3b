//! Identity: exact addresses and longest prefixes (IPv4 and IPv6), MACs,
//! unidentified senders, spoofed sources.

use super::*;

#[test]
fn ipv4_exact_cidr_and_longest_prefix() {
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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
fn unidentified_senders_can_be_denied() {
    let _timing = crate::rates::shared();
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

#[test]
fn spoofed_sources_are_dropped_counted_and_reported() {
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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
