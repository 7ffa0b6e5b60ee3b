//! Restart safety: `kill -9` of the daemon leaves enforcement in force (the
//! pinned links and maps), the next daemon adopts them with the counters
//! intact, a clean stop leaves them in force too, and `policyd unload`
//! removes them. Needs root.

use std::{
    io::{BufRead as _, Read as _},
    time::Duration,
};

use policyd_tests::{
    Daemon, http_get, metric_sum, policyd_bin,
    topology::{Net, Topology},
};

const POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.225.0.2"]

[[user]]
name = "mallory"
ips = ["10.225.0.3"]
action = "deny"
"#;

fn denied(body: &str) -> u64 {
    metric_sum(
        body,
        "policyd_packets_total",
        &[("user", "mallory"), ("verdict", "deny")],
    )
}

#[test]
fn enforcement_survives_kill_9_and_the_next_daemon_adopts_it() {
    let _timing = crate::rates::shared();
    let net = Net::new("restart", 225, &[], &["10.225.0.2/24", "10.225.0.3/24"]).unwrap();
    let mut topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    // Probes for a supervisor: the endpoint serves only once the programs
    // are attached with the policy in force.
    let addr = Topology::metrics_addr();
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        assert_eq!(
            topo.gw.run(move || http_get(addr, path)).unwrap().unwrap(),
            body
        );
    }
    assert_eq!(topo.through("10.225.0.3", 7100, 50).unwrap(), 0);
    assert_eq!(denied(&topo.metrics().unwrap()), 50);

    // kill -9: no chance to clean up. The pins keep the programs attached
    // with the last policy: never fail-open.
    let status = topo
        .daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    assert!(!status.success());
    assert!(
        pins.join("links").join("gw0-xdp").exists(),
        "the link pin stays"
    );
    assert!(topo.gw.xdp_attached("gw0"));
    assert_eq!(
        topo.through("10.225.0.3", 7101, 50).unwrap(),
        0,
        "mallory is still denied"
    );
    assert_eq!(
        topo.through("10.225.0.2", 7102, 50).unwrap(),
        50,
        "alice still passes"
    );

    // The next daemon adopts maps and links: the counters carry on,
    // including what was dropped while no daemon ran. Without the daemon's
    // record and the profile names, as a policyd older than them left its
    // pins: the next one makes them.
    for newer in ["DAEMON", "PROFILE_NAMES"] {
        std::fs::remove_file(pins.join(newer)).unwrap();
    }
    let pin_arg = pins.display().to_string();
    let mut next = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &topo.dir.path().join("policy.toml"),
        "127.0.0.1:9617".parse().unwrap(),
        &topo.dir.path().join("next.log"),
        &["--pin-dir", &pin_arg],
    )
    .unwrap();
    let body = topo.metrics().unwrap();
    assert_eq!(
        denied(&body),
        100,
        "counters intact across the restart{}",
        topo.diag(&body)
    );
    assert!(
        next.log_text().contains("adopting the maps and links"),
        "{}",
        next.log_text()
    );
    assert_eq!(topo.through("10.225.0.3", 7103, 50).unwrap(), 0);
    assert_eq!(denied(&topo.metrics().unwrap()), 150);
    let adopted = status_json(&pins);
    assert_eq!(
        (&adopted["daemon"]["state"], &adopted["daemon"]["pid"]),
        (&"serving".into(), &next.pid().into()),
        "{adopted:#}"
    );
    // The daemon that made the link recorded nothing: the mode is what the
    // interface reports.
    assert_eq!(
        adopted["interfaces"][0]["ingress"], "xdp_native",
        "{adopted:#}"
    );
    assert_eq!(adopted["profile"]["name"], "off_hours", "{adopted:#}");

    // A clean stop leaves enforcement in force (a restart or an upgrade
    // leaves no gap); `policyd unload` ends it.
    let status = next
        .stop_with(libc::SIGTERM, Duration::from_secs(10))
        .unwrap();
    assert!(status.success(), "{}", next.log_text());
    assert!(
        next.log_text().contains("enforcement stays in force"),
        "{}",
        next.log_text()
    );
    assert!(pins.join("links").join("gw0-xdp").exists());
    assert!(topo.gw.xdp_attached("gw0"));
    let stopped = status_json(&pins);
    assert_eq!(stopped["daemon"]["state"], "stopped", "{stopped:#}");
    assert!(stopped["daemon"]["stopped_at"].is_string(), "{stopped:#}");
    assert_eq!(
        topo.through("10.225.0.3", 7104, 50).unwrap(),
        0,
        "mallory is still denied after a clean stop"
    );
    let out = policyd_tests::unload(&policyd_bin(), &pins).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!pins.exists(), "unload removes every pin");
    assert!(!topo.gw.xdp_attached("gw0"));
    assert_eq!(
        topo.through("10.225.0.3", 7105, 50).unwrap(),
        50,
        "nothing enforces any more"
    );
}

