//! Domain sets with a real DNS server (issue 14): dnsmasq in the gateway's
//! namespace answers the client; a name in a denied set gets its address
//! denied to the user who asked (not to another user), another name
//! passes, a CNAME chain to a matching name is followed, the address leaves
//! the set after its TTL without new answers, and a TLS ClientHello naming
//! a denied domain is classified by name at an address never resolved.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use policyd_tests::{
    metric_sum, metric_value, policyd_bin,
    tls::client_hello,
    topology::{
        EchoServer, Net, Topology,
        dns::{self, Dnsmasq, RecordType, Via, Zone},
        send_hello,
    },
};
use socket2::{Domain, Socket, Type};

use super::policyd;
use crate::rates::{ip, sa};

const GW: &str = "10.171.0.1";
const ALICE: &str = "10.171.0.2";
const BOB: &str = "10.171.0.3";
/// `mail.webmail.test`: in the denied set.
const MAIL: &str = "10.171.0.10";
/// `news.other.test`: in no set.
const NEWS: &str = "10.171.0.11";
/// `x.cdn.webmail.test`, reached through `alias.test`'s CNAME.
const CDN: &str = "10.171.0.12";
/// Never in any answer: reached by address, named only by TLS.
const HARD: &str = "10.171.0.13";
/// The answers' TTL, and the policy's floor below it: the address stays
/// for the TTL itself.
const TTL: u32 = 2;
const POLICY: &str = r#"
[names]
ttl_floor = "1s"
ttl_cap = "5s"

[sets]
webmail = { domains = ["mail.webmail.test", "*.cdn.webmail.test"] }

[[class]]
name = "webmail"
match = { sets = ["webmail"] }

[[user]]
name = "alice"
ips = ["10.171.0.2"]

[[user]]
name = "bob"
ips = ["10.171.0.3"]

[[rule]]
class = "webmail"
action = "deny"
"#;
const WAIT: Duration = Duration::from_millis(700);

fn learned(topo: &Topology) -> u64 {
    let body = topo.metrics().unwrap_or_default();
    metric_value(
        &body,
        "policyd_set_learned_addresses",
        &[("set", "webmail")],
    )
    .unwrap_or(0)
}

/// Whether `src` gets an echo through a TCP connection to `dst` (a few
/// bytes that are no TLS).
fn reaches(topo: &Topology, src: &str, dst: SocketAddr) -> bool {
    send_hello(&topo.cl, Some(ip(src)), dst, b"ping", WAIT)
        .unwrap()
        .carried_after_hello()
}

fn resolve(topo: &Topology, server: SocketAddr, name: &str) -> Vec<IpAddr> {
    dns::resolve_via(
        &topo.cl,
        &Via::udp(server).from(ip(ALICE)),
        name,
        RecordType::A,
    )
    .unwrap()
    .addrs()
}

/// Connects from Alice to `dst`, sends a ClientHello naming `sni`, waits
/// until the daemon has read it (`named` flows, or `seen` hellos, past
/// their count before), then sends more: whether that reached the server.
fn after_hello(topo: &Topology, dst: SocketAddr, sni: &str) -> bool {
    let hellos = |t: &Topology| {
        metric_sum(
            &t.metrics().unwrap_or_default(),
            "policyd_tls_hellos_total",
            &[],
        )
    };
    let before = hellos(topo);
    let hello = client_hello(Some(sni), false);
    let stream = topo
        .cl
        .run(move || -> std::io::Result<TcpStream> {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            s.bind(&sa(ALICE, 0).into())?;
            s.connect_timeout(&dst.into(), WAIT)?;
            s.set_tcp_nodelay(true)?;
            let mut s: TcpStream = s.into();
            s.write_all(&hello)?;
            Ok(s)
        })
        .unwrap()
        .unwrap();
    topo.wait_until("the daemon to read the ClientHello", || {
        hellos(topo) > before
    });
    let mut s = stream;
    s.set_read_timeout(Some(WAIT)).unwrap();
    // Whatever the hello's echo did, what comes after it tells.
    let mut echo = vec![0; 4096];
    let _ = s.read(&mut echo);
    s.write_all(b"after").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"after") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.ends_with(b"after")
}

