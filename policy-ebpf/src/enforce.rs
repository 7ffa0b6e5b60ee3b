//! What happens to a user's packet, and its accounting.

use policy_common::{UserId, action};

use crate::{counters, maps::USER_POLICY};

pub(crate) enum Verdict {
    Pass,
    Drop,
}

/// Looks up the user's action, counts the packet under the user, and returns
/// the verdict. `Err` only if `user` is outside the policy array, which the
/// loader rules out by sizing the array to hold every id it hands out.
#[inline(always)]
pub(crate) fn decide(user: UserId, len: u64) -> Result<Verdict, ()> {
    let policy = USER_POLICY.get(user).ok_or(())?;
    let verdict = if policy.action == action::DENY {
        Verdict::Drop
    } else {
        Verdict::Pass
    };
    counters::user(user, &verdict, len);
    Ok(verdict)
}
