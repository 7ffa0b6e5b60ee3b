//! `policyd check`: validate policy files without touching the kernel, and
//! show the effective policy with where each setting came from.

use std::path::PathBuf;

use crate::policy::{self, CompiledPolicy};

/// Validate policy files (layered in the order given: the more restrictive
/// setting wins), print the effective policy and, for every effective
/// setting, the file it came from. Exit non-zero on any error.
#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// Policy files, base first; a directory stands for its `*.toml` files
    /// in name order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print only the summary, not every setting's origin.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub(super) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let layered = match policy::load_layers(&args.files) {
        Ok(l) => l,
        Err(e) => {
            // The error names its file, line and field; say nothing more.
            eprintln!("{e}");
            anyhow::bail!(
                "the policy is invalid ({})",
                args.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
            );
        }
    };
    let p = &layered.policy;
    let c = CompiledPolicy::compile(p);
    let names: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    println!(
        "{}: ok: {} users, {} groups, {} classes ({} kernel rules), {} sets, {} rules, \
         profiles {}; unidentified: {}",
        names.join(" + "),
        p.users.len(),
        c.groups.len(),
        p.classes.len(),
        c.class_rules.len(),
        p.sets.len(),
        p.rules.len(),
        c.profiles.join("/"),
        p.unidentified
            .map_or_else(|| "as everyone".to_owned(), |a| a.to_string()),
    );
    if !args.quiet {
        println!("effective settings, and the file each comes from:");
        for (what, (value, from)) in &layered.provenance {
            if value == "yes" || value == "defined" {
                println!("  {what}  ({})", from.display());
            } else {
                println!("  {what} = {value}  ({})", from.display());
            }
        }
        if layered.layers.len() > 1 {
            let differences = super::ceilings::differences(&layered);
            println!(
                "where a file is overridden, per class, profile and user (each file's own \
                 action; the stricter is enforced):"
            );
            if differences.is_empty() {
                println!("  nowhere");
            }
            for d in differences {
                println!("  {d}");
            }
        }
    }
    Ok(())
}
