//! The TLS flow of the kit: a ClientHello goes out as the first segment,
//! byte for byte, to a plain TCP server in another namespace; a flow whose
//! hello is dropped is reported as stalled, within its bound.

use std::{
    net::{IpAddr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use policyd_tests::{
    NetNs,
    tls::client_hello,
    topology::{AFTER_HELLO, EchoServer, Net, send_hello},
};

const SERVER: &str = "10.232.0.1";
const CLIENT: &str = "10.232.0.2";
const TIMEOUT: Duration = Duration::from_millis(500);

fn net(tag: &str) -> Net {
    Net::new(tag, 232, &[], &[&format!("{CLIENT}/24")]).unwrap()
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::new(SERVER.parse().unwrap(), port)
}

fn client() -> Option<IpAddr> {
    Some(CLIENT.parse().unwrap())
}

#[test]
fn the_server_gets_exactly_the_hello_then_the_data_after_it() {
    let _timing = crate::rates::shared();
    let net = net("hlo");
    let server = EchoServer::start(&net.gw, at(443)).unwrap();
    let hellos = [
        client_hello(Some("mail.webmail.test"), false),
        client_hello(Some("public.test"), true),
        client_hello(None, false),
    ];
    for hello in &hellos {
        let ex = send_hello(&net.cl, client(), at(443), hello, TIMEOUT).unwrap();
        assert!(ex.carried_after_hello(), "{ex:?}");
    }
    let served = server.finish(Duration::from_millis(50)).unwrap();
    assert_eq!(served.len(), hellos.len(), "{served:?}");
    for (conn, hello) in served.iter().zip(&hellos) {
        assert_eq!(conn.peer.ip(), client().unwrap());
        assert_eq!(&conn.received[..hello.len()], &hello[..]);
        assert_eq!(&conn.received[hello.len()..], AFTER_HELLO);
    }
}

/// nft in `ns`: drops the input that `matches` (an nft match).
fn drop_input(ns: &NetNs, matches: &str) {
    let rules = format!(
        "table inet kit_drop {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority 0; policy accept;\n\
         \t\t{matches} drop\n\
         \t}}\n\
         }}\n"
    );
    let mut nft = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success());
}

#[test]
fn a_flow_whose_hello_is_dropped_is_reported_stalled_within_its_bound() {
    let _timing = crate::rates::shared();
    let net = net("hls");
    let server = EchoServer::start(&net.gw, at(8443)).unwrap();
    // Segments larger than a handshake's: the hello, as a classifier
    // denying by it would drop it.
    drop_input(&net.gw, "tcp dport 8443 ip length > 100");
    let hello = client_hello(Some("mail.webmail.test"), false);
    let started = Instant::now();
    let ex = send_hello(&net.cl, client(), at(8443), &hello, TIMEOUT).unwrap();
    let took = started.elapsed();
    assert!(
        ex.connected,
        "the handshake is small enough to pass: {ex:?}"
    );
    assert_eq!(ex.hello_echoed, 0, "{ex:?}");
    assert!(!ex.carried_after_hello());
    assert!(took < TIMEOUT * 2, "took {took:?}");
    let served = server.finish(Duration::from_millis(50)).unwrap();
    assert_eq!(served.len(), 1);
    assert!(served[0].received.is_empty(), "{served:?}");
}

#[test]
fn a_flow_whose_handshake_is_dropped_is_not_connected() {
    let _timing = crate::rates::shared();
    let net = net("hlc");
    drop_input(&net.gw, "tcp dport 9443");
    let started = Instant::now();
    let hello = client_hello(Some("mail.webmail.test"), false);
    let ex = send_hello(&net.cl, client(), at(9443), &hello, TIMEOUT).unwrap();
    assert!(!ex.connected, "{ex:?}");
    assert!(started.elapsed() < TIMEOUT * 2);
}
