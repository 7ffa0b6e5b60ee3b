//! Debian packages the end-to-end tests, the lab and the benchmarks run.

use std::{collections::HashSet, process::Command};

use anyhow::{Context as _, bail};

use super::Outcome;
use crate::{cmd, privileges};

/// Each package with what the project uses it for.
const PACKAGES: &[(&str, &str)] = &[
    (
        "iproute2",
        "`ip netns`/veth for the test hosts, HTB/TBF baselines in benchmarks",
    ),
    ("iperf3", "traffic for the lab and benchmarks"),
    (
        "nftables",
        "the nftables baselines in benchmarks; quiet veth pairs for the test hosts (no MLD)",
    ),
    (
        "procps",
        "`sysctl`: quiet veth pairs for the test hosts (no DAD or router solicitations)",
    ),
    ("iptables", "the iptables hashlimit baseline in benchmarks"),
    ("bpftool", "inspecting loaded programs and maps"),
    ("xdp-tools", "xdp-filter, the XDP baseline in benchmarks"),
    ("tcpdump", "capturing test traffic"),
    // The binary only: the `dnsmasq` package's postinst would enable and
    // start a DNS service on the host itself.
    (
        "dnsmasq-base",
        "a real DNS server inside test namespaces (the DNS-learned domain sets' tests)",
    ),
    (
        "prometheus",
        "`promtool check metrics` / `test rules`, and a real Prometheus scraping policyd in the tests",
    ),
    (
        "python3-venv",
        "a venv for kubernetes-validate, which checks the Kubernetes manifests",
    ),
    (
        "systemd",
        "`systemd-analyze verify` on the packaged unit (systemd need not be running)",
    ),
    ("man-db", "`man` rendering the packaged manual pages"),
];

pub(super) fn ensure() -> anyhow::Result<Outcome> {
    let missing = missing_packages()?;
    if missing.is_empty() {
        eprintln!("ok: Debian packages ({})", names(PACKAGES).join(" "));
        return Ok(Outcome::AlreadyPresent);
    }
    for (name, why) in &missing {
        eprintln!("installing Debian package {name}: {why}");
    }
    let missing = names(&missing);
    if privileges::effective_uid()? != 0 {
        bail!(
            "missing Debian packages, and installing them needs root: run \
             `sudo apt-get install {}`, then `cargo xtask bootstrap` again",
            missing.join(" ")
        );
    }
    cmd::run(Command::new("apt-get").arg("update"))
        .context("`apt-get update` failed: check the apt sources and the network")?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
    .context("`apt-get install` failed: see its output above")?;
    let still_missing = missing_packages()?;
    if !still_missing.is_empty() {
        bail!(
            "still not installed after apt-get: {}",
            names(&still_missing).join(" ")
        );
    }
    eprintln!("ok: Debian packages installed");
    Ok(Outcome::Installed)
}

fn missing_packages() -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    // One dpkg-query for all packages keeps the already-installed case fast.
    // It exits non-zero when it knows nothing of some package, yet still
    // prints the rest, so its exit status is not consulted.
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Package}\t${Status}\n"])
        .args(names(PACKAGES))
        .output()
        .with_context(|| {
            format!(
                "cannot run dpkg-query: bootstrap installs system packages on Debian/Ubuntu \
                 only; elsewhere install these by hand: {}",
                names(PACKAGES).join(" ")
            )
        })?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let installed = installed_names(&listing);
    Ok(PACKAGES
        .iter()
        .filter(|(name, _)| !installed.contains(name))
        .copied()
        .collect())
}

/// Names whose status is `install ok installed` in dpkg-query's
/// `${Package}\t${Status}` lines.
fn installed_names(listing: &str) -> HashSet<&str> {
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(name, _)| name)
        .collect()
}

fn names(packages: &[(&'static str, &str)]) -> Vec<&'static str> {
    packages.iter().map(|(name, _)| *name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fully_installed_packages_count() {
        let listing = "iproute2\tinstall ok installed\n\
                       iperf3\tdeinstall ok config-files\n\
                       tcpdump\tinstall ok installed\n";
        let installed = installed_names(listing);
        assert_eq!(installed, HashSet::from(["iproute2", "tcpdump"]));
    }

    #[test]
    fn dnsmasq_comes_without_its_system_service() {
        let listed = names(PACKAGES);
        assert!(listed.contains(&"dnsmasq-base"));
        assert!(
            !listed.contains(&"dnsmasq"),
            "the dnsmasq package starts a DNS service on the host"
        );
    }
}
