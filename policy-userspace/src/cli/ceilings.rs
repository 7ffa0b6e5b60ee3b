//! Each file's action side by side, for `check` and `explain`: layers are
//! ceilings, so when files disagree the operator sees what each says and
//! which one is enforced.

use crate::policy::{DEFAULT_CLASS, Layered, Subject, UNIDENTIFIED, Verdicts, describe, verdicts};

/// `state.toml: limit 50Mbit (everyone); agency.toml: limit 100Mbit (group
/// it) -> limit 50Mbit, from state.toml`.
pub(super) fn line(v: &Verdicts, who: &Subject) -> String {
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

/// One line per user, class and profile where a file's own action is
/// overridden by another file's stricter one.
pub(super) fn differences(l: &Layered) -> Vec<String> {
    let p = &l.policy;
    let mut out = Vec::new();
    let users = std::iter::once(UNIDENTIFIED).chain(p.users.iter().map(|u| u.name.as_str()));
    for user in users {
        let who = Subject::User(user.to_owned());
        let classes =
            std::iter::once(DEFAULT_CLASS).chain(p.classes.iter().map(|c| c.name.as_str()));
        for class in classes {
            for (i, profile) in p.profiles.iter().enumerate() {
                if let Some(v) = verdicts(&l.layers, &p.users, &who, class, i)
                    && v.overridden()
                {
                    out.push(format!(
                        "user {user}, class {class}, {profile}: {}",
                        line(&v, &who)
                    ));
                }
            }
        }
    }
    out
}
