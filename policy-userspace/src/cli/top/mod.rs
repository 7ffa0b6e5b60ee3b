//! `policyd top`: a live view of the busiest users, read from the pinned
//! counters (so it works beside a running daemon, and after one crashed
//! with enforcement still in force).

use std::{collections::BTreeMap, io::IsTerminal as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use policy_common::{CounterKey, Counters as Totals, USER_UNIDENTIFIED, UserId};

use crate::{
    dataplane,
    dataplane::{Counters, DEFAULT_PIN_DIR},
};

/// Show the top users by bytes, drops or rate-limit hits, refreshed live.
///
/// Rates are over the last interval; totals since the counters were
/// created. Names come from the pinned id allocation. Press Ctrl-C to stop.
#[derive(Debug, clap::Args)]
pub(super) struct TopArgs {
    /// The pin directory `policyd run` uses.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pin_dir: PathBuf,
    /// The policy files in force, to name users when the pinned state has
    /// no names (left by a policyd older than the pinned id allocation).
    #[arg(long = "policy", short = 'p', value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    interval: f64,
    /// Stop after this many refreshes (for scripts); default: until Ctrl-C.
    #[arg(long, value_name = "N")]
    count: Option<u32>,
    /// Rows to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// What ranks users: their rate over the interval, then their total.
    #[arg(long, value_enum, default_value_t = SortBy::Bytes)]
    sort: SortBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SortBy {
    /// All bytes seen, whatever the verdict.
    Bytes,
    /// Packets dropped (denied, spoofed or over a limit).
    Drops,
    /// Packets dropped by a rate limit.
    Limited,
}

/// One user's counters, summed over classes and directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct UserTotals {
    bytes: u64,
    packets: u64,
    dropped: u64,
    limited: u64,
}

impl UserTotals {
    fn add(&mut self, c: &Totals) {
        let bytes = [c.pass_bytes, c.deny_bytes, c.limit_bytes];
        let packets = [c.pass_packets, c.deny_packets, c.limit_packets];
        self.bytes = bytes.iter().fold(self.bytes, |a, v| a.wrapping_add(*v));
        self.packets = packets.iter().fold(self.packets, |a, v| a.wrapping_add(*v));
        self.dropped = self
            .dropped
            .wrapping_add(c.deny_packets)
            .wrapping_add(c.limit_packets);
        self.limited = self.limited.wrapping_add(c.limit_packets);
    }

    /// Per second since `before`, over `secs`. A counter that went back
    /// (the map was recreated) counts from zero.
    fn rate(&self, before: &Self, secs: f64) -> [f64; 4] {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now) as f64 / secs;
        [
            d(self.bytes, before.bytes),
            d(self.packets, before.packets),
            d(self.dropped, before.dropped),
            d(self.limited, before.limited),
        ]
    }
}

fn by_user(rows: &[(CounterKey, Totals)]) -> BTreeMap<UserId, UserTotals> {
    let mut out = BTreeMap::<UserId, UserTotals>::new();
    for (key, c) in rows {
        out.entry(key.user).or_default().add(c);
    }
    out
}

/// A ranked row: user, rates (bytes, packets, drops, limited per second),
/// totals.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    user: UserId,
    rate: [f64; 4],
    total: UserTotals,
}

fn rank(
    before: &BTreeMap<UserId, UserTotals>,
    now: &BTreeMap<UserId, UserTotals>,
    secs: f64,
    sort: SortBy,
) -> Vec<Row> {
    let mut rows: Vec<Row> = now
        .iter()
        .map(|(&user, total)| Row {
            user,
            rate: total.rate(&before.get(&user).copied().unwrap_or_default(), secs),
            total: *total,
        })
        .collect();
    let (i, total): (usize, fn(&UserTotals) -> u64) = match sort {
        SortBy::Bytes => (0, |t| t.bytes),
        SortBy::Drops => (2, |t| t.dropped),
        SortBy::Limited => (3, |t| t.limited),
    };
    rows.sort_by(|a, b| {
        b.rate[i]
            .total_cmp(&a.rate[i])
            .then(total(&b.total).cmp(&total(&a.total)))
            .then(a.user.cmp(&b.user))
    });
    rows
}

/// `names` by id; an id with no name (free, or retired with its counters
/// about to go) shows as its number.
fn name(names: &[String], user: UserId) -> String {
    if user == USER_UNIDENTIFIED {
        return "(unidentified)".to_owned();
    }
    names
        .get(user as usize)
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("#{user}"), Clone::clone)
}

/// 1234567 -> "1.2M": rates and totals in a fixed-width column.
fn human(v: f64) -> String {
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

fn render(rows: &[Row], names: &[String], limit: usize, secs: f64) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}\n",
        "USER", "bit/s", "pkt/s", "drop/s", "limit/s", "bytes", "dropped", "limited"
    );
    for r in rows.iter().take(limit) {
        let [bytes, packets, dropped, limited] = r.rate;
        let total = |v: u64| human(v as f64);
        out.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}\n",
            name(names, r.user),
            human(bytes * 8.0),
            human(packets),
            human(dropped),
            human(limited),
            total(r.total.bytes),
            total(r.total.dropped),
            total(r.total.limited),
        ));
    }
    if rows.len() > limit {
        out.push_str(&format!("... and {} more users\n", rows.len() - limit));
    }
    if rows.is_empty() {
        out.push_str("(no traffic counted yet)\n");
    }
    out.push_str(&format!("rates over the last {secs:.1} s\n"));
    out
}

