//! The data path's decision in plain Rust: parse, identify, classify, act.
//!
//! It reads the same compiled tables the kernel gets, and is the independent
//! check of the kernel programs (differential tests, `policyd replay`) and
//! the engine behind explanations. Byte and packet rate limits are
//! modelled as conforming: the model has no clock, so such a `limit`
//! verdict is the kernel's alone. Connection limits are modelled exactly
//! (conn.rs): which packets open a connection, the table of recent UDP
//! flows slot for slot, and each connection bucket at the model's clock,
//! which stands still unless [`Model::set_clock`] moves it (a test run of
//! the kernel takes milliseconds: against a limit of connections per minute
//! or hour, that is standing still too).

mod conn;
mod quota;
mod scan;

mod parse;

use std::collections::HashMap;

use policy_common::{
    ActionKey, ActionParams, Addr16, CLASS_DEFAULT, ClassRule, DEFAULT_SKETCH_WIDTH, GROUP_BIT,
    SUBJECT_ANY, USER_UNIDENTIFIED, UserId, cells, dir, drop_reason, field, flag, flow_hash, kind,
    mac8, matches_non_ip, mode, present, side,
};

pub use self::parse::{PacketInfo, Parsed, parse};
use crate::policy::{CompiledPolicy, truncate};

/// The verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Deny,
    /// A `limit` action applies; the model assumes the packet conforms.
    LimitConform,
    /// Dropped by a limit the model decides itself: a connection opened
    /// beyond the user's connection rate.
    Limited,
    Monitor,
    Spoofed,
    Malformed {
        dropped: bool,
    },
    /// A non-IP frame no class rule matched: passed unenforced, counted
    /// only as non-IP (user and direction are who it would be).
    NonIp,
}

/// Who, what and which verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub user: UserId,
    pub class: u32,
    pub dir: u8,
    pub verdict: Verdict,
}

/// Where the packet is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `policy_common::side`.
    pub side: u32,
    pub egress: bool,
}

impl Hook {
    pub const XDP_USERS: Self = Self {
        side: side::USERS,
        egress: false,
    };
}

/// The model, with the state the kernel keeps between packets that changes
/// decisions: the elephant sketch, cell for cell (policy-common's
/// sketch.rs; only the cells in use are held).
pub struct Model<'a> {
    policy: &'a CompiledPolicy,
    profile: usize,
    exact: HashMap<Addr16, UserId>,
    macs: HashMap<[u8; 8], UserId>,
    sketch: HashMap<u32, u64>,
    sketch_mask: u32,
    conns: conn::Conns,
    scans: scan::Scans,
    quotas: quota::Quotas,
    /// Whether the kernel dropped the packet being decided by a rate limit
    /// ([`Model::decide_after`]): the state a passed packet moves (quotas,
    /// the sketch) then stays where the kernel's does.
    kernel_limited: bool,
    /// The `policy_common::drop_reason` of the last decision.
    last_reason: u8,
}

/// Where the model's clock starts (any origin will do but 0, which the
/// kernel's tables read as "never").
const CLOCK_ORIGIN: u64 = 1 << 40;

fn longest<V: Copy>(prefixes: &[(u32, Addr16, V)], addr: &Addr16) -> Option<V> {
    prefixes
        .iter()
        .filter(|(len, net, _)| truncate(addr, *len) == *net)
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, _, v)| *v)
}

impl<'a> Model<'a> {
    pub fn new(policy: &'a CompiledPolicy, profile: usize) -> Self {
        Self {
            policy,
            profile,
            exact: policy.exact.iter().copied().collect(),
            macs: policy.macs.iter().copied().collect(),
            sketch: HashMap::new(),
            sketch_mask: DEFAULT_SKETCH_WIDTH - 1,
            conns: conn::Conns::starting_at(CLOCK_ORIGIN),
            scans: scan::Scans::default(),
            quotas: quota::Quotas::new(policy),
            kernel_limited: false,
            last_reason: drop_reason::RULE,
        }
    }

    /// What `user`'s quota slot `i` (their quotas in the policy's order)
    /// has counted.
    pub fn quota_used(&self, user: UserId, i: usize) -> Option<u64> {
        self.quotas.used(user, i)
    }

    /// Moves the model's clock (nanoseconds, any origin but 0: only
    /// differences count) for the connection limits, their flow table and
    /// scan detection.
    pub fn set_clock(&mut self, now_ns: u64) {
        self.conns.now_ns = now_ns.max(1);
    }

    /// The model of a kernel whose sketch has `width` cells per row (a
    /// power of two, as the loader makes it).
    pub fn with_sketch_width(mut self, width: u32) -> Self {
        self.sketch_mask = width.next_power_of_two() - 1;
        self
    }

