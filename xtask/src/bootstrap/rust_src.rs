//! The nightly `rust-src` component: `-Z build-std=core` compiles `core` from
//! it for bpfel-unknown-none, which has no prebuilt standard library.
//!
//! The project's machines cannot always download components, so when rustup
//! fails this unpacks the project's copy from
//! `<workspace>/../shared/toolchain/rust-src-nightly-<date>.tar.gz`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::{Outcome, toolchain::Nightly, toolchain::rustup};
use crate::{cmd, paths};

/// What rustup's own rust-src component puts under `lib/rustlib/`, relative
/// to it; a tarball's entries end with this after whatever prefix it has.
const CORE_MANIFEST: &str = "src/rust/library/core/Cargo.toml";
const TARBALL_PREFIX: &str = "rust-src-nightly-";
const TARBALL_SUFFIX: &str = ".tar.gz";

pub(super) fn ensure(nightly: &Nightly) -> anyhow::Result<Outcome> {
    let rustlib = rustlib(&nightly.sysroot);
    let core_manifest = rustlib.join(CORE_MANIFEST);
    if core_manifest.is_file() {
        eprintln!("ok: nightly rust-src");
        return Ok(Outcome::AlreadyPresent);
    }
    eprintln!(
        "installing rust-src for nightly: `-Z build-std=core` compiles core from \
         source for bpfel-unknown-none (missing: {})",
        core_manifest.display()
    );
    let added = cmd::run(rustup().args(["component", "add", "rust-src", "--toolchain", "nightly"]));
    if let Err(err) = added {
        eprintln!("rustup could not add rust-src ({err:#}); using the project's copy instead");
        unpack_shared_copy(&rustlib, &nightly.version)?;
    }
    if !core_manifest.is_file() {
        bail!(
            "rust-src still missing after installing it: {} does not exist",
            core_manifest.display()
        );
    }
    eprintln!("ok: nightly rust-src installed");
    Ok(Outcome::Installed)
}

fn unpack_shared_copy(rustlib: &Path, nightly_version: &str) -> anyhow::Result<()> {
    let dir = paths::shared_toolchain_dir(&paths::workspace_root());
    // Resolved so messages show /work/shared rather than /work/main/../shared.
    let dir = dir.canonicalize().unwrap_or(dir);
    let names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| no_copy_message(&dir))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let date = nightly_date(nightly_version);
    let name = pick_tarball(&names, date).with_context(|| no_copy_message(&dir))?;
    if date.is_none_or(|date| !name.contains(date)) {
        eprintln!(
            "warning: {name} may not match {nightly_version}; if `-Z build-std` then fails \
             to compile core, put the rust-src of that exact nightly in {}",
            dir.display()
        );
    }
    let tarball = dir.join(name);

    let listing = cmd::probe(Command::new("tar").arg("tzf").arg(&tarball)).with_context(|| {
        format!(
            "`tar tzf {}` failed: is it a gzipped tarball?",
            tarball.display()
        )
    })?;
    let layout = Layout::detect(&listing).with_context(|| {
        format!(
            "{} has no {CORE_MANIFEST}: it is not a rust-src tarball",
            tarball.display()
        )
    })?;

    let mut unpack = Command::new("tar");
    unpack
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(rustlib)
        .arg("--no-same-owner");
    if layout.strip_components > 0 {
        unpack.arg(format!("--strip-components={}", layout.strip_components));
    }
    unpack.args(&layout.members);
    cmd::run(&mut unpack).context("unpacking rust-src into the nightly sysroot failed")?;
    if layout.has_manifest {
        register_with_rustup(rustlib)?;
    }
    Ok(())
}

fn no_copy_message(dir: &Path) -> String {
    format!(
        "no {TARBALL_PREFIX}*{TARBALL_SUFFIX} in {}: install rust-src by hand \
         (`rustup component add rust-src --toolchain nightly` where the network allows), \
         or put the project's copy there",
        dir.display()
    )
}

/// The tarball ships rustup's `manifest-rust-src` (its file list). Naming
/// the component where rustup records installed ones as well (`components`
/// and `multirust-config.toml`, just as `rustup component add` does) lets
/// `rustup component remove/add` keep working: with the files present but
/// unregistered, rustup reports conflicts; with only `components` naming it,
/// rustup panics. A sysroot not managed by rustup is left as it is.
fn register_with_rustup(rustlib: &Path) -> anyhow::Result<()> {
    let config = rustlib.join("multirust-config.toml");
    let Ok(config_text) = fs::read_to_string(&config) else {
        return Ok(());
    };
    if !config_text.contains("pkg = \"rust-src\"") {
        let entry = "\n[[components]]\npkg = \"rust-src\"\ntarget = \"*\"\nis_extension = true\n";
        append_line(&config, &config_text, entry)?;
    }
    let components = rustlib.join("components");
    let listed = fs::read_to_string(&components).unwrap_or_default();
    if !listed.lines().any(|line| line == "rust-src") {
        append_line(&components, &listed, "rust-src\n")?;
    }
    Ok(())
}

