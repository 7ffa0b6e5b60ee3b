//! Pins an older policyd left with another layout: refused by name before
//! the object is loaded, where aya would hand the program a map of the
//! wrong type (and the verifier would refuse it with a message about
//! registers, or, worse, accept it).

use std::path::Path;

use aya::maps::{MapInfo, MapType};
use policy_common::{
    Config, MAP_ACTIONS, MAP_CLASS_NAMES, MAP_CONFIG, MAP_EVENT_LIMITER, MAP_IFACES, MAP_USER_NAMES,
};

use super::DataplaneError;

/// Maps this version no longer has: their pin means the older layout.
const RETIRED: &[&str] = &["FLOWS"];

/// Maps whose type changed, with the type they have now.
const RETYPED: &[(&str, MapType)] = &[
    (MAP_IFACES, MapType::Array),
    (MAP_EVENT_LIMITER, MapType::Array),
    (MAP_ACTIONS, MapType::Array),
    (MAP_USER_NAMES, MapType::Array),
    (MAP_CLASS_NAMES, MapType::Array),
];

/// Maps whose value grew, with the size it has now: the configuration
/// took the quota fields (104 to 112 bytes). A program handed the old map
/// would be refused by the verifier for reading past its values.
const RESIZED: &[(&str, usize)] = &[(MAP_CONFIG, size_of::<Config>())];

/// Refuses a pin directory holding maps of an older layout.
pub(super) fn check(dir: &Path) -> Result<(), DataplaneError> {
    let old = |map: &str| DataplaneError::OldLayout {
        dir: dir.to_owned(),
        map: map.to_owned(),
    };
    if let Some(name) = RETIRED.iter().find(|n| dir.join(n).exists()) {
        return Err(old(name));
    }
    for (name, now) in RETYPED {
        let pin = dir.join(name);
        if !pin.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&pin).map_err(|e| DataplaneError::Map {
            map: name,
            what: "read the pinned map's type".to_owned(),
            source: e,
        })?;
        if info.map_type().ok() != Some(*now) {
            return Err(old(name));
        }
    }
    for (name, size) in RESIZED {
        let pin = dir.join(name);
        if !pin.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&pin).map_err(|e| DataplaneError::Map {
            map: name,
            what: "read the pinned map's value size".to_owned(),
            source: e,
        })?;
        if info.value_size() as usize != *size {
            return Err(old(name));
        }
    }
    Ok(())
}
