//! Exposes the kernel's counters as Prometheus metrics. The values live in
//! BPF maps, so a [`Collector`] reads them at scrape time instead of mirroring
//! them in userspace.

use std::{
    fmt,
    sync::{Arc, RwLock},
};

use policy_common::{UserId, global_counter};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
};

use crate::dataplane::Counters;

/// The users currently loaded, by id: what the metrics label counters with.
/// Shared with the daemon, which replaces it when the policy changes.
pub type UserNames = Arc<RwLock<Vec<(UserId, String)>>>;

pub struct KernelCounters {
    counters: Arc<Counters>,
    users: UserNames,
}

impl KernelCounters {
    pub fn new(counters: Arc<Counters>, users: UserNames) -> Self {
        Self { counters, users }
    }
}

impl fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelCounters").finish_non_exhaustive()
    }
}

fn encode_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[([(&str, &str); 2], u64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for KernelCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let users = self
            .users
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut packets = Vec::with_capacity(users.len() * 2);
        let mut bytes = Vec::with_capacity(users.len() * 2);
        for (id, name) in users.iter() {
            // A failed read means the map went away under us: skip the user
            // rather than fail the whole scrape.
            let Ok(c) = self.counters.user(*id) else {
                tracing::warn!(user = %name, "cannot read counters");
                continue;
            };
            packets.push((
                [("user", name.as_str()), ("verdict", "pass")],
                c.passed_packets,
            ));
            packets.push((
                [("user", name.as_str()), ("verdict", "drop")],
                c.dropped_packets,
            ));
            bytes.push((
                [("user", name.as_str()), ("verdict", "pass")],
                c.passed_bytes,
            ));
            bytes.push((
                [("user", name.as_str()), ("verdict", "drop")],
                c.dropped_bytes,
            ));
        }
        encode_counter(
            &mut encoder,
            "policyd_user_packets",
            "Packets seen per user at XDP ingress, by verdict",
            &packets,
        )?;
        encode_counter(
            &mut encoder,
            "policyd_user_bytes",
            "Bytes (Ethernet frame length) seen per user at XDP ingress, by verdict",
            &bytes,
        )?;
        for (index, name, help) in [
            (
                global_counter::MALFORMED,
                "policyd_malformed_packets",
                "Packets too short for their headers, or with invalid headers (passed)",
            ),
            (
                global_counter::NON_IP,
                "policyd_non_ip_packets",
                "Packets that are neither IPv4 nor IPv6 (passed)",
            ),
        ] {
            let value = self.counters.global(index).unwrap_or_default();
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}
