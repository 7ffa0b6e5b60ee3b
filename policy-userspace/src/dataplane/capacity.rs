//! Map capacities: chosen at load, because kernel maps cannot grow.

use std::path::Path;

use aya::EbpfLoader;
use policy_common::{
    DEFAULT_MAX_ACTIONS, DEFAULT_MAX_ADDRS, DEFAULT_MAX_CIDRS, DEFAULT_MAX_COUNTERS,
    DEFAULT_MAX_SET_CIDRS, DEFAULT_MAX_SOCKET_OWNERS, DEFAULT_MAX_USERS, DEFAULT_SKETCH_WIDTH,
    GENERATIONS, MAP_ACTIONS, MAP_BUCKETS, MAP_COUNTERS, MAP_EVENT_LIMITER, MAP_FLOW_SKETCH,
    MAP_IP_BINDINGS, MAP_SET_CIDRS, MAP_USER_CGROUPS, MAP_USER_CIDRS, MAP_USER_INFO, MAP_USER_MACS,
    MAP_USER_NAMES, MAP_USER_UIDS, MAP_USERS, SKETCH_ROWS,
};

use super::{DataplaneError, buckets, rows::ActionRows};
use crate::policy::CompiledPolicy;

/// Map capacities chosen at load time. Kernel maps cannot grow, so those
/// filled from the policy are sized to fit it (never below the defaults);
/// those filled by traffic are set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub users: u32,
    pub addrs: u32,
    pub cidrs: u32,
    pub socket_owners: u32,
    pub set_cidrs: u32,
    pub actions: u32,
    /// (user, class, direction) counter entries.
    pub counters: u32,
    /// Per-user token buckets (a plain hash: never evicted); 0 until
    /// [`Self::fit`] sizes it to the policy.
    pub buckets: u32,
    /// Cells per row of the elephant sketch (rounded up to a power of two
    /// when loaded).
    pub sketch_width: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            users: DEFAULT_MAX_USERS,
            addrs: DEFAULT_MAX_ADDRS,
            cidrs: DEFAULT_MAX_CIDRS,
            socket_owners: DEFAULT_MAX_SOCKET_OWNERS,
            set_cidrs: DEFAULT_MAX_SET_CIDRS,
            actions: DEFAULT_MAX_ACTIONS,
            counters: DEFAULT_MAX_COUNTERS,
            buckets: 0,
            sketch_width: DEFAULT_SKETCH_WIDTH,
        }
    }
}

/// What a table filled from the policy is sized to: the policy's need and
/// a quarter more, so a reload that grows it a little still fits.
fn headroom(need: usize) -> usize {
    need.saturating_add(need / 4)
}

impl Capacity {
    /// Grows the policy-filled capacities to fit `policy`.
    pub fn fit(mut self, policy: &CompiledPolicy) -> Self {
        let fit = |current: u32, n: usize| current.max(u32::try_from(n).unwrap_or(u32::MAX));
        self.users = fit(self.users, policy.users.len());
        self.addrs = fit(
            self.addrs,
            policy
                .exact
                .len()
                .max(policy.macs.len())
                .max(policy.bindings.len()),
        );
        self.cidrs = fit(self.cidrs, policy.cidrs.len());
        self.socket_owners = fit(
            self.socket_owners,
            policy.uids.len().max(policy.cgroups.len()),
        );
        self.set_cidrs = fit(self.set_cidrs, policy.set_cidrs.len());
        self.actions = fit(self.actions, headroom(ActionRows::need(policy)));
        if self.buckets == 0 {
            self.buckets = buckets::fitted(buckets::need(policy));
        }
        self
    }

    /// Refuses `policy` if a table sized at load cannot hold it.
    pub fn check(&self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        let need = ActionRows::need(policy);
        if need > self.actions as usize {
            return Err(DataplaneError::TableFull {
                map: MAP_ACTIONS,
                what: "action entries (a row of one per class for each distinct treatment)",
                need,
                capacity: self.actions,
            });
        }
        self.check_buckets(policy)
    }

    /// Refuses `policy` if it may need more token buckets than
    /// `self.buckets` (an operator's `--max-buckets` below the need).
    pub fn check_buckets(&self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        buckets::check(policy, self.buckets)
    }

    /// A loader that makes the maps this size, pinned in `pin_dir`.
    pub(super) fn loader(self, pin_dir: &Path) -> EbpfLoader<'static> {
        // Policy tables hold two generations (see policy-common's
        // generation.rs): twice the entries.
        let two = |n: u32| n.saturating_mul(GENERATIONS);
        let mut loader = EbpfLoader::new();
        loader
            .default_map_pin_directory(pin_dir)
            .map_max_entries(MAP_USER_INFO, two(self.users))
            .map_max_entries(MAP_USER_NAMES, self.users)
            .map_max_entries(MAP_USERS, two(self.addrs))
            .map_max_entries(MAP_USER_MACS, two(self.addrs))
            .map_max_entries(MAP_IP_BINDINGS, two(self.addrs))
            .map_max_entries(MAP_USER_CIDRS, two(self.cidrs))
            .map_max_entries(MAP_USER_UIDS, two(self.socket_owners))
            .map_max_entries(MAP_USER_CGROUPS, two(self.socket_owners))
            .map_max_entries(MAP_SET_CIDRS, two(self.set_cidrs))
            .map_max_entries(MAP_ACTIONS, two(self.actions))
            .map_max_entries(MAP_COUNTERS, self.counters)
            .map_max_entries(MAP_BUCKETS, self.buckets)
            .map_max_entries(MAP_EVENT_LIMITER, self.users)
            .map_max_entries(
                MAP_FLOW_SKETCH,
                SKETCH_ROWS.saturating_mul(self.sketch_cells()),
            );
        loader
    }

    /// Cells per sketch row: the width rounded up to a power of two (at
    /// most 2^30), so a cell index is a mask, not a division.
    fn sketch_cells(self) -> u32 {
        self.sketch_width.clamp(1, 1 << 30).next_power_of_two()
    }

    /// The mask the kernel turns a flow hash into a cell index with.
    pub(super) fn sketch_mask(self) -> u32 {
        self.sketch_cells() - 1
    }

    /// How full the policy tables are with `policy`: (map, entries,
    /// capacity per generation), for the metrics.
    pub(super) fn fill(self, policy: &CompiledPolicy) -> Vec<(&'static str, u64, u64)> {
        let n = |len: usize| len as u64;
        vec![
            ("user_info", n(policy.users.len()), u64::from(self.users)),
            ("users", n(policy.exact.len()), u64::from(self.addrs)),
            ("user_macs", n(policy.macs.len()), u64::from(self.addrs)),
            ("user_cidrs", n(policy.cidrs.len()), u64::from(self.cidrs)),
            (
                "set_cidrs",
                n(policy.set_cidrs.len()),
                u64::from(self.set_cidrs),
            ),
            (
                "actions",
                n(ActionRows::need(policy)),
                u64::from(self.actions),
            ),
        ]
    }
}
