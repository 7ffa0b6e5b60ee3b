//! A forwarding gateway (`--iface users0 --uplink net0`, the README's own
//! example) enforces each packet once: an upload passes XDP on `users0` and
//! then TC egress on `net0`, a download XDP on `net0` and TC egress on
//! `users0`, and only the first hook may identify, count, classify and
//! limit it. Before, both did: a limit let half of itself through, counters
//! doubled, and elephants were found at half their size. Traffic the
//! gateway itself sends is still enforced on egress.
//!
//! Subnets 10.90-91 (limit), 10.94-95 (counts), 10.96-97 (elephant); test
//! runs use 10.98.

use std::{net::SocketAddr, time::Duration};

use aya::{
    maps::{Array, Map, MapData},
    programs::{TestRun as _, TestRunOptions},
};
use policy_common::{Counters, IfaceConfig, MAP_IFACES, iface_flag, side};
use policyd::dataplane::TC_EGRESS_PROGRAM;
use policyd_tests::{
    metric_value,
    packet::{ETH_P_IP, eth, ipv4, udp},
    policyd_bin,
    topology::{Blast, Gateway, UdpSink, send_udp},
};

use crate::{
    common::{DOWN, Kernel, TC_ACT_OK, TC_ACT_SHOT},
    rates::*,
};

fn start(tag: &str, subnets: (u8, u8), policy: &str) -> Gateway {
    Gateway::start(tag, subnets, &policyd_bin(), policy, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn metrics(gw: &Gateway) -> String {
    gw.metrics()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}{}", gw.diag("")))
}

/// `metric{user, class, direction, verdict}`, 0 when absent.
fn value(body: &str, metric: &str, user: &str, class: &str, direction: &str, verdict: &str) -> u64 {
    metric_value(
        body,
        metric,
        &[
            ("user", user),
            ("class", class),
            ("direction", direction),
            ("verdict", verdict),
        ],
    )
    .unwrap_or(0)
}

fn paced(src: SocketAddr, dst: SocketAddr, payload: usize, count: u64) -> Blast {
    Blast {
        src,
        dst,
        payload,
        tag: 1,
        max_packets: count,
        max_time: Duration::from_secs(10),
        gap: Some(PACE),
    }
}

const LIMIT_POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.90.0.2"]
action = "limit 20Mbit burst 64KiB"
"#;

#[test]
fn a_forwarded_upload_is_held_to_the_limit_not_half_of_it() {
    const RATE_BPS: f64 = 20e6;
    const PAYLOAD: usize = 1400;
    const FRAME: usize = PAYLOAD + UDP4_OVERHEAD;
    // The burst drains within the first milliseconds; from 0.5 s on the
    // receiver sees the rate alone.
    const SKIP: Duration = Duration::from_millis(500);
    let _serial = serial();
    let gw = start("gwlim", (90, 91), LIMIT_POLICY);
    let (sent, got) = flood((&gw.cl, "10.90.0.2"), (&gw.sv, "10.91.0.2"), PAYLOAD);
    let body = metrics(&gw);
    let diag = gw.diag(&body);
    let Measured {
        offered_bps,
        rate_bps,
        ..
    } = measure((&sent, &got), FRAME, RATE_BPS, SKIP, &diag);
    let error = rate_bps / RATE_BPS - 1.0;
    eprintln!(
        "gateway limit: offered {:.0} Mbit/s, received {:.3} Mbit/s (limit 20, error {:+.2}%)",
        offered_bps / 1e6,
        rate_bps / 1e6,
        error * 100.0
    );
    // Twice-enforced, this was about 10 Mbit/s.
    assert!(
        error.abs() <= 0.05,
        "the server received {rate_bps:.0} bit/s, not 20 Mbit/s ±5%{diag}"
    );
    let passed = value(
        &body,
        "policyd_packets_total",
        "alice",
        "default",
        "upload",
        "pass",
    );
    assert_eq!(
        passed,
        got.len() as u64,
        "every datagram the server got passed once{diag}"
    );
}

const COUNT_POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.94.0.2"]

[[user]]
name = "gateway"
ips = ["10.95.0.1"]
"#;

#[test]
fn uploads_downloads_and_local_traffic_are_counted_once() {
    let _timing = shared();
    const N: u64 = 200;
    const PAYLOAD: usize = 200;
    const FRAME: u64 = (PAYLOAD + UDP4_OVERHEAD) as u64;
    let gw = start("gwcnt", (94, 95), COUNT_POLICY);

    // Upload: client -> server, forwarded.
    let sink = UdpSink::start(&gw.sv, SINK_PORT).unwrap();
    let up = send_udp(
        &gw.cl,
        paced(sa("10.94.0.2", 0), sa("10.95.0.2", SINK_PORT), PAYLOAD, N),
    )
    .unwrap();
    let up_got = sink.finish(QUIET).unwrap();
    // Download: server -> client, forwarded.
    let sink = UdpSink::start(&gw.cl, SINK_PORT).unwrap();
    let down = send_udp(
        &gw.sv,
        paced(sa("10.95.0.2", 0), sa("10.94.0.2", SINK_PORT), PAYLOAD, N),
    )
    .unwrap();
    let down_got = sink.finish(QUIET).unwrap();
    // The gateway's own traffic: only TC egress on net0 sees it.
    let sink = UdpSink::start(&gw.sv, SINK_PORT).unwrap();
    let local = send_udp(
        &gw.gw,
        paced(sa("10.95.0.1", 0), sa("10.95.0.2", SINK_PORT), PAYLOAD, N),
    )
    .unwrap();
    let local_got = sink.finish(QUIET).unwrap();
    let body = metrics(&gw);
    let diag = gw.diag(&body);
    for (what, sent, got) in [
        ("upload", up.packets, up_got.len()),
        ("download", down.packets, down_got.len()),
        ("local", local.packets, local_got.len()),
    ] {
        assert_eq!(sent, N, "{what}: all sent");
        assert_eq!(got as u64, N, "{what}: all arrived{diag}");
    }
    for (user, direction) in [
        ("alice", "upload"),
        ("alice", "download"),
        ("gateway", "upload"),
    ] {
        let packets = value(
            &body,
            "policyd_packets_total",
            user,
            "default",
            direction,
            "pass",
        );
        let bytes = value(
            &body,
            "policyd_bytes_total",
            user,
            "default",
            direction,
            "pass",
        );
        assert_eq!(
            (packets, bytes),
            (N, N * FRAME),
            "{user} {direction}: counted {packets} packets / {bytes} bytes of {N} sent{diag}"
        );
    }
    assert_eq!(
        value(
            &body,
            "policyd_packets_total",
            "gateway",
            "default",
            "download",
            "pass"
        ),
        0,
        "the gateway's own traffic is its upload{diag}"
    );
}

const ELEPHANT_POLICY: &str = r#"
[[class]]
name = "bulk"
elephant = "64KiB"

[[user]]
name = "alice"
ips = ["10.96.0.2"]
"#;

#[test]
fn an_elephant_is_found_at_its_configured_size() {
    let _timing = shared();
    const PAYLOAD: usize = 1400;
    const FRAME: u64 = (PAYLOAD + UDP4_OVERHEAD) as u64;
    const THRESHOLD: u64 = 64 * 1024;
    const N: u64 = 100;
    // A packet is bulk once the flow carried more than the threshold before
    // it: the first THRESHOLD / FRAME + 1 packets are default.
    const DEFAULT_PACKETS: u64 = THRESHOLD / FRAME + 1;
    let gw = start("gwele", (96, 97), ELEPHANT_POLICY);
    let sink = UdpSink::start(&gw.sv, SINK_PORT).unwrap();
    let sent = send_udp(
        &gw.cl,
        paced(
            sa("10.96.0.2", 40000),
            sa("10.97.0.2", SINK_PORT),
            PAYLOAD,
            N,
        ),
    )
    .unwrap();
    let got = sink.finish(QUIET).unwrap();
    let body = metrics(&gw);
    let diag = gw.diag(&body);
    assert_eq!(
        (sent.packets, got.len() as u64),
        (N, N),
        "all arrived{diag}"
    );
    let count = |class| {
        value(
            &body,
            "policyd_packets_total",
            "alice",
            class,
            "upload",
            "pass",
        )
    };
    let default_bytes = value(
        &body,
        "policyd_bytes_total",
        "alice",
        "default",
        "upload",
        "pass",
    );
    assert_eq!(
        (count("default"), count("bulk")),
        (DEFAULT_PACKETS, N - DEFAULT_PACKETS),
        "the flow becomes bulk after {THRESHOLD} bytes{diag}"
    );
    assert_eq!(
        default_bytes,
        DEFAULT_PACKETS * FRAME,
        "bytes counted as default before the flow became an elephant{diag}"
    );
}

const DENY_POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.98.0.2"]
action = "deny"
"#;

/// Runs TC egress on `frame` as if it had arrived on interface
/// `ingress_ifindex` (0: sent by the host itself).
fn run_egress(k: &Kernel, frame: &[u8], ingress_ifindex: u32) -> u32 {
    // struct __sk_buff: `ingress_ifindex` is the tenth u32; the test run
    // (net/bpf/test_run.c, 6.18) copies it into skb->skb_iif.
    const SKB_SIZE: usize = 192;
    const INGRESS_IFINDEX: usize = 36;
    let mut ctx_in = [0u8; SKB_SIZE];
    ctx_in[INGRESS_IFINDEX..INGRESS_IFINDEX + 4].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx_in),
        ..TestRunOptions::default()
    };
    k.tc(TC_EGRESS_PROGRAM).test_run(opts).unwrap().return_value
}

