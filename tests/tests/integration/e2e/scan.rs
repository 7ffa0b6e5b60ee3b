//! Scan detection with real traffic (issue 11): a port sweep puts its user
//! in quarantine within the window, ordinary connections do not; the
//! quarantine holds across a `kill -9` and restart, `policyd release` ends
//! it, and it ends on its own (after a reload shortened it).

use std::{
    net::{SocketAddr, TcpListener},
    thread,
    time::{Duration, Instant},
};

use policyd_tests::{
    Daemon, metric_value, policyd_bin,
    topology::{Net, Topology},
};
use socket2::{Domain, Socket, Type};

use crate::rates::{ip, sa};

const GW: &str = "10.161.0.1";
const ALICE: &str = "10.161.0.2";
const BOB: &str = "10.161.0.3";
const POLICY: &str = r#"
[detect.scan]
hosts = 25
ports = 100
window = "60s"
quarantine = "60s"
allow = ["dns"]

[[class]]
name = "dns"
match = { proto = "udp", ports = [53] }

[[user]]
name = "alice"
ips = ["10.161.0.2"]

[[user]]
name = "bob"
ips = ["10.161.0.3"]
"#;

fn quarantined(topo: &Topology) -> u64 {
    let body = topo.metrics().unwrap_or_default();
    metric_value(&body, "policyd_quarantined_users", &[]).unwrap_or(u64::MAX)
}

/// SYNs from `src` to `ports` of the gateway, all at once (closed ports
/// answer with a reset); returns once the answers stop.
fn sweep(topo: &Topology, src: &'static str, ports: std::ops::RangeInclusive<u16>) {
    topo.cl
        .run(move || -> std::io::Result<()> {
            let mut socks = Vec::new();
            for port in ports {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.set_nonblocking(true)?;
                s.bind(&sa(src, 0).into())?;
                let _ = s.connect(&SocketAddr::new(ip(GW), port).into());
                socks.push(s);
            }
            // An answered attempt has an error (refused: every port but
            // Bob's service is closed, and it has stopped listening). Once
            // the quarantine starts the rest go unanswered: stop when the
            // answers stop coming for 200 ms (or after 2 s).
            let answered = |socks: &[Socket]| {
                socks
                    .iter()
                    .filter(|s| matches!(s.take_error(), Ok(Some(_))))
                    .count()
            };
            let deadline = Instant::now() + Duration::from_secs(2);
            let (mut seen, mut since) = (0, Instant::now());
            while seen < socks.len() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
                // take_error clears the error: count each answer once.
                let now = seen + answered(&socks);
                if now > seen {
                    (seen, since) = (now, Instant::now());
                } else if since.elapsed() > Duration::from_millis(200) {
                    break;
                }
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
}

#[test]
fn a_port_sweep_is_quarantined_ordinary_connections_are_not() {
    let _timing = crate::rates::shared();
    let net = Net::new(
        "scan",
        161,
        &[],
        &[&format!("{ALICE}/24"), &format!("{BOB}/24")],
    )
    .unwrap();
    let mut topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();

    // Bob opens 20 ordinary connections to one service. The listener is
    // bound before the first connect (bound in the thread, a connect could
    // come first and be refused).
    let l = topo
        .gw
        .run(|| TcpListener::bind(sa(GW, 5001)))
        .unwrap()
        .unwrap();
    let server = topo
        .gw
        .spawn(move || -> std::io::Result<usize> {
            let mut n = 0;
            while n < 20 {
                let (_s, _) = l.accept()?;
                n += 1;
            }
            Ok(n)
        })
        .unwrap();
    let opened = topo
        .cl
        .run(|| {
            (0..20)
                .filter(|_| {
                    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                    s.bind(&sa(BOB, 0).into()).unwrap();
                    s.connect_timeout(&sa(GW, 5001).into(), Duration::from_secs(2))
                        .is_ok()
                })
                .count()
        })
        .unwrap();
    assert_eq!(opened, 20);
    assert_eq!(server.join().unwrap().unwrap().unwrap(), 20);
    assert_eq!(quarantined(&topo), 0, "ordinary connections are not a scan");

    // Alice sweeps 300 ports: quarantined within the second, by the kernel.
    let start = Instant::now();
    sweep(&topo, ALICE, 1..=300);
    let body = topo.metrics().unwrap();
    let diag = topo.diag(&body);
    assert_eq!(quarantined(&topo), 1, "alice is in quarantine{diag}");
    assert_eq!(
        metric_value(&body, "policyd_quarantines_total", &[("reason", "ports")]),
        Some(1),
        "{diag}"
    );
    let event = topo
        .wait_for_event(Duration::from_secs(5), |l| {
            l.contains("\"event\":\"quarantine\"")
        })
        .unwrap_or_else(|| panic!("no quarantine event{diag}"));
    assert!(
        event.contains("\"user\":\"alice\"") && event.contains("\"reason\":\"ports\""),
        "{event}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // Quarantined: only DNS gets through; bob is untouched.
    assert_eq!(topo.through(ALICE, 7000, 20).unwrap(), 0, "alice is denied");
    assert_eq!(topo.through(ALICE, 53, 20).unwrap(), 20, "but DNS passes");
    assert_eq!(topo.through(BOB, 7001, 20).unwrap(), 20, "bob passes");
    let status = topo
        .gw
        .command(&policyd_bin().display().to_string())
        .args(["status", "--pin-dir"])
        .arg(&topo.daemon.pin_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("1 in quarantine") && text.contains("alice"),
        "{text}"
    );

    // The quarantine is in the pinned state: kill -9 and a restart keep it.
    let pins = topo.daemon.pin_dir.clone();
    topo.daemon
        .stop_with(libc::SIGKILL, Duration::from_secs(5))
        .unwrap();
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
    assert_eq!(
        quarantined(&topo),
        1,
        "still in quarantine after the restart"
    );
    assert_eq!(topo.through(ALICE, 7002, 20).unwrap(), 0);

    // `policyd release` ends it at once.
    let out = topo
        .gw
        .command(&policyd_bin().display().to_string())
        .args(["release", "alice", "--pin-dir", &pin_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(quarantined(&topo), 0);
    assert_eq!(topo.through(ALICE, 7003, 20).unwrap(), 20, "released");

    // A reload makes quarantines 4 s long; a second sweep's ends on its own.
    let reloads = topo.reloads("success");
    policyd_tests::topology::replace_file(
        &topo.dir.path().join("policy.toml"),
        &POLICY.replace("quarantine = \"60s\"", "quarantine = \"4s\""),
    )
    .unwrap();
    let pid = libc::pid_t::try_from(next.pid()).unwrap();
    // SAFETY: kill(2) on the test's own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    topo.wait_until("the reload", || topo.reloads("success") > reloads);
    sweep(&topo, ALICE, 1..=300);
    assert_eq!(quarantined(&topo), 1);
    let began = Instant::now();
    while quarantined(&topo) == 1 && began.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(50));
    }
    let took = began.elapsed();
    assert!(took < Duration::from_secs(6), "ended after {took:?}");
    assert_eq!(topo.through(ALICE, 7004, 20).unwrap(), 20, "over");
}
