//! What policyd tells monitoring systems: Prometheus metrics over HTTP, and
//! enforcement events as JSON lines.

mod events;
mod metrics;
mod server;

pub use events::{EventSink, event_json, open_events_file};
pub use metrics::{KernelCounters, Names, SharedNames};
pub use server::{DEFAULT_METRICS_ADDR, MetricsServer, TelemetryError};