/// Writes `text` + `addition` to `path`, with a newline between if needed.
fn append_line(path: &Path, text: &str, addition: &str) -> anyhow::Result<()> {
    let mut text = text.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(addition);
    fs::write(path, text).with_context(|| format!("registering rust-src in {}", path.display()))
}

/// The commit date in `rustc 1.97.0-nightly (e50aa6fba 2026-05-19)`.
fn nightly_date(version: &str) -> Option<&str> {
    let inside = version.rsplit_once('(')?.1.strip_suffix(')')?;
    inside.split_whitespace().nth(1)
}

/// The tarball dated like the nightly if there is one, else the newest
/// (dates sort as text).
fn pick_tarball<'a>(names: &'a [String], date: Option<&str>) -> Option<&'a str> {
    let mut tarballs: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| name.starts_with(TARBALL_PREFIX) && name.ends_with(TARBALL_SUFFIX))
        .collect();
    tarballs.sort_unstable();
    let dated = date.and_then(|date| tarballs.iter().find(|name| name.contains(date)));
    dated.or(tarballs.last()).copied()
}

/// How a tarball's entries map onto `lib/rustlib/`.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    strip_components: usize,
    /// Only these are unpacked, so nothing else the tarball holds lands in
    /// the sysroot.
    members: Vec<String>,
    has_manifest: bool,
}

impl Layout {
    /// Finds the prefix before `src/rust/library/core/Cargo.toml`: empty for
    /// a tarball made from `lib/rustlib/` itself, `rust-src-nightly/rust-src/lib/rustlib/`
    /// for rustup's own installer tarball, and so on.
    fn detect(listing: &str) -> Option<Self> {
        let prefix = listing
            .lines()
            .find_map(|entry| entry.strip_suffix(CORE_MANIFEST))
            .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))?;
        let manifest = format!("{prefix}manifest-rust-src");
        let has_manifest = listing.lines().any(|entry| entry == manifest);
        let mut members = vec![format!("{prefix}src")];
        if has_manifest {
            members.push(manifest);
        }
        Some(Self {
            strip_components: prefix.split('/').filter(|c| !c.is_empty()).count(),
            members,
            has_manifest,
        })
    }
}

/// Where components live in a sysroot, and where the fallback unpacks.
fn rustlib(sysroot: &Path) -> PathBuf {
    sysroot.join("lib").join("rustlib")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_the_commit_date_from_rustc_version() {
        let version = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)";
        assert_eq!(nightly_date(version), Some("2026-05-19"));
        assert_eq!(nightly_date("rustc 1.97.0-nightly"), None);
    }

    #[test]
    fn prefers_the_tarball_of_the_same_date() {
        let found = names(&[
            "rust-src-nightly-2026-06-01.tar.gz",
            "rust-src-nightly-2026-05-19.tar.gz",
            "README",
        ]);
        assert_eq!(
            pick_tarball(&found, Some("2026-05-19")),
            Some("rust-src-nightly-2026-05-19.tar.gz")
        );
        assert_eq!(
            pick_tarball(&found, Some("2027-01-01")),
            Some("rust-src-nightly-2026-06-01.tar.gz")
        );
        assert_eq!(pick_tarball(&names(&["README"]), None), None);
    }

    #[test]
    fn unpacks_a_rustlib_relative_tarball_as_is() {
        let listing = "src/\nsrc/rust/\nsrc/rust/library/core/Cargo.toml\nmanifest-rust-src\n";
        assert_eq!(
            Layout::detect(listing),
            Some(Layout {
                strip_components: 0,
                members: names(&["src", "manifest-rust-src"]),
                has_manifest: true,
            })
        );
    }

    #[test]
    fn strips_the_installer_prefix() {
        let listing = "rust-src-nightly/rust-src/lib/rustlib/src/rust/library/core/Cargo.toml\n\
                       rust-src-nightly/install.sh\n";
        assert_eq!(
            Layout::detect(listing),
            Some(Layout {
                strip_components: 4,
                members: names(&["rust-src-nightly/rust-src/lib/rustlib/src"]),
                has_manifest: false,
            })
        );
    }

    #[test]
    fn dot_prefix_counts_as_a_component_like_gnu_tar() {
        let listing = "./src/rust/library/core/Cargo.toml\n";
        let layout = Layout::detect(listing).unwrap_or_else(|| panic!("undetected"));
        assert_eq!(layout.strip_components, 1);
        assert_eq!(layout.members, names(&["./src"]));
    }

    #[test]
    fn rejects_a_tarball_without_core() {
        assert_eq!(Layout::detect("src/rust/library/std/Cargo.toml\n"), None);
        assert_eq!(Layout::detect("xsrc/rust/library/core/Cargo.toml\n"), None);
    }

    #[test]
    fn checks_core_where_build_std_looks() {
        let sysroot = Path::new("/r/toolchains/nightly");
        assert_eq!(
            rustlib(sysroot).join(CORE_MANIFEST),
            Path::new("/r/toolchains/nightly/lib/rustlib/src/rust/library/core/Cargo.toml")
        );
    }
}
