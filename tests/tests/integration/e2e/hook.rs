//! `--hook tc`: ingress enforced by TC instead of XDP, with the same
//! verdicts and counters, and a restart may not switch hooks under pinned
//! enforcement (both would enforce). Needs root.

use std::time::Duration;

use policyd_tests::{
    Daemon, metric_sum, policyd_bin,
    topology::{Net, Topology},
};

const POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.244.0.2"]

[[user]]
name = "mallory"
ips = ["10.244.0.3"]
action = "deny"
"#;

fn packets(body: &str, user: &str, verdict: &str) -> u64 {
    metric_sum(
        body,
        "policyd_packets_total",
        &[("user", user), ("verdict", verdict)],
    )
}

#[test]
fn tc_ingress_enforces_like_xdp_and_a_restart_cannot_switch_hooks() {
    let _timing = crate::rates::shared();
    let net = Net::new("hook", 244, &[], &["10.244.0.2/24", "10.244.0.3/24"]).unwrap();
    let mut topo = Topology::start(net, &policyd_bin(), POLICY, &["--hook", "tc"]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    assert!(
        !topo.gw.xdp_attached("gw0"),
        "no XDP program with --hook tc{}",
        topo.diag("")
    );
    assert!(pins.join("links").join("gw0-tc_ingress").exists());
    assert!(!pins.join("links").join("gw0-xdp").exists());
    assert!(
        topo.daemon.log_text().contains("ingress=\"tc\""),
        "{}",
        topo.daemon.log_text()
    );

    assert_eq!(topo.through("10.244.0.3", 7200, 50).unwrap(), 0);
    assert_eq!(topo.through("10.244.0.2", 7201, 50).unwrap(), 50);
    let body = topo.metrics().unwrap();
    let diag = topo.diag(&body);
    assert_eq!(packets(&body, "mallory", "deny"), 50, "{diag}");
    // alice's datagrams and nothing else of hers: the TC program counts
    // each packet once, as XDP does.
    assert_eq!(packets(&body, "alice", "pass"), 50, "{diag}");

    // A crash leaves TC ingress enforcing; a daemon started with the
    // default hook (XDP) would enforce a second time, and is refused.
    let status = topo
        .daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    assert!(!status.success());
    assert_eq!(
        topo.through("10.244.0.3", 7202, 50).unwrap(),
        0,
        "mallory is still denied"
    );
    let pin_arg = pins.display().to_string();
    let refused = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &topo.dir.path().join("policy.toml"),
        Topology::metrics_addr(),
        &topo.dir.path().join("xdp.log"),
        &["--pin-dir", &pin_arg],
    );
    let err = refused.expect_err("a start with another hook").to_string();
    assert!(
        err.contains("is enforced at tc_ingress") && err.contains("policyd unload"),
        "{err}"
    );
    assert!(!topo.gw.xdp_attached("gw0"), "nothing was left attached");
    assert_eq!(topo.through("10.244.0.3", 7203, 50).unwrap(), 0);

    // The same hook adopts it.
    let mut next = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &topo.dir.path().join("policy.toml"),
        Topology::metrics_addr(),
        &topo.dir.path().join("next.log"),
        &["--pin-dir", &pin_arg, "--hook", "tc"],
    )
    .unwrap();
    assert_eq!(
        packets(&topo.metrics().unwrap(), "mallory", "deny"),
        150,
        "{}",
        next.log_text()
    );
    let status = next
        .stop_with(libc::SIGTERM, Duration::from_secs(10))
        .unwrap();
    assert!(status.success(), "{}", next.log_text());
    let out = policyd_tests::unload(&policyd_bin(), &pins).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        topo.through("10.244.0.3", 7204, 50).unwrap(),
        50,
        "nothing enforces any more"
    );
}