    /// The model of a kernel whose recent-UDP-flow table has `width` slots
    /// per row (a power of two, as the loader makes it).
    pub fn with_conn_flow_width(mut self, width: u32) -> Self {
        self.conns.mask = width.next_power_of_two() - 1;
        self
    }

    /// The user and direction of a packet, and whether it is spoofed.
    pub fn identify(&self, p: &PacketInfo, hook: Hook) -> (UserId, u8, bool) {
        let users_side = hook.side == side::USERS;
        let direction = dir::at(hook.side, hook.egress);
        let (addr, mac) = if direction == dir::UPLOAD {
            (&p.src, &p.src_mac)
        } else {
            (&p.dst, &p.dst_mac)
        };
        let mac_user = users_side
            .then(|| self.macs.get(&mac8(*mac)).copied())
            .flatten();
        let user = mac_user
            .or_else(|| self.exact.get(addr).copied())
            .or_else(|| longest(&self.policy.cidrs, addr))
            .unwrap_or(USER_UNIDENTIFIED);
        if users_side
            && !hook.egress
            && let Some((_, b)) = self.policy.bindings.iter().find(|(a, _)| *a == p.src)
            && !b.macs[..b.count as usize].contains(&mac8(p.src_mac))
        {
            // Counted under the sender its MAC names, not the user whose
            // address it claimed.
            return (mac_user.unwrap_or(USER_UNIDENTIFIED), direction, true);
        }
        (user, direction, false)
    }

    /// Who a non-IP frame belongs to: its MAC on the users' side (the
    /// kernel's identity.rs, `identify_non_ip`), else nobody.
    pub fn identify_non_ip(&self, p: &PacketInfo, hook: Hook) -> (UserId, u8) {
        let users_side = hook.side == side::USERS;
        let direction = dir::at(hook.side, hook.egress);
        let mac = if direction == dir::UPLOAD {
            &p.src_mac
        } else {
            &p.dst_mac
        };
        let user = users_side
            .then(|| self.macs.get(&mac8(*mac)).copied())
            .flatten()
            .unwrap_or(USER_UNIDENTIFIED);
        (user, direction)
    }

    /// The class of a non-IP frame: the first rule without IP conditions
    /// and with an L2 one that matches; `default` means unenforced.
    pub fn classify_non_ip(&self, p: &PacketInfo) -> u32 {
        self.policy
            .class_rules
            .iter()
            .find(|r| matches_non_ip(r.fields) && Self::matches(r, p, dir::UPLOAD, 0))
            .map_or(CLASS_DEFAULT, |r| r.class)
    }

    fn matches(r: &ClassRule, p: &PacketInfo, direction: u8, sets: u64) -> bool {
        let f = r.fields;
        let (user_port, remote_port) = if direction == dir::UPLOAD {
            (p.sport, p.dport)
        } else {
            (p.dport, p.sport)
        };
        !(f & field::PROTO != 0 && r.proto != p.proto
            || f & field::USER_PORT != 0
                && !(p.has_ports && (r.user_port_lo..=r.user_port_hi).contains(&user_port))
            || f & field::REMOTE_PORT != 0
                && !(p.has_ports && (r.remote_port_lo..=r.remote_port_hi).contains(&remote_port))
            || f & field::REMOTE_SETS != 0 && r.remote_sets & sets == 0
            || f & field::L2_CAST != 0 && r.l2_cast & p.l2_cast == 0
            || f & field::ICMP_TYPE != 0 && p.icmp_type != Some(r.icmp_type)
            || f & field::DSCP != 0 && r.dscp != p.dscp
            || f & field::ETHERTYPE != 0 && r.ethertype != p.ethertype)
    }

    /// The class of the first matching rule, or `default`.
    pub fn classify(&self, p: &PacketInfo, direction: u8) -> u32 {
        self.classify_with_sets(p, direction, 0)
    }

    /// [`Self::classify`], with the remote end also in the sets `learned`
    /// (what the kernel adds from addresses learned by name and TLS
    /// server names, policy-common's learn.rs).
    pub fn classify_with_sets(&self, p: &PacketInfo, direction: u8, learned: u64) -> u32 {
        let remote = if direction == dir::UPLOAD {
            &p.dst
        } else {
            &p.src
        };
        let sets = longest(&self.policy.set_cidrs, remote).unwrap_or(0) | learned;
        self.policy
            .class_rules
            .iter()
            .find(|r| Self::matches(r, p, direction, sets))
            .map_or(CLASS_DEFAULT, |r| r.class)
    }

    /// Which entry of the action table decides (user, class): the user's
    /// own, else the group's, else everyone's; `None` means no rule (allow).
    pub fn action_key(&self, user: UserId, class: u32) -> Option<ActionKey> {
        let group = self.policy.users.get(user as usize).map_or(0, |u| u.group);
        let has = |subject: u32| {
            let key = ActionKey { subject, class };
            self.policy
                .actions
                .binary_search_by_key(&key, |(k, _)| *k)
                .is_ok()
                .then_some(key)
        };
        has(user)
            .or_else(|| {
                if group == 0 {
                    None
                } else {
                    has(GROUP_BIT | group)
                }
            })
            .or_else(|| has(SUBJECT_ANY))
    }

