//! policyd: acceptable-use enforcement for Linux hosts with eBPF.
//!
//! Data flows one way: policy files -> [`policy`] (parse, validate, compile)
//! -> [`dataplane`] (load, attach, write maps) -> kernel -> counters ->
//! [`telemetry`] (Prometheus). [`cli`] wires them together.

pub mod cli;
pub mod dataplane;
pub mod policy;
pub mod telemetry;
