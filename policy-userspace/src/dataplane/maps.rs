//! Writing a compiled policy into the identity and policy maps.
//!
//! Order matters while programs run: policies first (so an id is never
//! visible before its action), then identities, then stale identities are
//! removed. A full, atomic generation switch comes with hot reload.

use std::collections::HashSet;

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, Map, MapData,
        lpm_trie::{Key, LpmTrie},
    },
};
use policy_common::{
    MAP_USER_CIDRS_V4, MAP_USER_CIDRS_V6, MAP_USER_POLICY, MAP_USERS_V4, MAP_USERS_V6, UserId,
    UserPolicy,
};

use super::DataplaneError;
use crate::policy::CompiledPolicy;

pub(super) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, DataplaneError> {
    ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name))
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut Map, Error = aya::maps::MapError>,
{
    ebpf.map_mut(name)
        .ok_or(DataplaneError::MissingMap(name))?
        .try_into()
        .map_err(DataplaneError::map(name, "unexpected map type"))
}

pub(super) fn write_policy(ebpf: &mut Ebpf, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
    {
        let mut users: Array<&mut MapData, UserPolicy> = map_mut(ebpf, MAP_USER_POLICY)?;
        for u in &policy.users {
            users.set(u.id, u.policy, 0).map_err(DataplaneError::map(
                MAP_USER_POLICY,
                format!("user `{}`", u.name),
            ))?;
        }
    }
    sync_exact(map_mut(ebpf, MAP_USERS_V4)?, MAP_USERS_V4, &policy.v4_exact)?;
    sync_exact(map_mut(ebpf, MAP_USERS_V6)?, MAP_USERS_V6, &policy.v6_exact)?;
    sync_cidrs(
        map_mut(ebpf, MAP_USER_CIDRS_V4)?,
        MAP_USER_CIDRS_V4,
        &policy.v4_cidrs,
    )?;
    sync_cidrs(
        map_mut(ebpf, MAP_USER_CIDRS_V6)?,
        MAP_USER_CIDRS_V6,
        &policy.v6_cidrs,
    )?;
    Ok(())
}

fn sync_exact<const N: usize>(
    mut map: HashMap<&mut MapData, [u8; N], UserId>,
    name: &'static str,
    want: &[([u8; N], UserId)],
) -> Result<(), DataplaneError> {
    for (addr, id) in want {
        map.insert(addr, id, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
    }
    let keep: HashSet<[u8; N]> = want.iter().map(|(a, _)| *a).collect();
    let stale: Vec<[u8; N]> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keep.contains(k))
        .collect();
    for k in stale {
        map.remove(&k)
            .map_err(DataplaneError::map(name, "remove"))?;
    }
    Ok(())
}

fn sync_cidrs<const N: usize>(
    mut map: LpmTrie<&mut MapData, [u8; N], UserId>,
    name: &'static str,
    want: &[(u8, [u8; N], UserId)],
) -> Result<(), DataplaneError> {
    for (prefix, addr, id) in want {
        map.insert(&Key::new(u32::from(*prefix), *addr), id, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
    }
    let keep: HashSet<(u32, [u8; N])> = want.iter().map(|(p, a, _)| (u32::from(*p), *a)).collect();
    let stale: Vec<Key<[u8; N]>> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keep.contains(&(k.prefix_len(), k.data())))
        .collect();
    for k in stale {
        map.remove(&k)
            .map_err(DataplaneError::map(name, "remove"))?;
    }
    Ok(())
}
