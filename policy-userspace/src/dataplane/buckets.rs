//! How many token buckets a policy needs, and keeping the bucket map to
//! what the policy in force limits.
//!
//! BUCKETS is a plain hash, not LRU: a limited user's bucket must never be
//! evicted, or the user starts again with a full burst (with more active
//! limited users than slots, users got 4-5 times their limit). So the map is
//! sized to the policy at start, and a reload that would need more than it
//! holds is refused.

use aya::{
    Ebpf,
    maps::{Map, MapData, MapType},
};
use policy_common::{ActionEntry, BucketKey, MAP_BUCKETS, UserId, dir, kind};

use super::{DataplaneError, rows::ActionRows};
use crate::policy::CompiledPolicy;

/// A fitted bucket map holds this many times what the policy needs, so a
/// reload may add limited users (the map cannot grow while it is loaded).
pub(super) const HEADROOM: u64 = 2;
/// A fitted bucket map has at least this many slots (64 KiB of kernel
/// memory at about 64 bytes a slot), so small policies can grow on reload.
pub(super) const MIN_FITTED: u64 = 1024;

/// The (user, class) pairs with a per-user limit in at least one profile:
/// each may use one bucket per direction. A user's action for a class is
/// the cell of their action row (their own rule, else their group's, else
/// everyone's, as the kernel reads it), so a group or everyone limit means
/// one bucket per member who can send in the class. Only users something
/// identifies can send: the `unidentified` user (id 0) and users with an
/// address, prefix, MAC or socket owner.
pub(super) struct Limited {
    rows: ActionRows,
    /// Classes some rule limits (most policies: a few, or none).
    classes: Vec<u32>,
    /// By user id: the action row of a user who can send, else `None`.
    row_of: Vec<Option<u32>>,
}

fn limits(e: &ActionEntry) -> bool {
    e.profiles.iter().any(|p| p.kind == kind::LIMIT)
}

/// The buckets a (user, class) with this entry may use per direction: one
/// for a byte or packet rate, one for a connection rate (in any profile).
fn kinds(e: &ActionEntry) -> u64 {
    let any = |f: fn(&policy_common::ActionParams) -> bool| {
        e.profiles.iter().any(|p| p.kind == kind::LIMIT && f(p))
    };
    u64::from(any(|p| p.cost_fp != 0)) + u64::from(any(|p| p.conn_cost_ns != 0))
}

impl Limited {
    pub(super) fn of(policy: &CompiledPolicy) -> Self {
        Self::with_rows(policy, ActionRows::of(policy))
    }

    /// The action rows it was read from (the table write_policy writes).
    pub(super) fn rows(&self) -> &ActionRows {
        &self.rows
    }

    fn with_rows(policy: &CompiledPolicy, rows: ActionRows) -> Self {
        let mut classes: Vec<u32> = policy
            .actions
            .iter()
            .filter(|(_, e)| limits(e))
            .map(|(k, _)| k.class)
            .collect();
        classes.sort_unstable();
        classes.dedup();
        let mut row_of = Vec::new();
        if !classes.is_empty() {
            // Ids are dense (the allocator's), so a vector indexed by id.
            let mut sends = vec![false; policy.users.len()];
            let mut mark = |u: UserId| {
                let i = u as usize;
                if i >= sends.len() {
                    sends.resize(i + 1, false);
                }
                sends[i] = true;
            };
            mark(policy_common::USER_UNIDENTIFIED);
            policy.exact.iter().for_each(|(_, u)| mark(*u));
            policy.cidrs.iter().for_each(|(_, _, u)| mark(*u));
            policy.macs.iter().for_each(|(_, u)| mark(*u));
            policy.uids.iter().for_each(|(_, u)| mark(*u));
            policy.cgroups.iter().for_each(|(_, u)| mark(*u));
            row_of = vec![None; sends.len()];
            for &(user, row) in &rows.rows_of_users {
                if sends.get(user as usize).copied().unwrap_or(false) {
                    row_of[user as usize] = Some(row);
                }
            }
        }
        Self {
            rows,
            classes,
            row_of,
        }
    }

    /// Whether `user` has a limit of their own in `class`.
    pub(super) fn contains(&self, user: UserId, class: u32) -> bool {
        self.classes.binary_search(&class).is_ok()
            && self
                .row_of
                .get(user as usize)
                .copied()
                .flatten()
                .is_some_and(|row| self.limits_in(row, class))
    }

    fn limits_in(&self, row: u32, class: u32) -> bool {
        self.kinds_in(row, class) != 0
    }

    fn kinds_in(&self, row: u32, class: u32) -> u64 {
        self.rows
            .cells
            .get((row * self.rows.stride + class) as usize)
            .map_or(0, kinds)
    }

    /// How many buckets per direction the (user, class) pairs may use.
    pub(super) fn len(&self) -> u64 {
        // Per row, once: users share rows.
        let mut per_row: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        self.row_of
            .iter()
            .flatten()
            .map(|&row| {
                *per_row.entry(row).or_insert_with(|| {
                    self.classes
                        .iter()
                        .map(|&c| self.kinds_in(row, c))
                        .sum::<u64>()
                })
            })
            .sum()
    }
}

/// Buckets `policy` may use at once: one per limited (user, class,
/// direction).
pub(super) fn need(policy: &CompiledPolicy) -> u64 {
    Limited::of(policy).len() * dir::COUNT as u64
}

/// The bucket map's size when the operator gives none: [`HEADROOM`] times
/// the need, at least [`MIN_FITTED`].
pub(super) fn fitted(need: u64) -> u32 {
    u32::try_from(need.saturating_mul(HEADROOM).max(MIN_FITTED)).unwrap_or(u32::MAX)
}

