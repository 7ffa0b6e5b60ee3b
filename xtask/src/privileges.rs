//! Whether this process may load eBPF programs and build network namespaces,
//! which the end-to-end tests and the lab do.
//!
//! Read from /proc/self/status rather than through libc so the check needs no
//! `unsafe` and can also see capabilities, which matter in containers where
//! root is not all-powerful.

use anyhow::{Context as _, bail};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Fails with a message saying how to get the privileges `task` needs.
pub(crate) fn require(task: &str) -> anyhow::Result<()> {
    let creds = Credentials::of_this_process()?;
    let missing = creds.missing_capabilities();
    if missing.is_empty() {
        return Ok(());
    }
    let missing = missing.join(", ");
    if creds.euid == 0 {
        bail!(
            "`cargo xtask {task}` runs as root but lacks {missing}: \
             it loads eBPF programs and creates network namespaces. \
             Run it where root has full capabilities (e.g. a --privileged container)."
        );
    }
    bail!(
        "`cargo xtask {task}` needs root (effective uid is {}, missing {missing}): \
         it loads eBPF programs and creates network namespaces. \
         Run it as root, e.g. `sudo -E env PATH=\"$PATH\" cargo xtask {task}`.",
        creds.euid
    );
}

pub(crate) fn effective_uid() -> anyhow::Result<u32> {
    Ok(Credentials::of_this_process()?.euid)
}

#[derive(Debug, PartialEq, Eq)]
struct Credentials {
    euid: u32,
    effective_caps: u64,
}

impl Credentials {
    fn of_this_process() -> anyhow::Result<Self> {
        let status = std::fs::read_to_string("/proc/self/status")
            .context("cannot read /proc/self/status to check privileges: is /proc mounted?")?;
        Self::parse(&status).context("cannot find Uid/CapEff in /proc/self/status")
    }

    fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        };
        // "Uid:" lists real, effective, saved and filesystem uid, in that order.
        let euid = field("Uid")?.split_whitespace().nth(1)?.parse().ok()?;
        let effective_caps = u64::from_str_radix(field("CapEff")?.trim(), 16).ok()?;
        Some(Self {
            euid,
            effective_caps,
        })
    }

    /// Network namespaces and links need CAP_NET_ADMIN; loading programs
    /// needs CAP_BPF, or CAP_SYS_ADMIN on kernels older than 5.8.
    fn missing_capabilities(&self) -> Vec<&'static str> {
        let has = |cap: u32| self.effective_caps & (1 << cap) != 0;
        let mut missing = Vec::new();
        if !has(CAP_NET_ADMIN) {
            missing.push("CAP_NET_ADMIN");
        }
        if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
            missing.push("CAP_BPF (or CAP_SYS_ADMIN)");
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "Name:\tcat\nUid:\t0\t0\t0\t0\nCapEff:\t000001fffeffffff\n";
    const USER: &str = "Uid:\t0\t1000\t1000\t1000\nCapEff:\t0000000000000000\n";

    #[test]
    fn parses_effective_uid_and_capabilities() {
        assert_eq!(
            Credentials::parse(USER),
            Some(Credentials {
                euid: 1000,
                effective_caps: 0
            })
        );
    }

    #[test]
    fn root_with_full_capabilities_is_privileged() {
        let creds = Credentials::parse(ROOT).unwrap_or_else(|| panic!("unparsed"));
        assert!(creds.missing_capabilities().is_empty());
    }

    #[test]
    fn plain_user_lacks_both() {
        let creds = Credentials::parse(USER).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(
            creds.missing_capabilities(),
            ["CAP_NET_ADMIN", "CAP_BPF (or CAP_SYS_ADMIN)"]
        );
    }

    #[test]
    fn net_admin_and_bpf_suffice_without_root() {
        let caps = (1u64 << CAP_NET_ADMIN) | (1 << CAP_BPF);
        let creds = Credentials {
            euid: 1000,
            effective_caps: caps,
        };
        assert!(creds.missing_capabilities().is_empty());
    }

    #[test]
    fn missing_fields_do_not_parse() {
        assert_eq!(Credentials::parse("Name:\tx\n"), None);
    }
}
