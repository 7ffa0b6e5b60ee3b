//! The `unidentified` user's limits: a bucket per sender by default, one
//! for all of them with `buckets = "shared"`, and a slot still in use
//! shared (and counted), never handed out as a fresh burst.

use std::time::{Duration, Instant};

use super::*;

/// Three packets of burst; at 10 pps nothing refills within a test.
const PER_SOURCE: &str = "[unidentified]\naction = \"limit 10pps burst 3\"\n";

fn v6(last: u8, net: u8) -> [u8; 16] {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}

#[test]
fn each_unidentified_sender_gets_its_own_burst() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(PER_SOURCE);
    for src in [[10, 9, 0, 1], [10, 9, 0, 2], [10, 9, 0, 3]] {
        let frame = udp4_frame(src, 10);
        for i in 0..5 {
            let v = if i < 3 { V::Pass } else { V::Limit };
            k.expect(&frame, "unidentified", "default", UP, v);
        }
    }
    // An IPv6 sender is its /64: another address in it has no burst left.
    k.expect(
        &udp6_frame(v6(1, 1), 10),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &udp6_frame(v6(2, 1), 10),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &udp6_frame(v6(3, 1), 10),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &udp6_frame(v6(4, 1), 10),
        "unidentified",
        "default",
        UP,
        V::Limit,
    );
    k.expect(
        &udp6_frame(v6(1, 2), 10),
        "unidentified",
        "default",
        UP,
        V::Pass,
    );
    assert_eq!(k.global(global_counter::UNID_SHARED), 0, "no slot shared");
}

#[test]
fn downloads_are_limited_per_destination() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(PER_SOURCE).with_tc();
    // TC egress on an interface facing users: downloads, keyed by the
    // destination (the unidentified host's end).
    for dst in [[10, 9, 1, 1], [10, 9, 1, 2]] {
        let down = eth(ETH_P_IP, &ipv4(REMOTE4, dst, 17, &udp(1, 2, &[0; 10])));
        for i in 0..4 {
            let want = if i < 3 { TC_ACT_OK } else { TC_ACT_SHOT };
            k.expect_with(
                || k.run_tc(true, &down),
                want,
                down.len(),
                ("unidentified", "default", DOWN),
                if i < 3 { V::Pass } else { V::Limit },
            );
        }
    }
}

#[test]
fn a_shared_bucket_holds_all_unidentified_senders_together() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(&format!("{PER_SOURCE}buckets = \"shared\"\n"));
    let a = udp4_frame([10, 9, 0, 1], 10);
    let b = udp4_frame([10, 9, 0, 2], 10);
    k.expect(&a, "unidentified", "default", UP, V::Pass);
    k.expect(&b, "unidentified", "default", UP, V::Pass);
    k.expect(&a, "unidentified", "default", UP, V::Pass);
    k.expect(&b, "unidentified", "default", UP, V::Limit);
    k.expect(
        &udp4_frame([10, 9, 0, 3], 10),
        "unidentified",
        "default",
        UP,
        V::Limit,
    );
    assert_eq!(k.global(global_counter::UNID_SHARED), 0, "not the table's");
}

#[test]
fn a_slot_in_use_is_shared_and_counted_never_a_fresh_burst() {
    let _timing = crate::rates::shared();
    // One slot: every sender lands on it.
    let k = Kernel::new(&format!("{PER_SOURCE}slots = 1\n"));
    let a = udp4_frame([10, 9, 0, 1], 10);
    let b = udp4_frame([10, 9, 0, 2], 10);
    for _ in 0..3 {
        k.expect(&a, "unidentified", "default", UP, V::Pass);
    }
    // B finds A's bucket empty: no burst of its own, and each packet of B
    // policed against A's bucket is counted.
    for n in 1..=4 {
        k.expect(&b, "unidentified", "default", UP, V::Limit);
        assert_eq!(k.global(global_counter::UNID_SHARED), n);
    }
}

#[test]
fn an_idle_slot_is_taken_over_with_the_bucket_it_has() {
    let _timing = crate::rates::shared();
    // Burst 1 at 100 pps: a packet passes only once the bucket is full
    // again (idle), 10 ms after the last.
    let k = Kernel::new("[unidentified]\naction = \"limit 100pps burst 1\"\nslots = 1\n");
    let a = udp4_frame([10, 9, 0, 1], 10);
    let b = udp4_frame([10, 9, 0, 2], 10);
    assert_eq!(k.run(&a), XDP_PASS);
    // B is refused while A's bucket refills (each counted as shared), then
    // takes the idle slot over: that packet is not shared.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut refused = 0;
    loop {
        assert!(Instant::now() < deadline, "B never passed");
        if k.run(&b) == XDP_PASS {
            break;
        }
        refused += 1;
        assert_eq!(k.global(global_counter::UNID_SHARED), refused);
        std::thread::sleep(Duration::from_millis(1));
    }
    // Now A finds B's bucket in use: refused, and counted.
    assert_eq!(k.run(&a), XDP_DROP);
    assert_eq!(k.global(global_counter::UNID_SHARED), refused + 1);
}
