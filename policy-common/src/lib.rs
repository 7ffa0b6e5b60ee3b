//! The contract between policyd's kernel programs and its userspace.
//!
//! Everything that crosses the boundary lives here, once: map names (used by
//! both `#[map(name = ...)]` and the loader), the `#[repr(C)]` key and value
//! types, and the numeric codes stored in them. Types hold fixed-size fields
//! only (no `bool`, no `Option`, explicit padding) so that both sides agree on
//! every byte; the tests in `layout.rs` pin sizes and alignments.
#![no_std]

pub mod action;
pub mod classify;
pub mod counters;
pub mod event;
pub mod generation;
pub mod identity;
pub mod maps;
pub mod names;

#[cfg(test)]
mod layout;

pub use action::*;
pub use classify::*;
pub use counters::*;
pub use event::*;
pub use generation::*;
pub use identity::*;
pub use maps::*;
pub use names::*;

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all): repr(C) types made only of integers and byte arrays, with
    // explicit padding fields, so every bit pattern is valid and no byte is
    // uninitialised.
    unsafe impl aya::Pod for super::UserInfo {}
    unsafe impl aya::Pod for super::IfaceConfig {}
    unsafe impl aya::Pod for super::MacBinding {}
    unsafe impl aya::Pod for super::ClassRule {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::ActionKey {}
    unsafe impl aya::Pod for super::ActionParams {}
    unsafe impl aya::Pod for super::ActionEntry {}
    unsafe impl aya::Pod for super::BucketKey {}
    unsafe impl aya::Pod for super::CounterKey {}
    unsafe impl aya::Pod for super::Counters {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::GenActionKey {}
    unsafe impl aya::Pod for super::GenAddr {}
    unsafe impl aya::Pod for super::GenMac {}
    unsafe impl aya::Pod for super::GenU32 {}
    unsafe impl aya::Pod for super::GenU64 {}
    unsafe impl aya::Pod for super::NameSlot {}
}
