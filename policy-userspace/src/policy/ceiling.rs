//! Layers are ceilings: every file's policy holds for every user, class and
//! profile, whatever the other files say, so a later file can tighten an
//! earlier one but never loosen it.
//!
//! Each layer's effective action for a user is worked out with that layer's
//! own precedence (the user's rule, else the user's blanket `action` capped
//! by their group's rule, else the group's rule, else everyone's, else
//! allow); across layers the stricter wins. The kernel's lookup (user, then
//! group, then everyone) stays as it is: when a layer is added, every subject
//! that has a rule for a class in either the base or the layer gets, per
//! profile, the stricter of what each of the two says for that subject. A
//! user with no rule of their own then falls through to their group's (or
//! everyone's) combined rule, which is the stricter of what the two layers
//! say for that group, and that is what each layer says for the user too.

use std::path::PathBuf;

use super::{merge::stricter, types::*, units::ActionSpec};

/// Which action of a rule: one profile's, or the rule's default (what it
/// does in a profile a later layer adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Profile(usize),
    Default,
}

/// Where a layer's effective action comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The layer's rule for this subject (a user, group or everyone).
    Rule(Subject),
    /// The user's own `action` (or `[unidentified]`), capped by the layer's
    /// rule for this subject if it has one.
    Blanket(Option<Subject>),
    /// The layer has no rule that applies: allow.
    Nothing,
}

/// One layer's action for one subject, class and slot, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub action: ActionSpec,
    pub source: Source,
}

fn rule_for<'a>(rules: &'a [Rule], class: &str, subject: &Subject) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.class == class && r.subject == *subject)
}

fn in_slot(r: &Rule, slot: Slot) -> ActionSpec {
    match slot {
        Slot::Profile(i) => r.actions.get(i).copied().unwrap_or(r.default),
        Slot::Default => r.default,
    }
}

/// What `rules` (one layer, or the layers merged so far) give `who` in
/// `class`, with that file's own precedence. `group` is the user's group
/// (layers agree on it), `blanket` the user's `action` (or
/// `[unidentified]`) in that file. Within one file a blanket is capped by
/// the shared rule as `compile` does: if the two cannot be ordered the
/// blanket stands.
pub fn effective(
    rules: &[Rule],
    who: &Subject,
    group: Option<&str>,
    blanket: Option<ActionSpec>,
    class: &str,
    slot: Slot,
) -> Effective {
    let found = |r: &Rule| Effective {
        action: in_slot(r, slot),
        source: Source::Rule(r.subject.clone()),
    };
    let nothing = Effective {
        action: ActionSpec::Allow,
        source: Source::Nothing,
    };
    let shared = |group: Option<&str>| {
        group
            .and_then(|g| rule_for(rules, class, &Subject::Group(g.to_owned())))
            .or_else(|| rule_for(rules, class, &Subject::Everyone))
    };
    match who {
        Subject::User(_) => {
            if let Some(r) = rule_for(rules, class, who) {
                return found(r);
            }
            match (blanket, shared(group)) {
                (Some(b), Some(r)) => Effective {
                    action: stricter(&b, &in_slot(r, slot)).map_or(b, |(s, _)| s),
                    source: Source::Blanket(Some(r.subject.clone())),
                },
                (Some(b), None) => Effective {
                    action: b,
                    source: Source::Blanket(None),
                },
                (None, Some(r)) => found(r),
                (None, None) => nothing,
            }
        }
        Subject::Group(g) => shared(Some(g)).map_or(nothing, found),
        Subject::Everyone | Subject::Aggregate => {
            rule_for(rules, class, who).map_or(nothing, found)
        }
    }
}

/// [`effective`] for `who` in one file: its blanket from `layer`, its group
/// from `users` (the merged users).
pub fn in_layer(
    layer: &Policy,
    users: &[User],
    who: &Subject,
    class: &str,
    slot: Slot,
) -> Effective {
    let (group, blanket) = match who {
        Subject::User(u) if u == UNIDENTIFIED => (None, layer.unidentified),
        Subject::User(u) => (
            users
                .iter()
                .find(|x| x.name == *u)
                .and_then(|x| x.group.as_deref()),
            layer
                .users
                .iter()
                .find(|x| x.name == *u)
                .and_then(|x| x.action),
        ),
        _ => (None, None),
    };
    effective(&layer.rules, who, group, blanket, class, slot)
}

