//! The kernel side as seen from userspace: load the embedded object, attach
//! its programs, write compiled policy into maps, read counters and events.

mod buckets;
mod counters;
mod error;
mod ids;
mod maps;
mod pins;

use std::sync::{Arc, Mutex};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{
        SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};
use policy_common::{
    DEFAULT_MAX_ACTIONS, DEFAULT_MAX_ADDRS, DEFAULT_MAX_CIDRS, DEFAULT_MAX_COUNTERS,
    DEFAULT_MAX_FLOWS, DEFAULT_MAX_SET_CIDRS, DEFAULT_MAX_SOCKET_OWNERS, DEFAULT_MAX_USERS,
    GENERATIONS, MAP_ACTIONS, MAP_BUCKETS, MAP_COUNTERS, MAP_EVENTS, MAP_FLOWS,
    MAP_GLOBAL_COUNTERS, MAP_IP_BINDINGS, MAP_SET_CIDRS, MAP_USER_CGROUPS, MAP_USER_CIDRS,
    MAP_USER_INFO, MAP_USER_MACS, MAP_USER_NAMES, MAP_USER_UIDS, MAP_USERS, MAX_PROFILES,
};

pub use self::{
    counters::Counters,
    error::DataplaneError,
    ids::from_pins as pinned_ids,
    maps::ifindex,
    pins::{DEFAULT_PIN_DIR, PinDirError, PinLock, Pins, lock_holder},
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
/// An XDP program that only passes: the floor for cost measurements.
pub const FLOOR_PROGRAM: &str = "policyd_floor";
/// A classifier that only passes: the floor for the TC programs.
pub const TC_FLOOR_PROGRAM: &str = "policyd_tc_floor";

/// Map capacities chosen at load time. Kernel maps cannot grow, so those
/// filled from the policy are sized to fit it (never below the defaults);
/// those filled by traffic are set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub users: u32,
    pub addrs: u32,
    pub cidrs: u32,
    pub socket_owners: u32,
    pub set_cidrs: u32,
    pub actions: u32,
    /// (user, class, direction) counter entries.
    pub counters: u32,
    /// Per-user token buckets (a plain hash: never evicted); 0 until
    /// [`Self::fit`] sizes it to the policy.
    pub buckets: u32,
    /// Flows tracked for elephant detection (LRU).
    pub flows: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            users: DEFAULT_MAX_USERS,
            addrs: DEFAULT_MAX_ADDRS,
            cidrs: DEFAULT_MAX_CIDRS,
            socket_owners: DEFAULT_MAX_SOCKET_OWNERS,
            set_cidrs: DEFAULT_MAX_SET_CIDRS,
            actions: DEFAULT_MAX_ACTIONS,
            counters: DEFAULT_MAX_COUNTERS,
            buckets: 0,
            flows: DEFAULT_MAX_FLOWS,
        }
    }
}

impl Capacity {
    /// Grows the policy-filled capacities to fit `policy`.
    pub fn fit(mut self, policy: &CompiledPolicy) -> Self {
        let fit = |current: u32, n: usize| current.max(u32::try_from(n).unwrap_or(u32::MAX));
        self.users = fit(self.users, policy.users.len());
        self.addrs = fit(
            self.addrs,
            policy
                .exact
                .len()
                .max(policy.macs.len())
                .max(policy.bindings.len()),
        );
        self.cidrs = fit(self.cidrs, policy.cidrs.len());
        self.socket_owners = fit(
            self.socket_owners,
            policy.uids.len().max(policy.cgroups.len()),
        );
        self.set_cidrs = fit(self.set_cidrs, policy.set_cidrs.len());
        self.actions = fit(self.actions, policy.actions.len());
        if self.buckets == 0 {
            self.buckets = buckets::fitted(buckets::need(policy));
        }
        self
    }

    /// Refuses `policy` if it may need more token buckets than
    /// `self.buckets` (an operator's `--max-buckets` below the need).
    pub fn check_buckets(&self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        buckets::check(policy, self.buckets)
    }
}

/// Which way an interface faces (see `policy_common::side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Users,
    Network,
}

/// How an XDP program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before any socket buffer is allocated.
    Native,
    /// In the core stack after skb allocation: works on any device, slower.
    Generic,
    /// A previous policyd's pinned link, now running this program.
    Adopted,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Adopted => "adopted",
        }
    }
}

enum Link {
    /// A previous policyd's pinned link, now running this object's program
    /// (the program owns it; its pin stays).
    Adopted,
    /// A link this run made and pinned (its pin keeps it attached when we
    /// exit).
    Pinned(FdLink),
}

