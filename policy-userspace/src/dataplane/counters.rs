//! Reading the per-CPU counters. Owned separately from the rest of the object
//! so the metrics server can read them while the daemon updates policy.

use aya::maps::{HashMap, IterableMap as _, MapData, PerCpuArray, PerCpuHashMap};
use policy_common::{
    BucketKey, CounterKey, Counters as Totals, MAP_BUCKETS, MAP_COUNTERS, MAP_GLOBAL_COUNTERS,
    drop_reason,
};

use super::{DataplaneError, batch};

pub struct Counters {
    per_key: PerCpuHashMap<MapData, CounterKey, Totals>,
    global: PerCpuArray<MapData, u64>,
    /// The token buckets, counted at scrape (the daemon's own handle).
    buckets: Option<HashMap<MapData, BucketKey, u64>>,
    /// What the counters of retired users had counted when they were
    /// deleted, per (class, direction, drop reason), so that sums over
    /// users never go down when a user leaves (see `telemetry::rollup`).
    /// Only of classes still live: a retired class's series end with it.
    retired: std::sync::Mutex<RetiredTotals>,
}

/// Per (class, direction, drop reason), what deleted counters had counted.
pub type RetiredTotals = std::collections::BTreeMap<(u16, u8, u8), Totals>;

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    pub(super) fn new(
        per_key: aya::maps::Map,
        global: aya::maps::Map,
    ) -> Result<Self, DataplaneError> {
        Ok(Self {
            per_key: per_key
                .try_into()
                .map_err(DataplaneError::map(MAP_COUNTERS, "unexpected map type"))?,
            global: global.try_into().map_err(DataplaneError::map(
                MAP_GLOBAL_COUNTERS,
                "unexpected map type",
            ))?,
            buckets: None,
            retired: Default::default(),
        })
    }

    pub(super) fn with_buckets(mut self, buckets: aya::maps::Map) -> Result<Self, DataplaneError> {
        self.buckets = Some(
            buckets
                .try_into()
                .map_err(DataplaneError::map(MAP_BUCKETS, "unexpected map type"))?,
        );
        Ok(self)
    }

    /// Token buckets in the map now (`None` without a handle on it, or
    /// when the map cannot be read).
    pub fn bucket_entries(&self) -> Option<u64> {
        let mut n = 0;
        batch::scan::<BucketKey, u64>(self.buckets.as_ref()?.map(), |_, _| n += 1).ok()?;
        Some(n)
    }

    /// The counters a running (or crashed) daemon pinned under `dir`, for
    /// readers outside the daemon (`policyd top`).
    pub fn from_pins(dir: &std::path::Path) -> Result<Self, DataplaneError> {
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name))
                .map_err(DataplaneError::map(
                    name,
                    format!("open the pin in {}", dir.display()),
                ))
                .and_then(|data| {
                    aya::maps::Map::from_map_data(data)
                        .map_err(DataplaneError::map(name, "unexpected map type"))
                })
        };
        Self::new(open(MAP_COUNTERS)?, open(MAP_GLOBAL_COUNTERS)?)
    }

    /// One key's counters (a drop reason's share of them unless its
    /// `reason` is `RULE`), summed over CPUs; zero if that combination has
    /// seen no traffic.
    pub fn get(&self, key: &CounterKey) -> Result<Totals, DataplaneError> {
        match self.per_key.get(key, 0) {
            Ok(per_cpu) => Ok(sum(per_cpu.iter())),
            Err(aya::maps::MapError::KeyNotFound) => Ok(Totals::default()),
            Err(e) => Err(DataplaneError::map(MAP_COUNTERS, "read")(e)),
        }
    }

    /// All of one (user, class, direction)'s counters, whatever dropped
    /// them: the sum over every [`drop_reason`] (a lookup each).
    pub fn total(&self, user: u32, class: u16, dir: u8) -> Result<Totals, DataplaneError> {
        let mut total = Totals::default();
        for reason in 0..drop_reason::COUNT {
            total.accumulate(&self.get(&CounterKey {
                user,
                class,
                dir,
                reason,
            })?);
        }
        Ok(total)
    }

    /// Every (user, class, direction) that has seen traffic, summed over
    /// CPUs and drop reasons (the key's `reason` is `RULE`).
    pub fn all(&self) -> Result<Vec<(CounterKey, Totals)>, DataplaneError> {
        let mut folded: std::collections::BTreeMap<CounterKey, Totals> = Default::default();
        for (k, c) in self.all_by_reason()? {
            folded
                .entry(CounterKey {
                    reason: drop_reason::RULE,
                    ..k
                })
                .or_default()
                .accumulate(&c);
        }
        Ok(folded.into_iter().collect())
    }

    /// Every key, drop reasons apart, summed over CPUs: listed in batches,
    /// a call per 16 384 entries where a listing key by key took two calls
    /// per entry (what a scrape reads).
    pub fn all_by_reason(&self) -> Result<Vec<(CounterKey, Totals)>, DataplaneError> {
        let mut out = Vec::new();
        batch::scan_per_cpu::<CounterKey, Totals>(self.per_key.map(), |k, per_cpu| {
            out.push((k, sum(per_cpu.iter())));
        })
        .map_err(|source| DataplaneError::Batch {
            map: MAP_COUNTERS,
            what: "list the counters",
            source,
        })?;
        Ok(out)
    }

    /// Every key ([`Self::all_by_reason`]) and what the counters deleted
    /// since start had counted (of classes still live), read together: a
    /// deletion happens wholly before or after, never in between.
    pub fn snapshot(&self) -> Result<(Vec<(CounterKey, Totals)>, RetiredTotals), DataplaneError> {
        let retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        Ok((self.all_by_reason()?, retired.clone()))
    }

    /// Deletes the counters of retired `users` and `classes`, keeping what
    /// the users' counters in live classes had counted in
    /// [`Self::retired`]. Through a second handle on the map: this one is
    /// shared, read-only, with the metrics server.
    pub(super) fn remove_retired(
        &self,
        users: &std::collections::HashSet<u32>,
        classes: &std::collections::HashSet<u32>,
    ) -> Result<(), DataplaneError> {
        use std::os::fd::AsFd as _;
        let what = DataplaneError::map(MAP_COUNTERS, "open a second handle");
        let fd = self
            .per_key
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| {
                what(
                    aya::sys::SyscallError {
                        call: "dup",
                        io_error: e,
                    }
                    .into(),
                )
            })?;
        let map = MapData::from_fd(fd).map_err(DataplaneError::map(MAP_COUNTERS, "reopen"))?;
        let err = |what| {
            move |source| DataplaneError::Batch {
                map: MAP_COUNTERS,
                what,
                source,
            }
        };
        // Held from the listing to the deletion: see `snapshot`.
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::new();
        let mut counted = RetiredTotals::new();
        batch::scan_per_cpu::<CounterKey, Totals>(&map, |k, per_cpu| {
            let class_dead = classes.contains(&u32::from(k.class));
            if class_dead || users.contains(&k.user) {
                keys.push(k);
                if !class_dead {
                    counted
                        .entry((k.class, k.dir, k.reason))
                        .or_default()
                        .accumulate(&sum(per_cpu.iter()));
                }
            }
        })
        .map_err(err("list the counters"))?;
        batch::delete::<CounterKey, Totals>(&map, &keys).map_err(err("remove"))?;
        for (k, c) in counted {
            retired.entry(k).or_default().accumulate(&c);
        }
        Ok(())
    }

    /// A [`policy_common::global_counter`], summed over CPUs.
    pub fn global(&self, index: u32) -> Result<u64, DataplaneError> {
        let per_cpu = self.global.get(&index, 0).map_err(DataplaneError::map(
            MAP_GLOBAL_COUNTERS,
            format!("reading slot {index}"),
        ))?;
        Ok(per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
    }
}

fn sum<'a>(values: impl Iterator<Item = &'a Totals>) -> Totals {
    let mut total = Totals::default();
    for v in values {
        total.accumulate(v);
    }
    total
}
