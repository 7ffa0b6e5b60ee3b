//! Kernel memory held by BPF maps, as the kernel reports it.

use aya::maps::MapInfo;

/// One map this process holds: its name, capacity and memory.
pub(crate) struct MapMemory {
    pub name: String,
    pub max_entries: u64,
    pub memlock: u64,
}

/// Every BPF map this process holds a file descriptor to, once each (the
/// dataplane keeps a second descriptor to some), from
/// `/proc/self/fdinfo`. Since Linux 6.4 `memlock` comes from each map
/// type's `map_mem_usage`, so it follows what hash and LPM maps really
/// allocate rather than a worst-case estimate.
pub(crate) fn maps() -> Vec<MapMemory> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
        return Vec::new();
    };
    let field = |info: &str, name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let mut seen = std::collections::HashSet::new();
    fds.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|info| info.lines().any(|l| l.starts_with("map_type:")))
        .filter(|info| seen.insert(field(info, "map_id:")))
        .map(|info| {
            let id = field(&info, "map_id:").unwrap_or(0);
            let name = u32::try_from(id)
                .ok()
                .and_then(|id| MapInfo::from_id(id).ok())
                .and_then(|m| m.name_as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("id {id}"));
            MapMemory {
                name,
                max_entries: field(&info, "max_entries:").unwrap_or(0),
                memlock: field(&info, "memlock:").unwrap_or(0),
            }
        })
        .collect()
}

/// The sum of `memlock` over every map this process holds.
pub(crate) fn maps_memlock() -> u64 {
    maps().iter().map(|m| m.memlock).sum()
}
