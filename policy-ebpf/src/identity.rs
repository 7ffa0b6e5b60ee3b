//! Who sent this packet: exact address first, then the longest CIDR prefix,
//! else the `unidentified` user.

use aya_ebpf::maps::lpm_trie::Key;
use policy_common::{USER_UNIDENTIFIED, UserId};

use crate::{
    maps::{USER_CIDRS_V4, USER_CIDRS_V6, USERS_V4, USERS_V6},
    parse::Addr,
};

#[inline(always)]
pub(crate) fn user_of(addr: &Addr) -> UserId {
    // SAFETY (HashMap::get): the value is a plain u32 copied out at once, so a
    // concurrent userspace update cannot leave us holding a torn reference.
    let found = match addr {
        Addr::V4(a) => unsafe { USERS_V4.get(a) }
            .or_else(|| USER_CIDRS_V4.get(Key::new(32, *a)))
            .copied(),
        Addr::V6(a) => unsafe { USERS_V6.get(a) }
            .or_else(|| USER_CIDRS_V6.get(Key::new(128, *a)))
            .copied(),
    };
    found.unwrap_or(USER_UNIDENTIFIED)
}