/// The switches of the policy in force: which generation, and which profile
/// in it. Owned apart from the object, behind one lock, so a scheduler can
/// flip profiles while the daemon reloads, and the two never interleave.
pub struct ProfileSwitch {
    /// Per generation: the active profile slot.
    profiles: aya::maps::Array<MapData, u32>,
    /// The generation in force (one word).
    generation_map: aya::maps::Array<MapData, u32>,
    generation: u32,
    profile: usize,
}

impl ProfileSwitch {
    /// Makes profile `index` the active one in the generation in force: a
    /// single store, every profile's parameters being preloaded.
    pub fn set(&mut self, index: usize) -> Result<(), DataplaneError> {
        self.set_in(self.generation, index)?;
        self.profile = index;
        Ok(())
    }

    fn set_in(&mut self, generation: u32, index: usize) -> Result<(), DataplaneError> {
        if index >= MAX_PROFILES {
            return Err(DataplaneError::BadProfile(index));
        }
        self.profiles
            .set(generation, index as u32, 0)
            .map_err(DataplaneError::map(
                policy_common::MAP_ACTIVE_PROFILE,
                "set",
            ))
    }

    /// The generation in force.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// A loaded object, its attachments and its maps. Dropping it detaches every
/// program and frees the maps (nothing is pinned yet).
pub struct Dataplane {
    ebpf: Ebpf,
    capacity: Capacity,
    pins: Pins,
    counters: Arc<Counters>,
    profile: Arc<Mutex<ProfileSwitch>>,
    /// (interface, program, link): the program names the link's pin.
    links: Vec<(String, &'static str, Link)>,
    /// Held for as long as the maps are in use: one policyd per directory.
    lock: PinLock,
    /// The directory held a previous policyd's pins when this one started.
    adopted: bool,
    /// The pinned name -> id allocation, as last read or written.
    ids: Allocation,
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

impl Dataplane {
    /// Loads the embedded object and its programs into the kernel (this is
    /// where the verifier runs), without attaching anything.
    /// Maps are pinned in `pins` (and adopted from there when a previous
    /// policyd left them).
    pub fn load(capacity: Capacity, pins: Pins) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let lock = pins.prepare()?;
        // Looked at under the lock: nobody else changes the directory now.
        let adopted = pins.has_state();
        // Policy tables hold two generations (see policy-common's
        // generation.rs): twice the entries.
        let two = |n: u32| n.saturating_mul(GENERATIONS);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.dir())
            .map_max_entries(MAP_USER_INFO, two(capacity.users))
            .map_max_entries(MAP_USER_NAMES, capacity.users)
            .map_max_entries(MAP_USERS, two(capacity.addrs))
            .map_max_entries(MAP_USER_MACS, two(capacity.addrs))
            .map_max_entries(MAP_IP_BINDINGS, two(capacity.addrs))
            .map_max_entries(MAP_USER_CIDRS, two(capacity.cidrs))
            .map_max_entries(MAP_USER_UIDS, two(capacity.socket_owners))
            .map_max_entries(MAP_USER_CGROUPS, two(capacity.socket_owners))
            .map_max_entries(MAP_SET_CIDRS, two(capacity.set_cidrs))
            .map_max_entries(MAP_ACTIONS, two(capacity.actions))
            .map_max_entries(MAP_COUNTERS, capacity.counters)
            .map_max_entries(MAP_BUCKETS, capacity.buckets)
            .map_max_entries(MAP_FLOWS, capacity.flows)
            .load(EBPF_OBJECT)
            .map_err(DataplaneError::Load)?;
        // An adopted map keeps the size it was made with.
        let (buckets, bucket_handle) = buckets::inspect(&ebpf)?;
        let capacity = Capacity {
            buckets,
            ..capacity
        };
        program_mut::<Xdp>(&mut ebpf, XDP_PROGRAM)?
            .load()
            .map_err(|source| DataplaneError::Verify {
                program: XDP_PROGRAM,
                source,
            })?;
        for name in [TC_INGRESS_PROGRAM, TC_EGRESS_PROGRAM] {
            program_mut::<SchedClassifier>(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Verify {
                    program: name,
                    source,
                })?;
        }
        let counters = Counters::new(
            maps::take(&mut ebpf, MAP_COUNTERS)?,
            maps::take(&mut ebpf, MAP_GLOBAL_COUNTERS)?,
        )?
        .with_buckets(bucket_handle)?;
        let generation_map: aya::maps::Array<MapData, u32> =
            maps::take(&mut ebpf, policy_common::MAP_GENERATION)?
                .try_into()
                .map_err(DataplaneError::map(
                    policy_common::MAP_GENERATION,
                    "unexpected map type",
                ))?;
        // Adopted maps carry on with the generation in force.
        let generation = generation_map.get(&0, 0).unwrap_or(0) & 1;
        let profile = ProfileSwitch {
            generation_map,
            generation,
            profile: 0,
            profiles: maps::take(&mut ebpf, policy_common::MAP_ACTIVE_PROFILE)?
                .try_into()
                .map_err(DataplaneError::map(
                    policy_common::MAP_ACTIVE_PROFILE,
                    "unexpected map type",
                ))?,
        };
        let ids = ids::read(&mut ebpf, capacity.users)?;
        let dp = Self {
            ids,
            ebpf,
            capacity,
            pins,
            counters: Arc::new(counters),
            profile: Arc::new(Mutex::new(profile)),
            links: Vec::new(),
            lock,
            adopted,
        };
        Ok(dp)
    }

