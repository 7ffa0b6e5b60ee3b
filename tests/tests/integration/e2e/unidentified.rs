//! Two unregistered hosts, each in its own namespace behind a bridge in the
//! client namespace, flood through `policyd run` at once: with the
//! `unidentified` user's default per-source buckets each is held to the
//! whole limit, where one shared bucket gave each about half. Needs root.

use std::{thread, time::Duration};

use crate::rates::*;
use policyd_tests::{
    NetNs, metric_value, pin_neighbours, policyd_bin,
    topology::{Blast, Net, Topology, UdpSink, send_udp},
    veth_pair,
};

const RATE_BPS: f64 = 10e6;
const POLICY: &str = "[unidentified]\naction = \"limit 10Mbit burst 64KiB no-ecn\"\n";

/// `host` (10.155.0.`n`) in a namespace of its own, on bridge `br0` of the
/// client namespace, which carries it to `gw0`.
fn host(topo: &Topology, n: u8) -> NetNs {
    let ns = NetNs::new(&format!("unid{n}")).unwrap();
    let addr = format!("10.155.0.{n}/24");
    let port = format!("p{n}");
    veth_pair((&topo.cl, &port, &[]), (&ns, "eth0", &[&addr])).unwrap();
    topo.cl
        .ip(&["link", "set", &port, "master", "br0"])
        .unwrap();
    pin_neighbours(
        (&topo.gw, "gw0", &["10.155.0.1/24"]),
        (&ns, "eth0", &[&addr]),
    )
    .unwrap();
    ns
}

#[test]
fn two_unregistered_hosts_each_get_their_own_limit() {
    const PAYLOAD: usize = 1400;
    const FRAME: usize = PAYLOAD + UDP4_OVERHEAD;
    const SKIP: Duration = Duration::from_millis(500);
    let _serial = serial();
    let topo = Topology::start(
        Net::new("unid", 155, &[], &[]).unwrap(),
        &policyd_bin(),
        POLICY,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The client namespace is a switch: cl0 and one port per host on br0.
    for args in [
        &["link", "add", "br0", "type", "bridge"][..],
        &["link", "set", "cl0", "master", "br0"],
        &["link", "set", "br0", "up"],
    ] {
        topo.cl.ip(args).unwrap();
    }
    let quiet = topo
        .cl
        .command("sysctl")
        .args(["-qw", "net.ipv6.conf.br0.disable_ipv6=1"])
        .status()
        .unwrap();
    assert!(quiet.success(), "sysctl in the client namespace");
    let hosts = [host(&topo, 2), host(&topo, 3)];

    let sink = UdpSink::start(&topo.gw, SINK_PORT).unwrap();
    let sent: Vec<_> = thread::scope(|s| {
        let floods: Vec<_> = hosts
            .iter()
            .zip([2u8, 3])
            .map(|(ns, n)| {
                s.spawn(move || {
                    send_udp(
                        ns,
                        Blast {
                            src: sa(&format!("10.155.0.{n}"), 0),
                            dst: sa("10.155.0.1", SINK_PORT),
                            payload: PAYLOAD,
                            tag: n,
                            max_packets: 20_000_000,
                            max_time: Duration::from_secs(3),
                            gap: None,
                        },
                    )
                    .unwrap()
                })
            })
            .collect();
        floods.into_iter().map(|f| f.join().unwrap()).collect()
    });
    let got = sink.finish(QUIET).unwrap();
    let body = topo
        .metrics()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}{}", topo.diag("")));
    let diag = topo.diag(&body);
    for (sent, n) in sent.iter().zip([2u8, 3]) {
        let from = ip(&format!("10.155.0.{n}"));
        let mine: Vec<_> = got.iter().filter(|r| r.from == from).cloned().collect();
        let m = measure((sent, &mine), FRAME, RATE_BPS, SKIP, &diag);
        let error = m.rate_bps / RATE_BPS - 1.0;
        eprintln!(
            "unidentified host {from}: offered {:.0} Mbit/s, received {:.3} Mbit/s over {:.2} s (limit 10 Mbit/s each, error {:+.2}%)",
            m.offered_bps / 1e6,
            m.rate_bps / 1e6,
            m.span.as_secs_f64(),
            error * 100.0
        );
        // A shared bucket would give each about half (-50%).
        assert!(
            error.abs() <= 0.1,
            "{from} received {:.0} bit/s, not its own 10 Mbit/s ±10%{diag}",
            m.rate_bps
        );
    }
    assert_eq!(
        metric_value(&body, "policyd_unidentified_bucket_shared_total", &[]),
        Some(0),
        "the two hosts have slots of their own{diag}"
    );
    // `status` shows the slots they took (a slot per sender, class and
    // direction: the two floods', and any of the hosts' other packets).
    let status = topo
        .gw
        .command(&policyd_bin().display().to_string())
        .args(["status", "--pin-dir"])
        .arg(&topo.daemon.pin_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let used: usize = text
        .lines()
        .find(|l| l.contains("unidentified senders' bucket slots used"))
        .and_then(|l| l.split_whitespace().rev().nth(3)?.parse().ok())
        .unwrap_or_else(|| panic!("no slot row in {text}"));
    assert!(used >= 2, "{text}");
}
