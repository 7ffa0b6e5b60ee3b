//! xdp-filter (Debian's xdp-tools), the XDP deny-list most teams already
//! have, loaded straight from its object file so `BPF_PROG_TEST_RUN` can
//! time it beside policyd. `xdp-filter load` would put it behind libxdp's
//! dispatcher as an freplace extension, which test runs cannot time on
//! their own; the program and its maps are the same.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::Xdp,
    util::nr_cpus,
};

/// The default policy `allow` (a deny list: what matches a rule is dropped)
/// with every feature compiled in (Ethernet, IPv4, IPv6, TCP and UDP
/// ports): what `xdp-filter load` picks when all filter kinds are used.
/// (xdp-tools' `dny` objects are the opposite, an allow list.)
const OBJECT: &str = "xdpfilt_alw_all.o";
const PROGRAM: &str = "xdpfilt_alw_all";

/// Flags in the value of xdp-filter's maps (its `common_kern_user.h`); the
/// bits above `COUNTER_SHIFT` count matches.
const MAP_FLAG_SRC: u64 = 1 << 0;
const MAP_FLAG_DST: u64 = 1 << 1;
const MAP_FLAG_TCP: u64 = 1 << 2;

/// Its IPv4 table is compiled with room for 10 000 addresses.
pub(crate) const MAX_IPV4: u32 = 10_000;

/// Where Debian installs the object, if xdp-tools is there.
pub(crate) fn object() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/bpf",
        "/usr/lib/bpf",
        "/usr/lib64/bpf",
    ]
    .iter()
    .map(|d| Path::new(d).join(OBJECT))
    .find(|p| p.exists())
}

/// xdp-filter loaded and filled: `addrs` source addresses denied and the
/// destination ports policyd's benchmark policy classifies (25, 6000–6010)
/// denied for TCP.
pub(crate) struct XdpFilter {
    ebpf: Ebpf,
    /// Declared after `ebpf`: the pins go once the maps are closed.
    pins: PinDir,
}

/// A directory in bpffs for the maps' pins, removed on drop (the maps live
/// on while this process holds them).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl XdpFilter {
    pub(crate) fn load(path: &Path, addrs: &[[u8; 4]]) -> Result<Self, String> {
        // Its maps are declared pinned by name: left to the default, they
        // would land in (and be reused from) /sys/fs/bpf itself.
        // One directory per instance: aya would otherwise hand a second
        // instance the first one's maps.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pins = PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/policyd-bench-xdp-filter-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )));
        std::fs::create_dir_all(&pins.0).map_err(|e| format!("{}: {e}", pins.0.display()))?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&pins.0)
            .load_file(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| format!("{PROGRAM} not in {}", path.display()))?
            .try_into()
            .map_err(|e| format!("{PROGRAM}: {e}"))?;
        prog.load().map_err(|e| format!("loading {PROGRAM}: {e}"))?;
        let cpus = nr_cpus().map_err(|(what, e)| format!("{what}: {e}"))?;
        let per_cpu = |v: u64| PerCpuValues::try_from(vec![v; cpus]).map_err(|e| e.to_string());
        {
            let mut ipv4: PerCpuHashMap<_, u32, u64> = ebpf
                .map_mut("filter_ipv4")
                .ok_or("no filter_ipv4 map")?
                .try_into()
                .map_err(|e| format!("filter_ipv4: {e}"))?;
            for a in addrs {
                // The program looks up the address as it is in the packet.
                ipv4.insert(u32::from_ne_bytes(*a), per_cpu(MAP_FLAG_SRC)?, 0)
                    .map_err(|e| format!("filter_ipv4: {e}"))?;
            }
        }
        let mut ports: PerCpuArray<_, u64> = ebpf
            .map_mut("filter_ports")
            .ok_or("no filter_ports map")?
            .try_into()
            .map_err(|e| format!("filter_ports: {e}"))?;
        for port in std::iter::once(25u16).chain(6000..=6010) {
            // The program uses the port as it is in the header (network
            // order) as the array index.
            ports
                .set(
                    u32::from(port.to_be()),
                    per_cpu(MAP_FLAG_DST | MAP_FLAG_TCP)?,
                    0,
                )
                .map_err(|e| format!("filter_ports: {e}"))?;
        }
        Ok(Self { ebpf, pins })
    }

    /// Pins the program, for `ip link set ... xdpdrv pinned PATH`.
    pub(crate) fn pin_program(&mut self) -> Result<PathBuf, String> {
        let path = self.pins.0.join("prog");
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or("no program")?;
        prog.pin(&path)
            .map_err(|e| format!("pinning {PROGRAM}: {e}"))?;
        Ok(path)
    }

    /// Packets the program has dropped, from its own statistics
    /// (`xdp_stats_map`: per action, `{rx_packets, rx_bytes}` per CPU).
    pub(crate) fn dropped(&self) -> u64 {
        const XDP_DROP: u32 = 1;
        let Some(map) = self.ebpf.map("xdp_stats_map") else {
            return 0;
        };
        let Ok(stats) = PerCpuArray::<&MapData, [u64; 2]>::try_from(map) else {
            return 0;
        };
        stats
            .get(&XDP_DROP, 0)
            .map_or(0, |per_cpu| per_cpu.iter().map(|r| r[0]).sum())
    }

    pub(crate) fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .expect("loaded in XdpFilter::load")
    }
}
