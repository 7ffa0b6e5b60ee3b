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

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use super::{merge::stricter, types::*};

/// Which action of a rule: one profile's, or the rule's default (what it
/// does in a profile a later layer adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Profile(usize),
    Default,
}

/// Where a layer's effective action comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A subject as a map key, borrowing its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'a> {
    User(&'a str),
    Group(&'a str),
    Everyone,
    Aggregate,
}

impl<'a> From<&'a Subject> for Key<'a> {
    fn from(s: &'a Subject) -> Self {
        match s {
            Subject::User(u) => Key::User(u),
            Subject::Group(g) => Key::Group(g),
            Subject::Everyone => Key::Everyone,
            Subject::Aggregate => Key::Aggregate,
        }
    }
}

fn in_slot(r: &Rule, slot: Slot) -> ActionSpec {
    match slot {
        Slot::Profile(i) => r.actions.get(i).copied().unwrap_or(r.default),
        Slot::Default => r.default,
    }
}

/// One file's rules and blanket actions (or the files merged so far),
/// indexed for lookups.
pub(super) struct Layer<'a> {
    rules: HashMap<(&'a str, Key<'a>), &'a Rule>,
    blankets: HashMap<&'a str, ActionSpec>,
    unidentified: Option<ActionSpec>,
}

/// Which group each user is in: the merged policy's (files agree on it).
pub(super) struct Groups<'a>(HashMap<&'a str, &'a str>);

impl<'a> Groups<'a> {
    pub(super) fn new(users: &'a [User]) -> Self {
        Self(
            users
                .iter()
                .filter_map(|u| u.group.as_deref().map(|g| (u.name.as_str(), g)))
                .collect(),
        )
    }
}

impl<'a> Layer<'a> {
    pub(super) fn new(p: &'a Policy) -> Self {
        Self {
            rules: p
                .rules
                .iter()
                .map(|r| ((r.class.as_str(), Key::from(&r.subject)), r))
                .collect(),
            blankets: p
                .users
                .iter()
                .filter_map(|u| u.action.map(|a| (u.name.as_str(), a)))
                .collect(),
            unidentified: p.unidentified,
        }
    }

    fn rule(&self, class: &str, key: Key<'_>) -> Option<&'a Rule> {
        self.rules.get(&(class, key)).copied()
    }

    /// What this file gives `who` in `class`, with its own precedence: the
    /// user's rule, else the user's blanket `action` (or `[unidentified]`)
    /// capped by the group's (else everyone's) rule as `compile` does (if
    /// the two cannot be ordered the blanket stands), else the group's
    /// rule, else everyone's, else allow.
    pub(super) fn effective(
        &self,
        groups: &Groups<'_>,
        who: &Subject,
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
                .and_then(|g| self.rule(class, Key::Group(g)))
                .or_else(|| self.rule(class, Key::Everyone))
        };
        match who {
            Subject::User(u) => {
                if let Some(r) = self.rule(class, Key::User(u)) {
                    return found(r);
                }
                let (group, blanket) = if u == UNIDENTIFIED {
                    (None, self.unidentified)
                } else {
                    (
                        groups.0.get(u.as_str()).copied(),
                        self.blankets.get(u.as_str()).copied(),
                    )
                };
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
                self.rule(class, who.into()).map_or(nothing, found)
            }
        }
    }
}

