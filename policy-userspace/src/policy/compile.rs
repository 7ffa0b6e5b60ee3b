//! Lays a validated policy out as the contents of the kernel's maps, in the
//! contract's types. Done once, here, for every consumer: the loader and the
//! reference model.

use std::{collections::HashMap, net::IpAddr, path::PathBuf};

use ipnet::IpNet;
use policy_common::{
    ActionEntry, ActionKey, ActionParams, Addr16, CLASS_DEFAULT, ClassRule, Config, GROUP_BIT,
    MAX_MACS_PER_BINDING, Mac8, MacBinding, QUOTA_ALL_CLASSES, SUBJECT_ANY, USER_UNIDENTIFIED,
    UserId, bits_for, field, flag, kind, mac8, matches_non_ip, mode, present, scan_flag, v4_mapped,
};

use super::{
    quota::{Quota, QuotaPeriod, QuotaReset},
    types::*,
};

/// One user as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledUser {
    pub id: UserId,
    pub name: String,
    /// 0 for none, else index into [`CompiledPolicy::groups`] plus one.
    pub group: u32,
}

/// The contents of every identity, classification and action map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Index = [`UserId`]; entry 0 is the unidentified user.
    pub users: Vec<CompiledUser>,
    /// Group id `i + 1` is `groups[i]`.
    pub groups: Vec<String>,
    /// Index = class id; entry 0 is `default`.
    pub classes: Vec<String>,
    /// Index = profile slot; entry 0 is `off_hours`.
    pub profiles: Vec<String>,
    pub config: Config,
    pub exact: Vec<(Addr16, UserId)>,
    /// (prefix length in the 128-bit space, network, user).
    pub cidrs: Vec<(u32, Addr16, UserId)>,
    pub macs: Vec<(Mac8, UserId)>,
    pub uids: Vec<(u32, UserId)>,
    /// Resolved to cgroup ids when loaded (that needs the filesystem).
    pub cgroups: Vec<(PathBuf, UserId)>,
    pub bindings: Vec<(Addr16, MacBinding)>,
    pub class_rules: Vec<ClassRule>,
    /// (prefix length, network, bitmap of the sets containing it).
    pub set_cidrs: Vec<(u32, Addr16, u64)>,
    /// Index = set index (a bit of the set bitmaps).
    pub sets: Vec<String>,
    /// (set index, domain pattern in canonical form): what DNS answers and
    /// TLS server names are matched against (names/).
    pub domains: Vec<(u32, String)>,
    /// `[names]`: the learned table's limits and scope.
    pub names: NamesSettings,
    pub actions: Vec<(ActionKey, ActionEntry)>,
    /// (class id, limits on the class as a whole).
    pub class_limits: Vec<(u32, ActionEntry)>,
    /// Byte quotas, one per (user, quota) after groups and everyone are
    /// folded in, in the policy's order: a user's slots are theirs in this
    /// order.
    pub quotas: Vec<CompiledQuota>,
}

/// One user's budget (policy-common's quota.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledQuota {
    pub user: UserId,
    /// The class id, or [`QUOTA_ALL_CLASSES`].
    pub class: u32,
    pub bytes: u64,
    pub exhausted: ActionParams,
    pub period: QuotaPeriod,
    pub reset: QuotaReset,
    /// The zone its periods are in (the policy's).
    pub timezone: jiff::tz::TimeZone,
    /// `5GiB/day (resets 00:00), then deny`.
    pub describe: String,
}

