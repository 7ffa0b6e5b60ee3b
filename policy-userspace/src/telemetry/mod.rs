//! What policyd tells monitoring systems: Prometheus metrics over HTTP, and
//! enforcement events as JSON lines.

mod daemon;
mod events;
mod format;
mod metrics;
mod names;
mod process;
mod rollup;
mod server;

pub use daemon::{DaemonMetrics, kernel_release};
pub use events::{EventSink, event_json, open_events_file};
pub use metrics::{KernelCounters, Names, SharedNames};
pub use names::NamesMetrics;
pub use process::ProcessMetrics;
pub use server::{DEFAULT_METRICS_ADDR, MetricsServer, TelemetryError};
