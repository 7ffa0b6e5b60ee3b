//! `policyd top`'s table: counters summed by user, class or direction,
//! ranked by a rate, laid out to fit the terminal.

use std::collections::BTreeMap;

use policy_common::{CounterKey, Counters as Totals};

/// What the rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum GroupBy {
    User,
    Class,
    Direction,
}

/// What ranks the rows: a rate over the interval, then its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum SortBy {
    /// All bytes seen, passed and dropped.
    Bytes,
    /// Bytes passed (including those a monitor action only reported).
    Passed,
    /// Bytes dropped (denied, spoofed or over a limit).
    Dropped,
    /// Packets, whatever the verdict.
    Packets,
    /// Packets dropped.
    Drops,
    /// Packets dropped by a rate limit.
    Limited,
}

/// One row's counters, summed over what the grouping leaves out. Packets a
/// `monitor` action let through count as passed: they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sums {
    pub pass_bytes: u64,
    pub pass_packets: u64,
    pub drop_bytes: u64,
    pub drop_packets: u64,
    pub limit_packets: u64,
}

impl Sums {
    fn add(&mut self, c: &Totals) {
        let add = |a: &mut u64, vs: &[u64]| *a = vs.iter().fold(*a, |a, v| a.wrapping_add(*v));
        add(&mut self.pass_bytes, &[c.pass_bytes, c.monitor_bytes]);
        add(&mut self.pass_packets, &[c.pass_packets, c.monitor_packets]);
        add(&mut self.drop_bytes, &[c.deny_bytes, c.limit_bytes]);
        add(&mut self.drop_packets, &[c.deny_packets, c.limit_packets]);
        add(&mut self.limit_packets, &[c.limit_packets]);
    }
}

/// Per second over an interval: passed and dropped bits, packets, dropped
/// and rate-limited packets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Rates {
    pub pass_bits: f64,
    pub drop_bits: f64,
    pub packets: f64,
    pub drops: f64,
    pub limited: f64,
}

impl Rates {
    /// Since `before`, over `secs`. A counter that went back (the map was
    /// recreated) counts from zero.
    fn between(now: &Sums, before: &Sums, secs: f64) -> Self {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now) as f64 / secs;
        Self {
            pass_bits: 8.0 * d(now.pass_bytes, before.pass_bytes),
            drop_bits: 8.0 * d(now.drop_bytes, before.drop_bytes),
            packets: d(now.pass_packets, before.pass_packets)
                + d(now.drop_packets, before.drop_packets),
            drops: d(now.drop_packets, before.drop_packets),
            limited: d(now.limit_packets, before.limit_packets),
        }
    }
}

pub(super) fn group(rows: &[(CounterKey, Totals)], by: GroupBy) -> BTreeMap<u32, Sums> {
    let mut out = BTreeMap::<u32, Sums>::new();
    for (key, c) in rows {
        let k = match by {
            GroupBy::User => key.user,
            GroupBy::Class => u32::from(key.class),
            GroupBy::Direction => u32::from(key.dir),
        };
        out.entry(k).or_default().add(c);
    }
    out
}

/// A ranked row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub key: u32,
    pub rate: Rates,
    pub total: Sums,
}

fn sort_value(sort: SortBy, r: &Rates, t: &Sums) -> (f64, u64) {
    match sort {
        SortBy::Bytes => (
            r.pass_bits + r.drop_bits,
            t.pass_bytes.wrapping_add(t.drop_bytes),
        ),
        SortBy::Passed => (r.pass_bits, t.pass_bytes),
        SortBy::Dropped => (r.drop_bits, t.drop_bytes),
        SortBy::Packets => (r.packets, t.pass_packets.wrapping_add(t.drop_packets)),
        SortBy::Drops => (r.drops, t.drop_packets),
        SortBy::Limited => (r.limited, t.limit_packets),
    }
}

pub(super) fn rank(
    before: &BTreeMap<u32, Sums>,
    now: &BTreeMap<u32, Sums>,
    secs: f64,
    sort: SortBy,
) -> Vec<Row> {
    let mut rows: Vec<Row> = now
        .iter()
        .map(|(&key, total)| Row {
            key,
            rate: Rates::between(total, &before.get(&key).copied().unwrap_or_default(), secs),
            total: *total,
        })
        .collect();
    rows.sort_by(|a, b| {
        let (ra, ta) = sort_value(sort, &a.rate, &a.total);
        let (rb, tb) = sort_value(sort, &b.rate, &b.total);
        rb.total_cmp(&ra).then(tb.cmp(&ta)).then(a.key.cmp(&b.key))
    });
    rows
}

