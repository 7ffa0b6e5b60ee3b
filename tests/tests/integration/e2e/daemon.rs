//! End to end: `policyd run` in a gateway namespace, real UDP and TCP from a
//! client namespace across a veth pair, verdicts checked at the receiver and
//! in `/metrics`. Needs root.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, UdpSocket},
    time::{Duration, Instant},
};

use policyd_tests::{Daemon, NetNs, http_get, metric_sum, metric_value, policyd_bin, veth_pair};
use socket2::{Domain, Socket, Type};

const GW4: &str = "10.201.0.1";
const GW6: &str = "fd00:201::1";
const ALICE4: &str = "10.201.0.2";
const ALICE6: &str = "fd00:201::2";
const MALLORY4: &str = "10.201.0.3";
const MALLORY6: &str = "fd00:201::3";

const POLICY: &str = r#"
[[user]]
name = "alice"
ips = ["10.201.0.2", "fd00:201::2"]

[[user]]
name = "mallory"
ips = ["10.201.0.3", "fd00:201::3"]
action = "deny"
"#;

const PAYLOAD: usize = 200;
const COUNT: usize = 100;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Sends `COUNT` UDP datagrams from each source (in order) to the gateway
/// and returns how many the gateway received from each.
fn udp_exchange(gw: &NetNs, cl: &NetNs, sources: &[&str]) -> HashMap<IpAddr, usize> {
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let receiver = gw
        .spawn(move || {
            let v4 = UdpSocket::bind((ip(GW4), 5000)).unwrap();
            let v6 = UdpSocket::bind((ip(GW6), 5000)).unwrap();
            let _ = bound_tx.send(());
            let mut got: HashMap<IpAddr, usize> = HashMap::new();
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut last = Instant::now();
            for s in [&v4, &v6] {
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            }
            // Stop after a second of silence (or 10 s in all).
            while Instant::now() < deadline && last.elapsed() < Duration::from_secs(1) {
                for s in [&v4, &v6] {
                    if let Ok((_, from)) = s.recv_from(&mut buf) {
                        *got.entry(from.ip()).or_default() += 1;
                        last = Instant::now();
                    }
                }
            }
            got
        })
        .unwrap();
    // Nothing is sent before the receiver's sockets are bound.
    bound
        .recv_timeout(Duration::from_secs(10))
        .expect("the receiver binds its sockets");
    let sources: Vec<IpAddr> = sources.iter().map(|s| ip(s)).collect();
    cl.run(move || {
        for src in sources {
            let sock = UdpSocket::bind((src, 0)).unwrap();
            let dst: SocketAddr = if src.is_ipv4() {
                (ip(GW4), 5000).into()
            } else {
                (ip(GW6), 5000).into()
            };
            for _ in 0..COUNT {
                sock.send_to(&[0x5a; PAYLOAD], dst).unwrap();
                // Pace a little so no socket buffer ever overflows.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    })
    .unwrap();
    receiver.join().unwrap().unwrap()
}

/// Opens a TCP connection from `src` to the gateway and sends 64 KiB; returns
/// whether the gateway received all of it within 3 s.
fn tcp_transfer(gw: &NetNs, cl: &NetNs, src: &str) -> bool {
    const BYTES: usize = 64 * 1024;
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let listener = gw
        .spawn(move || {
            let l = TcpListener::bind((ip(GW4), 5001)).unwrap();
            l.set_nonblocking(true).unwrap();
            let _ = bound_tx.send(());
            let deadline = Instant::now() + Duration::from_secs(4);
            while Instant::now() < deadline {
                if let Ok((mut s, _)) = l.accept() {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    return buf.len();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            0
        })
        .unwrap();
    // Nothing connects before the listener is bound.
    bound
        .recv_timeout(Duration::from_secs(10))
        .expect("the listener binds");
    let src = ip(src);
    let sent = cl
        .run(move || -> std::io::Result<()> {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            sock.bind(&SocketAddr::new(src, 0).into())?;
            sock.connect_timeout(
                &SocketAddr::new(ip(GW4), 5001).into(),
                Duration::from_secs(2),
            )?;
            let mut stream: std::net::TcpStream = sock.into();
            stream.write_all(&[7u8; BYTES])?;
            stream.shutdown(std::net::Shutdown::Write)
        })
        .unwrap();
    let received = listener.join().unwrap().unwrap();
    sent.is_ok() && received == BYTES
}

#[test]
fn denied_user_is_dropped_allowed_user_passes_and_metrics_count_both() {
    let _timing = crate::rates::shared();
    let gw = NetNs::new("gw").unwrap();
    let cl = NetNs::new("cl").unwrap();
    veth_pair(
        (&gw, "gw0", &[&format!("{GW4}/24"), &format!("{GW6}/64")]),
        (
            &cl,
            "cl0",
            &[
                &format!("{ALICE4}/24"),
                &format!("{MALLORY4}/24"),
                &format!("{ALICE6}/64"),
                &format!("{MALLORY6}/64"),
            ],
        ),
    )
    .unwrap();

    // Control: without policyd everybody gets through.
    let before = udp_exchange(&gw, &cl, &[ALICE4, ALICE6, MALLORY4, MALLORY6]);
    for src in [ALICE4, ALICE6, MALLORY4, MALLORY6] {
        assert_eq!(
            before.get(&ip(src)),
            Some(&COUNT),
            "{src} before policyd: {before:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let metrics: SocketAddr = "127.0.0.1:9617".parse().unwrap();
    let mut daemon = Daemon::start(
        &gw,
        &policyd_bin(),
        &["gw0"],
        &policy,
        metrics,
        &dir.path().join("policyd.log"),
        &[],
    )
    .unwrap();
    assert!(gw.xdp_attached("gw0"), "XDP program on gw0");

    let during = udp_exchange(&gw, &cl, &[ALICE4, ALICE6, MALLORY4, MALLORY6]);
    assert_eq!(during.get(&ip(ALICE4)), Some(&COUNT), "{during:?}");
    assert_eq!(during.get(&ip(ALICE6)), Some(&COUNT), "{during:?}");
    assert_eq!(during.get(&ip(MALLORY4)), None, "{during:?}");
    assert_eq!(during.get(&ip(MALLORY6)), None, "{during:?}");
    assert!(
        tcp_transfer(&gw, &cl, ALICE4),
        "alice's TCP transfer completes"
    );
    assert!(
        !tcp_transfer(&gw, &cl, MALLORY4),
        "mallory's TCP connection fails"
    );

    let body = gw
        .run(move || http_get(metrics, "/metrics"))
        .unwrap()
        .unwrap();
    let value = |metric: &str, user: &str, verdict: &str| {
        metric_sum(&body, metric, &[("user", user), ("verdict", verdict)])
    };
    let udp4_frame = (14 + 20 + 8 + PAYLOAD) as u64;
    let udp6_frame = (14 + 40 + 8 + PAYLOAD) as u64;
    let n = COUNT as u64;
    // Alice: every UDP datagram and the TCP segments passed; nothing dropped.
    // (Her host also sends a few packets of its own, e.g. neighbour
    // solicitations, hence lower bounds for what passed.)
    assert_eq!(value("policyd_packets_total", "alice", "deny"), 0);
    assert_eq!(value("policyd_bytes_total", "alice", "deny"), 0);
    let alice_pkts = value("policyd_packets_total", "alice", "pass");
    assert!(alice_pkts >= 2 * n + 3, "alice passed {alice_pkts}");
    let alice_bytes = value("policyd_bytes_total", "alice", "pass");
    assert!(
        alice_bytes >= n * (udp4_frame + udp6_frame) + 64 * 1024,
        "alice bytes {alice_bytes}"
    );
    // Mallory: nothing passed; every datagram and at least the first SYN dropped.
    assert_eq!(value("policyd_packets_total", "mallory", "pass"), 0);
    assert_eq!(value("policyd_packets_total", "mallory", "limit"), 0);
    assert_eq!(value("policyd_bytes_total", "mallory", "pass"), 0);
    let mallory_pkts = value("policyd_packets_total", "mallory", "deny");
    assert!(
        (2 * n + 1..2 * n + 20).contains(&mallory_pkts),
        "mallory dropped {mallory_pkts}"
    );
    let mallory_bytes = value("policyd_bytes_total", "mallory", "deny");
    assert!(
        mallory_bytes >= n * (udp4_frame + udp6_frame),
        "mallory bytes {mallory_bytes}"
    );
    assert!(
        metric_value(&body, "policyd_malformed_packets_total", &[]).is_some(),
        "{body}"
    );

    // SIGTERM: clean exit, enforcement stays; `policyd unload` ends it
    // and traffic flows again.
    let status = daemon
        .stop_with(libc::SIGTERM, Duration::from_secs(10))
        .unwrap();
    assert!(
        status.success(),
        "policyd exit status {status}:\n{}",
        daemon.log_text()
    );
    assert!(gw.xdp_attached("gw0"), "XDP stays attached after a stop");
    assert_eq!(
        udp_exchange(&gw, &cl, &[MALLORY4]).get(&ip(MALLORY4)),
        None,
        "mallory is still denied after a stop"
    );
    let out = policyd_tests::unload(&policyd_bin(), &daemon.pin_dir).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!gw.xdp_attached("gw0"), "XDP program detached by unload");
    let after = udp_exchange(&gw, &cl, &[MALLORY4]);
    assert_eq!(
        after.get(&ip(MALLORY4)),
        Some(&COUNT),
        "mallory after policyd exits"
    );
}

#[test]
fn run_refuses_an_invalid_policy_and_attaches_nothing() {
    let _timing = crate::rates::shared();
    let gw = NetNs::new("bad").unwrap();
    let cl = NetNs::new("badc").unwrap();
    veth_pair((&gw, "gw0", &[]), (&cl, "cl0", &[])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.toml");
    std::fs::write(&policy, "[[user]]\nname = \"a\"\nips = [\"10.0.0.300\"]\n").unwrap();
    let out = gw
        .command(&policyd_bin().display().to_string())
        .args(["run", "--iface", "gw0", "--pin-dir"])
        .arg(dir.path().join("pins-never-used"))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:3:8: user[0].ips[0]"), "{stderr}");
    assert!(!gw.xdp_attached("gw0"));
}

#[test]
fn run_fails_cleanly_on_a_missing_interface() {
    let _timing = crate::rates::shared();
    let gw = NetNs::new("noif").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[settings]\nmode = \"enforce\"\n").unwrap();
    let out = gw
        .command(&policyd_bin().display().to_string())
        .args(["run", "--iface", "nosuch0", "--pin-dir"])
        .arg(format!(
            "/sys/fs/bpf/policyd-test-{}-noif",
            std::process::id()
        ))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no interface named `nosuch0`"), "{stderr}");
    assert!(
        !std::path::Path::new(&format!(
            "/sys/fs/bpf/policyd-test-{}-noif",
            std::process::id()
        ))
        .exists(),
        "checked before anything is pinned"
    );
}
