//! `cargo xtask test`: every check CI runs, in order, stopping at the first
//! failure: fmt, clippy on the host crates, clippy on the kernel crate,
//! building policyd, checking the Kubernetes manifests, then all tests (the
//! end-to-end ones load eBPF, so this needs root), then one quick pass of
//! the benchmark harness and the package test (build, install, run and
//! purge the `.deb`).

mod manifests;
mod steps;
mod tally;

use std::{env, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap::{self, bpf_linker},
    build_cmd::{self, cargo, target_dir},
    cmd, paths, privileges,
};
use steps::Steps;
use tally::Tally;

/// The host crates; the kernel crate is linted in its own pass.
const HOST_PACKAGES: [&str; 4] = [
    "policy-common",
    "policy-userspace",
    "policyd-tests",
    "xtask",
];

#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// Passed to the test binaries, e.g. `cargo xtask test -- --nocapture`.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    if env::var_os("CI").is_some() {
        print_versions();
    }
    privileges::require("test")?;
    let mut steps = Steps::default();
    let mut tally = None;
    let result = run_steps(&mut steps, &mut tally, args);
    steps.print_timings();
    if let Some(tally) = tally {
        println!("{tally}");
    }
    result
}

fn run_steps(steps: &mut Steps, tally: &mut Option<Tally>, args: &TestArgs) -> anyhow::Result<()> {
    steps.run("bootstrap", bootstrap::run)?;
    steps.run("fmt", || {
        cmd::run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    steps.run("clippy (host crates)", || {
        let mut clippy = cargo();
        clippy.arg("clippy");
        for package in HOST_PACKAGES {
            clippy.args(["-p", package]);
        }
        cmd::run(clippy.args(["--all-targets", "--", "-D", "warnings"]))
    })?;
    steps.run("clippy (kernel crate)", || cmd::run(&mut kernel_clippy()))?;
    steps.run("build policyd", || {
        cmd::run(&mut build_cmd::build_policyd(false))
    })?;
    steps.run("kubernetes manifests", || {
        manifests::check(&target_dir().join("debug").join("policyd"))
    })?;
    // Built here so that the quick bench step below times the harness
    // running, not compiling.
    steps.run("build the bench harness", || {
        cmd::run(cargo().args(["build", "-p", "policyd-tests", "--example", "bench"]))
    })?;
    steps.run("tests", || {
        let (result, counted) = run_tests(args);
        *tally = Some(counted);
        result?;
        if counted.failed > 0 || counted.failed_binaries > 0 {
            bail!("{} tests failed", counted.failed);
        }
        if counted.passed == 0 {
            bail!("no test passed: were they all filtered out or ignored?");
        }
        Ok(())
    })?;
    // Only with the whole suite: a filtered run (`-- NAME`) is someone
    // chasing one test.
    if args.test_args.is_empty() {
        steps.run("bench --quick (harness check)", quick_bench)?;
        steps.run(
            "package (.deb: build, inspect, install, run, purge)",
            crate::package::check,
        )?;
    }
    Ok(())
}

/// The benchmark harness, once, small and unoptimised (`cargo xtask bench
/// --quick` in debug): it must run, print every table and write every
/// plot. The numbers are not checked; `cargo xtask bench` measures.
fn quick_bench() -> anyhow::Result<()> {
    let plots = target_dir().join("bench-quick-plots");
    // A plot left by an earlier run must not pass for one written now.
    let _ = std::fs::remove_dir_all(&plots);
    let mut bench = crate::bench::command(false);
    bench.arg("--quick").arg("--plots").arg(&plots);
    eprintln!("$ {}", cmd::describe(&bench));
    let out = bench
        .output()
        .context("could not run the benchmark harness")?;
    let tables = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the benchmark harness failed ({}):\n{tables}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    crate::bench::check_output(&tables, &plots)?;
    print!("{tables}");
    crate::bench::print_part_times(&out.stderr);
    Ok(())
}

/// Lints the kernel crate as aya-build compiles it: nightly, the BPF target,
/// `core` built from source, and the `bpf_target_arch` cfg aya-ebpf reads.
/// Its own target directory keeps these artifacts from evicting the host ones.
fn kernel_clippy() -> Command {
    let target = if cfg!(target_endian = "big") {
        "bpfeb-unknown-none"
    } else {
        "bpfel-unknown-none"
    };
    let mut clippy = Command::new("cargo");
    clippy
        .current_dir(paths::workspace_root().join("policy-ebpf"))
        // Whatever toolchain xtask runs under must not leak into `+nightly`.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH),
        )
        .args([
            "+nightly",
            "clippy",
            "--package",
            "policy-ebpf",
            "--release",
        ])
        .args(["--target", target, "-Z", "build-std=core", "--target-dir"])
        .arg(target_dir().join("ebpf-clippy"))
        .args(["--", "-D", "warnings"]);
    clippy
}

/// The packages of each tier: the unprivileged one runs as any user (a plain
/// `cargo test` runs the same), the privileged one loads eBPF programs and
/// makes network namespaces.
const TIERS: [(&str, &[&str]); 2] = [
    (
        "unprivileged",
        &["policy-common", "policy-userspace", "xtask"],
    ),
    ("privileged", &["policyd-tests"]),
];

/// Runs both tiers, streaming their output while counting results; every
/// tier runs even after one fails, so the totals are whole. Returns the
/// count even when cargo fails, so the closing line is still printed.
fn run_tests(args: &TestArgs) -> (anyhow::Result<()>, Tally) {
    let mut total = Tally::default();
    let policyd = target_dir().join("debug").join("policyd");
    if !policyd.is_file() {
        let err = anyhow::anyhow!("{} is missing after the build", policyd.display());
        return (Err(err), total);
    }
    let mut result = Ok(());
    let mut per_tier = Vec::new();
    for (tier, packages) in TIERS {
        eprintln!("\n--> tests, {tier} tier");
        let mut tally = Tally::default();
        let mut test = cargo();
        test.env("POLICYD_BIN", &policyd).arg("test");
        if tier == "unprivileged" {
            unprivileged_runner(&mut test, &policyd);
        }
        for package in packages {
            test.args(["-p", package]);
        }
        // Every test binary runs even after one fails, so the totals are whole.
        test.arg("--no-fail-fast");
        if !args.test_args.is_empty() {
            test.arg("--").args(&args.test_args);
        }
        let ran = cmd::run_streaming(&mut test, |line| tally.add_line(line)).with_context(|| {
            format!("some {tier} tests failed or did not build: see the output above")
        });
        if result.is_ok() {
            result = ran;
        }
        total.merge(&tally);
        per_tier.push((tier, tally));
    }
    for (tier, tally) in per_tier {
        println!("{tier}: {tally}");
    }
    (result, total)
}

/// Runs the unprivileged tier's test binaries as `nobody` (through cargo's
/// target runner), so that a test there that needs root fails here rather
/// than on a user's machine. Where `nobody` cannot reach the build (a
/// checkout under a private home directory) they run as we do, and say so.
fn unprivileged_runner(test: &mut Command, policyd: &std::path::Path) {
    const NOBODY: [&str; 4] = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let reachable = Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .arg(policyd)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !reachable {
        eprintln!(
            "note: user `nobody` cannot run {}; the unprivileged tier runs as the current user",
            policyd.display()
        );
        return;
    }
    let var = format!(
        "CARGO_TARGET_{}_UNKNOWN_LINUX_GNU_RUNNER",
        env::consts::ARCH.to_uppercase()
    );
    test.env(var, NOBODY.join(" "));
}

fn print_versions() {
    let version = |cmd: &mut Command| cmd::probe(cmd).unwrap_or_else(|| "not installed".into());
    eprintln!("rustc: {}", version(Command::new("rustc").arg("--version")));
    eprintln!(
        "nightly rustc: {}",
        version(Command::new("rustc").args(["+nightly", "--version"]))
    );
    let linker = bpf_linker::installed_version().map_or_else(
        || "not installed".into(),
        |(path, v)| {
            let place = if path.is_absolute() {
                path.display().to_string()
            } else {
                "in PATH".to_owned()
            };
            format!("{v} ({place})")
        },
    );
    eprintln!("bpf-linker: {linker}");
}
