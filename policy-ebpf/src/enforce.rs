//! From (user, class) to a verdict: the action table, token buckets, class
//! aggregates and monitor mode.

use policy_common::{
    ActionParams, BucketKey, Config, MAX_CLASSES, MAX_PROFILES, UserId, bucket as bucket_kind,
    drop_reason, flag, global_counter, kind, mode, present,
};

use crate::{
    bucket::{self, Outcome},
    conn::{Flow, Opening},
    counters,
    maps::{ACTIONS, ACTIVE_PROFILE, BUCKETS, CLASS_BUCKETS, CLASS_LIMITS, USER_INFO},
    parse::Packet,
    quota, unid,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Pass,
    /// Dropped by `deny` (or as spoofed).
    Deny,
    /// Dropped by a rate limit.
    Limited,
    /// Passed; `deny` or a limit would have dropped it.
    Monitor,
}

pub(crate) struct Enforced {
    pub decision: Decision,
    /// The packet is ECN-capable and should leave with CE set.
    pub mark_ce: bool,
    /// TC egress only: hand the packet to this HTB class instead of policing.
    pub tc_classid: u32,
    /// Why, when `decision` drops it: a [`drop_reason`].
    pub reason: u8,
}

#[inline(always)]
pub(crate) fn active_profile(generation: u32) -> usize {
    let p = ACTIVE_PROFILE.get(generation).copied().unwrap_or(0) as usize;
    if p < MAX_PROFILES { p } else { 0 }
}

/// The user's action for the class in `profile`: their row of the action
/// table (their own rules, their group's and everyone's, folded together
/// by userspace), at the class. Allow when the policy has no actions.
#[inline(always)]
fn params(user: UserId, class: u32, profile: usize, cfg: &Config, generation: u32) -> ActionParams {
    const ANY: u32 = present::USER_ACTIONS | present::GROUP_ACTIONS | present::ANY_ACTIONS;
    if cfg.present & ANY == 0
        || user >= cfg.users_per_generation
        || class >= cfg.action_stride
        || profile >= MAX_PROFILES
    {
        return ActionParams::default();
    }
    // Each generation has its half of both arrays.
    let Some(info) = USER_INFO.get(generation * cfg.users_per_generation + user) else {
        return ActionParams::default();
    };
    let cell = info.row * cfg.action_stride + class;
    if cell >= cfg.action_cells {
        return ActionParams::default();
    }
    ACTIONS
        .get(generation * cfg.action_cells + cell)
        .map_or_else(ActionParams::default, |e| e.profiles[profile])
}

#[inline(always)]
fn units(a: &ActionParams, len: u64) -> u64 {
    if a.flags & flag::PACKETS != 0 { 1 } else { len }
}

/// The nanosecond clock, read at most once per packet and only when a
/// bucket needs it: `bpf_ktime_get_ns` costs about 33 ns (kernel 6.18,
/// this machine), as much as the rest of a limit; a user's limit and the
/// class aggregate share the one reading.
struct Clock(u64);

impl Clock {
    #[inline(always)]
    fn now(&mut self) -> u64 {
        if self.0 == 0 {
            self.0 = crate::clock::now_ns();
        }
        self.0
    }
}

/// How a packet can be told of congestion: by a CE mark if ECN-capable,
/// else (TCP) by an early drop.
#[derive(Clone, Copy)]
pub(crate) struct Signal {
    pub ecn_capable: bool,
    pub tcp: bool,
}

/// Runs the bucket behind `tat` for action `a`; `None` when over the limit
/// (or dropped early).
#[inline(always)]
fn police(
    tat: *mut u64,
    a: &ActionParams,
    len: u64,
    signal: Signal,
    clock: &mut Clock,
) -> Option<u64> {
    let cost = bucket::cost(a.cost_fp, units(a, len));
    let now = clock.now();
    // A limit that signals congestion (`ecn`, the default) tells a TCP flow
    // that cannot take a CE mark by dropping early.
    let early = (a.flags & flag::ECN != 0 && signal.tcp && !signal.ecn_capable)
        .then_some(crate::clock::random);
    // SAFETY: `tat` comes from a map lookup in this run.
    match unsafe { bucket::take(tat, now, cost, a.tolerance_ns, early) } {
        Outcome::Conform { backlog_ns } => Some(backlog_ns),
        Outcome::Exceed => None,
        Outcome::EarlyDrop => {
            counters::global(global_counter::EARLY_DROPS);
            None
        }
        Outcome::Contended => {
            counters::global(global_counter::BUCKET_CONTENDED);
            None
        }
    }
}

