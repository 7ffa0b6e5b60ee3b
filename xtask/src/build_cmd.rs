//! `cargo xtask build`: bootstrap, then build the daemon. Its build script
//! builds the kernel programs with nightly and bpf-linker and embeds them.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{bootstrap, cmd, paths};

#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<()> {
    bootstrap::run()?;
    cmd::run(&mut build_policyd(args.release))
}

/// `cargo build -p policy-userspace`, run from the workspace root.
pub(crate) fn build_policyd(release: bool) -> Command {
    let mut build = cargo();
    build.args(["build", "-p", "policy-userspace"]);
    if release {
        build.arg("--release");
    }
    build
}

/// `cargo` in the workspace root. The rustup proxy picks the toolchain xtask
/// itself runs under (rustup passes it down in RUSTUP_TOOLCHAIN).
pub(crate) fn cargo() -> Command {
    let mut cargo = Command::new("cargo");
    cargo.current_dir(paths::workspace_root());
    cargo
}

/// Cargo's target directory: CARGO_TARGET_DIR when set, else `target/`.
pub(crate) fn target_dir() -> PathBuf {
    let root = paths::workspace_root();
    env::var_os("CARGO_TARGET_DIR").map_or_else(
        || root.join("target"),
        // Cargo reads a relative CARGO_TARGET_DIR against the directory it
        // runs in, which for the commands here is the workspace root.
        |dir| absolute_under(&root, Path::new(&dir)),
    )
}

fn absolute_under(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
