//! The package test (a step of `cargo xtask test`): build the `.deb` from
//! the debug binary the test run already built (a release build would cost
//! minutes; `cargo xtask package` makes that one), read it back with
//! `dpkg-deb`, install it on this machine with `dpkg -i`, check what landed
//! with the tools that consume it (`systemd-analyze verify`, `man`, bash,
//! policyd itself, then the unit's own command line run as systemd would),
//! and purge it, leaving nothing behind.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail, ensure};

use super::{
    BASELINE, BINARY, COMPLETIONS, CONF, Compression, LOGROTATE, MAN_DIR, UNIT, build_deb, service,
};
use crate::{build_cmd::target_dir, cmd};

/// The pin directory the packaged configuration names: the package's
/// removal unloads whatever is there.
const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/policyd";

pub(crate) fn check() -> anyhow::Result<()> {
    refuse_to_touch_a_real_install()?;
    let binary = target_dir().join("debug").join("policyd");
    let deb = build_deb(&binary, &target_dir().join("deb-test"), Compression::Fast)?;
    let version = inspect(&deb)?;
    let installed = Installed::install(&deb)?;
    check_installed(&version)?;
    service::run_as_the_unit()?;
    installed.purge()
}

/// The test installs and purges a package named policyd: never on a machine
/// where one is installed, nor where something else owns its paths or
/// enforcement is pinned where the package's removal would unload it.
fn refuse_to_touch_a_real_install() -> anyhow::Result<()> {
    if installed_status().is_some() {
        bail!(
            "a policyd package is installed on this machine; the package test would replace \
             and purge it (`dpkg --purge policyd` first, if it is a leftover)"
        );
    }
    for path in [
        Path::new("/").join(BINARY),
        Path::new("/etc/policyd").into(),
    ] {
        if path.exists() {
            bail!(
                "{} exists and no package owns it; the package test would overwrite or remove it",
                path.display()
            );
        }
    }
    if Path::new(DEFAULT_PIN_DIR).exists() {
        bail!("{DEFAULT_PIN_DIR} holds enforcement; removing the test package would unload it");
    }
    Ok(())
}

/// dpkg's status line for policyd, when it knows the package at all.
fn installed_status() -> Option<String> {
    cmd::probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", "policyd"]))
        .filter(|s| !s.is_empty() && s != "unknown ok not-installed")
}

/// `dpkg-deb -I` and `-c`: the control fields, the maintainer scripts and
/// every file where it belongs with its owner and mode. Returns the version.
fn inspect(deb: &Path) -> anyhow::Result<String> {
    let info = captured(Command::new("dpkg-deb").arg("-I").arg(deb))?;
    print!("{info}");
    for want in [
        "Package: policyd",
        "Depends: libc6 (>= 2.",
        "Architecture: ",
        " postinst",
        " prerm",
        " postrm",
        " conffiles",
    ] {
        ensure!(info.contains(want), "`dpkg-deb -I` shows no `{want}`");
    }
    let version = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version: "))
        .context("`dpkg-deb -I` shows no version")?
        .to_owned();

    let listing = captured(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    print!("{listing}");
    let mut expected = vec![
        ("-rwxr-xr-x", BINARY.to_owned()),
        ("-rw-r--r--", UNIT.to_owned()),
        ("-rw-r--r--", CONF.to_owned()),
        ("-rw-r--r--", BASELINE.to_owned()),
        ("-rw-r--r--", LOGROTATE.to_owned()),
    ];
    for page in ["policyd", "policyd-run", "policyd-check", "policyd-unload"] {
        expected.push(("-rw-r--r--", format!("{MAN_DIR}/{page}.1.gz")));
    }
    for (_, path) in COMPLETIONS {
        expected.push(("-rw-r--r--", path.to_owned()));
    }
    for (mode, path) in &expected {
        let found = listing.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.first() == Some(mode)
                && fields.get(1) == Some(&"root/root")
                && fields.last() == Some(&format!("./{path}").as_str())
        });
        ensure!(found, "`dpkg-deb -c` has no {mode} root/root ./{path}");
    }
    // Where layered policies go: shipped even when the baseline is removed.
    ensure!(
        listing.lines().any(
            |l| l.starts_with("drwxr-xr-x root/root") && l.ends_with("./etc/policyd/policy.d/")
        ),
        "`dpkg-deb -c` has no directory ./etc/policyd/policy.d/"
    );
    Ok(version)
}

