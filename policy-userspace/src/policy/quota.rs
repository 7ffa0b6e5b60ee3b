//! Byte quotas (`[[quota]]`): what a budget is, and when its periods start
//! in the policy's time zone. The kernel counts (policy-common's quota.rs);
//! the daemon starts each new period (dataplane's quota.rs).

use std::fmt;

use jiff::{
    Timestamp, ToSpan as _,
    civil::{Date, Weekday},
    tz::TimeZone,
};

use super::{Subject, units::ActionSpec};

/// How long a budget lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

impl QuotaPeriod {
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// When a period starts: `minute` after local midnight, on `weekday`
/// (weekly) or on day `day` of the month (monthly, 1 to 28 so that every
/// month has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaReset {
    pub weekday: Weekday,
    pub day: i8,
    pub minute: u16,
}

impl Default for QuotaReset {
    /// Midnight; Mondays; the first of the month.
    fn default() -> Self {
        Self {
            weekday: Weekday::Monday,
            day: 1,
            minute: 0,
        }
    }
}

/// A validated `[[quota]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// A user, a group (each member their own budget) or everyone
    /// identified (each their own).
    pub subject: Subject,
    /// Only this class's bytes count (and only its packets are held once
    /// the budget is used up); `None`: all the user's traffic.
    pub class: Option<String>,
    pub bytes: u64,
    pub period: QuotaPeriod,
    pub reset: QuotaReset,
    /// What applies once the budget is used up, on top of the class's own
    /// action: `deny`, `monitor` or a `limit`.
    pub exhausted: ActionSpec,
}

impl Quota {
    /// Whether the user `name` (in `group`) has this budget.
    pub fn applies_to(&self, name: &str, group: Option<&str>) -> bool {
        match &self.subject {
            Subject::User(u) => u == name,
            Subject::Group(g) => group == Some(g.as_str()),
            Subject::Everyone => true,
            Subject::Aggregate => false,
        }
    }

    /// The start of the period `now` is in (a Unix second).
    pub fn period_start(&self, now: Timestamp, tz: &TimeZone) -> i64 {
        period_start(self.period, self.reset, now, tz)
    }

    /// The start of the next period.
    pub fn next_start(&self, now: Timestamp, tz: &TimeZone) -> i64 {
        let start = self.period_start(now, tz);
        // The next start is the period start of an instant past the
        // current one: a period is at least 23 hours (a DST day), so
        // stepping by a day, a week or 28 days from the start lands in the
        // next period.
        let step = match self.period {
            QuotaPeriod::Day => 25 * 3600,
            QuotaPeriod::Week => 7 * 86_400 + 3600,
            QuotaPeriod::Month => 32 * 86_400,
        };
        Timestamp::from_second(start + step).map_or(i64::MAX, |t| self.period_start(t, tz))
    }

    /// `5GiB/day (resets 03:00)`, for `status`, `explain` and provenance.
    pub fn describe(&self) -> String {
        format!("{}", Budget(self))
    }
}

struct Budget<'a>(&'a Quota);

impl fmt::Display for Budget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.0;
        let (h, m) = (q.reset.minute / 60, q.reset.minute % 60);
        write!(
            f,
            "{}/{} (resets ",
            super::units::format_size(q.bytes),
            q.period.name()
        )?;
        match q.period {
            QuotaPeriod::Day => {}
            QuotaPeriod::Week => write!(f, "{} ", weekday_name(q.reset.weekday))?,
            QuotaPeriod::Month => write!(f, "day {} ", q.reset.day)?,
        }
        write!(f, "{h:02}:{m:02})")
    }
}

pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// The instant `minute` after midnight of `day` in `tz`: a time skipped by
/// DST is the first instant after the gap, a repeated one its first
/// occurrence (jiff's `compatible` disambiguation).
fn at(day: Date, minute: u16, tz: &TimeZone) -> i64 {
    let dt = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map_or(i64::MIN, |t| t.as_second())
}

