//! The daemon's life never fails open (issue 9, items 1, 2, 3 and 12): a
//! start that fails after a crash leaves the adopted enforcement alone, a
//! second daemon on one pin directory is refused, a pin directory someone
//! else made is refused and left alone, and a clean stop leaves enforcement
//! in force and writes every queued event to a file only root can read.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use policyd_tests::{
    Daemon, NetNs, metric_sum, policyd_bin,
    topology::{Blast, ChildGuard, Net, Topology, send_udp},
};

/// alice passes, mallory is denied; `.2` and `.3` of `10.<subnet>.0.0/24`.
fn policy(subnet: u8) -> String {
    format!(
        r#"
[settings]
event_interval = "0ms"

[[user]]
name = "alice"
ips = ["10.{subnet}.0.2"]

[[user]]
name = "mallory"
ips = ["10.{subnet}.0.3"]
action = "deny"
"#
    )
}

fn net(tag: &str, subnet: u8) -> Net {
    let alice = format!("10.{subnet}.0.2/24");
    let mallory = format!("10.{subnet}.0.3/24");
    Net::new(tag, subnet, &[], &[&alice, &mallory]).unwrap()
}

/// Datagrams of user `10.<subnet>.0.<host>` that reach the gateway, of 20
/// sent.
fn through(topo: &Topology, subnet: u8, host: u8, port: u16) -> u64 {
    topo.through(&format!("10.{subnet}.0.{host}"), port, 20)
        .unwrap()
}

/// `policyd run` in `ns` that is expected to fail: whether it succeeded and
/// its stderr. One that is still running after 20 s (it accepted what it
/// should have refused) is killed and counts as a success.
fn failing_run(ns: &NetNs, args: &[&str]) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = ChildGuard::spawn(
        ns.command(&policyd_bin().display().to_string())
            .arg("run")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap()),
    )
    .unwrap();
    let ok = child
        .wait_timeout(Duration::from_secs(20))
        .unwrap()
        .is_none_or(|status| status.success());
    drop(child);
    (ok, std::fs::read_to_string(log.path()).unwrap())
}

/// `policyd run` on `gw0` with `policy` and pin directory `pins`, as
/// [`failing_run`].
fn run_on_pins(ns: &NetNs, policy: &Path, pins: &Path) -> (bool, String) {
    failing_run(
        ns,
        &[
            "--iface",
            "gw0",
            "--policy",
            &policy.display().to_string(),
            "--pin-dir",
            &pins.display().to_string(),
            "--metrics-addr",
            "127.0.0.1:9619",
        ],
    )
}

/// Names of everything under `dir`, sorted: what a refused start must
/// leave exactly as it was.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_failed_start_after_a_crash_leaves_the_adopted_enforcement_in_force() {
    let _timing = crate::rates::shared();
    let topo = Topology::start(net("fstart", 100), &policyd_bin(), &policy(100), &[]).unwrap();
    let mut topo = topo;
    let pins = topo.daemon.pin_dir.clone();
    assert_eq!(through(&topo, 100, 3, 7000), 0, "mallory denied");
    topo.daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
    let before = listing(&pins);

    // The operator mistypes an interface: the start fails, and must not
    // take the crashed daemon's enforcement with it.
    let policy_file = topo.dir.path().join("policy.toml");
    let (ok, stderr) = failing_run(
        &topo.gw,
        &[
            "--iface",
            "gw0",
            "--iface",
            "gw9",
            "--policy",
            &policy_file.display().to_string(),
            "--pin-dir",
            &pins.display().to_string(),
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("gw9"), "names the interface: {stderr}");
    assert_eq!(listing(&pins), before, "every pin is where it was");
    assert!(pins.join("links").join("gw0-xdp").exists());
    assert!(topo.gw.xdp_attached("gw0"));
    assert_eq!(through(&topo, 100, 3, 7001), 0, "mallory still denied");
    assert_eq!(through(&topo, 100, 2, 7002), 20, "alice still passes");
}

