//! Empty on purpose: see the `[lib]` comment in Cargo.toml.
#![no_std]
