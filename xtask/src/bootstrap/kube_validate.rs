//! kubernetes-validate (PyPI), which checks the Kubernetes manifests in
//! policy-userspace/deploy/kubernetes against the API's JSON schemas, which
//! it bundles (no cluster needed). Installed into a venv in the target
//! directory, pinned with every dependency, so that every machine checks
//! with the same schemas and nothing is installed system-wide.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use super::Outcome;
use crate::{build_cmd::target_dir, cmd};

/// The tool and all it imports, pinned; installed with `--no-deps`, so
/// nothing unlisted comes in (an incomplete list fails the manifests step).
const REQUIREMENTS: &str = "\
kubernetes-validate==1.37.0
attrs==26.1.0
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
PyYAML==6.0.4
referencing==0.37.0
rpds-py==2026.9.1
typing_extensions==4.16.0
";

/// Debian's interpreter, for which the `python3-venv` package (apt.rs)
/// provides venv; another python3 earlier in PATH may lack it.
const PYTHON: &str = "/usr/bin/python3";

fn venv() -> PathBuf {
    target_dir().join("tools").join("kube-validate-venv")
}

/// The installed `kubernetes-validate`.
pub(crate) fn program() -> PathBuf {
    venv().join("bin").join("kubernetes-validate")
}

/// The venv's interpreter (which has PyYAML, a dependency of the tool).
pub(crate) fn python() -> PathBuf {
    venv().join("bin").join("python3")
}

/// Written last, after a successful install: the venv is complete and holds
/// exactly these pins.
fn stamp() -> PathBuf {
    venv().join("policyd-requirements.txt")
}

pub(super) fn ensure() -> anyhow::Result<Outcome> {
    let installed = std::fs::read_to_string(stamp()).unwrap_or_default();
    if installed == REQUIREMENTS && program().is_file() {
        eprintln!("ok: kubernetes-validate (in {})", venv().display());
        return Ok(Outcome::AlreadyPresent);
    }
    eprintln!(
        "installing kubernetes-validate into {}: it checks the Kubernetes manifests",
        venv().display()
    );
    let dir = venv();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    cmd::run(Command::new(PYTHON).args(["-m", "venv"]).arg(&dir)).with_context(|| {
        format!("`{PYTHON} -m venv` failed: is Debian's python3-venv installed?")
    })?;
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)
        .with_context(|| format!("writing {}", requirements.display()))?;
    cmd::run(
        Command::new(dir.join("bin").join("pip"))
            .args([
                "install",
                "--quiet",
                "--no-input",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
            ])
            .arg(&requirements),
    )
    .context("`pip install` failed: is PyPI reachable?")?;
    if !program().is_file() {
        bail!("{} is missing after pip install", program().display());
    }
    std::fs::write(stamp(), REQUIREMENTS)
        .with_context(|| format!("writing {}", stamp().display()))?;
    eprintln!("ok: kubernetes-validate installed");
    Ok(Outcome::Installed)
}
