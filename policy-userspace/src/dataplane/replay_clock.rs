//! The clock of a replay's programs (policy-common's replay.rs): loaded
//! with [`super::Dataplane::load_replay`], they read the time this handle
//! sets and draw their early drops from a generator it seeds.

use aya::maps::{Array, MapData};
use policy_common::{MAP_REPLAY_CLOCK, replay_clock};

use super::{DataplaneError, maps};

/// Sets the time the programs see.
pub struct ReplayClock {
    map: Array<MapData, u64>,
    now: u64,
}

impl ReplayClock {
    pub(super) fn take(ebpf: &mut aya::Ebpf, seed: u64) -> Result<Self, DataplaneError> {
        let mut map: Array<MapData, u64> = maps::take(ebpf, MAP_REPLAY_CLOCK)?
            .try_into()
            .map_err(DataplaneError::map(MAP_REPLAY_CLOCK, "unexpected map type"))?;
        // xorshift64 stays at 0 forever: the kernel ORs in a 1 as well.
        map.set(replay_clock::RANDOM, seed | 1, 0)
            .map_err(DataplaneError::map(MAP_REPLAY_CLOCK, "seeding"))?;
        Ok(Self { map, now: 0 })
    }

    /// Makes `now_ns` (not 0) the programs' time; a write only when it
    /// moved, so packets of one instant cost no system call.
    pub fn set(&mut self, now_ns: u64) -> Result<(), DataplaneError> {
        let now_ns = now_ns.max(1);
        if now_ns != self.now {
            self.map
                .set(replay_clock::NOW, now_ns, 0)
                .map_err(DataplaneError::map(MAP_REPLAY_CLOCK, "setting the time"))?;
            self.now = now_ns;
        }
        Ok(())
    }
}
