//! `policyd check`: validate policy files without touching the kernel, and
//! show the effective policy with where each setting came from.

use std::path::PathBuf;

use crate::policy::{self, CompiledPolicy};

/// Validate policy files (layered in the order given: the more restrictive
/// setting wins), print the effective policy and, for every effective
/// setting, the file it came from. Exit non-zero on any error.
///
/// `--json` prints one JSON document; its fields are stable (new ones may
/// be added): `ok` (false: `error` holds the message and the exit status is
/// non-zero), `files`, `users`, `groups`, `classes`, `kernel_rules`,
/// `sets`, `rules`, `profiles` (names, in slot order), `unidentified` (its
/// action, or null: treated as everyone), `settings` [{`setting`, `value`,
/// `from`}] and `overridden` (lines, as the text shows them).
#[derive(Debug, clap::Args)]
pub(super) struct CheckArgs {
    /// Policy files, base first; a directory stands for its `*.toml` files
    /// in name order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print only the summary, not every setting's origin.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let layered = match policy::load_layers(&args.files) {
        Ok(l) => l,
        Err(e) => {
            if args.json {
                let doc = serde_json::json!({
                    "ok": false,
                    "files": files(args),
                    "error": format!("{e:#}"),
                });
                super::write_stdout(format!("{doc:#}\n").as_bytes())?;
            } else {
                // The error names its file, line and field; say nothing more.
                eprintln!("{e}");
            }
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
    let names = files(args);
    if args.json {
        let settings: Vec<serde_json::Value> = layered
            .provenance
            .iter()
            .map(|(what, (value, from))| {
                serde_json::json!({
                    "setting": what,
                    "value": value,
                    "from": from.display().to_string(),
                })
            })
            .collect();
        let overridden = if layered.layers.len() > 1 {
            super::ceilings::differences(&layered)
        } else {
            Vec::new()
        };
        let doc = serde_json::json!({
            "ok": true,
            "files": names,
            "users": p.users.len(),
            "groups": c.groups.len(),
            "classes": p.classes.len(),
            "kernel_rules": c.class_rules.len(),
            "sets": p.sets.len(),
            "rules": p.rules.len(),
            "profiles": c.profiles,
            "unidentified": p.unidentified.map(|a| a.to_string()),
            "settings": settings,
            "overridden": overridden,
        });
        return super::write_stdout(format!("{doc:#}\n").as_bytes());
    }
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

fn files(args: &CheckArgs) -> Vec<String> {
    args.files.iter().map(|f| f.display().to_string()).collect()
}
