//! Frames, DNS messages and ClientHellos for the tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{PacketBuilder, VlanId};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub(super) const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

pub(super) fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

pub(super) enum Rr<'a> {
    A(&'a str, [u8; 4], u32),
    Aaaa(&'a str, Ipv6Addr, u32),
    Cname(&'a str, &'a str, u32),
}

/// A response to `question` (type A) with these answers.
pub(super) fn response(question: &str, answers: &[Rr<'_>], rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::response(0x1234, OpCode::Query);
    m.metadata.response_code = rcode;
    m.add_query(Query::query(name(question), RecordType::A));
    for rr in answers {
        let r = match rr {
            Rr::A(owner, ip, ttl) => {
                Record::from_rdata(name(owner), *ttl, RData::A(A(Ipv4Addr::from(*ip))))
            }
            Rr::Aaaa(owner, ip, ttl) => {
                Record::from_rdata(name(owner), *ttl, RData::AAAA(AAAA(*ip)))
            }
            Rr::Cname(owner, target, ttl) => {
                Record::from_rdata(name(owner), *ttl, RData::CNAME(CNAME(name(target))))
            }
        };
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}

pub(super) fn query(question: &str) -> Vec<u8> {
    let mut m = Message::new(0x4321, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(question), RecordType::A));
    m.to_vec().unwrap()
}

/// An Ethernet frame carrying `payload` over UDP (or TCP with `tcp`).
pub(super) fn frame(
    src: IpAddr,
    dst: IpAddr,
    tcp: bool,
    ports: (u16, u16),
    vlans: usize,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC, MAC);
    let vlan = |n: u16| VlanId::try_new(n).unwrap();
    let mut out = Vec::new();
    macro_rules! finish {
        ($ip:expr) => {{
            let ip = $ip;
            if tcp {
                ip.tcp(ports.0, ports.1, 1, 1024)
                    .write(&mut out, payload)
                    .unwrap();
            } else {
                ip.udp(ports.0, ports.1).write(&mut out, payload).unwrap();
            }
        }};
    }
    macro_rules! ip {
        ($l:expr) => {{
            let l = $l;
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => finish!(l.ipv4(s.octets(), d.octets(), 64)),
                (IpAddr::V6(s), IpAddr::V6(d)) => finish!(l.ipv6(s.octets(), d.octets(), 64)),
                _ => panic!("mixed families"),
            }
        }};
    }
    match vlans {
        0 => ip!(eth),
        1 => ip!(eth.single_vlan(vlan(10))),
        _ => ip!(eth.double_vlan(vlan(10), vlan(20))),
    }
    out
}

pub(super) fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// A DNS answer frame from 192.0.2.53 to 192.0.2.10 over UDP.
pub(super) fn dns_frame(message: &[u8]) -> Vec<u8> {
    frame(
        v4([192, 0, 2, 53]),
        v4([192, 0, 2, 10]),
        false,
        (53, 40000),
        0,
        message,
    )
}

/// A TLS record holding a ClientHello with these extensions.
pub(super) fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(32);
    body.extend([9u8; 32]);
    body.extend([0, 4, 0x13, 0x01, 0x13, 0x02]);
    body.extend([1, 0]);
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend(kind.to_be_bytes());
        exts.extend((data.len() as u16).to_be_bytes());
        exts.extend(data);
    }
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![22, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

pub(super) fn sni_ext(host: &str) -> (u16, Vec<u8>) {
    let mut d = Vec::new();
    d.extend(((host.len() + 3) as u16).to_be_bytes());
    d.push(0);
    d.extend((host.len() as u16).to_be_bytes());
    d.extend(host.as_bytes());
    (0, d)
}
