//! Byte quotas with real traffic (issue 11): a user's budget is used up
//! and the exhaustion action applies, in the kernel, with events at 80 %
//! and 100 %; the use survives a `kill -9` and restart (pinned), `status`,
//! `explain` and the metrics show it, and a reload that raises the budget
//! keeps what was used.

use std::time::Duration;

use super::policyd;

use policyd_tests::{
    Daemon, metric_value, policyd_bin,
    topology::{Net, Topology},
};

const ALICE: &str = "10.162.0.2";
const BOB: &str = "10.162.0.3";
/// 40 000 bytes: 281 datagrams of 142 bytes (100 of payload) fit, the
/// 282nd reaches it.
const POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.162.0.2"]

[[user]]
name = "bob"
ips = ["10.162.0.3"]

[[quota]]
user = "alice"
quota = "40KB/day"
exhausted = "deny"
"#;

fn used(topo: &Topology) -> (u64, u64) {
    let body = topo.metrics().unwrap_or_default();
    let labels = [("user", "alice"), ("class", "_all")];
    (
        metric_value(&body, "policyd_quota_used_bytes", &labels).unwrap_or(0),
        metric_value(&body, "policyd_quota_limit_bytes", &labels).unwrap_or(0),
    )
}

#[test]
fn a_used_up_quota_denies_and_survives_a_restart_and_a_reload() {
    let _timing = crate::rates::shared();
    let net = Net::new(
        "quota",
        162,
        &[],
        &[&format!("{ALICE}/24"), &format!("{BOB}/24")],
    )
    .unwrap();
    let mut topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();
    assert_eq!(used(&topo), (0, 40_000));

    // 400 datagrams: the budget lets 282 through, then alice is denied.
    let arrived = topo.through(ALICE, 7000, 400).unwrap();
    let body = topo.metrics().unwrap();
    let diag = topo.diag(&body);
    assert!((270..=282).contains(&arrived), "{arrived} arrived{diag}");
    let (u, limit) = used(&topo);
    assert!(
        (40_000..40_000 + 142).contains(&u),
        "used {u} of {limit}{diag}"
    );
    assert_eq!(topo.through(ALICE, 7001, 20).unwrap(), 0, "used up{diag}");
    assert_eq!(topo.through(BOB, 7002, 20).unwrap(), 20, "bob has no quota");
    for percent in ["80", "100"] {
        let needle = format!("\"percent\":{percent}");
        let event = topo
            .wait_for_event(Duration::from_secs(5), |l| {
                l.contains("\"event\":\"quota\"") && l.contains(&needle)
            })
            .unwrap_or_else(|| panic!("no {percent}% event{diag}"));
        assert!(
            event.contains("\"user\":\"alice\"") && event.contains("\"class\":\"_all\""),
            "{event}"
        );
    }
    let pins = topo.daemon.pin_dir.clone();
    let pin_arg = pins.display().to_string();
    let status = policyd(&topo, &["status", "--pin-dir", &pin_arg]);
    assert!(
        status.contains("quotas: 1 (1 used up)") && status.contains("alice"),
        "{status}"
    );
    let policy_file = topo.dir.path().join("policy.toml");
    let policy_arg = policy_file.display().to_string();
    let explain = policyd(
        &topo,
        &[
            "explain",
            "--policy",
            &policy_arg,
            "--src",
            ALICE,
            "--dst",
            "10.162.0.1",
            "--proto",
            "udp",
            "--dport",
            "7000",
            "--pin-dir",
            &pin_arg,
        ],
    );
    assert!(
        explain.contains("quota:") && explain.contains("used up"),
        "{explain}"
    );

    // The use is pinned: kill -9 and a restart keep alice denied.
    topo.daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    let next = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &policy_file,
        Topology::metrics_addr(),
        &topo.dir.path().join("next.log"),
        &["--pin-dir", &pin_arg],
    )
    .unwrap();
    assert_eq!(used(&topo).0, u, "the use survived the restart");
    assert_eq!(topo.through(ALICE, 7003, 20).unwrap(), 0, "still used up");

    // A reload that doubles the budget keeps the use: alice passes again,
    // counted on top of it.
    let reloads = topo.reloads("success");
    policyd_tests::topology::replace_file(&policy_file, &POLICY.replace("40KB", "80KB")).unwrap();
    let pid = libc::pid_t::try_from(next.pid()).unwrap();
    // SAFETY: kill(2) on the test's own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    topo.wait_until("the reload", || topo.reloads("success") > reloads);
    assert_eq!(topo.through(ALICE, 7004, 20).unwrap(), 20, "room again");
    assert_eq!(used(&topo), (u + 20 * 142, 80_000));
}