impl CompiledQuota {
    /// Its period's start at `now` (a Unix second).
    pub fn period_start(&self, now: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> i64 {
        self.as_quota().period_start(now, tz)
    }

    pub fn next_start(&self, now: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> i64 {
        self.as_quota().next_start(now, tz)
    }

    fn as_quota(&self) -> Quota {
        Quota {
            subject: Subject::Everyone,
            class: None,
            bytes: self.bytes,
            period: self.period,
            reset: self.reset,
            exhausted: ActionSpec::Deny,
        }
    }
}

/// An address or network in the kernel's 128-bit space: IPv4 as mapped.
pub fn addr16(addr: IpAddr) -> Addr16 {
    match addr {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// `net` as (prefix length, network) in the 128-bit space.
pub fn net16(net: &IpNet) -> (u32, Addr16) {
    match net {
        IpNet::V4(n) => (
            96 + u32::from(n.prefix_len()),
            v4_mapped(n.network().octets()),
        ),
        IpNet::V6(n) => (u32::from(n.prefix_len()), n.network().octets()),
    }
}

/// Keeps the first `len` bits of `a`.
pub fn truncate(a: &Addr16, len: u32) -> Addr16 {
    let mut out = [0u8; 16];
    for (i, byte) in a.iter().enumerate() {
        let bits = len.saturating_sub(8 * i as u32).min(8);
        out[i] = if bits == 0 {
            0
        } else {
            byte & (0xffu8 << (8 - bits))
        };
    }
    out
}

const NS_PER_SEC: u128 = 1_000_000_000;
/// See policy-ebpf's bucket.rs: the kernel clamps cost_fp to this.
const MAX_COST_FP: u128 = 1 << 47;
/// Smallest burst that lets a full-size Ethernet frame through an idle
/// bucket; a smaller one would drop every such frame.
pub(super) const MIN_BURST_BYTES: u64 = 1514;

/// The burst when a limit gives none: 250 ms at the rate, at least 64 KiB
/// or 10 packets.
///
/// Why 250 ms: a TCP flow over a policer loses packets when the bucket runs
/// dry, and if its window is small (a short round trip) the loss is repaired
/// by a retransmission timeout, at least 200 ms on Linux. A burst that
/// covers the timeout lets the bucket refill while the sender waits instead
/// of wasting that time; measured over veth (RTT 0.1 ms), a single CUBIC
/// flow through 20 Mbit/s gets 57-64% of the rate with a 100 ms burst and
/// 96-100% with 250 ms (BENCHMARKS.md).
pub fn default_burst(rate: Rate) -> u64 {
    match rate {
        Rate::BytesPerSec(b) => (b / 4).max(64 * 1024),
        Rate::PacketsPerSec(p) => (p / 4).max(10),
    }
}

/// The kernel form of an action.
pub fn params(a: &ActionSpec) -> ActionParams {
    let mut p = ActionParams::default();
    match a {
        ActionSpec::Allow => p.kind = kind::ALLOW,
        ActionSpec::Deny => p.kind = kind::DENY,
        ActionSpec::Monitor => p.kind = kind::MONITOR,
        ActionSpec::Limit(l) => {
            p.kind = kind::LIMIT;
            // A limit on connections alone leaves cost_fp 0: the kernel
            // then takes no byte or packet bucket.
            if let Some(rate) = l.rate {
                let (per_sec, min_burst) = match rate {
                    Rate::BytesPerSec(b) => (b, MIN_BURST_BYTES),
                    Rate::PacketsPerSec(n) => {
                        p.flags |= flag::PACKETS;
                        (n, 1)
                    }
                };
                let per_sec = u128::from(per_sec.max(1));
                let burst = u128::from(
                    l.burst
                        .unwrap_or_else(|| default_burst(rate))
                        .max(min_burst),
                );
                p.cost_fp = u64::try_from(((NS_PER_SEC << 16) / per_sec).min(MAX_COST_FP))
                    .unwrap_or(u64::MAX);
                p.tolerance_ns = u64::try_from(burst * NS_PER_SEC / per_sec).unwrap_or(u64::MAX);
            }
            if let Some(c) = l.conn {
                p.conn_cost_ns = c.cost_ns();
                p.conn_tolerance_ns = c.cost_ns().saturating_mul(c.burst_or_default());
            }
            if l.ecn.unwrap_or(true) {
                p.flags |= flag::ECN;
            }
            if l.monitor_only {
                p.flags |= flag::MONITOR_ONLY;
            }
            if let Some((major, minor)) = l.htb_class {
                p.tc_classid = (u32::from(major) << 16) | u32::from(minor);
            }
        }
    }
    p
}

fn entry(actions: &[ActionSpec]) -> ActionEntry {
    let mut e = ActionEntry::default();
    for (slot, a) in e.profiles.iter_mut().zip(actions) {
        *slot = params(a);
    }
    // Profiles the policy does not define behave as off_hours (index 0).
    let first = e.profiles[0];
    for slot in e.profiles.iter_mut().skip(actions.len()) {
        *slot = first;
    }
    e
}

fn class_rules(policy: &Policy) -> Vec<ClassRule> {
    let mut out = Vec::new();
    for (i, class) in policy.classes.iter().enumerate() {
        let Some(m) = &class.matches else { continue };
        let mut base = ClassRule {
            class: i as u32 + 1,
            ..ClassRule::default()
        };
        if let Some(p) = m.proto {
            base.fields |= field::PROTO;
            base.proto = p;
        }
        if !m.sets.is_empty() {
            base.fields |= field::REMOTE_SETS;
            base.remote_sets = m
                .sets
                .iter()
                .filter_map(|name| policy.sets.iter().position(|s| s.name == *name))
                .fold(0, |bits, i| bits | 1u64 << i);
        }
        if let Some(c) = m.l2_cast {
            base.fields |= field::L2_CAST;
            base.l2_cast = c;
        }
        if let Some(t) = m.icmp_type {
            base.fields |= field::ICMP_TYPE;
            base.icmp_type = t;
        }
        if let Some(d) = m.dscp {
            base.fields |= field::DSCP;
            base.dscp = d;
        }
        if let Some(t) = m.ethertype {
            base.fields |= field::ETHERTYPE;
            base.ethertype = t;
        }
        // Several ranges are an OR: one kernel rule per combination.
        let remote: Vec<Option<(u16, u16)>> = if m.remote_ports.is_empty() {
            vec![None]
        } else {
            m.remote_ports.iter().copied().map(Some).collect()
        };
        let user: Vec<Option<(u16, u16)>> = if m.user_ports.is_empty() {
            vec![None]
        } else {
            m.user_ports.iter().copied().map(Some).collect()
        };
        for r in &remote {
            for u in &user {
                let mut rule = base;
                if let Some((lo, hi)) = r {
                    rule.fields |= field::REMOTE_PORT;
                    (rule.remote_port_lo, rule.remote_port_hi) = (*lo, *hi);
                }
                if let Some((lo, hi)) = u {
                    rule.fields |= field::USER_PORT;
                    (rule.user_port_lo, rule.user_port_hi) = (*lo, *hi);
                }
                out.push(rule);
            }
        }
    }
    out
}

/// Every prefix of every set, each with the bitmap of all sets containing it,
/// so that one longest-prefix lookup gives an address's full membership.
fn set_cidrs(policy: &Policy) -> Vec<(u32, Addr16, u64)> {
    let mut own: HashMap<(u32, Addr16), u64> = HashMap::new();
    for (i, set) in policy.sets.iter().enumerate() {
        for net in &set.nets {
            *own.entry(net16(net)).or_default() |= 1u64 << i;
        }
    }
    let mut out: Vec<(u32, Addr16, u64)> = own
        .keys()
        .map(|&(len, addr)| {
            let bits = (0..=len).fold(0u64, |bits, l| {
                bits | own.get(&(l, truncate(&addr, l))).copied().unwrap_or(0)
            });
            (len, addr, bits)
        })
        .collect();
    out.sort_unstable();
    out
}

/// A blanket action (a user's `action`, or `[unidentified]`) in one class,
/// per profile: combined with the rule the user's group (else everyone) has
/// for the class, the stricter winning, so a blanket `limit` cannot lift a
/// `deny` meant for everybody.
pub fn blanket_actions(
    policy: &Policy,
    blanket: ActionSpec,
    group: Option<&str>,
    class: &str,
) -> Vec<ActionSpec> {
    let shared = policy
        .rules
        .iter()
        .find(|r| {
            r.class == class && group.is_some_and(|g| r.subject == Subject::Group(g.to_owned()))
        })
        .or_else(|| {
            policy
                .rules
                .iter()
                .find(|r| r.class == class && r.subject == Subject::Everyone)
        });
    match shared {
        Some(r) => r
            .actions
            .iter()
            .map(|a| super::stricter(&blanket, a).map_or(blanket, |(s, _)| s))
            .collect(),
        None => vec![blanket; policy.profiles.len().max(1)],
    }
}

impl CompiledPolicy {
    pub fn compile(policy: &Policy) -> Self {
        let mut out = Self {
            classes: std::iter::once(DEFAULT_CLASS.to_owned())
                .chain(policy.classes.iter().map(|c| c.name.clone()))
                .collect(),
            profiles: policy.profiles.clone(),
            ..Self::default()
        };
        out.users.push(CompiledUser {
            id: USER_UNIDENTIFIED,
            name: UNIDENTIFIED.to_owned(),
            group: 0,
        });
        for user in &policy.users {
            let id = UserId::try_from(out.users.len()).expect("validated policies fit in u32 ids");
            let group = match &user.group {
                Some(g) => match out.groups.iter().position(|x| x == g) {
                    Some(i) => i as u32 + 1,
                    None => {
                        out.groups.push(g.clone());
                        out.groups.len() as u32
                    }
                },
                None => 0,
            };
            out.users.push(CompiledUser {
                id,
                name: user.name.clone(),
                group,
            });
            let mut exact_addrs = Vec::new();
            for net in &user.nets {
                let (len, addr) = net16(net);
                if len == 128 {
                    out.exact.push((addr, id));
                    exact_addrs.push(addr);
                } else {
                    out.cidrs.push((len, addr, id));
                }
            }
            out.macs.extend(user.macs.iter().map(|m| (mac8(*m), id)));
            out.uids.extend(user.uids.iter().map(|u| (*u, id)));
            out.cgroups
                .extend(user.cgroups.iter().map(|c| (c.clone(), id)));
            if user.spoof_check {
                let mut binding = MacBinding {
                    count: user.macs.len().min(MAX_MACS_PER_BINDING) as u32,
                    user: id,
                    ..MacBinding::default()
                };
                for (slot, mac) in binding.macs.iter_mut().zip(&user.macs) {
                    *slot = mac8(*mac);
                }
                out.bindings
                    .extend(exact_addrs.iter().map(|a| (*a, binding)));
            }
        }
        out.class_rules = class_rules(policy);
        out.set_cidrs = set_cidrs(policy);
        out.actions_and_limits(policy);
        let elephant = policy
            .classes
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.elephant_bytes.map(|b| (b, i as u32 + 1)));
        out.config = Config {
            mode: match policy.settings.mode {
                Mode::Enforce => mode::ENFORCE,
                Mode::Monitor => mode::MONITOR,
            },
            rule_count: out.class_rules.len() as u32,
            elephant_bytes: elephant.map_or(0, |(b, _)| b),
            elephant_class: elephant.map_or(0, |(_, c)| c),
            malformed_drop: u32::from(policy.settings.malformed_drop),
            event_interval_ns: u64::try_from(policy.settings.event_interval.as_nanos())
                .unwrap_or(u64::MAX),
            present: 0,
            users_per_generation: 0,
            sketch_mask: 0,
            action_cells: 0,
            action_stride: 0,
            conn_flow_mask: 0,
            scan_window_ns: 0,
            quarantine_ns: 0,
            quarantine_classes: 0,
            scan_host_bits: 0,
            scan_port_bits: 0,
            scan_flags: 0,
            scan_users: 0,
            unid_slots: policy.unidentified_buckets.kernel_slots(),
            quota_slots: 0,
            quota_users: 0,
            names_scope: match policy.names.scope() {
                NamesScope::User => policy_common::names_scope::USER,
                NamesScope::Everyone => policy_common::names_scope::EVERYONE,
            },
        };
        out.domains = policy
            .sets
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.domains.iter().map(move |d| (i as u32, d.clone())))
            .collect();
        out.names = policy.names;
        out.sets = policy.sets.iter().map(|s| s.name.clone()).collect();
        if let Some(scan) = &policy.scan {
            out.scan(scan);
        }
        out.quotas(policy);
        out.config.present = out.present();
        out
    }

    /// `[detect.scan]` into the config; `scan_users` is the loader's.
    fn scan(&mut self, scan: &ScanPolicy) {
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let c = &mut self.config;
        c.scan_window_ns = ns(scan.window);
        c.quarantine_ns = ns(scan.quarantine);
        c.scan_host_bits = scan.hosts.map_or(0, bits_for);
        c.scan_port_bits = scan.ports.map_or(0, bits_for);
        c.scan_flags = if scan.monitor { scan_flag::MONITOR } else { 0 };
        c.quarantine_classes = 0;
        for name in &scan.allow {
            let id = if name == "default" {
                CLASS_DEFAULT
            } else {
                self.class_id(name)
            };
            self.config.quarantine_classes |= 1u64 << id;
        }
    }

    /// `[[quota]]`s, folded onto each user they apply to.
    fn quotas(&mut self, policy: &Policy) {
        let mut per_user: HashMap<UserId, u32> = HashMap::new();
        for q in &policy.quotas {
            let class = match &q.class {
                None => QUOTA_ALL_CLASSES,
                Some(c) if c == DEFAULT_CLASS => CLASS_DEFAULT,
                Some(c) => self.class_id(c),
            };
            for user in &policy.users {
                if !q.applies_to(&user.name, user.group.as_deref()) {
                    continue;
                }
                let id = self.user_id(&user.name);
                *per_user.entry(id).or_default() += 1;
                self.quotas.push(CompiledQuota {
                    user: id,
                    class,
                    bytes: q.bytes,
                    exhausted: params(&q.exhausted),
                    period: q.period,
                    reset: q.reset,
                    timezone: policy.settings.timezone.clone(),
                    describe: format!("{}, then {}", q.describe(), q.exhausted),
                });
            }
        }
        self.config.quota_slots = per_user.values().copied().max().unwrap_or(0);
    }

    fn class_id(&self, name: &str) -> u32 {
        self.classes
            .iter()
            .position(|c| c == name)
            .expect("validated class") as u32
    }

    fn user_id(&self, name: &str) -> UserId {
        self.users
            .iter()
            .position(|u| u.name == name)
            .expect("validated user") as UserId
    }

    fn actions_and_limits(&mut self, policy: &Policy) {
        let mut actions: Vec<(ActionKey, ActionEntry)> = Vec::new();
        for rule in &policy.rules {
            let class = self.class_id(&rule.class);
            let subject = match &rule.subject {
                Subject::User(u) => self.user_id(u),
                Subject::Group(g) => {
                    GROUP_BIT
                        | (self
                            .groups
                            .iter()
                            .position(|x| x == g)
                            .expect("validated group") as u32
                            + 1)
                }
                Subject::Everyone => SUBJECT_ANY,
                Subject::Aggregate => {
                    self.class_limits.push((class, entry(&rule.actions)));
                    continue;
                }
            };
            actions.push((ActionKey { subject, class }, entry(&rule.actions)));
        }
        // A user's (or unidentified's) blanket action fills every class the
        // rules leave open for them, combined with the rule their group or
        // everyone has for the class: the stricter applies, so a blanket
        // `limit` cannot lift a `deny` meant for everybody.
        let blanket: Vec<(UserId, ActionSpec)> = policy
            .unidentified
            .map(|a| (USER_UNIDENTIFIED, a))
            .into_iter()
            .chain(
                policy
                    .users
                    .iter()
                    .filter_map(|u| u.action.map(|a| (self.user_id(&u.name), a))),
            )
            .collect();
        for (user, action) in blanket {
            for class in 0..self.classes.len() as u32 {
                let key = ActionKey {
                    subject: user,
                    class,
                };
                if actions.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let class_name = &self.classes[class as usize];
                let group = policy
                    .users
                    .iter()
                    .find(|u| self.user_id(&u.name) == user)
                    .and_then(|u| u.group.as_deref());
                let per_profile = blanket_actions(policy, action, group, class_name);
                actions.push((key, entry(&per_profile)));
            }
        }
        actions.sort_unstable_by_key(|(k, _)| *k);
        self.actions = actions;
    }

    /// Which optional tables hold anything (`policy_common::present`).
    pub fn present(&self) -> u32 {
        let mut bits = 0;
        let mut set = |cond: bool, bit: u32| {
            if cond {
                bits |= bit;
            }
        };
        set(!self.macs.is_empty(), present::MACS);
        set(!self.cidrs.is_empty(), present::CIDRS);
        set(!self.bindings.is_empty(), present::BINDINGS);
        set(
            self.class_rules
                .iter()
                .any(|r| r.fields & field::REMOTE_SETS != 0),
            present::SETS,
        );
        set(
            self.actions.iter().any(|(k, _)| k.subject & GROUP_BIT == 0),
            present::USER_ACTIONS,
        );
        set(
            self.actions
                .iter()
                .any(|(k, _)| k.subject & GROUP_BIT != 0 && k.subject != SUBJECT_ANY),
            present::GROUP_ACTIONS,
        );
        set(
            self.actions.iter().any(|(k, _)| k.subject == SUBJECT_ANY),
            present::ANY_ACTIONS,
        );
        set(!self.class_limits.is_empty(), present::CLASS_LIMITS);
        set(
            !self.uids.is_empty() || !self.cgroups.is_empty(),
            present::SOCKET_OWNERS,
        );
        set(
            self.config.scan_host_bits != 0 || self.config.scan_port_bits != 0,
            present::SCAN,
        );
        set(!self.quotas.is_empty(), present::QUOTAS);
        // Learning pays only if a class rule tests the sets it fills.
        let tests_sets = self
            .class_rules
            .iter()
            .any(|r| r.fields & field::REMOTE_SETS != 0);
        set(!self.domains.is_empty() && tests_sets, present::NAMES);
        set(
            self.class_rules.iter().any(|r| matches_non_ip(r.fields)),
            present::NON_IP_RULES,
        );
        bits
    }

    pub fn user(&self, name: &str) -> Option<&CompiledUser> {
        self.users.iter().find(|u| u.name == name)
    }
}
