//! Exposes the kernel's counters as Prometheus metrics. The values live in
//! BPF maps, so a [`Collector`] reads them at scrape time instead of mirroring
//! them in userspace.

use std::{
    fmt,
    sync::{Arc, RwLock},
};

use policy_common::{dir, global_counter};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::dataplane::Counters;

/// What metrics label ids with: user names by id, class names by id, and the
/// active profile's name. Shared with the daemon, which replaces it when the
/// policy or the profile changes.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub users: Vec<String>,
    pub classes: Vec<String>,
    pub profile: String,
    /// Policies applied since start (the first one is 1).
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

pub type SharedNames = Arc<RwLock<Names>>;

pub struct KernelCounters {
    counters: Arc<Counters>,
    names: SharedNames,
}

impl KernelCounters {
    pub fn new(counters: Arc<Counters>, names: SharedNames) -> Self {
        Self { counters, names }
    }
}

impl fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelCounters").finish_non_exhaustive()
    }
}

const GLOBALS: [(u32, &str, &str); 8] = [
    (
        global_counter::MALFORMED,
        "policyd_malformed_packets",
        "Packets too short for their headers, or with invalid headers",
    ),
    (
        global_counter::NON_IP,
        "policyd_non_ip_packets",
        "Frames that are neither IPv4 nor IPv6 (passed)",
    ),
    (
        global_counter::SPOOFED,
        "policyd_spoofed_packets",
        "Packets from an address bound to other MAC addresses (dropped)",
    ),
    (
        global_counter::UNIDENTIFIED,
        "policyd_unidentified_packets",
        "Packets no identity matched (accounted to user `unidentified`)",
    ),
    (
        global_counter::MAP_FULL,
        "policyd_counter_map_full",
        "Packets not counted because the counter map was full",
    ),
    (
        global_counter::EVENTS_LOST,
        "policyd_events_lost",
        "Events lost because the ring buffer was full",
    ),
    (
        global_counter::BUCKET_CONTENDED,
        "policyd_bucket_contended",
        "Token-bucket updates given up after repeated contention (treated as over the limit)",
    ),
    (
        global_counter::EXT_HEADERS_DEEP,
        "policyd_ipv6_ext_headers_too_deep",
        "IPv6 packets with more extension headers than the parser follows",
    ),
];

impl Collector for KernelCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let names = self
            .names
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut rows = self.counters.all();
        rows.sort_unstable_by_key(|(k, _)| *k);
        let label = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        type Labels = [(&'static str, String); 4];
        let mut packets: Vec<(Labels, u64)> = Vec::new();
        let mut bytes: Vec<(Labels, u64)> = Vec::new();
        let mut marked: Vec<([(&'static str, String); 3], u64)> = Vec::new();
        for (k, c) in &rows {
            let user = label(&names.users, k.user as usize);
            let class = label(&names.classes, usize::from(k.class));
            let direction = if k.dir == dir::UPLOAD {
                "upload"
            } else {
                "download"
            };
            for (verdict, p, b) in [
                ("pass", c.pass_packets, c.pass_bytes),
                ("deny", c.deny_packets, c.deny_bytes),
                ("limit", c.limit_packets, c.limit_bytes),
                ("monitor", c.monitor_packets, c.monitor_bytes),
            ] {
                let labels = [
                    ("user", user.clone()),
                    ("class", class.clone()),
                    ("direction", direction.to_owned()),
                    ("verdict", verdict.to_owned()),
                ];
                packets.push((labels.clone(), p));
                bytes.push((labels, b));
            }
            marked.push((
                [
                    ("user", user),
                    ("class", class),
                    ("direction", direction.to_owned()),
                ],
                c.ecn_marked_packets,
            ));
        }
        let mut family = encoder.encode_descriptor(
            "policyd_packets",
            "Packets per user, class, direction and verdict (pass, deny, limit, monitor)",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &packets {
            ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "policyd_bytes",
            "Bytes (whole frames) per user, class, direction and verdict",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &bytes {
            ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "policyd_ecn_marked_packets",
            "Packets passed with ECN Congestion Experienced set by a rate limit",
            None,
            MetricType::Counter,
        )?;
        for (labels, v) in &marked {
            ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
        }
        for (index, name, help) in GLOBALS {
            let value = self.counters.global(index).unwrap_or_default();
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let mut family = encoder.encode_descriptor(
            "policyd_active_profile",
            "The schedule profile in force (1 for the active one)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64)
            .encode(family.encode_family(&[("profile", names.profile.as_str())])?)?;
        let gauge = encoder.encode_descriptor(
            "policyd_policy_generation",
            "Policies applied since policyd started (1 for the first)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(names.generation).unwrap_or(i64::MAX)).encode(gauge)?;
        let mut family = encoder.encode_descriptor(
            "policyd_reloads",
            "Policy reloads, by result (a failed one leaves the previous policy in force)",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [
            ("success", names.reloads_ok),
            ("failure", names.reloads_failed),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}
