//! Non-IP frames: identified by MAC, classified by `l2` and `ethertype`,
//! enforced and counted like IP traffic; those no class matches pass.

use super::*;

const NON_IP: &str = r#"
[[class]]
name = "arp"
match = { ethertype = "arp", l2 = "broadcast" }

[[class]]
name = "lldp"
match = { ethertype = "lldp" }

[[class]]
name = "udp"
match = { proto = "udp", l2 = "broadcast-or-multicast" }

[[user]]
name = "alice"
macs = ["02:00:00:00:00:0a"]

[[user]]
name = "carol"
macs = ["02:00:00:00:00:0c"]

[[user]]
name = "dave"
macs = ["02:00:00:00:00:0d"]
action = "deny"

[[rule]]
class = "arp"
user = "carol"
action = "deny"

[[rule]]
class = "lldp"
action = "limit 10pps burst 3"
"#;

const ALICE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const CAROL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0c];
const DAVE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0d];
const STRANGER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xee];
const LLDP_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
const ETH_P_LLDP: u16 = 0x88cc;

fn arp_from(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    eth_macs(dst, src, ETH_P_ARP, &[0; 28])
}

/// Runs `frame` and checks it passed uncounted: only NON_IP moved.
fn expect_unenforced(k: &Kernel, frame: &[u8], user: &str) {
    let (non_ip, before) = (
        k.global(global_counter::NON_IP),
        k.counters(user, "default", UP),
    );
    assert_eq!(k.run(frame), XDP_PASS, "{user}'s frame {frame:02x?}");
    assert_eq!(k.global(global_counter::NON_IP), non_ip + 1);
    assert_eq!(k.counters(user, "default", UP), before, "{user}/default");
}

#[test]
fn arp_broadcasts_are_enforced_under_their_sender_and_class() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(NON_IP);
    let non_ip = k.global(global_counter::NON_IP);
    k.expect(
        &arp_from(BROADCAST_MAC, ALICE_MAC),
        "alice",
        "arp",
        UP,
        V::Pass,
    );
    k.expect(
        &arp_from(BROADCAST_MAC, CAROL_MAC),
        "carol",
        "arp",
        UP,
        V::Deny,
    );
    // Behind VLAN tags, as IP is.
    let tagged = vlan_tagged(
        &arp_from(BROADCAST_MAC, CAROL_MAC),
        &[ETH_P_8021AD, ETH_P_8021Q],
    );
    k.expect(&tagged, "carol", "arp", UP, V::Deny);
    // dave's blanket deny covers the classes that match his frames.
    k.expect(
        &arp_from(BROADCAST_MAC, DAVE_MAC),
        "dave",
        "arp",
        UP,
        V::Deny,
    );
    assert_eq!(k.global(global_counter::NON_IP), non_ip + 4, "all non-IP");
    assert_eq!(k.global(global_counter::UNIDENTIFIED), 0);
    // The IP-only class never takes a non-IP frame, though its l2 matches.
    let mc = eth_macs(LLDP_MAC, ALICE_MAC, 0x88b5, &[0; 28]);
    expect_unenforced(&k, &mc, "alice");
}

#[test]
fn non_ip_frames_no_class_matches_pass_even_for_denied_users() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(NON_IP);
    // Unicast ARP (replies, probes of a known neighbour) is in no class:
    // dave, denied everything, and carol, denied ARP broadcasts, keep it.
    for (user, mac) in [("dave", DAVE_MAC), ("carol", CAROL_MAC)] {
        expect_unenforced(&k, &arp_from(DST_MAC, mac), user);
    }
    assert_eq!(k.counters("dave", "arp", UP), Counters::default());
}

#[test]
fn unidentified_senders_are_limited_by_ethertype() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(NON_IP);
    let lldp = eth_macs(LLDP_MAC, STRANGER_MAC, ETH_P_LLDP, &[0; 40]);
    // 10 pps is a packet per 100 ms: a quick run gets the burst of 3.
    for i in 0..8 {
        let v = if i < 3 { V::Pass } else { V::Limit };
        k.expect(&lldp, "unidentified", "lldp", UP, v);
    }
    assert_eq!(k.global(global_counter::UNIDENTIFIED), 8);
    // A limited LLDP sender's ARP broadcasts are another class: passed.
    k.expect(
        &arp_from(BROADCAST_MAC, STRANGER_MAC),
        "unidentified",
        "arp",
        UP,
        V::Pass,
    );
}

#[test]
fn non_ip_frames_to_users_are_theirs_by_destination_mac() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(NON_IP).with_tc();
    // TC egress on the users' side is a download: the destination MAC says
    // whose; dave's deny covers LLDP sent to him.
    let to_dave = eth_macs(DAVE_MAC, STRANGER_MAC, ETH_P_LLDP, &[0; 40]);
    let before = k.counters("dave", "lldp", DOWN);
    assert_eq!(k.run_tc(true, &to_dave), TC_ACT_SHOT);
    let after = k.counters("dave", "lldp", DOWN);
    assert_eq!(after.deny_packets, before.deny_packets + 1);
}

#[test]
fn each_unregistered_mac_gets_its_own_burst() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(NON_IP);
    // The per-source table keys a frame without addresses by its MAC: a
    // second stranger's LLDP is not held by the first one's empty bucket.
    for last in [0xe1, 0xe2] {
        let lldp = eth_macs(LLDP_MAC, [2, 0, 0, 0, 0, last], ETH_P_LLDP, &[0; 40]);
        for i in 0..5 {
            let v = if i < 3 { V::Pass } else { V::Limit };
            k.expect(&lldp, "unidentified", "lldp", UP, v);
        }
    }
    assert_eq!(k.global(global_counter::UNID_SHARED), 0);
}
