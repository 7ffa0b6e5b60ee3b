//! Addresses learned from DNS answers, per scope, with an expiry: the
//! userspace copy of what the kernel's learned-address map holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::dns::Resolved;
use super::domain::DomainMatcher;

/// Names one address keeps: a CDN address can answer for many names, and
/// without a bound one address could hold any number of them.
pub const MAX_NAMES_PER_ENTRY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The least time an address is kept. Stub resolvers, browsers and
    /// applications cache answers past short TTLs (and reuse open
    /// connections for longer still), so an address dropped when a 30 s
    /// TTL ends would still be in use, and its traffic would no longer be
    /// classified as the set's.
    pub ttl_floor: Duration,
    /// The most time an address is kept, however long its TTL.
    pub ttl_cap: Duration,
    /// Addresses kept per name and scope; the oldest goes first.
    pub per_name: usize,
    /// Entries in the table; the one expiring soonest goes first.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ttl_floor: Duration::from_secs(300),
            ttl_cap: Duration::from_secs(86400),
            per_name: 32,
            max_entries: 65536,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LearnedKey {
    pub scope: u32,
    pub addr: IpAddr,
}

/// What to write to the kernel's map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upsert {
        key: LearnedKey,
        sets: u64,
        expires_ns: u64,
    },
    Remove(LearnedKey),
}

/// One learned address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryView {
    /// The names that put it in its sets, most recently seen last.
    pub names: Vec<String>,
    pub sets: u64,
    pub expires_ns: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries dropped to make room (max_entries reached).
    pub evictions: u64,
    /// A name's oldest address dropped (per_name reached).
    pub per_name_capped: u64,
    /// Entries whose time ran out.
    pub expired: u64,
    /// Entries a reload left in no set.
    pub unmatched: u64,
}

#[derive(Clone, Debug)]
pub struct LearnedTable {
    limits: Limits,
    entries: HashMap<LearnedKey, EntryView>,
    by_expiry: BTreeSet<(u64, LearnedKey)>,
    /// Each name's addresses per scope, oldest first. Holds `addr` exactly
    /// when `entries[(scope, addr)].names` holds the name.
    by_name: HashMap<(u32, String), VecDeque<IpAddr>>,
    stats: TableStats,
}

/// The state of the keys one call touched, before it, to report only what
/// changed.
type Before = BTreeMap<LearnedKey, Option<(u64, u64)>>;

impl LearnedTable {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            by_name: HashMap::new(),
            stats: TableStats::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn observe(
        &mut self,
        scope: u32,
        resolved: &[Resolved],
        matcher: &DomainMatcher,
        now_ns: u64,
    ) -> Vec<Change> {
        let mut before = Before::new();
        for r in resolved {
            let names: Vec<&String> = r.chain.iter().filter(|n| matcher.sets_of(n) != 0).collect();
            if names.is_empty() || self.limits.max_entries == 0 {
                continue;
            }
            let ttl = Duration::from_secs(u64::from(r.ttl)).clamp(
                self.limits.ttl_floor,
                self.limits.ttl_cap.max(self.limits.ttl_floor),
            );
            let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
            let expires_ns = now_ns.saturating_add(ttl_ns);
            let key = LearnedKey {
                scope,
                addr: r.addr,
            };
            self.remember(&mut before, key);
            if !self.entries.contains_key(&key) {
                if self.entries.len() >= self.limits.max_entries {
                    self.evict_soonest(&mut before);
                }
                self.entries.insert(
                    key,
                    EntryView {
                        names: Vec::new(),
                        sets: 0,
                        expires_ns,
                    },
                );
                self.by_expiry.insert((expires_ns, key));
            }
            self.extend(key, expires_ns);
            for name in names {
                self.add_name(&mut before, key, name, matcher);
            }
            self.recompute_sets(key, matcher);
        }
        self.changes(before)
    }