#[test]
fn unload_cleans_up_after_a_crash() {
    let _timing = crate::rates::shared();
    let net = Net::new("unload", 226, &[], &["10.226.0.2/24", "10.226.0.3/24"]).unwrap();
    let policy = POLICY.replace("10.225.", "10.226.");
    let mut topo = Topology::start(net, &policyd_bin(), &policy, &[]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    let status = || {
        let out = std::process::Command::new(policyd_bin())
            .args(["status", "--pin-dir"])
            .arg(&pins)
            .arg("--policy")
            .arg(topo.dir.path().join("policy.toml"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = status();
    assert!(ok, "{text}");
    assert!(
        text.contains("attached:    gw0-tc_egress, gw0-xdp"),
        "{text}"
    );
    assert!(
        text.contains("mode:        enforce") && text.contains("profile:     off_hours"),
        "{text}"
    );
    assert!(
        text.contains("exact IPv4 addresses (both generations)"),
        "{text}"
    );
    // The same as JSON, from the pins alone (no --policy): who serves,
    // since when, attached how, and the names.
    let serving = status_json(&pins);
    let daemon = &serving["daemon"];
    assert_eq!(daemon["state"], "serving", "{serving:#}");
    assert_eq!(daemon["pid"], topo.daemon.pid(), "{serving:#}");
    assert_eq!(daemon["lock_holder"], topo.daemon.pid(), "{serving:#}");
    let version = std::process::Command::new(policyd_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        format!("policyd {}", daemon["version"].as_str().unwrap()),
        String::from_utf8_lossy(&version.stdout).trim(),
    );
    assert!(daemon["uptime_seconds"].as_u64().is_some(), "{serving:#}");
    assert_eq!(daemon["reloads"], 0, "{serving:#}");
    let iface = &serving["interfaces"][0];
    assert_eq!(
        (&iface["name"], &iface["side"], &iface["tc_egress"]),
        (&"gw0".into(), &"users".into(), &true.into()),
        "{serving:#}"
    );
    // veth has native XDP: no fallback to generic mode.
    assert_eq!(iface["ingress"], "xdp_native", "{serving:#}");
    assert_eq!(serving["profile"]["name"], "off_hours", "{serving:#}");
    assert_eq!(serving["mode"], "enforce", "{serving:#}");
    assert_eq!(
        serving["ids"]["users"], 3,
        "unidentified, alice, mallory: {serving:#}"
    );
    // `check` and `explain` as JSON, on the same policy.
    let policy_file = topo.dir.path().join("policy.toml");
    let check = json_of(
        std::process::Command::new(policyd_bin())
            .args(["check", "--json"])
            .arg(&policy_file),
    );
    assert_eq!(
        (&check["ok"], &check["users"], &check["profiles"][0]),
        (&true.into(), &2.into(), &"off_hours".into()),
        "{check:#}"
    );
    let explain = json_of(
        std::process::Command::new(policyd_bin())
            .args([
                "explain",
                "--json",
                "--src",
                "10.226.0.3",
                "--dst",
                "10.226.0.1",
                "--policy",
            ])
            .arg(&policy_file),
    );
    assert_eq!(
        (&explain["user"], &explain["verdict"]),
        (&"mallory".into(), &"deny".into()),
        "{explain:#}"
    );

    // `policyd top` ranks users from the pinned counters: mallory's
    // denied burst is in her totals; alice, sending during the interval,
    // leads by rate.
    assert_eq!(topo.through("10.226.0.3", 7110, 50).unwrap(), 0);
    let mut top = std::process::Command::new(policyd_bin())
        .args(["top", "--count", "1", "--interval", "1.5", "--pin-dir"])
        .arg(&pins)
        .arg("--policy")
        .arg(topo.dir.path().join("policy.toml"))
        .env("RUST_LOG", "info,policyd::cli::top=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Alice's traffic must fall inside top's interval: wait until top has
    // read the counters its frame counts from.
    let mut log = String::new();
    let mut stderr = std::io::BufReader::new(top.stderr.take().unwrap());
    while !log.contains("the first frame counts from here") {
        assert!(
            stderr.read_line(&mut log).unwrap() > 0,
            "top ended before reading the counters:\n{log}"
        );
    }
    assert_eq!(topo.through("10.226.0.2", 7111, 50).unwrap(), 50);
    stderr.read_to_string(&mut log).unwrap();
    let out = top.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &log;
    assert!(out.status.success(), "{text}");
    let row = |user: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(user))
            .unwrap_or_else(|| panic!("no row for {user}:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // USER pass/s drop/s pkt/s drop/s limit/s | passed dropped, under a
    // line of units: bits per second passed and dropped apart.
    let (alice, mallory) = (row("alice"), row("mallory"));
    assert!(text.lines().nth(2).unwrap().starts_with("alice "), "{text}");
    assert!(text.lines().next().unwrap().contains("pass/s*"), "{text}");
    assert!(alice[1] != "0" && alice[3] != "0", "alice passes: {text}");
    assert_eq!((alice[2].as_str(), alice[8].as_str()), ("0", "0"), "{text}");
    // Mallory's burst was before the interval: no rate, but her dropped
    // bytes are in the totals, none passed.
    assert_eq!(
        (
            mallory[1].as_str(),
            mallory[2].as_str(),
            mallory[7].as_str()
        ),
        ("0", "0", "0"),
        "{text}"
    );
    assert_ne!(mallory[8], "0", "{text}");
    // By direction: everything so far was uploads.
    let out = std::process::Command::new(policyd_bin())
        .args([
            "top",
            "--by",
            "direction",
            "--count",
            "1",
            "--interval",
            "0.1",
        ])
        .arg("--pin-dir")
        .arg(&pins)
        .output()
        .unwrap();
    let by_dir = String::from_utf8_lossy(&out.stdout);
    assert!(
        by_dir.starts_with("DIRECTION ") && by_dir.lines().any(|l| l.starts_with("upload ")),
        "{by_dir}"
    );

    topo.daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    // The kernel state outlives the daemon, and status reads it, saying
    // the daemon is gone.
    let (ok, after_crash) = status();
    assert!(ok && after_crash.contains("gw0-xdp"), "{after_crash}");
    assert!(
        after_crash.contains(&format!(
            "daemon:      not running (enforcement pinned by pid {}",
            daemon["pid"]
        )),
        "{after_crash}"
    );
    let gone = status_json(&pins);
    assert_eq!(
        (&gone["daemon"]["state"], &gone["daemon"]["pid"]),
        (&"gone".into(), &daemon["pid"]),
        "{gone:#}"
    );
    assert!(gone["daemon"]["lock_holder"].is_null(), "{gone:#}");
    assert_eq!(gone["interfaces"], serving["interfaces"], "{gone:#}");
    assert!(topo.gw.xdp_attached("gw0"));
    let out = std::process::Command::new(policyd_bin())
        .args(["unload", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("detached gw0-xdp") && stdout.contains("detached gw0-tc_egress"),
        "{stdout}"
    );
    assert!(!pins.exists());
    assert!(!topo.gw.xdp_attached("gw0"));
    let (ok, gone) = status();
    assert!(!ok && gone.contains("nothing is pinned"), "{gone}");
    // Nothing left: unloading again is harmless.
    let out = std::process::Command::new(policyd_bin())
        .args(["unload", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to unload"));
}

/// The JSON document a command prints; it must succeed.
fn json_of(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn status_json(pins: &std::path::Path) -> serde_json::Value {
    json_of(
        std::process::Command::new(policyd_bin())
            .args(["status", "--json", "--pin-dir"])
            .arg(pins),
    )
}
