//! The elephant sketch from userspace: its ageing, its reset, and how full
//! it is. The kernel adds to it (policy-ebpf's elephant.rs); policy-common's
//! sketch.rs has the layout and the error bound.

use std::{os::fd::AsFd as _, sync::Mutex};

use aya::{
    Ebpf,
    maps::{Map, MapData, MapError},
};
use policy_common::{MAP_FLOW_SKETCH, SKETCH_ROWS};

use super::{DataplaneError, batch};

/// A handle on the sketch of its own, so a task beside the daemon's main
/// loop can age it.
pub struct FlowSketch {
    /// One rewrite at a time (ageing, a reset).
    cells: Mutex<MapData>,
}

impl FlowSketch {
    /// A second handle on the loaded sketch; also the width it really has
    /// (an adopted pin keeps the size it was made with).
    pub(super) fn open(ebpf: &Ebpf) -> Result<(Self, u32), DataplaneError> {
        let err = |what: &'static str| DataplaneError::map(MAP_FLOW_SKETCH, what);
        let Some(Map::Array(data)) = ebpf.map(MAP_FLOW_SKETCH) else {
            return Err(DataplaneError::MissingMap(MAP_FLOW_SKETCH));
        };
        let width = data.info().map_err(err("read its info"))?.max_entries() / SKETCH_ROWS;
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DataplaneError::Map {
                map: MAP_FLOW_SKETCH,
                what: "duplicate its fd".to_owned(),
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
        let data = MapData::from_fd(fd).map_err(err("reopen"))?;
        Ok((
            Self {
                cells: Mutex::new(data),
            },
            width,
        ))
    }

    /// Halves every cell: what a flow carried an interval ago counts half,
    /// so ended flows fade out and the sketch does not fill up. A cell the
    /// kernel adds to between our read and our write loses that add (the
    /// estimate can only fall short, delaying a promotion). Writes only the
    /// cells that change.
    pub fn decay(&self) -> Result<(), DataplaneError> {
        self.rewrite(|v| v / 2)
    }

    /// Empties every cell.
    pub fn clear(&self) -> Result<(), DataplaneError> {
        self.rewrite(|_| 0)
    }

    /// Read and written in batches (a call per 16 384 cells, where a call
    /// per cell made ageing 131 072 reads every minute with elephant
    /// detection off, when every cell is zero).
    fn rewrite(&self, f: impl Fn(u64) -> u64) -> Result<(), DataplaneError> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed: Vec<(u32, u64)> = Vec::new();
        batch::scan::<u32, u64>(&cells, |i, v| {
            let new = f(v);
            if new != v {
                changed.push((i, new));
            }
        })
        .map_err(batch_error("read the cells"))?;
        batch::update(&cells, &changed).map_err(batch_error("write the cells"))
    }

    /// Cells in use and cells in all.
    pub fn occupancy(&self) -> Result<(u64, u64), DataplaneError> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let (mut used, mut all) = (0, 0);
        batch::scan::<u32, u64>(&cells, |_, v| {
            all += 1;
            used += u64::from(v != 0);
        })
        .map_err(batch_error("read the cells"))?;
        Ok((used, all))
    }
}

fn batch_error(what: &'static str) -> impl FnOnce(batch::BatchError) -> DataplaneError {
    move |source| DataplaneError::Batch {
        map: MAP_FLOW_SKETCH,
        what,
        source,
    }
}
