//! bpf-linker, which rustc calls to link the kernel crate into a BPF object.
//! Pinned: the version must agree with the nightly's LLVM and with aya.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use super::Outcome;
use crate::cmd;

pub(crate) const VERSION: &str = "0.10.0";

pub(crate) fn ensure() -> anyhow::Result<Outcome> {
    let found = installed_version();
    if let Some((path, version)) = &found
        && version == VERSION
    {
        if !in_path() {
            eprintln!(
                "warning: bpf-linker is at {} but not in PATH, where rustc looks for it: \
                 add {} to PATH",
                path.display(),
                cargo_bin().display()
            );
        }
        eprintln!("ok: bpf-linker {VERSION}");
        return Ok(Outcome::AlreadyPresent);
    }
    let now = found.map_or_else(|| "not installed".to_owned(), |(_, v)| format!("found {v}"));
    eprintln!(
        "installing bpf-linker {VERSION} ({now}): rustc links the kernel crate with it. \
         `cargo install` compiles it from source, which takes about 2 minutes"
    );
    cmd::run(Command::new("cargo").args(["install", &format!("bpf-linker@{VERSION}"), "--locked"]))
        .context("`cargo install bpf-linker` failed: see its output above")?;
    match installed_version() {
        Some((_, version)) if version == VERSION => {
            eprintln!("ok: bpf-linker {VERSION} installed");
            Ok(Outcome::Installed)
        }
        Some((path, version)) => bail!(
            "{} reports version {version} after installing {VERSION}: remove it so \
             the one in {} is used",
            path.display(),
            cargo_bin().display()
        ),
        None => bail!(
            "bpf-linker still not found after `cargo install`: is {} writable?",
            cargo_bin().display()
        ),
    }
}

/// Where bpf-linker was found (PATH first, then cargo's bin directory) and
/// the version it reports.
pub(crate) fn installed_version() -> Option<(PathBuf, String)> {
    [PathBuf::from("bpf-linker"), cargo_bin().join("bpf-linker")]
        .into_iter()
        .find_map(|path| {
            let out = cmd::probe(Command::new(&path).arg("--version"))?;
            Some((path, parse_version(&out)?.to_owned()))
        })
}

fn in_path() -> bool {
    cmd::probe(Command::new("bpf-linker").arg("--version")).is_some()
}

/// Where `cargo install` puts binaries.
fn cargo_bin() -> PathBuf {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin")
}

/// `bpf-linker 0.10.0` -> `0.10.0`.
fn parse_version(output: &str) -> Option<&str> {
    let mut words = output.split_whitespace();
    if words.next()? != "bpf-linker" {
        return None;
    }
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_version_line() {
        assert_eq!(parse_version("bpf-linker 0.10.0\n"), Some("0.10.0"));
        assert_eq!(parse_version("something 1.0"), None);
        assert_eq!(parse_version(""), None);
    }
}
