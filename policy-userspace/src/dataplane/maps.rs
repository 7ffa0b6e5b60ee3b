//! Writing a compiled policy into the maps.
//!
//! Order matters while programs run: per-user data and actions first (so an
//! id is never visible before its settings), then identities, then stale
//! entries are removed. An atomic generation switch comes with hot reload.

use std::{ffi::CString, os::unix::fs::MetadataExt as _};

use aya::{
    Ebpf, Pod,
    maps::{
        Array, HashMap, Map, MapData, MapError,
        lpm_trie::{Key, LpmTrie},
    },
};
use policy_common::{
    ActionEntry, Addr16, Config, GENERATION_BITS, GenAddr, GenMac, GenPrefix, GenPrefix4, GenU32,
    GenU64, IfaceConfig, MAP_ACTIONS, MAP_CLASS_LIMITS, MAP_CLASS_RULES, MAP_CONFIG, MAP_IFACES,
    MAP_IP_BINDINGS, MAP_SET_CIDRS, MAP_SET_CIDRS4, MAP_SET_FILTER, MAP_USER_CGROUPS,
    MAP_USER_CIDRS, MAP_USER_CIDRS4, MAP_USER_INFO, MAP_USER_MACS, MAP_USER_UIDS, MAP_USERS,
    MAP_USERS4, MAX_CLASS_RULES, MAX_CLASSES, MAX_IFINDEX, SET_FILTER_WORDS, UserId, UserInfo,
    gen_prefix, gen_prefix4, iface_flag, mapped_v4, set_filter_bit, set_filter_range, side,
    split_prefix,
};

use super::{Capacity, DataplaneError, Side, rows::ActionRows};
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

/// Entries per generation of a policy table as loaded: an adopted pin keeps
/// the size it was made with, whatever the loader asked for.
pub(super) fn per_generation(ebpf: &Ebpf, name: &'static str) -> Result<u32, DataplaneError> {
    Ok(max_entries(ebpf, name)? / policy_common::GENERATIONS)
}

/// A loaded map's real number of entries.
pub(super) fn max_entries(ebpf: &Ebpf, name: &'static str) -> Result<u32, DataplaneError> {
    let map = ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?;
    let info = match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LpmTrie(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuArray(data) => data.info(),
        _ => return Err(DataplaneError::MissingMap(name)),
    }
    .map_err(DataplaneError::map(name, "read its info"))?;
    Ok(info.max_entries())
}

/// The index of interface `iface` in this network namespace.
pub fn ifindex(iface: &str) -> Result<u32, DataplaneError> {
    let name =
        CString::new(iface).map_err(|_| DataplaneError::NoSuchInterface(iface.to_owned()))?;
    // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(DataplaneError::NoSuchInterface(iface.to_owned()));
    }
    Ok(ifindex)
}

/// Records the side `iface` faces, and that policyd's XDP program is (about
/// to be) on it.
pub(super) fn set_iface_side(ebpf: &mut Ebpf, iface: &str, s: Side) -> Result<(), DataplaneError> {
    let ifindex = ifindex(iface)?;
    if ifindex >= MAX_IFINDEX {
        return Err(DataplaneError::IfindexTooLarge {
            iface: iface.to_owned(),
            ifindex,
            max: MAX_IFINDEX,
        });
    }
    let mut m: Array<&mut MapData, IfaceConfig> = map_mut(ebpf, MAP_IFACES)?;
    let config = IfaceConfig {
        side: match s {
            Side::Users => side::USERS,
            Side::Network => side::NETWORK,
        },
        flags: iface_flag::ATTACHED,
    };
    m.set(ifindex, config, 0).map_err(DataplaneError::map(
        MAP_IFACES,
        format!("interface `{iface}`"),
    ))
}

