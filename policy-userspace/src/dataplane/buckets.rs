//! How many token buckets a policy needs, and keeping the bucket map to
//! what the policy in force limits.
//!
//! BUCKETS is a plain hash, not LRU: a limited user's bucket must never be
//! evicted, or the user starts again with a full burst (with more active
//! limited users than slots, users got 4-5 times their limit). So the map is
//! sized to the policy at start, and a reload that would need more than it
//! holds is refused.

use std::collections::HashSet;

use aya::{
    Ebpf,
    maps::{Map, MapData, MapType},
};
use policy_common::{ActionEntry, BucketKey, MAP_BUCKETS, UserId, dir, kind};

use super::DataplaneError;
use crate::policy::CompiledPolicy;

/// A fitted bucket map holds this many times what the policy needs, so a
/// reload may add limited users (the map cannot grow while it is loaded).
pub(super) const HEADROOM: u64 = 2;
/// A fitted bucket map has at least this many slots (64 KiB of kernel
/// memory at about 64 bytes a slot), so small policies can grow on reload.
pub(super) const MIN_FITTED: u64 = 1024;

/// The (user, class) pairs with a per-user limit in at least one profile:
/// each may use one bucket per direction. A user's action for a class is
/// their own rule, else their group's, else everyone's (as in the kernel),
/// so a group or everyone limit means one bucket per member who can send in
/// the class. Only users something identifies can send: the `unidentified`
/// user (id 0) and users with an address, prefix, MAC or socket owner.
pub(super) fn limited_pairs(policy: &CompiledPolicy) -> HashSet<(UserId, u32)> {
    let limits = |e: &ActionEntry| e.profiles.iter().any(|p| p.kind == kind::LIMIT);
    // Only classes some rule limits can need a bucket (most policies: a
    // few of them, or none): the walk over every user stays short.
    let mut classes: Vec<u32> = policy
        .actions
        .iter()
        .filter(|(_, e)| limits(e))
        .map(|(k, _)| k.class)
        .collect();
    classes.sort_unstable();
    classes.dedup();
    let mut out = HashSet::new();
    if classes.is_empty() {
        return out;
    }
    let mut senders: HashSet<UserId> = HashSet::from([policy_common::USER_UNIDENTIFIED]);
    senders.extend(policy.exact.iter().map(|(_, u)| *u));
    senders.extend(policy.cidrs.iter().map(|(_, _, u)| *u));
    senders.extend(policy.macs.iter().map(|(_, u)| *u));
    senders.extend(policy.uids.iter().map(|(_, u)| *u));
    senders.extend(policy.cgroups.iter().map(|(_, u)| *u));
    for user in policy.users.iter().filter(|u| senders.contains(&u.id)) {
        for &class in &classes {
            let entry = super::rows::effective(policy, Some(user.id), user.group, class);
            if entry.as_ref().is_some_and(limits) {
                out.insert((user.id, class));
            }
        }
    }
    out
}

/// Buckets `policy` may use at once: one per limited (user, class,
/// direction).
pub(super) fn need(policy: &CompiledPolicy) -> u64 {
    limited_pairs(policy).len() as u64 * dir::COUNT as u64
}

/// The bucket map's size when the operator gives none: [`HEADROOM`] times
/// the need, at least [`MIN_FITTED`].
pub(super) fn fitted(need: u64) -> u32 {
    u32::try_from(need.saturating_mul(HEADROOM).max(MIN_FITTED)).unwrap_or(u32::MAX)
}

/// Refuses a policy that needs more buckets than the map holds.
pub(super) fn check(policy: &CompiledPolicy, capacity: u32) -> Result<(), DataplaneError> {
    let need = need(policy);
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
pub(super) fn prune(ebpf: &mut Ebpf, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
    let keep = limited_pairs(policy);
    super::maps::remove_where::<BucketKey, u64>(ebpf, MAP_BUCKETS, |k| {
        !keep.contains(&(k.user, u32::from(k.class)))
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
        assert!(!limited_pairs(&p).contains(&(p.user("a").unwrap().id, 1)));
        assert!(limited_pairs(&p).contains(&(0, 1)));
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
        assert!(check(&p, 8).is_ok());
        let err = check(&p, 7).unwrap_err().to_string();
        assert!(
            err.contains("need 8 token buckets") && err.contains("holds 7"),
            "{err}"
        );
    }
}