    /// The action for (user, class) in the model's profile.
    pub fn action(&self, user: UserId, class: u32) -> ActionParams {
        self.action_key(user, class)
            .and_then(|key| {
                self.policy
                    .actions
                    .binary_search_by_key(&key, |(k, _)| *k)
                    .ok()
                    .map(|i| self.policy.actions[i].1.profiles[self.profile])
            })
            .unwrap_or_default()
    }

    /// The packet's cells in the sketch, hashed as the kernel hashes them.
    fn flow_cells(&self, p: &PacketInfo, direction: u8) -> [u32; 2] {
        let word = |a: &Addr16, i: usize| {
            u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        };
        let words = [
            word(&p.src, 0),
            word(&p.src, 1),
            word(&p.dst, 0),
            word(&p.dst, 1),
        ];
        cells(
            flow_hash(words, p.sport, p.dport, p.proto, direction),
            self.sketch_mask,
        )
    }

    /// Decides one frame seen at `hook`, updating flow state like the kernel.
    /// [`Self::decide`] for a packet the kernel has judged already: when
    /// `kernel_dropped`, a [`Verdict::LimitConform`] packet was dropped by a
    /// rate limit (the kernel's alone), so it moves no passed-packet state.
    /// A replay keeps the model in step with the kernel this way.
    pub fn decide_after(&mut self, frame: &[u8], hook: Hook, kernel_dropped: bool) -> Decision {
        self.kernel_limited = kernel_dropped;
        let d = self.decide(frame, hook);
        self.kernel_limited = false;
        d
    }

    /// Why the last decision's packet was dropped or limited (a
    /// `policy_common::drop_reason`; `RULE` for the user's own action, and
    /// for passed packets). A class aggregate's limit is the kernel's to
    /// tell: the model calls it `RULE` too.
    pub fn last_reason(&self) -> u8 {
        self.last_reason
    }

    /// Puts profile slot `profile` in force, as a schedule does.
    pub fn set_profile(&mut self, profile: usize) {
        self.profile = profile;
    }

    /// Whether `addr` or `mac` (a frame's source or destination) is one of
    /// the policy's users: what a replay decides a packet's direction by.
    pub fn is_users(&self, addr: Option<&Addr16>, mac: &[u8; 6]) -> bool {
        self.macs.contains_key(&mac8(*mac))
            || addr.is_some_and(|a| {
                self.exact.contains_key(a) || longest(&self.policy.cidrs, a).is_some()
            })
    }

    /// Takes the kernel's quota use (after a new period began):
    /// `dataplane::QuotaTable::usage`'s rows.
    pub fn reset_quotas(&mut self, uses: &[crate::dataplane::QuotaUse]) {
        self.quotas.reset_from(uses);
    }

    /// Halves every cell of the sketch, as the daemon's ageing does
    /// (dataplane's `FlowSketch::decay`).
    pub fn decay_sketch(&mut self) {
        self.sketch.retain(|_, v| {
            *v /= 2;
            *v != 0
        });
    }

