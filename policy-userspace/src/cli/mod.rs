//! The `policyd` command line. One file per subcommand; this module only
//! parses arguments, sets up logging and maps results to exit codes.

mod ceilings;
mod check;
mod explain;
mod learn;
mod logging;
mod notify;
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
    /// Write the manual pages (policyd.1 and one per subcommand) into DIR:
    /// for packaging, hence hidden.
    #[command(hide = true)]
    Man {
        dir: std::path::PathBuf,
    },
}

/// The whole command line, as the manual pages and completions describe it.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let stderr = logging::init();
    // A closed pipe ends a command that prints quietly; the daemon's exit
    // status must say it failed (a service manager restarts on it).
    let prints = !matches!(cli.command, Command::Run(_));
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
            clap_complete::generate(shell, &mut command(), "policyd", &mut script);
            write_stdout(&script)
        }
        Command::Man { dir } => write_man_pages(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `| head` closed the pipe: the reader has what it wanted.
        Err(e) if prints && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<replay::ReplayStatus>()
                .map_or(1, replay::ReplayStatus::exit_code);
            let text = format!("policyd: error: {e:#}");
            match stderr {
                logging::Stderr::Journal => {
                    eprint!("{}", logging::prefixed(tracing::Level::ERROR, &text));
                }
                logging::Stderr::Plain => eprintln!("{text}"),
            }
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// policyd(1) and policyd-SUBCOMMAND(1) for every subcommand shown in
/// `--help`, generated from the same definitions as the parser.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command(), dir)
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_page_for_the_command_and_each_shown_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        let mut expected = vec!["policyd.1".to_owned()];
        expected.extend(
            command()
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| format!("policyd-{}.1", s.get_name())),
        );
        expected.sort();
        assert_eq!(pages, expected);
        assert!(!pages.contains(&"policyd-man.1".to_owned()), "{pages:?}");
        let run = std::fs::read_to_string(dir.path().join("policyd-run.1")).unwrap();
        assert!(run.starts_with(".ie"), "not roff: {}", &run[..40]);
        assert!(run.contains(".TH policyd-run 1"), "{run}");
        // The variables policyd.service sets are documented with their
        // flags (the description names none of these).
        for var in ["POLICYD_PIN_DIR", "POLICYD_EVENTS", "POLICYD_UPLINK"] {
            assert!(run.contains(var), "{var} missing from\n{run}");
        }
    }
}
