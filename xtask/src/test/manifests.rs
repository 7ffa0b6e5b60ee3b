//! The Kubernetes manifests (policy-userspace/deploy/kubernetes): every one
//! checked by kubernetes-validate against the API schemas of the oldest and
//! the newest Kubernetes they are written for, strictly (an unknown field is
//! an error, as a typo would otherwise be silently dropped by the API
//! server); a copy of the DaemonSet with a misspelled field must be refused,
//! so that the check cannot pass by checking nothing. Then what the schemas
//! cannot know: the ConfigMap's policy layers pass `policyd check`, and every
//! flag the DaemonSet gives `policyd run` exists.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, bail};

use crate::{bootstrap::kube_validate, build_cmd::target_dir, paths};

/// 1.30 is the first with `securityContext.appArmorProfile`; 1.37 the
/// newest the pinned kubernetes-validate bundles.
const VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The self-check's misspelling, and what the validator must say about it.
const FIELD: &str = "      hostNetwork: true\n";
const MISSPELLED: &str = "      hostNetwrok: true\n";
const REFUSAL: &str = "'hostNetwrok' was unexpected";

/// Reads the manifests with the venv's PyYAML (a dependency of the
/// validator): writes the ConfigMap's keys as files into argv[2], prints the
/// DaemonSet container's arguments one a line.
const EXTRACT: &str = r#"
import pathlib, sys, yaml
out = pathlib.Path(sys.argv[2])
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        if doc["kind"] == "ConfigMap":
            for key, text in doc["data"].items():
                (out / key).write_text(text)
        if doc["kind"] == "DaemonSet":
            for arg in doc["spec"]["template"]["spec"]["containers"][0]["args"]:
                print(arg)
"#;

pub(super) fn check(policyd: &Path) -> anyhow::Result<()> {
    let dir = paths::workspace_root()
        .join("policy-userspace")
        .join("deploy")
        .join("kubernetes");
    let manifests = manifests(&dir)?;
    for version in VERSIONS {
        let out = validate(&manifests, version)?;
        if !out.status.success() {
            bail!(
                "kubernetes-validate refused the manifests for Kubernetes {version}:\n{}",
                text(&out)
            );
        }
        print!("{}", text(&out));
    }
    self_check(&dir)?;
    policy_and_flags(&dir, policyd)
}

/// The `*.yaml` files of `dir`, in name order.
fn manifests(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no manifests in {}", dir.display());
    }
    Ok(files)
}

fn validate(files: &[PathBuf], version: &str) -> anyhow::Result<Output> {
    let mut validate = Command::new(kube_validate::program());
    validate.args(["--strict", "--kubernetes-version", version]);
    validate.args(files);
    eprintln!("$ {}", crate::cmd::describe(&validate));
    validate
        .output()
        .context("could not run kubernetes-validate (cargo xtask bootstrap installs it)")
}

fn self_check(dir: &Path) -> anyhow::Result<()> {
    let daemonset =
        std::fs::read_to_string(dir.join("daemonset.yaml")).context("reading daemonset.yaml")?;
    if !daemonset.contains(FIELD) {
        bail!("daemonset.yaml has no `{}` to misspell", FIELD.trim());
    }
    let scratch = scratch_dir("manifest-self-check")?;
    let bad = scratch.join("daemonset-misspelled.yaml");
    std::fs::write(&bad, daemonset.replacen(FIELD, MISSPELLED, 1))
        .with_context(|| format!("writing {}", bad.display()))?;
    let out = validate(&[bad], VERSIONS[0])?;
    let said = text(&out);
    if out.status.success() || !said.contains(REFUSAL) {
        bail!(
            "kubernetes-validate accepted a DaemonSet with `{}` ({}), or refused it for \
             another reason; it checks nothing:\n{said}",
            MISSPELLED.trim(),
            out.status
        );
    }
    print!("self-check, refused as it must be: {said}");
    Ok(())
}

fn policy_and_flags(dir: &Path, policyd: &Path) -> anyhow::Result<()> {
    let layers = scratch_dir("configmap-policy")?;
    let mut extract = Command::new(kube_validate::python());
    extract.args(["-c", EXTRACT]).arg(dir).arg(&layers);
    let out = extract
        .output()
        .context("could not run the venv's python")?;
    if !out.status.success() {
        bail!("reading the manifests failed:\n{}", text(&out));
    }
    let args = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut check = Command::new(policyd);
    check.args(["check", "--quiet"]).arg(&layers);
    crate::cmd::run(&mut check).context("the ConfigMap's policy does not pass `policyd check`")?;

    let help = Command::new(policyd)
        .args(["run", "--help"])
        .output()
        .context("could not run `policyd run --help`")?;
    let help = String::from_utf8_lossy(&help.stdout);
    let unknown = unknown_flags(&args, &help);
    if !unknown.is_empty() {
        bail!(
            "daemonset.yaml gives `policyd run` flags it does not have: {}",
            unknown.join(", ")
        );
    }
    println!("ConfigMap policy checked; DaemonSet flags known to `policyd run`");
    Ok(())
}

/// The `--flags` in `args` (one argument a line, `--flag=value` or
/// `--flag`) that `help` does not list.
fn unknown_flags<'a>(args: &'a str, help: &str) -> Vec<&'a str> {
    args.lines()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split_once('=').map_or(a, |(flag, _)| flag))
        .filter(|flag| {
            !help
                .split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == *flag)
        })
        .collect()
}

/// An emptied directory under the target directory's tools/.
fn scratch_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("tools").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::unknown_flags;

    #[test]
    fn flags_are_looked_up_whole_without_their_values() {
        let help = "      --metrics-addr <ADDR:PORT>\n  -p, --policy <FILE|DIR>\n";
        let args = "run\n--policy=/etc\n--metrics-addr=$(HOST_IP):9617\n--metrics\n--iface=eth1\n";
        assert_eq!(unknown_flags(args, help), vec!["--metrics", "--iface"]);
    }
}
