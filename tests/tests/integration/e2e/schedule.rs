//! The daemon follows the policy's schedule: at a window's end the profile
//! flips within a second, and enforcement with it. The clock is shifted with
//! `--now` so the boundary comes three seconds after start. Needs root.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use policyd_tests::{
    metric_value, policyd_bin,
    topology::{Blast, Net, Topology, UdpSink, send_udp},
};

const POLICY: &str = concat!(
    r#"
[settings]
timezone = "America/New_York"
"#,
    include_str!("../../../fixtures/business-hours.toml"),
    r#"
[[class]]
name = "bulk"
match = { proto = "udp", ports = [9] }

[[user]]
name = "alice"
ips = ["10.220.0.2"]

[[rule]]
class = "bulk"
business = "deny"
off_hours = "allow"
"#
);

const N: u64 = 50;

/// Sends N datagrams from alice to the bulk port; returns how many arrived.
fn bulk_through(topo: &Topology) -> u64 {
    let sink = UdpSink::start(&topo.gw, 9).unwrap();
    let dst: SocketAddr = "10.220.0.1:9".parse().unwrap();
    send_udp(
        &topo.cl,
        Blast {
            src: "10.220.0.2:0".parse().unwrap(),
            dst,
            payload: 100,
            tag: 1,
            max_packets: N,
            max_time: Duration::from_secs(5),
            gap: Some(Duration::from_micros(500)),
        },
    )
    .unwrap();
    sink.finish(Duration::from_millis(300)).unwrap().len() as u64
}

fn profile(topo: &Topology) -> Option<String> {
    let body = topo.metrics().ok()?;
    ["business", "off_hours"]
        .into_iter()
        .find(|p| metric_value(&body, "policyd_active_profile", &[("profile", p)]) == Some(1))
        .map(str::to_owned)
}

#[test]
fn the_profile_flips_at_the_end_of_business_hours() {
    let _timing = crate::rates::shared();
    // Tuesday 1 December 2026, 16:59:57 in New York: three seconds of
    // business hours left.
    let net = Net::new("sched", 220, &[], &["10.220.0.2/24"]).unwrap();
    let topo = Topology::start(
        net,
        &policyd_bin(),
        POLICY,
        &["--now", "2026-12-01T16:59:57-05:00"],
    )
    .unwrap();
    assert_eq!(
        profile(&topo).as_deref(),
        Some("business"),
        "{}",
        topo.diag("")
    );
    let started = Instant::now();
    assert_eq!(
        bulk_through(&topo),
        0,
        "bulk is denied in business hours{}",
        topo.diag("")
    );

    let deadline = Instant::now() + Duration::from_secs(8);
    while profile(&topo).as_deref() != Some("off_hours") {
        assert!(
            Instant::now() < deadline,
            "no flip to off_hours{}",
            topo.diag("")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let flipped_after = started.elapsed();
    // The boundary was at most two seconds away; the scheduler ticks four
    // times a second.
    assert!(
        flipped_after < Duration::from_secs(4),
        "flipped after {flipped_after:?}"
    );
    assert_eq!(
        bulk_through(&topo),
        N,
        "bulk is free off-hours{}",
        topo.diag("")
    );
    let log = topo.daemon.log_text();
    assert!(
        log.contains("profile changed") && log.contains("to=off_hours"),
        "{log}"
    );
}

#[test]
fn a_pinned_profile_ignores_the_schedule() {
    let _timing = crate::rates::shared();
    let net = Net::new("pin", 221, &[], &["10.221.0.2/24"]).unwrap();
    let policy = POLICY.replace("10.220.0.2", "10.221.0.2");
    let topo = Topology::start(
        net,
        &policyd_bin(),
        &policy,
        &[
            "--now",
            "2026-12-01T10:00:00-05:00",
            "--profile",
            "off_hours",
        ],
    )
    .unwrap();
    assert_eq!(
        profile(&topo).as_deref(),
        Some("off_hours"),
        "{}",
        topo.diag("")
    );
}

#[test]
fn an_unknown_profile_is_refused() {
    let _timing = crate::rates::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, POLICY).unwrap();
    // In a namespace of its own: the command must fail before attaching,
    // but if it did not, it would attach to this namespace's loopback.
    let ns = policyd_tests::NetNs::new("badprof").unwrap();
    let out = ns
        .command(&policyd_bin().display().to_string())
        .args(["run", "--iface", "lo", "--profile", "weekend", "--pin-dir"])
        .arg(format!(
            "/sys/fs/bpf/policyd-test-{}-badprof",
            std::process::id()
        ))
        .arg("--policy")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no profile `weekend`; it has: off_hours, business"),
        "{stderr}"
    );
}
