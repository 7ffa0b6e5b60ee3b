//! Exposes the kernel's counters as Prometheus metrics. The values live in
//! BPF maps, so a [`Collector`] reads them at scrape time instead of mirroring
//! them in userspace.

use std::{
    collections::BTreeMap,
    fmt,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
};

use policy_common::{Counters as Totals, MAP_BUCKETS, MAP_COUNTERS, drop_reason, global_counter};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::rollup::Rollup;
use crate::{
    dataplane::{self, Counters, QuotaTable, QuotaUse, ScanTable},
    policy::PerUser,
    wire::Direction,
};

/// What metrics label ids with: user names by id, class names by id, and the
/// active profile's name. Shared with the daemon, which replaces it when the
/// policy or the profile changes.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub users: Vec<String>,
    pub classes: Vec<String>,
    /// Every profile of the policy, in its order.
    pub profiles: Vec<String>,
    pub profile: String,
    /// Policies applied since start (the first one is 1).
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Reloads that found the policy in force already (nothing written).
    pub reloads_unchanged: u64,
    /// When the daemon started, and when a policy was last applied (the
    /// first one at start included), in seconds since the epoch.
    pub started_at: f64,
    pub last_applied_at: f64,
    /// Whether the last reload (or the first apply) succeeded.
    pub last_reload_ok: bool,
    /// Cardinality control of the per-user series.
    pub per_user: PerUser,
    /// Policy tables: (map, entries in force, capacity per generation).
    pub tables: Vec<(&'static str, u64, u64)>,
    /// Capacity of the counter map (its entries are counted at scrape).
    pub counters_capacity: u64,
    /// Capacity of the token-bucket map (its entries are counted at scrape).
    pub buckets_capacity: u64,
}

pub type SharedNames = Arc<RwLock<Names>>;

/// A copy of the names for one scrape (a writer that panicked left them
/// whole: every write replaces fields).
pub(super) fn current(names: &SharedNames) -> Names {
    names
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

pub struct KernelCounters {
    counters: Arc<Counters>,
    names: SharedNames,
    /// Who is in quarantine, read at scrape.
    scan: Option<ScanTable>,
    /// Quota usage, read at scrape.
    quotas: Option<Arc<Mutex<QuotaTable>>>,
    /// Where the maps are pinned: the traffic maps' fill is read there.
    pins: Option<PathBuf>,
    /// The sums under `per_user = "top:N"` and `"none"`, which keep state
    /// between scrapes so that they never go down.
    rollup: Mutex<Rollup>,
}

impl KernelCounters {
    pub fn new(counters: Arc<Counters>, names: SharedNames) -> Self {
        Self {
            counters,
            names,
            scan: None,
            quotas: None,
            pins: None,
            rollup: Mutex::default(),
        }
    }

    pub fn with_pins(mut self, dir: PathBuf) -> Self {
        self.pins = Some(dir);
        self
    }

    pub fn with_quotas(mut self, quotas: Arc<Mutex<QuotaTable>>) -> Self {
        self.quotas = Some(quotas);
        self
    }

    pub fn with_scan(mut self, scan: ScanTable) -> Self {
        self.scan = Some(scan);
        self
    }
}

impl fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelCounters").finish_non_exhaustive()
    }
}

const GLOBALS: [(u32, &str, &str); 13] = [
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
        "policyd_uncounted_packets",
        "Packets not counted per user because the COUNTERS map was full (raise --max-counters)",
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
    (
        global_counter::BUCKET_MAP_FULL,
        "policyd_bucket_map_full",
        "Packets of a limited user whose token bucket could not be created (map full; treated as over the limit)",
    ),
    (
        global_counter::EARLY_DROPS,
        "policyd_early_drops",
        "TCP packets without ECN dropped early by a limit, so the flow slows down before the bucket runs dry (also counted as limit drops)",
    ),
    (
        global_counter::QUARANTINE_DENIED,
        "policyd_quarantine_denied_packets",
        "Packets of users in quarantine denied (also counted as deny)",
    ),
    (
        global_counter::NAMES_LOST,
        "policyd_names_lost_packets",
        "DNS answers and TLS handshakes not copied to the daemon because the names ring buffer was full",
    ),
    (
        global_counter::UNID_SHARED,
        "policyd_unidentified_bucket_shared",
        "Packets of an unidentified sender policed against a per-source bucket slot another sender still held (the two shared one limit)",
    ),
];