    /// Writes `policy` into the maps and removes entries it no longer has.
    ///
    /// The policy goes into the idle generation whole, then one store
    /// switches generations: a packet sees the old policy or the new one,
    /// never a mix. After a grace period (packets in flight finish in
    /// microseconds) the old generation's entries are removed. The profile
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
        if policy.users.len() > self.capacity.users as usize {
            return Err(DataplaneError::TooManyUsers {
                ids: policy.users.len(),
                capacity: self.capacity.users,
            });
        }
        self.capacity.check_buckets(policy)?;
        let switch = Arc::clone(&self.profile);
        let mut sw = switch.lock().unwrap_or_else(|p| p.into_inner());
        let old = sw.generation;
        let new = 1 - old;
        let retiring = ids::record(&mut self.ebpf, &mut self.ids, policy)?;
        if let Err(e) = maps::write_policy(&mut self.ebpf, policy, new, self.capacity.users) {
            // Nothing reads the idle generation: clear it for the next try.
            let _ = maps::remove_generation(&mut self.ebpf, new);
            return Err(e);
        }
        sw.set_in(new, profile)?;
        sw.generation_map
            .set(0, new, 0)
            .map_err(DataplaneError::map(policy_common::MAP_GENERATION, "switch"))?;
        sw.generation = new;
        sw.profile = profile;
        std::thread::sleep(GRACE);
        maps::remove_generation(&mut self.ebpf, old)?;
        ids::retire(&mut self.ebpf, &self.counters, &mut self.ids, retiring)?;
        // Buckets of (user, class) pairs the new policy no longer limits.
        buckets::prune(&mut self.ebpf, policy)
    }

    /// Makes profile `index` (into the policy's profile list) the active one:
    /// a single store, every profile's parameters being preloaded.
    pub fn set_profile(&mut self, index: usize) -> Result<(), DataplaneError> {
        self.profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(index)
    }

    /// The active-profile slot, for a scheduler running beside the daemon.
    pub fn profile_switch(&self) -> Arc<Mutex<ProfileSwitch>> {
        Arc::clone(&self.profile)
    }

    /// Attaches XDP on ingress of `iface` and, unless `ingress_only`, TC on
    /// its egress, and records which way it faces. XDP uses native mode or
    /// falls back to generic mode with a warning (unless `native_only`).
    pub fn attach(
        &mut self,
        iface: &str,
        side: Side,
        native_only: bool,
        ingress_only: bool,
    ) -> Result<AttachMode, DataplaneError> {
        maps::set_iface_side(&mut self.ebpf, iface, side)?;
        let mode = self.attach_xdp(iface, native_only)?;
        if !ingress_only {
            self.attach_tc_egress(iface)?;
        }
        Ok(mode)
    }

    /// A link a previous policyd pinned, if there is one at `pin`.
    fn pinned_link(pin: &std::path::Path) -> Result<Option<FdLink>, DataplaneError> {
        if !pin.exists() {
            return Ok(None);
        }
        PinnedLink::from_pin(pin)
            .map(|l| Some(FdLink::from(l)))
            .map_err(|e| DataplaneError::Adopt {
                path: pin.to_owned(),
                message: e.to_string(),
            })
    }

    fn pin_link(&self, link: FdLink, pin: &std::path::Path) -> Result<FdLink, DataplaneError> {
        link.pin(pin)
            .map(FdLink::from)
            .map_err(|e| DataplaneError::Adopt {
                path: pin.to_owned(),
                message: format!("cannot pin the link: {e}"),
            })
    }

