//! The switches of the policy in force: which generation, which profile.

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use policy_common::{MAP_ACTIVE_PROFILE, MAP_GENERATION, MAX_PROFILES};

use super::{DataplaneError, maps};

/// The switches of the policy in force: which generation, and which profile
/// in it. Owned apart from the object, behind one lock, so a scheduler can
/// flip profiles while the daemon reloads, and the two never interleave.
pub struct ProfileSwitch {
    /// Per generation: the active profile slot.
    profiles: Array<MapData, u32>,
    /// The generation in force (one word).
    generation_map: Array<MapData, u32>,
    generation: u32,
    pub(super) profile: usize,
}

impl ProfileSwitch {
    /// Takes both switches' maps out of `ebpf`; adopted maps carry on with
    /// the generation in force.
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DataplaneError> {
        let generation_map: Array<MapData, u32> = maps::take(ebpf, MAP_GENERATION)?
            .try_into()
            .map_err(DataplaneError::map(MAP_GENERATION, "unexpected map type"))?;
        let generation = generation_map.get(&0, 0).unwrap_or(0) & 1;
        Ok(Self {
            generation_map,
            generation,
            profile: 0,
            profiles: maps::take(ebpf, MAP_ACTIVE_PROFILE)?.try_into().map_err(
                DataplaneError::map(MAP_ACTIVE_PROFILE, "unexpected map type"),
            )?,
        })
    }

    /// Makes profile `index` the active one in the generation in force: a
    /// single store, every profile's parameters being preloaded.
    pub fn set(&mut self, index: usize) -> Result<(), DataplaneError> {
        self.set_in(self.generation, index)?;
        self.profile = index;
        Ok(())
    }

    /// Puts the idle generation `new` in force, starting in profile
    /// `profile`: one store each.
    pub(super) fn switch_to(&mut self, new: u32, profile: usize) -> Result<(), DataplaneError> {
        self.set_in(new, profile)?;
        self.generation_map
            .set(0, new, 0)
            .map_err(DataplaneError::map(MAP_GENERATION, "switch"))?;
        self.generation = new;
        self.profile = profile;
        Ok(())
    }

    fn set_in(&mut self, generation: u32, index: usize) -> Result<(), DataplaneError> {
        if index >= MAX_PROFILES {
            return Err(DataplaneError::BadProfile(index));
        }
        self.profiles
            .set(generation, index as u32, 0)
            .map_err(DataplaneError::map(MAP_ACTIVE_PROFILE, "set"))
    }

    /// The generation in force.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}