    pub fn decide(&mut self, frame: &[u8], hook: Hook) -> Decision {
        let cfg = self.policy.config;
        // Malformed packets are nobody's, in the hook's direction.
        let none = |verdict| Decision {
            user: USER_UNIDENTIFIED,
            class: CLASS_DEFAULT,
            dir: dir::at(hook.side, hook.egress),
            verdict,
        };
        self.last_reason = drop_reason::RULE;
        let p = match parse(frame) {
            Parsed::Ip(p) => p,
            Parsed::Other(p) => return self.decide_non_ip(&p, frame.len() as u64, hook),
            Parsed::Malformed => {
                self.last_reason = drop_reason::MALFORMED;
                return none(Verdict::Malformed {
                    dropped: cfg.malformed_drop != 0,
                });
            }
        };
        let (user, direction, spoofed) = self.identify(&p, hook);
        let mut class = self.classify(&p, direction);
        let tracked = cfg.elephant_bytes != 0 && p.has_ports;
        let flow_cells = self.flow_cells(&p, direction);
        let estimate = flow_cells
            .iter()
            .map(|c| self.sketch.get(c).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        if tracked && estimate > cfg.elephant_bytes {
            class = cfg.elephant_class;
        }
        let monitor = cfg.mode == mode::MONITOR;
        // Whether the packet opens a flow: worked out once, by the first
        // stage that asks, as in the kernel.
        let mut flow: Option<conn::Opens> = None;
        let quarantined = !spoofed && cfg.present & present::SCAN != 0 && {
            let (conns, flow) = (&mut self.conns, &mut flow);
            // Every user is watched: the loader sizes the kernel's table
            // to all of them.
            let watch = policy_common::Config {
                scan_users: u32::MAX,
                ..cfg
            };
            self.scans
                .quarantined(&watch, conns.now_ns, user, class, direction, &p, || {
                    flow.get_or_insert_with(|| conns.opening(&p, direction))
                        .any()
                })
        };
        let mut admitted = false;
        let verdict = if quarantined {
            if monitor {
                Verdict::Monitor
            } else {
                Verdict::Deny
            }
        } else if spoofed {
            if monitor {
                Verdict::Monitor
            } else {
                Verdict::Spoofed
            }
        } else {
            match self.action(user, class).kind {
                kind::DENY if monitor => Verdict::Monitor,
                kind::DENY => Verdict::Deny,
                kind::MONITOR => Verdict::Monitor,
                kind::LIMIT => {
                    let a = self.action(user, class);
                    let dry_run = a.flags & flag::MONITOR_ONLY != 0 || monitor;
                    let opens = a.conn_cost_ns != 0
                        && flow
                            .get_or_insert_with(|| self.conns.opening(&p, direction))
                            .any();
                    match opens.then(|| self.conns.admit(user, class, direction, &a)) {
                        Some(conn::Admit::Refused) if dry_run => {
                            admitted = true;
                            Verdict::Monitor
                        }
                        Some(conn::Admit::Refused) => Verdict::Limited,
                        // A class aggregate or the byte rate may still
                        // drop it, in the kernel's time.
                        Some(conn::Admit::Yes) => {
                            admitted = true;
                            Verdict::LimitConform
                        }
                        None => Verdict::LimitConform,
                    }
                }
                _ => Verdict::Pass,
            }
        };
        let verdict = if quarantined || spoofed {
            verdict
        } else {
            let quota = self.quotas.verdict(user, class, verdict, monitor);
            if quota != verdict {
                self.last_reason = drop_reason::QUOTA;
            }
            quota
        };
        if quarantined {
            self.last_reason = drop_reason::QUARANTINE;
        } else if spoofed {
            self.last_reason = drop_reason::SPOOFED;
        }
        let passed = match verdict {
            Verdict::Pass | Verdict::Monitor => true,
            Verdict::LimitConform => !self.kernel_limited,
            _ => false,
        };
        // Every packet that passes counts, as in the kernel: a dry run's
        // quarantined or spoofed ones too.
        if passed {
            self.quotas.account(user, class, frame.len() as u64);
        }
        if let Some(conn::Opens::Udp(o)) = &flow
            && (admitted || passed)
        {
            self.conns.remember(o);
        }
        if tracked && passed {
            for c in flow_cells {
                let cell = self.sketch.entry(c).or_default();
                *cell = cell.saturating_add(frame.len() as u64);
            }
        }
        Decision {
            user,
            class,
            dir: direction,
            verdict,
        }
    }

    /// The verdict of (user, class)'s action for a non-IP frame: it opens no
    /// connection and is never spoofed or quarantined (the kernel's
    /// non_ip.rs), so a limit's outcome is the kernel's bucket alone.
    fn non_ip_verdict(&self, user: UserId, class: u32) -> Verdict {
        let monitor = self.policy.config.mode == mode::MONITOR;
        match self.action(user, class).kind {
            kind::DENY if monitor => Verdict::Monitor,
            kind::DENY => Verdict::Deny,
            kind::MONITOR => Verdict::Monitor,
            kind::LIMIT => Verdict::LimitConform,
            _ => Verdict::Pass,
        }
    }

    /// A non-IP frame (the kernel's non_ip.rs): enforced only when a rule
    /// that can match non-IP frames does; no sketch, no spoofing, no
    /// connections, no scan state.
    fn decide_non_ip(&mut self, p: &PacketInfo, len: u64, hook: Hook) -> Decision {
        let (user, direction) = self.identify_non_ip(p, hook);
        let class = if self.policy.config.present & present::NON_IP_RULES == 0 {
            CLASS_DEFAULT
        } else {
            self.classify_non_ip(p)
        };
        Decision {
            user,
            class,
            dir: direction,
            verdict: if class == CLASS_DEFAULT {
                Verdict::NonIp
            } else {
                let monitor = self.policy.config.mode == mode::MONITOR;
                let own = self.non_ip_verdict(user, class);
                let v = self.quotas.verdict(user, class, own, monitor);
                if v != own {
                    self.last_reason = drop_reason::QUOTA;
                }
                let passed = match v {
                    Verdict::Pass | Verdict::Monitor => true,
                    Verdict::LimitConform => !self.kernel_limited,
                    _ => false,
                };
                if passed {
                    self.quotas.account(user, class, len);
                }
                v
            },
        }
    }
}
