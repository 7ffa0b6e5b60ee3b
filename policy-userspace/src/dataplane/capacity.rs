//! Map capacities: chosen at load, because kernel maps cannot grow.

use std::path::Path;

use aya::{Ebpf, EbpfLoader};
use policy_common::{
    DEFAULT_CONN_FLOW_WIDTH, DEFAULT_MAX_ACTIONS, DEFAULT_MAX_ADDRS, DEFAULT_MAX_CIDRS,
    DEFAULT_MAX_COUNTERS, DEFAULT_MAX_LEARNED, DEFAULT_MAX_NAME_FLOWS, DEFAULT_MAX_SET_CIDRS,
    DEFAULT_MAX_SOCKET_OWNERS, DEFAULT_MAX_USERS, DEFAULT_SKETCH_WIDTH, DEFAULT_UNID_SLOTS,
    GENERATIONS, MAP_ACTIONS, MAP_BUCKETS, MAP_CLASS_RULES, MAP_CONN_FLOWS, MAP_COUNTERS,
    MAP_EVENT_LIMITER, MAP_FLOW_SKETCH, MAP_IP_BINDINGS, MAP_LEARNED_NAMES, MAP_LEARNED4,
    MAP_LEARNED6, MAP_NAME_FLOWS, MAP_QUOTAS, MAP_SCAN, MAP_SET_CIDRS, MAP_SET_CIDRS4,
    MAP_UNID_BUCKETS, MAP_USER_CGROUPS, MAP_USER_CIDRS, MAP_USER_CIDRS4, MAP_USER_INFO,
    MAP_USER_MACS, MAP_USER_NAMES, MAP_USER_UIDS, MAP_USERS, MAP_USERS4, MAX_CLASS_RULES,
    MAX_FITTED_COUNTERS, MIN_RULE_SLOTS, SKETCH_ROWS, dir, mapped_v4, present, rule_slots,
};

use super::{DataplaneError, buckets, maps, rows::ActionRows};
use crate::policy::CompiledPolicy;

/// Map capacities chosen at load time. Kernel maps cannot grow, so those
/// filled from the policy are sized to fit it with a quarter more (never
/// below the defaults); those filled by traffic are fitted too unless the
/// operator sets them. After a load they are the sizes the maps really
/// have (an adopted pin keeps the size it was made with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub users: u32,
    /// Exact IPv6 addresses (USERS).
    pub addrs: u32,
    /// Exact IPv4 addresses (USERS4).
    pub addrs4: u32,
    pub macs: u32,
    /// Anti-spoofing bindings (IP_BINDINGS).
    pub bindings: u32,
    /// User prefixes, in each of the IPv4 and IPv6 tries.
    pub cidrs: u32,
    pub socket_owners: u32,
    /// Set prefixes, in each of the IPv4 and IPv6 tries.
    pub set_cidrs: u32,
    /// Action table entries per generation (see rows.rs).
    pub actions: u32,
    /// (user, class, direction) counter entries; 0 until [`Self::fit`]
    /// sizes it to the policy.
    pub counters: u32,
    /// Per-user token buckets (a plain hash: never evicted); 0 until
    /// [`Self::fit`] sizes it to the policy.
    pub buckets: u32,
    /// Cells per row of the elephant sketch (rounded up to a power of two
    /// when loaded).
    pub sketch_width: u32,
    /// Slots per row of the recent-UDP-flow table of connection limits
    /// (a power of two when loaded; policy-common's conn.rs).
    pub conn_flow_width: u32,
    /// Users watched for scans (SCAN, 88 bytes each): the users' capacity
    /// when the policy detects scans, else 1 (the map cannot be empty).
    pub scan: u32,
    /// Slots of the unidentified user's per-source buckets: the policy's
    /// `[unidentified] slots`, never below the default (16 bytes a slot,
    /// 64 KiB), so a reload may switch from a shared bucket to per-source
    /// ones, or ask for a table up to that size.
    pub unid_slots: u32,
    /// Quota slots per user (QUOTAS, 80 bytes each, users times this):
    /// the most quotas any user has when the policy has quotas, else 0
    /// (the map then has one entry).
    pub quota_slots: u32,
    /// Learned addresses, in each of LEARNED4 and LEARNED6 (not
    /// preallocated: an empty table costs its bucket array alone).
    pub learned: u32,
    /// TLS flows classified by server name (NAME_FLOWS, an LRU,
    /// preallocated at about 110 bytes an entry): the full default when
    /// the policy has domain sets at load, else a small table (a reload
    /// adding domain sets works with it; a restart sizes it fully).
    pub name_flows: u32,
    /// Class rule slots the kernel's rule loops walk (policy-common's
    /// `rule_slots`): a constant the programs are verified with, so it is
    /// chosen before the verifier runs and a reload needing more is
    /// refused.
    pub rules: u32,
}

