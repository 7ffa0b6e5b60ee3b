//! The daemon's record of itself in the pins (policy-common's daemon.rs):
//! written when it starts enforcing, on every reload that changes the
//! policy and on a clean stop, and read by `policyd status`. The profile
//! names of each generation live beside it.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, Map, MapData},
};
use policy_common::{
    DAEMON_IFACE_NETWORK, DAEMON_IFACE_USERS, DaemonIface, DaemonInfo, MAP_DAEMON,
    MAP_PROFILE_NAMES, MAP_SET_NAMES, MAX_PROFILES, MAX_SETS, NameSlot, daemon_state, ingress_mode,
    name_state,
};

use super::{AttachMode, Dataplane, DataplaneError, Side, maps};

/// Unix time in ns (0 before 1970, which no clock here reads).
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The record in the object's (possibly adopted) map.
pub(super) fn read(ebpf: &Ebpf) -> Result<DaemonInfo, DataplaneError> {
    let map: Array<&MapData, DaemonInfo> = Array::try_from(
        ebpf.map(MAP_DAEMON)
            .ok_or(DataplaneError::MissingMap(MAP_DAEMON))?,
    )
    .map_err(DataplaneError::map(MAP_DAEMON, "unexpected map type"))?;
    map.get(&0, 0)
        .map_err(DataplaneError::map(MAP_DAEMON, "read the record"))
}

fn write(ebpf: &mut Ebpf, info: &DaemonInfo) -> Result<(), DataplaneError> {
    let mut map: Array<&mut MapData, DaemonInfo> = maps::map_mut(ebpf, MAP_DAEMON)?;
    map.set(0, *info, 0)
        .map_err(DataplaneError::map(MAP_DAEMON, "write the record"))
}

/// The record a daemon left under `dir`, for readers outside it: `None`
/// when the pins predate the record.
pub fn from_pins(dir: &Path) -> Result<Option<DaemonInfo>, DataplaneError> {
    let pin = dir.join(MAP_DAEMON);
    if !pin.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&pin).map_err(DataplaneError::map(
        MAP_DAEMON,
        format!("open the pin in {}", dir.display()),
    ))?;
    let map: Array<MapData, DaemonInfo> = Map::Array(data)
        .try_into()
        .map_err(DataplaneError::map(MAP_DAEMON, "unexpected map type"))?;
    let info = map
        .get(&0, 0)
        .map_err(DataplaneError::map(MAP_DAEMON, "read the record"))?;
    Ok((info.state != daemon_state::NONE).then_some(info))
}

/// The profile names generation `generation` holds, by profile index
/// (empty where a slot holds none): `None` when the pins predate them.
pub fn profile_names_from_pins(
    dir: &Path,
    generation: u32,
) -> Result<Option<Vec<String>>, DataplaneError> {
    let pin = dir.join(MAP_PROFILE_NAMES);
    if !pin.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&pin).map_err(DataplaneError::map(
        MAP_PROFILE_NAMES,
        format!("open the pin in {}", dir.display()),
    ))?;
    let map: Array<MapData, NameSlot> = Map::Array(data).try_into().map_err(
        DataplaneError::map(MAP_PROFILE_NAMES, "unexpected map type"),
    )?;
    let mut names = Vec::with_capacity(MAX_PROFILES);
    for p in 0..MAX_PROFILES as u32 {
        let slot = map
            .get(&(generation * MAX_PROFILES as u32 + p), 0)
            .map_err(DataplaneError::map(MAP_PROFILE_NAMES, "read a name"))?;
        names.push(if slot.state == name_state::LIVE {
            String::from_utf8_lossy(slot.name()).into_owned()
        } else {
            String::new()
        });
    }
    Ok((names.iter().any(|n| !n.is_empty())).then_some(names))
}

/// Writes generation `generation`'s profile names (before it is switched
/// in, like the rest of it).
pub(super) fn write_profile_names(
    ebpf: &mut Ebpf,
    generation: u32,
    profiles: &[String],
) -> Result<(), DataplaneError> {
    let mut map: Array<&mut MapData, NameSlot> = maps::map_mut(ebpf, MAP_PROFILE_NAMES)?;
    for p in 0..MAX_PROFILES {
        let slot = profiles.get(p).map_or_else(NameSlot::default, |n| {
            NameSlot::new(name_state::LIVE, n.as_bytes())
        });
        let index = generation * MAX_PROFILES as u32 + p as u32;
        map.set(index, slot, 0).map_err(DataplaneError::map(
            MAP_PROFILE_NAMES,
            format!("index {index}"),
        ))?;
    }
    Ok(())
}

/// Generation `generation`'s set names by index, as pinned (`None` for a
/// free slot, and for every slot of pins an older policyd made).
pub(super) fn read_set_names(
    ebpf: &Ebpf,
    generation: u32,
) -> Result<Vec<Option<String>>, DataplaneError> {
    let map: Array<&MapData, NameSlot> = ebpf
        .map(MAP_SET_NAMES)
        .ok_or(DataplaneError::MissingMap(MAP_SET_NAMES))?
        .try_into()
        .map_err(DataplaneError::map(MAP_SET_NAMES, "unexpected map type"))?;
    (0..MAX_SETS)
        .map(|i| {
            let index = generation * MAX_SETS + i;
            let slot = map
                .get(&index, 0)
                .map_err(DataplaneError::map(MAP_SET_NAMES, format!("index {index}")))?;
            Ok((slot.state == name_state::LIVE)
                .then(|| String::from_utf8_lossy(slot.name()).into_owned()))
        })
        .collect()
}

