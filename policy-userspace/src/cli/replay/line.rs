//! One line per packet: when, who to whom, what, and the verdict.

use std::net::{IpAddr, Ipv6Addr};

use super::{
    engine::{Outcome, Step},
    report::{name, reason_name},
};
use crate::{
    model::{Parsed, parse},
    policy::CompiledPolicy,
    wire::Direction,
};

/// The addresses, ports and protocol of a frame, as text.
fn endpoints(frame: &[u8]) -> String {
    match parse(frame) {
        Parsed::Ip(p) => {
            let addr = |a: [u8; 16]| Ipv6Addr::from(a).to_canonical();
            let proto = match p.proto {
                6 => "tcp".to_owned(),
                17 => "udp".to_owned(),
                1 | 58 => "icmp".to_owned(),
                n => format!("proto {n}"),
            };
            let end = |a: IpAddr, port: u16| match (a, p.has_ports) {
                (IpAddr::V6(a), true) => format!("[{a}]:{port}"),
                (a, true) => format!("{a}:{port}"),
                (a, false) => a.to_string(),
            };
            format!(
                "{proto} {} > {}",
                end(addr(p.src), p.sport),
                end(addr(p.dst), p.dport)
            )
        }
        Parsed::Other(p) => format!(
            "ethertype {:#06x} {} > {}",
            p.ethertype,
            mac(&p.src_mac),
            mac(&p.dst_mac)
        ),
        Parsed::Malformed => "malformed".to_owned(),
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Seconds since the capture's first packet.
fn offset(s: &Step, first_ns: u64) -> f64 {
    s.ts_ns.saturating_sub(first_ns) as f64 / 1e9
}

pub(super) fn text(policy: &CompiledPolicy, s: &Step, frame: &[u8], first_ns: u64) -> String {
    let mut line = format!(
        "#{} {:.6} {} {} bytes:",
        s.n,
        offset(s, first_ns),
        endpoints(frame),
        s.len
    );
    match s.outcome {
        Outcome::Refused => line.push_str(" refused by the kernel's test run (too short)"),
        Outcome::Oversize => line.push_str(" longer than a test run takes (GRO/TSO): not replayed"),
        _ => {
            line.push_str(&format!(
                " user={} class={} direction={} verdict={} reason={}",
                name(policy, s.user),
                policy
                    .classes
                    .get(s.class as usize)
                    .map_or("?", String::as_str),
                Direction::from_wire(s.dir),
                s.outcome.name(),
                reason_name(s.outcome, s.reason),
            ));
            if !s.agrees {
                line.push_str("  <-- the kernel disagrees with the model: please report this");
            }
        }
    }
    line
}

pub(super) fn json(
    policy: &CompiledPolicy,
    s: &Step,
    frame: &[u8],
    first_ns: u64,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "n": s.n,
        "time": offset(s, first_ns),
        "ts_ns": s.ts_ns,
        "bytes": s.len,
        "packet": endpoints(frame),
        "verdict": s.outcome.name(),
    });
    if !matches!(s.outcome, Outcome::Refused | Outcome::Oversize) {
        v["user"] = name(policy, s.user).into();
        v["class"] = policy
            .classes
            .get(s.class as usize)
            .map_or("?", String::as_str)
            .into();
        v["direction"] = Direction::from_wire(s.dir).as_str().into();
        v["reason"] = reason_name(s.outcome, s.reason).into();
        v["agrees"] = s.agrees.into();
    }
    v
}
