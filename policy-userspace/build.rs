//! Builds the kernel programs (policy-ebpf) for bpfel-unknown-none with the
//! nightly toolchain and bpf-linker, and leaves the object in OUT_DIR for
//! `include_bytes_aligned!`. `cargo xtask` installs both tools.
//!
//! With `AYA_BUILD_SKIP=1` (for `cargo check`/clippy on a machine without the
//! BPF toolchain) an empty object is written instead; policyd then refuses to
//! load it with a message saying so.

use std::{env, fs, path::PathBuf};

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let ebpf_dir = PathBuf::from(manifest_dir).join("../policy-ebpf");
    let ebpf_dir = ebpf_dir
        .canonicalize()
        .with_context(|| format!("kernel crate not found at {}", ebpf_dir.display()))?;
    let root_dir = ebpf_dir
        .to_str()
        .context("kernel crate path is not UTF-8")?;

    // aya-build forwards every line the nested cargo prints as a cargo
    // warning; keep it to real diagnostics. SAFETY: build scripts are single
    // threaded, and the variable is only read by the child cargo.
    unsafe { env::set_var("CARGO_TERM_QUIET", "true") };

    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        let out =
            PathBuf::from(env::var("OUT_DIR").context("OUT_DIR not set")?).join("policy-ebpf");
        fs::write(&out, b"").with_context(|| format!("writing placeholder {}", out.display()))?;
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "policy-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs failed: run `cargo xtask build` to install the nightly rust-src component and bpf-linker")
}
