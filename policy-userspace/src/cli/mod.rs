//! The `policyd` command line. One file per subcommand; this module only
//! parses arguments, sets up logging and maps results to exit codes.

mod ceilings;
mod check;
mod explain;
mod release;
mod reload;
mod replay;
mod run;
mod status;
mod top;
mod unload;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

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
    Explain(explain::ExplainArgs),
    Unload(unload::UnloadArgs),
    Release(release::ReleaseArgs),
    Status(status::StatusArgs),
    Top(top::TopArgs),
    /// Print the built-in acceptable-use baseline policy (what `run` enforces
    /// without --policy): a starting point to copy and edit.
    DefaultPolicy,
    /// Print a shell completion script, e.g.
    /// `policyd completions bash > /etc/bash_completion.d/policyd`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(&args),
        Command::Replay(args) => replay::replay(&args),
        Command::Explain(args) => explain::explain(&args),
        Command::Unload(args) => unload::unload(&args),
        Command::Release(args) => release::release(&args),
        Command::Status(args) => status::status(&args),
        Command::Top(args) => top::top(&args),
        Command::DefaultPolicy => write_stdout(crate::policy::BASELINE.as_bytes()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "policyd", &mut script);
            write_stdout(&script)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("policyd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The profile slot to enforce: `name` when given (it must be one of the
/// policy's), else the one its schedules give at the clock's time.
fn profile_index(
    policy: &crate::policy::Policy,
    compiled: &crate::policy::CompiledPolicy,
    name: Option<&str>,
    clock: &crate::schedule::Clock,
) -> anyhow::Result<usize> {
    match name {
        Some(name) => compiled.profile(name).ok_or_else(|| {
            anyhow::anyhow!(
                "the policy has no profile `{name}`; it has: {}",
                compiled.profiles.join(", ")
            )
        }),
        None => Ok(crate::schedule::active_profile(
            &policy.schedules,
            &policy.settings.timezone,
            clock.now(),
        )),
    }
}

/// Fails unless `policyd run` pinned its state under `dir` (the readers of
/// pinned state, `status` and `top`, start here).
fn require_pins(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join(policy_common::MAP_GENERATION).exists() {
        anyhow::bail!(
            "nothing is pinned at {}: policyd is not enforcing there",
            dir.display()
        );
    }
    Ok(())
}

/// The policy files given to a reader of pinned state, compiled to name
/// what the kernel knows by number; `None` when none were given.
fn names_from(
    policies: &[std::path::PathBuf],
) -> anyhow::Result<Option<crate::policy::CompiledPolicy>> {
    if policies.is_empty() {
        return Ok(None);
    }
    let layered = crate::policy::load_layers(policies)?;
    Ok(Some(crate::policy::CompiledPolicy::compile(
        &layered.policy,
    )))
}

/// Writes `bytes` to standard output; a reader that went away (`| head`) is
/// not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
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