/// The rules of `base` and `layer` combined as ceilings (see the module
/// comment): one per (class, subject) that either has, each action the
/// stricter of what the two say for that subject. `users` are the merged
/// users; `profiles` is how many the combined policy has. An error names
/// the rule whose actions cannot be ordered (bits against packets).
pub(super) fn combine(
    base: &Policy,
    layer: &Policy,
    users: &[User],
    profiles: usize,
) -> Result<Vec<Rule>, String> {
    let groups = Groups::new(users);
    let (b, l) = (Layer::new(base), Layer::new(layer));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in base.rules.iter().chain(&layer.rules) {
        let (class, subject) = (r.class.as_str(), &r.subject);
        if !seen.insert((class, Key::from(subject))) {
            continue;
        }
        let mut rule = Rule {
            class: class.to_owned(),
            subject: subject.clone(),
            actions: Vec::with_capacity(profiles),
            default: ActionSpec::Allow,
        };
        for slot in (0..profiles).map(Slot::Profile).chain([Slot::Default]) {
            let x = b.effective(&groups, subject, class, slot).action;
            let y = l.effective(&groups, subject, class, slot).action;
            let merged = stricter(&x, &y)
                .map_err(|msg| format!("rule {class} for {}: {msg}", subject_words(subject)))?;
            match slot {
                Slot::Profile(_) => rule.actions.push(merged.0),
                Slot::Default => rule.default = merged.0,
            }
        }
        out.push(rule);
    }
    Ok(out)
}

/// Every file's action for one subject, class and profile, and the
/// combination.
#[derive(Debug, Clone)]
pub struct Verdicts<'a> {
    /// Base first.
    pub layers: Vec<(&'a Path, Effective)>,
    /// The stricter of them all (what the kernel enforces).
    pub effective: ActionSpec,
    /// Index into `layers` of the file the effective action comes from.
    pub from: usize,
}

impl Verdicts<'_> {
    /// Whether a file's own setting (not the allow of having none) is not
    /// what is enforced, as the kernel sees it: another file overrides it.
    pub fn overridden(&self) -> bool {
        let enforced = super::params(&self.effective);
        self.layers
            .iter()
            .any(|(_, e)| e.source != Source::Nothing && super::params(&e.action) != enforced)
    }
}

/// The files of a layered policy, each indexed, to compare what they say.
pub struct Ceilings<'a> {
    files: Vec<(&'a Path, Layer<'a>)>,
    groups: Groups<'a>,
}

impl<'a> Ceilings<'a> {
    /// `layers` as validated, base first; `users` the merged ones.
    pub fn new(layers: &'a [(PathBuf, Policy)], users: &'a [User]) -> Self {
        Self {
            files: layers
                .iter()
                .map(|(path, p)| (path.as_path(), Layer::new(p)))
                .collect(),
            groups: Groups::new(users),
        }
    }

    /// What each file says for `who` in `class` and profile `profile`, and
    /// which file wins. `None` if two files' actions cannot be ordered
    /// (layering refuses such policies).
    pub fn verdicts(&self, who: &Subject, class: &str, profile: usize) -> Option<Verdicts<'a>> {
        let mut out = Verdicts {
            layers: Vec::with_capacity(self.files.len()),
            effective: ActionSpec::Allow,
            from: 0,
        };
        for (i, (path, layer)) in self.files.iter().enumerate() {
            let e = layer.effective(&self.groups, who, class, Slot::Profile(profile));
            if i == 0 {
                out.effective = e.action;
            } else {
                let (merged, from_layer) = stricter(&out.effective, &e.action).ok()?;
                out.effective = merged;
                if from_layer {
                    out.from = i;
                }
            }
            out.layers.push((*path, e));
        }
        Some(out)
    }
}

fn subject_words(s: &Subject) -> String {
    match s {
        Subject::User(u) => format!("user {u}"),
        Subject::Group(g) => format!("group {g}"),
        Subject::Everyone => "everyone".to_owned(),
        Subject::Aggregate => "the class as a whole".to_owned(),
    }
}

/// `source` in words, for `who` (the same for every user it applies to).
pub fn describe(who: &Subject, source: &Source) -> String {
    let blanket = match who {
        Subject::User(u) if u == UNIDENTIFIED => "[unidentified]",
        _ => "the user's action",
    };
    match source {
        Source::Rule(s) => subject_words(s),
        Source::Blanket(None) => blanket.to_owned(),
        Source::Blanket(Some(s)) => format!("{blanket}, capped by {}", subject_words(s)),
        Source::Nothing => "no rule".to_owned(),
    }
}