#[test]
fn names_learned_from_dns_answers_and_tls_classify_their_users_traffic() {
    let _timing = crate::rates::shared();
    let extra: Vec<String> = [MAIL, NEWS, CDN, HARD]
        .iter()
        .map(|a| format!("{a}/24"))
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let net = Net::new(
        "names",
        171,
        &extra,
        &[&format!("{ALICE}/24"), &format!("{BOB}/24")],
    )
    .unwrap();
    let topo = Topology::start(net, &policyd_bin(), POLICY, &[]).unwrap();
    let zone = Zone::new(TTL)
        .host("mail.webmail.test", ip(MAIL))
        .host("news.other.test", ip(NEWS))
        .cname("alias.test", "x.cdn.webmail.test")
        .host("x.cdn.webmail.test", ip(CDN));
    let dns = Dnsmasq::start(&topo.gw, ip(GW), &zone).unwrap();
    let servers: Vec<EchoServer> = [sa(MAIL, 8080), sa(NEWS, 8080), sa(CDN, 8080), sa(HARD, 443)]
        .into_iter()
        .map(|a| EchoServer::start(&topo.gw, a).unwrap())
        .collect();
    let diag = |topo: &Topology| topo.diag(&topo.metrics().unwrap_or_default());

    assert!(
        reaches(&topo, ALICE, sa(MAIL, 8080)),
        "nothing learned yet: the address is in no set{}",
        diag(&topo)
    );
    assert_eq!(resolve(&topo, dns.addr(), "mail.webmail.test"), [ip(MAIL)]);
    // The answer passed on its way to Alice; the daemon writes what it
    // taught a moment later (the race docs/policy.md describes).
    topo.wait_until("mail.webmail.test's address to be learned", || {
        learned(&topo) >= 1
    });
    assert!(
        !reaches(&topo, ALICE, sa(MAIL, 8080)),
        "alice resolved it: denied{}",
        diag(&topo)
    );
    assert!(
        reaches(&topo, BOB, sa(MAIL, 8080)),
        "bob never asked: his traffic is not alice's lookups'{}",
        diag(&topo)
    );
    let event = topo
        .wait_for_event(Duration::from_secs(5), |l| {
            l.contains("\"event\":\"deny\"") && l.contains("\"class\":\"webmail\"")
        })
        .unwrap_or_else(|| panic!("no deny event{}", diag(&topo)));
    assert!(
        event.contains("\"domain\":\"mail.webmail.test\"") && event.contains("\"user\":\"alice\""),
        "{event}"
    );

    assert_eq!(resolve(&topo, dns.addr(), "news.other.test"), [ip(NEWS)]);
    assert!(reaches(&topo, ALICE, sa(NEWS, 8080)), "another name passes");

    let chain = dns::resolve_via(
        &topo.cl,
        &Via::udp(dns.addr()).from(ip(ALICE)),
        "alias.test",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(chain.cname_chain(), ["alias.test", "x.cdn.webmail.test"]);
    topo.wait_until("the CNAME chain's address to be learned", || {
        learned(&topo) >= 2
    });
    assert!(
        !reaches(&topo, ALICE, sa(CDN, 8080)),
        "a CNAME chain to a matching name is followed{}",
        diag(&topo)
    );

    // What status shows: per set, the addresses, their names and users.
    let pins = topo.daemon.pin_dir.display().to_string();
    let status: serde_json::Value =
        serde_json::from_str(&policyd(&topo, &["status", "--pin-dir", &pins, "--json"])).unwrap();
    let learned_json = &status["learned"];
    assert_eq!(learned_json["enabled"], true, "{status}");
    let webmail = learned_json["sets"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["set"] == "webmail"))
        .unwrap_or_else(|| panic!("{status}"));
    let entry = |addr: &str| {
        webmail["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["address"] == addr))
            .unwrap_or_else(|| panic!("{addr} in {webmail}"))
            .clone()
    };
    assert_eq!(entry(MAIL)["name"], "mail.webmail.test");
    assert_eq!(entry(MAIL)["user"], "alice");
    assert_eq!(entry(CDN)["name"], "x.cdn.webmail.test");
    assert!(entry(MAIL)["seconds_left"].as_u64().unwrap() <= u64::from(TTL));

    // A hard-coded address, never resolved: named by its ClientHello.
    assert!(
        after_hello(&topo, sa(HARD, 443), "news.other.test"),
        "a name in no set passes{}",
        diag(&topo)
    );
    assert!(
        !after_hello(&topo, sa(HARD, 443), "mail.webmail.test"),
        "a ClientHello naming a denied domain is classified by name{}",
        diag(&topo)
    );
    let body = topo.metrics().unwrap();
    assert_eq!(
        metric_sum(&body, "policyd_tls_flows_named_total", &[]),
        1,
        "{body}"
    );

    // No new answers: each address leaves the set when its TTL is up, and
    // the traffic passes again.
    topo.wait_until("the learned addresses to expire", || learned(&topo) == 0);
    assert!(
        reaches(&topo, ALICE, sa(MAIL, 8080)),
        "expired: in no set again{}",
        diag(&topo)
    );
    let body = topo.metrics().unwrap();
    assert!(
        metric_sum(&body, "policyd_dns_answers_total", &[]) >= 3,
        "{body}"
    );
    drop(servers);
}