impl KernelCounters {
    /// `policyd_quota_used_bytes` and `policyd_quota_limit_bytes`, per user
    /// and class (`_all` for a quota on all of a user's traffic). Every
    /// quota's user is named: quotas are few per user, and a budget is
    /// watched per person.
    fn encode_quotas(
        &self,
        table: &Mutex<QuotaTable>,
        names: &Names,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> fmt::Result {
        let usage = table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usage()
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot read the quotas for a scrape");
                fmt::Error
            })?;
        let label = |v: &[String], i: u32| {
            v.get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{i}"))
        };
        let labelled: Vec<_> = usage
            .iter()
            .map(|u| {
                let class = if u.class == policy_common::QUOTA_ALL_CLASSES {
                    "_all".to_owned()
                } else {
                    label(&names.classes, u.class)
                };
                ([("user", label(&names.users, u.user)), ("class", class)], u)
            })
            .collect();
        let used: fn(&QuotaUse) -> u64 = |u| u.used;
        let limit: fn(&QuotaUse) -> u64 = |u| u.limit;
        for (name, help, value) in [
            (
                "policyd_quota_used_bytes",
                "Bytes a user's quota has counted in its current period (passed traffic, both directions)",
                used,
            ),
            (
                "policyd_quota_limit_bytes",
                "A user's quota: the bytes its period allows",
                limit,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, u) in &labelled {
                ConstGauge::new(i64::try_from(value(u)).unwrap_or(i64::MAX))
                    .encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// The drops of one counter entry by reason label: (label, packets, bytes).
/// The `RULE` entry holds the user's own deny and limit drops (a label for
/// each, when not zero); the other reasons' entries hold only their drops.
fn drop_reasons(reason: u8, c: &Totals) -> Vec<(&'static str, u64, u64)> {
    let both = || c.deny_packets + c.limit_packets;
    let both_bytes = || c.deny_bytes + c.limit_bytes;
    let one = |name| vec![(name, both(), both_bytes())];
    match reason {
        drop_reason::RULE => [
            ("deny_rule", c.deny_packets, c.deny_bytes),
            ("limit_user", c.limit_packets, c.limit_bytes),
        ]
        .into_iter()
        .filter(|(_, p, _)| *p != 0)
        .collect(),
        drop_reason::SPOOFED => one("spoofed"),
        drop_reason::QUARANTINE => one("quarantine"),
        drop_reason::CLASS_LIMIT => one("limit_class"),
        drop_reason::QUOTA => one("quota"),
        drop_reason::MALFORMED => one("malformed"),
        _ => one("other"),
    }
}

impl KernelCounters {
    /// The traffic maps' fill from the pins; none when they cannot be read
    /// (logged: the rest of the scrape is still worth having).
    fn traffic_fill(&self) -> Vec<(&'static str, u64, u64)> {
        let Some(dir) = &self.pins else {
            return Vec::new();
        };
        match dataplane::traffic_fill(dir) {
            Ok(fill) => fill
                .into_iter()
                .map(|f| (f.map, f.entries, f.capacity))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %anyhow::Error::from(e), "cannot read the traffic maps' fill for a scrape");
                Vec::new()
            }
        }
    }
}

impl Collector for KernelCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let names = current(&self.names);
        // A scrape that cannot read the counters fails (an error answer, so
        // the target shows as down) rather than leaving series out.
        let (raw, retired) = self.counters.snapshot().map_err(|e| {
            let e = anyhow::Error::from(e);
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot read the counters for a scrape"
            );
            fmt::Error
        })?;
        let counter_entries = raw.len();
        let label = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let named = |id: u32| {
            names
                .users
                .get(id as usize)
                .map(String::as_str)
                .filter(|n| !n.is_empty())
        };
        // Ids of classes without a name export nothing: free, or retired
        // with their counters about to go (their series end with them).
        let class_named = |class: u16| {
            names
                .classes
                .get(usize::from(class))
                .is_some_and(|n| !n.is_empty())
        };
        let rows: Vec<_> = self
            .rollup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows(names.per_user, raw, &retired, named)
            .into_iter()
            .filter(|((_, class, _, _), _)| class_named(*class))
            .collect();
        type Labels = [(&'static str, String); 4];
        let mut dropped_packets: Vec<(Labels, u64)> = Vec::new();
        let mut dropped_bytes: Vec<(Labels, u64)> = Vec::new();
        let mut folded: BTreeMap<(String, u16, u8), Totals> = BTreeMap::new();
        for ((user, class_id, direction_id, reason), c) in rows {
            let class = label(&names.classes, usize::from(class_id));
            let direction = Direction::from_wire(direction_id).as_str();
            for (name, p, b) in drop_reasons(reason, &c) {
                let labels = [
                    ("user", user.clone()),
                    ("class", class.clone()),
                    ("direction", direction.to_owned()),
                    ("reason", name.to_owned()),
                ];
                dropped_packets.push((labels.clone(), p));
                dropped_bytes.push((labels, b));
            }
            folded
                .entry((user, class_id, direction_id))
                .or_default()
                .accumulate(&c);
        }
        let mut packets: Vec<(Labels, u64)> = Vec::new();
        let mut bytes: Vec<(Labels, u64)> = Vec::new();
        let mut marked: Vec<([(&'static str, String); 3], u64)> = Vec::new();
        for ((user, class_id, direction_id), c) in &folded {
            let class = label(&names.classes, usize::from(*class_id));
            let direction = Direction::from_wire(*direction_id).as_str();
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
                    ("user", user.clone()),
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
        for (name, help, rows) in [
            (
                "policyd_dropped_packets",
                "Packets dropped per user, class, direction and reason: deny_rule, limit_user, limit_class, quota, spoofed (under the sender, not the user whose address it claimed), quarantine, malformed (under unidentified); a series appears with its first drop (monitor mode drops nothing: see verdict monitor)",
                &dropped_packets,
            ),
            (
                "policyd_dropped_bytes",
                "Bytes (whole frames) dropped per user, class, direction and reason",
                &dropped_bytes,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, v) in rows {
                ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
            }
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
            "policyd_quarantines",
            "Users put in quarantine (or, with `action = \"monitor\"`, reported) by scan detection, by reason: too many distinct destination hosts or ports",
            None,
            MetricType::Counter,
        )?;
        for (index, reason) in [
            (global_counter::QUARANTINES_HOSTS, "hosts"),
            (global_counter::QUARANTINES_PORTS, "ports"),
        ] {
            let value = self.counters.global(index).unwrap_or_default();
            ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        if let Some(scan) = &self.scan {
            let n = scan.quarantined().map(|q| q.len()).unwrap_or_default();
            let gauge = encoder.encode_descriptor(
                "policyd_quarantined_users",
                "Users in quarantine now",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(gauge)?;
        }
        if let Some(table) = &self.quotas {
            self.encode_quotas(table, &names, &mut encoder)?;
        }
        let tables: Vec<(&str, u64, u64)> = names
            .tables
            .iter()
            .copied()
            .chain(std::iter::once((
                MAP_COUNTERS,
                counter_entries as u64,
                names.counters_capacity,
            )))
            .chain(
                self.counters
                    .bucket_entries()
                    .map(|n| (MAP_BUCKETS, n, names.buckets_capacity)),
            )
            .chain(self.traffic_fill())
            .collect();
        let gauge = |n: u64| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let mut entries = encoder.encode_descriptor(
            "policyd_map_entries",
            "Entries in use in a kernel map, by its name (policy tables: the generation in force; arrays: cells not zero)",
            None,
            MetricType::Gauge,
        )?;
        for (map, n, _) in &tables {
            gauge(*n).encode(entries.encode_family(&[("map", *map)])?)?;
        }
        let mut capacity = encoder.encode_descriptor(
            "policyd_map_capacity",
            "Entries a kernel map can hold (policy tables: per generation)",
            None,
            MetricType::Gauge,
        )?;
        for (map, _, cap) in &tables {
            gauge(*cap).encode(capacity.encode_family(&[("map", *map)])?)?;
        }
        Ok(())
    }
}