#[test]
fn tc_egress_leaves_what_policyds_xdp_enforced_on_arrival() {
    let _timing = shared();
    // An interface policyd attached XDP to, as `attach` records it.
    const ENFORCED_IFACE: u32 = 4242;
    let k = Kernel::new(DENY_POLICY).with_tc();
    let data = MapData::from_pin(k.dp.pins().dir().join(MAP_IFACES)).expect("the IFACES pin");
    let mut ifaces: Array<MapData, IfaceConfig> =
        Array::try_from(Map::Array(data)).expect("IFACES is an array");
    ifaces
        .set(
            ENFORCED_IFACE,
            IfaceConfig {
                side: side::USERS,
                flags: iface_flag::ATTACHED,
            },
            0,
        )
        .unwrap();
    // A download to alice: denied where it is enforced.
    let frame = eth(
        ETH_P_IP,
        &ipv4(
            [192, 0, 2, 1],
            [10, 98, 0, 2],
            17,
            &udp(53, 40000, &[0; 64]),
        ),
    );
    assert_eq!(
        run_egress(&k, &frame, ENFORCED_IFACE),
        TC_ACT_OK,
        "enforced on arrival already: passed untouched"
    );
    assert_eq!(
        k.counters("alice", "default", DOWN),
        Counters::default(),
        "and not counted again"
    );
    assert_eq!(
        run_egress(&k, &frame, 0),
        TC_ACT_SHOT,
        "sent by the host: enforced here"
    );
    assert_eq!(
        run_egress(&k, &frame, ENFORCED_IFACE + 1),
        TC_ACT_SHOT,
        "arrived where policyd is not attached: enforced here"
    );
    assert_eq!(k.counters("alice", "default", DOWN).deny_packets, 2);
}
