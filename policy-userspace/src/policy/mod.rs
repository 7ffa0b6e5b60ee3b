//! The policy language: TOML files -> validated [`Policy`] ->
//! [`CompiledPolicy`] tables in the contract's types.
//!
//! Pure: no kernel, no I/O beyond reading the files, so all of it is unit
//! tested. Each stage has its own module: `file` is the on-disk schema,
//! `units` the humane values (`20Mbit`, `256KiB`, actions), `validate` turns
//! the schema into the typed model of `types`, `compile` lays out map
//! contents.

mod ceiling;
mod claims;
mod compile;
mod empty;
mod error;
mod file;
mod merge;
mod quota;
pub mod sources;
mod stable;
mod types;
pub mod units;
mod validate;

use std::path::Path;

pub use ceiling::{Ceilings, Effective, Source, Verdicts, describe};
pub use compile::{
    CompiledPolicy, CompiledQuota, CompiledUser, addr16, blanket_actions, default_burst, net16,
    params, truncate,
};
pub use empty::{enforces_nothing, is_blank, load_for_run};
pub use error::PolicyError;
pub use merge::{Layered, Provenance, provenance_key, stricter};
pub use quota::{Quota, QuotaPeriod, QuotaReset, weekday_name};
pub use sources::PolicyText;
pub use stable::{Allocation, Changes, IdError, Slot, Table, assign, changes};
pub use types::*;
pub use validate::RESERVED_LABELS;

impl CompiledPolicy {
    /// The slot of profile `name`, if the policy has it.
    pub fn profile(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p == name)
    }
}

/// The built-in acceptable-use baseline (`policyd default-policy`).
pub const BASELINE: &str = include_str!("baseline.toml");

/// The name the baseline goes by in messages.
pub const BASELINE_NAME: &str = "<built-in baseline>";

/// The built-in baseline, validated.
pub fn baseline() -> Result<Policy, PolicyError> {
    parse(Path::new(BASELINE_NAME), BASELINE)
}

/// Reads, parses and validates one policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    parse(path, &sources::read_settled(path)?)
}

/// Reads and validates policy files as layers: each may refer to what the
/// earlier ones define, and where they disagree the more restrictive
/// setting wins (see `merge`). A directory stands for its `*.toml` files in
/// name order (see [`sources::expand`]). No path at all means the built-in
/// baseline.
pub fn load_layers(paths: &[std::path::PathBuf]) -> Result<Layered, PolicyError> {
    layer(&sources::read_all(paths)?)
}

/// Validates policy text already read as layers (see [`load_layers`]).
pub fn layer(texts: &[PolicyText]) -> Result<Layered, PolicyError> {
    let paths: Vec<std::path::PathBuf> = texts.iter().map(|s| s.path.clone()).collect();
    let mut layered: Option<Layered> = None;
    let mut claimed = Vec::new();
    for (i, (path, source)) in paths.iter().zip(texts.iter().map(|s| &s.text)).enumerate() {
        let raw: file::PolicyFile =
            toml::from_str(source).map_err(|e| PolicyError::syntax(path, source, &e))?;
        let base = layered.as_ref().map(|l| &l.policy);
        let claims = claims::collect(path, source, &raw);
        let policy = validate::validate(path, source, raw, base)?;
        claims::check(&claims, &claimed)?;
        claimed.extend(claims);
        layered = Some(match layered {
            None => merge::first(policy, path),
            Some(base) => merge::add(base, &paths[..i], policy, path)?,
        });
    }
    match layered {
        Some(l) => Ok(l),
        // No file: the built-in baseline.
        None => Ok(merge::first(baseline()?, Path::new(BASELINE_NAME))),
    }
}

/// Parses and validates policy text; `path` is only used in messages.
pub fn parse(path: &Path, source: &str) -> Result<Policy, PolicyError> {
    let raw: file::PolicyFile =
        toml::from_str(source).map_err(|e| PolicyError::syntax(path, source, &e))?;
    validate::validate(path, source, raw, None)
}

#[cfg(test)]
mod ceiling_tests;
#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod non_ip_tests;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unid_tests;
