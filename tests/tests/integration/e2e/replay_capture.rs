//! `policyd replay` on captures tcpdump made of real traffic: alice sends
//! UDP at twice her limit through a live policyd while tcpdump records it
//! on her side of the veth pair, headers only (`-s 96`) and from every
//! interface (`-i any`: Linux cooked v2); replaying them (and a pcapng
//! made of them) limits the same share of her bytes as the kernel did
//! live, and the same verdicts every time.

use std::{net::SocketAddr, time::Duration};

use policyd_tests::{
    metric_sum, policyd_bin,
    topology::{Blast, Net, Tcpdump, Topology, UdpSink, pcapng_from_pcaps, send_udp},
};

const ALICE: &str = "10.171.0.2";
const PORT: u16 = 7100;
/// 2 Mbit/s is 250 000 bytes a second; alice sends 1000-byte frames every
/// 2 ms, twice that.
const POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.171.0.2"]
action = "limit 2Mbit burst 20000"
"#;

/// Alice's bytes limited, and all of hers, by the replay of `capture`.
fn replayed(topo: &Topology, capture: &std::path::Path) -> (u64, u64, serde_json::Value) {
    let policy = topo.dir.path().join("policy.toml");
    let out = std::process::Command::new(policyd_bin())
        .args(["replay", "--quiet", "--json", "--pcap"])
        .arg(capture)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay of {}: {}\n{stdout}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut doc: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    let (mut limited, mut all) = (0, 0);
    for row in doc["users"]["alice"]["classes"].as_array().unwrap() {
        limited += row["limited"]["bytes"].as_u64().unwrap();
        for k in ["passed", "limited", "denied", "monitored"] {
            all += row[k]["bytes"].as_u64().unwrap();
        }
    }
    // What may differ between captures of the same packets.
    doc["capture"] = serde_json::Value::Null;
    doc["hours"] = serde_json::Value::Null;
    (limited, all, doc["users"].take())
}

#[test]
fn replayed_captures_limit_what_the_kernel_limited_live() {
    let _timing = crate::rates::serial();
    let net = Net::new("rcap", 171, &[], &[&format!("{ALICE}/24")]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();
    let dir = topo.dir.path().to_owned();
    let filter = ["udp", "and", "dst", "port", "7100"];
    let (eth, any) = (dir.join("cl0.pcap"), dir.join("any.pcap"));
    let mut args = vec!["-i", "cl0", "-s", "96"];
    args.extend(filter);
    let on_cl0 = Tcpdump::start(&topo.cl, &eth, &args).unwrap();
    let mut args = vec!["-i", "any", "-s", "96"];
    args.extend(filter);
    let on_any = Tcpdump::start(&topo.cl, &any, &args).unwrap();

    let sink = UdpSink::start(&topo.gw, PORT).unwrap();
    let sent = send_udp(
        &topo.cl,
        Blast {
            src: SocketAddr::new(ALICE.parse().unwrap(), 40000),
            dst: SocketAddr::from(([10, 171, 0, 1], PORT)),
            payload: 1000 - 42,
            tag: 1,
            max_packets: 1500,
            max_time: Duration::from_secs(6),
            gap: Some(Duration::from_millis(2)),
        },
    )
    .unwrap();
    let arrived = sink.finish(Duration::from_millis(300)).unwrap().len() as u64;
    on_cl0.stop().unwrap();
    on_any.stop().unwrap();

    let body = topo.metrics().unwrap();
    let live = |verdict: &str| {
        metric_sum(
            &body,
            "policyd_bytes_total",
            &[("user", "alice"), ("verdict", verdict)],
        )
    };
    let (live_limited, live_all) = (live("limit"), live("limit") + live("pass"));
    let share = |limited: u64, all: u64| limited as f64 / all.max(1) as f64;
    let live_share = share(live_limited, live_all);
    let diag = format!(
        "\nsent {} in {:?}, {arrived} arrived; live: {live_limited} of {live_all} bytes limited{}",
        sent.packets,
        sent.elapsed,
        topo.diag(&body)
    );
    assert!((0.2..0.7).contains(&live_share), "{live_share}{diag}");

    let (limited, all, users) = replayed(&topo, &eth);
    let replay_share = share(limited, all);
    assert!(
        (replay_share - live_share).abs() < 0.03,
        "replayed -s 96 capture: {limited} of {all} bytes limited ({replay_share:.3} against \
         {live_share:.3} live){diag}"
    );
    eprintln!(
        "replay_capture: live {live_share:.4} of alice's bytes limited, replay of -s 96 {replay_share:.4}"
    );
    // Headers only, yet every byte on the wire is counted.
    assert!(all >= live_all * 97 / 100, "{all} bytes replayed{diag}");
    // Again: the same verdicts.
    assert_eq!(replayed(&topo, &eth).2, users, "a second replay differs");

    // The cooked capture of the same packets.
    let (limited_any, all_any, _) = replayed(&topo, &any);
    let any_share = share(limited_any, all_any);
    assert!(
        (any_share - live_share).abs() < 0.03,
        "replayed -i any capture: {any_share:.3} against {live_share:.3} live{diag}"
    );

    // The -s 96 capture as pcapng: the same report.
    let ng = dir.join("cl0.pcapng");
    std::fs::write(
        &ng,
        pcapng_from_pcaps(&[&std::fs::read(&eth).unwrap()]).unwrap(),
    )
    .unwrap();
    assert_eq!(replayed(&topo, &ng).2, users, "the pcapng replay differs");
}
