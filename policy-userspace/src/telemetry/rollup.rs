//! The per-user series under `per_user = "top:N"` and `"none"`, made so that
//! no exported counter ever goes down.
//!
//! Summing the users outside the top N at each scrape makes `_other` drop
//! whenever a heavy user enters the top N (their bytes leave the sum) or
//! leaves the policy (their counters are deleted), and Prometheus' `rate()`
//! reads a drop as a counter reset: a spike of the whole sum. So the sum of
//! a (class, direction, drop reason) is
//!
//! > what the users without a series of their own have counted
//! > \+ what each user with one had counted when they got it
//! > \+ what deleted counters had counted (`Counters::snapshot`),
//!
//! and a promoted user's series counts from their promotion. Each term only
//! grows, so the sum does, and the series add up to everything the kernel
//! counted since start. A promoted user who is demoted (or retired) goes
//! back into the first term: the sum steps up by what their series had
//! counted, and the series ends (a series that ends is not a reset).
//!
//! The top N are chosen by bytes since their counters were created, and a
//! user stays promoted while they are among the top `2N` (so ranks shuffling
//! near N do not make series come and go). State: the promoted users (at
//! most 2N) and what each had counted when promoted; nothing per counter.

use std::collections::{BTreeMap, HashMap, HashSet};

use policy_common::{CounterKey, Counters as Totals};

use crate::{dataplane::RetiredTotals, policy::PerUser};

/// The label of the sum of the users not in the top N.
pub(super) const OTHER: &str = "_other";
/// The label of everyone's sum under `per_user = "none"`.
pub(super) const ALL: &str = "_all";

/// Per (user label, class, direction, drop reason), what to export.
pub(super) type Rows = Vec<((String, u16, u8, u8), Totals)>;

/// Per (class, direction, drop reason), what a user had counted when
/// promoted.
type Taken = HashMap<(u16, u8, u8), Totals>;

#[derive(Debug, Default)]
pub(super) struct Rollup {
    mode: PerUser,
    /// Users with a series of their own: by id, their name (an id reused by
    /// another user starts over) and what they had counted when promoted.
    promoted: HashMap<u32, (String, Taken)>,
    /// A scrape was answered: from then on a new series counts from its
    /// promotion (before it, the sum had exported nothing of anyone).
    answered: bool,
}

fn fields(c: &Totals) -> [u64; 9] {
    [
        c.pass_packets,
        c.pass_bytes,
        c.deny_packets,
        c.deny_bytes,
        c.limit_packets,
        c.limit_bytes,
        c.monitor_packets,
        c.monitor_bytes,
        c.ecn_marked_packets,
    ]
}

/// What `now` grew by since `then`; all of `now` when a field went down
/// (the counter was deleted and made again, e.g. an id reused).
fn growth(now: &Totals, then: &Totals) -> Totals {
    let (n, t) = (fields(now), fields(then));
    if n.iter().zip(&t).any(|(n, t)| n < t) {
        return *now;
    }
    let d: Vec<u64> = n.iter().zip(&t).map(|(n, t)| n - t).collect();
    Totals {
        pass_packets: d[0],
        pass_bytes: d[1],
        deny_packets: d[2],
        deny_bytes: d[3],
        limit_packets: d[4],
        limit_bytes: d[5],
        monitor_packets: d[6],
        monitor_bytes: d[7],
        ecn_marked_packets: d[8],
    }
}

fn bytes(c: &Totals) -> u64 {
    c.pass_bytes + c.deny_bytes + c.limit_bytes + c.monitor_bytes
}