#[inline(always)]
fn user_bucket(user: UserId, class: u32, direction: u8, which: u8) -> Option<*mut u64> {
    bucket_at(BucketKey {
        user,
        class: class as u16,
        dir: direction,
        bucket: which,
    })
}

#[inline(always)]
fn bucket_at(key: BucketKey) -> Option<*mut u64> {
    if let Some(p) = BUCKETS.get_ptr_mut(key) {
        return Some(p);
    }
    // A new bucket starts empty (TAT 0 = full burst available). Losing the
    // race to create it is fine: the lookup below finds the winner's.
    let _ = BUCKETS.insert(key, 0, u64::from(aya_ebpf::bindings::BPF_NOEXIST));
    let bucket = BUCKETS.get_ptr_mut(key);
    if bucket.is_none() {
        // The map is full: the caller fails closed; say so.
        counters::global(global_counter::BUCKET_MAP_FULL);
    }
    bucket
}

/// The bucket a limit of `t.user` polices against: the sender's own in the
/// per-source table for the unidentified user (unless the policy shares
/// one bucket among them), else the user's.
#[inline(always)]
fn limit_bucket(t: &Traffic, cfg: &Config, p: &Packet, clock: &mut Clock) -> Option<*mut u64> {
    if unid::applies(t.user, cfg) {
        unid::bucket(p, t.class, t.dir, cfg, clock.now())
    } else {
        user_bucket(t.user, t.class, t.dir, bucket_kind::RATE)
    }
}

/// One packet as enforcement sees it.
#[derive(Clone, Copy)]
pub(crate) struct Traffic {
    pub user: UserId,
    pub class: u32,
    pub dir: u8,
    /// Whole frame length in bytes.
    pub len: u64,
    /// The policy generation in force for this packet.
    pub generation: u32,
}

#[inline(always)]
pub(crate) fn decide(
    t: &Traffic,
    p: &Packet,
    flow: &mut Flow,
    cfg: &Config,
    signal: Signal,
    can_hand_off: bool,
) -> Enforced {
    let Traffic {
        user,
        class,
        len,
        generation,
        ..
    } = *t;
    let profile = active_profile(generation);
    let a = params(user, class, profile, cfg, generation);
    let mut out = Enforced {
        decision: Decision::Pass,
        mark_ce: false,
        tc_classid: 0,
        reason: drop_reason::RULE,
    };
    let mut clock = Clock(0);
    match a.kind {
        kind::DENY => out.decision = Decision::Deny,
        kind::MONITOR => out.decision = Decision::Monitor,
        kind::LIMIT => {
            if a.conn_cost_ns != 0
                && let Some(refused) = connections(t, p, flow, &a, cfg, &mut clock)
            {
                out.decision = refused;
            } else if can_hand_off && a.tc_classid != 0 {
                out.tc_classid = a.tc_classid;
            } else if a.cost_fp != 0 {
                // A limit on connections alone has no byte or packet rate.
                match limit_bucket(t, cfg, p, &mut clock) {
                    Some(tat) => match police(tat, &a, len, signal, &mut clock) {
                        Some(backlog) => {
                            out.mark_ce = a.flags & flag::ECN != 0
                                && signal.ecn_capable
                                && backlog > a.tolerance_ns / 2;
                        }
                        None if a.flags & flag::MONITOR_ONLY != 0 => {
                            out.decision = Decision::Monitor;
                        }
                        None => out.decision = Decision::Limited,
                    },
                    // No bucket could be created: fail closed, like an
                    // empty bucket.
                    None => out.decision = Decision::Limited,
                }
            }
        }
        _ => {}
    }
    if out.decision == Decision::Pass
        && class < MAX_CLASSES
        && cfg.present & present::CLASS_LIMITS != 0
    {
        aggregate(t, profile, signal, &mut clock, &mut out);
    }
    if matches!(out.decision, Decision::Pass | Decision::Monitor)
        && cfg.present & present::QUOTAS != 0
        && let Some((q, bucket)) = quota::exhausted(user, class, cfg)
    {
        // SAFETY: a pointer to an array value, valid for the run.
        let q = unsafe { &(*q).exhausted };
        exhausted(t, q, bucket, signal, &mut clock, &mut out);
    }
    if cfg.mode == mode::MONITOR && matches!(out.decision, Decision::Deny | Decision::Limited) {
        out.decision = Decision::Monitor;
    }
    out
}