/// [`Capacity::name_flows`] of a policy without domain sets.
const SMALL_NAME_FLOWS: u32 = 4_096;

impl Default for Capacity {
    fn default() -> Self {
        Self {
            users: DEFAULT_MAX_USERS,
            addrs: DEFAULT_MAX_ADDRS,
            addrs4: DEFAULT_MAX_ADDRS,
            macs: DEFAULT_MAX_ADDRS,
            bindings: DEFAULT_MAX_ADDRS,
            cidrs: DEFAULT_MAX_CIDRS,
            socket_owners: DEFAULT_MAX_SOCKET_OWNERS,
            set_cidrs: DEFAULT_MAX_SET_CIDRS,
            actions: DEFAULT_MAX_ACTIONS,
            counters: 0,
            buckets: 0,
            sketch_width: DEFAULT_SKETCH_WIDTH,
            conn_flow_width: DEFAULT_CONN_FLOW_WIDTH,
            scan: 1,
            unid_slots: DEFAULT_UNID_SLOTS,
            quota_slots: 0,
            learned: DEFAULT_MAX_LEARNED,
            name_flows: SMALL_NAME_FLOWS,
            rules: MIN_RULE_SLOTS,
        }
    }
}

/// What a table filled from the policy is sized to: the policy's need and
/// a quarter more, so a reload that grows it a little still fits.
fn headroom(need: usize) -> usize {
    need.saturating_add(need / 4)
}

/// How many entries of each family a policy puts in the split tables.
struct Families {
    exact4: usize,
    exact6: usize,
    cidrs: usize,
    set_cidrs: usize,
}

impl Families {
    fn of(policy: &CompiledPolicy) -> Self {
        let exact4 = policy
            .exact
            .iter()
            .filter(|(a, _)| mapped_v4(a).is_some())
            .count();
        let (cidrs4, cidrs6) = maps::split_prefixes(&policy.cidrs);
        let (sets4, sets6) = maps::split_prefixes(&policy.set_cidrs);
        Self {
            exact4,
            exact6: policy.exact.len() - exact4,
            cidrs: cidrs4.len().max(cidrs6.len()),
            set_cidrs: sets4.len().max(sets6.len()),
        }
    }
}

/// One table's need against its capacity, for [`Capacity::check`].
struct Need {
    map: &'static str,
    what: &'static str,
    need: usize,
    capacity: u32,
}

impl Capacity {
    /// Grows the policy-filled capacities to fit `policy`.
    pub fn fit(mut self, policy: &CompiledPolicy) -> Self {
        let fit =
            |current: u32, n: usize| current.max(u32::try_from(headroom(n)).unwrap_or(u32::MAX));
        let families = Families::of(policy);
        self.users = fit(self.users, policy.users.len());
        self.addrs = fit(self.addrs, families.exact6);
        self.addrs4 = fit(self.addrs4, families.exact4);
        self.macs = fit(self.macs, policy.macs.len());
        self.bindings = fit(self.bindings, policy.bindings.len());
        self.cidrs = fit(self.cidrs, families.cidrs);
        self.socket_owners = fit(
            self.socket_owners,
            policy.uids.len().max(policy.cgroups.len()),
        );
        self.set_cidrs = fit(self.set_cidrs, families.set_cidrs);
        self.actions = fit(self.actions, ActionRows::need(policy));
        if self.counters == 0 {
            // Every user in every class both ways, within bounds: the map
            // has no preallocation, so unused room costs only its buckets.
            let all = policy
                .users
                .len()
                .saturating_mul(policy.classes.len())
                .saturating_mul(dir::COUNT);
            self.counters = fit(DEFAULT_MAX_COUNTERS, all).min(MAX_FITTED_COUNTERS);
        }
        if self.buckets == 0 {
            self.buckets = buckets::fitted(buckets::need(policy));
        }
        if policy.config.present & present::SCAN != 0 {
            self.scan = self.scan.max(self.users);
        }
        self.unid_slots = self.unid_slots.max(policy.config.unid_slots);
        self.quota_slots = self.quota_slots.max(policy.config.quota_slots);
        self.learned = fit(self.learned, policy.names.limits().max_entries);
        self.rules = self.rules.max(rule_slots(
            u32::try_from(policy.class_rules.len()).unwrap_or(u32::MAX),
        ));
        if policy.config.present & present::NAMES != 0 {
            self.name_flows = self.name_flows.max(DEFAULT_MAX_NAME_FLOWS);
        }
        self
    }

