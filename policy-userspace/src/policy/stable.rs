//! Stable ids: the name -> id allocation of users and classes, and how a
//! policy gets its ids from it.
//!
//! Counters, token buckets and event limits in the kernel are keyed by ids,
//! so a name keeps its id for as long as it stays in the policy: across
//! reloads and, the allocation being pinned with that state (see
//! `dataplane::ids`), across restarts, whatever order the files list names
//! in. The id of a name that leaves is retired: once no packet can be
//! identified as it any more its state is deleted, and only then is the id
//! free for a new name. However many reloads there are, the ids in use stay
//! bounded by the old and new names of one reload.
//!
//! Pure: the dataplane reads the pinned allocation into an [`Allocation`],
//! asks [`assign`] for the ids of a new policy and [`changes`] for what to
//! write, and writes it.

use std::collections::{BTreeMap, HashMap};

use policy_common::{GROUP_BIT, SUBJECT_ANY, UserId};

use super::{CompiledPolicy, CompiledUser};

/// What an id in use is. An id with no slot is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// The name's, in the policy in force (or about to be).
    Live(String),
    /// The name left; its state is being deleted. Not free yet.
    Retired(String),
}

/// One kind's allocation (users or classes): the slots of the ids in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    slots: BTreeMap<u32, Slot>,
    /// Ids are `0..limit` (the kernel's tables are that large).
    limit: u32,
}

impl Table {
    /// An empty table for ids `0..limit`.
    pub fn new(limit: u32) -> Self {
        Self {
            slots: BTreeMap::new(),
            limit,
        }
    }

    /// Ids a name may have: `0..limit`.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn get(&self, id: u32) -> Option<&Slot> {
        self.slots.get(&id)
    }

    /// Records `slot` for `id` (as read from, or written to, the kernel).
    pub fn set(&mut self, id: u32, slot: Slot) {
        self.slots.insert(id, slot);
    }

    /// Frees `id` (its state is gone).
    pub fn free(&mut self, id: u32) {
        self.slots.remove(&id);
    }

    /// Ids in use (live or retired).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The highest id in use.
    pub fn highest(&self) -> Option<u32> {
        self.slots.keys().next_back().copied()
    }

    /// Every id in use with its slot, by id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.slots.iter().map(|(id, s)| (*id, s))
    }

    /// Names by id (index = id), as the metrics label them: ids that are
    /// free or retired have no name.
    pub fn live_names(&self) -> Vec<String> {
        let mut out = vec![String::new(); self.highest().map_or(0, |h| h as usize + 1)];
        for (id, slot) in self.iter() {
            if let Slot::Live(name) = slot {
                out[id as usize].clone_from(name);
            }
        }
        out
    }

    /// For each name (by position; position 0 is reserved and keeps id 0),
    /// its id: the one it has, else the lowest free one.
    fn ids_for<'a>(
        &self,
        kind: &'static str,
        names: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<Vec<u32>, IdError> {
        let live: HashMap<&str, u32> = self
            .iter()
            .filter_map(|(id, s)| match s {
                Slot::Live(n) => Some((n.as_str(), id)),
                Slot::Retired(_) => None,
            })
            .collect();
        let wanted = names.len();
        let mut next = 1u32;
        let mut out = Vec::with_capacity(wanted);
        for (i, name) in names.enumerate() {
            let id = match live.get(name) {
                _ if i == 0 => 0,
                Some(&id) if id != 0 => id,
                _ => {
                    while self.slots.contains_key(&next) {
                        next += 1;
                    }
                    if next >= self.limit {
                        return Err(IdError::Exhausted {
                            kind,
                            wanted,
                            held: self.len(),
                            limit: self.limit,
                        });
                    }
                    next += 1;
                    next - 1
                }
            };
            out.push(id);
        }
        Ok(out)
    }
}

/// The allocation of both kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub users: Table,
    pub classes: Table,
}

#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error(
        "no free {kind} id: the policy has {wanted} {kind}s, the ids of {held} are in use \
         (names in force and names whose state is being deleted) and there are {limit}"
    )]
    Exhausted {
        kind: &'static str,
        wanted: usize,
        held: usize,
        limit: u32,
    },
}

/// `fresh` (compiled on its own, with positional ids) renumbered from the
/// allocation: every name keeps the id it has there; new names get free ids
/// (never a retired one, whose state may still be in the kernel).
pub fn assign(fresh: &CompiledPolicy, alloc: &Allocation) -> Result<CompiledPolicy, IdError> {
    let user_map = alloc
        .users
        .ids_for("user", fresh.users.iter().map(|u| u.name.as_str()))?;
    let class_map = alloc
        .classes
        .ids_for("class", fresh.classes.iter().map(String::as_str))?;
    Ok(renumber(fresh, &user_map, &class_map))
}

