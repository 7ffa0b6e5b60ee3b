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

use super::{
    Capacity, DataplaneError, Side,
    batch::{self, BatchError},
    held::{self, Generation},
    rows::ActionRows,
};
use crate::policy::CompiledPolicy;

pub(super) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, DataplaneError> {
    ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name))
}

pub(super) fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
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
        | Map::LruHashMap(data)
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

/// The map behind `name`, for the batch commands.
pub(super) fn data<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a MapData, DataplaneError> {
    match ebpf.map(name).ok_or(DataplaneError::MissingMap(name))? {
        Map::Array(data) | Map::HashMap(data) | Map::PerCpuHashMap(data) => Ok(data),
        _ => Err(DataplaneError::MissingMap(name)),
    }
}

fn batch_error(
    name: &'static str,
    what: &'static str,
) -> impl FnOnce(BatchError) -> DataplaneError {
    move |source| DataplaneError::Batch {
        map: name,
        what,
        source,
    }
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

/// Writes `values` (index, value) into array `name`, in batches.
fn set_array<V: Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    values: impl IntoIterator<Item = (u32, V)>,
) -> Result<(), DataplaneError> {
    let values: Vec<(u32, V)> = values.into_iter().collect();
    batch::update(data(ebpf, name)?, &values).map_err(batch_error(name, "write"))
}

/// Empties the unidentified senders' bucket table: every slot unowned and
/// full (tests start each case from full buckets).
#[cfg(feature = "bench")]
pub(super) fn clear_unid_buckets(ebpf: &mut Ebpf, slots: u32) -> Result<(), DataplaneError> {
    set_array(
        ebpf,
        policy_common::MAP_UNID_BUCKETS,
        (0..slots).map(|i| (i, policy_common::UnidSlot::default())),
    )
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
    rows: &ActionRows,
    held: &mut Generation,
) -> Result<(), DataplaneError> {
    let g = generation;
    let users_per_generation = capacity.users;
    let mut cgroups = Vec::with_capacity(policy.cgroups.len());
    for (path, user) in &policy.cgroups {
        let id = cgroup_id(path).map_err(|source| DataplaneError::Cgroup {
            path: path.clone(),
            user: policy.users[*user as usize].name.clone(),
            source,
        })?;
        cgroups.push((id, *user));
    }
    // By user id (ids need not follow the policy's order); ids no user
    // has are zero.
    let mut info = Vec::new();
    for (u, &(id, row)) in policy.users.iter().zip(&rows.rows_of_users) {
        debug_assert_eq!(u.id, id);
        let i = id as usize;
        if i >= info.len() {
            info.resize(i + 1, UserInfo::default());
        }
        info[i] = UserInfo {
            group: u.group,
            row,
        };
    }
    let base = g * users_per_generation;
    let cells = held::changed_cells(&mut held.user_info, info);
    if let Err(e) = set_array(
        ebpf,
        MAP_USER_INFO,
        cells.into_iter().map(|(i, v)| (base + i, v)),
    ) {
        held.user_info = None;
        return Err(e);
    }
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
    let before = held.set_filter.take();
    set_array(
        ebpf,
        MAP_SET_FILTER,
        filter
            .iter()
            .enumerate()
            .filter(|(i, w)| before.as_ref().is_none_or(|b| b.get(*i) != Some(*w)))
            .map(|(i, w)| (g * 2 * SET_FILTER_WORDS + i as u32, *w)),
    )?;
    held.set_filter = Some(filter);
    insert_prefixes(ebpf, MAP_SET_CIDRS, g, sets6)?;
    insert_prefixes4(ebpf, MAP_SET_CIDRS4, g, sets4)?;
    let config = Config {
        users_per_generation,
        sketch_mask: capacity.sketch_mask(),
        conn_flow_mask: capacity.conn_flow_mask(),
        scan_users: capacity.scan,
        quota_slots: capacity.quota_slots,
        quota_users: if capacity.quota_slots == 0 {
            0
        } else {
            capacity.users
        },
        action_cells,
        action_stride: rows.stride,
        ..policy.config
    };
    set_array(ebpf, MAP_CONFIG, [(g, config)])?;

    let addr = |a: Addr16| GenAddr {
        generation: g,
        addr: a,
    };
    let (cidrs4, cidrs6) = split_prefixes(&policy.cidrs);
    insert_prefixes(ebpf, MAP_USER_CIDRS, g, cidrs6)?;
    insert_prefixes4(ebpf, MAP_USER_CIDRS4, g, cidrs4)?;
    held::sync(
        data(ebpf, MAP_USERS)?,
        MAP_USERS,
        g,
        &mut held.users,
        policy
            .exact
            .iter()
            .filter(|(a, _)| mapped_v4(a).is_none())
            .map(|(a, u)| (addr(*a), *u)),
    )?;
    held::sync(
        data(ebpf, MAP_USERS4)?,
        MAP_USERS4,
        g,
        &mut held.users4,
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
    held::sync(
        data(ebpf, MAP_USER_MACS)?,
        MAP_USER_MACS,
        g,
        &mut held.macs,
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
    held::sync(
        data(ebpf, MAP_USER_UIDS)?,
        MAP_USER_UIDS,
        g,
        &mut held.uids,
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
    held::sync(
        data(ebpf, MAP_USER_CGROUPS)?,
        MAP_USER_CGROUPS,
        g,
        &mut held.cgroups,
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
    held::sync(
        data(ebpf, MAP_IP_BINDINGS)?,
        MAP_IP_BINDINGS,
        g,
        &mut held.bindings,
        policy.bindings.iter().map(|(a, b)| (addr(*a), *b)),
    )
}

/// Removes every entry of generation `generation` from the LPM tries. The
/// hash tables keep it for the next write of that generation to change
/// (held.rs); arrays are simply overwritten.
pub(super) fn remove_generation(ebpf: &mut Ebpf, generation: u32) -> Result<(), DataplaneError> {
    remove_prefixes::<GenPrefix, UserId>(ebpf, MAP_USER_CIDRS, generation)?;
    remove_prefixes::<GenPrefix4, UserId>(ebpf, MAP_USER_CIDRS4, generation)?;
    remove_prefixes::<GenPrefix, u64>(ebpf, MAP_SET_CIDRS, generation)?;
    remove_prefixes::<GenPrefix4, u64>(ebpf, MAP_SET_CIDRS4, generation)
}
