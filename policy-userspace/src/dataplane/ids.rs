//! The pinned name -> id allocation (see policy-common's names.rs and
//! `policy::stable`): read when the object is loaded, so a restarted
//! policyd gives every name the id its state is under; written around every
//! apply; and the deletion of a retired id's state before the id is freed.
//!
//! Crash safety comes from the order of the writes. The slots of new names
//! are written before the generation that uses them is switched in, so no
//! id in force is ever missing from the allocation. A name that left is
//! marked retired only after the switch, its counters, buckets and event
//! limits are deleted after the grace period (no packet can be identified as
//! it any more), and its slot is removed last. A crash anywhere leaves
//! either live slots the next policy does not name, or retired ones: both
//! are retired (again) by the next apply, which finishes the job.

use std::{collections::HashSet, path::Path};

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use policy_common::{
    BucketKey, EventTimes, MAP_BUCKETS, MAP_CLASS_BUCKETS, MAP_CLASS_NAMES, MAP_EVENT_LIMITER,
    MAP_SCAN, MAP_USER_NAMES, MAX_CLASSES, NameSlot, ScanState, name_state,
};

use super::{Counters, Dataplane, DataplaneError, batch, maps};
use crate::policy::{self, Allocation, CompiledPolicy, Slot, Table};

/// Ids a policy being applied stops naming: deleted once it is in force.
#[derive(Debug, Default)]
pub(super) struct Retiring {
    users: Vec<u32>,
    classes: Vec<u32>,
}

impl Dataplane {
    /// `fresh` (compiled with positional ids) with the ids the pinned
    /// allocation gives its names: a name keeps its id, a new one gets a free
    /// id. Apply the result with [`Self::apply_with_profile`].
    pub fn assign_ids(&self, fresh: &CompiledPolicy) -> Result<CompiledPolicy, DataplaneError> {
        policy::assign(fresh, &self.ids).map_err(DataplaneError::Ids)
    }

    /// The allocation as it stands (names by id, retired ids).
    pub fn ids(&self) -> &Allocation {
        &self.ids
    }
}

fn decode(slot: &NameSlot) -> Option<Slot> {
    let name = String::from_utf8_lossy(slot.name()).into_owned();
    match slot.state {
        name_state::LIVE => Some(Slot::Live(name)),
        name_state::RETIRED => Some(Slot::Retired(name)),
        _ => None,
    }
}

/// The ids in use in name array `name` (a zeroed slot is a free id).
fn read_table(map: &MapData, name: &'static str, limit: u32) -> Result<Table, DataplaneError> {
    let mut table = Table::new(limit);
    batch::scan::<u32, NameSlot>(map, |id, slot| {
        if let Some(s) = decode(&slot) {
            table.set(id, s);
        }
    })
    .map_err(|source| DataplaneError::Batch {
        map: name,
        what: "read the names",
        source,
    })?;
    Ok(table)
}

/// The allocation in the object's (possibly adopted) maps; user ids are
/// `0..users`.
pub(super) fn read(ebpf: &mut Ebpf, users: u32) -> Result<Allocation, DataplaneError> {
    Ok(Allocation {
        users: read_table(maps::data(ebpf, MAP_USER_NAMES)?, MAP_USER_NAMES, users)?,
        classes: read_table(
            maps::data(ebpf, MAP_CLASS_NAMES)?,
            MAP_CLASS_NAMES,
            MAX_CLASSES,
        )?,
    })
}

/// The allocation a policyd pinned under `dir`, for readers outside the
/// daemon (`policyd status`, `policyd top`).
pub fn from_pins(dir: &Path) -> Result<Allocation, DataplaneError> {
    let open = |name: &'static str| -> Result<Table, DataplaneError> {
        let data = MapData::from_pin(dir.join(name)).map_err(DataplaneError::map(
            name,
            format!("open the pin in {}", dir.display()),
        ))?;
        let limit = data
            .info()
            .map_err(DataplaneError::map(name, "read its info"))?
            .max_entries();
        read_table(&data, name, limit)
    };
    Ok(Allocation {
        users: open(MAP_USER_NAMES)?,
        classes: open(MAP_CLASS_NAMES)?,
    })
}

/// Writes `slots` into name array `name`, in one batch, and into `table`.
fn write(
    ebpf: &mut Ebpf,
    name: &'static str,
    table: &mut Table,
    slots: impl IntoIterator<Item = (u32, Slot)>,
) -> Result<(), DataplaneError> {
    let slots: Vec<(u32, Slot)> = slots.into_iter().collect();
    let raw: Vec<(u32, NameSlot)> = slots
        .iter()
        .map(|(id, slot)| {
            let (state, text) = match slot {
                Slot::Live(n) => (name_state::LIVE, n),
                Slot::Retired(n) => (name_state::RETIRED, n),
            };
            (*id, NameSlot::new(state, text.as_bytes()))
        })
        .collect();
    put(ebpf, name, &raw)?;
    for (id, slot) in slots {
        table.set(id, slot);
    }
    Ok(())
}

