//! The kernel side as seen from userspace: load the embedded object, attach
//! its programs, write compiled policy into maps, read counters back.

mod counters;
mod error;
mod maps;

use std::sync::Arc;

use aya::{
    Ebpf, EbpfLoader,
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use policy_common::{
    DEFAULT_MAX_ADDRS, DEFAULT_MAX_CIDRS, DEFAULT_MAX_USERS, MAP_GLOBAL_COUNTERS,
    MAP_USER_CIDRS_V4, MAP_USER_CIDRS_V6, MAP_USER_COUNTERS, MAP_USER_POLICY, MAP_USERS_V4,
    MAP_USERS_V6,
};

pub use self::{counters::Counters, error::DataplaneError};
use crate::policy::CompiledPolicy;

/// The kernel programs, built by build.rs from the policy-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/policy-ebpf"));

/// Name of the XDP entry point in the object (the function name).
pub const XDP_PROGRAM: &str = "policyd_xdp";

/// Map capacities chosen at load time. Kernel maps cannot grow, so they are
/// sized once, from the policy, never below the compiled-in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub users: u32,
    pub addrs: u32,
    pub cidrs: u32,
}

impl Capacity {
    pub fn for_policy(policy: &CompiledPolicy) -> Self {
        let fit = |n: usize, default: u32| u32::try_from(n).unwrap_or(u32::MAX).max(default);
        Self {
            users: fit(policy.users.len(), DEFAULT_MAX_USERS),
            addrs: fit(
                policy.v4_exact.len().max(policy.v6_exact.len()),
                DEFAULT_MAX_ADDRS,
            ),
            cidrs: fit(
                policy.v4_cidrs.len().max(policy.v6_cidrs.len()),
                DEFAULT_MAX_CIDRS,
            ),
        }
    }
}

/// How an XDP program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before any socket buffer is allocated.
    Native,
    /// In the core stack after skb allocation: works on any device, slower.
    Generic,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// A loaded object, its attachments and its maps. Dropping it detaches every
/// program and frees the maps (nothing is pinned yet).
pub struct Dataplane {
    ebpf: Ebpf,
    counters: Arc<Counters>,
    attachments: Vec<(String, AttachMode, XdpLinkId)>,
}

impl Dataplane {
    /// Loads the embedded object and the XDP program into the kernel (this is
    /// where the verifier runs), without attaching anything.
    pub fn load(capacity: Capacity) -> Result<Self, DataplaneError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_USER_POLICY, capacity.users)
            .map_max_entries(MAP_USER_COUNTERS, capacity.users)
            .map_max_entries(MAP_USERS_V4, capacity.addrs)
            .map_max_entries(MAP_USERS_V6, capacity.addrs)
            .map_max_entries(MAP_USER_CIDRS_V4, capacity.cidrs)
            .map_max_entries(MAP_USER_CIDRS_V6, capacity.cidrs)
            .load(EBPF_OBJECT)
            .map_err(DataplaneError::Load)?;
        let xdp: &mut Xdp = program_mut(&mut ebpf, XDP_PROGRAM)?;
        xdp.load().map_err(|source| DataplaneError::Verify {
            program: XDP_PROGRAM,
            source,
        })?;
        let counters = Counters::new(
            maps::take(&mut ebpf, MAP_USER_COUNTERS)?,
            maps::take(&mut ebpf, MAP_GLOBAL_COUNTERS)?,
        )?;
        Ok(Self {
            ebpf,
            counters: Arc::new(counters),
            attachments: Vec::new(),
        })
    }

    /// Writes `policy` into the maps and removes entries it no longer has.
    pub fn apply(&mut self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        maps::write_policy(&mut self.ebpf, policy)
    }

    /// Attaches the XDP program to `iface`: native mode, or generic mode with
    /// a warning when the driver has no XDP support (unless `native_only`).
    pub fn attach_xdp(
        &mut self,
        iface: &str,
        native_only: bool,
    ) -> Result<AttachMode, DataplaneError> {
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, XDP_PROGRAM)?;
        let attach_err = |source| DataplaneError::Attach {
            iface: iface.to_owned(),
            source,
        };
        let (mode, link) = match xdp.attach(iface, XdpMode::Driver) {
            Ok(link) => (AttachMode::Native, link),
            Err(native) if !native_only => {
                tracing::warn!(
                    iface,
                    error = %native,
                    "native XDP attach failed; falling back to generic (skb) mode, which is slower"
                );
                let link = xdp.attach(iface, XdpMode::Skb).map_err(attach_err)?;
                (AttachMode::Generic, link)
            }
            Err(native) => return Err(attach_err(native)),
        };
        self.attachments.push((iface.to_owned(), mode, link));
        Ok(mode)
    }

    /// Detaches every program, in reverse order of attachment.
    pub fn detach_all(&mut self) -> Result<(), DataplaneError> {
        let xdp: &mut Xdp = program_mut(&mut self.ebpf, XDP_PROGRAM)?;
        while let Some((iface, _, link)) = self.attachments.pop() {
            xdp.detach(link)
                .map_err(|source| DataplaneError::Detach { iface, source })?;
        }
        Ok(())
    }

    /// The interfaces programs are attached to, and how.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachMode)> {
        self.attachments.iter().map(|(i, m, _)| (i.as_str(), *m))
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// The loaded XDP program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn xdp(&self) -> Result<&Xdp, DataplaneError> {
        let prog = self
            .ebpf
            .program(XDP_PROGRAM)
            .ok_or(DataplaneError::MissingProgram(XDP_PROGRAM))?;
        prog.try_into().map_err(|source| DataplaneError::Verify {
            program: XDP_PROGRAM,
            source,
        })
    }
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, DataplaneError> {
    ebpf.program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?
        .try_into()
        .map_err(|source| DataplaneError::Verify {
            program: name,
            source,
        })
}
