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
pub mod conn;
pub mod counters;
pub mod daemon;
pub mod event;
pub mod generation;
pub mod identity;
pub mod learn;
pub mod maps;
pub mod names;
pub mod quota;
pub mod replay;
pub mod scan;
pub mod sketch;
pub mod unid;

#[cfg(test)]
mod layout;

pub use action::*;
pub use classify::*;
pub use conn::*;
pub use counters::*;
pub use daemon::*;
pub use event::*;
pub use generation::*;
pub use identity::*;
pub use learn::*;
pub use maps::*;
pub use names::*;
pub use quota::*;
pub use replay::*;
pub use scan::*;
pub use sketch::*;
pub use unid::*;

#[cfg(feature = "user")]
mod pod {
    /// One `unsafe impl aya::Pod` per type, all under the one argument below.
    macro_rules! pod {
        ($($ty:ident),* $(,)?) => {
            $(
                // SAFETY: each type is repr(C) and made only of integers and
                // byte arrays, with explicit padding fields (pinned by the
                // layout tests), so every bit pattern is a valid value and no
                // byte is uninitialised: what aya::Pod requires to copy it to
                // and from map memory byte for byte.
                unsafe impl aya::Pod for super::$ty {}
            )*
        };
    }

    pod!(
        UserInfo,
        IfaceConfig,
        MacBinding,
        ClassRule,
        Config,
        ActionKey,
        ActionParams,
        ActionEntry,
        BucketKey,
        ScanState,
        QuotaSlot,
        CounterKey,
        Counters,
        Event,
        EventTimes,
        GenAddr,
        GenMac,
        GenU32,
        GenU64,
        NameSlot,
        UnidSlot,
        DaemonInfo,
        LearnedKey4,
        LearnedKey6,
        LearnedSets,
        NameFlowKey,
        SnoopHeader,
        DomainName,
    );
}