    /// The sizes the loaded maps really have.
    pub(super) fn as_loaded(self, ebpf: &Ebpf) -> Result<Self, DataplaneError> {
        let per_gen = |name| maps::per_generation(ebpf, name);
        Ok(Self {
            users: per_gen(MAP_USER_INFO)?,
            addrs: per_gen(MAP_USERS)?,
            addrs4: per_gen(MAP_USERS4)?,
            macs: per_gen(MAP_USER_MACS)?,
            bindings: per_gen(MAP_IP_BINDINGS)?,
            cidrs: per_gen(MAP_USER_CIDRS)?.min(per_gen(MAP_USER_CIDRS4)?),
            socket_owners: per_gen(MAP_USER_UIDS)?.min(per_gen(MAP_USER_CGROUPS)?),
            set_cidrs: per_gen(MAP_SET_CIDRS)?.min(per_gen(MAP_SET_CIDRS4)?),
            actions: per_gen(MAP_ACTIONS)?,
            counters: maps::max_entries(ebpf, MAP_COUNTERS)?,
            // An adopted table keeps the width it was made with.
            conn_flow_width: maps::max_entries(ebpf, MAP_CONN_FLOWS)? / 2,
            scan: maps::max_entries(ebpf, MAP_SCAN)?,
            unid_slots: maps::max_entries(ebpf, MAP_UNID_BUCKETS)?,
            quota_slots: maps::max_entries(ebpf, MAP_QUOTAS)? / per_gen(MAP_USER_INFO)?.max(1),
            learned: maps::max_entries(ebpf, MAP_LEARNED4)?
                .min(maps::max_entries(ebpf, MAP_LEARNED6)?),
            name_flows: maps::max_entries(ebpf, MAP_NAME_FLOWS)?,
            ..self
        })
    }

    /// Refuses `policy` if a table sized at load cannot hold it (a reload
    /// that outgrew the sizes the first start chose).
    pub fn check(&self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        self.check_with(policy, &buckets::Limited::of(policy))
    }

    /// [`Self::check`], with the policy's action rows and limits already
    /// worked out (a reload uses them again to write the maps).
    pub(super) fn check_with(
        &self,
        policy: &CompiledPolicy,
        limited: &buckets::Limited,
    ) -> Result<(), DataplaneError> {
        let families = Families::of(policy);
        let needs = [
            Need {
                map: MAP_USER_INFO,
                what: "user ids",
                need: policy.users.len(),
                capacity: self.users,
            },
            Need {
                map: MAP_USERS4,
                what: "exact IPv4 addresses",
                need: families.exact4,
                capacity: self.addrs4,
            },
            Need {
                map: MAP_USERS,
                what: "exact IPv6 addresses",
                need: families.exact6,
                capacity: self.addrs,
            },
            Need {
                map: MAP_USER_MACS,
                what: "MAC addresses",
                need: policy.macs.len(),
                capacity: self.macs,
            },
            Need {
                map: MAP_IP_BINDINGS,
                what: "address-to-MAC bindings",
                need: policy.bindings.len(),
                capacity: self.bindings,
            },
            Need {
                map: MAP_USER_CIDRS,
                what: "user CIDRs (of one IP version)",
                need: families.cidrs,
                capacity: self.cidrs,
            },
            Need {
                map: MAP_USER_UIDS,
                what: "socket owners (UIDs or cgroups)",
                need: policy.uids.len().max(policy.cgroups.len()),
                capacity: self.socket_owners,
            },
            Need {
                map: MAP_SET_CIDRS,
                what: "set CIDRs (of one IP version)",
                need: families.set_cidrs,
                capacity: self.set_cidrs,
            },
            Need {
                map: MAP_ACTIONS,
                what: "action entries (a row of one per class for each distinct treatment)",
                need: limited.rows().cells.len(),
                capacity: self.actions,
            },
            Need {
                map: MAP_SCAN,
                what: "users watched for scans (the table is sized when policyd starts with \
                       `[detect.scan]` in its policy: restart it to turn detection on)",
                need: if policy.config.present & present::SCAN != 0 {
                    policy.users.len()
                } else {
                    0
                },
                capacity: self.scan,
            },
            Need {
                map: MAP_QUOTAS,
                what: "quota slots per user (the table is sized when policyd first starts \
                       with quotas in its policy, to the most any user has: `policyd unload`, \
                       which forgets usage, and start again to give users more)",
                need: policy.config.quota_slots as usize,
                capacity: self.quota_slots,
            },
            Need {
                map: MAP_LEARNED4,
                what: "learned addresses ([names] max_learned; the tables are sized when \
                       policyd starts: restart it to raise the limit)",
                need: policy.names.limits().max_entries,
                capacity: self.learned,
            },
            Need {
                map: MAP_CLASS_RULES,
                what: "class rules (the kernel's rule loop is verified for this many when \
                       policyd starts: restart it to have room for more)",
                need: policy.class_rules.len(),
                capacity: self.rules,
            },
            Need {
                map: MAP_UNID_BUCKETS,
                what: "slots of the unidentified senders' buckets ([unidentified] slots)",
                need: policy.config.unid_slots as usize,
                capacity: self.unid_slots,
            },
        ];
        if let Some(n) = needs.into_iter().find(|n| n.need > n.capacity as usize) {
            return Err(DataplaneError::TableFull {
                map: n.map,
                what: n.what,
                need: n.need,
                capacity: n.capacity,
            });
        }
        buckets::check(limited, self.buckets)
    }

