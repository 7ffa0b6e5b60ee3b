//! The `policyd` command line. One file per subcommand; this module only
//! parses arguments, sets up logging and maps results to exit codes.

mod check;
mod replay;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Acceptable-use enforcement for Linux hosts, in the kernel.
///
/// policyd identifies the user behind every packet (by address, CIDR, MAC
/// or socket owner), classifies it (mail, bulk transfers, webmail, ...) and
/// allows, drops, rate-limits or counts it per user and class with eBPF
/// programs attached at XDP and TC, according to a TOML policy file.
#[derive(Debug, Parser)]
#[command(name = "policyd", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Check(check::CheckArgs),
    Replay(replay::ReplayArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(&args),
        Command::Replay(args) => replay::replay(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("policyd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or journald
    // would get raw escape sequences.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
