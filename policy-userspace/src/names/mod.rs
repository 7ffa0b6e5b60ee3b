//! Sets by domain name (issue 14): the kernel copies DNS responses and the
//! first segment of TLS handshakes to a ring buffer; this module reads
//! them. DNS answers put addresses into the sets naming their domains, for
//! a while ([`learned`]); a ClientHello's server name classifies its flow
//! by name; a hello offering ECH is flagged (its real name is hidden).
//!
//! Pure userspace: frames in, [`Change`]s to the kernel's map out.

pub mod dns;
pub mod domain;
pub mod frame;
pub mod learned;
pub mod tls;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use dns::{DnsError, DnsLimits, Resolved, parse_response};
pub use domain::{DomainError, DomainMatcher, DomainPattern, normalise};
pub use frame::{FrameError, Snooped, snooped};
pub use learned::{Change, EntryView, LearnedKey, LearnedTable, Limits, TableStats};
pub use tls::{ClientHello, TlsError, parse_client_hello};

/// What one copied frame came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A DNS response: the changes to write to the kernel's map (none if it
    /// named nothing a set names).
    Learned(Vec<Change>),
    /// A ClientHello.
    Sni {
        client: SocketAddr,
        server: SocketAddr,
        name: Option<String>,
        /// The sets naming `name`.
        sets: u64,
        ech: bool,
    },
    /// Not a DNS response nor a TLS hello (a DNS query from port 53, say).
    Ignored,
    Failed(FailReason),
}

/// Why a frame could not be read, for the metric's `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailReason {
    Frame,
    DnsSegmented,
    DnsMalformed,
    DnsOversized,
    DnsTooManyRecords,
    DnsChain,
    TlsTruncated,
    TlsMalformed,
    TlsNotClientHello,
}

impl FailReason {
    pub const ALL: [FailReason; 9] = [
        Self::Frame,
        Self::DnsSegmented,
        Self::DnsMalformed,
        Self::DnsOversized,
        Self::DnsTooManyRecords,
        Self::DnsChain,
        Self::TlsTruncated,
        Self::TlsMalformed,
        Self::TlsNotClientHello,
    ];

    /// A stable label: metric series are keyed by it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Frame => "frame",
            Self::DnsSegmented => "dns_segmented",
            Self::DnsMalformed => "dns_malformed",
            Self::DnsOversized => "dns_oversized",
            Self::DnsTooManyRecords => "dns_too_many_records",
            Self::DnsChain => "dns_chain",
            Self::TlsTruncated => "tls_truncated",
            Self::TlsMalformed => "tls_malformed",
            Self::TlsNotClientHello => "tls_not_client_hello",
        }
    }

    fn of_dns(e: &DnsError) -> Option<Self> {
        Some(match e {
            DnsError::NotResponse => return None,
            DnsError::Malformed(_) => Self::DnsMalformed,
            DnsError::Oversized { .. } => Self::DnsOversized,
            DnsError::TooManyRecords { .. } => Self::DnsTooManyRecords,
            DnsError::ChainTooLong { .. } | DnsError::ChainLoop { .. } => Self::DnsChain,
        })
    }

    fn of_tls(e: &TlsError) -> Self {
        match e {
            TlsError::Truncated => Self::TlsTruncated,
            TlsError::NotHandshake | TlsError::NotClientHello => Self::TlsNotClientHello,
            TlsError::Malformed(_) | TlsError::BadServerName(_) => Self::TlsMalformed,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnerStats {
    /// DNS responses read.
    pub answers_seen: u64,
    /// Upserts of learned addresses.
    pub learned: u64,
    pub hellos_seen: u64,
    pub ech_seen: u64,
    failures: [u64; FailReason::ALL.len()],
}

impl LearnerStats {
    pub fn parse_failures(&self, reason: FailReason) -> u64 {
        self.failures[reason as usize]
    }

    /// Every reason with its count, zeros included (so each series exists).
    pub fn parse_failures_all(&self) -> impl Iterator<Item = (FailReason, u64)> + '_ {
        FailReason::ALL
            .iter()
            .map(|r| (*r, self.failures[*r as usize]))
    }
}

/// The learned table, the matcher from the policy's sets, and counters.
#[derive(Clone, Debug)]
pub struct Learner {
    pub table: LearnedTable,
    matcher: DomainMatcher,
    stats: LearnerStats,
}

impl Learner {
    pub fn new(limits: Limits, matcher: DomainMatcher) -> Self {
        Self {
            table: LearnedTable::new(limits),
            matcher,
            stats: LearnerStats::default(),
        }
    }

    /// A policy reload: the learned entries are matched again.
    pub fn set_matcher(&mut self, m: DomainMatcher) -> Vec<Change> {
        self.matcher = m;
        self.table.rematch(&self.matcher)
    }

    pub fn matcher(&self) -> &DomainMatcher {
        &self.matcher
    }

    pub fn handle_frame(&mut self, frame: &[u8], scope: u32, now_ns: u64) -> Outcome {
        match snooped(frame) {
            Ok(Snooped::Dns { payload, .. }) => match parse_response(payload) {
                Ok(resolved) => {
                    self.stats.answers_seen += 1;
                    let changes = self.table.observe(scope, &resolved, &self.matcher, now_ns);
                    self.stats.learned += changes
                        .iter()
                        .filter(|c| matches!(c, Change::Upsert { .. }))
                        .count() as u64;
                    Outcome::Learned(changes)
                }
                Err(e) => match FailReason::of_dns(&e) {
                    Some(r) => self.fail(r),
                    None => Outcome::Ignored,
                },
            },
            Ok(Snooped::Tls {
                client,
                server,
                payload,
            }) => match parse_client_hello(payload) {
                Ok(hello) => {
                    self.stats.hellos_seen += 1;
                    self.stats.ech_seen += u64::from(hello.ech);
                    let sets = hello
                        .server_name
                        .as_deref()
                        .map_or(0, |n| self.matcher.sets_of(n));
                    Outcome::Sni {
                        client,
                        server,
                        name: hello.server_name,
                        sets,
                        ech: hello.ech,
                    }
                }
                Err(e) => self.fail(FailReason::of_tls(&e)),
            },
            Err(FrameError::NotIp | FrameError::Uninteresting | FrameError::Fragment) => {
                Outcome::Ignored
            }
            Err(FrameError::Segmented) => self.fail(FailReason::DnsSegmented),
            Err(FrameError::Link(_) | FrameError::Header(_)) => self.fail(FailReason::Frame),
        }
    }

    pub fn stats(&self) -> &LearnerStats {
        &self.stats
    }

    fn fail(&mut self, reason: FailReason) -> Outcome {
        self.stats.failures[reason as usize] += 1;
        Outcome::Failed(reason)
    }
}
