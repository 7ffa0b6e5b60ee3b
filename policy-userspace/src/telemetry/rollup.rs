//! The per-user series under `per_user = "top:N"` and `"none"`, made so that
//! no exported counter ever goes down.
//!
//! Summing the users outside the top N at each scrape makes `_other` drop
//! whenever a heavy user enters the top N (their bytes leave the sum), and
//! Prometheus' `rate()` reads a drop as a counter reset: a spike of the whole
//! sum. So the sums here only ever add growth: each scrape adds to `_other`
//! (or `_all`) what each summed counter grew by since the last one. A user
//! who enters the top N starts a series of their own counting from what the
//! sum has already taken of them, so the series add up to the kernel's
//! totals at every scrape and each of them only grows.
//!
//! The top N are chosen by bytes since their counters were created, and a
//! user stays promoted while they are among the top `2N` (so ranks shuffling
//! near N do not make series come and go); a user who falls further is
//! summed again: their series ends (a series that ends is not a reset) and
//! the sum takes what it had counted, a step up. State is the last value of each summed counter: as many
//! entries as the kernel's counter map holds, kept only in these two modes.

use std::collections::{BTreeMap, HashMap, HashSet};

use policy_common::{CounterKey, Counters as Totals};

use crate::policy::PerUser;

/// The label of the sum of the users not in the top N.
pub(super) const OTHER: &str = "_other";
/// The label of everyone's sum under `per_user = "none"`.
pub(super) const ALL: &str = "_all";

/// Per (user label, class, direction, drop reason), what to export.
pub(super) type Rows = Vec<((String, u16, u8, u8), Totals)>;

/// Per (class, direction, drop reason), what the sum took of a user before
/// their promotion.
type Taken = HashMap<(u16, u8, u8), Totals>;