/// Writes generation `generation`'s set names, for `policyd status`.
pub(super) fn write_set_names(
    ebpf: &mut Ebpf,
    generation: u32,
    sets: &[String],
) -> Result<(), DataplaneError> {
    let mut map: Array<&mut MapData, NameSlot> = maps::map_mut(ebpf, MAP_SET_NAMES)?;
    for i in 0..MAX_SETS {
        let slot = sets.get(i as usize).map_or_else(NameSlot::default, |n| {
            NameSlot::new(name_state::LIVE, n.as_bytes())
        });
        let index = generation * MAX_SETS + i;
        map.set(index, slot, 0)
            .map_err(DataplaneError::map(MAP_SET_NAMES, format!("index {index}")))?;
    }
    Ok(())
}

/// The ingress code of an attachment. For an adopted XDP link, the mode
/// is what the interface reports (`live`, an IFLA_XDP_ATTACHED code, see
/// xdp_mode.rs), else what the previous daemon recorded for it.
pub(super) fn ingress_code(
    mode: AttachMode,
    xdp: bool,
    iface: &str,
    live: Option<u8>,
    before: &DaemonInfo,
) -> u32 {
    match mode {
        AttachMode::Native => ingress_mode::XDP_NATIVE,
        AttachMode::Generic => ingress_mode::XDP_GENERIC,
        AttachMode::Tc => ingress_mode::TC,
        AttachMode::Adopted if xdp && live == Some(super::xdp_mode::XDP_ATTACHED_DRV) => {
            ingress_mode::XDP_NATIVE
        }
        AttachMode::Adopted if xdp && live == Some(super::xdp_mode::XDP_ATTACHED_SKB) => {
            ingress_mode::XDP_GENERIC
        }
        AttachMode::Adopted => before
            .ifaces()
            .iter()
            .find(|i| i.name() == iface.as_bytes())
            .map(|i| i.ingress)
            .filter(|code| {
                // The record must agree with the hook the pin is of.
                let was_xdp = matches!(
                    *code,
                    ingress_mode::XDP_NATIVE | ingress_mode::XDP_GENERIC | ingress_mode::XDP
                );
                *code != ingress_mode::UNKNOWN && was_xdp == xdp
            })
            .unwrap_or(if xdp {
                ingress_mode::XDP
            } else {
                ingress_mode::TC
            }),
    }
}

pub(super) fn iface_record(
    iface: &str,
    ifindex: u32,
    ingress: u32,
    side: Side,
    egress: bool,
) -> DaemonIface {
    let side = match side {
        Side::Users => DAEMON_IFACE_USERS,
        Side::Network => DAEMON_IFACE_NETWORK,
    };
    DaemonIface::new(iface.as_bytes(), ifindex, ingress, side, egress)
}

impl Dataplane {
    /// Records this process as the daemon serving the pins, with the
    /// interfaces attached so far: call once enforcing.
    pub fn record_serving(&mut self) -> Result<(), DataplaneError> {
        let now = unix_now_ns();
        self.daemon.state = daemon_state::SERVING;
        self.daemon.pid = std::process::id();
        self.daemon.started_ns = now;
        self.daemon.stopped_ns = 0;
        self.daemon.applied_ns = now;
        self.daemon.reloads = 0;
        self.daemon
            .set_version(env!("CARGO_PKG_VERSION").as_bytes());
        write(&mut self.ebpf, &self.daemon)
    }

    /// Records a reload that changed the policy in force.
    pub fn record_reload(&mut self) -> Result<(), DataplaneError> {
        self.daemon.applied_ns = unix_now_ns();
        self.daemon.reloads = self.daemon.reloads.saturating_add(1);
        write(&mut self.ebpf, &self.daemon)
    }

    /// Records a clean stop (what `status` tells from a killed daemon).
    pub fn record_stopped(&mut self) -> Result<(), DataplaneError> {
        self.daemon.state = daemon_state::STOPPED;
        self.daemon.stopped_ns = unix_now_ns();
        write(&mut self.ebpf, &self.daemon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adopted_link_keeps_the_mode_recorded_for_its_interface() {
        let mut before = DaemonInfo::default();
        before.push_iface(iface_record(
            "gw0",
            4,
            ingress_mode::XDP_GENERIC,
            Side::Users,
            true,
        ));
        let code = |iface, xdp| ingress_code(AttachMode::Adopted, xdp, iface, None, &before);
        assert_eq!(code("gw0", true), ingress_mode::XDP_GENERIC);
        // Nothing recorded: the hook is known, the XDP mode is not.
        assert_eq!(code("gw1", true), ingress_mode::XDP);
        // A record of another hook than the pin's is not believed.
        assert_eq!(code("gw0", false), ingress_mode::TC);
        // What the interface reports wins over the record.
        let live = |v| ingress_code(AttachMode::Adopted, true, "gw0", Some(v), &before);
        assert_eq!(live(1), ingress_mode::XDP_NATIVE);
        assert_eq!(live(0), ingress_mode::XDP_GENERIC);
        assert_eq!(
            ingress_code(AttachMode::Native, true, "gw1", None, &before),
            ingress_mode::XDP_NATIVE
        );
    }
}
