//! Hot reload with traffic flowing: a still-allowed user loses nothing while
//! the policy is reloaded again and again, the new limit is in force
//! afterwards, and an invalid policy changes nothing. Needs root.

use std::{net::SocketAddr, time::Duration};

use policyd_tests::{
    metric_sum, metric_value, policyd_bin,
    topology::{Blast, Net, Topology, UdpSink, replace_file, send_udp},
};

const V1: &str = r#"
[[user]]
name = "alice"
ips = ["10.223.0.2"]

[[user]]
name = "carol"
ips = ["10.223.0.4"]
"#;

/// v2 adds a user and a class before the old ones (so positions, and with
/// them naive ids, shift) and limits carol.
const V2: &str = r#"
[[class]]
name = "dns"
match = { proto = "udp", ports = [53] }

[[user]]
name = "newcomer"
ips = ["10.223.0.9"]

[[user]]
name = "alice"
ips = ["10.223.0.2"]

[[user]]
name = "carol"
ips = ["10.223.0.4"]
action = "limit 1Mbit burst 16KiB"
"#;

#[test]
fn reloads_under_traffic_drop_nothing_of_an_allowed_user_and_apply_the_new_limit() {
    let _timing = crate::rates::shared();
    let net = Net::new("reload", 223, &[], &["10.223.0.2/24", "10.223.0.4/24"]).unwrap();
    // A write every 300 ms: a quiet period shorter than that, so that each
    // is a reload of its own.
    let topo = Topology::start(net, &policyd_bin(), V1, &["--reload-settle", "100ms"]).unwrap();
    let policy = topo.dir.path().join("policy.toml");
    let sink = UdpSink::start(&topo.gw, 7000).unwrap();
    let dst: SocketAddr = "10.223.0.1:7000".parse().unwrap();

    // Alice sends 1000 datagrams a second for four seconds while the policy
    // is reloaded ten times, by SIGHUP and by the file changing.
    let sent = std::thread::scope(|scope| {
        let flow = scope.spawn(|| {
            send_udp(
                &topo.cl,
                Blast {
                    src: "10.223.0.2:0".parse().unwrap(),
                    dst,
                    payload: 200,
                    tag: 1,
                    max_packets: 4000,
                    max_time: Duration::from_secs(10),
                    gap: Some(Duration::from_millis(1)),
                },
            )
        });
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(300));
            replace_file(&policy, if i % 2 == 0 { V2 } else { V1 }).unwrap();
            if i % 3 == 0 {
                topo.hup();
            }
        }
        flow.join().unwrap().unwrap()
    });
    let got = sink.finish(Duration::from_millis(300)).unwrap();
    let from_alice = got.iter().filter(|r| r.tag == 1).count() as u64;
    assert_eq!(
        from_alice,
        sent.packets,
        "alice lost datagrams during reloads{}",
        topo.diag("")
    );
    topo.wait_until("ten reloads", || topo.reloads("success") >= 10);
    assert_eq!(topo.reloads("failure"), 0, "{}", topo.diag(""));

    // The last version written was V1 (i = 9); end on V2 and check carol's
    // new limit is in force.
    let before = topo.reloads("success");
    replace_file(&policy, V2).unwrap();
    topo.wait_until("the V2 reload", || topo.reloads("success") > before);
    let sink = UdpSink::start(&topo.gw, 7001).unwrap();
    let sent = send_udp(
        &topo.cl,
        Blast {
            src: "10.223.0.4:0".parse().unwrap(),
            dst: "10.223.0.1:7001".parse().unwrap(),
            payload: 1000,
            tag: 2,
            max_packets: 5000,
            max_time: Duration::from_secs(1),
            gap: Some(Duration::from_micros(200)),
        },
    )
    .unwrap();
    let got = sink.finish(Duration::from_millis(300)).unwrap().len() as u64;
    let body = topo.metrics().unwrap();
    let limited = metric_sum(
        &body,
        "policyd_packets_total",
        &[("user", "carol"), ("verdict", "limit")],
    );
    // 1 Mbit/s of 1042-byte frames is 120 a second, plus 16 KiB of burst.
    assert!(
        limited > 0 && got < 200,
        "carol: {got} of {} arrived, {limited} limited{}",
        sent.packets,
        topo.diag(&body)
    );
    // Counters kept their users across reloads: alice's passes are all hers.
    let alice = metric_sum(
        &body,
        "policyd_packets_total",
        &[("user", "alice"), ("verdict", "pass")],
    );
    assert!(
        alice >= 4000,
        "alice's counters: {alice}{}",
        topo.diag(&body)
    );
    assert_eq!(
        metric_value(&body, "policyd_policy_generation", &[]),
        Some(1 + topo.reloads("success"))
    );
}

#[test]
fn an_invalid_policy_leaves_the_old_one_in_force() {
    let _timing = crate::rates::shared();
    let policy = "[[user]]\nname = \"mallory\"\nips = [\"10.224.0.3\"]\naction = \"deny\"\n";
    let net = Net::new("badrel", 224, &[], &["10.224.0.3/24"]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), policy, &[]).unwrap();
    let path = topo.dir.path().join("policy.toml");
    replace_file(&path, "[[user]\nname = ").unwrap();
    topo.hup();
    topo.wait_until("a failed reload", || topo.reloads("failure") >= 1);
    assert_eq!(topo.reloads("success"), 0);
    // All 50 datagrams leave (through() is an error otherwise), none arrives.
    let got = topo.through("10.224.0.3", 7002, 50).unwrap();
    assert_eq!(
        got,
        0,
        "mallory got through after a failed reload{}",
        topo.diag("")
    );
    // Putting the policy back is a reload that finds it in force: nothing
    // is written, no new generation.
    replace_file(&path, policy).unwrap();
    topo.hup();
    topo.wait_until("an unchanged reload", || topo.reloads("unchanged") >= 1);
    assert_eq!(topo.reloads("success"), 0, "{}", topo.diag(""));
    assert_eq!(
        metric_value(&topo.metrics().unwrap(), "policyd_policy_generation", &[]),
        Some(1)
    );
    let log = topo.daemon.log_text();
    assert!(log.contains("policy unchanged; nothing to write"), "{log}");
    assert!(
        log.contains("reload refused; the previous policy stays in force"),
        "{log}"
    );
    assert!(
        log.contains("policy.toml:1:"),
        "the error names the file and line: {log}"
    );
}
