//! `status`'s view of destinations learned by name: per domain set, each
//! learned address with the name it was learned for, whose it is and how
//! long it stays (policy-common's learn.rs), read from the pins.

use std::{net::IpAddr, path::Path};

use aya::maps::{Array, HashMap, Map, MapData};
use policy_common::{
    Config, DomainName, LearnedKey4, LearnedKey6, LearnedSets, MAP_LEARNED_NAMES, MAP_LEARNED4,
    MAP_LEARNED6, MAP_SET_NAMES, MAX_SETS, NameSlot, SCOPE_EVERYONE, name_state, v4_mapped,
};
use serde::Serialize;

use super::{name_in, open};
use crate::dataplane::coarse_now_ns;

#[derive(Debug, Serialize)]
pub(super) struct LearnedReport {
    /// Some set names domains.
    pub enabled: bool,
    pub sets: Vec<LearnedSet>,
}

#[derive(Debug, Serialize)]
pub(super) struct LearnedSet {
    pub set: String,
    pub addresses: Vec<LearnedAddress>,
}

#[derive(Debug, Serialize)]
pub(super) struct LearnedAddress {
    pub address: String,
    /// The name it was learned for; null for one an earlier policyd
    /// learned.
    pub name: Option<String>,
    /// Whose lookups it classifies: a user, or `_all` (`scope =
    /// "everyone"`).
    pub user: String,
    pub seconds_left: u64,
}

fn set_names(dir: &Path, generation: u32) -> anyhow::Result<Vec<Option<String>>> {
    let map: Array<MapData, NameSlot> =
        Map::from_map_data(open(dir, MAP_SET_NAMES)?)?.try_into()?;
    (0..MAX_SETS)
        .map(|i| {
            let slot = map.get(&(generation * MAX_SETS + i), 0)?;
            Ok((slot.state == name_state::LIVE)
                .then(|| String::from_utf8_lossy(slot.name()).into_owned()))
        })
        .collect()
}

pub(super) fn learned(
    dir: &Path,
    cfg: &Config,
    generation: u32,
    ids: Option<&crate::policy::Allocation>,
) -> anyhow::Result<LearnedReport> {
    if cfg.present & policy_common::present::NAMES == 0 {
        return Ok(LearnedReport {
            enabled: false,
            sets: Vec::new(),
        });
    }
    let names = set_names(dir, generation)?;
    let book: HashMap<MapData, LearnedKey6, DomainName> =
        Map::from_map_data(open(dir, MAP_LEARNED_NAMES)?)?.try_into()?;
    let v4: HashMap<MapData, LearnedKey4, LearnedSets> =
        Map::from_map_data(open(dir, MAP_LEARNED4)?)?.try_into()?;
    let v6: HashMap<MapData, LearnedKey6, LearnedSets> =
        Map::from_map_data(open(dir, MAP_LEARNED6)?)?.try_into()?;
    let now = coarse_now_ns();
    let mut entries: Vec<(LearnedKey6, LearnedSets)> = v4
        .iter()
        .filter_map(Result::ok)
        .map(|(k, v)| {
            (
                LearnedKey6 {
                    scope: k.scope,
                    addr: v4_mapped(k.addr.to_ne_bytes()),
                },
                v,
            )
        })
        .chain(v6.iter().filter_map(Result::ok))
        .filter(|(_, v)| v.expires_ns > now)
        .collect();
    entries.sort_by_key(|(k, _)| (k.addr, k.scope));
    let mut sets: Vec<LearnedSet> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some(set) = name else { continue };
        let addresses: Vec<LearnedAddress> = entries
            .iter()
            .filter(|(_, v)| v.sets[(generation & 1) as usize] >> i & 1 != 0)
            .map(|(k, v)| {
                let a = std::net::Ipv6Addr::from(k.addr);
                LearnedAddress {
                    address: a
                        .to_ipv4_mapped()
                        .map_or(IpAddr::V6(a), IpAddr::V4)
                        .to_string(),
                    name: book
                        .get(k, 0)
                        .ok()
                        .map(|n| String::from_utf8_lossy(n.bytes()).into_owned()),
                    user: if k.scope == SCOPE_EVERYONE {
                        "_all".to_owned()
                    } else {
                        name_in(ids.map(|i| &i.users), k.scope)
                    },
                    seconds_left: (v.expires_ns - now).div_ceil(1_000_000_000),
                }
            })
            .collect();
        if !addresses.is_empty() {
            sets.push(LearnedSet {
                set: set.clone(),
                addresses,
            });
        }
    }
    Ok(LearnedReport {
        enabled: true,
        sets,
    })
}