    fn attach_xdp(&mut self, iface: &str, native_only: bool) -> Result<AttachMode, DataplaneError> {
        let attach_err = |source| DataplaneError::Attach {
            iface: iface.to_owned(),
            source,
        };
        let pin = self.pins.link(iface, "xdp");
        let adopted = Self::pinned_link(&pin)?;
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, XDP_PROGRAM)?;
        if let Some(link) = adopted {
            // A previous policyd's link: our program replaces its own in
            // one step (the link never leaves the interface).
            let link = XdpLink::try_from(link).map_err(|e| DataplaneError::Adopt {
                path: pin.clone(),
                message: e.to_string(),
            })?;
            xdp.attach_to_link(link).map_err(attach_err)?;
            self.links.push((iface.to_owned(), "xdp", Link::Adopted));
            return Ok(AttachMode::Adopted);
        }
        let (mode, id) = match xdp.attach(iface, XdpMode::Driver) {
            Ok(link) => (AttachMode::Native, link),
            Err(native) if !native_only => {
                tracing::warn!(
                    iface,
                    error = %native,
                    "native XDP attach failed; falling back to generic (skb) mode, which is slower"
                );
                (
                    AttachMode::Generic,
                    xdp.attach(iface, XdpMode::Skb).map_err(attach_err)?,
                )
            }
            Err(native) => return Err(attach_err(native)),
        };
        // Pinned, the link outlives us: a crash leaves enforcement in force.
        let link = xdp.take_link(id).map_err(attach_err)?;
        let link = FdLink::try_from(link).map_err(|e| DataplaneError::Adopt {
            path: pin.clone(),
            message: format!("the attachment is not a BPF link (kernel < 5.9?): {e}"),
        })?;
        let link = self.pin_link(link, &pin)?;
        self.links
            .push((iface.to_owned(), "xdp", Link::Pinned(link)));
        Ok(mode)
    }

    fn attach_tc_egress(&mut self, iface: &str) -> Result<(), DataplaneError> {
        let attach_err = |source| DataplaneError::Attach {
            iface: iface.to_owned(),
            source,
        };
        let pin = self.pins.link(iface, "tc_egress");
        let adopted = Self::pinned_link(&pin)?;
        let tc: &mut SchedClassifier = program_mut(&mut self.ebpf, TC_EGRESS_PROGRAM)?;
        if let Some(link) = adopted {
            let link = SchedClassifierLink::try_from(link).map_err(|e| DataplaneError::Adopt {
                path: pin.clone(),
                message: e.to_string(),
            })?;
            tc.attach_to_link(link).map_err(attach_err)?;
            self.links
                .push((iface.to_owned(), "tc_egress", Link::Adopted));
            return Ok(());
        }
        // TCX links (kernel >= 6.6) need no clsact qdisc.
        let id = tc.attach(iface, TcAttachType::Egress).map_err(attach_err)?;
        let link = tc.take_link(id).map_err(attach_err)?;
        let link = FdLink::try_from(link).map_err(|e| DataplaneError::Adopt {
            path: pin.clone(),
            message: format!("the attachment is not a BPF link (kernel < 6.6?): {e}"),
        })?;
        let link = self.pin_link(link, &pin)?;
        self.links
            .push((iface.to_owned(), "tc_egress", Link::Pinned(link)));
        Ok(())
    }

    /// Undoes the attachments this run made, in reverse order (a start that
    /// failed half-way): links it created are unpinned and closed, which
    /// detaches them; links it adopted from a previous policyd stay
    /// attached and pinned, running this object's program on the same maps.
    pub fn undo_attachments(&mut self) {
        while let Some((iface, program, link)) = self.links.pop() {
            if let Link::Pinned(fd) = link {
                let _ = std::fs::remove_file(self.pins.link(&iface, program));
                drop(fd);
            }
        }
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
        let c = self.capacity;
        let n = |len: usize| len as u64;
        vec![
            ("user_info", n(policy.users.len()), u64::from(c.users)),
            ("users", n(policy.exact.len()), u64::from(c.addrs)),
            ("user_macs", n(policy.macs.len()), u64::from(c.addrs)),
            ("user_cidrs", n(policy.cidrs.len()), u64::from(c.cidrs)),
            (
                "set_cidrs",
                n(policy.set_cidrs.len()),
                u64::from(c.set_cidrs),
            ),
            ("actions", n(policy.actions.len()), u64::from(c.actions)),
        ]
    }

    /// The pin directory.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Forgets every bucket's and flow's state (tests: start each case from
    /// full buckets and fresh flows).
    pub fn reset_state(&mut self) -> Result<(), DataplaneError> {
        maps::clear::<policy_common::BucketKey, u64>(&mut self.ebpf, MAP_BUCKETS)?;
        maps::clear::<policy_common::FlowKey, u64>(&mut self.ebpf, MAP_FLOWS)
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
