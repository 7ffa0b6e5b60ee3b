//! The oldest kernel policyd runs on, checked before anything is loaded, so
//! that a kernel without a feature the programs need is refused with the
//! feature's name rather than with a verifier log or an attach error.
//!
//! The floor is Linux 6.6, for TCX links: TC ingress and egress are BPF
//! links there, which policyd pins so that enforcement outlives it. aya
//! picks TCX over a netlink filter by the kernel's version, so the version
//! is what decides; for the features that can be compiled out of a new
//! enough kernel, a cheap probe (a map created, or a two-instruction
//! program loaded, then closed) says whether this one has them.

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
    util::KernelVersion,
};

/// A kernel feature policyd needs, and the release that brought it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    pub what: &'static str,
    pub since: (u8, u8),
    probe: Option<Probe>,
}

/// How to ask the running kernel whether it has a feature.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    Program(ProgramType),
    Map(MapType),
    Helper(ProgramType, BpfHelper),
}

const fn feature(what: &'static str, since: (u8, u8), probe: Option<Probe>) -> Feature {
    Feature { what, since, probe }
}

/// Everything the programs and the daemon need that not every kernel has,
/// oldest first.
pub const FEATURES: &[Feature] = &[
    feature(
        "TC classifier programs",
        (4, 1),
        Some(Probe::Program(ProgramType::SchedClassifier)),
    ),
    feature(
        "per-CPU hash maps, for counters",
        (4, 6),
        Some(Probe::Map(MapType::PerCpuHash)),
    ),
    feature(
        "XDP programs",
        (4, 8),
        Some(Probe::Program(ProgramType::Xdp)),
    ),
    feature(
        "LPM trie maps, for CIDRs and sets",
        (4, 11),
        Some(Probe::Map(MapType::LpmTrie)),
    ),
    feature("batched map lookups, BPF_MAP_LOOKUP_BATCH", (5, 6), None),
    feature(
        "BPF ring buffer maps, for events",
        (5, 8),
        Some(Probe::Map(MapType::RingBuf)),
    ),
    feature("BPF links for XDP", (5, 9), None),
    feature(
        "the helper bpf_ktime_get_coarse_ns",
        (5, 11),
        Some(Probe::Helper(
            ProgramType::Xdp,
            BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        )),
    ),
    feature(
        "atomic fetch-and-add and compare-and-exchange, BPF_ATOMIC",
        (5, 12),
        None,
    ),
    feature("TCX links for TC ingress and egress", (6, 6), None),
];

/// The oldest kernel with every feature.
pub const FLOOR: (u8, u8) = (6, 6);

/// The newest kernel whose verifier accepted the programs in the project's
/// tests. An older one has every feature from [`FLOOR`] on, but its verifier
/// tracks less and may give up on programs this large.
pub const VERIFIED_ON: (u8, u8) = (6, 18);

/// Said when the verifier refuses the programs on a kernel older than
/// [`VERIFIED_ON`].
pub fn older_verifier(kernel: KernelVersion) -> Option<String> {
    (kernel < KernelVersion::new(VERIFIED_ON.0, VERIFIED_ON.1, 0)).then(|| {
        format!(
            "this kernel ({kernel}) meets policyd's floor (Linux {}.{}), but its verifier is \
             older than the one the programs were tested with (Linux {}.{})",
            FLOOR.0, FLOOR.1, VERIFIED_ON.0, VERIFIED_ON.1
        )
    })
}

#[derive(Debug, thiserror::Error)]
pub enum KernelFloorError {
    #[error(
        "policyd needs Linux {}.{} or newer; this kernel is {kernel}, which lacks {}",
        FLOOR.0,
        FLOOR.1,
        list(missing)
    )]
    TooOld {
        kernel: String,
        missing: Vec<Feature>,
    },
    #[error(
        "this kernel ({kernel}) is new enough but lacks {}, which came in Linux {}.{}: was it \
         built without it?",
        feature.what,
        feature.since.0,
        feature.since.1
    )]
    Missing { kernel: String, feature: Feature },
    #[error(
        "cannot probe the kernel for {}: {message} (policyd needs root, or CAP_BPF, \
         CAP_NET_ADMIN and CAP_PERFMON)",
        feature.what
    )]
    Probe { feature: Feature, message: String },
    #[error("cannot read the kernel's version, by which TC attachments are made TCX links: {0}")]
    Version(String),
}

/// `TCX links ... (6.6); atomic ... (5.12)`: newest first, as the newest
/// is the one to upgrade for.
fn list(missing: &[Feature]) -> String {
    let mut missing = missing.to_vec();
    missing.sort_by_key(|f| std::cmp::Reverse(f.since));
    let named: Vec<String> = missing
        .iter()
        .map(|f| format!("{} ({}.{})", f.what, f.since.0, f.since.1))
        .collect();
    named.join("; ")
}

