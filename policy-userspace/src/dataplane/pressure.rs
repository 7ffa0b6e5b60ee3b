//! How full the maps that traffic fills are (the policy tables' fill is
//! known from the compiled policy, see `Capacity::fill`): read from the
//! pins, so the daemon's metrics and `policyd status` read the same.

use std::path::Path;

use aya::{
    Pod,
    maps::{MapData, MapInfo},
};
use policy_common::{MAP_CONN_FLOWS, MAP_FLOW_SKETCH, MAP_UNID_BUCKETS, UnidSlot};

use super::{DataplaneError, batch};

/// A map's name, the entries in use and the entries it can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

/// Cells that are not all zero in a pinned array (every cell of an array
/// exists; a zero one holds nothing), in batches.
pub fn array_in_use<V: Pod + Default + PartialEq>(
    dir: &Path,
    map: &'static str,
) -> Result<Fill, DataplaneError> {
    let data =
        MapData::from_pin(dir.join(map)).map_err(DataplaneError::map(map, "open the pin"))?;
    let capacity = MapInfo::from_pin(dir.join(map))
        .map_err(DataplaneError::map(map, "read its info"))?
        .max_entries();
    let mut entries = 0;
    batch::scan::<u32, V>(&data, |_, v| entries += u64::from(v != V::default())).map_err(
        |source| DataplaneError::Batch {
            map,
            what: "read the cells",
            source,
        },
    )?;
    Ok(Fill {
        map,
        entries,
        capacity: u64::from(capacity),
    })
}

/// The arrays traffic fills, whose slots are shared or can run out: the
/// elephant sketch, the connection-rate flow table and the unidentified
/// senders' buckets (64 KiB to a few MiB each: a batch read per 16 384
/// cells).
pub fn traffic_fill(dir: &Path) -> Result<Vec<Fill>, DataplaneError> {
    Ok(vec![
        array_in_use::<u64>(dir, MAP_FLOW_SKETCH)?,
        array_in_use::<u64>(dir, MAP_CONN_FLOWS)?,
        array_in_use::<UnidSlot>(dir, MAP_UNID_BUCKETS)?,
    ])
}
