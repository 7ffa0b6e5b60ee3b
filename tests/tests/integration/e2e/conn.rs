//! Connection-rate limits with real TCP (issue 11): what marks a mass
//! mailing is many connections, so a large message goes at full speed while
//! a burst of short connections from the same user is held to the rate.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use policyd_tests::{
    metric_value, policyd_bin,
    topology::{Net, Topology},
};
use socket2::{Domain, Socket, Type};

use crate::rates::{ip, sa};

const GW: &str = "10.160.0.1";
const ALICE: &str = "10.160.0.2";
const SMTP: u16 = 25;
/// 20 connections a minute, 20 at once, and no byte or packet rate.
const POLICY: &str = r#"
[[class]]
name = "mail"
match = { proto = "tcp", ports = [25] }

[[user]]
name = "alice"
ips = ["10.160.0.2"]

[[rule]]
class = "mail"
action = "limit 20conn/min"
"#;
const BURST: usize = 20;
const MESSAGE: usize = 20 * 1024 * 1024;
const ATTEMPTS: usize = 200;

/// The sink's thread in the gateway namespace.
type Sink = thread::JoinHandle<std::io::Result<std::io::Result<()>>>;

/// Accepts on the gateway's SMTP port until `stop`, reading each connection
/// to its end; sends (bytes, time from accept to end) per connection.
fn smtp_sink(topo: &Topology, stop: Arc<AtomicBool>) -> (mpsc::Receiver<(usize, Duration)>, Sink) {
    let (bound_tx, bound) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let handle = topo
        .gw
        .spawn(move || {
            let l = TcpListener::bind(sa(GW, SMTP))?;
            l.set_nonblocking(true)?;
            let _ = bound_tx.send(());
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let done = done_tx.clone();
                        thread::spawn(move || {
                            let start = Instant::now();
                            s.set_nonblocking(false).ok();
                            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            let mut buf = vec![0; 1 << 16];
                            let mut n = 0;
                            while let Ok(k @ 1..) = s.read(&mut buf) {
                                n += k;
                            }
                            let _ = done.send((n, start.elapsed()));
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            Ok(())
        })
        .expect("a thread in the gateway namespace");
    bound
        .recv_timeout(Duration::from_secs(10))
        .expect("the SMTP sink binds");
    (done, handle)
}

#[test]
fn a_large_message_goes_at_full_speed_while_many_connections_are_held() {
    let _timing = crate::rates::serial();
    let net = Net::new("conn", 160, &[], &[&format!("{ALICE}/24")]).unwrap();
    let topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (done, sink) = smtp_sink(&topo, Arc::clone(&stop));

    // The message: one connection (the first of the burst), 20 MiB. The
    // mailing starts once it is connected, or its SYNs could take the
    // whole burst first.
    let (connected_tx, connected) = mpsc::channel();
    let message = topo
        .cl
        .spawn(move || -> std::io::Result<()> {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            sock.bind(&sa(ALICE, 0).into())?;
            sock.connect_timeout(&sa(GW, SMTP).into(), Duration::from_secs(2))?;
            let _ = connected_tx.send(());
            let mut stream: std::net::TcpStream = sock.into();
            stream.write_all(&vec![b'm'; MESSAGE])?;
            stream.shutdown(std::net::Shutdown::Write)
        })
        .unwrap();
    connected
        .recv_timeout(Duration::from_secs(5))
        .expect("the message's connection opens");
    // Meanwhile, a mass mailing: 200 connections at once, given until just
    // before the first SYN retransmission (1 s) to open.
    let opened = topo
        .cl
        .run(|| -> std::io::Result<usize> {
            let mut socks = Vec::with_capacity(ATTEMPTS);
            for _ in 0..ATTEMPTS {
                let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                sock.set_nonblocking(true)?;
                sock.bind(&sa(ALICE, 0).into())?;
                // EINPROGRESS: the SYN is on its way.
                let _ = sock.connect(&SocketAddr::new(ip(GW), SMTP).into());
                socks.push(sock);
            }
            let deadline = Instant::now() + Duration::from_millis(800);
            let connected =
                |socks: &[Socket]| socks.iter().filter(|s| s.peer_addr().is_ok()).count();
            while Instant::now() < deadline && connected(&socks) < ATTEMPTS {
                thread::sleep(Duration::from_millis(20));
            }
            Ok(connected(&socks))
        })
        .unwrap()
        .unwrap();
    message.join().unwrap().unwrap().unwrap();

    // The sink reports every connection that ended: the opened ones (closed
    // with nothing sent) and the message.
    let mut message_done = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ended = 0;
    while ended < opened + 1 && Instant::now() < deadline {
        if let Ok((bytes, took)) = done.recv_timeout(Duration::from_millis(200)) {
            ended += 1;
            if bytes > 0 {
                message_done = Some((bytes, took));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sink.join().unwrap().unwrap().unwrap();
    let metrics = topo.metrics().unwrap();
    let diag = topo.diag(&metrics);
    let (bytes, took) = message_done.unwrap_or_else(|| panic!("the message never ended{diag}"));
    assert_eq!(bytes, MESSAGE, "the whole message arrives{diag}");
    eprintln!(
        "20 MiB message in {took:?} ({:.0} Mbit/s); {opened} of {ATTEMPTS} connections opened",
        MESSAGE as f64 * 8.0 / took.as_secs_f64() / 1e6
    );
    // A packet rate or a byte rate this slow would have taken minutes; on
    // veth the message takes well under a second.
    assert!(
        took < Duration::from_secs(5),
        "the message took {took:?}{diag}"
    );
    // The message's connection took one of the burst; the rest of it went
    // to the mailing, and no token came back within the second (one per
    // 3 s).
    assert_eq!(opened, BURST - 1, "connections the mailing opened{diag}");
    let refused = metric_value(
        &metrics,
        "policyd_packets_total",
        &[
            ("user", "alice"),
            ("class", "mail"),
            ("direction", "upload"),
            ("verdict", "limit"),
        ],
    )
    .unwrap_or(0);
    assert!(
        refused >= (ATTEMPTS - opened) as u64,
        "every refused connection's SYN is counted as a limit drop: {refused}{diag}"
    );
}
