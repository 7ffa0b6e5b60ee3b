//! Writing a compiled policy into the maps.
//!
//! Order matters while programs run: per-user data and actions first (so an
//! id is never visible before its settings), then identities, then stale
//! entries are removed. An atomic generation switch comes with hot reload.

use std::{collections::HashSet, ffi::CString, hash::Hash, os::unix::fs::MetadataExt as _};

use aya::{
    Ebpf, Pod,
    maps::{
        Array, HashMap, Map, MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use policy_common::{
    ActionEntry, Addr16, IfaceConfig, MAP_ACTIONS, MAP_CLASS_LIMITS, MAP_CLASS_RULES, MAP_CONFIG,
    MAP_IFACES, MAP_IP_BINDINGS, MAP_SET_CIDRS, MAP_USER_CGROUPS, MAP_USER_CIDRS, MAP_USER_INFO,
    MAP_USER_MACS, MAP_USER_UIDS, MAP_USERS, MAX_CLASS_RULES, MAX_CLASSES, UserInfo, side,
};

use super::{DataplaneError, Side};
use crate::policy::CompiledPolicy;

pub(super) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, DataplaneError> {
    ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name))
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    ebpf.map_mut(name)
        .ok_or(DataplaneError::MissingMap(name))?
        .try_into()
        .map_err(DataplaneError::map(name, "unexpected map type"))
}

pub(super) fn set_iface_side(ebpf: &mut Ebpf, iface: &str, s: Side) -> Result<(), DataplaneError> {
    let name =
        CString::new(iface).map_err(|_| DataplaneError::NoSuchInterface(iface.to_owned()))?;
    // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(DataplaneError::NoSuchInterface(iface.to_owned()));
    }
    let mut m: HashMap<&mut MapData, u32, IfaceConfig> = map_mut(ebpf, MAP_IFACES)?;
    let config = IfaceConfig {
        side: match s {
            Side::Users => side::USERS,
            Side::Network => side::NETWORK,
        },
        _pad: 0,
    };
    m.insert(ifindex, config, 0).map_err(DataplaneError::map(
        MAP_IFACES,
        format!("interface `{iface}`"),
    ))
}

pub(super) fn clear<K: Pod + Eq + Hash, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<(), DataplaneError> {
    let m = ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?;
    match m {
        Map::LruHashMap(_) | Map::HashMap(_) => {
            let mut h: HashMap<&mut MapData, K, V> =
                HashMap::try_from(m).map_err(DataplaneError::map(name, "unexpected map type"))?;
            let keys: Vec<K> = h.keys().filter_map(Result::ok).collect();
            for k in keys {
                // Racing with the kernel's own LRU eviction: gone is gone.
                let _ = h.remove(&k);
            }
            Ok(())
        }
        _ => Err(DataplaneError::MissingMap(name)),
    }
}

/// Makes a hash map hold exactly `want`: inserts (or overwrites) first, then
/// removes keys that are not wanted.
fn sync_hash<K: Pod + Eq + Hash, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    want: impl IntoIterator<Item = (K, V)>,
) -> Result<(), DataplaneError> {
    let mut map: HashMap<&mut MapData, K, V> = map_mut(ebpf, name)?;
    let mut keep = HashSet::new();
    for (k, v) in want {
        map.insert(k, v, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
        keep.insert(k);
    }
    let stale: Vec<K> = map
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

fn sync_trie<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    want: impl IntoIterator<Item = (u32, Addr16, V)>,
) -> Result<(), DataplaneError> {
    let mut map: LpmTrie<&mut MapData, Addr16, V> = map_mut(ebpf, name)?;
    let mut keep = HashSet::new();
    for (len, addr, v) in want {
        map.insert(&Key::new(len, addr), v, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
        keep.insert((len, addr));
    }
    let stale: Vec<Key<Addr16>> = map
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

fn set_array<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    values: impl IntoIterator<Item = (u32, V)>,
) -> Result<(), DataplaneError> {
    let mut a: Array<&mut MapData, V> = map_mut(ebpf, name)?;
    for (i, v) in values {
        a.set(i, v, 0)
            .map_err(DataplaneError::map(name, format!("index {i}")))?;
    }
    Ok(())
}

/// The cgroup id the kernel reports for a cgroup v2 directory: its inode.
fn cgroup_id(path: &std::path::Path) -> std::io::Result<u64> {
    std::fs::metadata(path).map(|m| m.ino())
}

pub(super) fn write_policy(ebpf: &mut Ebpf, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
    let mut cgroups = Vec::with_capacity(policy.cgroups.len());
    for (path, user) in &policy.cgroups {
        let id = cgroup_id(path).map_err(|source| DataplaneError::Cgroup {
            path: path.clone(),
            user: policy.users[*user as usize].name.clone(),
            source,
        })?;
        cgroups.push((id, *user));
    }
    set_array(
        ebpf,
        MAP_USER_INFO,
        policy.users.iter().map(|u| {
            (
                u.id,
                UserInfo {
                    group: u.group,
                    _pad: 0,
                },
            )
        }),
    )?;
    sync_hash(ebpf, MAP_ACTIONS, policy.actions.iter().copied())?;
    let mut limits = vec![ActionEntry::default(); MAX_CLASSES as usize];
    for (class, entry) in &policy.class_limits {
        limits[*class as usize] = *entry;
    }
    set_array(
        ebpf,
        MAP_CLASS_LIMITS,
        limits.into_iter().enumerate().map(|(i, e)| (i as u32, e)),
    )?;
    let mut rules = policy.class_rules.clone();
    rules.resize(
        MAX_CLASS_RULES as usize,
        policy_common::ClassRule::default(),
    );
    set_array(
        ebpf,
        MAP_CLASS_RULES,
        rules.into_iter().enumerate().map(|(i, r)| (i as u32, r)),
    )?;
    sync_trie(ebpf, MAP_SET_CIDRS, policy.set_cidrs.iter().copied())?;
    set_array(ebpf, MAP_CONFIG, [(0, policy.config)])?;

    sync_hash(ebpf, MAP_USERS, policy.exact.iter().copied())?;
    sync_trie(ebpf, MAP_USER_CIDRS, policy.cidrs.iter().copied())?;
    sync_hash(ebpf, MAP_USER_MACS, policy.macs.iter().copied())?;
    sync_hash(ebpf, MAP_USER_UIDS, policy.uids.iter().copied())?;
    sync_hash(ebpf, MAP_USER_CGROUPS, cgroups)?;
    sync_hash(ebpf, MAP_IP_BINDINGS, policy.bindings.iter().copied())?;
    Ok(())
}