#[test]
fn a_second_daemon_on_the_same_pin_dir_is_refused_and_the_first_keeps_enforcing() {
    let _timing = crate::rates::shared();
    let topo = Topology::start(net("second", 101), &policyd_bin(), &policy(101), &[]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    let pid = topo.daemon.pid();
    let policy_file = topo.dir.path().join("policy.toml");
    let pin_arg = pins.display().to_string();
    let second = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &policy_file,
        "127.0.0.1:9618".parse().unwrap(),
        &topo.dir.path().join("second.log"),
        &["--pin-dir", &pin_arg, "--profile", "off_hours"],
    );
    let err = second
        .expect_err("a second daemon must be refused")
        .to_string();
    assert!(
        err.contains(&format!("in use by policyd (pid {pid})")),
        "names the first daemon: {err}"
    );
    // Unloading from under a running daemon is refused too.
    let out = policyd_tests::unload(&policyd_bin(), &pins).unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("pid {pid}")),
        "{out:?}"
    );
    assert!(pins.join("links").join("gw0-xdp").exists());
    // `status` says who serves the pins.
    let out = Command::new(policyd_bin())
        .args(["status", "--pin-dir", &pin_arg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("daemon:      serving (pid {pid}, up ")),
        "{text}"
    );
    assert_eq!(through(&topo, 101, 3, 7010), 0, "mallory still denied");
    assert_eq!(through(&topo, 101, 2, 7011), 20, "alice still passes");
    let body = topo.metrics().unwrap();
    assert_eq!(
        metric_sum(
            &body,
            "policyd_packets_total",
            &[("user", "mallory"), ("verdict", "deny")]
        ),
        20,
        "the first daemon still reads its own counters{}",
        topo.diag(&body)
    );
}

/// A directory under bpffs that the test made, removed on drop.
struct Squat(PathBuf);

impl Drop for Squat {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_pin_dir_someone_else_could_have_made_is_refused_and_left_alone() {
    let _timing = crate::rates::shared();
    let net = net("squat", 102);
    let policy_dir = tempfile::tempdir().unwrap();
    let policy_file = policy_dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(102)).unwrap();
    let squat = Squat(PathBuf::from(format!(
        "/sys/fs/bpf/policyd-test-squat-{}",
        std::process::id()
    )));
    let run = |pins: &Path| run_on_pins(&net.gw, &policy_file, pins);

    // Made first by another user (as anyone can under /sys/fs/bpf), with
    // something of theirs inside.
    std::fs::create_dir(&squat.0).unwrap();
    std::fs::create_dir(squat.0.join("links")).unwrap();
    std::os::unix::fs::chown(&squat.0, Some(65534), Some(65534)).unwrap();
    let (ok, stderr) = run(&squat.0);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("refusing pin directory") && stderr.contains("owned by uid 65534"),
        "{stderr}"
    );
    assert_eq!(listing(&squat.0), ["links"], "nothing removed or added");
    assert_eq!(std::fs::metadata(&squat.0).unwrap().uid(), 65534);
    assert!(!net.gw.xdp_attached("gw0"), "nothing attached");
    let out = policyd_tests::unload(&policyd_bin(), &squat.0).unwrap();
    assert!(!out.status.success(), "unload refuses it too: {out:?}");
    assert!(squat.0.join("links").exists());

    // Root's, but writable by everyone.
    std::os::unix::fs::chown(&squat.0, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&squat.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, stderr) = run(&squat.0);
    assert!(!ok && stderr.contains("lets others write"), "{stderr}");
    assert_eq!(listing(&squat.0), ["links"]);

    // A directory policyd makes itself is root's alone.
    let own = Squat(
        squat
            .0
            .with_file_name(format!("policyd-test-own-{}", std::process::id())),
    );
    let own_arg = own.0.display().to_string();
    let daemon = Daemon::start(
        &net.gw,
        &policyd_bin(),
        &["gw0"],
        &policy_file,
        "127.0.0.1:9617".parse().unwrap(),
        &policy_dir.path().join("own.log"),
        &["--pin-dir", &own_arg],
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&own.0).unwrap().mode() & 0o7777, 0o700);
    drop(daemon);
}

#[test]
fn a_clean_stop_writes_every_queued_event_to_a_private_file_and_keeps_enforcing() {
    let _timing = crate::rates::serial();
    let mut topo = Topology::start(net("drain", 103), &policyd_bin(), &policy(103), &[]).unwrap();
    let pins = topo.daemon.pin_dir.clone();
    let events = topo.dir.path().join("policyd.events.jsonl");
    assert_eq!(
        std::fs::metadata(&events).unwrap().mode() & 0o777,
        0o600,
        "events name users and addresses"
    );
    // Neighbour resolution first, so the flood below is not queued
    // behind it.
    assert_eq!(through(&topo, 103, 3, 7031), 0);
    // Every denied datagram is an event (interval 0); sent as fast as the
    // socket takes them, so the ring buffer still holds some when SIGTERM
    // arrives right after.
    let sent = send_udp(
        &topo.cl,
        Blast {
            src: "10.103.0.3:0".parse().unwrap(),
            dst: "10.103.0.1:7030".parse().unwrap(),
            payload: 20,
            tag: 1,
            max_packets: 3000,
            max_time: Duration::from_secs(5),
            gap: None,
        },
    )
    .unwrap();
    let status = topo
        .daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(10))
        .unwrap();
    assert!(status.success(), "{}", topo.daemon.log_text());
    let written = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""event":"deny""#))
        .count() as u64;

    // The pinned counters say how many the kernel denied and how many
    // events it could not queue; the next daemon reads them.
    assert!(pins.join("links").join("gw0-xdp").exists(), "still pinned");
    let pin_arg = pins.display().to_string();
    let next = Daemon::start(
        &topo.gw,
        &policyd_bin(),
        &["gw0"],
        &topo.dir.path().join("policy.toml"),
        Topology::metrics_addr(),
        &topo.dir.path().join("next.log"),
        &["--pin-dir", &pin_arg],
    )
    .unwrap();
    let body = topo.metrics().unwrap();
    let denied = metric_sum(
        &body,
        "policyd_packets_total",
        &[("user", "mallory"), ("verdict", "deny")],
    );
    let lost = metric_sum(&body, "policyd_events_lost_total", &[]);
    // What reached the program (veth may drop some of a flood before it).
    assert!(
        denied > 1000 && denied <= 20 + sent.packets,
        "{denied} denied of {} sent{}",
        20 + sent.packets,
        topo.diag(&body)
    );
    assert_eq!(
        written + lost,
        denied,
        "every denied packet's event is written or counted as lost ({written} written, {lost} lost)"
    );
    drop(next);
}