/// `fresh` with user `i` as `user_map[i]` and class `i` as `class_map[i]`.
/// Ids no name has are holes: a user with an empty name and group 0, an
/// empty class name.
fn renumber(fresh: &CompiledPolicy, user_map: &[u32], class_map: &[u32]) -> CompiledPolicy {
    let u = |id: UserId| user_map[id as usize];
    let c = |id: u32| class_map[id as usize];
    let mut out = fresh.clone();
    let slots = user_map.iter().max().map_or(0, |m| *m as usize + 1);
    out.users = (0..slots as u32)
        .map(|id| CompiledUser {
            id,
            name: String::new(),
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
    let class_slots = class_map.iter().max().map_or(0, |m| *m as usize + 1);
    out.classes = vec![String::new(); class_slots];
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
    for q in &mut out.quotas {
        q.user = u(q.user);
        if q.class != policy_common::QUOTA_ALL_CLASSES {
            q.class = c(q.class);
        }
    }
    let allowed = fresh.config.quarantine_classes;
    out.config.quarantine_classes = (0..64u32)
        .filter(|i| allowed & (1 << i) != 0)
        .fold(0u64, |bits, i| bits | 1u64 << c(i));
    out
}

/// What making `names` (index = id, empty = no name) the policy in force
/// changes in `table`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Slots to write as live before the policy is switched in: new names,
    /// and ids whose name differs from the allocation's.
    pub record: Vec<(u32, String)>,
    /// Ids in use that `names` does not name: once the policy is in force
    /// and no packet can be identified as them, their state is deleted and
    /// they are freed. Includes ids retired by an earlier apply that did not
    /// get as far as freeing them (a crash).
    pub retire: Vec<u32>,
}

pub fn changes<S: AsRef<str>>(table: &Table, names: &[S]) -> Changes {
    let record = names
        .iter()
        .map(AsRef::as_ref)
        .enumerate()
        .filter(|(id, name)| {
            !name.is_empty() && !matches!(table.get(*id as u32), Some(Slot::Live(n)) if n == name)
        })
        .map(|(id, name)| (id as u32, name.to_owned()))
        .collect();
    let retire = table
        .iter()
        .filter(|(id, _)| {
            names
                .get(*id as usize)
                .is_none_or(|n| n.as_ref().is_empty())
        })
        .map(|(id, _)| id)
        .collect();
    Changes { record, retire }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::parse;

    fn compile(src: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&parse(Path::new("p.toml"), src).unwrap())
    }

    fn users(names: &[&str]) -> String {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "[[user]]\nname = \"{n}\"\nips = [\"10.0.{}.{}\"]\n",
                    i / 250,
                    i % 250 + 2
                )
            })
            .collect()
    }

    /// What the dataplane does with a policy: record, switch, retire, free.
    fn apply(alloc: &mut Allocation, p: &CompiledPolicy) {
        let names: Vec<String> = p.users.iter().map(|u| u.name.clone()).collect();
        for (table, names) in [
            (&mut alloc.users, names),
            (&mut alloc.classes, p.classes.clone()),
        ] {
            let ch = changes(table, &names);
            for (id, name) in ch.record {
                table.set(id, Slot::Live(name));
            }
            for id in ch.retire {
                table.free(id);
            }
        }
    }

    fn empty() -> Allocation {
        Allocation {
            users: Table::new(65_536),
            classes: Table::new(64),
        }
    }

    #[test]
    fn names_longer_than_their_slot_are_refused_where_they_are_written() {
        let long = "x".repeat(policy_common::MAX_NAME_LEN + 1);
        let fits = "x".repeat(policy_common::MAX_NAME_LEN);
        for (src, field) in [
            (users(&[&long]), "user[0].name"),
            (
                format!("[[class]]\nname = \"{long}\"\nmatch = {{ proto = \"udp\" }}\n"),
                "class[0].name",
            ),
        ] {
            let e = parse(Path::new("p.toml"), &src).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("p.toml:2:8: {field}: `{long}` is not a valid"))
                    && e.contains("1 to 64 of"),
                "{e}"
            );
        }
        assert!(parse(Path::new("p.toml"), &users(&[&fits])).is_ok());
    }

    #[test]
    fn a_first_policy_gets_positional_ids() {
        let fresh = compile(&users(&["alice", "bob"]));
        let p = assign(&fresh, &empty()).unwrap();
        assert_eq!(p, fresh, "nothing pinned yet: the compiler's ids");
    }

    #[test]
    fn users_and_classes_keep_their_ids_whatever_the_order() {
        let mut alloc = empty();
        let v1 = assign(
            &compile(
                &("[[class]]\nname = \"mail\"\nmatch = { proto = \"tcp\", ports = [25] }\n"
                    .to_owned()
                    + &users(&["alice", "bob"])
                    + "[[rule]]\nclass = \"mail\"\nuser = \"bob\"\naction = \"deny\"\n"),
            ),
            &alloc,
        )
        .unwrap();
        apply(&mut alloc, &v1);
        assert_eq!(
            (v1.user("alice").unwrap().id, v1.user("bob").unwrap().id),
            (1, 2)
        );
        // v2 puts a new user first, drops alice, and a new class first.
        let v2 = assign(
            &compile(
                "[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n[[class]]\nname = \"mail\"\nmatch = { proto = \"tcp\", ports = [25] }\n[[user]]\nname = \"carol\"\nips = [\"10.0.0.4\"]\n[[user]]\nname = \"bob\"\nips = [\"10.0.0.3\"]\n[[rule]]\nclass = \"mail\"\nuser = \"bob\"\naction = \"deny\"\n",
            ),
            &alloc,
        )
        .unwrap();
        assert_eq!(v2.user("bob").unwrap().id, 2, "bob keeps his id");
        assert_eq!(
            v2.user("carol").unwrap().id,
            3,
            "alice's id is not free until her state is gone: carol gets a new one"
        );
        assert_eq!(v2.users[1].name, "", "alice's id has no name any more");
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

        let ch = changes(
            &alloc.users,
            &v2.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
        );
        assert_eq!(
            ch.record,
            [(3, "carol".to_owned())],
            "only the new name is written"
        );
        assert_eq!(ch.retire, [1], "alice's id is retired");
        apply(&mut alloc, &v2);
        // Alice comes back after her id was freed: she gets the lowest free
        // id, which is her old one, with nothing of her old state.
        let v3 = assign(&compile(&users(&["alice"])), &alloc).unwrap();
        assert_eq!(v3.user("alice").unwrap().id, 1);
    }

    #[test]
    fn a_retired_id_is_not_reused_until_it_is_freed() {
        let mut alloc = empty();
        alloc.users.set(0, Slot::Live("unidentified".into()));
        alloc.users.set(1, Slot::Retired("alice".into()));
        alloc.users.set(2, Slot::Live("bob".into()));
        // A crash left alice retired but not freed; she is back in the
        // policy: a new id, not her old one (its state may be half deleted).
        let p = assign(&compile(&users(&["alice", "bob", "carol"])), &alloc).unwrap();
        assert_eq!(
            ["alice", "bob", "carol"].map(|n| p.user(n).unwrap().id),
            [3, 2, 4]
        );
        let ch = changes(
            &alloc.users,
            &p.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
        );
        assert_eq!(ch.retire, [1], "the retirement is finished now");
        assert_eq!(ch.record, [(3, "alice".into()), (4, "carol".into())]);
    }

    #[test]
    fn live_names_leave_free_and_retired_ids_unnamed() {
        let mut t = Table::new(8);
        t.set(0, Slot::Live("unidentified".into()));
        t.set(2, Slot::Retired("alice".into()));
        t.set(3, Slot::Live("bob".into()));
        assert_eq!(t.live_names(), ["unidentified", "", "", "bob"]);
        assert_eq!((t.len(), t.highest()), (3, Some(3)));
    }

    #[test]
    fn rotating_names_reuses_ids_and_never_runs_out() {
        let mut alloc = empty();
        let mut highest = 0;
        // 200 reloads of 1000 new names each would need 200 001 ids if
        // retired ids were never reused; the table has 65 536.
        for round in 0..200 {
            let names: Vec<String> = (0..1000).map(|i| format!("u{round}-{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let p = assign(&compile(&users(&refs)), &alloc).unwrap();
            apply(&mut alloc, &p);
            highest = highest.max(p.users.len() - 1);
            assert_eq!(alloc.users.len(), 1001);
        }
        assert_eq!(
            highest, 2000,
            "the peak is the old names and the new of one reload"
        );
    }

    #[test]
    fn too_many_names_for_the_table_is_an_error() {
        let mut alloc = empty();
        alloc.users = Table::new(3);
        let p = assign(&compile(&users(&["a", "b"])), &alloc).unwrap();
        apply(&mut alloc, &p);
        let err = assign(&compile(&users(&["c"])), &alloc).unwrap_err();
        assert!(
            err.to_string()
                .contains("no free user id: the policy has 2 users, the ids of 3 are in use"),
            "{err}"
        );
        // Once b's id is retired and freed, c gets it.
        let p = assign(&compile(&users(&["a"])), &alloc).unwrap();
        apply(&mut alloc, &p);
        let p = assign(&compile(&users(&["a", "c"])), &alloc).unwrap();
        assert_eq!(p.user("c").unwrap().id, 2);
    }
}
