//! Byte quotas from userspace (policy-common's quota.rs): the slots
//! written from the policy with their usage carried over, each period
//! started when its reset time comes, the usage read for `status` and
//! metrics. The kernel counts (policy-ebpf's quota.rs).
//!
//! A user's quotas sit at `user * stride + i`, in the policy's order. A
//! slot keeps its usage across reloads and restarts (the map is pinned)
//! while the user has a quota of the same class at that rank; its period
//! start says which period the usage is of, so a daemon that was down
//! over a reset time starts the new period when it comes back.

use std::os::fd::AsFd as _;

use aya::{
    Ebpf,
    maps::{Array, Map, MapData, MapError},
};
use jiff::Timestamp;
use policy_common::{MAP_QUOTAS, QuotaSlot, UserId};

use super::{DataplaneError, batch};
use crate::policy::{CompiledPolicy, CompiledQuota};

/// One quota's usage, as `status` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUse {
    pub user: UserId,
    /// The class id, or `policy_common::QUOTA_ALL_CLASSES`.
    pub class: u32,
    pub used: u64,
    pub limit: u64,
    /// When the period began (Unix seconds; 0 until the daemon starts it).
    pub period_start: u64,
}

impl QuotaUse {
    pub fn exhausted(&self) -> bool {
        self.used >= self.limit
    }
}

/// A handle on the quota table, with the policy's quotas laid out on it.
pub struct QuotaTable {
    map: Map,
    /// Slots per user.
    stride: u32,
    /// (slot index, its quota, the period start last seen in the slot).
    layout: Vec<(u32, CompiledQuota, Option<u64>)>,
}

impl std::fmt::Debug for QuotaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaTable")
            .field("stride", &self.stride)
            .field("slots", &self.layout.len())
            .finish_non_exhaustive()
    }
}

fn map_err(what: impl Into<String>) -> impl FnOnce(MapError) -> DataplaneError {
    DataplaneError::map(MAP_QUOTAS, what)
}

impl QuotaTable {
    pub(super) fn open(ebpf: &Ebpf, stride: u32) -> Result<Self, DataplaneError> {
        let Some(Map::Array(data)) = ebpf.map(MAP_QUOTAS) else {
            return Err(DataplaneError::MissingMap(MAP_QUOTAS));
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DataplaneError::Map {
                map: MAP_QUOTAS,
                what: "duplicate its fd".to_owned(),
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
        let data = MapData::from_fd(fd).map_err(map_err("reopen"))?;
        Ok(Self {
            map: Map::Array(data),
            stride,
            layout: Vec::new(),
        })
    }

    /// The table a running (or stopped) daemon pinned under `dir`, to read.
    pub fn from_pins(dir: &std::path::Path) -> Result<Self, DataplaneError> {
        let data = MapData::from_pin(dir.join(MAP_QUOTAS))
            .map_err(map_err(format!("open the pin in {}", dir.display())))?;
        Ok(Self {
            map: Map::Array(data),
            stride: 0,
            layout: Vec::new(),
        })
    }

    fn array(&mut self) -> Result<Array<&mut MapData, QuotaSlot>, DataplaneError> {
        Array::try_from(&mut self.map).map_err(map_err("unexpected map type"))
    }

    fn read_all(&self) -> Result<Vec<(u32, QuotaSlot)>, DataplaneError> {
        let Map::Array(data) = &self.map else {
            return Err(DataplaneError::MissingMap(MAP_QUOTAS));
        };
        let mut out = Vec::new();
        batch::scan::<u32, QuotaSlot>(data, |i, s| out.push((i, s))).map_err(|source| {
            DataplaneError::Batch {
                map: MAP_QUOTAS,
                what: "read it",
                source,
            }
        })?;
        Ok(out)
    }

    /// Lays `policy`'s quotas on the table: each user's at their slots in
    /// the policy's order. A slot that held a quota of the same class keeps
    /// its usage and period; every other slot is written fresh (period 0:
    /// [`Self::roll`] starts it), and slots no quota has any more are
    /// cleared. Only slots that change are written: the kernel's adds to a
    /// slot being written in the same microsecond would be lost.
    pub(super) fn write(&mut self, policy: &CompiledPolicy) -> Result<(), DataplaneError> {
        let stride = self.stride;
        let old = self.read_all()?;
        let mut wanted: Vec<Option<QuotaSlot>> = vec![None; old.len()];
        let mut layout = Vec::with_capacity(policy.quotas.len());
        let mut rank: std::collections::HashMap<UserId, u32> = std::collections::HashMap::new();
        for q in &policy.quotas {
            let r = rank.entry(q.user).or_default();
            let index = q.user.saturating_mul(stride).saturating_add(*r);
            *r += 1;
            let Some(before) = old.get(index as usize).map(|(_, s)| *s) else {
                continue;
            };
            let keep = before.limit != 0 && before.class == q.class;
            let slot = QuotaSlot {
                used: if keep { before.used } else { 0 },
                limit: q.bytes,
                period_start: if keep { before.period_start } else { 0 },
                class: q.class,
                user: q.user,
                exhausted: q.exhausted,
            };
            wanted[index as usize] = Some(slot);
            layout.push((index, q.clone(), None));
        }
        let mut array = self.array()?;
        for ((i, before), want) in old.iter().zip(wanted) {
            let want = want.unwrap_or_default();
            if *before != want {
                array
                    .set(*i, want, 0)
                    .map_err(map_err(format!("write slot {i}")))?;
            }
        }
        self.layout = layout;
        Ok(())
    }

    /// Starts the new period of every slot whose period has ended by `now`
    /// (in the quota's zone): its usage goes back to 0. Returns how many
    /// it started. Reads a slot only when its period may have changed.
    pub fn roll(&mut self, now: Timestamp) -> Result<usize, DataplaneError> {
        let mut started = 0;
        let mut todo = Vec::new();
        for (n, (_, q, seen)) in self.layout.iter().enumerate() {
            let start = u64::try_from(q.period_start(now, &q.timezone)).unwrap_or(0);
            if *seen != Some(start) {
                todo.push((n, self.layout[n].0, start));
            }
        }
        if todo.is_empty() {
            return Ok(0);
        }
        let mut array = Array::<&mut MapData, QuotaSlot>::try_from(&mut self.map)
            .map_err(map_err("unexpected map type"))?;
        let mut seen = Vec::with_capacity(todo.len());
        for (n, index, start) in todo {
            let slot = array
                .get(&index, 0)
                .map_err(map_err(format!("read slot {index}")))?;
            if slot.period_start != start {
                // A slot written fresh (period 0) counts from this period
                // already: it keeps what it counted.
                let fresh = QuotaSlot {
                    used: if slot.period_start == 0 { slot.used } else { 0 },
                    period_start: start,
                    ..slot
                };
                array
                    .set(index, fresh, 0)
                    .map_err(map_err(format!("write slot {index}")))?;
                started += 1;
            }
            seen.push((n, start));
        }
        for (n, start) in seen {
            self.layout[n].2 = Some(start);
        }
        Ok(started)
    }

    /// Every quota in use, by user and slot.
    pub fn usage(&self) -> Result<Vec<QuotaUse>, DataplaneError> {
        Ok(self
            .read_all()?
            .into_iter()
            .filter(|(_, s)| s.limit != 0)
            .map(|(_, s)| QuotaUse {
                user: s.user,
                class: s.class,
                used: s.used,
                limit: s.limit,
                period_start: s.period_start,
            })
            .collect())
    }
}
