//! Attaching the programs to interfaces, adopting a previous policyd's
//! pinned links, and undoing what a failed start attached.

use std::{fmt::Display, path::Path};

use aya::{
    Ebpf,
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};

use super::{
    Dataplane, DataplaneError, TC_EGRESS_PROGRAM, TC_INGRESS_PROGRAM, XDP_PROGRAM, maps,
    program_mut,
};

/// Which way an interface faces (see `policy_common::side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Users,
    Network,
}

/// Where ingress is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// XDP, natively or (unless `native_only`) in generic mode: before the
    /// stack allocates a socket buffer, where the driver supports it.
    Xdp { native_only: bool },
    /// TC ingress (TCX): after the socket buffer exists. Where XDP buys
    /// nothing (veth, whose native XDP first converts the sender's skb,
    /// copying it when headroom is short), it costs less.
    Tc,
}

impl Ingress {
    /// The name of its link's pin (see `Pins::link`).
    fn hook(self) -> &'static str {
        match self {
            Self::Xdp { .. } => "xdp",
            Self::Tc => "tc_ingress",
        }
    }
}

/// How the ingress program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP in the driver, before any socket buffer is allocated.
    Native,
    /// XDP in the core stack after skb allocation: works on any device,
    /// slower.
    Generic,
    /// TC ingress.
    Tc,
    /// A previous policyd's pinned link, now running this program.
    Adopted,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "xdp native",
            Self::Generic => "xdp generic",
            Self::Tc => "tc",
            Self::Adopted => "adopted",
        }
    }
}

pub(super) enum Link {
    /// A previous policyd's pinned link, now running this object's program
    /// (the program owns it; its pin stays).
    Adopted,
    /// A link this run made and pinned (its pin keeps it attached when we
    /// exit).
    Pinned(FdLink),
}

/// A link a previous policyd pinned, if there is one at `pin`.
fn pinned_link(pin: &Path) -> Result<Option<FdLink>, DataplaneError> {
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

fn attach_err(iface: &str) -> impl Fn(ProgramError) -> DataplaneError + '_ {
    move |source| DataplaneError::Attach {
        iface: iface.to_owned(),
        source,
    }
}

impl Dataplane {
    /// Attaches the ingress program of `ingress` to `iface` and, unless
    /// `ingress_only`, TC on its egress, and records which way it faces.
    /// XDP uses native mode or falls back to generic mode with a warning
    /// (unless `native_only`). An interface a previous policyd enforces
    /// with the other ingress hook is refused: both would enforce.
    pub fn attach(
        &mut self,
        iface: &str,
        side: Side,
        ingress: Ingress,
        ingress_only: bool,
    ) -> Result<AttachMode, DataplaneError> {
        let other = match ingress {
            Ingress::Xdp { .. } => Ingress::Tc,
            Ingress::Tc => Ingress::Xdp { native_only: false },
        };
        if self.pins.link(iface, other.hook()).exists() {
            return Err(DataplaneError::OtherHook {
                iface: iface.to_owned(),
                pinned: other.hook(),
                wanted: ingress.hook(),
            });
        }
        // Verified here if the load left them out (a no-op otherwise).
        self.load_program(match ingress {
            Ingress::Xdp { .. } => XDP_PROGRAM,
            Ingress::Tc => TC_INGRESS_PROGRAM,
        })?;
        if !ingress_only {
            self.load_program(TC_EGRESS_PROGRAM)?;
        }
        maps::set_iface_side(&mut self.ebpf, iface, side)?;
        let mode = match ingress {
            Ingress::Xdp { native_only } => self.attach_xdp(iface, native_only)?,
            Ingress::Tc => {
                let mode = self.attach_tc(iface, TC_INGRESS_PROGRAM, TcAttachType::Ingress)?;
                if mode == AttachMode::Adopted {
                    mode
                } else {
                    AttachMode::Tc
                }
            }
        };
        if !ingress_only {
            self.attach_tc(iface, TC_EGRESS_PROGRAM, TcAttachType::Egress)?;
        }
        let xdp = matches!(ingress, Ingress::Xdp { .. });
        let ifindex = maps::ifindex(iface)?;
        let live = (xdp && mode == AttachMode::Adopted)
            .then(|| {
                super::xdp_mode::attached(ifindex)
                    .inspect_err(|e| {
                        tracing::debug!(iface, error = %e, "cannot read the interface's XDP mode");
                    })
                    .ok()
            })
            .flatten();
        let code = super::daemon::ingress_code(mode, xdp, iface, live, &self.daemon_before);
        self.daemon.push_iface(super::daemon::iface_record(
            iface,
            ifindex,
            code,
            side,
            !ingress_only,
        ));
        Ok(mode)
    }

