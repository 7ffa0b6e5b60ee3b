//! From the on-disk schema to the typed, checked [`Policy`]. Every error
//! points at the offending value.
//!
//! One file per part of the policy, in the order [`validate`] checks them:
//! `settings`, `classes` (with the sets they match), `users`, `schedules`,
//! `rules`; `net` reads the addresses users and sets are made of.

mod classes;
mod detect;
mod net;
mod quotas;
mod rules;
mod schedules;
mod settings;
mod unidentified;
mod users;

use std::path::Path;

use policy_common::MAX_NAME_LEN;
use toml::Spanned;

use self::{
    classes::{classes, sets},
    rules::{Known, rules},
    schedules::schedules,
    settings::{parse_per_user, settings},
    users::users,
};
pub(super) use self::{
    net::{parse_net, spelled},
    schedules::week_ranges,
};
use super::{PolicyError, file, types::*, units};

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn err<T>(
        &self,
        value: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::invalid(self.path, self.source, value.span(), field, message)
    }

    fn action(
        &self,
        value: &Spanned<String>,
        field: impl Into<String>,
    ) -> Result<ActionSpec, PolicyError> {
        units::parse_action(value.get_ref()).map_err(|e| self.err(value, field, e.to_string()))
    }

    fn name(
        &self,
        value: &Spanned<String>,
        field: impl Into<String>,
        what: &str,
    ) -> Result<String, PolicyError> {
        let name = value.get_ref();
        if name.starts_with('_') {
            // The metrics label sums with these (`_other`, `_all`): a user
            // or class so named would be mistaken for one.
            return Err(self.err(
                value,
                field,
                format!(
                    "`{name}`: names starting with `_` are reserved for policyd's own labels ({})",
                    RESERVED_LABELS.join(", ")
                ),
            ));
        }
        if valid_name(name) {
            Ok(name.clone())
        } else {
            Err(self.err(
                value,
                field,
                format!(
                    "`{name}` is not a valid {what} name (1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ - .)"
                ),
            ))
        }
    }

    fn choice<T: Copy>(
        &self,
        value: &Spanned<String>,
        field: &str,
        choices: &[(&str, T)],
    ) -> Result<T, PolicyError> {
        choices
            .iter()
            .find(|(name, _)| name == value.get_ref())
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
                self.err(
                    value,
                    field,
                    format!(
                        "unknown value `{}`, expected {}",
                        value.get_ref(),
                        names.join(" or ")
                    ),
                )
            })
    }
}

/// Names are ASCII, and at most [`MAX_NAME_LEN`] bytes: a user's or class's
/// name must fit its slot in the pinned id allocation.
/// The labels policyd's metrics give to sums of users or classes: no name
/// in a policy may start with `_`, so none can be taken for them.
pub const RESERVED_LABELS: [&str; 2] = ["_other", "_all"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Validates one file. `base` is what earlier layers defined: this file may
/// refer to its sets, classes, users, groups and schedules.
pub(super) fn validate(
    path: &Path,
    source: &str,
    raw: file::PolicyFile,
    base: Option<&Policy>,
) -> Result<Policy, PolicyError> {
    let cx = Ctx { path, source };
    let settings = settings(&cx, raw.settings.as_ref())?;
    let sets = sets(&cx, &raw.sets)?;
    let names = settings::names(&cx, raw.names.as_ref())?;
    let known_sets: Vec<String> = sets
        .iter()
        .map(|s| s.name.clone())
        .chain(
            base.into_iter()
                .flat_map(|b| b.sets.iter().map(|s| s.name.clone())),
        )
        .collect();
    let classes = classes(&cx, &raw.classes, &known_sets)?;
    let users = users(&cx, &raw.users)?;
    let unidentified = match &raw.unidentified {
        Some(section) => Some(cx.action(&section.action, "unidentified.action")?),
        None => None,
    };
    let unidentified_buckets = unidentified::buckets(&cx, raw.unidentified.as_ref())?;
    let per_user = match raw.metrics.as_ref().and_then(|m| m.per_user.as_ref()) {
        Some(v) => Some(parse_per_user(v.get_ref()).map_err(|m| cx.err(v, "metrics.per_user", m))?),
        None => None,
    };
    let schedules = schedules(&cx, &raw.schedule)?;
    // Profiles: the earlier layers' first, then this file's new schedules.
    let mut profiles: Vec<String> =
        base.map_or_else(|| vec![OFF_HOURS.to_owned()], |b| b.profiles.clone());
    for s in &schedules {
        if !profiles.contains(&s.name) {
            profiles.push(s.name.clone());
        }
    }
    let all_users = || {
        users
            .iter()
            .chain(base.into_iter().flat_map(|b| b.users.iter()))
    };
    let known = Known {
        classes: classes
            .iter()
            .map(|c| c.name.as_str())
            .chain(
                base.into_iter()
                    .flat_map(|b| b.classes.iter().map(|c| c.name.as_str())),
            )
            .collect(),
        users: all_users().map(|u| u.name.as_str()).collect(),
        groups: all_users().filter_map(|u| u.group.as_deref()).collect(),
    };
    let rules = rules(&cx, &raw.rules, &known, &profiles)?;
    let scan = match raw.detect.as_ref().and_then(|d| d.scan.as_ref()) {
        Some(entry) => Some(detect::scan(&cx, entry, &known)?),
        None => None,
    };
    let earlier = base.map_or(&[][..], |b| &b.quotas[..]);
    let quotas = quotas::quotas(&cx, &raw.quotas, &known, earlier, all_users())?;
    Ok(Policy {
        settings,
        per_user,
        schedules,
        profiles,
        sets,
        names,
        classes,
        users,
        unidentified,
        unidentified_buckets,
        rules,
        scan,
        quotas,
    })
}