/// 1234567 -> "1.2M": rates and totals in a fixed-width column.
pub(super) fn human(v: f64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// Columns after the name: (header, unit, the sorts it shows).
const COLUMNS: [(&str, &str, &[SortBy]); 7] = [
    ("pass/s", "bits", &[SortBy::Bytes, SortBy::Passed]),
    ("drop/s", "bits", &[SortBy::Bytes, SortBy::Dropped]),
    ("pkt/s", "pkts", &[SortBy::Packets]),
    ("drop/s", "pkts", &[SortBy::Drops]),
    ("limit/s", "pkts", &[SortBy::Limited]),
    ("passed", "bytes", &[]),
    ("dropped", "bytes", &[]),
];
/// Each numeric column: a space and 8 characters (7 for the value or
/// header, 1 for the sort's mark), and " |" between rates and totals.
const NUMERIC: usize = COLUMNS.len() * 9 + 2;
/// The name column's least width.
const MIN_NAME: usize = 8;

/// How the table is laid out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub by: GroupBy,
    pub sort: SortBy,
    pub limit: usize,
    /// Columns available; `None` (not a terminal): names are never cut.
    pub width: Option<usize>,
}

fn cut(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_owned();
    }
    let kept: String = name.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}~")
}

/// The table; `label` names a row's key. Lines are at most `width` wide
/// (with a name column of at least [`MIN_NAME`]).
pub(super) fn render(
    rows: &[Row],
    label: &dyn Fn(u32) -> String,
    layout: Layout,
    secs: f64,
) -> String {
    let shown: Vec<(&Row, String)> = rows
        .iter()
        .take(layout.limit)
        .map(|r| (r, label(r.key)))
        .collect();
    let longest = shown
        .iter()
        .map(|(_, n)| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let name_width = match layout.width {
        Some(w) => w.saturating_sub(NUMERIC + 1).clamp(MIN_NAME, longest),
        None => longest,
    };
    let title = match layout.by {
        GroupBy::User => "USER",
        GroupBy::Class => "CLASS",
        GroupBy::Direction => "DIRECTION",
    };
    let mut head = format!("{title:<name_width$}");
    let mut units = " ".repeat(name_width);
    for (i, (h, unit, sorts)) in COLUMNS.iter().enumerate() {
        if i == 5 {
            head.push_str(" |");
            units.push_str(" |");
        }
        let mark = if sorts.contains(&layout.sort) {
            "*"
        } else {
            " "
        };
        head.push_str(&format!(" {h:>7}{mark}"));
        units.push_str(&format!(" {:>7} ", format!("({unit})")));
    }
    let mut out = String::new();
    for line in [head, units] {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for (r, name) in &shown {
        let v = [
            r.rate.pass_bits,
            r.rate.drop_bits,
            r.rate.packets,
            r.rate.drops,
            r.rate.limited,
            r.total.pass_bytes as f64,
            r.total.drop_bytes as f64,
        ];
        let mut line = format!("{:<name_width$}", cut(name, name_width));
        for (i, v) in v.iter().enumerate() {
            if i == 5 {
                line.push_str(" |");
            }
            line.push_str(&format!(" {:>7} ", human(*v)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let what = match layout.by {
        GroupBy::User => "users",
        GroupBy::Class => "classes",
        GroupBy::Direction => "directions",
    };
    if rows.len() > layout.limit {
        out.push_str(&format!(
            "... and {} more {what}\n",
            rows.len() - layout.limit
        ));
    }
    if rows.is_empty() {
        out.push_str("(no traffic counted yet)\n");
    }
    out.push_str(&format!(
        "rates per second over the last {secs:.1} s; totals since the counters were made\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: u32, class: u16, dir: u8) -> CounterKey {
        CounterKey {
            user,
            class,
            dir,
            reason: 0,
        }
    }

    fn counters(pass: u64, deny: u64, limit: u64) -> Totals {
        Totals {
            pass_packets: pass,
            pass_bytes: pass * 100,
            deny_packets: deny,
            deny_bytes: deny * 100,
            limit_packets: limit,
            limit_bytes: limit * 100,
            ..Totals::default()
        }
    }

    fn layout(by: GroupBy, sort: SortBy, width: Option<usize>) -> Layout {
        Layout {
            by,
            sort,
            limit: 20,
            width,
        }
    }

    #[test]
    fn sums_passed_and_dropped_apart() {
        let t = group(
            &[
                (key(1, 0, 0), counters(10, 0, 0)),
                (key(1, 3, 1), counters(5, 2, 3)),
                (key(2, 0, 0), counters(1, 0, 0)),
            ],
            GroupBy::User,
        );
        assert_eq!(
            t[&1],
            Sums {
                pass_bytes: 1500,
                pass_packets: 15,
                drop_bytes: 500,
                drop_packets: 5,
                limit_packets: 3,
            }
        );
        assert_eq!(t[&2].pass_packets, 1);
    }

    #[test]
    fn groups_by_class_and_by_direction() {
        let rows = [
            (key(1, 2, 0), counters(10, 0, 0)),
            (key(3, 2, 1), counters(0, 4, 0)),
            (key(3, 5, 1), counters(1, 0, 0)),
        ];
        let classes = group(&rows, GroupBy::Class);
        assert_eq!(classes.keys().copied().collect::<Vec<_>>(), [2, 5]);
        assert_eq!(
            (classes[&2].pass_packets, classes[&2].drop_packets),
            (10, 4)
        );
        let dirs = group(&rows, GroupBy::Direction);
        assert_eq!((dirs[&0].pass_packets, dirs[&1].pass_packets), (10, 1));
        assert_eq!(dirs[&1].drop_bytes, 400);
    }

    #[test]
    fn ranks_by_the_chosen_rate_then_total() {
        let before = group(
            &[
                (key(1, 0, 0), counters(1000, 0, 0)),
                (key(2, 0, 0), counters(0, 0, 0)),
            ],
            GroupBy::User,
        );
        let now = group(
            &[
                (key(1, 0, 0), counters(1000, 0, 0)),
                (key(2, 0, 0), counters(10, 0, 4)),
                (key(3, 0, 0), counters(0, 7, 0)),
            ],
            GroupBy::User,
        );
        let order = |sort| -> Vec<u32> {
            rank(&before, &now, 2.0, sort)
                .iter()
                .map(|r| r.key)
                .collect()
        };
        // User 2 moved 1400 bytes in 2 s; user 3 is new, so its 700 bytes
        // count as this interval's; user 1 was idle.
        assert_eq!(order(SortBy::Bytes), [2, 3, 1]);
        // Only user 2 passed anything this interval; user 1's total breaks
        // the tie with user 3.
        assert_eq!(order(SortBy::Passed), [2, 1, 3]);
        assert_eq!(order(SortBy::Dropped), [3, 2, 1]);
        assert_eq!(order(SortBy::Drops), [3, 2, 1]);
        assert_eq!(order(SortBy::Limited)[0], 2);
        let two = &rank(&before, &now, 2.0, SortBy::Bytes)[0];
        assert_eq!(
            two.rate,
            Rates {
                pass_bits: 4000.0,
                drop_bits: 1600.0,
                packets: 7.0,
                drops: 2.0,
                limited: 2.0,
            }
        );
    }

    #[test]
    fn a_recreated_counter_counts_from_zero() {
        let before = group(&[(key(1, 0, 0), counters(100, 0, 0))], GroupBy::User);
        let now = group(&[(key(1, 0, 0), counters(10, 0, 0))], GroupBy::User);
        assert_eq!(
            rank(&before, &now, 1.0, SortBy::Bytes)[0].rate.packets,
            10.0
        );
    }

    #[test]
    fn fits_80_columns_and_marks_the_sort() {
        let now = group(
            &[
                (key(1, 0, 0), counters(25_000, 3, 0)),
                (key(2, 0, 0), counters(1, 0, 0)),
            ],
            GroupBy::User,
        );
        let rows = rank(&BTreeMap::new(), &now, 1.0, SortBy::Drops);
        let label = |k: u32| {
            if k == 1 {
                "a-user-with-a-very-long-name-indeed".to_owned()
            } else {
                format!("#{k}")
            }
        };
        let text = render(
            &rows,
            &label,
            layout(GroupBy::User, SortBy::Drops, Some(80)),
            1.0,
        );
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} wide: {line}", line.len());
        }
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER "), "{text}");
        // The sort's column, and only it, is marked.
        assert_eq!(lines[0].matches('*').count(), 1, "{text}");
        assert!(lines[0].contains("drop/s*"), "{text}");
        assert!(
            lines[1].contains("(bits)") && lines[1].contains("(bytes)"),
            "{text}"
        );
        // 2.5 MB passed (20 Mbit/s), 300 B dropped (2.4 kbit/s).
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert!(first[0].ends_with('~'), "{text}");
        assert_eq!(&first[1..6], ["20.0M", "2.4k", "25.0k", "3", "0"], "{text}");
        // Two bit-rate columns show the default sort (all bytes).
        let bytes = render(
            &rows,
            &label,
            layout(GroupBy::User, SortBy::Bytes, Some(80)),
            1.0,
        );
        assert_eq!(bytes.lines().next().unwrap().matches('*').count(), 2);
        // Not a terminal: names are never cut.
        let piped = render(
            &rows,
            &label,
            layout(GroupBy::User, SortBy::Drops, None),
            1.0,
        );
        assert!(
            piped.contains("a-user-with-a-very-long-name-indeed "),
            "{piped}"
        );
    }

    #[test]
    fn says_what_is_left_out() {
        let now = group(
            &[
                (key(0, 1, 0), counters(1, 0, 0)),
                (key(0, 2, 1), counters(2, 0, 0)),
            ],
            GroupBy::Class,
        );
        let rows = rank(&BTreeMap::new(), &now, 1.0, SortBy::Bytes);
        let l = Layout {
            limit: 1,
            ..layout(GroupBy::Class, SortBy::Bytes, Some(80))
        };
        let text = render(&rows, &|k| format!("class{k}"), l, 1.0);
        assert!(text.starts_with("CLASS "), "{text}");
        assert!(text.contains("... and 1 more classes"), "{text}");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1500.0), "1.5k");
    }
}