/// A removal that found nothing to remove (ENOENT).
pub(super) fn gone(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// Removes every key of hash map `name` for which `dead` holds.
pub(super) fn remove_where<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    dead: impl Fn(&K) -> bool,
) -> Result<(), DataplaneError> {
    let mut map: HashMap<&mut MapData, K, V> = ebpf
        .map_mut(name)
        .ok_or(DataplaneError::MissingMap(name))?
        .try_into()
        .map_err(DataplaneError::map(name, "unexpected map type"))?;
    let keys = dead_keys(map.keys(), dead);
    remove_each(name, keys, |k| map.remove(k))
}

/// The keys of a map's listing for which `dead` holds; collected, since a
/// map cannot be changed while it is being listed.
pub(super) fn dead_keys<K>(
    keys: impl Iterator<Item = Result<K, MapError>>,
    dead: impl Fn(&K) -> bool,
) -> Vec<K> {
    keys.filter_map(Result::ok).filter(|k| dead(k)).collect()
}

/// Removes each of `keys` from map `name` with `remove` (a hash map's or a
/// per-CPU hash map's). Entries the kernel removed meanwhile (an LRU
/// eviction) are gone already.
pub(super) fn remove_each<K>(
    name: &'static str,
    keys: Vec<K>,
    mut remove: impl FnMut(&K) -> Result<(), MapError>,
) -> Result<(), DataplaneError> {
    for k in keys {
        match remove(&k) {
            Err(e) if !gone(&e) => return Err(DataplaneError::map(name, "remove")(e)),
            _ => {}
        }
    }
    Ok(())
}

/// A key of a policy table, which carries its generation.
trait Generational {
    fn generation(&self) -> u32;
}

impl Generational for GenAddr {
    fn generation(&self) -> u32 {
        self.generation
    }
}
impl Generational for GenMac {
    fn generation(&self) -> u32 {
        self.generation
    }
}
impl Generational for GenU32 {
    fn generation(&self) -> u32 {
        self.generation
    }
}
impl Generational for GenU64 {
    fn generation(&self) -> u32 {
        self.generation
    }
}

fn insert_all<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<(), DataplaneError> {
    let mut map: HashMap<&mut MapData, K, V> = map_mut(ebpf, name)?;
    for (k, v) in entries {
        map.insert(k, v, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
    }
    Ok(())
}

fn insert_prefixes<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    generation: u32,
    entries: impl IntoIterator<Item = (u32, Addr16, V)>,
) -> Result<(), DataplaneError> {
    let mut map: LpmTrie<&mut MapData, GenPrefix, V> = map_mut(ebpf, name)?;
    for (len, addr, v) in entries {
        let key = Key::new(GENERATION_BITS + len, gen_prefix(generation, &addr));
        map.insert(&key, v, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
    }
    Ok(())
}

fn insert_prefixes4<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    generation: u32,
    entries: impl IntoIterator<Item = (u32, [u8; 4], V)>,
) -> Result<(), DataplaneError> {
    let mut map: LpmTrie<&mut MapData, GenPrefix4, V> = map_mut(ebpf, name)?;
    for (len, addr, v) in entries {
        let key = Key::new(GENERATION_BITS + len, gen_prefix4(generation, addr));
        map.insert(&key, v, 0)
            .map_err(DataplaneError::map(name, "insert (is the map full?)"))?;
    }
    Ok(())
}

/// IPv4 and IPv6 prefixes of the 128-bit space for their two tables
/// (policy-common's `split_prefix`). Of the prefixes that cover the whole
/// IPv4 range, only the longest becomes the IPv4 table's `0.0.0.0/0`: in
/// one table it is the one an IPv4 address would have matched.
type Split<V> = (Vec<(u32, [u8; 4], V)>, Vec<(u32, Addr16, V)>);