/// Checks the running kernel; returns its version.
pub fn check() -> Result<KernelVersion, KernelFloorError> {
    let kernel = KernelVersion::current().map_err(|e| KernelFloorError::Version(e.to_string()))?;
    decide(kernel, run_probe)?;
    Ok(kernel)
}

fn run_probe(probe: Probe) -> Result<bool, String> {
    match probe {
        Probe::Program(p) => is_program_supported(p).map_err(|e| with_sources(&e)),
        Probe::Map(m) => is_map_supported(m).map_err(|e| with_sources(&e)),
        Probe::Helper(p, h) => is_helper_supported(p, h).map_err(|e| with_sources(&e)),
    }
}

/// `bpf_prog_load failed: Operation not permitted`: aya's errors keep the
/// system's reason in their source.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The decision, given the kernel's version and a way to probe it: by
/// version first (the features a kernel this old cannot have), then by
/// probe.
fn decide(
    kernel: KernelVersion,
    probe: impl Fn(Probe) -> Result<bool, String>,
) -> Result<(), KernelFloorError> {
    let has = |(major, minor): (u8, u8)| kernel >= KernelVersion::new(major, minor, 0);
    let missing: Vec<Feature> = FEATURES.iter().filter(|f| !has(f.since)).copied().collect();
    if !missing.is_empty() {
        return Err(KernelFloorError::TooOld {
            kernel: kernel.to_string(),
            missing,
        });
    }
    for feature in FEATURES {
        let Some(p) = feature.probe else { continue };
        match probe(p) {
            Ok(true) => {}
            Ok(false) => {
                return Err(KernelFloorError::Missing {
                    kernel: kernel.to_string(),
                    feature: *feature,
                });
            }
            Err(message) => {
                return Err(KernelFloorError::Probe {
                    feature: *feature,
                    message,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_probe_passes(_: Probe) -> Result<bool, String> {
        Ok(true)
    }

    #[test]
    fn the_floor_is_the_newest_feature() {
        let newest = FEATURES.iter().map(|f| f.since).max();
        assert_eq!(newest, Some(FLOOR));
        assert!(FEATURES.is_sorted_by_key(|f| f.since));
    }

    #[test]
    fn the_floor_and_anything_newer_pass() {
        for (major, minor, patch) in [(6, 6, 0), (6, 6, 119), (6, 18, 44), (7, 0, 0)] {
            let kernel = KernelVersion::new(major, minor, patch);
            assert!(decide(kernel, every_probe_passes).is_ok(), "{kernel}");
        }
    }

    #[test]
    fn a_kernel_just_below_the_floor_is_refused_naming_tcx() {
        let err = decide(KernelVersion::new(6, 5, 13), every_probe_passes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "policyd needs Linux 6.6 or newer; this kernel is 6.5.13, which lacks TCX links \
             for TC ingress and egress (6.6)"
        );
    }

    #[test]
    fn an_older_kernel_is_told_everything_it_lacks_newest_first() {
        let err = decide(KernelVersion::new(5, 10, 0), every_probe_passes).unwrap_err();
        let KernelFloorError::TooOld { missing, .. } = &err else {
            panic!("{err}");
        };
        let since: Vec<_> = missing.iter().map(|f| f.since).collect();
        assert_eq!(since, vec![(5, 11), (5, 12), (6, 6)]);
        let text = err.to_string();
        assert!(
            text.contains("lacks TCX links for TC ingress and egress (6.6); atomic"),
            "{text}"
        );
        assert!(
            text.ends_with("the helper bpf_ktime_get_coarse_ns (5.11)"),
            "{text}"
        );
    }

    #[test]
    fn a_new_kernel_without_a_probed_feature_is_refused_naming_it() {
        let no_ring = |p: Probe| Ok(p != Probe::Map(MapType::RingBuf));
        let err = decide(KernelVersion::new(6, 8, 0), no_ring).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this kernel (6.8.0) is new enough but lacks BPF ring buffer maps, for events, \
             which came in Linux 5.8: was it built without it?"
        );
    }

    #[test]
    fn a_probe_that_cannot_run_says_what_policyd_needs() {
        let denied = |_: Probe| Err("Operation not permitted".to_owned());
        let err = decide(KernelVersion::new(6, 18, 0), denied).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot probe the kernel for TC classifier programs"));
        assert!(
            text.contains("CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
            "{text}"
        );
    }

    #[test]
    fn only_an_older_verifier_gets_the_note() {
        let note = older_verifier(KernelVersion::new(6, 6, 0)).unwrap();
        assert!(note.contains("(6.6.0) meets policyd's floor"), "{note}");
        assert_eq!(older_verifier(KernelVersion::new(6, 18, 0)), None);
        assert_eq!(older_verifier(KernelVersion::new(7, 1, 0)), None);
    }

    #[test]
    fn probes_are_not_run_on_a_kernel_refused_by_version() {
        let must_not_run = |_: Probe| -> Result<bool, String> { panic!("probed") };
        assert!(decide(KernelVersion::new(5, 15, 0), must_not_run).is_err());
    }
}
