//! `policyd unload`: remove what a policyd left in the kernel (after a crash
//! or `kill -9`, enforcement goes on from the pins): detach its programs and
//! remove its pinned maps.

use std::path::PathBuf;

use anyhow::Context as _;
use aya::programs::links::PinnedLink;

use crate::dataplane::{DEFAULT_PIN_DIR, Pins};

/// Detach policyd's programs and remove its pinned maps and links: the end
/// of enforcement. A stopped or crashed policyd leaves them in force; a
/// running one holds the directory, and unload refuses to pull enforcement
/// from under it (stop it first).
#[derive(Debug, clap::Args)]
pub(super) struct UnloadArgs {
    /// The pin directory `policyd run` used.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
}

pub(super) fn unload(args: &UnloadArgs) -> anyhow::Result<()> {
    // Held until the directory is gone, so no daemon starts on it meanwhile.
    let Some(_lock) = Pins::Persistent(args.pin_dir.clone()).take_existing()? else {
        println!(
            "{}: nothing pinned there; nothing to unload",
            args.pin_dir.display()
        );
        return Ok(());
    };
    let links = args.pin_dir.join("links");
    if let Ok(entries) = std::fs::read_dir(&links) {
        for entry in entries {
            let path = entry.context("reading the links directory")?.path();
            // Unpinning drops the last reference to the link: it detaches.
            let link = PinnedLink::from_pin(&path)
                .with_context(|| format!("{} is not a pinned link", path.display()))?;
            link.unpin()
                .with_context(|| format!("cannot unpin {}", path.display()))?;
            println!(
                "detached {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
        }
    }
    std::fs::remove_dir_all(&args.pin_dir)
        .with_context(|| format!("cannot remove {}", args.pin_dir.display()))?;
    println!("removed {} (maps and links)", args.pin_dir.display());
    Ok(())
}
