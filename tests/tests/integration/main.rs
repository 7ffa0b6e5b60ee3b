//! The privileged tier: every test that loads policyd's kernel programs,
//! in one binary (as aya's `test/integration-test`), one module per
//! feature. Needs root: the kernel tests drive the programs through
//! `BPF_PROG_TEST_RUN`; the end-to-end and trust tests make their own
//! namespaces, veth pairs and pin directories and remove them when done.
//!
//! - `kernel`: crafted packets, exact verdicts and counters, per stage
//!   (`parse`, `identity`, `classify`, `limits`, `events`), and the
//!   differential tests against the reference model;
//! - `e2e`: a real `policyd run` with real traffic across veth pairs;
//! - `kit`: the test kit's own fixtures (dnsmasq, the DNS client, the TLS
//!   flow) against real programs and sockets;
//! - `trust`: the ways an ordinary operation could open the gates or
//!   corrupt the record (issue 9), each reproduced for real.
//!
//! The unprivileged tier (policy language, `check`, examples, the model's
//! unit tests) is in `policy-userspace` and runs with a plain `cargo test`.

mod common;
mod e2e;
mod kernel;
mod kit;
mod rates;
mod trust;
