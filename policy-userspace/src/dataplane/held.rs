//! What each generation of the policy tables holds, as far as this run
//! knows: so that a reload writes only what changed.
//!
//! A reload writes the idle generation, which still holds the policy of the
//! reload before last. Hash entries of that policy the new one also has
//! (the same key and value) are left alone, changed ones are overwritten,
//! and only keys the new policy lacks are deleted; after the switch, the
//! generation that went idle is left as it is (no program reads it) until
//! the next reload makes it the one written. A reload of a million users
//! that changes a few writes a few entries, where deleting one generation
//! and inserting the other cost a system call per entry, or with the batch
//! commands about a second (kernel 6.18).
//!
//! What a generation holds is known when this run made the maps (empty) or
//! wrote that generation itself. For adopted maps, and after a write that
//! failed half-way, it is unknown: the next write lists the map first.

use std::hash::Hash;

use aya::Pod;
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use policy_common::{
    GenAddr, GenMac, GenU32, GenU64, MacBinding, SET_FILTER_WORDS, UserId, UserInfo,
};

use super::{
    DataplaneError,
    batch::{self, BatchError},
};

/// One hash table's entries in one generation, where known.
pub(super) type Entries<K, V> = Option<HashMap<K, V>>;

/// What one generation holds, where known.
#[derive(Debug, Default)]
pub(super) struct Generation {
    pub users: Entries<GenAddr, UserId>,
    pub users4: Entries<GenU32, UserId>,
    pub macs: Entries<GenMac, UserId>,
    pub uids: Entries<GenU32, UserId>,
    pub cgroups: Entries<GenU64, UserId>,
    pub bindings: Entries<GenAddr, MacBinding>,
    /// The generation's half of SET_FILTER.
    pub set_filter: Option<Vec<u64>>,
    /// The generation's half of USER_INFO, by user id.
    pub user_info: Option<Vec<UserInfo>>,
}

impl Generation {
    /// A generation of maps this run made: empty.
    pub(super) fn empty() -> Self {
        Self {
            users: Some(HashMap::new()),
            users4: Some(HashMap::new()),
            macs: Some(HashMap::new()),
            uids: Some(HashMap::new()),
            cgroups: Some(HashMap::new()),
            bindings: Some(HashMap::new()),
            set_filter: Some(vec![0; 2 * SET_FILTER_WORDS as usize]),
            user_info: Some(Vec::new()),
        }
    }
}

/// A key of a policy table, which carries its generation.
pub(super) trait Generational {
    fn generation(&self) -> u32;
}

/// Every generational key has a `generation` field.
macro_rules! generational {
    ($($key:ty),*) => {
        $(impl Generational for $key {
            fn generation(&self) -> u32 {
                self.generation
            }
        })*
    };
}

generational!(GenAddr, GenMac, GenU32, GenU64);