fn put(ebpf: &Ebpf, name: &'static str, slots: &[(u32, NameSlot)]) -> Result<(), DataplaneError> {
    batch::update(maps::data(ebpf, name)?, slots).map_err(|source| DataplaneError::Batch {
        map: name,
        what: "write the names (an id past the array?)",
        source,
    })
}

/// Before `policy` is switched in: writes the slots of its new names, and
/// says which ids it stops naming.
pub(super) fn record(
    ebpf: &mut Ebpf,
    alloc: &mut Allocation,
    policy: &CompiledPolicy,
) -> Result<Retiring, DataplaneError> {
    let users: Vec<&str> = policy.users.iter().map(|u| u.name.as_str()).collect();
    let u = policy::changes(&alloc.users, &users);
    let c = policy::changes(&alloc.classes, &policy.classes);
    let live = |(id, name)| (id, Slot::Live(name));
    write(
        ebpf,
        MAP_USER_NAMES,
        &mut alloc.users,
        u.record.into_iter().map(live),
    )?;
    write(
        ebpf,
        MAP_CLASS_NAMES,
        &mut alloc.classes,
        c.record.into_iter().map(live),
    )?;
    Ok(Retiring {
        users: u.retire,
        classes: c.retire,
    })
}

/// After the switch and the grace period: marks the ids `policy` stopped
/// naming retired, deletes their counters, buckets and event limits, then
/// frees them.
pub(super) fn retire(
    ebpf: &mut Ebpf,
    counters: &Counters,
    alloc: &mut Allocation,
    retiring: Retiring,
) -> Result<(), DataplaneError> {
    if retiring.users.is_empty() && retiring.classes.is_empty() {
        return Ok(());
    }
    let retired = |table: &Table, ids: &[u32]| -> Vec<(u32, Slot)> {
        ids.iter()
            .filter_map(|id| match table.get(*id) {
                Some(Slot::Live(n)) => Some((*id, Slot::Retired(n.clone()))),
                _ => None,
            })
            .collect()
    };
    let u = retired(&alloc.users, &retiring.users);
    write(ebpf, MAP_USER_NAMES, &mut alloc.users, u)?;
    let c = retired(&alloc.classes, &retiring.classes);
    write(ebpf, MAP_CLASS_NAMES, &mut alloc.classes, c)?;

    let users: HashSet<u32> = retiring.users.iter().copied().collect();
    let classes: HashSet<u32> = retiring.classes.iter().copied().collect();
    counters.remove_retired(&users, &classes)?;
    maps::remove_where::<BucketKey, u64>(ebpf, MAP_BUCKETS, |k| {
        users.contains(&k.user) || classes.contains(&u32::from(k.class))
    })?;
    // Indexed by user id: a retired user's slot starts again with no event
    // sent, so its next holder's first event is not held back.
    let mut limiter: Array<&mut MapData, EventTimes> = ebpf
        .map_mut(MAP_EVENT_LIMITER)
        .ok_or(DataplaneError::MissingMap(MAP_EVENT_LIMITER))?
        .try_into()
        .map_err(DataplaneError::map(
            MAP_EVENT_LIMITER,
            "unexpected map type",
        ))?;
    for user in &retiring.users {
        if *user < limiter.len() {
            limiter
                .set(*user, EventTimes::default(), 0)
                .map_err(DataplaneError::map(
                    MAP_EVENT_LIMITER,
                    format!("clear user id {user}"),
                ))?;
        }
    }
    // Scan state too: a retired user's quarantine must not pass to the
    // next holder of the id.
    let mut scan: Array<&mut MapData, ScanState> = ebpf
        .map_mut(MAP_SCAN)
        .ok_or(DataplaneError::MissingMap(MAP_SCAN))?
        .try_into()
        .map_err(DataplaneError::map(MAP_SCAN, "unexpected map type"))?;
    for user in &retiring.users {
        if *user < scan.len() {
            scan.set(*user, ScanState::default(), 0)
                .map_err(DataplaneError::map(
                    MAP_SCAN,
                    format!("clear user id {user}"),
                ))?;
        }
    }
    let mut class_buckets: Array<&mut MapData, u64> = ebpf
        .map_mut(MAP_CLASS_BUCKETS)
        .ok_or(DataplaneError::MissingMap(MAP_CLASS_BUCKETS))?
        .try_into()
        .map_err(DataplaneError::map(
            MAP_CLASS_BUCKETS,
            "unexpected map type",
        ))?;
    for class in &retiring.classes {
        // A class bucket per direction; 0 is a full one.
        for slot in [class * 2, class * 2 + 1] {
            class_buckets.set(slot, 0, 0).map_err(DataplaneError::map(
                MAP_CLASS_BUCKETS,
                format!("index {slot}"),
            ))?;
        }
    }

    for (name, table, ids) in [
        (MAP_USER_NAMES, &mut alloc.users, &retiring.users),
        (MAP_CLASS_NAMES, &mut alloc.classes, &retiring.classes),
    ] {
        // A zeroed slot is a free id.
        let free: Vec<(u32, NameSlot)> = ids.iter().map(|id| (*id, NameSlot::default())).collect();
        put(ebpf, name, &free)?;
        for id in ids {
            table.free(*id);
        }
    }
    Ok(())
}