#[derive(Debug, Default)]
pub(super) struct Rollup {
    mode: PerUser,
    /// Users with a series of their own: by id, their name (an id reused by
    /// another user starts over) and the part of their counters the sum
    /// took before they were promoted.
    promoted: HashMap<u32, (String, Taken)>,
    /// Each summed counter's value at the last scrape.
    seen: HashMap<CounterKey, Totals>,
    /// The sums per (class, direction, drop reason): they only grow.
    rest: BTreeMap<(u16, u8, u8), Totals>,
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
    /// The series for this scrape from the kernel's `rows` (named ids only:
    /// `name` gives an id's user name, `None` for a free or retiring id).
    pub(super) fn rows<'a>(
        &mut self,
        mode: PerUser,
        rows: Vec<(CounterKey, Totals)>,
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
        let rows: Vec<(CounterKey, Totals)> = rows
            .into_iter()
            .filter(|(k, _)| name(k.user).is_some())
            .collect();
        if mode == PerUser::All {
            return rows
                .into_iter()
                .map(|(k, c)| {
                    (
                        (
                            name(k.user).unwrap_or_default().to_owned(),
                            k.class,
                            k.dir,
                            k.reason,
                        ),
                        c,
                    )
                })
                .collect();
        }
        self.promote(mode, &rows, &name);
        let rest_label = if mode == PerUser::None { ALL } else { OTHER };
        let mut out: BTreeMap<(String, u16, u8, u8), Totals> = BTreeMap::new();
        let mut present = HashSet::with_capacity(rows.len());
        for (k, c) in rows {
            if let Some((user, taken)) = self.promoted.get(&k.user) {
                let own = growth(
                    &c,
                    taken
                        .get(&(k.class, k.dir, k.reason))
                        .unwrap_or(&Totals::default()),
                );
                out.insert((user.clone(), k.class, k.dir, k.reason), own);
                continue;
            }
            present.insert(k);
            let last = self.seen.insert(k, c).unwrap_or_default();
            self.rest
                .entry((k.class, k.dir, k.reason))
                .or_default()
                .accumulate(&growth(&c, &last));
        }
        // Counters deleted in the kernel (retired ids) leave no state.
        self.seen.retain(|k, _| present.contains(k));
        for ((class, dir, reason), c) in &self.rest {
            out.insert((rest_label.to_owned(), *class, *dir, *reason), *c);
        }
        out.into_iter().collect()
    }

    /// Gives the top N their own series and sums again those who fell out
    /// of the top 2N (or whose id now names someone else).
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
        for (k, c) in rows {
            *per_user.entry(k.user).or_default() += bytes(c);
        }
        let mut ranked: Vec<(u32, u64)> = per_user.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let keep: HashSet<u32> = ranked.iter().take(2 * n).map(|(u, _)| *u).collect();
        // Demoted: their series ends and the sum takes what it counted (a
        // step up, never down), so the series still add up to the kernel's
        // totals; their growth from now on goes to the sum.
        let demoted: Vec<u32> = self
            .promoted
            .iter()
            .filter(|(id, (user, _))| !keep.contains(id) || name(**id) != Some(user.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for id in demoted {
            let (user, taken) = self.promoted.remove(&id).unwrap_or_default();
            if name(id) != Some(user.as_str()) {
                // The id was retired: its counters went with it.
                continue;
            }
            for (k, c) in rows.iter().filter(|(k, _)| k.user == id) {
                let own = growth(
                    c,
                    taken
                        .get(&(k.class, k.dir, k.reason))
                        .unwrap_or(&Totals::default()),
                );
                self.rest
                    .entry((k.class, k.dir, k.reason))
                    .or_default()
                    .accumulate(&own);
                self.seen.insert(*k, *c);
            }
        }
        for (id, _) in ranked.iter().take(n) {
            if self.promoted.contains_key(id) {
                continue;
            }
            let Some(user) = name(*id) else { continue };
            // What the sum took of them so far stays in the sum.
            let taken = rows
                .iter()
                .filter(|(k, _)| k.user == *id)
                .map(|(k, _)| {
                    (
                        (k.class, k.dir, k.reason),
                        self.seen.remove(k).unwrap_or_default(),
                    )
                })
                .collect();
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
        let out = r.rows(PerUser::All, vec![row(1, 100), row(2, 300)], named);
        assert_eq!(view(&out), [("a", 100), ("b", 300)]);
        assert!(r.seen.is_empty());
    }

    #[test]
    fn the_top_n_have_series_and_the_rest_is_summed() {
        let mut r = Rollup::default();
        let out = r.rows(
            PerUser::Top(2),
            vec![row(1, 100), row(2, 300), row(3, 200), row(0, 50)],
            named,
        );
        assert_eq!(view(&out), [("_other", 150), ("b", 300), ("c", 200)]);
        let out = r.rows(PerUser::None, vec![row(1, 100), row(2, 300)], named);
        assert_eq!(view(&out), [("_all", 400)]);
    }

    #[test]
    fn a_user_entering_the_top_n_does_not_make_the_sum_go_down() {
        let mut r = Rollup::default();
        let top1 = PerUser::Top(1);
        let out = r.rows(top1, vec![row(1, 1000), row(2, 10), row(3, 20)], named);
        assert_eq!(view(&out), [("_other", 30), ("a", 1000)]);
        // b overtakes a: b gets a series counting from what `_other` took
        // (10), a stays (it is within the top 2N = 2), `_other` keeps growing.
        let out = r.rows(top1, vec![row(1, 1001), row(2, 5000), row(3, 25)], named);
        assert_eq!(view(&out), [("_other", 35), ("a", 1001), ("b", 4990)]);
        // c overtakes a too: a falls out of the top 2, so the sum takes
        // a's count (35 + 1002 + c's 2975) and a's growth from now; c is at
        // rank 2, not promoted (top 1 only).
        let out = r.rows(top1, vec![row(1, 1002), row(2, 5001), row(3, 3000)], named);
        assert_eq!(view(&out), [("_other", 4012), ("b", 4991)]);
        let out = r.rows(top1, vec![row(1, 1102), row(2, 5002), row(3, 3000)], named);
        assert_eq!(view(&out), [("_other", 4112), ("b", 4992)]);
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
            let out = r.rows(PerUser::Top(2), rows, |id| NAMES.get(id as usize).copied());
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
        let out = r.rows(PerUser::None, vec![row(1, 100), row(2, 300)], named);
        assert_eq!(view(&out), [("_all", 400)]);
        // Id 2 retired (no name, counters deleted), then reused: its new
        // counters start from zero and their growth is added.
        let out = r.rows(PerUser::None, vec![row(1, 150)], named);
        assert_eq!(view(&out), [("_all", 450)]);
        let out = r.rows(PerUser::None, vec![row(1, 150), row(2, 20)], named);
        assert_eq!(view(&out), [("_all", 470)]);
        assert_eq!(r.seen.len(), 2);
    }
}