/// Makes generation `generation` of hash map `map` hold exactly `entries`
/// (keys of that generation, each once), and records that in `held`.
/// Deletes come first, so a full table makes room before it grows. On an
/// error `held` is left unknown: part of the change may be written.
pub(super) fn sync<K, V>(
    map: &aya::maps::MapData,
    name: &'static str,
    generation: u32,
    held: &mut Entries<K, V>,
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<(), DataplaneError>
where
    K: Pod + Hash + Eq + Generational,
    V: Pod + PartialEq,
{
    let err = |what| {
        move |source: BatchError| DataplaneError::Batch {
            map: name,
            what,
            source,
        }
    };
    let mut now = match held.take() {
        Some(b) => b,
        None => batch::entries::<K, V>(map)
            .map_err(err("list"))?
            .into_iter()
            .filter(|(k, _)| k.generation() == generation)
            .collect(),
    };
    let (changed, dead) = diff(&mut now, entries);
    batch::delete::<K, V>(map, &dead).map_err(err("remove"))?;
    batch::update(map, &changed).map_err(err("insert (is the map full?)"))?;
    *held = Some(now);
    Ok(())
}

/// Turns `now` (a generation's contents) into `entries` in place, and says
/// what the map needs for the same: (entries to write, keys to delete).
fn diff<K: Copy + Hash + Eq, V: Copy + PartialEq>(
    now: &mut HashMap<K, V>,
    entries: impl IntoIterator<Item = (K, V)>,
) -> (Vec<(K, V)>, Vec<K>) {
    let mut changed = Vec::new();
    let entries: Vec<(K, V)> = entries.into_iter().collect();
    for &(k, v) in &entries {
        if now.insert(k, v) != Some(v) {
            changed.push((k, v));
        }
    }
    // Keys of the old contents the policy lacks. Always a second pass: a
    // count of the keys seen again would be fooled by a key listed twice
    // (two cgroup paths of one directory), and a stale key left in a
    // generation identifies someone the policy no longer names.
    let mut wanted = HashSet::with_capacity(entries.len());
    wanted.extend(entries.iter().map(|(k, _)| *k));
    let dead: Vec<K> = now
        .keys()
        .filter(|k| !wanted.contains(*k))
        .copied()
        .collect();
    for k in &dead {
        now.remove(k);
    }
    (changed, dead)
}

/// The cells of `new` (an array's generation half, from index 0) that
/// differ from `held`, as (index, value), and records `new` as held. A
/// cell past the end of what is held is always written: it may hold
/// anything (an older policy's value, or an adopted map's).
pub(super) fn changed_cells<V: Copy + PartialEq>(
    held: &mut Option<Vec<V>>,
    new: Vec<V>,
) -> Vec<(u32, V)> {
    let before = held.take();
    let out = new
        .iter()
        .enumerate()
        .filter(|&(i, v)| before.as_ref().and_then(|b| b.get(i)) != Some(v))
        .map(|(i, v)| (i as u32, *v))
        .collect();
    *held = Some(new);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_writes_what_changed_and_deletes_what_left() {
        let mut now: HashMap<u32, u32> = [(1, 10), (2, 20), (3, 30)].into_iter().collect();
        let (mut changed, dead) = diff(&mut now, [(1, 10), (2, 21), (4, 40)]);
        changed.sort_unstable();
        assert_eq!(changed, [(2, 21), (4, 40)]);
        assert_eq!(dead, [3]);
        let mut held: Vec<_> = now.into_iter().collect();
        held.sort_unstable();
        assert_eq!(held, [(1, 10), (2, 21), (4, 40)]);
    }

    #[test]
    fn an_unchanged_generation_writes_nothing_and_an_empty_policy_deletes_all() {
        let mut now: HashMap<u32, u32> = [(1, 10), (2, 20)].into_iter().collect();
        assert_eq!(diff(&mut now, [(2, 20), (1, 10)]), (vec![], vec![]));
        let (changed, mut dead) = diff(&mut now, []);
        dead.sort_unstable();
        assert_eq!((changed, dead), (vec![], vec![1, 2]));
        assert!(now.is_empty());
    }

    #[test]
    fn a_key_listed_twice_does_not_hide_one_that_left() {
        let mut now: HashMap<u32, u32> = [(1, 10), (2, 20)].into_iter().collect();
        assert_eq!(diff(&mut now, [(1, 10), (1, 10)]), (vec![], vec![2]));
        assert_eq!(now.len(), 1);
    }

    #[test]
    fn array_cells_are_written_when_they_differ_or_are_not_known() {
        let mut held = None;
        assert_eq!(
            changed_cells(&mut held, vec![5, 0, 7]),
            [(0, 5), (1, 0), (2, 7)]
        );
        assert_eq!(changed_cells(&mut held, vec![5, 1, 7]), [(1, 1)]);
        // Shorter: cells past the end are no longer known...
        assert_eq!(changed_cells(&mut held, vec![5]), []);
        // ...so growing again writes them, zeros too.
        assert_eq!(changed_cells(&mut held, vec![5, 1, 0]), [(1, 1), (2, 0)]);
    }
}
