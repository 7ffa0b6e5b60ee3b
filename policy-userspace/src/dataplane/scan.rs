//! Scan detection's state from userspace: who is in quarantine (metrics,
//! `status`), and `policyd release`. The kernel keeps it (policy-ebpf's
//! scan.rs); policy-common's scan.rs has the layout and the estimator.

use std::os::fd::AsFd as _;

use aya::{
    Ebpf,
    maps::{Array, Map, MapData, MapError},
};
use policy_common::{MAP_SCAN, ScanState, UserId, reason};

use super::{DataplaneError, batch};

/// A handle on the scan table of its own (the daemon's metrics, or a
/// command reading the pins).
pub struct ScanTable(Map);

impl std::fmt::Debug for ScanTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanTable").finish_non_exhaustive()
    }
}

/// The kernel's coarse monotonic clock, which the quarantines' ends are in
/// (`bpf_ktime_get_coarse_ns` reads the same clock, CLOCK_MONOTONIC_COARSE).
pub fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// One user in quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantine {
    pub user: UserId,
    /// Nanoseconds left.
    pub left_ns: u64,
    /// A `policy_common::reason` code.
    pub reason: u32,
}

impl Quarantine {
    pub fn reason_name(&self) -> &'static str {
        reason_name(self.reason)
    }
}

pub fn reason_name(code: u32) -> &'static str {
    match code {
        reason::HOSTS => "hosts",
        reason::PORTS => "ports",
        _ => "other",
    }
}

impl ScanTable {
    pub(super) fn open(ebpf: &Ebpf) -> Result<Self, DataplaneError> {
        let Some(Map::Array(data)) = ebpf.map(MAP_SCAN) else {
            return Err(DataplaneError::MissingMap(MAP_SCAN));
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DataplaneError::Map {
                map: MAP_SCAN,
                what: "duplicate its fd".to_owned(),
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
        MapData::from_fd(fd)
            .map(|d| Self(Map::Array(d)))
            .map_err(DataplaneError::map(MAP_SCAN, "reopen"))
    }

    /// The table a running (or stopped) daemon pinned under `dir`.
    pub fn from_pins(dir: &std::path::Path) -> Result<Self, DataplaneError> {
        MapData::from_pin(dir.join(MAP_SCAN))
            .map(|d| Self(Map::Array(d)))
            .map_err(DataplaneError::map(
                MAP_SCAN,
                format!("open the pin in {}", dir.display()),
            ))
    }

    /// Users in quarantine now, by id.
    pub fn quarantined(&self) -> Result<Vec<Quarantine>, DataplaneError> {
        let now = coarse_now_ns();
        let mut out = Vec::new();
        let Map::Array(data) = &self.0 else {
            return Err(DataplaneError::MissingMap(MAP_SCAN));
        };
        batch::scan::<u32, ScanState>(data, |user, s| {
            if s.until_ns > now {
                out.push(Quarantine {
                    user,
                    left_ns: s.until_ns - now,
                    reason: s.reason,
                });
            }
        })
        .map_err(|source| DataplaneError::Batch {
            map: MAP_SCAN,
            what: "read it",
            source,
        })?;
        out.sort_unstable_by_key(|q| q.user);
        Ok(out)
    }

    /// Ends `user`'s quarantine now (and forgets their window, so the
    /// flows that put them there do not put them back at once); false when
    /// they were not in one.
    pub fn release(&mut self, user: UserId) -> Result<bool, DataplaneError> {
        let mut array: Array<&mut MapData, ScanState> = Array::try_from(&mut self.0)
            .map_err(DataplaneError::map(MAP_SCAN, "unexpected map type"))?;
        if user >= array.len() {
            return Ok(false);
        }
        let s = array.get(&user, 0).map_err(DataplaneError::map(
            MAP_SCAN,
            format!("read user id {user}"),
        ))?;
        if s.until_ns <= coarse_now_ns() {
            return Ok(false);
        }
        let released = ScanState {
            reason: reason::RELEASED,
            ..ScanState::default()
        };
        array.set(user, released, 0).map_err(DataplaneError::map(
            MAP_SCAN,
            format!("write user id {user}"),
        ))?;
        Ok(true)
    }
}
