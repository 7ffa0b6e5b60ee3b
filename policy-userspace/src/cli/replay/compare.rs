//! `--against`: the same capture under two policies, and the users whose
//! treatment differs.

use std::{collections::BTreeSet, io::Write};

use serde::Serialize;

use super::report::{Report, Tally, UserReport};

/// A user treated differently: their traffic under each policy.
#[derive(Debug, Serialize)]
pub(super) struct Difference {
    pub user: String,
    /// (class, direction) rows that differ, with the tally under each.
    pub classes: Vec<ClassDifference>,
}

#[derive(Debug, Serialize)]
pub(super) struct ClassDifference {
    pub class: String,
    pub direction: &'static str,
    pub policy: Tally,
    pub against: Tally,
}

/// Every user whose packets any class and direction passed, limited,
/// denied or monitored in other numbers (a user only one policy names
/// counts, their traffic being someone else's, or unidentified, in the
/// other).
pub(super) fn differences(a: &Report, b: &Report) -> Vec<Difference> {
    let empty = UserReport::default();
    let users: BTreeSet<&String> = a.users.keys().chain(b.users.keys()).collect();
    let mut out = Vec::new();
    for user in users {
        let (ua, ub) = (
            a.users.get(user).unwrap_or(&empty),
            b.users.get(user).unwrap_or(&empty),
        );
        let keys: BTreeSet<&(String, &'static str)> =
            ua.classes.keys().chain(ub.classes.keys()).collect();
        let classes: Vec<ClassDifference> = keys
            .into_iter()
            .filter_map(|k| {
                let (ta, tb) = (
                    ua.classes.get(k).copied().unwrap_or_default(),
                    ub.classes.get(k).copied().unwrap_or_default(),
                );
                (ta != tb).then(|| ClassDifference {
                    class: k.0.clone(),
                    direction: k.1,
                    policy: ta,
                    against: tb,
                })
            })
            .collect();
        if !classes.is_empty() {
            out.push(Difference {
                user: user.clone(),
                classes,
            });
        }
    }
    out
}

fn brief(t: &Tally) -> String {
    format!(
        "{}/{}/{}/{}",
        t.passed.packets, t.limited.packets, t.denied.packets, t.monitored.packets
    )
}

pub(super) fn text(
    out: &mut impl Write,
    against: &str,
    diffs: &[Difference],
    users: usize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "\nAgainst {against}: {} of {users} users treated differently",
        diffs.len()
    )?;
    if diffs.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<14} {:<9} {:>24} {:>24}",
        "user", "class", "direction", "policy pass/lim/deny/mon", "against pass/lim/deny/mon"
    )?;
    for d in diffs {
        for c in &d.classes {
            writeln!(
                out,
                "{:<16} {:<14} {:<9} {:>24} {:>24}",
                d.user,
                c.class,
                c.direction,
                brief(&c.policy),
                brief(&c.against)
            )?;
        }
    }
    Ok(())
}
