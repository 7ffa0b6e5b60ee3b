//! The name -> id allocation, kept with the pinned state.
//!
//! Counters, token buckets and event limits are keyed by user and class
//! ids, so an id must mean the same name for as long as that state lives:
//! across reloads, and across restarts (a `kill -9` or a clean stop), in
//! whatever order the policy lists the names. The allocation is therefore
//! pinned beside the state, one [`NameSlot`] per id in use
//! ([`crate::MAP_USER_NAMES`], [`crate::MAP_CLASS_NAMES`]). Only userspace
//! reads and writes it; no program looks at it.

/// Longest user or class name, in bytes (names are ASCII; the policy
/// validator refuses longer ones).
pub const MAX_NAME_LEN: usize = 64;

/// [`NameSlot::state`] codes. An id with no slot is free.
pub mod name_state {
    /// The id is the name's in the policy in force (or about to be: slots
    /// of new names are written before the generation using them).
    pub const LIVE: u32 = 1;
    /// The name left the policy; its counters, buckets and event limits are
    /// being deleted. The id is free once the slot is removed, never before.
    pub const RETIRED: u32 = 2;
}

/// Value of the name maps, keyed by id (`u32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameSlot {
    /// A [`name_state`] code.
    pub state: u32,
    /// Bytes of `name` in use.
    pub len: u32,
    pub name: [u8; MAX_NAME_LEN],
}

impl Default for NameSlot {
    fn default() -> Self {
        Self {
            state: 0,
            len: 0,
            name: [0; MAX_NAME_LEN],
        }
    }
}

impl NameSlot {
    /// A slot holding `name` (cut at [`MAX_NAME_LEN`] bytes).
    pub fn new(state: u32, name: &[u8]) -> Self {
        let mut slot = Self {
            state,
            ..Self::default()
        };
        let len = name.len().min(MAX_NAME_LEN);
        slot.name[..len].copy_from_slice(&name[..len]);
        slot.len = len as u32;
        slot
    }

    /// The name's bytes.
    pub fn name(&self) -> &[u8] {
        &self.name[..(self.len as usize).min(MAX_NAME_LEN)]
    }
}
