//! `policyd check`: validate policy files without touching the kernel.

use std::path::PathBuf;

use anyhow::bail;

use crate::policy;

/// Validate policy files and print a summary; exit non-zero on any error.
#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// Policy files to validate.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub(super) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let mut failed = 0;
    for path in &args.files {
        match policy::load(path) {
            Ok(p) => {
                let denied = p
                    .users
                    .iter()
                    .filter(|u| u.action == policy::Action::Deny)
                    .count();
                println!(
                    "{}: ok: {} users ({} denied), unidentified: {}",
                    path.display(),
                    p.users.len(),
                    denied,
                    p.unidentified.as_str()
                );
            }
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} policy files are invalid", args.files.len());
    }
    Ok(())
}
