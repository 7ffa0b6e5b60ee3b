//! Reading the per-CPU counters. Owned separately from the rest of the object
//! so the metrics server can read them while the daemon updates policy.

use aya::maps::{MapData, PerCpuArray};
use policy_common::{MAP_GLOBAL_COUNTERS, MAP_USER_COUNTERS, UserCounters, UserId};

use super::DataplaneError;

pub struct Counters {
    users: PerCpuArray<MapData, UserCounters>,
    global: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub(super) fn new(
        users: aya::maps::Map,
        global: aya::maps::Map,
    ) -> Result<Self, DataplaneError> {
        Ok(Self {
            users: users.try_into().map_err(DataplaneError::map(
                MAP_USER_COUNTERS,
                "unexpected map type",
            ))?,
            global: global.try_into().map_err(DataplaneError::map(
                MAP_GLOBAL_COUNTERS,
                "unexpected map type",
            ))?,
        })
    }

    /// A user's counters, summed over CPUs.
    pub fn user(&self, id: UserId) -> Result<UserCounters, DataplaneError> {
        let per_cpu = self.users.get(&id, 0).map_err(DataplaneError::map(
            MAP_USER_COUNTERS,
            format!("reading user {id}"),
        ))?;
        let mut total = UserCounters::default();
        for c in per_cpu.iter() {
            total.accumulate(c);
        }
        Ok(total)
    }

    /// A [`policy_common::global_counter`], summed over CPUs.
    pub fn global(&self, index: u32) -> Result<u64, DataplaneError> {
        let per_cpu = self.global.get(&index, 0).map_err(DataplaneError::map(
            MAP_GLOBAL_COUNTERS,
            format!("reading slot {index}"),
        ))?;
        Ok(per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
    }
}
