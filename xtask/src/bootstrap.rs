//! `cargo xtask bootstrap`: installs what building and testing policyd needs,
//! and nothing when it is all there already (then it takes well under a
//! second, so every other task runs it first).
//!
//! Each step says what it found, and what it installs and why.

mod apt;
pub(crate) mod bpf_linker;
pub(crate) mod kube_validate;
mod rust_src;
mod toolchain;

use std::time::Instant;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    AlreadyPresent,
    Installed,
}

pub(crate) fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let nightly = toolchain::ensure_nightly()?;
    let outcomes = [
        nightly.outcome,
        toolchain::ensure_components()?,
        rust_src::ensure(&nightly)?,
        bpf_linker::ensure()?,
        apt::ensure()?,
        // After apt: it needs python3-venv.
        kube_validate::ensure()?,
    ];
    let elapsed = started.elapsed().as_secs_f64();
    if outcomes.iter().all(|&o| o == Outcome::AlreadyPresent) {
        eprintln!("bootstrap: everything is already present ({elapsed:.2}s)");
    } else {
        eprintln!("bootstrap: done, installed what was missing ({elapsed:.1}s)");
    }
    Ok(())
}
