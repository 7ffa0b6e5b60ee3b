//! Keeping user and class ids across reloads. Counters, token buckets and
//! flows in the kernel are keyed by these ids, so a user must keep theirs
//! when a reload adds or removes others. Ids are never reused while the
//! daemon runs: a removed user's id is retired (its counters stay, under its
//! name) and new users get fresh ones.

use std::collections::HashMap;

use policy_common::{GROUP_BIT, SUBJECT_ANY, UserId};

use super::{CompiledPolicy, CompiledUser};

/// `fresh` (compiled on its own, with positional ids) renumbered so that
/// every user and class named in `previous` keeps its id there.
pub fn keep_ids(fresh: &CompiledPolicy, previous: &CompiledPolicy) -> CompiledPolicy {
    let user_map = renumber(
        fresh.users.iter().map(|u| u.name.as_str()),
        previous.users.iter().map(|u| u.name.as_str()),
    );
    let class_map = renumber(
        fresh.classes.iter().map(String::as_str),
        previous.classes.iter().map(String::as_str),
    );
    let u = |id: UserId| user_map[id as usize];
    let c = |id: u32| class_map[id as usize];

    let mut out = fresh.clone();
    // Every id ever used keeps a slot: retired ones keep their names (their
    // counters are still labelled), with no identity pointing at them.
    let slots = user_map
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1)
        .max(previous.users.len());
    out.users = (0..slots as u32)
        .map(|id| CompiledUser {
            id,
            name: previous
                .users
                .get(id as usize)
                .map_or_else(String::new, |p| p.name.clone()),
            group: 0,
        })
        .collect();
    for user in &fresh.users {
        let id = u(user.id);
        out.users[id as usize] = CompiledUser {
            id,
            name: user.name.clone(),
            group: user.group,
        };
    }
    let class_slots = class_map
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1)
        .max(previous.classes.len());
    out.classes = (0..class_slots)
        .map(|i| previous.classes.get(i).cloned().unwrap_or_default())
        .collect();
    for (i, name) in fresh.classes.iter().enumerate() {
        out.classes[c(i as u32) as usize].clone_from(name);
    }
    for (_, id) in &mut out.exact {
        *id = u(*id);
    }
    for (_, _, id) in &mut out.cidrs {
        *id = u(*id);
    }
    for (_, id) in &mut out.macs {
        *id = u(*id);
    }
    for (_, id) in &mut out.uids {
        *id = u(*id);
    }
    for (_, id) in &mut out.cgroups {
        *id = u(*id);
    }
    for (_, b) in &mut out.bindings {
        b.user = u(b.user);
    }
    for r in &mut out.class_rules {
        r.class = c(r.class);
    }
    for (k, _) in &mut out.actions {
        if k.subject != SUBJECT_ANY && k.subject & GROUP_BIT == 0 {
            k.subject = u(k.subject);
        }
        k.class = c(k.class);
    }
    out.actions.sort_unstable_by_key(|(k, _)| *k);
    for (class, _) in &mut out.class_limits {
        *class = c(*class);
    }
    if out.config.elephant_bytes != 0 {
        out.config.elephant_class = c(out.config.elephant_class);
    }
    out
}

/// For each fresh name (by position), its id: the previous one if it had
/// one, else the next id never used.
fn renumber<'a>(
    fresh: impl Iterator<Item = &'a str>,
    previous: impl Iterator<Item = &'a str>,
) -> Vec<u32> {
    let old: HashMap<&str, u32> = previous
        .enumerate()
        .filter(|(_, n)| !n.is_empty())
        .map(|(i, n)| (n, i as u32))
        .collect();
    let mut next = old
        .values()
        .copied()
        .max()
        .map_or(0, |m| m + 1)
        .max(old.len() as u32);
    fresh
        .map(|name| {
            old.get(name).copied().unwrap_or_else(|| {
                let id = next;
                next += 1;
                id
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse;

    fn compile(src: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&parse(Path::new("p.toml"), src).unwrap())
    }

    #[test]
    fn users_and_classes_keep_their_ids_and_removed_ones_are_retired() {
        let v1 = compile(
            "[[class]]\nname = \"mail\"\nmatch = { proto = \"tcp\", ports = [25] }\n[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n[[user]]\nname = \"bob\"\nips = [\"10.0.0.3\"]\n[[rule]]\nclass = \"mail\"\nuser = \"bob\"\naction = \"deny\"\n",
        );
        assert_eq!(
            (v1.user("alice").unwrap().id, v1.user("bob").unwrap().id),
            (1, 2)
        );
        // v2 puts a new user first, drops alice, and a new class first.
        let v2 = keep_ids(
            &compile(
                "[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n[[class]]\nname = \"mail\"\nmatch = { proto = \"tcp\", ports = [25] }\n[[user]]\nname = \"carol\"\nips = [\"10.0.0.4\"]\n[[user]]\nname = \"bob\"\nips = [\"10.0.0.3\"]\n[[rule]]\nclass = \"mail\"\nuser = \"bob\"\naction = \"deny\"\n",
            ),
            &v1,
        );
        assert_eq!(v2.user("bob").unwrap().id, 2, "bob keeps his id");
        assert_eq!(v2.user("carol").unwrap().id, 3, "a new user gets a new id");
        assert_eq!(
            v2.users[1].name, "alice",
            "alice's id is retired, with her name"
        );
        assert!(
            !v2.exact.iter().any(|(_, id)| *id == 1),
            "nothing identifies alice any more"
        );
        assert_eq!(
            v2.classes,
            ["default", "mail", "dns"],
            "mail keeps class id 1"
        );
        assert_eq!(
            v2.class_rules[0].class, 2,
            "dns, first in match order, is class 2"
        );
        assert_eq!(v2.class_rules[1].class, 1);
        let deny = v2.actions.iter().find(|(k, _)| k.subject == 2).unwrap().0;
        assert_eq!(deny.class, 1, "bob's mail rule follows both renumberings");
        assert!(
            v2.exact
                .contains(&(policy_common::v4_mapped([10, 0, 0, 3]), 2))
        );
        // A third version brings alice back: her old id is not reused.
        let v3 = keep_ids(
            &compile("[[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n"),
            &v2,
        );
        assert_eq!(v3.user("alice").unwrap().id, 1, "her name still holds id 1");
    }
}