    pub fn expire(&mut self, now_ns: u64) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some(&(at, key)) = self.by_expiry.first() {
            if at > now_ns {
                break;
            }
            self.remove(key);
            self.stats.expired += 1;
            out.push(Change::Remove(key));
        }
        out
    }

    pub fn rematch(&mut self, matcher: &DomainMatcher) -> Vec<Change> {
        let mut before = Before::new();
        let keys: Vec<LearnedKey> = self.entries.keys().copied().collect();
        for key in keys {
            self.remember(&mut before, key);
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            let (keep, drop): (Vec<String>, Vec<String>) = std::mem::take(&mut entry.names)
                .into_iter()
                .partition(|n| matcher.sets_of(n) != 0);
            entry.names = keep;
            for name in drop {
                self.unlink(key, &name);
            }
            if self.entries.get(&key).is_some_and(|e| e.names.is_empty()) {
                self.remove(key);
                self.stats.unmatched += 1;
            } else {
                self.recompute_sets(key, matcher);
            }
        }
        self.changes(before)
    }

    /// The name most recently seen for the address.
    pub fn name_of(&self, scope: u32, addr: IpAddr) -> Option<&str> {
        self.entries
            .get(&LearnedKey { scope, addr })
            .and_then(|e| e.names.last())
            .map(String::as_str)
    }

    pub fn get(&self, key: &LearnedKey) -> Option<&EntryView> {
        self.entries.get(key)
    }

    pub fn entries(&self) -> impl Iterator<Item = (LearnedKey, &EntryView)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Learned addresses per set: element i counts the entries in set i.
    pub fn addresses_per_set(&self) -> [u64; 64] {
        let mut counts = [0u64; 64];
        for e in self.entries.values() {
            let mut sets = e.sets;
            while sets != 0 {
                counts[sets.trailing_zeros() as usize] += 1;
                sets &= sets - 1;
            }
        }
        counts
    }

    /// Addresses held for a name in a scope.
    pub fn addresses_of(&self, scope: u32, name: &str) -> usize {
        self.by_name
            .get(&(scope, name.to_owned()))
            .map_or(0, VecDeque::len)
    }

    fn remember(&self, before: &mut Before, key: LearnedKey) {
        before
            .entry(key)
            .or_insert_with(|| self.entries.get(&key).map(|e| (e.sets, e.expires_ns)));
    }

    fn changes(&self, before: Before) -> Vec<Change> {
        before
            .into_iter()
            .filter_map(|(key, was)| {
                let now = self.entries.get(&key).map(|e| (e.sets, e.expires_ns));
                match (was, now) {
                    (a, b) if a == b => None,
                    (_, Some((sets, expires_ns))) => Some(Change::Upsert {
                        key,
                        sets,
                        expires_ns,
                    }),
                    (Some(_), None) => Some(Change::Remove(key)),
                    (None, None) => None,
                }
            })
            .collect()
    }

    /// A repeat answer extends an entry's time, never shortens it.
    fn extend(&mut self, key: LearnedKey, expires_ns: u64) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if expires_ns > entry.expires_ns {
            self.by_expiry.remove(&(entry.expires_ns, key));
            entry.expires_ns = expires_ns;
            self.by_expiry.insert((expires_ns, key));
        }
    }

    fn add_name(
        &mut self,
        before: &mut Before,
        key: LearnedKey,
        name: &str,
        matcher: &DomainMatcher,
    ) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let mut dropped = None;
        if let Some(i) = entry.names.iter().position(|n| n == name) {
            let n = entry.names.remove(i);
            entry.names.push(n);
        } else {
            entry.names.push(name.to_owned());
            if entry.names.len() > MAX_NAMES_PER_ENTRY {
                dropped = Some(entry.names.remove(0));
            }
        }
        if let Some(old) = dropped {
            self.unlink(key, &old);
        }
        let addrs = self
            .by_name
            .entry((key.scope, name.to_owned()))
            .or_default();
        if let Some(i) = addrs.iter().position(|a| *a == key.addr) {
            addrs.remove(i);
        }
        addrs.push_back(key.addr);
        if addrs.len() > self.limits.per_name.max(1)
            && let Some(oldest) = addrs.pop_front()
        {
            self.stats.per_name_capped += 1;
            let old_key = LearnedKey {
                scope: key.scope,
                addr: oldest,
            };
            self.remember(before, old_key);
            self.drop_name(old_key, name, matcher);
        }
    }

    /// Takes `name` off an entry (its address already off the name's list),
    /// and the entry out if no name is left.
    fn drop_name(&mut self, key: LearnedKey, name: &str, matcher: &DomainMatcher) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        entry.names.retain(|n| n != name);
        if entry.names.is_empty() {
            self.remove(key);
        } else {
            self.recompute_sets(key, matcher);
        }
    }

    fn recompute_sets(&mut self, key: LearnedKey, matcher: &DomainMatcher) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.sets = entry.names.iter().fold(0, |s, n| s | matcher.sets_of(n));
        }
    }

    /// Takes the address off a name's list.
    fn unlink(&mut self, key: LearnedKey, name: &str) {
        let index = (key.scope, name.to_owned());
        if let Some(addrs) = self.by_name.get_mut(&index) {
            addrs.retain(|a| *a != key.addr);
            if addrs.is_empty() {
                self.by_name.remove(&index);
            }
        }
    }

    fn remove(&mut self, key: LearnedKey) {
        if let Some(entry) = self.entries.remove(&key) {
            self.by_expiry.remove(&(entry.expires_ns, key));
            for name in &entry.names {
                self.unlink(key, name);
            }
        }
    }

    fn evict_soonest(&mut self, before: &mut Before) {
        if let Some(&(_, key)) = self.by_expiry.first() {
            self.remember(before, key);
            self.remove(key);
            self.stats.evictions += 1;
        }
    }
}
