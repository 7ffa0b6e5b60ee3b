use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;

use super::build::{Rr, query, response};
use crate::names::dns::{DnsError, DnsLimits, parse_response, parse_response_with};

fn ip4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

#[test]
fn a_and_aaaa_answers_are_read() {
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let m = response(
        "Mail.Yahoo.com.",
        &[
            Rr::A("mail.yahoo.com.", [192, 0, 2, 1], 60),
            Rr::Aaaa("mail.yahoo.com.", v6, 30),
        ],
        ResponseCode::NoError,
    );
    let r = parse_response(&m).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].chain, ["mail.yahoo.com"]);
    assert_eq!((r[0].addr, r[0].ttl), (ip4([192, 0, 2, 1]), 60));
    assert_eq!((r[1].addr, r[1].ttl), (IpAddr::V6(v6), 30));
}

#[test]
fn cname_chains_are_followed_with_the_least_ttl() {
    let m = response(
        "mail.yahoo.com.",
        &[
            Rr::Cname("mail.yahoo.com.", "edge.yahoo.net.", 100),
            Rr::Cname("edge.yahoo.net.", "x.cdn.example.", 20),
            Rr::A("x.cdn.example.", [192, 0, 2, 7], 300),
        ],
        ResponseCode::NoError,
    );
    let r = parse_response(&m).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].chain,
        ["mail.yahoo.com", "edge.yahoo.net", "x.cdn.example"]
    );
    assert_eq!(r[0].ttl, 20);
}

#[test]
fn records_off_the_chain_are_ignored() {
    let m = response(
        "mail.yahoo.com.",
        &[
            Rr::A("bank.example.", [203, 0, 113, 9], 300),
            Rr::Cname("other.example.", "mail.yahoo.com.", 300),
            Rr::A("mail.yahoo.com.", [192, 0, 2, 1], 300),
        ],
        ResponseCode::NoError,
    );
    let r = parse_response(&m).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].addr, ip4([192, 0, 2, 1]));
}

#[test]
fn loops_and_long_chains_are_refused() {
    let m = response(
        "a.example.",
        &[
            Rr::Cname("a.example.", "b.example.", 60),
            Rr::Cname("b.example.", "a.example.", 60),
            Rr::A("a.example.", [192, 0, 2, 1], 60),
        ],
        ResponseCode::NoError,
    );
    assert!(matches!(
        parse_response(&m),
        Err(DnsError::ChainLoop { .. })
    ));
    let names: Vec<String> = (0..=9).map(|i| format!("n{i}.example.")).collect();
    let mut rrs: Vec<Rr<'_>> = names
        .windows(2)
        .map(|w| Rr::Cname(&w[0], &w[1], 60))
        .collect();
    rrs.push(Rr::A(&names[9], [192, 0, 2, 1], 60));
    let m = response(&names[0], &rrs, ResponseCode::NoError);
    assert!(matches!(
        parse_response(&m),
        Err(DnsError::ChainTooLong { max: 8, .. })
    ));
    // Eight links are allowed.
    let m = response(&names[1], &rrs, ResponseCode::NoError);
    assert_eq!(parse_response(&m).unwrap()[0].chain.len(), 9);
}

#[test]
fn nxdomain_and_queries_give_nothing() {
    let m = response(
        "a.example.",
        &[Rr::A("a.example.", [192, 0, 2, 1], 60)],
        ResponseCode::NXDomain,
    );
    assert!(parse_response(&m).unwrap().is_empty());
    assert!(matches!(
        parse_response(&query("a.example.")),
        Err(DnsError::NotResponse)
    ));
}

#[test]
fn limits_are_enforced() {
    let rrs: Vec<Rr<'_>> = (0..=20u8)
        .map(|i| Rr::A("a.example.", [192, 0, 2, i], 60))
        .collect();
    let m = response("a.example.", &rrs, ResponseCode::NoError);
    let limits = DnsLimits {
        max_answers: 20,
        ..DnsLimits::default()
    };
    assert!(matches!(
        parse_response_with(&m, &limits),
        Err(DnsError::TooManyRecords { count: 21, .. })
    ));
    let small = DnsLimits {
        max_len: 20,
        ..DnsLimits::default()
    };
    assert!(matches!(
        parse_response_with(&m, &small),
        Err(DnsError::Oversized { .. })
    ));
    assert!(matches!(
        parse_response(&vec![0u8; 70000]),
        Err(DnsError::Oversized { .. })
    ));
}

#[test]
fn truncated_at_every_byte_is_an_error_or_a_subset() {
    let m = response(
        "mail.yahoo.com.",
        &[
            Rr::Cname("mail.yahoo.com.", "edge.yahoo.net.", 100),
            Rr::A("edge.yahoo.net.", [192, 0, 2, 7], 300),
        ],
        ResponseCode::NoError,
    );
    for cut in 0..m.len() {
        match parse_response(&m[..cut]) {
            Err(DnsError::Malformed(e)) => assert!(!e.to_string().is_empty()),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn compression_pointer_loop_is_malformed() {
    // Header: response, one question; the question's name is a pointer to
    // itself (offset 12).
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend([0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(parse_response(&m), Err(DnsError::Malformed(_))));
    // Two pointers to each other, in an answer's owner.
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0];
    m.extend([
        0xc0, 14, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1,
    ]);
    assert!(matches!(parse_response(&m), Err(DnsError::Malformed(_))));
}
