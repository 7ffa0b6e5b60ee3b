//! dnsmasq in a test namespace answers the records a test gives it, with
//! the TTL it gives, over UDP and TCP, to the kit's client in another
//! namespace (what the DNS-learned domain sets' tests stand on, issue 14).

use std::net::IpAddr;

use policyd_tests::topology::{
    Dnsmasq, Net,
    dns::{self, Data, Error, RecordType, ResponseCode, Via, Zone},
};

const SERVER: &str = "10.230.0.1";
const NEWS: &str = "10.230.0.3";
const CLIENT: &str = "10.230.0.2";
const SERVER6: &str = "fd00:230::1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

fn net(tag: &str) -> Net {
    Net::new(
        tag,
        230,
        &[&format!("{NEWS}/24")],
        &[&format!("{CLIENT}/24")],
    )
    .unwrap()
}

/// Two names of a set to learn, a CNAME to one of them, and another name.
fn zone() -> Zone {
    Zone::new(2)
        .host("mail.webmail.test", ip(SERVER))
        .host("mail.webmail.test", ip(SERVER6))
        .cname("alias.test", "mail.webmail.test")
        .host("news.other.test", ip(NEWS))
}

#[test]
fn dnsmasq_answers_the_zone_with_its_ttl_over_udp_and_tcp() {
    let _timing = crate::rates::shared();
    let net = net("dnsk");
    let dnsmasq = Dnsmasq::start(&net.gw, ip(SERVER), &zone()).unwrap();
    let server = dnsmasq.addr();
    let log = || dnsmasq.log();

    let mail = dns::resolve(&net.cl, server, "mail.webmail.test", RecordType::A).unwrap();
    assert_eq!(mail.rcode, ResponseCode::NoError, "{}", log());
    assert_eq!(mail.addrs(), [ip(SERVER)], "{mail:?}");
    assert_eq!(mail.ttls(), [2], "{mail:?}");
    assert_eq!(mail.cname_chain(), ["mail.webmail.test"]);

    let mail6 = dns::resolve(&net.cl, server, "mail.webmail.test", RecordType::AAAA).unwrap();
    assert_eq!(mail6.addrs(), [ip(SERVER6)], "{mail6:?}");

    for alias in [
        dns::resolve(&net.cl, server, "alias.test", RecordType::A).unwrap(),
        dns::resolve_tcp(&net.cl, server, "alias.test", RecordType::A).unwrap(),
    ] {
        assert_eq!(
            alias.cname_chain(),
            ["alias.test", "mail.webmail.test"],
            "{alias:?}"
        );
        assert_eq!(alias.addrs(), [ip(SERVER)], "{alias:?}");
        assert_eq!(alias.ttls(), [2, 2], "{alias:?}");
        assert_eq!(
            alias.records[0].data,
            Data::Cname("mail.webmail.test".into())
        );
    }

    let news = dns::resolve_via(
        &net.cl,
        &Via::tcp(server).from(ip(CLIENT)),
        "news.other.test",
        RecordType::A,
    )
    .unwrap();
    assert_eq!(news.addrs(), [ip(NEWS)], "{news:?}");
    assert_eq!(news.ttls(), [2]);

    let unknown = dns::resolve(&net.cl, server, "nowhere.test", RecordType::A).unwrap();
    assert_eq!(unknown.rcode, ResponseCode::NXDomain, "{unknown:?}");
    assert!(unknown.records.is_empty());

    // The queries came from the client's namespace, not the host.
    assert!(
        log().contains(&format!("query[A] news.other.test from {CLIENT}")),
        "{}",
        log()
    );
}

#[test]
fn a_query_nobody_answers_times_out_within_its_bound() {
    let _timing = crate::rates::shared();
    let net = net("dnsq");
    let via = Via {
        timeout: std::time::Duration::from_millis(200),
        ..Via::udp("10.230.0.1:53".parse().unwrap())
    };
    let started = std::time::Instant::now();
    // No dnsmasq: the port is closed, and an ICMP port unreachable says so.
    let err = dns::resolve_via(&net.cl, &via, "mail.webmail.test", RecordType::A).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::Timeout { .. }),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn dnsmasq_on_an_address_the_namespace_lacks_fails_with_its_log() {
    let _timing = crate::rates::shared();
    let net = net("dnsf");
    let err = Dnsmasq::start(&net.gw, ip("10.231.0.1"), &zone()).unwrap_err();
    let Error::Exited { log, .. } = &err else {
        panic!("not an early exit: {err}");
    };
    assert!(log.contains("listening socket"), "{log}");
}
