//! `policyd check`: validate policy files without touching the kernel.

use std::path::PathBuf;

use anyhow::bail;

use crate::policy::{self, CompiledPolicy};

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
                let c = CompiledPolicy::compile(&p);
                println!(
                    "{}: ok: {} users, {} groups, {} classes ({} kernel rules), {} sets, {} rules; \
                     unidentified: {}",
                    path.display(),
                    p.users.len(),
                    c.groups.len(),
                    p.classes.len(),
                    c.class_rules.len(),
                    p.sets.len(),
                    p.rules.len(),
                    p.unidentified
                        .map_or_else(|| "as everyone".to_owned(), |a| a.to_string()),
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
