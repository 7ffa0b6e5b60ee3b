//! Identity: exact addresses and longest prefixes (IPv4 and IPv6), MACs,
//! unidentified senders, spoofed sources.

use std::path::Path;

use policy_common::v4_mapped;
use policyd::policy::{self, CompiledPolicy};

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
    // eve's machine claims alice's address: counted under the sender (an
    // unregistered MAC: nobody), never under alice, the victim.
    for _ in 0..3 {
        k.expect(
            &from([2, 0, 0, 0, 0, 0xee]),
            "unidentified",
            "default",
            UP,
            V::Deny,
        );
    }
    assert_eq!(k.global(global_counter::SPOOFED), 3);
    assert_eq!(k.counters("alice", "default", UP).deny_packets, 0);
    assert_eq!(
        k.dropped(
            "unidentified",
            "default",
            UP,
            policy_common::drop_reason::SPOOFED
        ),
        3,
        "counted with their drop reason"
    );
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
    assert_eq!(got[0].user, k.user_id("unidentified"));
    assert_eq!(&got[0].src[12..16], &ALICE4, "the address it claimed");
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

/// Reloads write only what differs from what the generation they overwrite
/// held (the policy two reloads back): addresses that moved, left or came
/// back must identify exactly whom the policy in force says, in both
/// address families, and an address only an older policy had must not.
#[test]
fn addresses_follow_reloads() {
    let _timing = crate::rates::shared();
    // (alice's, bob's) addresses; bob is denied, so a verdict shows who.
    let policy = |alice: &str, bob: Option<&str>| {
        let mut src = format!("[[user]]\nname = \"alice\"\nips = [{alice}]\n");
        if let Some(bob) = bob {
            src.push_str(&format!(
                "[[user]]\nname = \"bob\"\nips = [{bob}]\naction = \"deny\"\n"
            ));
        }
        src
    };
    let compile =
        |src: &str| CompiledPolicy::compile(&policy::parse(Path::new("t.toml"), src).unwrap());
    let (a, b, c) = ([10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 4]);
    let (a6, b6) = (v6(0x0a, 2), v6(0x0a, 3));
    let first = policy(
        "\"10.0.0.2\", \"2001:db8:a::2\"",
        Some("\"10.0.0.3\", \"2001:db8:a::3\""),
    );
    let first_owners = [
        (v4_mapped(a), "alice"),
        (a6, "alice"),
        (v4_mapped(b), "bob"),
        (b6, "bob"),
    ];
    let mut k = Kernel::new(&first);
    k.expect(&udp4_frame(a, 10), "alice", "default", UP, V::Pass);
    k.expect(&udp4_frame(b, 10), "bob", "default", UP, V::Deny);
    k.expect(&udp6_frame(b6, 10), "bob", "default", UP, V::Deny);
    // (policy, [(address, user)]; every other address of a, b, c, a6, b6
    // is unidentified).
    type Owners<'a> = &'a [([u8; 16], &'a str)];
    let steps: [(String, Owners<'_>); 4] = [
        // alice takes bob's addresses; bob leaves.
        (
            policy("\"10.0.0.3\", \"2001:db8:a::3\"", None),
            &[(v4_mapped(b), "alice"), (b6, "alice")],
        ),
        // Into the generation that held the first policy: bob comes back
        // on alice's first addresses, alice moves on; 10.0.0.3, bob's in
        // that generation, is nobody's now.
        (
            policy("\"10.0.0.4\"", Some("\"10.0.0.2\", \"2001:db8:a::2\"")),
            &[(v4_mapped(c), "alice"), (v4_mapped(a), "bob"), (a6, "bob")],
        ),
        // The first policy again, and once more: nothing to write then,
        // the same answers.
        (first.clone(), &first_owners),
        (first, &first_owners),
    ];
    for (src, owners) in steps {
        let next = k.dp.assign_ids(&compile(&src)).unwrap();
        k.dp.apply(&next).unwrap();
        k.policy = next;
        for addr in [v4_mapped(a), v4_mapped(b), v4_mapped(c), a6, b6] {
            let frame = match policy_common::mapped_v4(&addr) {
                Some(v4) => udp4_frame(v4, 10),
                None => udp6_frame(addr, 10),
            };
            match owners.iter().find(|(o, _)| *o == addr) {
                Some((_, "bob")) => k.expect(&frame, "bob", "default", UP, V::Deny),
                Some((_, user)) => k.expect(&frame, user, "default", UP, V::Pass),
                None => k.expect(&frame, "unidentified", "default", UP, V::Pass),
            }
        }
    }
}
