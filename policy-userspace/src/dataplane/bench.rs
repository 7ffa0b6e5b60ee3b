//! Hooks only the benchmark harness and the kernel tests need: do-nothing
//! programs to measure against, and a reset of traffic-filled state. Behind
//! the `bench` feature so the shipped daemon carries none of it.

use aya::programs::{SchedClassifier, Xdp};
use policy_common::{BucketKey, MAP_BUCKETS};

use super::{Dataplane, DataplaneError, maps, program_mut};

/// An XDP program that only passes: the floor for cost measurements.
pub const FLOOR_PROGRAM: &str = "policyd_floor";
/// A classifier that only passes: the floor for the TC programs.
pub const TC_FLOOR_PROGRAM: &str = "policyd_tc_floor";

impl Dataplane {
    /// The do-nothing XDP program, loaded on first use (benchmarks).
    pub fn floor(&mut self) -> Result<&Xdp, DataplaneError> {
        let floor: &mut Xdp = program_mut(&mut self.ebpf, FLOOR_PROGRAM)?;
        if floor.fd().is_err() {
            floor.load().map_err(|source| DataplaneError::Verify {
                program: FLOOR_PROGRAM,
                source,
            })?;
        }
        Ok(floor)
    }

    /// The do-nothing classifier, loaded on first use (benchmarks).
    pub fn tc_floor(&mut self) -> Result<&SchedClassifier, DataplaneError> {
        let floor: &mut SchedClassifier = program_mut(&mut self.ebpf, TC_FLOOR_PROGRAM)?;
        if floor.fd().is_err() {
            floor.load().map_err(|source| DataplaneError::Verify {
                program: TC_FLOOR_PROGRAM,
                source,
            })?;
        }
        Ok(floor)
    }

    /// Forgets every bucket's and flow's state (tests: start each case from
    /// full buckets and fresh flows).
    pub fn reset_state(&mut self) -> Result<(), DataplaneError> {
        maps::remove_where::<BucketKey, u64>(&mut self.ebpf, MAP_BUCKETS, |_| true)?;
        maps::clear_unid_buckets(&mut self.ebpf, self.capacity.unid_slots)?;
        self.sketch.clear()
    }
}
