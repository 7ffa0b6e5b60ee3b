//! The kernel side as seen from userspace: load the embedded object, attach
//! its programs, write compiled policy into maps, read counters and events.

mod attach;
mod batch;
#[cfg(feature = "bench")]
mod bench;
mod buckets;
mod capacity;
mod counters;
mod daemon;
mod error;
mod held;
mod ids;
pub mod kernel_floor;
mod learned;
mod maps;
mod pins;
mod pressure;
mod profile;
mod quota;
mod replay_clock;
mod rows;
mod scan;
mod sketch;
mod upgrade;
mod xdp_mode;

use std::sync::{Arc, Mutex};

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
    programs::{SchedClassifier, Xdp},
};
use policy_common::{
    MAP_COUNTERS, MAP_EVENTS, MAP_GLOBAL_COUNTERS, RULE_SLOTS_GLOBAL, VIRTUAL_CLOCK_GLOBAL,
};

#[cfg(feature = "bench")]
pub use self::bench::{FLOOR_PROGRAM, TC_FLOOR_PROGRAM};
pub use self::{
    attach::{AttachMode, Ingress, Side},
    capacity::Capacity,
    counters::{Counters, RetiredTotals},
    daemon::{from_pins as pinned_daemon, profile_names_from_pins, unix_now_ns},
    error::DataplaneError,
    ids::from_pins as pinned_ids,
    learned::{LearnedMaps, NamesCounters, matcher as domain_matcher},
    maps::ifindex,
    pins::{DEFAULT_PIN_DIR, PinDirError, PinLock, Pins, lock_holder},
    pressure::{Fill, array_in_use, traffic_fill},
    profile::ProfileSwitch,
    quota::{QuotaTable, QuotaUse},
    replay_clock::ReplayClock,
    rows::ActionRows,
    scan::{Quarantine, ScanTable, coarse_now_ns, reason_name},
    sketch::FlowSketch,
};
use crate::policy::{Allocation, CompiledPolicy};

/// The kernel programs, built by build.rs from the policy-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/policy-ebpf"));

/// How long packets that read the old generation before a switch may still
/// be using it. A program runs for microseconds; this is ample.
const GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// Entry points in the object (the functions' names).
pub const XDP_PROGRAM: &str = "policyd_xdp";
pub const TC_INGRESS_PROGRAM: &str = "policyd_tc_ingress";
pub const TC_EGRESS_PROGRAM: &str = "policyd_tc_egress";

/// A loaded object, its attachments and its maps. Dropping it detaches every
/// program and frees the maps (nothing is pinned yet).
/// Whose clock the programs read (policy-common's replay.rs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clock {
    Kernel,
    Replay,
}

pub struct Dataplane {
    ebpf: Ebpf,
    capacity: Capacity,
    pins: Pins,
    counters: Arc<Counters>,
    profile: Arc<Mutex<ProfileSwitch>>,
    sketch: Arc<FlowSketch>,
    /// The quota table, shared with the task that starts new periods: a
    /// reload lays the new quotas on it under the lock.
    quotas: Arc<Mutex<QuotaTable>>,
    /// The learned destinations, shared with the task that reads the
    /// names ring; `None` until [`Self::learn_names`].
    learned: Option<Arc<Mutex<LearnedMaps>>>,
    /// What each generation of the policy tables holds, where known (maps
    /// this run created start empty; adopted ones are unknown).
    held: [held::Generation; 2],
    /// (interface, program, link): the program names the link's pin.
    links: Vec<(String, &'static str, attach::Link)>,
    /// Held for as long as the maps are in use: one policyd per directory.
    lock: PinLock,
    /// The directory held a previous policyd's pins when this one started.
    adopted: bool,
    /// The pinned name -> id allocation, as last read or written.
    ids: Allocation,
    /// This run's record of itself (daemon.rs), and the one it found.
    daemon: policy_common::DaemonInfo,
    daemon_before: policy_common::DaemonInfo,
}

fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, DataplaneError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?
        .try_into()
        .map_err(|source| DataplaneError::Verify {
            program: name,
            source,
        })
}

