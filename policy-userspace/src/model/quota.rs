//! Byte quotas as the kernel keeps them (policy-ebpf's quota.rs): each
//! user's slots in the policy's order, `used` counted from passed packets'
//! whole frames, exhausted slots adding their action to the verdict.

use std::collections::HashMap;

use policy_common::{ActionParams, QUOTA_ALL_CLASSES, UserId, kind};

use super::Verdict;
use crate::policy::CompiledPolicy;

#[derive(Debug, Clone)]
struct Slot {
    class: u32,
    limit: u64,
    used: u64,
    exhausted: ActionParams,
}

impl Slot {
    fn covers(&self, class: u32) -> bool {
        self.class == QUOTA_ALL_CLASSES || self.class == class
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Quotas(HashMap<UserId, Vec<Slot>>);

impl Quotas {
    pub(super) fn new(policy: &CompiledPolicy) -> Self {
        let mut out: HashMap<UserId, Vec<Slot>> = HashMap::new();
        for q in &policy.quotas {
            out.entry(q.user).or_default().push(Slot {
                class: q.class,
                limit: q.bytes,
                used: 0,
                exhausted: q.exhausted,
            });
        }
        Self(out)
    }

    /// `v` once `user`'s exhausted quotas covering `class` add their
    /// actions: only to a packet the class's action lets through. A limit
    /// is [`Verdict::LimitConform`]: whether it conforms is kernel time.
    pub(super) fn verdict(&self, user: UserId, class: u32, v: Verdict, monitor: bool) -> Verdict {
        if !matches!(v, Verdict::Pass | Verdict::Monitor | Verdict::LimitConform) {
            return v;
        }
        let mut v = v;
        for s in self.0.get(&user).into_iter().flatten() {
            if !s.covers(class) || s.used < s.limit {
                continue;
            }
            match s.exhausted.kind {
                kind::DENY if monitor => v = Verdict::Monitor,
                kind::DENY => return Verdict::Deny,
                kind::MONITOR => v = Verdict::Monitor,
                kind::LIMIT if v == Verdict::Pass => v = Verdict::LimitConform,
                _ => {}
            }
        }
        v
    }

    /// A passed packet of `len` bytes, counted into every slot of `user`
    /// that covers `class`.
    pub(super) fn account(&mut self, user: UserId, class: u32, len: u64) {
        for s in self.0.get_mut(&user).into_iter().flatten() {
            if s.covers(class) {
                s.used = s.used.saturating_add(len);
            }
        }
    }

    /// Takes what the kernel's slots hold (a new period began): `uses`
    /// is the kernel's table, each user's slots in the policy's order.
    pub(super) fn reset_from(&mut self, uses: &[crate::dataplane::QuotaUse]) {
        let mut rank: HashMap<UserId, usize> = HashMap::new();
        for u in uses {
            let i = rank.entry(u.user).or_default();
            if let Some(s) = self.0.get_mut(&u.user).and_then(|v| v.get_mut(*i)) {
                s.used = u.used;
            }
            *i += 1;
        }
    }

    /// What `user`'s slot `i` has counted.
    pub(super) fn used(&self, user: UserId, i: usize) -> Option<u64> {
        self.0.get(&user)?.get(i).map(|s| s.used)
    }
}
