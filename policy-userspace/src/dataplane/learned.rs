//! Destinations learned by name, from userspace: the daemon's side of
//! policy-common's learn.rs. It reads the packets the kernel copies
//! (NAMES_RING), lets `names::Learner` parse them, and writes what was
//! learned into LEARNED4, LEARNED6 and NAME_FLOWS, keeping a copy of what
//! each entry holds so a reload can restage it per generation.

use std::{
    collections::{HashMap as StdHashMap, VecDeque},
    net::{IpAddr, SocketAddr},
};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, RingBuf},
};
use policy_common::{
    DomainName, LearnedKey4, LearnedKey6, LearnedSets, MAP_LEARNED_NAMES, MAP_LEARNED4,
    MAP_LEARNED6, MAP_NAME_FLOWS, MAP_NAMES_RING, NameFlowKey, SCOPE_EVERYONE, SnoopHeader,
    USER_UNIDENTIFIED, dir, snoop_kind,
};

use super::{DataplaneError, maps};
use crate::{
    names::{Change, LearnedKey, Learner, Outcome, domain::DomainMatcher, domain::DomainPattern},
    policy::{CompiledPolicy, NamesScope},
};

/// Server names kept for the flows they classified, for events: the
/// oldest go first (the kernel's LRU forgets flows on its own).
const MAX_FLOW_NAMES: usize = 65_536;

/// What the daemon did with the copied packets, beyond the learner's own
/// statistics: for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamesCounters {
    /// Records read from the ring.
    pub records: u64,
    /// Records too short for their header (never written by the kernel).
    pub bad_records: u64,
    /// TLS flows classified by a server name in a set.
    pub flows_named: u64,
    /// Map writes the kernel refused (logged; the entry is missing there).
    pub write_errors: u64,
}

/// The learned tables, kernel and userspace.
pub struct LearnedMaps {
    learner: Learner,
    v4: HashMap<MapData, LearnedKey4, LearnedSets>,
    v6: HashMap<MapData, LearnedKey6, LearnedSets>,
    flows: HashMap<MapData, NameFlowKey, LearnedSets>,
    /// Each learned address's name, for `policyd status`.
    book: HashMap<MapData, LearnedKey6, DomainName>,
    /// What the learned maps hold, per key: both generations' bitmaps.
    held: StdHashMap<LearnedKey, LearnedSets>,
    flow_names: StdHashMap<NameFlowKey, String>,
    flow_order: VecDeque<NameFlowKey>,
    /// The generation in force.
    generation: u32,
    scope: NamesScope,
    /// The sets that name domains: (index, name), for the metrics.
    sets: Vec<(usize, String)>,
    /// How long a flow named in a set stays classified without traffic
    /// (the TTL cap: the flow's own name, not an answer, vouches for it).
    flow_ttl_ns: u64,
    pub counters: NamesCounters,
    /// Entries an earlier policyd wrote, with their expiry.
    adopted: Vec<(KernelKey, u64)>,
}

/// A key of either learned map.
#[derive(Debug, Clone, Copy)]
enum KernelKey {
    V4(LearnedKey4),
    V6(LearnedKey6),
}

/// The matcher of a compiled policy's domain sets.
pub fn matcher(policy: &CompiledPolicy) -> DomainMatcher {
    DomainMatcher::new(policy.domains.iter().filter_map(|(set, d)| {
        // Validated when the policy was read; a pattern that no longer
        // parses would be a bug, and matching nothing is the safe side.
        DomainPattern::parse(d).ok().map(|p| (*set, p))
    }))
}

fn domain_sets(policy: &CompiledPolicy) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = policy
        .domains
        .iter()
        .map(|(i, _)| {
            (
                *i as usize,
                policy.sets.get(*i as usize).cloned().unwrap_or_default(),
            )
        })
        .collect();
    out.dedup();
    out
}