/// Loads (verifies) entry point `name` of the three.
fn verify(ebpf: &mut Ebpf, name: &'static str) -> Result<(), DataplaneError> {
    let verified = |source| DataplaneError::Verify {
        program: name,
        source,
    };
    if name == XDP_PROGRAM {
        program_mut::<Xdp>(ebpf, name)?.load().map_err(verified)
    } else {
        program_mut::<SchedClassifier>(ebpf, name)?
            .load()
            .map_err(verified)
    }
}

impl Dataplane {
    /// Loads the embedded object and its programs into the kernel (this is
    /// where the verifier runs), without attaching anything.
    /// Maps are pinned in `pins` (and adopted from there when a previous
    /// policyd left them).
    pub fn load(capacity: Capacity, pins: Pins) -> Result<Self, DataplaneError> {
        Self::load_programs(
            capacity,
            pins,
            &[XDP_PROGRAM, TC_INGRESS_PROGRAM, TC_EGRESS_PROGRAM],
        )
    }

    /// [`Self::load`], verifying only `programs` (of the three entry
    /// points): each costs the verifier about a second or more, and a
    /// test run (`replay`) needs one.
    pub fn load_programs(
        capacity: Capacity,
        pins: Pins,
        programs: &[&'static str],
    ) -> Result<Self, DataplaneError> {
        Self::load_with(capacity, pins, programs, Clock::Kernel)
    }

    /// The programs of a replay: [`Self::load_programs`] in a directory of
    /// its own whose programs read the time from the returned clock (and
    /// draw their early drops from a generator seeded with `seed`) instead
    /// of the kernel's, so that packets are judged at their capture's
    /// timestamps. Never attached.
    pub fn load_replay(
        capacity: Capacity,
        programs: &[&'static str],
        seed: u64,
    ) -> Result<(Self, ReplayClock), DataplaneError> {
        let mut dp = Self::load_with(capacity, Pins::ephemeral(), programs, Clock::Replay)?;
        let clock = ReplayClock::take(&mut dp.ebpf, seed)?;
        Ok((dp, clock))
    }

    fn load_with(
        capacity: Capacity,
        pins: Pins,
        programs: &[&'static str],
        clock: Clock,
    ) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let lock = pins.prepare()?;
        // Looked at under the lock: nobody else changes the directory now.
        let adopted = pins.has_state();
        if adopted {
            upgrade::check(pins.dir())?;
        }
        // A load that fails (the verifier refuses a program, a map cannot
        // be made) has pinned maps already: a directory this run made goes
        // with them, so a failed start leaves bpffs as it found it. An
        // adopted one is a running enforcement's and stays.
        let made_here = (!adopted && lock.created).then(|| pins.dir().to_owned());
        Self::load_locked(capacity, pins, programs, lock, adopted, clock).inspect_err(|_| {
            if let Some(dir) = made_here {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
    }

    fn load_locked(
        capacity: Capacity,
        pins: Pins,
        programs: &[&'static str],
        lock: PinLock,
        adopted: bool,
        clock: Clock,
    ) -> Result<Self, DataplaneError> {
        let mut loader = capacity.loader(pins.dir());
        let rule_slots = capacity.rule_slots();
        loader.override_global(RULE_SLOTS_GLOBAL, &rule_slots, true);
        if clock == Clock::Replay {
            loader.override_global(VIRTUAL_CLOCK_GLOBAL, &1u8, true);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(DataplaneError::Load)?;
        // An adopted map keeps the size it was made with.
        let (buckets, bucket_handle) = buckets::inspect(&ebpf)?;
        let (sketch, sketch_width) = FlowSketch::open(&ebpf)?;
        let capacity = Capacity {
            buckets,
            sketch_width,
            ..capacity
        }
        .as_loaded(&ebpf)?;
        for name in programs {
            verify(&mut ebpf, name)?;
        }
        let counters = Counters::new(
            maps::take(&mut ebpf, MAP_COUNTERS)?,
            maps::take(&mut ebpf, MAP_GLOBAL_COUNTERS)?,
        )?
        .with_buckets(bucket_handle)?;
        let profile = ProfileSwitch::take(&mut ebpf)?;
        let ids = ids::read(&mut ebpf, capacity.users)?;
        let quotas = QuotaTable::open(&ebpf, capacity.quota_slots)?;
        let daemon_before = daemon::read(&ebpf)?;
        let dp = Self {
            daemon: policy_common::DaemonInfo::default(),
            daemon_before,
            quotas: Arc::new(Mutex::new(quotas)),
            learned: None,
            ids,
            ebpf,
            capacity,
            pins,
            counters: Arc::new(counters),
            profile: Arc::new(Mutex::new(profile)),
            sketch: Arc::new(sketch),
            held: if adopted {
                Default::default()
            } else {
                [held::Generation::empty(), held::Generation::empty()]
            },
            links: Vec::new(),
            lock,
            adopted,
        };
        Ok(dp)
    }

    /// Writes `policy` into the maps and removes entries it no longer has.
    ///
    /// The idle generation is made to hold the policy (writing only what
    /// differs from what it held, see held.rs), then one store switches
    /// generations: a packet sees the old policy or the new one, never a
    /// mix. After a grace period (packets in flight finish in
    /// microseconds) the old generation's prefixes are removed from the
    /// tries; its hash entries stay for the next reload to change. The profile
    /// in force stays the same slot. Ids are `policy`'s own (give it the
    /// pinned allocation's with [`Self::assign_ids`]); those it no longer
    /// names are retired then: their state is deleted and they are freed.
    pub fn apply(&mut self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        let profile = self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .profile;
        self.apply_with_profile(policy, profile)
    }

    /// [`Self::apply`], with the new generation starting in profile `profile`.
    pub fn apply_with_profile(
        &mut self,
        policy: &CompiledPolicy,
        profile: usize,
    ) -> Result<(), DataplaneError> {
        let limited = buckets::Limited::of(policy);
        self.capacity.check_with(policy, &limited)?;
        let switch = Arc::clone(&self.profile);
        let mut sw = switch.lock().unwrap_or_else(|p| p.into_inner());
        let old = sw.generation();
        let new = 1 - old;
        let retiring = ids::record(&mut self.ebpf, &mut self.ids, policy)?;
        let written = maps::write_policy(
            &mut self.ebpf,
            policy,
            new,
            &self.capacity,
            limited.rows(),
            &mut self.held[new as usize],
        )
        // The slots are not per generation: laid out just before the
        // switch, the old generation's packets see the new quotas for the
        // microseconds until it.
        .and_then(|()| {
            self.quotas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write(policy)
        })
        .and_then(|()| daemon::write_profile_names(&mut self.ebpf, new, &policy.profiles))
        .and_then(|()| daemon::write_set_names(&mut self.ebpf, new, &policy.sets));
        if let Err(e) = written {
            // The learned entries were not restaged yet: nothing to undo.
            // Nothing reads the idle generation: clear its prefixes for the
            // next try (what the hash tables hold is unknown now, held.rs).
            let _ = maps::remove_generation(&mut self.ebpf, new);
            return Err(e);
        }
        let learned = self.learned.clone();
        let gone = match &learned {
            Some(l) => {
                let old_sets = daemon::read_set_names(&self.ebpf, old)?;
                Some(
                    l.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .stage(policy, new, &old_sets),
                )
            }
            None => None,
        };
        sw.switch_to(new, profile)?;
        std::thread::sleep(GRACE);
        if let (Some(l), Some(gone)) = (learned, gone) {
            l.lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(gone, new);
        }
        maps::remove_generation(&mut self.ebpf, old)?;
        ids::retire(&mut self.ebpf, &self.counters, &mut self.ids, retiring)?;
        // Buckets of (user, class) pairs the new policy no longer limits.
        buckets::prune(&mut self.ebpf, &limited)
    }

    /// Makes profile `index` (into the policy's profile list) the active one:
    /// a single store, every profile's parameters being preloaded.
    pub fn set_profile(&mut self, index: usize) -> Result<(), DataplaneError> {
        self.profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(index)
    }

    /// The quota table, for the task that starts periods and the metrics.
    pub fn quota_table(&self) -> Arc<Mutex<QuotaTable>> {
        Arc::clone(&self.quotas)
    }

    /// A handle on the scan table, for the metrics.
    pub fn scan_table(&self) -> Result<ScanTable, DataplaneError> {
        ScanTable::open(&self.ebpf)
    }

    /// The elephant sketch, for the task that ages it beside the daemon.
    pub fn flow_sketch(&self) -> Arc<FlowSketch> {
        Arc::clone(&self.sketch)
    }

    /// The active-profile slot, for a scheduler running beside the daemon.
    pub fn profile_switch(&self) -> Arc<Mutex<ProfileSwitch>> {
        Arc::clone(&self.profile)
    }

    /// Whether the pin directory held a previous policyd's state (maps or
    /// links) when this one started: then nothing of it is ever removed.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Removes every pin (maps and links): only for state this run created
    /// (a first start that failed). Adopted state is never removed here;
    /// `policyd unload` does that.
    pub fn remove_created_pins(&self) -> Result<(), DataplaneError> {
        if self.adopted || !self.lock.created {
            return Ok(());
        }
        self.pins.remove().map_err(|source| DataplaneError::Pins {
            dir: self.pins.dir().to_owned(),
            source,
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The learned-destination tables (emptied of nothing: what an earlier
    /// policyd learned is adopted), with `policy`'s domain sets, and the
    /// ring the kernel copies DNS answers and TLS handshakes to; once.
    pub fn learn_names(
        &mut self,
        policy: &CompiledPolicy,
    ) -> Result<(Arc<Mutex<LearnedMaps>>, RingBuf<MapData>), DataplaneError> {
        let maps = Arc::new(Mutex::new(LearnedMaps::take(&mut self.ebpf, policy)?));
        let ring = learned::take_ring(&mut self.ebpf)?;
        self.learned = Some(Arc::clone(&maps));
        Ok((maps, ring))
    }

    /// The event ring buffer; can be taken once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DataplaneError> {
        let map = maps::take(&mut self.ebpf, MAP_EVENTS)?;
        RingBuf::try_from(map).map_err(DataplaneError::map(MAP_EVENTS, "unexpected map type"))
    }

    /// The loaded XDP program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        self.ebpf
            .program(XDP_PROGRAM)
            .ok_or(DataplaneError::MissingProgram(XDP_PROGRAM))?
            .try_into()
            .map_err(|source| DataplaneError::Verify {
                program: XDP_PROGRAM,
                source,
            })
    }

    /// Verifies entry point `name` if [`Self::load_programs`] left it out:
    /// a replay loads TC egress at its first download.
    pub fn load_program(&mut self, name: &'static str) -> Result<(), DataplaneError> {
        let loaded = self
            .ebpf
            .program(name)
            .ok_or(DataplaneError::MissingProgram(name))?
            .fd()
            .is_ok();
        if loaded {
            Ok(())
        } else {
            verify(&mut self.ebpf, name)
        }
    }

    /// A loaded TC program (ingress or egress), e.g. for test runs.
    pub fn tc(&self, name: &'static str) -> Result<&SchedClassifier, DataplaneError> {
        self.ebpf
            .program(name)
            .ok_or(DataplaneError::MissingProgram(name))?
            .try_into()
            .map_err(|source| DataplaneError::Verify {
                program: name,
                source,
            })
    }

    /// The map capacities chosen at load.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// How full the policy tables are with `policy`: (map, entries,
    /// capacity per generation), for the metrics.
    pub fn table_fill(&self, policy: &CompiledPolicy) -> Vec<(&'static str, u64, u64)> {
        self.capacity.fill(policy)
    }

    /// The pin directory.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // Programs loaded for tests, replay, explain or benchmarks leave
        // nothing behind.
        if matches!(self.pins, Pins::Ephemeral(_)) {
            let _ = self.pins.remove();
        }
    }
}
