//! What policyd tells monitoring systems: Prometheus metrics over HTTP.

mod metrics;
mod server;

pub use metrics::{KernelCounters, UserNames};
pub use server::{DEFAULT_METRICS_ADDR, MetricsServer, TelemetryError};
