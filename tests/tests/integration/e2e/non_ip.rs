//! Non-IP frames through a real `policyd run` with the built-in baseline:
//! an ARP broadcast flood from one MAC is limited per sender, while another
//! user's ARP exchange (neighbours not pinned) resolves and its traffic
//! gets through. Arrivals are counted on the gateway after XDP. Needs root.

use std::time::{Duration, Instant};

use crate::rates::serial;
use policyd_tests::{
    NetNs, metric_sum,
    packet::{BROADCAST_MAC, ETH_P_ARP, eth_macs},
    policyd_bin,
    topology::{ArrivalCounter, Net, Pacer, Topology},
};

const MALLORY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x15, 0xee];

/// An ARP request from `mac` at `spa` for `tpa` (RFC 826), broadcast.
fn arp_request(mac: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut body = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    body.extend_from_slice(&mac);
    body.extend_from_slice(&spa);
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(&tpa);
    eth_macs(BROADCAST_MAC, mac, ETH_P_ARP, &body)
}

fn mac_of(ns: &NetNs, ifname: &str) -> String {
    ns.mac(ifname)
        .unwrap_or_else(|e| panic!("MAC of {ifname}: {e}"))
}

/// The source MAC of an ARP frame.
fn arp_sender(frame: &[u8]) -> Option<[u8; 6]> {
    (frame.get(12..14)? == ETH_P_ARP.to_be_bytes()).then(|| frame[6..12].try_into().ok())?
}

#[test]
fn an_arp_flood_from_one_mac_is_limited_while_another_users_arp_works() {
    let _rates = serial();
    let net = Net::new("l2arp", 150, &[], &["10.150.0.2/24"]).expect("namespaces");
    let alice_mac = mac_of(&net.cl, "cl0");
    let policy = format!(
        "{}\n[[user]]\nname = \"alice\"\nmacs = [\"{alice_mac}\"]\nips = [\"10.150.0.2\"]\n\n[[user]]\nname = \"mallory\"\nmacs = [\"02:00:00:00:15:ee\"]\n",
        include_str!("../../../../policy-userspace/src/policy/baseline.toml"),
    );
    let topo = Topology::start(net, &policyd_bin(), &policy, &[]).expect("policyd runs");
    // Neighbours are pinned by the kit: unpin alice's and the gateway's so
    // that her traffic has to resolve ARP first.
    topo.cl
        .ip(&["neigh", "del", "10.150.0.1", "dev", "cl0"])
        .expect("unpin the gateway");
    topo.gw
        .ip(&["neigh", "del", "10.150.0.2", "dev", "gw0"])
        .expect("unpin alice");
    let alice: [u8; 6] = alice_mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC byte"))
        .collect::<Vec<u8>>()
        .try_into()
        .expect("six MAC bytes");
    let arrivals = ArrivalCounter::start(&topo.gw, "gw0", arp_sender).expect("counter");

    // 2000 broadcasts a second, 20 times the baseline's 100 pps (burst 200).
    const PPS: u64 = 2_000;
    const FLOOD: u64 = 3_000;
    let flood_start = Instant::now();
    let flood = Pacer::start(
        &topo.cl,
        "cl0",
        arp_request(MALLORY_MAC, [10, 150, 0, 66], [10, 150, 0, 99]),
        PPS,
    )
    .expect("flood");
    let through = topo
        .through("10.150.0.2", 9150, 20)
        .expect("alice's datagrams");
    let deadline = Instant::now() + Duration::from_secs(10);
    while flood.sent() < FLOOD && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = flood.stop().expect("the flood ran");
    let flood_secs = flood_start.elapsed().as_secs_f64();
    // policyd counts every one of mallory's frames, passed or limited.
    let counted = |topo: &Topology| {
        let body = topo.metrics().unwrap_or_default();
        metric_sum(
            &body,
            "policyd_packets_total",
            &[("user", "mallory"), ("class", "broadcast")],
        )
    };
    topo.wait_until("mallory's frames counted", || counted(&topo) >= sent);
    let body = topo.metrics().expect("metrics");
    let limited = metric_sum(
        &body,
        "policyd_packets_total",
        &[
            ("user", "mallory"),
            ("class", "broadcast"),
            ("verdict", "limit"),
        ],
    );
    let arrived = arrivals.get(&MALLORY_MAC);
    // The burst, the rate over the flood's time, and a tenth for timing.
    let allowed = ((200.0 + 100.0 * flood_secs) * 1.1) as u64;
    eprintln!(
        "arp flood: sent {sent}, arrived {arrived} (at most {allowed} allowed), limited {limited}; alice: {through}/20 datagrams, {} ARP frames",
        arrivals.get(&alice)
    );
    let diag = topo.diag(&body);
    assert!(
        (200..=allowed).contains(&arrived),
        "{arrived} of {sent} broadcasts arrived, not the burst of 200 and 100 pps{diag}"
    );
    assert_eq!(limited, sent - arrived, "limited = sent - arrived{diag}");
    assert!(
        arrivals.get(&alice) >= 1,
        "alice sent no ARP: the test proves nothing{diag}"
    );
    assert_eq!(
        through, 20,
        "alice's ARP resolved and her datagrams arrived{diag}"
    );
}
