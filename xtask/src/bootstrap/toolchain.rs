//! The Rust toolchains: nightly for the kernel crate (`-Z build-std` exists
//! only there), and the clippy/rustfmt components that `cargo xtask test` runs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::Outcome;
use crate::cmd;

/// The installed nightly toolchain, as later steps need to know it.
pub(super) struct Nightly {
    pub outcome: Outcome,
    /// `rustc +nightly --version`, e.g. `rustc 1.97.0-nightly (e50aa6fba 2026-05-19)`.
    pub version: String,
    pub sysroot: PathBuf,
}

pub(super) fn ensure_nightly() -> anyhow::Result<Nightly> {
    let list = cmd::probe(Command::new("rustup").args(["toolchain", "list"])).context(
        "`rustup toolchain list` failed: rustup manages the nightly toolchain the kernel \
         crate needs; install rustup (https://rustup.rs) and put ~/.cargo/bin in PATH",
    )?;
    let mut outcome = Outcome::AlreadyPresent;
    if !lists_nightly(&list) {
        eprintln!(
            "installing the nightly toolchain: the kernel crate is built with \
             `-Z build-std=core` for bpfel-unknown-none, which only nightly allows"
        );
        cmd::run(rustup().args(["toolchain", "install", "nightly", "--profile", "minimal"]))
            .context(
                "could not install the nightly toolchain; where rustup cannot download, \
                 install it by hand and re-run `cargo xtask bootstrap`",
            )?;
        outcome = Outcome::Installed;
    }
    let version = cmd::probe(Command::new("rustc").args(["+nightly", "--version"]))
        .context("`rustc +nightly --version` failed although rustup lists nightly: try `rustup toolchain install nightly --force`")?;
    let sysroot = sysroot(Some("nightly"))?;
    eprintln!("ok: nightly toolchain ({version})");
    match verified_nightly(TOOLCHAIN_FILE) {
        Some(verified) if verified != version => eprintln!(
            "warning: the kernel crate was verified with {verified} \
             (policy-ebpf/rust-toolchain.toml), nightly here is {version}: \
             if it fails to build, install that one as `nightly`"
        ),
        Some(_) => {}
        None => eprintln!(
            "warning: policy-ebpf/rust-toolchain.toml has no `# verified: rustc ...` line"
        ),
    }
    Ok(Nightly {
        outcome,
        version,
        sysroot,
    })
}

/// clippy and rustfmt for the default toolchain, clippy for nightly (the
/// kernel crate is linted with it). The minimal profile ships without them.
pub(super) fn ensure_components() -> anyhow::Result<Outcome> {
    let wanted = [
        (
            None,
            "rustfmt",
            "rustfmt",
            "`cargo xtask test` checks formatting",
        ),
        (
            None,
            "clippy",
            "cargo-clippy",
            "`cargo xtask test` lints the host crates",
        ),
        (
            Some("nightly"),
            "clippy",
            "cargo-clippy",
            "`cargo xtask test` lints the kernel crate",
        ),
    ];
    let mut outcome = Outcome::AlreadyPresent;
    for (toolchain, component, binary, why) in wanted {
        let name = toolchain.unwrap_or("default");
        if sysroot(toolchain)?.join("bin").join(binary).is_file() {
            continue;
        }
        eprintln!("installing {component} for the {name} toolchain: {why}");
        let mut add = rustup();
        add.args(["component", "add", component]);
        if let Some(toolchain) = toolchain {
            add.args(["--toolchain", toolchain]);
        }
        cmd::run(&mut add).with_context(|| {
            format!("could not add {component} to the {name} toolchain: install it by hand")
        })?;
        outcome = Outcome::Installed;
    }
    if outcome == Outcome::AlreadyPresent {
        eprintln!("ok: rustfmt and clippy");
    }
    Ok(outcome)
}

/// `rustup` with the backtrace setting cleared: rustup prints a full stack
/// trace for a failed download when RUST_BACKTRACE is set, which buries the
/// one line that matters.
pub(super) fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// `rustc --print sysroot` of `toolchain`, or of the toolchain xtask itself
/// runs under when `None`.
pub(super) fn sysroot(toolchain: Option<&str>) -> anyhow::Result<PathBuf> {
    let mut rustc = Command::new("rustc");
    if let Some(toolchain) = toolchain {
        rustc.arg(format!("+{toolchain}"));
    }
    let sysroot = cmd::probe(rustc.args(["--print", "sysroot"])).with_context(|| {
        format!(
            "`rustc --print sysroot` failed for the {} toolchain",
            toolchain.unwrap_or("default")
        )
    })?;
    if !Path::new(&sysroot).is_dir() {
        bail!("rustc reported sysroot {sysroot}, which is not a directory");
    }
    Ok(PathBuf::from(sysroot))
}

/// The kernel crate's toolchain file, which names the nightly it was
/// verified with. Read at compile time: xtask is built from this workspace.
const TOOLCHAIN_FILE: &str = include_str!("../../../policy-ebpf/rust-toolchain.toml");

/// The `rustc --version` of the `# verified: ...` line of the toolchain file.
fn verified_nightly(file: &str) -> Option<&str> {
    file.lines()
        .find_map(|line| line.strip_prefix("# verified: "))
        .map(str::trim)
}

/// Whether `rustup toolchain list` output has the rolling `nightly` channel
/// (`nightly-<host>`), as opposed to only dated ones (`nightly-2026-05-19-<host>`),
/// which `+nightly` would not select.
fn lists_nightly(list: &str) -> bool {
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| name.strip_prefix("nightly-"))
        .any(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rolling_nightly() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n";
        assert!(lists_nightly(list));
    }

    #[test]
    fn the_toolchain_file_names_the_verified_nightly() {
        let verified = verified_nightly(TOOLCHAIN_FILE);
        assert!(
            verified.is_some_and(|v| v.starts_with("rustc ") && v.contains("-nightly (")),
            "{verified:?}"
        );
        assert_eq!(
            verified_nightly("# verified: rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\n"),
            Some("rustc 1.97.0-nightly (e50aa6fba 2026-05-19)")
        );
    }

    /// aya-build and `cargo xtask test` run `nightly` by name: a dated
    /// channel in the file would not be what they build with.
    #[test]
    fn the_toolchain_file_names_the_toolchain_the_build_runs() {
        assert!(
            TOOLCHAIN_FILE
                .lines()
                .any(|line| line.trim() == "channel = \"nightly\""),
            "change build.rs's aya_build::Toolchain and xtask's +nightly with the channel"
        );
        assert!(TOOLCHAIN_FILE.contains("\"rust-src\""));
    }

    #[test]
    fn dated_nightlies_do_not_count() {
        let list = "stable-x86_64-unknown-linux-gnu (default)\n\
                    nightly-2026-05-19-x86_64-unknown-linux-gnu\n";
        assert!(!lists_nightly(list));
        assert!(!lists_nightly("no installed toolchains\n"));
    }
}
