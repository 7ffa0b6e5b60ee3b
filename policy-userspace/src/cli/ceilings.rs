//! Each file's action side by side, for `check` and `explain`: layers are
//! ceilings, so when files disagree the operator sees what each says and
//! which one is enforced.

use std::collections::HashMap;

use crate::policy::{
    Ceilings, DEFAULT_CLASS, Layered, Source, Subject, UNIDENTIFIED, Verdicts, describe,
};

/// `state.toml: limit 50Mbit (everyone); agency.toml: limit 100Mbit (group
/// it) -> limit 50Mbit, from state.toml`.
pub(super) fn line(v: &Verdicts<'_>, who: &Subject) -> String {
    let each: Vec<String> = v
        .layers
        .iter()
        .map(|(path, e)| {
            format!(
                "{}: {} ({})",
                path.display(),
                e.action,
                describe(who, &e.source)
            )
        })
        .collect();
    format!(
        "{} -> {}, from {}",
        each.join("; "),
        v.effective,
        v.layers[v.from].0.display()
    )
}

/// How many users a line names before it counts the rest.
const NAMED: usize = 5;

/// One line per class, profile and set of users for whom a file's own
/// action is overridden by another file's stricter one; users for whom the
/// files say the same thing for the same reasons share a line.
pub(super) fn differences(l: &Layered) -> Vec<String> {
    let p = &l.policy;
    let ceilings = Ceilings::new(&l.layers, &p.users);
    let classes = std::iter::once(DEFAULT_CLASS).chain(p.classes.iter().map(|c| c.name.as_str()));
    let mut out = Vec::new();
    for class in classes {
        for (i, profile) in p.profiles.iter().enumerate() {
            // (each file's action and its reason) -> the users, and a line.
            let mut groups: Vec<(Vec<String>, String)> = Vec::new();
            let mut index: HashMap<Vec<(String, Source)>, usize> = HashMap::new();
            let users =
                std::iter::once(UNIDENTIFIED).chain(p.users.iter().map(|u| u.name.as_str()));
            for user in users {
                let who = Subject::User(user.to_owned());
                let Some(v) = ceilings.verdicts(&who, class, i) else {
                    continue;
                };
                if !v.overridden() {
                    continue;
                }
                let key = v
                    .layers
                    .iter()
                    .map(|(_, e)| (e.action.to_string(), e.source.clone()))
                    .collect();
                let n = *index.entry(key).or_insert_with(|| {
                    groups.push((Vec::new(), line(&v, &who)));
                    groups.len() - 1
                });
                groups[n].0.push(user.to_owned());
            }
            for (users, text) in groups {
                let mut names = users[..users.len().min(NAMED)].join(", ");
                if users.len() > NAMED {
                    names.push_str(&format!(" and {} more", users.len() - NAMED));
                }
                out.push(format!("class {class}, {profile}, for {names}: {text}"));
            }
        }
    }
    out
}
