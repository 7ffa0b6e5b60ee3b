//! Hot reload: on SIGHUP or when a policy file changes, parse and validate
//! every layer, give users and classes their ids (the pinned allocation's),
//! and apply the result as map updates into the idle generation, switched in
//! by one store. An invalid policy changes nothing: the old one stays in
//! force, and the error is logged and counted. Programs are never reloaded or
//! detached.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

use anyhow::Context as _;

use crate::{
    dataplane::Dataplane,
    policy::{self, CompiledPolicy, Policy},
    schedule::Clock,
    telemetry::Names,
};

/// What a reload needs to know and keeps up to date.
pub(super) struct Reloader {
    pub paths: Vec<PathBuf>,
    /// `--allow-empty-policy`: accept a policy that enforces nothing.
    pub allow_empty: bool,
    pub pinned: Option<String>,
    pub clock: Clock,
    pub names: Arc<RwLock<Names>>,
    /// The policy in force, and its compiled tables (with their ids).
    pub policy: Policy,
    pub compiled: CompiledPolicy,
    pub profile: usize,
}

impl Reloader {
    /// Reloads; `Ok(false)` when the new policy was refused (the old one
    /// stays in force; the reason is logged and counted).
    pub(super) fn reload(&mut self, dataplane: &mut Dataplane, why: &str) -> bool {
        let started = std::time::Instant::now();
        match self.try_reload(dataplane) {
            Ok(Outcome::Unchanged) => {
                let mut n = self.names.write().unwrap_or_else(|p| p.into_inner());
                n.reloads_unchanged += 1;
                n.last_reload_ok = true;
                drop(n);
                tracing::info!(trigger = why, "policy unchanged; nothing to write");
                true
            }
            Ok(Outcome::Applied { added, removed }) => {
                if let Err(e) = dataplane.record_reload() {
                    tracing::warn!(error = %e, "cannot record the reload in the pins");
                }
                let mut n = self.names.write().unwrap_or_else(|p| p.into_inner());
                n.reloads_ok += 1;
                n.generation += 1;
                n.last_applied_at = super::run::unix_now();
                n.last_reload_ok = true;
                tracing::info!(
                    trigger = why,
                    users = self.policy.users.len(),
                    users_added = %added.join(","),
                    users_removed = %removed.join(","),
                    classes = self.policy.classes.len(),
                    profile = %self.compiled.profiles[self.profile],
                    generation = n.generation,
                    ms = started.elapsed().as_millis(),
                    "policy reloaded"
                );
                true
            }
            Err(e) => {
                let mut n = self.names.write().unwrap_or_else(|p| p.into_inner());
                n.reloads_failed += 1;
                n.last_reload_ok = false;
                drop(n);
                tracing::error!(trigger = why, error = %format!("{e:#}"), "reload refused; the previous policy stays in force");
                false
            }
        }
    }

    fn try_reload(&mut self, dataplane: &mut Dataplane) -> anyhow::Result<Outcome> {
        let policy =
            policy::load_for_run(&self.paths, self.allow_empty, Some(&self.policy))?.policy;
        let compiled = dataplane.assign_ids(&CompiledPolicy::compile(&policy))?;
        let profile =
            super::profile_index(&policy, &compiled, self.pinned.as_deref(), &self.clock)?;
        // A SIGHUP after an edit, or an editor's several writes, find the
        // policy in force already: skip the write. Not when cgroups are
        // named: their ids are resolved on every apply, and a recreated
        // cgroup has a new one (a reload is how an operator picks it up).
        if policy == self.policy
            && compiled == self.compiled
            && profile == self.profile
            && compiled.cgroups.is_empty()
        {
            return Ok(Outcome::Unchanged);
        }
        dataplane
            .apply_with_profile(&compiled, profile)
            .context("writing the new generation")?;
        let names = |p: &CompiledPolicy| -> std::collections::BTreeSet<String> {
            p.users
                .iter()
                .skip(1)
                .filter(|u| !u.name.is_empty())
                .map(|u| u.name.clone())
                .collect()
        };
        let (old, new) = (names(&self.compiled), names(&compiled));
        let outcome = Outcome::Applied {
            added: new.difference(&old).cloned().collect(),
            removed: old.difference(&new).cloned().collect(),
        };
        {
            let mut n = self.names.write().unwrap_or_else(|p| p.into_inner());
            n.users = compiled.users.iter().map(|u| u.name.clone()).collect();
            n.classes.clone_from(&compiled.classes);
            n.profile.clone_from(&compiled.profiles[profile]);
            n.profiles.clone_from(&compiled.profiles);
            n.per_user = policy.per_user.unwrap_or_default();
            n.tables = dataplane.table_fill(&compiled);
        }
        self.policy = policy;
        self.compiled = compiled;
        self.profile = profile;
        Ok(outcome)
    }
}

/// What a reload did.
enum Outcome {
    /// The policy read equals the one in force.
    Unchanged,
    /// A new generation is in force; users (by name) that came and went.
    Applied {
        added: Vec<String>,
        removed: Vec<String>,
    },
}
