//! policyd: acceptable-use enforcement for Linux hosts with eBPF.
//!
//! Data flows one way: policy files -> [`policy`] (parse, validate, compile)
//! -> [`dataplane`] (load, attach, write maps) -> kernel -> counters and
//! events -> [`telemetry`] (Prometheus, JSON lines). [`model`] makes the
//! kernel's decision in plain Rust from the same compiled tables. [`cli`]
//! wires them together. [`capture`] reads pcap and pcapng files (for
//! `policyd replay`).

pub mod capture;
pub mod cli;
pub mod dataplane;
pub mod model;
pub mod names;
pub mod policy;
pub mod schedule;
pub mod telemetry;
pub mod wire;