pub(super) fn split_prefixes<V: Copy>(entries: &[(u32, Addr16, V)]) -> Split<V> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut everything: Option<(u32, V)> = None;
    for (len, addr, v) in entries {
        let s = split_prefix(*len, addr);
        match s.v4 {
            Some((0, _)) if everything.is_none_or(|(l, _)| *len > l) => {
                everything = Some((*len, *v));
            }
            Some((0, _)) => {}
            Some((l, a)) => v4.push((l, a, *v)),
            None => {}
        }
        if let Some((l, a)) = s.v6 {
            v6.push((l, a, *v));
        }
    }
    if let Some((_, v)) = everything {
        v4.push((0, [0; 4], v));
    }
    (v4, v6)
}

fn remove_keys<K: Pod + Generational, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    generation: u32,
) -> Result<(), DataplaneError> {
    remove_where::<K, V>(ebpf, name, |k| k.generation() == generation)
}

fn remove_prefixes<K: Pod + AsRef<[u8]>, V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    generation: u32,
) -> Result<(), DataplaneError> {
    let mut map: LpmTrie<&mut MapData, K, V> = map_mut(ebpf, name)?;
    let tag = generation.to_be_bytes();
    let old: Vec<Key<K>> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.data().as_ref()[..4] == tag)
        .collect();
    for k in old {
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

/// Writes `policy` as generation `generation`, which must be idle (empty):
/// nothing reads it until the generation switch.
pub(super) fn write_policy(
    ebpf: &mut Ebpf,
    policy: &CompiledPolicy,
    generation: u32,
    capacity: &Capacity,
    set_filter: &mut Option<Vec<u64>>,
) -> Result<(), DataplaneError> {
    let g = generation;
    let users_per_generation = capacity.users;
    let rows = ActionRows::of(policy);
    let row_of: std::collections::HashMap<UserId, u32> =
        rows.rows_of_users.iter().copied().collect();
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
                g * users_per_generation + u.id,
                UserInfo {
                    group: u.group,
                    row: row_of.get(&u.id).copied().unwrap_or(0),
                },
            )
        }),
    )?;
    let action_cells = capacity.actions;
    set_array(
        ebpf,
        MAP_ACTIONS,
        rows.cells
            .iter()
            .enumerate()
            .map(|(i, e)| (g * action_cells + i as u32, *e)),
    )?;
    let mut limits = vec![ActionEntry::default(); MAX_CLASSES as usize];
    for (class, entry) in &policy.class_limits {
        limits[*class as usize] = *entry;
    }
    set_array(
        ebpf,
        MAP_CLASS_LIMITS,
        limits
            .into_iter()
            .enumerate()
            .map(|(i, e)| (g * MAX_CLASSES + i as u32, e)),
    )?;
    let mut rules = policy.class_rules.clone();
    rules.resize(
        MAX_CLASS_RULES as usize,
        policy_common::ClassRule::default(),
    );
    set_array(
        ebpf,
        MAP_CLASS_RULES,
        rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (g * MAX_CLASS_RULES + i as u32, r)),
    )?;
    let (sets4, sets6) = split_prefixes(&policy.set_cidrs);
    let mut filter = vec![0u64; 2 * SET_FILTER_WORDS as usize];
    let mut cover = |v6: bool, len: u32, top16: u32| {
        let (first, last) = set_filter_range(len, top16);
        for t in first..=last {
            let (word, bit) = set_filter_bit(0, v6, t);
            filter[word as usize] |= 1 << bit;
        }
    };
    for (len, a, _) in &sets4 {
        cover(false, *len, u32::from(u16::from_be_bytes([a[0], a[1]])));
    }
    for (len, a, _) in &sets6 {
        cover(true, *len, u32::from(u16::from_be_bytes([a[0], a[1]])));
    }
    // 2 048 words: only those that differ from what this generation holds
    // (all when that is not known, e.g. in adopted maps).
    let before = set_filter.take();
    set_array(
        ebpf,
        MAP_SET_FILTER,
        filter
            .iter()
            .enumerate()
            .filter(|(i, w)| before.as_ref().is_none_or(|b| b.get(*i) != Some(*w)))
            .map(|(i, w)| (g * 2 * SET_FILTER_WORDS + i as u32, *w)),
    )?;
    *set_filter = Some(filter);
    insert_prefixes(ebpf, MAP_SET_CIDRS, g, sets6)?;
    insert_prefixes4(ebpf, MAP_SET_CIDRS4, g, sets4)?;
    let config = Config {
        users_per_generation,
        sketch_mask: capacity.sketch_mask(),
        action_cells,
        action_stride: rows.stride,
        ..policy.config
    };
    set_array(ebpf, MAP_CONFIG, [(g, config)])?;

    let addr = |a: Addr16| GenAddr {
        generation: g,
        addr: a,
    };
    insert_all(
        ebpf,
        MAP_USERS,
        policy
            .exact
            .iter()
            .filter(|(a, _)| mapped_v4(a).is_none())
            .map(|(a, u)| (addr(*a), *u)),
    )?;
    insert_all(
        ebpf,
        MAP_USERS4,
        policy.exact.iter().filter_map(|(a, u)| {
            mapped_v4(a).map(|v4| {
                (
                    GenU32 {
                        generation: g,
                        value: u32::from_ne_bytes(v4),
                    },
                    *u,
                )
            })
        }),
    )?;
    let (cidrs4, cidrs6) = split_prefixes(&policy.cidrs);
    insert_prefixes(ebpf, MAP_USER_CIDRS, g, cidrs6)?;
    insert_prefixes4(ebpf, MAP_USER_CIDRS4, g, cidrs4)?;
    insert_all(
        ebpf,
        MAP_USER_MACS,
        policy.macs.iter().map(|(m, u)| {
            (
                GenMac {
                    generation: g,
                    mac: *m,
                },
                *u,
            )
        }),
    )?;
    insert_all(
        ebpf,
        MAP_USER_UIDS,
        policy.uids.iter().map(|(id, u)| {
            (
                GenU32 {
                    generation: g,
                    value: *id,
                },
                *u,
            )
        }),
    )?;
    insert_all(
        ebpf,
        MAP_USER_CGROUPS,
        cgroups.into_iter().map(|(id, u)| {
            (
                GenU64 {
                    generation: g,
                    _pad: 0,
                    value: id,
                },
                u,
            )
        }),
    )?;
    insert_all(
        ebpf,
        MAP_IP_BINDINGS,
        policy.bindings.iter().map(|(a, b)| (addr(*a), *b)),
    )?;
    Ok(())
}