/// Refuses a policy that needs more buckets than the map holds.
pub(super) fn check(limited: &Limited, capacity: u32) -> Result<(), DataplaneError> {
    let need = limited.len() * dir::COUNT as u64;
    if need > u64::from(capacity) {
        return Err(DataplaneError::TooFewBuckets { need, capacity });
    }
    Ok(())
}

/// The bucket map as loaded: its real size (an adopted pinned map keeps the
/// size it was created with) and a second handle for counting its entries.
/// Refuses an LRU bucket map an older policyd pinned: it would evict.
pub(super) fn inspect(ebpf: &Ebpf) -> Result<(u32, Map), DataplaneError> {
    let data = match ebpf.map(MAP_BUCKETS) {
        Some(Map::HashMap(data)) => data,
        Some(Map::LruHashMap(_)) => return Err(DataplaneError::LruBuckets),
        _ => return Err(DataplaneError::MissingMap(MAP_BUCKETS)),
    };
    let info = data
        .info()
        .map_err(DataplaneError::map(MAP_BUCKETS, "read its info"))?;
    // aya names a map by the type the object declares, an adopted pin has
    // the type it was created with.
    if matches!(info.map_type(), Ok(MapType::LruHash)) {
        return Err(DataplaneError::LruBuckets);
    }
    let fd = std::os::fd::AsFd::as_fd(data.fd())
        .try_clone_to_owned()
        .map_err(|e| DataplaneError::Map {
            map: MAP_BUCKETS,
            what: "duplicate its fd".to_owned(),
            source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                call: "dup",
                io_error: e,
            }),
        })?;
    let handle = MapData::from_fd(fd).map_err(DataplaneError::map(MAP_BUCKETS, "reopen"))?;
    Ok((info.max_entries(), Map::HashMap(handle)))
}

/// Removes the buckets of (user, class) pairs `policy` does not limit (a
/// limit removed by a reload, a retired user), so they do not take slots.
pub(super) fn prune(ebpf: &mut Ebpf, keep: &Limited) -> Result<(), DataplaneError> {
    super::maps::remove_where::<BucketKey, u64>(ebpf, MAP_BUCKETS, |k| {
        !keep.contains(k.user, u32::from(k.class))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn compile(src: &str) -> CompiledPolicy {
        CompiledPolicy::compile(
            &crate::policy::parse(Path::new("t.toml"), src).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    const USERS: &str = r#"
[[class]]
name = "bulk"
match = { proto = "tcp", ports = [22] }

[[user]]
name = "a"
ips = ["10.0.0.1"]

[[user]]
name = "b"
ips = ["10.0.0.2"]
group = "staff"

[[user]]
name = "c"
ips = ["10.0.0.3"]
group = "staff"
"#;

    #[test]
    fn a_user_limit_needs_one_bucket_per_direction() {
        let p = compile(&format!(
            "{USERS}\n[[rule]]\nuser = \"a\"\nclass = \"bulk\"\naction = \"limit 1Mbit\"\n"
        ));
        assert_eq!(need(&p), 2);
    }

    #[test]
    fn a_group_limit_needs_buckets_for_every_member() {
        let p = compile(&format!(
            "{USERS}\n[[rule]]\ngroup = \"staff\"\nclass = \"bulk\"\naction = \"limit 1Mbit\"\n"
        ));
        assert_eq!(need(&p), 2 * 2, "b and c, both directions");
    }

    #[test]
    fn an_everyone_limit_covers_the_unidentified_user_and_yields_to_own_rules() {
        let p = compile(&format!(
            "{USERS}\n[[rule]]\nclass = \"bulk\"\naction = \"limit 1Mbit\"\n\
             [[rule]]\nuser = \"a\"\nclass = \"bulk\"\naction = \"allow\"\n"
        ));
        // b, c and unidentified; a's own allow wins over everyone's limit.
        assert_eq!(need(&p), 3 * 2);
        assert!(!Limited::of(&p).contains(p.user("a").unwrap().id, 1));
        assert!(Limited::of(&p).contains(0, 1));
    }

    #[test]
    fn a_blanket_user_action_limits_every_class() {
        let p = compile(
            "[[class]]\nname = \"bulk\"\nmatch = { proto = \"udp\" }\n\
             [[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\naction = \"limit 1Mbit\"\n",
        );
        assert_eq!(need(&p), 2 * p.classes.len() as u64);
    }

    #[test]
    fn a_limit_in_one_profile_only_still_needs_its_buckets() {
        let p = compile(&format!(
            "[schedule.business]\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"17:00\"\n{USERS}\n\
             [[rule]]\nuser = \"a\"\nclass = \"bulk\"\nbusiness = \"limit 1Mbit\"\noff_hours = \"allow\"\n"
        ));
        assert_eq!(need(&p), 2);
    }

    #[test]
    fn no_limit_needs_no_bucket() {
        let p = compile(&format!(
            "{USERS}\n[[rule]]\nclass = \"bulk\"\naction = \"deny\"\n"
        ));
        assert_eq!(need(&p), 0);
    }

    #[test]
    fn fitted_size_has_headroom_and_a_floor() {
        assert_eq!(fitted(0), 1024);
        assert_eq!(fitted(600), 1200);
        assert_eq!(fitted(u64::MAX), u32::MAX);
    }

    #[test]
    fn a_policy_over_the_capacity_is_refused() {
        let p = compile(&format!(
            "{USERS}\n[[rule]]\nclass = \"bulk\"\naction = \"limit 1Mbit\"\n"
        ));
        assert!(check(&Limited::of(&p), 8).is_ok());
        let err = check(&Limited::of(&p), 7).unwrap_err().to_string();
        assert!(
            err.contains("need 8 token buckets") && err.contains("holds 7"),
            "{err}"
        );
    }
}