/// The rules of `base` and `layer` combined as ceilings (see the module
/// comment): one per (class, subject) that either has, each action the
/// stricter of what the two say for that subject. `users` are the merged
/// users; `profiles` is how many the combined policy has. An error names
/// the rule whose actions cannot be ordered (bits against packets).
pub fn combine(
    base: &Policy,
    layer: &Policy,
    users: &[User],
    profiles: usize,
) -> Result<Vec<Rule>, String> {
    let mut keys: Vec<(&str, &Subject)> = Vec::new();
    for r in base.rules.iter().chain(&layer.rules) {
        if !keys.contains(&(r.class.as_str(), &r.subject)) {
            keys.push((&r.class, &r.subject));
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for (class, subject) in keys {
        let mut rule = Rule {
            class: class.to_owned(),
            subject: subject.clone(),
            actions: Vec::with_capacity(profiles),
            default: ActionSpec::Allow,
        };
        for slot in (0..profiles).map(Slot::Profile).chain([Slot::Default]) {
            let a = in_layer(base, users, subject, class, slot).action;
            let b = in_layer(layer, users, subject, class, slot).action;
            let merged = match stricter(&a, &b) {
                Ok((m, _)) => m,
                Err(msg) => {
                    return Err(format!(
                        "rule {class} for {}: {msg}",
                        subject_words(subject)
                    ));
                }
            };
            match slot {
                Slot::Profile(_) => rule.actions.push(merged),
                Slot::Default => rule.default = merged,
            }
        }
        out.push(rule);
    }
    Ok(out)
}

/// Every file's action for one subject, class and profile, and the
/// combination.
#[derive(Debug, Clone)]
pub struct Verdicts {
    /// Base first.
    pub layers: Vec<(PathBuf, Effective)>,
    /// The stricter of them all (what the kernel enforces).
    pub effective: ActionSpec,
    /// Index into `layers` of the file the effective action comes from.
    pub from: usize,
}

impl Verdicts {
    /// Whether a file's own setting (not the allow of having none) is not
    /// what is enforced, as the kernel sees it: another file overrides it.
    pub fn overridden(&self) -> bool {
        let enforced = super::params(&self.effective);
        self.layers
            .iter()
            .any(|(_, e)| e.source != Source::Nothing && super::params(&e.action) != enforced)
    }
}

/// What each of `layers` says for `who` in `class` and profile `profile`,
/// with group membership from `users`, and which file wins. `None` if two
/// files' actions cannot be ordered (layering refuses such policies).
pub fn verdicts(
    layers: &[(PathBuf, Policy)],
    users: &[User],
    who: &Subject,
    class: &str,
    profile: usize,
) -> Option<Verdicts> {
    let mut out = Verdicts {
        layers: Vec::with_capacity(layers.len()),
        effective: ActionSpec::Allow,
        from: 0,
    };
    for (i, (path, layer)) in layers.iter().enumerate() {
        let e = in_layer(layer, users, who, class, Slot::Profile(profile));
        if i == 0 {
            out.effective = e.action;
        } else {
            let (merged, from_layer) = stricter(&out.effective, &e.action).ok()?;
            out.effective = merged;
            if from_layer {
                out.from = i;
            }
        }
        out.layers.push((path.clone(), e));
    }
    Some(out)
}

fn subject_words(s: &Subject) -> String {
    match s {
        Subject::User(u) => format!("user {u}"),
        Subject::Group(g) => format!("group {g}"),
        Subject::Everyone => "everyone".to_owned(),
        Subject::Aggregate => "the class as a whole".to_owned(),
    }
}

/// `source` in words, for `who`.
pub fn describe(who: &Subject, source: &Source) -> String {
    let blanket = match who {
        Subject::User(u) if u == UNIDENTIFIED => "[unidentified]".to_owned(),
        Subject::User(u) => format!("{u}'s action"),
        _ => "blanket".to_owned(),
    };
    match source {
        Source::Rule(s) => subject_words(s),
        Source::Blanket(None) => blanket,
        Source::Blanket(Some(s)) => format!("{blanket}, capped by {}", subject_words(s)),
        Source::Nothing => "no rule".to_owned(),
    }
}