/// The package installed with `dpkg -i`; purged when dropped, so that a
/// failed check leaves the machine as it was.
struct Installed {
    purged: bool,
}

impl Installed {
    fn install(deb: &Path) -> anyhow::Result<Self> {
        let out = captured(Command::new("dpkg").arg("-i").arg(deb))?;
        print!("{out}");
        Ok(Self { purged: false })
    }

    /// `dpkg --purge`, then nothing of the package may be left.
    fn purge(mut self) -> anyhow::Result<()> {
        self.purged = true;
        let out = captured(Command::new("dpkg").args(["--purge", "policyd"]))?;
        print!("{out}");
        ensure!(
            installed_status().is_none(),
            "dpkg still knows policyd after the purge: {:?}",
            installed_status()
        );
        for path in [
            format!("/{BINARY}"),
            format!("/{UNIT}"),
            "/etc/policyd".to_owned(),
            format!("/{LOGROTATE}"),
            "/var/log/policyd".to_owned(),
            "/etc/systemd/system/multi-user.target.wants/policyd.service".to_owned(),
        ] {
            ensure!(
                std::fs::symlink_metadata(&path).is_err(),
                "{path} is left after `dpkg --purge policyd`"
            );
        }
        Ok(())
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let _ = Command::new("dpkg").args(["--purge", "policyd"]).status();
        }
    }
}

/// What landed, checked by what reads it.
fn check_installed(version: &str) -> anyhow::Result<()> {
    let unit = format!("/{UNIT}");
    // It loads the unit as systemd would, ExecStart's binary included, and
    // exits non-zero on an error; a warning about our unit fails too.
    let verify = captured(Command::new("systemd-analyze").args(["verify", &unit]))?;
    print!("{verify}");
    ensure!(
        !verify.contains("policyd.service"),
        "systemd-analyze verify has something to say about the unit:\n{verify}"
    );

    let reported = captured(Command::new(format!("/{BINARY}")).arg("--version"))?;
    ensure!(
        reported.trim() == format!("policyd {version}"),
        "/{BINARY} --version says {reported:?}, the package {version}"
    );
    // The shipped policy directory is valid as shipped.
    captured(Command::new(format!("/{BINARY}")).args(["check", "/etc/policyd/policy.d"]))?;

    let conffiles =
        captured(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "policyd"]))?;
    for file in [CONF, BASELINE, LOGROTATE] {
        ensure!(
            conffiles.contains(&format!("/{file} ")),
            "dpkg does not hold /{file} as a conffile:\n{conffiles}"
        );
    }

    // man finds the page where it was installed and renders it without a
    // warning from groff.
    let found = captured(Command::new("man").args(["-w", "policyd-run"]))?;
    ensure!(
        found.trim() == format!("/{MAN_DIR}/policyd-run.1.gz"),
        "`man -w policyd-run` found {found:?}"
    );
    let mut render = Command::new("man");
    render
        .env("MANWIDTH", "80")
        .args(["--warnings", "-P", "cat", "-l"])
        .arg(found.trim());
    let out = render.output().context("cannot run man")?;
    // Words as man filled them into lines.
    let page = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let warnings = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && warnings.trim().is_empty(),
        "man policyd-run: {warnings}"
    );
    ensure!(
        page.contains("with the POLICYD_PIN_DIR environment"),
        "the rendered policyd-run(1) does not name --pin-dir's variable:\n{page}"
    );

    let (_, bash) = COMPLETIONS[0];
    captured(
        Command::new("bash")
            .arg("-c")
            .arg(format!(". /{bash} && complete -p policyd")),
    )?;

    // Enabling works without systemd running (it only makes a link), and
    // the package's removal must undo it.
    captured(Command::new("systemctl").args(["enable", "policyd.service"]))?;
    Ok(())
}

/// Runs `cmd` (echoed) and returns its stdout and stderr together; fails
/// unless it exits 0.
pub(super) fn captured(cmd: &mut Command) -> anyhow::Result<String> {
    let line = cmd::describe(cmd);
    eprintln!("$ {line}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{line}`"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("`{line}` failed ({}):\n{text}", out.status);
    }
    Ok(text)
}