/// Removes every entry of generation `generation` from the hash and LPM
/// tables (arrays are simply overwritten next time).
pub(super) fn remove_generation(ebpf: &mut Ebpf, generation: u32) -> Result<(), DataplaneError> {
    remove_keys::<GenAddr, UserId>(ebpf, MAP_USERS, generation)?;
    remove_keys::<GenMac, UserId>(ebpf, MAP_USER_MACS, generation)?;
    remove_keys::<GenU32, UserId>(ebpf, MAP_USER_UIDS, generation)?;
    remove_keys::<GenU64, UserId>(ebpf, MAP_USER_CGROUPS, generation)?;
    remove_keys::<GenAddr, policy_common::MacBinding>(ebpf, MAP_IP_BINDINGS, generation)?;
    remove_keys::<GenU32, UserId>(ebpf, MAP_USERS4, generation)?;
    remove_prefixes::<GenPrefix, UserId>(ebpf, MAP_USER_CIDRS, generation)?;
    remove_prefixes::<GenPrefix4, UserId>(ebpf, MAP_USER_CIDRS4, generation)?;
    remove_prefixes::<GenPrefix, u64>(ebpf, MAP_SET_CIDRS, generation)?;
    remove_prefixes::<GenPrefix4, u64>(ebpf, MAP_SET_CIDRS4, generation)
}
