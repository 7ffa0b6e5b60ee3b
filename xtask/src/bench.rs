//! `cargo xtask bench`: measures policyd beside the alternatives (per-packet
//! cost against xdp-filter, scale and map memory, drop throughput against
//! nftables, rate accuracy and fairness against nftables, hashlimit, HTB
//! and TBF, the control plane), marks issue 10's goals met or missed from
//! the same run, and writes BENCHMARKS.md with the machine, kernel, date
//! and the exact command, and SVG plots under docs/bench/.
//! `--quick` checks the harness in about a minute and prints instead of
//! writing.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::Context as _;

use crate::{bootstrap, build_cmd, cmd, paths, privileges};

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
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

/// What every run of the harness produces: its Markdown tables (each
/// opens with `### `) and its plots.
pub(crate) const TABLES: usize = 15;
pub(crate) const PLOTS: [&str; 7] = [
    "cost.svg",
    "scale.svg",
    "memory.svg",
    "drop.svg",
    "rate-tcp.svg",
    "rate-udp.svg",
    "fairness.svg",
];

/// The harness's `bench: part ...` lines from its captured stderr: where a
/// run's time went.
pub(crate) fn print_part_times(stderr: &[u8]) {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("bench: "))
        .for_each(|l| eprintln!("{l}"));
}

/// Checks a run's output: every table printed and every plot written.
pub(crate) fn check_output(tables: &str, plot_dir: &Path) -> anyhow::Result<()> {
    let n = tables.lines().filter(|l| l.starts_with("### ")).count();
    if n != TABLES {
        anyhow::bail!("the benchmark harness printed {n} of {TABLES} tables:\n{tables}");
    }
    let missing: Vec<&str> = PLOTS
        .iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(plot_dir.join(p)).map_or(true, |svg| !svg.contains("<svg"))
        })
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the benchmark harness did not write {} in {}",
            missing.join(", "),
            plot_dir.display()
        );
    }
    Ok(())
}

/// The benchmark harness (the `bench` example of the tests package) with
/// the policyd binary of the same profile; arguments go after it.
pub(crate) fn command(release: bool) -> Command {
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

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    privileges::require("bench")?;
    bootstrap::run()?;
    cmd::run(&mut build_cmd::build_policyd(true))?;
    let mut bench = command(true);
    if args.quick {
        let plots = build_cmd::target_dir().join("bench-quick-plots");
        bench.arg("--quick").arg("--plots").arg(&plots);
        cmd::run(&mut bench)?;
        eprintln!("plots (quick, not kept): {}", plots.display());
        return Ok(());
    }
    let plots = paths::workspace_root().join("docs").join("bench");
    bench.arg("--plots").arg(&plots);
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
    check_output(&tables, &plots)?;
    print_part_times(&out.stderr);
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
    let _ = writeln!(
        doc,
        "Plots of these tables are in [docs/bench/](docs/bench/): {}.\n",
        PLOTS
            .iter()
            .map(|p| format!("[{p}](docs/bench/{p})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    doc.push_str(&tables);
    let path = paths::workspace_root().join("BENCHMARKS.md");
    std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