    /// Refuses `policy` if it may need more token buckets than
    /// `self.buckets` (an operator's `--max-buckets` below the need).
    pub fn check_buckets(&self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        buckets::check(&buckets::Limited::of(policy), self.buckets)
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
            .map_max_entries(MAP_USERS4, two(self.addrs4))
            .map_max_entries(MAP_USER_MACS, two(self.macs))
            .map_max_entries(MAP_IP_BINDINGS, two(self.bindings))
            .map_max_entries(MAP_USER_CIDRS, two(self.cidrs))
            .map_max_entries(MAP_USER_CIDRS4, two(self.cidrs))
            .map_max_entries(MAP_USER_UIDS, two(self.socket_owners))
            .map_max_entries(MAP_USER_CGROUPS, two(self.socket_owners))
            .map_max_entries(MAP_SET_CIDRS, two(self.set_cidrs))
            .map_max_entries(MAP_SET_CIDRS4, two(self.set_cidrs))
            .map_max_entries(MAP_ACTIONS, two(self.actions))
            .map_max_entries(MAP_COUNTERS, self.counters)
            .map_max_entries(MAP_BUCKETS, self.buckets)
            .map_max_entries(MAP_UNID_BUCKETS, self.unid_slots)
            .map_max_entries(MAP_EVENT_LIMITER, self.users)
            .map_max_entries(MAP_LEARNED4, self.learned)
            .map_max_entries(MAP_LEARNED6, self.learned)
            .map_max_entries(MAP_NAME_FLOWS, self.name_flows)
            .map_max_entries(MAP_LEARNED_NAMES, self.learned.saturating_mul(2))
            .map_max_entries(
                MAP_FLOW_SKETCH,
                SKETCH_ROWS.saturating_mul(self.sketch_cells()),
            )
            .map_max_entries(MAP_CONN_FLOWS, 2 * self.conn_flow_slots())
            .map_max_entries(MAP_SCAN, self.scan.max(1))
            .map_max_entries(MAP_QUOTAS, self.quota_entries());
        loader
    }

    /// Entries of the quota table: a row of slots per user id.
    pub(super) fn quota_entries(self) -> u32 {
        self.users.saturating_mul(self.quota_slots).max(1)
    }

    /// Slots per row of the recent-flow table: a power of two (at most
    /// 2^16, so the tag bits of policy-common's conn.rs stay apart from
    /// the index bits).
    fn conn_flow_slots(self) -> u32 {
        self.conn_flow_width.clamp(1, 1 << 16).next_power_of_two()
    }

    /// The bound of the kernel's rule loops, in `.rodata` at load: never
    /// past the rule array's half, whatever a caller asked for.
    pub(super) fn rule_slots(self) -> u32 {
        self.rules.clamp(1, MAX_CLASS_RULES)
    }