fn addr16(a: IpAddr) -> [u8; 16] {
    crate::policy::addr16(a)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl LearnedMaps {
    /// Takes the learned maps out of `ebpf`. What an earlier policyd
    /// learned stays in force until it expires (clients cache answers, so
    /// a restart must not forget them): it is adopted without its names,
    /// kept in the sets of the same names across policy writes, and
    /// removed at its expiry.
    pub(super) fn take(ebpf: &mut Ebpf, policy: &CompiledPolicy) -> Result<Self, DataplaneError> {
        let typed = |name: &'static str| DataplaneError::map(name, "unexpected map type");
        let v4: HashMap<MapData, LearnedKey4, LearnedSets> =
            HashMap::try_from(maps::take(ebpf, MAP_LEARNED4)?).map_err(typed(MAP_LEARNED4))?;
        let v6: HashMap<MapData, LearnedKey6, LearnedSets> =
            HashMap::try_from(maps::take(ebpf, MAP_LEARNED6)?).map_err(typed(MAP_LEARNED6))?;
        let flows: HashMap<MapData, NameFlowKey, LearnedSets> =
            HashMap::try_from(maps::take(ebpf, MAP_NAME_FLOWS)?).map_err(typed(MAP_NAME_FLOWS))?;
        let book: HashMap<MapData, LearnedKey6, DomainName> =
            HashMap::try_from(maps::take(ebpf, MAP_LEARNED_NAMES)?)
                .map_err(typed(MAP_LEARNED_NAMES))?;
        let mut adopted = Vec::new();
        for (k, v) in v4.iter().filter_map(Result::ok) {
            adopted.push((KernelKey::V4(k), v.expires_ns));
        }
        for (k, v) in v6.iter().filter_map(Result::ok) {
            adopted.push((KernelKey::V6(k), v.expires_ns));
        }
        let limits = policy.names.limits();
        Ok(Self {
            learner: Learner::new(limits, matcher(policy)),
            v4,
            v6,
            flows,
            book,
            held: StdHashMap::new(),
            flow_names: StdHashMap::new(),
            flow_order: VecDeque::new(),
            generation: 0,
            scope: policy.names.scope(),
            sets: domain_sets(policy),
            flow_ttl_ns: nanos(limits.ttl_cap),
            counters: NamesCounters::default(),
            adopted,
        })
    }

    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// The sets that name domains: (index, name).
    pub fn domain_sets(&self) -> &[(usize, String)] {
        &self.sets
    }

    /// The scope an answer's addresses are learned under.
    fn scope_of(&self, h: &SnoopHeader) -> u32 {
        match self.scope {
            NamesScope::Everyone => SCOPE_EVERYONE,
            // The user the answer went to: on its way to them it travels
            // their download direction. An answer travelling upload left
            // one of the users' own DNS servers for a host policyd does not
            // know: whatever it teaches is for unidentified senders.
            NamesScope::User if h.dir == dir::DOWNLOAD => h.user,
            NamesScope::User => USER_UNIDENTIFIED,
        }
    }

    /// Handles one ring-buffer record.
    pub fn handle_record(&mut self, record: &[u8], now_ns: u64) {
        self.counters.records += 1;
        let header_len = size_of::<SnoopHeader>();
        if record.len() < header_len {
            self.counters.bad_records += 1;
            return;
        }
        // SAFETY: the record holds a whole header (checked); read unaligned.
        let h: SnoopHeader = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
        let end = (header_len + h.len as usize).min(record.len());
        let frame = &record[header_len..end];
        let scope = self.scope_of(&h);
        match self.learner.handle_frame(frame, scope, now_ns) {
            Outcome::Learned(changes) => self.write(&changes),
            Outcome::Sni {
                client,
                server,
                name,
                sets,
                ..
            } if h.kind == snoop_kind::TLS => self.name_flow(client, server, name, sets, now_ns),
            _ => {}
        }
    }

    /// Drops what expired by `now_ns` (the kernel already ignores it).
    pub fn expire(&mut self, now_ns: u64) {
        let changes = self.learner.table.expire(now_ns);
        self.write(&changes);
        let (gone, kept) = std::mem::take(&mut self.adopted)
            .into_iter()
            .partition(|(_, expires)| *expires <= now_ns);
        self.adopted = kept;
        self.remove_adopted(gone);
    }

    fn remove_adopted(&mut self, gone: Vec<(KernelKey, u64)>) {
        for (k, _) in gone {
            let _ = match k {
                KernelKey::V4(k) => {
                    let _ = self.book.remove(&LearnedKey6 {
                        scope: k.scope,
                        addr: policy_common::v4_mapped(k.addr.to_ne_bytes()),
                    });
                    self.v4.remove(&k)
                }
                KernelKey::V6(k) => {
                    let _ = self.book.remove(&k);
                    self.v6.remove(&k)
                }
            };
        }
    }

    /// Entries adopted from an earlier policyd, still in force.
    pub fn adopted(&self) -> usize {
        self.adopted.len()
    }

    /// The flow key, seen from the user (the client), and its entry: the
    /// sets its server name is in (none: the flow is still recorded, so
    /// that the kernel stops copying its handshake).
    fn name_flow(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        name: Option<String>,
        sets: u64,
        now_ns: u64,
    ) {
        let key = NameFlowKey {
            user_addr: addr16(client.ip()),
            remote_addr: addr16(server.ip()),
            user_port: client.port(),
            remote_port: server.port(),
        };
        let value = LearnedSets {
            sets: [sets; 2],
            expires_ns: if sets == 0 {
                0
            } else {
                now_ns.saturating_add(self.flow_ttl_ns)
            },
        };
        if let Err(e) = self.flows.insert(key, value, 0) {
            self.counters.write_errors += 1;
            tracing::warn!(error = %e, "cannot record a TLS flow's server name");
            return;
        }
        if sets != 0 {
            self.counters.flows_named += 1;
            if let Some(name) = name {
                if self.flow_names.insert(key, name).is_none() {
                    self.flow_order.push_back(key);
                }
                while self.flow_order.len() > MAX_FLOW_NAMES {
                    if let Some(old) = self.flow_order.pop_front() {
                        self.flow_names.remove(&old);
                    }
                }
            }
        }
    }

    /// The name an event's remote end was learned or named by, if any.
    pub fn name_for(&self, user: u32, remote: IpAddr, flow: Option<NameFlowKey>) -> Option<&str> {
        if let Some(name) = flow.and_then(|k| self.flow_names.get(&k)) {
            return Some(name);
        }
        let scope = match self.scope {
            NamesScope::Everyone => SCOPE_EVERYONE,
            NamesScope::User => user,
        };
        self.learner.table.name_of(scope, remote)
    }

    fn put(&mut self, key: LearnedKey, value: LearnedSets) -> Result<(), aya::maps::MapError> {
        match key.addr {
            IpAddr::V4(a) => self.v4.insert(
                LearnedKey4 {
                    scope: key.scope,
                    addr: u32::from_ne_bytes(a.octets()),
                },
                value,
                0,
            ),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.insert(
                    LearnedKey4 {
                        scope: key.scope,
                        addr: u32::from_ne_bytes(v4.octets()),
                    },
                    value,
                    0,
                ),
                None => self.v6.insert(
                    LearnedKey6 {
                        scope: key.scope,
                        addr: a.octets(),
                    },
                    value,
                    0,
                ),
            },
        }
    }

    /// The name book's key of `key`: IPv4 as mapped.
    fn book_key(key: LearnedKey) -> LearnedKey6 {
        LearnedKey6 {
            scope: key.scope,
            addr: addr16(key.addr),
        }
    }

    fn delete(&mut self, key: LearnedKey) {
        let _ = self.book.remove(&Self::book_key(key));
        let _ = match key.addr {
            IpAddr::V4(a) => self.v4.remove(&LearnedKey4 {
                scope: key.scope,
                addr: u32::from_ne_bytes(a.octets()),
            }),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.remove(&LearnedKey4 {
                    scope: key.scope,
                    addr: u32::from_ne_bytes(v4.octets()),
                }),
                None => self.v6.remove(&LearnedKey6 {
                    scope: key.scope,
                    addr: a.octets(),
                }),
            },
        };
        self.held.remove(&key);
    }

    /// Applies the learner's changes to both generations: outside a
    /// reload only the one in force is read, and the next reload restages
    /// the other.
    fn write(&mut self, changes: &[Change]) {
        for c in changes {
            match *c {
                Change::Upsert {
                    key,
                    sets,
                    expires_ns,
                } => {
                    let value = LearnedSets {
                        sets: [sets; 2],
                        expires_ns,
                    };
                    match self.put(key, value) {
                        Ok(()) => {
                            if self.held.insert(key, value).is_none()
                                && let Some(name) = self.learner.table.name_of(key.scope, key.addr)
                            {
                                let name = DomainName::new(name.as_bytes());
                                // For status only: a failure costs a name
                                // shown, never enforcement.
                                let _ = self.book.insert(Self::book_key(key), name, 0);
                            }
                        }
                        Err(e) => {
                            self.counters.write_errors += 1;
                            tracing::warn!(error = %e, addr = %key.addr, "cannot write a learned address");
                        }
                    }
                }
                Change::Remove(key) => self.delete(key),
            }
        }
    }

    /// Before a reload's switch to generation `new`: every entry gets the
    /// new policy's sets in `new`'s bitmap, the old one's untouched, so a
    /// packet reads the sets of the generation it runs under. Returns what
    /// the new policy no longer puts in any set, for [`Self::finish`].
    ///
    /// `old_sets` names the sets of the generation in force by index (as
    /// pinned): an adopted entry, which has no names to match again, keeps
    /// the sets of the same names under the new generation (none where a
    /// name is gone).
    pub(super) fn stage(
        &mut self,
        policy: &CompiledPolicy,
        new: u32,
        old_sets: &[Option<String>],
    ) -> Vec<LearnedKey> {
        self.scope = policy.names.scope();
        self.sets = domain_sets(policy);
        self.flow_ttl_ns = nanos(policy.names.limits().ttl_cap);
        let changes = self.learner.set_matcher(matcher(policy));
        let (old, new_slot) = (((new + 1) & 1) as usize, (new & 1) as usize);
        let remap = |bits: u64| {
            (0..64).filter(|i| bits >> i & 1 != 0).fold(0u64, |out, i| {
                let name = old_sets.get(i).and_then(Option::as_deref);
                match name.and_then(|n| policy.sets.iter().position(|s| s == n)) {
                    Some(j) if j < 64 => out | 1 << j,
                    _ => out,
                }
            })
        };
        for i in 0..self.adopted.len() {
            let (k, _) = self.adopted[i];
            let _ = match k {
                KernelKey::V4(k) => self.v4.get(&k, 0).map(|mut v| {
                    v.sets[new_slot] = remap(v.sets[old]);
                    self.v4.insert(k, v, 0)
                }),
                KernelKey::V6(k) => self.v6.get(&k, 0).map(|mut v| {
                    v.sets[new_slot] = remap(v.sets[old]);
                    self.v6.insert(k, v, 0)
                }),
            };
        }
        let mut gone = Vec::new();
        for c in changes {
            match c {
                Change::Upsert {
                    key,
                    sets,
                    expires_ns,
                } => {
                    let mut value = self.held.get(&key).copied().unwrap_or(LearnedSets {
                        sets: [0; 2],
                        expires_ns,
                    });
                    value.sets[(new & 1) as usize] = sets;
                    value.expires_ns = expires_ns;
                    match self.put(key, value) {
                        Ok(()) => {
                            self.held.insert(key, value);
                        }
                        Err(_) => self.counters.write_errors += 1,
                    }
                }
                Change::Remove(key) => gone.push(key),
            }
        }
        gone
    }

    /// After the switch to `new`: removes what the new policy dropped.
    pub(super) fn finish(&mut self, gone: Vec<LearnedKey>, new: u32) {
        self.generation = new;
        for key in gone {
            self.delete(key);
        }
    }
}

/// The ring buffer the kernel copies DNS answers and TLS handshakes to.
pub(super) fn take_ring(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, DataplaneError> {
    RingBuf::try_from(maps::take(ebpf, MAP_NAMES_RING)?)
        .map_err(DataplaneError::map(MAP_NAMES_RING, "unexpected map type"))
}
