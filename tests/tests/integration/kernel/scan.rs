//! Scan detection and quarantine (`[detect.scan]`): the packet whose new
//! flow crosses a threshold starts the quarantine, in the kernel; then only
//! the allowed classes pass; `release` ends it.

use policy_common::reason;
use policyd::dataplane::ScanTable;

use super::*;

/// 20 distinct ports or 10 hosts in a minute; DNS stays allowed.
const SCAN: &str = r#"
[detect.scan]
hosts = 10
ports = 20
window = "60s"
quarantine = "10m"
allow = ["dns"]

[[class]]
name = "dns"
match = { proto = "udp", ports = [53] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]

[[user]]
name = "bob"
ips = ["10.0.0.3"]
"#;

const SYN: u8 = 0x02;

fn syn(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    eth(
        ETH_P_IP,
        &ipv4(src, dst, 6, &tcp(40000, dport, SYN, &[0; 4])),
    )
}

fn scan_table(k: &Kernel) -> ScanTable {
    k.dp.scan_table().unwrap()
}

/// Sweeps ports of one host until the kernel denies a SYN; returns how many
/// SYNs passed before the one that started the quarantine.
fn sweep_ports(k: &Kernel, src: [u8; 4], user: &str) -> u16 {
    for port in 1..200 {
        if k.run(&syn(src, REMOTE4, port)) == XDP_DROP {
            return port - 1;
        }
        assert_eq!(k.counters(user, "default", UP).deny_packets, 0);
    }
    panic!("a sweep of 200 ports was never stopped");
}

#[test]
fn a_port_sweep_starts_a_quarantine_on_the_crossing_packet() {
    let _timing = crate::rates::shared();
    let mut k = Kernel::new(SCAN).with_tc();
    let passed = sweep_ports(&k, ALICE4, "alice");
    // 20 ports is 19 set bits of 256 on average (policy-common's scan.rs);
    // the hashes of ports 1.. are fixed, so this is exact for this sweep,
    // and within the estimator's error of 20.
    assert!(
        (14..=26).contains(&passed),
        "quarantined after {passed} ports"
    );
    assert_eq!(k.global(global_counter::QUARANTINES_PORTS), 1);
    let q = scan_table(&k).quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].user, k.user_id("alice"));
    assert_eq!(q[0].reason, reason::PORTS);
    assert!(q[0].left_ns > 590_000_000_000, "about ten minutes left");
    // In quarantine: everything is denied but the allowed class, both ways.
    k.expect(
        &tcp4(ALICE4, REMOTE4, 40001, 443),
        "alice",
        "default",
        UP,
        V::Deny,
    );
    k.expect(
        &udp4(ALICE4, REMOTE4, 5000, 53, 20),
        "alice",
        "dns",
        UP,
        V::Pass,
    );
    let reply = udp4(REMOTE4, ALICE4, 443, 40001, 20);
    assert_eq!(k.run_tc(true, &reply), TC_ACT_SHOT, "downloads too");
    // Others are not affected.
    k.expect(
        &tcp4([10, 0, 0, 3], REMOTE4, 40001, 443),
        "bob",
        "default",
        UP,
        V::Pass,
    );
    let got = events(&mut k);
    let quarantines: Vec<&Event> = got
        .iter()
        .filter(|e| e.kind == event_kind::QUARANTINE)
        .collect();
    assert_eq!(quarantines.len(), 1, "one event for the quarantine");
    assert_eq!(quarantines[0].user, k.user_id("alice"));
    assert_eq!(u32::from(quarantines[0].reason), reason::PORTS);
    assert_eq!(quarantines[0].dport, passed + 1, "the crossing packet's");
}

#[test]
fn a_host_sweep_quarantines_and_release_ends_it() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(SCAN);
    let mut stopped = None;
    for host in 1..100u8 {
        if k.run(&syn(ALICE4, [192, 0, 2, host], 443)) == XDP_DROP {
            stopped = Some(host);
            break;
        }
    }
    let host = stopped.expect("a sweep of 100 hosts was stopped");
    assert!((7..=14).contains(&host), "stopped at host {host}");
    assert_eq!(k.global(global_counter::QUARANTINES_HOSTS), 1);
    let mut table = scan_table(&k);
    assert!(table.release(k.user_id("alice")).unwrap());
    assert!(table.quarantined().unwrap().is_empty());
    assert!(!table.release(k.user_id("alice")).unwrap(), "only once");
    // Released, with a fresh window: her traffic passes again.
    k.expect(
        &tcp4(ALICE4, REMOTE4, 40001, 443),
        "alice",
        "default",
        UP,
        V::Pass,
    );
    k.expect(
        &syn(ALICE4, [192, 0, 2, 1], 443),
        "alice",
        "default",
        UP,
        V::Pass,
    );
}

#[test]
fn ordinary_traffic_is_not_a_scan() {
    let _timing = crate::rates::shared();
    let k = Kernel::new(SCAN).with_tc();
    // 30 connections to three services, and their packets, both ways.
    for i in 0..30u16 {
        let (host, port) = [
            ([192, 0, 2, 1], 443),
            ([192, 0, 2, 2], 80),
            ([192, 0, 2, 3], 25),
        ][usize::from(i % 3)];
        k.expect(&syn(ALICE4, host, port), "alice", "default", UP, V::Pass);
        k.expect(
            &tcp4(ALICE4, host, 40000 + i, port),
            "alice",
            "default",
            UP,
            V::Pass,
        );
    }
    // Answers from many hosts are not the user's fan-out.
    for host in 1..100u8 {
        let answer = eth(
            ETH_P_IP,
            &ipv4([192, 0, 2, host], ALICE4, 6, &tcp(443, 40000, SYN, &[])),
        );
        assert_eq!(k.run_tc(true, &answer), TC_ACT_OK);
    }
    assert!(scan_table(&k).quarantined().unwrap().is_empty());
    // The unidentified user is never quarantined (it is everyone unknown).
    for port in 1..100 {
        k.expect(
            &syn([10, 0, 0, 9], REMOTE4, port),
            "unidentified",
            "default",
            UP,
            V::Pass,
        );
    }
}

#[test]
fn a_dry_run_reports_once_and_quarantines_nobody() {
    let _timing = crate::rates::shared();
    let mut k =
        Kernel::new(&SCAN.replace("window = \"60s\"", "window = \"60s\"\naction = \"monitor\""));
    for port in 1..100 {
        k.expect(&syn(ALICE4, REMOTE4, port), "alice", "default", UP, V::Pass);
    }
    assert!(scan_table(&k).quarantined().unwrap().is_empty());
    let reports = events(&mut k)
        .iter()
        .filter(|e| e.kind == event_kind::QUARANTINE)
        .count();
    assert_eq!(reports, 1, "reported once in the window");
    assert!(k.global(global_counter::QUARANTINES_PORTS) >= 1);
    // A policy without [detect.scan] does not look.
    let k = Kernel::new(&SCAN[SCAN.find("[[class]]").unwrap()..]);
    for port in 1..100 {
        k.expect(&syn(ALICE4, REMOTE4, port), "alice", "default", UP, V::Pass);
    }
    assert_eq!(k.global(global_counter::QUARANTINES_PORTS), 0);
}
