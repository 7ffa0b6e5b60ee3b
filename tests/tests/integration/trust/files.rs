//! Policy files read safely: a file written in pieces is never loaded
//! half-done, an emptied file is refused, a Kubernetes ConfigMap update (the
//! kubelet's `..data` swap) is noticed, and a policy directory layers its
//! files in name order and notices files coming and going. Real `policyd
//! run`, real UDP traffic. Subnets 10.80-10.89.

use std::{
    io::Write as _,
    net::SocketAddr,
    os::unix::fs::symlink,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use policyd_tests::{
    Daemon, NetNs, metric_sum, policyd_bin,
    topology::{Net, ScratchDir, Topology, UdpSink},
};

/// Starts policyd on `net`'s `gw0` with `policy` (a path inside `dir`).
fn start_at(net: Net, dir: ScratchDir, policy: &Path, extra: &[&str]) -> Topology {
    let daemon = Daemon::start(
        &net.gw,
        &policyd_bin(),
        &["gw0"],
        policy,
        Topology::metrics_addr(),
        &dir.path().join("policyd.log"),
        extra,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Topology {
        daemon,
        cl: net.cl,
        gw: net.gw,
        dir,
    }
}

/// A datagram every 2 ms from `src` to `dst` in `ns`, until `stop` (or a
/// minute at most); joining gives how many were sent.
fn steady(
    ns: &NetNs,
    src: SocketAddr,
    dst: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<std::io::Result<u64>>> {
    let stop = Arc::clone(stop);
    ns.spawn(move || {
        let sock = std::net::UdpSocket::bind(src)?;
        let start = Instant::now();
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            if sock.send_to(&[9; 64], dst).is_ok() {
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(sent)
    })
    .unwrap()
}

/// Round `i` of the policy the writer of the first test writes: mallory is
/// denied by the last line; a user per round makes every round a change.
fn pieces_policy(i: u32) -> String {
    format!(
        "[[user]]\nname = \"alice\"\nips = [\"10.80.0.2\"]\n\n\
         [[user]]\nname = \"round{i}\"\nips = [\"10.80.0.{}\"]\n\n\
         [[user]]\nname = \"mallory\"\nips = [\"10.80.0.3\"]\naction = \"deny\"\n",
        100 + i
    )
}

#[test]
fn a_file_written_in_pieces_is_never_loaded_half_done() {
    let _timing = crate::rates::shared();
    let net = Net::new("pieces", 80, &[], &["10.80.0.2/24", "10.80.0.3/24"]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), &pieces_policy(0), &[]).unwrap();
    let path = topo.dir.path().join("policy.toml");
    let sink = UdpSink::start(&topo.gw, 7080).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mallory = steady(
        &topo.cl,
        "10.80.0.3:0".parse().unwrap(),
        "10.80.0.1:7080".parse().unwrap(),
        &stop,
    );
    // Ten times: truncate, write everything up to mallory's deny (a valid
    // policy in which mallory is allowed), pause for longer than the old
    // 200 ms wait but less than the quiet period, then write the rest.
    for i in 1..=10 {
        let before = topo.reloads("success");
        let full = pieces_policy(i);
        let cut = full.find("action = \"deny\"").unwrap();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&full.as_bytes()[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(&full.as_bytes()[cut..]).unwrap();
        drop(f);
        topo.wait_until(&format!("reload {i}"), || topo.reloads("success") > before);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = mallory.join().unwrap().unwrap().unwrap();
    let got = sink.finish(Duration::from_millis(300)).unwrap();
    let body = topo.metrics().unwrap();
    let denied = metric_sum(
        &body,
        "policyd_packets_total",
        &[("user", "mallory"), ("verdict", "deny")],
    );
    assert!(sent > 1000, "mallory sent only {sent}");
    assert_eq!(
        got.len(),
        0,
        "{} of mallory's {sent} datagrams passed: a prefix was loaded{}",
        got.len(),
        topo.diag(&body)
    );
    assert!(
        denied >= sent,
        "{denied} of {sent} denied{}",
        topo.diag(&body)
    );
    // One reload per complete version, none for a prefix.
    assert_eq!(topo.reloads("success"), 10, "{}", topo.diag(&body));
    assert_eq!(topo.reloads("failure"), 0, "{}", topo.diag(&body));
    // policyd's log and events, written all along in the policy's own
    // directory, are not the policy: they caused no reload.
    assert_eq!(topo.reloads("unchanged"), 0, "{}", topo.diag(&body));
    assert!(
        topo.daemon.log_text().contains("users_added=round10"),
        "the last version is in force{}",
        topo.diag("")
    );
    assert_eq!(
        topo.through("10.80.0.2", 7081, 20).unwrap(),
        20,
        "alice passes"
    );
}

const DENY_MALLORY: &str =
    "[[user]]\nname = \"mallory\"\nips = [\"10.81.0.3\"]\naction = \"deny\"\n";

#[test]
fn an_emptied_file_is_refused_at_start_and_on_reload() {
    let _timing = crate::rates::shared();
    let net = Net::new("empty", 81, &[], &["10.81.0.3/24"]).unwrap();
    let dir = ScratchDir::new("empty-start").unwrap();
    let blank = dir.path().join("blank.toml");
    std::fs::write(&blank, "# nothing here yet\n\n").unwrap();
    let refused = Daemon::start(
        &net.gw,
        &policyd_bin(),
        &["gw0"],
        &blank,
        Topology::metrics_addr(),
        &dir.path().join("refused.log"),
        &[],
    )
    .expect_err("policyd started on an empty policy");
    let why = refused.to_string();
    assert!(
        why.contains("blank.toml: the policy file is empty")
            && why.contains("--allow-empty-policy"),
        "{why}"
    );

    let topo = Topology::start(net, &policyd_bin(), DENY_MALLORY, &[]).unwrap();
    let path = topo.dir.path().join("policy.toml");
    // Truncated to nothing in place, as `> policy.toml` does.
    std::fs::File::create(&path).unwrap();
    topo.wait_until("a refused reload", || topo.reloads("failure") >= 1);
    assert_eq!(
        topo.through("10.81.0.3", 7082, 50).unwrap(),
        0,
        "mallory passed"
    );
    // Not empty, but enforcing nothing where the policy in force does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, "[settings]\nmode = \"enforce\"\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    topo.wait_until("a second refused reload", || topo.reloads("failure") >= 2);
    assert_eq!(
        topo.through("10.81.0.3", 7083, 50).unwrap(),
        0,
        "mallory passed"
    );
    assert_eq!(topo.reloads("success"), 0, "{}", topo.diag(""));
    let log = topo.daemon.log_text();
    assert!(
        log.contains("the policy file is empty")
            && log.contains("no users, no rules and no [unidentified] action")
            && log.contains("reload refused; the previous policy stays in force"),
        "{log}"
    );
}

#[test]
fn an_emptied_file_is_loaded_when_the_operator_allows_it() {
    let _timing = crate::rates::shared();
    let policy = DENY_MALLORY.replace("10.81.", "10.82.");
    let net = Net::new("allowe", 82, &[], &["10.82.0.3/24"]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), &policy, &["--allow-empty-policy"]).unwrap();
    assert_eq!(
        topo.through("10.82.0.3", 7084, 20).unwrap(),
        0,
        "mallory passed"
    );
    std::fs::File::create(topo.dir.path().join("policy.toml")).unwrap();
    topo.wait_until("the empty policy", || topo.reloads("success") >= 1);
    assert_eq!(
        topo.through("10.82.0.3", 7085, 20).unwrap(),
        20,
        "{}",
        topo.diag("")
    );
    assert_eq!(topo.reloads("failure"), 0);
}

/// Publishes `policy` as the kubelet's atomic writer does: a new timestamped
/// directory, a `..data_tmp` symlink to it renamed over `..data`, the old
/// directory removed.
fn kubelet_update(dir: &Path, old: Option<&str>, new: &str, policy: &str) {
    std::fs::create_dir(dir.join(new)).unwrap();
    std::fs::write(dir.join(new).join("policy.toml"), policy).unwrap();
    symlink(new, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    } else {
        symlink("..data/policy.toml", dir.join("policy.toml")).unwrap();
    }
}

#[test]
fn a_configmap_update_is_applied() {
    let _timing = crate::rates::shared();
    let deny = "[[user]]\nname = \"mallory\"\nips = [\"10.83.0.3\"]\naction = \"deny\"\n";
    let allow = "[[user]]\nname = \"mallory\"\nips = [\"10.83.0.3\"]\naction = \"limit 10Mbit\"\n";
    let net = Net::new("cmap", 83, &[], &["10.83.0.3/24"]).unwrap();
    let dir = ScratchDir::new("cmap").unwrap();
    let mount = dir.path().join("config");
    std::fs::create_dir(&mount).unwrap();
    kubelet_update(&mount, None, "..2026_12_01_10_00_00.1", deny);
    let topo = start_at(net, dir, &mount.join("policy.toml"), &[]);
    assert_eq!(
        topo.through("10.83.0.3", 7086, 20).unwrap(),
        0,
        "mallory passed"
    );

    kubelet_update(
        &mount,
        Some("..2026_12_01_10_00_00.1"),
        "..2026_12_01_10_05_00.2",
        allow,
    );
    topo.wait_until("the first update", || topo.reloads("success") >= 1);
    assert_eq!(
        topo.through("10.83.0.3", 7087, 20).unwrap(),
        20,
        "{}",
        topo.diag("")
    );
    // The second update goes through a directory that did not exist when
    // policyd started: the chain was resolved again.
    kubelet_update(
        &mount,
        Some("..2026_12_01_10_05_00.2"),
        "..2026_12_01_10_10_00.3",
        deny,
    );
    topo.wait_until("the second update", || topo.reloads("success") >= 2);
    assert_eq!(
        topo.through("10.83.0.3", 7088, 20).unwrap(),
        0,
        "{}",
        topo.diag("")
    );
    assert_eq!(topo.reloads("failure"), 0, "{}", topo.diag(""));
}

#[test]
fn a_policy_directory_layers_in_name_order_and_notices_files_coming_and_going() {
    let _timing = crate::rates::shared();
    let net = Net::new("pdir", 84, &[], &["10.84.0.2/24", "10.84.0.3/24"]).unwrap();
    let dir = ScratchDir::new("pdir").unwrap();
    let pd = dir.path().join("policy.d");
    std::fs::create_dir(&pd).unwrap();
    // The later file refers to what the earlier one defines: read in any
    // other order, the policy is invalid. Written last-first, so neither
    // creation order nor its reverse is name order by accident.
    std::fs::write(
        pd.join("20-site.toml"),
        "[[rule]]\nclass = \"sink\"\nuser = \"mallory\"\naction = \"deny\"\n",
    )
    .unwrap();
    std::fs::write(
        pd.join("10-base.toml"),
        "[[class]]\nname = \"sink\"\nmatch = { proto = \"udp\" }\n\n\
         [[user]]\nname = \"alice\"\nips = [\"10.84.0.2\"]\n\n\
         [[user]]\nname = \"mallory\"\nips = [\"10.84.0.3\"]\n",
    )
    .unwrap();
    // Not a layer (and not TOML: read as one, it would stop policyd).
    std::fs::write(pd.join("notes.txt"), "not a layer").unwrap();
    let topo = start_at(net, dir, &pd, &[]);
    assert_eq!(
        topo.through("10.84.0.3", 7090, 20).unwrap(),
        0,
        "mallory passed"
    );
    assert_eq!(topo.through("10.84.0.2", 7091, 20).unwrap(), 20, "alice");

    // A new layer.
    std::fs::write(
        pd.join("30-alice.toml"),
        "[[rule]]\nclass = \"sink\"\nuser = \"alice\"\naction = \"deny\"\n",
    )
    .unwrap();
    topo.wait_until("the new file", || topo.reloads("success") >= 1);
    assert_eq!(
        topo.through("10.84.0.2", 7092, 20).unwrap(),
        0,
        "{}",
        topo.diag("")
    );
    std::fs::remove_file(pd.join("30-alice.toml")).unwrap();
    topo.wait_until("the file removed", || topo.reloads("success") >= 2);
    assert_eq!(
        topo.through("10.84.0.2", 7093, 20).unwrap(),
        20,
        "{}",
        topo.diag("")
    );
    assert_eq!(
        topo.through("10.84.0.3", 7094, 20).unwrap(),
        0,
        "mallory passed"
    );
    let body = topo.metrics().unwrap();
    assert_eq!(topo.reloads("failure"), 0, "{}", topo.diag(&body));
    assert_eq!(topo.reloads("unchanged"), 0, "{}", topo.diag(&body));
}
