//! `[unidentified]`'s bucket options (its `action` is read with the rest).

use policy_common::MAX_UNID_SLOTS;

use super::{Ctx, PolicyError, file};
use crate::policy::types::UnidBuckets;

pub(super) fn buckets(
    cx: &Ctx<'_>,
    raw: Option<&file::UnidentifiedSection>,
) -> Result<UnidBuckets, PolicyError> {
    let Some(raw) = raw else {
        return Ok(UnidBuckets::default());
    };
    let shared = match &raw.buckets {
        Some(b) => Some(cx.choice(
            b,
            "unidentified.buckets",
            &[("per-source", false), ("shared", true)],
        )?),
        None => None,
    };
    let slots = match &raw.slots {
        Some(s) => Some(
            u32::try_from(*s.get_ref())
                .ok()
                .filter(|n| n.is_power_of_two() && *n <= MAX_UNID_SLOTS)
                .ok_or_else(|| {
                    cx.err(
                        s,
                        "unidentified.slots",
                        format!(
                            "`{}` is not a table size: expected a power of two from 1 to {MAX_UNID_SLOTS}",
                            s.get_ref()
                        ),
                    )
                })?,
        ),
        None => None,
    };
    Ok(UnidBuckets { shared, slots })
}
