//! The action table as the kernel reads it: one row of actions per class
//! for each distinct way users are treated, and each user's row in
//! USER_INFO. The fallback the policy language defines (the user's own
//! rule for a class, else their group's, else everyone's, else allow) is
//! folded in here, once per reload, so a packet costs one array read where
//! it cost up to three hash lookups.
//!
//! Users who are treated alike share a row: every user without rules of
//! their own shares their group's row, and users whose own rules come to
//! the same actions share one too. So the table grows with the number of
//! distinct treatments (groups, and users with rules of their own), not
//! with the number of users.

use std::collections::{HashMap, HashSet};

use policy_common::{ActionEntry, ActionKey, GROUP_BIT, SUBJECT_ANY, UserId};

use crate::policy::CompiledPolicy;

/// The compiled rows of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRows {
    /// Entries per row: the policy's class ids are `0..stride`.
    pub stride: u32,
    /// Row `r`'s entry for class `c` is at `r * stride + c`.
    pub cells: Vec<ActionEntry>,
    /// (user id, row), in the order of the policy's users.
    pub rows_of_users: Vec<(UserId, u32)>,
}

/// The action that applies to `user` (of `group`, 0 for none) in `class`:
/// the user's own rule, else the group's, else everyone's; `None` for no
/// rule (allow). `user: None` looks up the group's and everyone's only.
/// The one place userspace follows the fallback (the model keeps its own
/// copy on purpose: it is the independent check).
pub(super) fn effective(
    policy: &CompiledPolicy,
    user: Option<UserId>,
    group: u32,
    class: u32,
) -> Option<ActionEntry> {
    let find = |subject: u32| {
        policy
            .actions
            .binary_search_by_key(&ActionKey { subject, class }, |(k, _)| *k)
            .ok()
            .map(|i| policy.actions[i].1)
    };
    user.and_then(find)
        .or_else(|| (group != 0).then(|| find(GROUP_BIT | group))?)
        .or_else(|| find(SUBJECT_ANY))
}

impl ActionRows {
    pub fn of(policy: &CompiledPolicy) -> Self {
        let stride = u32::try_from(policy.classes.len().max(1)).unwrap_or(u32::MAX);
        // Users with rules of their own; everyone else is treated as their
        // group is, so a row is built once per group, not once per user.
        let own: HashSet<UserId> = policy
            .actions
            .iter()
            .map(|(k, _)| k.subject)
            .filter(|s| s & GROUP_BIT == 0)
            .collect();
        let row_for = |user: Option<UserId>, group: u32| -> Vec<ActionEntry> {
            (0..stride)
                .map(|class| effective(policy, user, group, class).unwrap_or_default())
                .collect()
        };
        let mut index: HashMap<Vec<ActionEntry>, u32> = HashMap::new();
        let mut cells = Vec::new();
        let mut intern = |row: Vec<ActionEntry>| -> u32 {
            let next = u32::try_from(index.len()).unwrap_or(u32::MAX);
            *index.entry(row).or_insert_with_key(|row| {
                cells.extend_from_slice(row);
                next
            })
        };
        let mut by_group: HashMap<u32, u32> = HashMap::new();
        let mut rows_of_users = Vec::with_capacity(policy.users.len());
        for user in &policy.users {
            let row = if own.contains(&user.id) {
                intern(row_for(Some(user.id), user.group))
            } else {
                *by_group
                    .entry(user.group)
                    .or_insert_with(|| intern(row_for(None, user.group)))
            };
            rows_of_users.push((user.id, row));
        }
        Self {
            stride,
            cells,
            rows_of_users,
        }
    }

    /// Entries the table needs for this policy, per generation.
    pub fn need(policy: &CompiledPolicy) -> usize {
        Self::of(policy).cells.len()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use policy_common::{ActionParams, kind};

    use super::ActionRows;
    use crate::policy::{self, CompiledPolicy};

    fn compile(src: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&policy::parse(Path::new("t.toml"), src).unwrap())
    }

    fn kind_of(r: &ActionRows, p: &CompiledPolicy, user: &str, class: &str) -> u32 {
        let id = p.user(user).unwrap().id;
        let row = r.rows_of_users.iter().find(|(u, _)| *u == id).unwrap().1;
        let c = p.classes.iter().position(|n| n == class).unwrap() as u32;
        let e = r.cells[(row * r.stride + c) as usize];
        let a: ActionParams = e.profiles[0];
        a.kind
    }

    const POLICY: &str = r#"
[[class]]
name = "mail"
match = { proto = "tcp", ports = [25] }

[[class]]
name = "web"
match = { proto = "tcp", ports = [443] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]
group = "staff"

[[user]]
name = "bob"
ips = ["10.0.0.3"]
group = "staff"

[[user]]
name = "carol"
ips = ["10.0.0.4"]
group = "staff"

[[user]]
name = "dave"
ips = ["10.0.0.5"]

[[user]]
name = "erin"
ips = ["10.0.0.6"]

[[rule]]
class = "mail"
action = "deny"

[[rule]]
class = "mail"
group = "staff"
action = "allow"

[[rule]]
class = "web"
user = "carol"
action = "deny"

[[rule]]
class = "web"
user = "erin"
action = "deny"
"#;

    #[test]
    fn the_fallback_is_folded_into_each_row() {
        let p = compile(POLICY);
        let r = ActionRows::of(&p);
        assert_eq!(kind_of(&r, &p, "alice", "mail"), kind::ALLOW, "the group's");
        assert_eq!(kind_of(&r, &p, "dave", "mail"), kind::DENY, "everyone's");
        assert_eq!(kind_of(&r, &p, "carol", "mail"), kind::ALLOW, "her group's");
        assert_eq!(kind_of(&r, &p, "carol", "web"), kind::DENY, "her own");
        assert_eq!(kind_of(&r, &p, "alice", "web"), kind::ALLOW, "no rule");
        assert_eq!(kind_of(&r, &p, "erin", "default"), kind::ALLOW, "no rule");
    }

    #[test]
    fn users_treated_alike_share_a_row() {
        let p = compile(POLICY);
        let r = ActionRows::of(&p);
        let row = |name: &str| {
            let id = p.user(name).unwrap().id;
            r.rows_of_users.iter().find(|(u, _)| *u == id).unwrap().1
        };
        assert_eq!(row("alice"), row("bob"), "one group, no rules of their own");
        assert_ne!(row("alice"), row("carol"), "carol has her own rule");
        assert_ne!(row("alice"), row("dave"), "another group");
        assert_eq!(row("dave"), row("unidentified"), "everyone's rules only");
        // staff, carol, everyone-else, erin: four rows of three classes.
        assert_eq!(r.stride, 3);
        assert_eq!(r.cells.len(), 4 * 3);
    }
}
