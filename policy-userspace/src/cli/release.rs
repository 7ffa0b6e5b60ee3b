//! `policyd release USER`: end a user's quarantine early (scan detection
//! put them there, in the kernel). Works on the pinned state, whether or
//! not a policyd is serving it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::{
    dataplane::{DEFAULT_PIN_DIR, ScanTable, pinned_ids},
    policy::Slot,
};

/// End a user's quarantine now.
#[derive(Debug, clap::Args)]
pub(super) struct ReleaseArgs {
    /// The user's name, as in the policy.
    user: String,
    /// The pin directory `policyd run` uses.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
}

pub(super) fn release(args: &ReleaseArgs) -> anyhow::Result<()> {
    let dir = &args.pin_dir;
    super::require_pins(dir)?;
    let ids = pinned_ids(dir).context("reading the pinned user ids")?;
    let Some((id, _)) = ids
        .users
        .iter()
        .find(|(_, s)| matches!(s, Slot::Live(n) if *n == args.user))
    else {
        bail!(
            "no user `{}` in the policy in force (names are as in the policy file)",
            args.user
        );
    };
    let mut table = ScanTable::from_pins(dir)?;
    if table.release(id)? {
        println!("released {}: the quarantine has ended", args.user);
    } else {
        println!("{} is not in quarantine; nothing to do", args.user);
    }
    Ok(())
}
