//! Parsing: tags, truncations at every offset, malformed and invalid
//! headers, IPv4 options, fragments and IPv6 extension headers.

use super::*;

#[test]
fn vlan_and_qinq_tagged_traffic_is_enforced_like_untagged() {
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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

#[test]
fn truncated_frames_at_every_offset() {
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
    let k = Kernel::new(IDENTITY);
    let mut ip = ipv4(DAVE4, REMOTE4, 17, &[]);
    ip[0] = 0x46;
    ip.extend_from_slice(&[1, 1, 1, 1]);
    ip.extend_from_slice(&udp(1, 2, &[0; 8]));
    k.expect(&eth(ETH_P_IP, &ip), "dave", "default", UP, V::Deny);
}

#[test]
fn fragments_without_ports_fall_through_port_rules() {
    let _timing = crate::rates::shared();
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
    let _timing = crate::rates::shared();
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
