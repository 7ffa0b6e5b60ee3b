//! What the daemon says of itself: build, start, policy generation, reloads
//! and schedule profiles.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::metrics::SharedNames;

pub struct DaemonMetrics {
    names: SharedNames,
    /// `uname -r`, read once: the kernel does not change under a process.
    kernel: String,
}

impl DaemonMetrics {
    pub fn new(names: SharedNames) -> Self {
        Self {
            names,
            kernel: kernel_release(),
        }
    }
}

impl fmt::Debug for DaemonMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonMetrics").finish_non_exhaustive()
    }
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

impl Collector for DaemonMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let names = super::metrics::current(&self.names);
        // A gauge of 1, as node_exporter's `node_exuname_info` and
        // Prometheus' own build_info: joins onto other series by `on()`.
        let mut family = encoder.encode_descriptor(
            "policyd_build_info",
            "policyd's version and the kernel it runs on (always 1)",
            None,
            MetricType::Gauge,
        )?;
        gauge(1).encode(family.encode_family(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("kernel", self.kernel.as_str()),
        ])?)?;
        for (name, help, value) in [
            (
                "policyd_start_time_seconds",
                "When policyd started, in seconds since the epoch",
                names.started_at,
            ),
            (
                "policyd_last_policy_applied_timestamp_seconds",
                "When a policy was last applied (at start or by a reload that wrote something), in seconds since the epoch",
                names.last_applied_at,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "policyd_last_reload_successful",
            "Whether the last reload succeeded (1) or was refused, leaving the previous policy in force (0)",
            None,
            MetricType::Gauge,
        )?;
        gauge(i64::from(names.last_reload_ok)).encode(metric)?;
        let mut family = encoder.encode_descriptor(
            "policyd_active_profile",
            "Each schedule profile of the policy: 1 for the one in force, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for profile in &names.profiles {
            gauge(i64::from(*profile == names.profile))
                .encode(family.encode_family(&[("profile", profile.as_str())])?)?;
        }
        let metric = encoder.encode_descriptor(
            "policyd_policy_generation",
            "Policies applied since policyd started (1 for the first)",
            None,
            MetricType::Gauge,
        )?;
        gauge(i64::try_from(names.generation).unwrap_or(i64::MAX)).encode(metric)?;
        let mut family = encoder.encode_descriptor(
            "policyd_reloads",
            "Policy reloads, by result (a failed one leaves the previous policy in force; an unchanged one writes nothing)",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [
            ("success", names.reloads_ok),
            ("failure", names.reloads_failed),
            ("unchanged", names.reloads_unchanged),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}
