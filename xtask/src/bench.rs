//! `cargo xtask bench`: measures policyd (per-packet cost with test runs,
//! scale, rate accuracy against nftables) and writes BENCHMARKS.md with the
//! machine, kernel, date and the exact command. `--quick` checks the harness
//! in well under a minute of measuring and prints instead of writing.

use std::{fmt::Write as _, process::Command};

use anyhow::Context as _;

use crate::{bootstrap, build_cmd, cmd, paths, privileges};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Few repeats, small sizes; print the tables, leave BENCHMARKS.md alone.
    #[arg(long)]
    pub quick: bool,
}

fn probe(program: &str, args: &[&str]) -> String {
    cmd::probe(Command::new(program).args(args)).unwrap_or_else(|| "unknown".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The benchmark harness (the `bench` example of the tests package) with
/// the policyd binary of the same profile; arguments go after it.
pub fn command(release: bool) -> Command {
    let profile = if release { "release" } else { "debug" };
    let mut bench = build_cmd::cargo();
    bench
        .env(
            "POLICYD_BIN",
            build_cmd::target_dir().join(profile).join("policyd"),
        )
        .args(["run", "--quiet"])
        .args(release.then_some("--release"))
        .args(["-p", "policyd-tests", "--example", "bench", "--"]);
    bench
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    privileges::require("bench")?;
    bootstrap::run()?;
    cmd::run(&mut build_cmd::build_policyd(true))?;
    let mut bench = command(true);
    if args.quick {
        bench.arg("--quick");
        return cmd::run(&mut bench);
    }
    eprintln!("$ {}", cmd::describe(&bench));
    let out = bench.output().context("could not run the benchmark")?;
    if !out.status.success() {
        anyhow::bail!(
            "the benchmark failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables = String::from_utf8(out.stdout).context("benchmark output is not UTF-8")?;
    let mut doc = String::new();
    let _ = writeln!(doc, "# Benchmarks\n");
    let _ = writeln!(
        doc,
        "Measured by `cargo xtask bench` (as root), which rewrites this file. Machine: {} ({} CPUs), \
         kernel {}, {}.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, usize::from),
        probe("uname", &["-r"]),
        probe("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    );
    doc.push_str(&tables);
    let path = paths::workspace_root().join("BENCHMARKS.md");
    std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
