//! DNS answers: which addresses a response gives for the names asked.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use hickory_proto::serialize::binary::DecodeError;
use thiserror::Error;

use super::domain::normalise;

/// An address a response gives for a name asked, and the names that led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The question's name first, then each CNAME target up to the address
    /// record's owner, all normalised.
    pub chain: Vec<String>,
    pub addr: IpAddr,
    /// The least TTL along the chain: the answer is stale once any link is.
    pub ttl: u32,
}

/// Bounds on the work one response can cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsLimits {
    pub max_len: usize,
    pub max_answers: usize,
    pub max_questions: usize,
    /// CNAME links followed from a question name.
    pub max_hops: usize,
}

impl Default for DnsLimits {
    fn default() -> Self {
        Self {
            // The most a DNS message can be (TCP's length prefix is 16 bits).
            max_len: 65535,
            max_answers: 256,
            // Servers answer one question; a few allow for odd ones.
            max_questions: 4,
            max_hops: 8,
        }
    }
}

#[derive(Debug, Error)]
pub enum DnsError {
    #[error("not a DNS response (QR bit clear)")]
    NotResponse,
    #[error("truncated or malformed DNS message")]
    Malformed(#[source] DecodeError),
    #[error("DNS message of {len} bytes is over the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("DNS message has {count} {section} records, over the limit of {max}")]
    TooManyRecords {
        section: &'static str,
        count: usize,
        max: usize,
    },
    #[error("CNAME chain from {name} is longer than {max} links")]
    ChainTooLong { name: String, max: usize },
    #[error("CNAME chain from {name} loops")]
    ChainLoop { name: String },
}

pub fn parse_response(payload: &[u8]) -> Result<Vec<Resolved>, DnsError> {
    parse_response_with(payload, &DnsLimits::default())
}

pub fn parse_response_with(payload: &[u8], limits: &DnsLimits) -> Result<Vec<Resolved>, DnsError> {
    if payload.len() > limits.max_len {
        return Err(DnsError::Oversized {
            len: payload.len(),
            max: limits.max_len,
        });
    }
    // Checked on the raw header before decoding, so a message claiming many
    // records costs nothing to refuse.
    if payload.len() >= 12 {
        if payload[2] & 0x80 == 0 {
            return Err(DnsError::NotResponse);
        }
        let count = |i: usize| usize::from(u16::from_be_bytes([payload[i], payload[i + 1]]));
        for (section, at, max) in [
            ("question", 4, limits.max_questions),
            ("answer", 6, limits.max_answers),
        ] {
            if count(at) > max {
                return Err(DnsError::TooManyRecords {
                    section,
                    count: count(at),
                    max,
                });
            }
        }
    }
    let message = Message::from_vec(payload).map_err(DnsError::Malformed)?;
    if message.metadata.message_type != MessageType::Response {
        return Err(DnsError::NotResponse);
    }
    // NXDOMAIN, SERVFAIL and the rest give no addresses: nothing to learn,
    // and not a parse failure.
    if message.metadata.response_code != ResponseCode::NoError {
        return Ok(Vec::new());
    }
    let answers: Vec<Answer> = message.answers.iter().filter_map(Answer::of).collect();
    let mut out = Vec::new();
    for query in &message.queries {
        if query.query_class != DNSClass::IN {
            continue;
        }
        let Some(qname) = name_of(&query.name) else {
            continue;
        };
        resolve(qname, &answers, limits, &mut out)?;
    }
    Ok(out)
}

/// The part of an answer record that matters here.
enum Data {
    Cname(String),
    Addr(IpAddr),
}

struct Answer {
    owner: String,
    ttl: u32,
    data: Data,
}

impl Answer {
    fn of(r: &Record) -> Option<Self> {
        if r.dns_class != DNSClass::IN {
            return None;
        }
        let data = match &r.data {
            RData::A(a) => Data::Addr(IpAddr::V4(a.0)),
            RData::AAAA(a) => Data::Addr(IpAddr::V6(a.0)),
            RData::CNAME(c) => Data::Cname(name_of(&c.0)?),
            _ => return None,
        };
        Some(Self {
            owner: name_of(&r.name)?,
            ttl: r.ttl,
            data,
        })
    }
}

/// A name off the wire in normalised form; names no pattern could match
/// (bad characters, the root) are dropped.
fn name_of(name: &Name) -> Option<String> {
    normalise(&name.to_ascii()).ok()
}

/// Follows the CNAME chain from `qname` and collects the addresses of its
/// names. Only records whose owner is on the chain count: an off-path
/// attacker or a broken resolver can add records for other names to an
/// answer, and learning them would let a response for one name put
/// addresses into another name's set.
fn resolve(
    qname: String,
    answers: &[Answer],
    limits: &DnsLimits,
    out: &mut Vec<Resolved>,
) -> Result<(), DnsError> {
    // (name, least TTL of the links from the question to it)
    let mut chain: Vec<(String, u32)> = vec![(qname, u32::MAX)];
    loop {
        let (current, ttl) = chain
            .last()
            .map(|(n, t)| (n.as_str(), *t))
            .unwrap_or_default();
        let next = answers.iter().find_map(|a| match &a.data {
            Data::Cname(target) if a.owner == current => Some((target, a.ttl)),
            _ => None,
        });
        let Some((target, link_ttl)) = next else {
            break;
        };
        if chain.iter().any(|(n, _)| n == target) {
            return Err(DnsError::ChainLoop {
                name: chain[0].0.clone(),
            });
        }
        if chain.len() > limits.max_hops {
            return Err(DnsError::ChainTooLong {
                name: chain[0].0.clone(),
                max: limits.max_hops,
            });
        }
        chain.push((target.clone(), ttl.min(link_ttl)));
    }
    for a in answers {
        let Data::Addr(addr) = a.data else { continue };
        let Some(at) = chain.iter().position(|(n, _)| *n == a.owner) else {
            continue;
        };
        out.push(Resolved {
            chain: chain[..=at].iter().map(|(n, _)| n.clone()).collect(),
            addr,
            ttl: chain[at].1.min(a.ttl),
        });
    }
    Ok(())
}