pub(super) fn top(args: &TopArgs) -> anyhow::Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        bail!("--interval must be at least 0.1 seconds");
    }
    super::require_pins(&args.pin_dir)?;
    let counters = Counters::from_pins(&args.pin_dir).with_context(|| {
        format!(
            "cannot read the counters pinned in {} (is --pin-dir the one `policyd run` uses?)",
            args.pin_dir.display()
        )
    })?;
    let names = match dataplane::pinned_ids(&args.pin_dir) {
        Ok(ids) => ids.users.live_names(),
        Err(e) => {
            tracing::warn!(error = %e, "the pinned state has no names; naming users from --policy");
            super::names_from(&args.policies)?
                .map(|p| p.users.into_iter().map(|u| u.name).collect())
                .unwrap_or_default()
        }
    };
    // Clear the screen between frames for a person; a pipe gets one frame
    // after another, separated by a blank line.
    let live = std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(args.interval);
    let mut before = by_user(&counters.all().context("reading the counters")?);
    let mut at = std::time::Instant::now();
    // What a script waits for before making the traffic the first frame is
    // to show (at debug level, so a person does not see it).
    tracing::debug!("counters read; the first frame counts from here");
    let mut frame = 0u32;
    while args.count.is_none_or(|n| frame < n) {
        std::thread::sleep(interval);
        let now = by_user(&counters.all().context("reading the counters")?);
        let secs = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let rows = rank(&before, &now, secs, args.sort);
        let text = render(&rows, &names, args.limit, secs);
        let text = if live {
            format!(
                "\x1b[H\x1b[2Jpolicyd top: {}\n\n{text}",
                args.pin_dir.display()
            )
        } else if frame > 0 {
            format!("\n{text}")
        } else {
            text
        };
        super::write_stdout(text.as_bytes())?;
        before = now;
        frame += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: UserId, class: u16, dir: u8) -> CounterKey {
        CounterKey {
            user,
            class,
            dir,
            _pad: 0,
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

    #[test]
    fn sums_classes_and_directions_per_user() {
        let t = by_user(&[
            (key(1, 0, 0), counters(10, 0, 0)),
            (key(1, 3, 1), counters(5, 2, 3)),
            (key(2, 0, 0), counters(1, 0, 0)),
        ]);
        assert_eq!(
            t[&1],
            UserTotals {
                bytes: 2000,
                packets: 20,
                dropped: 5,
                limited: 3
            }
        );
        assert_eq!(t[&2].packets, 1);
    }

    #[test]
    fn ranks_by_rate_then_total() {
        let before = by_user(&[
            (key(1, 0, 0), counters(1000, 0, 0)),
            (key(2, 0, 0), counters(0, 0, 0)),
        ]);
        let now = by_user(&[
            (key(1, 0, 0), counters(1000, 0, 0)),
            (key(2, 0, 0), counters(10, 0, 4)),
            (key(3, 0, 0), counters(0, 7, 0)),
        ]);
        let rows = rank(&before, &now, 2.0, SortBy::Bytes);
        // User 2 moved 1400 bytes in 2 s. User 3 is new, so all its 700
        // bytes count as this interval's; user 1 was idle.
        let order: Vec<UserId> = rows.iter().map(|r| r.user).collect();
        assert_eq!(order, [2, 3, 1]);
        assert_eq!(rows[0].rate, [700.0, 7.0, 2.0, 2.0]);
        let drops: Vec<UserId> = rank(&before, &now, 2.0, SortBy::Drops)
            .iter()
            .map(|r| r.user)
            .collect();
        assert_eq!(drops, [3, 2, 1]);
        let limited: Vec<UserId> = rank(&before, &now, 2.0, SortBy::Limited)
            .iter()
            .map(|r| r.user)
            .collect();
        assert_eq!(limited[0], 2);
    }

    #[test]
    fn a_recreated_counter_counts_from_zero() {
        let before = by_user(&[(key(1, 0, 0), counters(100, 0, 0))]);
        let now = by_user(&[(key(1, 0, 0), counters(10, 0, 0))]);
        assert_eq!(rank(&before, &now, 1.0, SortBy::Bytes)[0].rate[1], 10.0);
    }

    #[test]
    fn renders_names_and_units() {
        let now = by_user(&[
            (key(0, 0, 0), counters(1, 0, 0)),
            (key(9, 0, 0), counters(25_000, 0, 0)),
        ]);
        let text = render(
            &rank(&BTreeMap::new(), &now, 1.0, SortBy::Bytes),
            &["unidentified".to_owned(), String::new()],
            1,
            1.0,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER"), "{text}");
        assert!(
            lines[1].starts_with("#9 ") && lines[1].contains("20.0M") && lines[1].contains("2.5M"),
            "{text}"
        );
        assert_eq!(lines[2], "... and 1 more users");
        assert_eq!(human(999.0), "999");
        assert_eq!(human(1500.0), "1.5k");
    }
}