/// The connection half of a limit: a packet that opens a connection takes
/// one from the user's connection bucket (kind [`bucket_kind::CONN`]) before
/// the byte or packet half sees it. `Some` with the decision when refused.
/// An admitted new UDP flow (or one a dry run lets through) is remembered
/// after the verdict ([`Flow::finish`]); a refused one is not, so its next
/// packet asks again.
#[inline(always)]
fn connections(
    t: &Traffic,
    p: &Packet,
    flow: &mut Flow,
    a: &ActionParams,
    cfg: &Config,
    clock: &mut Clock,
) -> Option<Decision> {
    if matches!(flow.opening(p, t.dir, cfg), Opening::No) {
        return None;
    }
    let admitted = match user_bucket(t.user, t.class, t.dir, bucket_kind::CONN) {
        // SAFETY: `tat` comes from a map lookup in this run.
        Some(tat) => match unsafe {
            bucket::take(
                tat,
                clock.now(),
                a.conn_cost_ns,
                a.conn_tolerance_ns,
                None::<fn() -> u32>,
            )
        } {
            Outcome::Conform { .. } => true,
            Outcome::Contended => {
                counters::global(global_counter::BUCKET_CONTENDED);
                false
            }
            Outcome::Exceed | Outcome::EarlyDrop => false,
        },
        None => false,
    };
    let dry_run = a.flags & flag::MONITOR_ONLY != 0 || cfg.mode == mode::MONITOR;
    if admitted || dry_run {
        flow.admit();
    }
    match (admitted, a.flags & flag::MONITOR_ONLY != 0) {
        (true, _) => None,
        (false, true) => Some(Decision::Monitor),
        (false, false) => Some(Decision::Limited),
    }
}

/// An exhausted quota's action, on top of what the packet's class gave
/// it. Its limit polices the user's bucket of
/// kind [`bucket_kind::QUOTA`] for the quota's class (or all classes).
#[inline(always)]
fn exhausted(
    t: &Traffic,
    q: &ActionParams,
    bucket: u16,
    signal: Signal,
    clock: &mut Clock,
    out: &mut Enforced,
) {
    match q.kind {
        kind::DENY => {
            out.decision = Decision::Deny;
            out.reason = drop_reason::QUOTA;
        }
        kind::MONITOR => out.decision = Decision::Monitor,
        kind::LIMIT => {
            let key = BucketKey {
                user: t.user,
                class: bucket,
                dir: t.dir,
                bucket: bucket_kind::QUOTA,
            };
            let conform = bucket_at(key).and_then(|tat| police(tat, q, t.len, signal, clock));
            match conform {
                Some(backlog) => {
                    out.mark_ce |= q.flags & flag::ECN != 0
                        && signal.ecn_capable
                        && backlog > q.tolerance_ns / 2;
                }
                None if q.flags & flag::MONITOR_ONLY != 0 => out.decision = Decision::Monitor,
                None => {
                    out.decision = Decision::Limited;
                    out.reason = drop_reason::QUOTA;
                }
            }
        }
        _ => {}
    }
}

/// The class's limit for all users together, after the user's own.
#[inline(always)]
fn aggregate(t: &Traffic, profile: usize, signal: Signal, clock: &mut Clock, out: &mut Enforced) {
    let Traffic {
        class,
        dir: direction,
        len,
        generation,
        ..
    } = *t;
    let Some(entry) = CLASS_LIMITS.get(generation * MAX_CLASSES + class) else {
        return;
    };
    if profile >= MAX_PROFILES {
        return;
    }
    let a = &entry.profiles[profile];
    if a.kind != kind::LIMIT {
        return;
    }
    let Some(tat) = CLASS_BUCKETS.get_ptr_mut(class * 2 + u32::from(direction)) else {
        return;
    };
    match police(tat, a, len, signal, clock) {
        Some(backlog) => {
            out.mark_ce |=
                a.flags & flag::ECN != 0 && signal.ecn_capable && backlog > a.tolerance_ns / 2;
        }
        None if a.flags & flag::MONITOR_ONLY != 0 => out.decision = Decision::Monitor,
        None => {
            out.decision = Decision::Limited;
            out.reason = drop_reason::CLASS_LIMIT;
        }
    }
}