fn period_start(period: QuotaPeriod, reset: QuotaReset, now: Timestamp, tz: &TimeZone) -> i64 {
    let today = tz.to_datetime(now).date();
    let now = now.as_second();
    // The latest candidate day whose reset instant is not after now.
    let candidate = |back: i32| -> Option<Date> {
        match period {
            QuotaPeriod::Day => today.checked_sub(back.days()).ok(),
            QuotaPeriod::Week => {
                let offset = (i32::from(today.weekday().to_monday_zero_offset())
                    - i32::from(reset.weekday.to_monday_zero_offset()))
                .rem_euclid(7);
                today.checked_sub((offset + 7 * back).days()).ok()
            }
            QuotaPeriod::Month => {
                let month = today.first_of_month().checked_sub(back.months()).ok()?;
                Date::new(month.year(), month.month(), reset.day).ok()
            }
        }
    };
    (0..3)
        .filter_map(candidate)
        .map(|d| at(d, reset.minute, tz))
        .find(|t| *t <= now)
        .unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::units::parse_action;

    fn quota(period: QuotaPeriod, reset: QuotaReset) -> Quota {
        Quota {
            subject: Subject::Everyone,
            class: None,
            bytes: 1 << 30,
            period,
            reset,
            exhausted: parse_action("deny").unwrap(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn a_day_starts_at_the_reset_time_in_the_zone() {
        let q = quota(
            QuotaPeriod::Day,
            QuotaReset {
                minute: 3 * 60,
                ..QuotaReset::default()
            },
        );
        // 02:59 New York (EST, UTC-5) is still yesterday's period.
        let start = q.period_start(ts("2026-01-15T07:59:00Z"), &ny());
        assert_eq!(start, ts("2026-01-14T08:00:00Z").as_second());
        let start = q.period_start(ts("2026-01-15T08:00:00Z"), &ny());
        assert_eq!(start, ts("2026-01-15T08:00:00Z").as_second());
        assert_eq!(
            q.next_start(ts("2026-01-15T08:00:00Z"), &ny()),
            ts("2026-01-16T08:00:00Z").as_second()
        );
    }

    #[test]
    fn dst_days_are_23_and_25_hours_long() {
        let q = quota(QuotaPeriod::Day, QuotaReset::default());
        // 8 March 2026: clocks go forward at 02:00 in New York.
        let start = q.period_start(ts("2026-03-08T12:00:00Z"), &ny());
        let next = q.next_start(ts("2026-03-08T12:00:00Z"), &ny());
        assert_eq!(next - start, 23 * 3600);
        // 1 November 2026: back.
        let start = q.period_start(ts("2026-11-01T12:00:00Z"), &ny());
        let next = q.next_start(ts("2026-11-01T12:00:00Z"), &ny());
        assert_eq!(next - start, 25 * 3600);
    }

    #[test]
    fn weeks_and_months_start_on_their_day() {
        let utc = TimeZone::UTC;
        let week = quota(
            QuotaPeriod::Week,
            QuotaReset {
                weekday: Weekday::Wednesday,
                ..QuotaReset::default()
            },
        );
        // Tuesday 2026-12-01 belongs to the week from Wednesday 25 Nov.
        assert_eq!(
            week.period_start(ts("2026-12-01T10:00:00Z"), &utc),
            ts("2026-11-25T00:00:00Z").as_second()
        );
        assert_eq!(
            week.next_start(ts("2026-12-01T10:00:00Z"), &utc),
            ts("2026-12-02T00:00:00Z").as_second()
        );
        let month = quota(
            QuotaPeriod::Month,
            QuotaReset {
                day: 15,
                minute: 6 * 60,
                ..QuotaReset::default()
            },
        );
        assert_eq!(
            month.period_start(ts("2026-03-15T05:59:59Z"), &utc),
            ts("2026-02-15T06:00:00Z").as_second()
        );
        // January from December: the year turns.
        assert_eq!(
            month.next_start(ts("2026-12-20T00:00:00Z"), &utc),
            ts("2027-01-15T06:00:00Z").as_second()
        );
    }
}