impl Rollup {
    /// The series for this scrape from the kernel's `rows` (of named classes;
    /// of any user: ids without a name, being retired, count in the sums)
    /// and what deleted counters had counted. `name` gives an id's user
    /// name, `None` for a free or retiring id.
    pub(super) fn rows<'a>(
        &mut self,
        mode: PerUser,
        rows: Vec<(CounterKey, Totals)>,
        retired: &RetiredTotals,
        name: impl Fn(u32) -> Option<&'a str>,
    ) -> Rows {
        if mode != self.mode {
            // A reload changed the mode: the sums start again (their label
            // changes too, or they did not exist).
            *self = Self {
                mode,
                ..Self::default()
            };
        }
        if mode == PerUser::All {
            return rows
                .into_iter()
                .filter_map(|(k, c)| {
                    let user = name(k.user)?.to_owned();
                    Some(((user, k.class, k.dir, k.reason), c))
                })
                .collect();
        }
        self.promote(mode, &rows, &name);
        let rest_label = if mode == PerUser::None { ALL } else { OTHER };
        let mut rest: BTreeMap<(u16, u8, u8), Totals> = retired.clone();
        let mut out: BTreeMap<(String, u16, u8, u8), Totals> = BTreeMap::new();
        for (k, c) in rows {
            let at = (k.class, k.dir, k.reason);
            match self.promoted.get(&k.user) {
                Some((user, taken)) => {
                    let then = taken.get(&at).copied().unwrap_or_default();
                    out.insert((user.clone(), k.class, k.dir, k.reason), growth(&c, &then));
                }
                None => rest.entry(at).or_default().accumulate(&c),
            }
        }
        for (_, taken) in self.promoted.values() {
            for (at, c) in taken {
                rest.entry(*at).or_default().accumulate(c);
            }
        }
        for ((class, dir, reason), c) in rest {
            out.insert((rest_label.to_owned(), class, dir, reason), c);
        }
        self.answered = true;
        out.into_iter().collect()
    }

    /// Gives the top N (named) users their own series, and ends those of
    /// users who fell out of the top 2N or whose id no longer names them.
    fn promote<'a>(
        &mut self,
        mode: PerUser,
        rows: &[(CounterKey, Totals)],
        name: &impl Fn(u32) -> Option<&'a str>,
    ) {
        let n = match mode {
            PerUser::Top(n) => n,
            PerUser::All | PerUser::None => 0,
        };
        let mut per_user: HashMap<u32, u64> = HashMap::new();
        for (k, c) in rows.iter().filter(|(k, _)| name(k.user).is_some()) {
            *per_user.entry(k.user).or_default() += bytes(c);
        }
        let mut ranked: Vec<(u32, u64)> = per_user.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let keep: HashSet<u32> = ranked.iter().take(2 * n).map(|(u, _)| *u).collect();
        self.promoted
            .retain(|id, (user, _)| keep.contains(id) && name(*id) == Some(user.as_str()));
        for (id, _) in ranked.iter().take(n) {
            if self.promoted.contains_key(id) {
                continue;
            }
            let Some(user) = name(*id) else { continue };
            let taken = if self.answered {
                rows.iter()
                    .filter(|(k, _)| k.user == *id)
                    .map(|(k, c)| ((k.class, k.dir, k.reason), *c))
                    .collect()
            } else {
                Taken::new()
            };
            self.promoted.insert(*id, (user.to_owned(), taken));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: u32, bytes: u64) -> (CounterKey, Totals) {
        (
            CounterKey {
                user,
                class: 0,
                dir: 0,
                reason: 0,
            },
            Totals {
                pass_packets: bytes / 100,
                pass_bytes: bytes,
                ..Totals::default()
            },
        )
    }

    const USERS: [&str; 4] = ["unidentified", "a", "b", "c"];

    fn named(id: u32) -> Option<&'static str> {
        USERS.get(id as usize).copied()
    }

    fn none() -> RetiredTotals {
        RetiredTotals::new()
    }

    fn view(rows: &Rows) -> Vec<(&str, u64)> {
        rows.iter()
            .map(|((u, _, _, _), c)| (u.as_str(), c.pass_bytes))
            .collect()
    }

    #[test]
    fn no_policy_can_name_a_user_like_a_sum() {
        assert!(crate::policy::RESERVED_LABELS.contains(&OTHER));
        assert!(crate::policy::RESERVED_LABELS.contains(&ALL));
    }

    #[test]
    fn every_user_on_their_own_needs_no_state() {
        let mut r = Rollup::default();
        let out = r.rows(PerUser::All, vec![row(1, 100), row(2, 300)], &none(), named);
        assert_eq!(view(&out), [("a", 100), ("b", 300)]);
        assert!(r.promoted.is_empty());
    }

    #[test]
    fn the_top_n_have_series_and_the_rest_is_summed() {
        let mut r = Rollup::default();
        let out = r.rows(
            PerUser::Top(2),
            vec![row(1, 100), row(2, 300), row(3, 200), row(0, 50)],
            &none(),
            named,
        );
        assert_eq!(view(&out), [("_other", 150), ("b", 300), ("c", 200)]);
        let out = r.rows(
            PerUser::None,
            vec![row(1, 100), row(2, 300)],
            &none(),
            named,
        );
        assert_eq!(view(&out), [("_all", 400)]);
    }

    #[test]
    fn a_user_entering_the_top_n_does_not_make_the_sum_go_down() {
        let mut r = Rollup::default();
        let top1 = PerUser::Top(1);
        let rows = |a, b, c| vec![row(1, a), row(2, b), row(3, c)];
        let out = r.rows(top1, rows(1000, 10, 20), &none(), named);
        assert_eq!(view(&out), [("_other", 30), ("a", 1000)]);
        // b overtakes a: b's series counts from now (what b had counted
        // stays in `_other`); a stays (within the top 2N = 2).
        let out = r.rows(top1, rows(1001, 5000, 25), &none(), named);
        assert_eq!(view(&out), [("_other", 5025), ("a", 1001), ("b", 0)]);
        // c overtakes a too: a falls out of the top 2, its series ends and
        // `_other` takes all a counted (1002 + 3000 + b's 5000); c is at
        // rank 2, not promoted (top 1 only).
        let out = r.rows(top1, rows(1002, 5001, 3000), &none(), named);
        assert_eq!(view(&out), [("_other", 9002), ("b", 1)]);
        let out = r.rows(top1, rows(1102, 5002, 3000), &none(), named);
        assert_eq!(view(&out), [("_other", 9102), ("b", 2)]);
    }

    #[test]
    fn property_series_never_go_down_and_add_up_to_the_kernel() {
        // Random growth for 6 users over 200 scrapes, with top:2: every
        // series is monotonic while it exists and the sum of the series is
        // the sum of the kernel's counters.
        const NAMES: [&str; 7] = ["unidentified", "a", "b", "c", "d", "e", "f"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut kernel = [0u64; 7];
        let mut r = Rollup::default();
        let mut prev: HashMap<String, u64> = HashMap::new();
        for _ in 0..200 {
            for k in kernel.iter_mut() {
                *k += rand() % 1000 * (rand() % 3);
            }
            let rows = kernel
                .iter()
                .enumerate()
                .map(|(u, b)| row(u as u32, *b))
                .collect();
            let out = r.rows(PerUser::Top(2), rows, &none(), |id| {
                NAMES.get(id as usize).copied()
            });
            let total: u64 = out.iter().map(|(_, c)| c.pass_bytes).sum();
            assert_eq!(total, kernel.iter().sum::<u64>());
            // A series present in two scrapes in a row never went down.
            let mut now = HashMap::new();
            for ((user, _, _, _), c) in &out {
                if let Some(before) = prev.get(user) {
                    assert!(*before <= c.pass_bytes, "{user} went down");
                }
                now.insert(user.clone(), c.pass_bytes);
            }
            prev = now;
        }
    }

    #[test]
    fn retired_ids_and_reused_ids_keep_the_sum_growing() {
        let mut r = Rollup::default();
        let out = r.rows(
            PerUser::None,
            vec![row(1, 100), row(2, 300)],
            &none(),
            named,
        );
        assert_eq!(view(&out), [("_all", 400)]);
        // Id 2 retiring: no name, but its counters still count in the sum.
        let out = r.rows(
            PerUser::None,
            vec![row(1, 120), row(2, 300)],
            &none(),
            |id| (id != 2).then(|| named(id)).flatten(),
        );
        assert_eq!(view(&out), [("_all", 420)]);
        // Its counters deleted: what they had counted is kept by the
        // dataplane (`Counters::snapshot`), so the sum does not drop.
        let mut retired = none();
        retired.insert((0, 0, 0), row(2, 300).1);
        let out = r.rows(PerUser::None, vec![row(1, 150)], &retired, named);
        assert_eq!(view(&out), [("_all", 450)]);
        // The id reused: its new counters start from zero.
        let out = r.rows(
            PerUser::None,
            vec![row(1, 150), row(2, 20)],
            &retired,
            named,
        );
        assert_eq!(view(&out), [("_all", 470)]);
    }

    #[test]
    fn a_promoted_user_who_leaves_the_policy_steps_the_sum_up() {
        let mut r = Rollup::default();
        let top1 = PerUser::Top(1);
        let out = r.rows(top1, vec![row(1, 50), row(2, 10)], &none(), named);
        assert_eq!(view(&out), [("_other", 10), ("a", 50)]);
        // a retires: the series ends, the sum takes all a counted.
        let gone = |id: u32| (id != 1).then(|| named(id)).flatten();
        let out = r.rows(top1, vec![row(1, 60), row(2, 10)], &none(), gone);
        assert_eq!(view(&out), [("_other", 70), ("b", 0)]);
    }
}