    fn attach_xdp(&mut self, iface: &str, native_only: bool) -> Result<AttachMode, DataplaneError> {
        self.adopt_or_pin(
            iface,
            "xdp",
            "5.9",
            // Our program replaces the previous one in one step: the link
            // never leaves the interface.
            |ebpf, link: XdpLink| {
                let xdp: &mut Xdp = program_mut(ebpf, XDP_PROGRAM)?;
                xdp.attach_to_link(link).map_err(attach_err(iface))?;
                Ok(())
            },
            |ebpf| {
                let xdp: &mut Xdp = program_mut(ebpf, XDP_PROGRAM)?;
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
                            xdp.attach(iface, XdpMode::Skb)
                                .map_err(attach_err(iface))?,
                        )
                    }
                    Err(native) => return Err(attach_err(iface)(native)),
                };
                Ok((xdp.take_link(id).map_err(attach_err(iface))?, mode))
            },
        )
    }

    /// Attaches TC program `program` on `iface` at `at` (ingress or
    /// egress).
    fn attach_tc(
        &mut self,
        iface: &str,
        program: &'static str,
        at: TcAttachType,
    ) -> Result<AttachMode, DataplaneError> {
        let hook = match at {
            TcAttachType::Ingress => "tc_ingress",
            _ => "tc_egress",
        };
        self.adopt_or_pin(
            iface,
            hook,
            "6.6",
            |ebpf, link: SchedClassifierLink| {
                let tc: &mut SchedClassifier = program_mut(ebpf, program)?;
                tc.attach_to_link(link).map_err(attach_err(iface))?;
                Ok(())
            },
            |ebpf| {
                let tc: &mut SchedClassifier = program_mut(ebpf, program)?;
                // TCX links (kernel >= 6.6) need no clsact qdisc.
                let id = tc.attach(iface, at).map_err(attach_err(iface))?;
                Ok((tc.take_link(id).map_err(attach_err(iface))?, AttachMode::Tc))
            },
        )
    }

    /// Adopts the link a previous policyd pinned for `hook` on `iface`
    /// (`adopt` runs our program in it), or makes one (`attach`) and pins
    /// it, so that the link outlives us: a crash leaves enforcement in
    /// force. Links are BPF links from kernel `kernel` on.
    fn adopt_or_pin<L>(
        &mut self,
        iface: &str,
        hook: &'static str,
        kernel: &str,
        adopt: impl FnOnce(&mut Ebpf, L) -> Result<(), DataplaneError>,
        attach: impl FnOnce(&mut Ebpf) -> Result<(L, AttachMode), DataplaneError>,
    ) -> Result<AttachMode, DataplaneError>
    where
        L: TryFrom<FdLink>,
        L::Error: Display,
        FdLink: TryFrom<L>,
        <FdLink as TryFrom<L>>::Error: Display,
    {
        let pin = self.pins.link(iface, hook);
        let adopt_err = |message: String| DataplaneError::Adopt {
            path: pin.clone(),
            message,
        };
        if let Some(link) = pinned_link(&pin)? {
            let link = L::try_from(link).map_err(|e| adopt_err(e.to_string()))?;
            adopt(&mut self.ebpf, link)?;
            self.links.push((iface.to_owned(), hook, Link::Adopted));
            return Ok(AttachMode::Adopted);
        }
        let (link, mode) = attach(&mut self.ebpf)?;
        let link = FdLink::try_from(link).map_err(|e| {
            adopt_err(format!(
                "the attachment is not a BPF link (kernel < {kernel}?): {e}"
            ))
        })?;
        let link = link
            .pin(&pin)
            .map(FdLink::from)
            .map_err(|e| adopt_err(format!("cannot pin the link: {e}")))?;
        self.links
            .push((iface.to_owned(), hook, Link::Pinned(link)));
        Ok(mode)
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
}
