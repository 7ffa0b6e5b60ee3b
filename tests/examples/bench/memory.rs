//! Kernel memory held by BPF maps, as the kernel reports it.

/// The sum of `memlock` over every BPF map this process holds a file
/// descriptor to. Since Linux 6.4 the figure comes from each map type's
/// `map_mem_usage`, so it follows what hash and LPM maps really allocate
/// rather than a worst-case estimate.
pub fn maps_memlock() -> u64 {
    let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    fds.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|info| info.lines().any(|l| l.starts_with("map_type:")))
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}
