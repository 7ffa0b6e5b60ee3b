//! Project tasks for policyd, run as `cargo xtask <task>`.
//!
//! xtask depends on nothing that needs the BPF toolchain, so it builds on a
//! bare machine and can install that toolchain (`cargo xtask bootstrap`).

mod bench;
mod bootstrap;
mod build_cmd;
mod cmd;
mod lab;
mod package;
mod paths;
mod privileges;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "policyd project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the nightly toolchain, rust-src, bpf-linker and the Debian
    /// packages the tests use; does nothing when all are present.
    Bootstrap,
    /// Bootstrap, then build policyd with its embedded kernel programs.
    Build(build_cmd::BuildArgs),
    /// Bootstrap, then fmt, clippy (host and kernel crates), build and tests.
    Test(test::TestArgs),
    /// Bootstrap, build, and run policyd in a network-namespace lab.
    Lab(lab::LabArgs),
    /// Measure per-packet cost, scale and rate accuracy; write BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Bootstrap, build the release policyd and make a `.deb` of it: the
    /// binary, the systemd unit, /etc/policyd/, manual pages, completions.
    Package(package::PackageArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Bootstrap => bootstrap::run(),
        Task::Build(args) => build_cmd::run(&args),
        Task::Test(args) => test::run(&args),
        Task::Lab(args) => lab::run(args),
        Task::Bench(args) => bench::run(&args),
        Task::Package(args) => package::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole context chain, one cause per line, and no backtrace:
            // the messages say what to do, a stack trace would bury them.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
