//! Exposes the kernel's counters as Prometheus metrics. The values live in
//! BPF maps, so a [`Collector`] reads them at scrape time instead of mirroring
//! them in userspace.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::{Arc, RwLock},
};

use policy_common::{CounterKey, Counters as Totals, global_counter};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::{
    dataplane::{Counters, QuotaTable, QuotaUse, ScanTable},
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
    pub profile: String,
    /// Policies applied since start (the first one is 1).
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Reloads that found the policy in force already (nothing written).
    pub reloads_unchanged: u64,
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

pub struct KernelCounters {
    counters: Arc<Counters>,
    names: SharedNames,
    /// Who is in quarantine, read at scrape.
    scan: Option<ScanTable>,
    /// Quota usage, read at scrape.
    quotas: Option<Arc<std::sync::Mutex<QuotaTable>>>,
}

impl KernelCounters {
    pub fn new(counters: Arc<Counters>, names: SharedNames) -> Self {
        Self {
            counters,
            names,
            scan: None,
            quotas: None,
        }
    }

    pub fn with_quotas(mut self, quotas: Arc<std::sync::Mutex<QuotaTable>>) -> Self {
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

const GLOBALS: [(u32, &str, &str); 12] = [
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
        global_counter::UNID_SHARED,
        "policyd_unidentified_bucket_shared",
        "Packets of an unidentified sender policed against a per-source bucket slot another sender still held (the two shared one limit)",
    ),
];

/// Rows keyed by (user label, class, direction), summed as `per_user` says:
/// every user on their own, the top N by bytes (the rest as `_other`), or
/// everyone as `_all`.
fn by_user_label(
    rows: Vec<(CounterKey, Totals)>,
    names: &Names,
) -> Vec<((String, u16, u8), Totals)> {
    // Ids without a name are free, or retired with their counters about to
    // go: they belong to nobody, so they export nothing.
    let named = |v: &[String], i: usize| v.get(i).is_some_and(|n| !n.is_empty());
    let rows: Vec<(CounterKey, Totals)> = rows
        .into_iter()
        .filter(|(k, _)| {
            named(&names.users, k.user as usize) && named(&names.classes, usize::from(k.class))
        })
        .collect();
    let bytes = |c: &Totals| c.pass_bytes + c.deny_bytes + c.limit_bytes + c.monitor_bytes;
    let keep: Option<HashSet<u32>> = match names.per_user {
        PerUser::All => None,
        PerUser::None => Some(HashSet::new()),
        PerUser::Top(n) => {
            let mut per_user: HashMap<u32, u64> = HashMap::new();
            for (k, c) in &rows {
                *per_user.entry(k.user).or_default() += bytes(c);
            }
            let mut ranked: Vec<(u32, u64)> = per_user.into_iter().collect();
            ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Some(ranked.into_iter().take(n).map(|(u, _)| u).collect())
        }
    };
    let rest = if names.per_user == PerUser::None {
        "_all"
    } else {
        "_other"
    };
    let mut out: BTreeMap<(String, u16, u8), Totals> = BTreeMap::new();
    for (k, c) in rows {
        let user = match &keep {
            Some(set) if !set.contains(&k.user) => rest.to_owned(),
            _ => names.users[k.user as usize].clone(),
        };
        out.entry((user, k.class, k.dir))
            .or_default()
            .accumulate(&c);
    }
    out.into_iter().collect()
}

impl KernelCounters {
    /// `policyd_quota_used_bytes` and `policyd_quota_limit_bytes`, per user
    /// and class (`_all` for a quota on all of a user's traffic). Every
    /// quota's user is named: quotas are few per user, and a budget is
    /// watched per person.
    fn encode_quotas(
        &self,
        table: &std::sync::Mutex<QuotaTable>,
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

impl Collector for KernelCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let names = self
            .names
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        // A scrape that cannot read the counters fails (an error answer, so
        // the target shows as down) rather than leaving series out.
        let raw = self.counters.all().map_err(|e| {
            let e = anyhow::Error::from(e);
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot read the counters for a scrape"
            );
            fmt::Error
        })?;
        let counter_entries = raw.len();
        let label = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let rows = by_user_label(raw, &names);
        type Labels = [(&'static str, String); 4];
        let mut packets: Vec<(Labels, u64)> = Vec::new();
        let mut bytes: Vec<(Labels, u64)> = Vec::new();
        let mut marked: Vec<([(&'static str, String); 3], u64)> = Vec::new();
        for ((user, class_id, direction_id), c) in &rows {
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
        let tables: Vec<(&str, u64, u64)> = names
            .tables
            .iter()
            .copied()
            .chain(std::iter::once((
                "counters",
                counter_entries as u64,
                names.counters_capacity,
            )))
            .chain(
                self.counters
                    .bucket_entries()
                    .map(|n| ("buckets", n, names.buckets_capacity)),
            )
            .collect();
        let gauge = |n: u64| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let mut entries = encoder.encode_descriptor(
            "policyd_map_entries",
            "Entries in use in a kernel map (policy tables: the generation in force)",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: u32, bytes: u64) -> (CounterKey, Totals) {
        (
            CounterKey {
                user,
                class: 0,
                dir: 0,
                _pad: 0,
            },
            Totals {
                pass_packets: 1,
                pass_bytes: bytes,
                ..Totals::default()
            },
        )
    }

    fn names(per_user: PerUser) -> Names {
        Names {
            users: vec!["unidentified".into(), "a".into(), "b".into(), "c".into()],
            classes: vec!["default".into()],
            per_user,
            ..Names::default()
        }
    }

    #[test]
    fn per_user_series_can_be_capped() {
        let rows = || vec![row(1, 100), row(2, 300), row(3, 200), row(0, 50)];
        let all = by_user_label(rows(), &names(PerUser::All));
        assert_eq!(all.len(), 4);
        let top = by_user_label(rows(), &names(PerUser::Top(2)));
        let labels: Vec<(&str, u64)> = top
            .iter()
            .map(|((u, _, _), c)| (u.as_str(), c.pass_bytes))
            .collect();
        assert_eq!(labels, [("_other", 150), ("b", 300), ("c", 200)]);
        let none = by_user_label(rows(), &names(PerUser::None));
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].0.0, "_all");
        assert_eq!((none[0].1.pass_packets, none[0].1.pass_bytes), (4, 650));
    }

    #[test]
    fn ids_without_a_name_export_nothing() {
        let mut n = names(PerUser::All);
        // Id 2 is free (or retired); 9 was never given out.
        n.users[2].clear();
        let rows = by_user_label(vec![row(1, 100), row(2, 300), row(9, 5)], &n);
        let users: Vec<&str> = rows.iter().map(|((u, _, _), _)| u.as_str()).collect();
        assert_eq!(users, ["a"]);
        let none = by_user_label(vec![row(1, 100), row(2, 300)], &names(PerUser::None));
        assert_eq!(none[0].1.pass_bytes, 400, "named ids only, summed");
    }
}
