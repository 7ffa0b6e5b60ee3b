//! A small kit for building throwaway networks out of namespaces, shared by
//! the privileged tests and `cargo xtask lab`.
//!
//! Every [`NetNs`] gets a unique name and is deleted in `Drop` (also when a
//! test panics); veth pairs are created directly inside namespaces, so the
//! host's own interfaces are never touched and deleting the namespaces
//! removes the links.

mod bin_path;
mod daemon;
mod metrics;
mod netns;
pub mod packet;
#[cfg(feature = "packet-gen")]
pub mod packet_gen;
pub mod tls;
pub mod topology;
pub mod xorshift;

pub use bin_path::policyd_bin;
pub use daemon::{Daemon, unload};
pub use metrics::{http_get, http_request, metric_sum, metric_value};
pub use netns::{NetNs, pin_neighbours, veth_pair};