#[test]
fn pins_of_an_older_layout_are_refused_by_name_and_left_alone() {
    let _timing = crate::rates::shared();
    let net = net("oldpin", 104);
    let policy_dir = tempfile::tempdir().unwrap();
    let policy_file = policy_dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(104)).unwrap();
    // What older policyds pinned: the LRU table of flows from before the
    // elephant sketch (40-byte flow keys, byte counts), and the name
    // allocation as a hash without preallocation (flags 1) from before it
    // became an array, and the configuration of 104 bytes from before the
    // quota fields.
    for (map, spec) in [
        (
            "CONFIG",
            &["array", "key", "4", "value", "104", "entries", "2"][..],
        ),
        (
            "FLOWS",
            &["lru_hash", "key", "40", "value", "8", "entries", "16"][..],
        ),
        (
            "USER_NAMES",
            &[
                "hash", "key", "4", "value", "72", "entries", "16", "flags", "1",
            ][..],
        ),
    ] {
        let old = Squat(PathBuf::from(format!(
            "/sys/fs/bpf/policyd-test-oldpin-{}-{map}",
            std::process::id()
        )));
        std::fs::create_dir(&old.0).unwrap();
        std::fs::set_permissions(&old.0, std::fs::Permissions::from_mode(0o700)).unwrap();
        let made = Command::new("bpftool")
            .args(["map", "create"])
            .arg(old.0.join(map))
            .arg("type")
            .args(spec)
            .args(["name", map])
            .output()
            .unwrap();
        assert!(made.status.success(), "bpftool: {made:?}");
        let (ok, stderr) = run_on_pins(&net.gw, &policy_file, &old.0);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "from an older policyd (its {map} has another layout)"
            )) && stderr.contains("policyd unload"),
            "{stderr}"
        );
        // The old pin is kept; the start made only the (empty) links
        // directory every pin directory has.
        assert_eq!(listing(&old.0), [map, "links"]);
        assert_eq!(std::fs::read_dir(old.0.join("links")).unwrap().count(), 0);
        assert!(!net.gw.xdp_attached("gw0"), "nothing attached");
    }
}

/// A start the verifier refuses (here: without `CAP_PERFMON`, which the
/// programs' pointer arithmetic needs) has pinned its maps already; the pin
/// directory it made goes with them, so bpffs is left as it was found.
#[test]
fn a_start_the_verifier_refuses_leaves_no_pins_behind() {
    let _timing = crate::rates::shared();
    let net = net("vrefuse", 105);
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy(105)).unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/policyd-test-vrefuse-{}",
        std::process::id()
    ));
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = ChildGuard::spawn(
        net.gw
            .command("setpriv")
            .args(["--bounding-set", "-all,+bpf,+net_admin", "--"])
            .arg(policyd_bin())
            .arg("run")
            .args(["--iface", "gw0", "--policy"])
            .arg(&policy_path)
            .arg("--pin-dir")
            .arg(&pins)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap()),
    )
    .unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    drop(child);
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    // Whatever happens, the test leaves no pins of its own behind.
    let left = pins.exists();
    if left {
        let _ = std::fs::remove_dir_all(&pins);
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "policyd without CAP_PERFMON should have been refused: {status:?}\n{stderr}"
    );
    assert!(
        stderr.contains("verif"),
        "refused by the verifier: {stderr}"
    );
    assert!(
        !left,
        "the refused start left {} behind:\n{stderr}",
        pins.display()
    );
}
