//! Metrics of destinations learned by name (dataplane's learned.rs): the
//! addresses in each domain set, DNS answers read and refused, TLS
//! handshakes read, and what the table's bounds evicted.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::{dataplane::LearnedMaps, names::FailReason};

pub struct NamesMetrics {
    learned: Arc<Mutex<LearnedMaps>>,
}

impl NamesMetrics {
    pub fn new(learned: Arc<Mutex<LearnedMaps>>) -> Self {
        Self { learned }
    }
}

impl fmt::Debug for NamesMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamesMetrics").finish_non_exhaustive()
    }
}

fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    // prometheus-client adds `_total` to counters' names itself.
    let name = name.strip_suffix("_total").unwrap_or(name);
    let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(m)
}

impl Collector for NamesMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let m = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let per_set = m.learner().table.addresses_per_set();
        let mut family = encoder.encode_descriptor(
            "policyd_set_learned_addresses",
            "Addresses learned from DNS answers in each set that names domains (every user's together)",
            None,
            MetricType::Gauge,
        )?;
        for (i, name) in m.domain_sets() {
            let n = per_set.get(*i).copied().unwrap_or(0);
            let labels = [("set", name.as_str())];
            let metric = family.encode_family(&labels)?;
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(metric)?;
        }
        let s = m.learner().stats();
        counter(
            &mut encoder,
            "policyd_dns_answers_total",
            "DNS responses read from the data path",
            s.answers_seen,
        )?;
        let mut family = encoder.encode_descriptor(
            "policyd_names_parse_failures",
            "Copied DNS answers and TLS handshakes that could not be read, by reason",
            None,
            MetricType::Counter,
        )?;
        for r in FailReason::ALL {
            let labels = [("reason", r.as_str())];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(s.parse_failures(r)).encode(metric)?;
        }
        counter(
            &mut encoder,
            "policyd_tls_hellos_total",
            "TLS ClientHellos read from the data path",
            s.hellos_seen,
        )?;
        counter(
            &mut encoder,
            "policyd_tls_ech_hellos_total",
            "ClientHellos carrying an encrypted_client_hello extension (real or the placeholder browsers send)",
            s.ech_seen,
        )?;
        counter(
            &mut encoder,
            "policyd_tls_flows_named_total",
            "TLS connections classified by a server name in a domain set",
            m.counters.flows_named,
        )?;
        let t = m.learner().table.stats();
        let mut family = encoder.encode_descriptor(
            "policyd_learned_evictions",
            "Learned addresses dropped by the table's bounds: `table_full` (max_learned), `per_name` (addresses_per_name)",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [("table_full", t.evictions), ("per_name", t.per_name_capped)] {
            let labels = [("reason", reason)];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(n).encode(metric)?;
        }
        counter(
            &mut encoder,
            "policyd_learned_expired_total",
            "Learned addresses removed because their time was up",
            t.expired,
        )?;
        counter(
            &mut encoder,
            "policyd_learned_write_errors_total",
            "Learned entries the kernel refused to store (logged)",
            m.counters.write_errors,
        )?;
        let g = encoder.encode_descriptor(
            "policyd_learned_adopted_addresses",
            "Addresses an earlier policyd learned, still in force until they expire",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(m.adopted()).unwrap_or(i64::MAX)).encode(g)
    }
}