    /// The mask the kernel turns a flow hash into a slot index with.
    pub(super) fn conn_flow_mask(self) -> u32 {
        self.conn_flow_slots() - 1
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
        let families = Families::of(policy);
        vec![
            (MAP_USER_INFO, n(policy.users.len()), u64::from(self.users)),
            (MAP_USERS, n(families.exact6), u64::from(self.addrs)),
            (MAP_USERS4, n(families.exact4), u64::from(self.addrs4)),
            (MAP_USER_MACS, n(policy.macs.len()), u64::from(self.macs)),
            (
                MAP_IP_BINDINGS,
                n(policy.bindings.len()),
                u64::from(self.bindings),
            ),
            (MAP_USER_CIDRS, n(policy.cidrs.len()), u64::from(self.cidrs)),
            (
                MAP_SET_CIDRS,
                n(policy.set_cidrs.len()),
                u64::from(self.set_cidrs),
            ),
            (
                MAP_ACTIONS,
                n(ActionRows::need(policy)),
                u64::from(self.actions),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use policy_common::{DEFAULT_MAX_ADDRS, DEFAULT_MAX_USERS, MAP_USER_INFO, MAP_USERS4};

    use super::Capacity;
    use crate::{
        dataplane::DataplaneError,
        policy::{self, CompiledPolicy},
    };

    fn users(n: u32) -> CompiledPolicy {
        let src: String = (0..n)
            .map(|i| {
                let [_, a, b, c] = (i + 1).to_be_bytes();
                format!("[[user]]\nname = \"u{i}\"\nips = [\"10.{a}.{b}.{c}\"]\n")
            })
            .collect();
        CompiledPolicy::compile(&policy::parse(Path::new("t.toml"), &src).unwrap())
    }

    #[test]
    fn a_small_policy_gets_the_least_sizes() {
        let c = Capacity::default().fit(&users(10));
        assert_eq!(c.addrs4, DEFAULT_MAX_ADDRS);
        assert_eq!(
            c.counters, 4_096,
            "11 users x 1 class x 2 is below the floor"
        );
        c.check(&users(10)).unwrap();
    }

    #[test]
    fn the_unidentified_table_is_the_default_or_what_the_policy_asks() {
        let compile =
            |src: &str| CompiledPolicy::compile(&policy::parse(Path::new("t.toml"), src).unwrap());
        let c = Capacity::default().fit(&users(10));
        assert_eq!(c.unid_slots, 4_096, "64 KiB at 10 users");
        let big = compile("[unidentified]\naction = \"limit 1Mbit\"\nslots = 65536\n");
        let c = c.fit(&big);
        assert_eq!(c.unid_slots, 65_536);
        let small = Capacity::default().fit(&users(10));
        let err = small.check(&big).unwrap_err();
        assert!(
            matches!(
                err,
                DataplaneError::TableFull {
                    map: policy_common::MAP_UNID_BUCKETS,
                    need: 65_536,
                    capacity: 4_096,
                    ..
                }
            ),
            "a reload asking for more slots than the table has: {err}"
        );
    }

    #[test]
    fn a_large_policy_gets_a_quarter_more() {
        let c = Capacity::default().fit(&users(10_000));
        assert_eq!(c.addrs4, 12_500);
        assert_eq!(
            c.users, 12_501,
            "10 000 users and unidentified, and a quarter more"
        );
        c.check(&users(12_500)).unwrap();
    }

    #[test]
    fn a_policy_that_outgrew_the_tables_is_refused_naming_the_map() {
        let c = Capacity::default().fit(&users(10));
        let err = c.check(&users(5_000)).unwrap_err();
        // The first table checked that is too small: the user ids.
        assert!(
            matches!(
                err,
                DataplaneError::TableFull {
                    map: MAP_USER_INFO,
                    need: 5_001,
                    capacity: DEFAULT_MAX_USERS,
                    ..
                }
            ),
            "{err}"
        );
        let c = Capacity { users: 8_192, ..c };
        let err = c.check(&users(5_000)).unwrap_err();
        assert!(
            matches!(
                err,
                DataplaneError::TableFull {
                    map: MAP_USERS4,
                    need: 5_000,
                    capacity: DEFAULT_MAX_ADDRS,
                    ..
                }
            ),
            "then the exact addresses: {err}"
        );
        assert!(err.to_string().contains("policyd unload"), "{err}");
    }
}
