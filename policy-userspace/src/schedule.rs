//! Which schedule profile is in force at a given instant.
//!
//! Windows are wall-clock times in the policy's time zone (IANA, DST-aware
//! through jiff): `08:00` means eight in the morning local time whatever the
//! UTC offset that day. A window whose end is not after its start runs
//! overnight and belongs to the day it starts on (its weekday and holiday
//! status decide). Holidays count as off-hours. Outside every window the
//! profile is `off_hours` (index 0).

use jiff::{
    Timestamp,
    civil::{Date, DateTime},
    tz::TimeZone,
};

use crate::policy::Schedule;

/// Minutes since local midnight.
fn minute_of_day(dt: &DateTime) -> u16 {
    let t = dt.time();
    (t.hour() as u16) * 60 + t.minute() as u16
}

fn weekday_index(d: Date) -> usize {
    usize::try_from(d.weekday().to_monday_zero_offset()).unwrap_or(0)
}

/// Whether `s`'s window that started on `day` is open at `minute` of the
/// day `offset_days` (0 or 1) after it.
fn open(s: &Schedule, day: Date, minute: u16, next_day: bool) -> bool {
    if !s.window.days[weekday_index(day)] || s.holidays.contains(&day) {
        return false;
    }
    let w = &s.window;
    match (w.start < w.end, next_day) {
        (true, false) => w.start <= minute && minute < w.end,
        (true, true) => false,
        // Overnight: from start to midnight, then midnight to end.
        (false, false) => minute >= w.start,
        (false, true) => minute < w.end,
    }
}

/// The index of the profile in force at `at`: 1 + the first schedule whose
/// window is open, or 0 (off-hours).
pub fn active_profile(schedules: &[Schedule], tz: &TimeZone, at: Timestamp) -> usize {
    let local = tz.to_datetime(at);
    let today = local.date();
    let minute = minute_of_day(&local);
    let yesterday = today.yesterday().ok();
    schedules
        .iter()
        .position(|s| {
            open(s, today, minute, false) || yesterday.is_some_and(|y| open(s, y, minute, true))
        })
        .map_or(0, |i| i + 1)
}

/// The daemon's clock: real time, or real time shifted so that it started at
/// a given instant (`policyd run --now`, for tests and dry runs).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Added to the real time.
    offset: jiff::SignedDuration,
}

impl Clock {
    pub fn real() -> Self {
        Self {
            offset: jiff::SignedDuration::ZERO,
        }
    }

    /// A clock that reads `start` now and runs at the real pace.
    pub fn starting_at(start: Timestamp) -> Self {
        Self {
            offset: start.duration_since(Timestamp::now()),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap_or_else(|_| Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::policy::Window;

    fn business() -> Schedule {
        Schedule {
            name: "business".into(),
            window: Window {
                days: [true, true, true, true, true, false, false],
                start: 8 * 60,
                end: 17 * 60,
            },
            holidays: BTreeSet::from(["2026-12-25".parse().unwrap()]),
        }
    }

    fn night() -> Schedule {
        Schedule {
            name: "night".into(),
            window: Window {
                days: [true; 7],
                start: 22 * 60,
                end: 6 * 60,
            },
            holidays: BTreeSet::new(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn business_hours_in_local_time() {
        let s = [business()];
        // Tuesday 1 December 2026, EST (UTC-5).
        assert_eq!(
            active_profile(&s, &ny(), at("2026-12-01T12:59:59Z")),
            0,
            "07:59:59"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-12-01T13:00:00Z")),
            1,
            "08:00"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-12-01T21:59:59Z")),
            1,
            "16:59:59"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-12-01T22:00:00Z")),
            0,
            "17:00"
        );
        // Saturday, and a holiday (Friday 25 December).
        assert_eq!(active_profile(&s, &ny(), at("2026-12-05T15:00:00Z")), 0);
        assert_eq!(active_profile(&s, &ny(), at("2026-12-25T15:00:00Z")), 0);
        assert_eq!(active_profile(&s, &ny(), at("2026-12-24T15:00:00Z")), 1);
    }

    #[test]
    fn spring_forward_moves_the_utc_boundary() {
        let s = [business()];
        // Friday 6 March 2026 is EST (UTC-5): 08:00 local is 13:00 UTC.
        assert_eq!(active_profile(&s, &ny(), at("2026-03-06T12:30:00Z")), 0);
        assert_eq!(active_profile(&s, &ny(), at("2026-03-06T13:00:00Z")), 1);
        // Clocks go forward on Sunday 8 March; Monday 9 March is EDT
        // (UTC-4): 08:00 local is 12:00 UTC.
        assert_eq!(active_profile(&s, &ny(), at("2026-03-09T11:59:59Z")), 0);
        assert_eq!(active_profile(&s, &ny(), at("2026-03-09T12:00:00Z")), 1);
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-09T20:59:59Z")),
            1,
            "16:59:59 EDT"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-09T21:00:00Z")),
            0,
            "17:00 EDT"
        );
    }

    #[test]
    fn the_skipped_and_repeated_hours_of_dst_days() {
        let s = [Schedule {
            name: "maintenance".into(),
            window: Window {
                days: [true; 7],
                start: 60 + 30,
                end: 3 * 60,
            },
            holidays: BTreeSet::new(),
        }];
        // Spring forward, 8 March 2026: 02:00 EST jumps to 03:00 EDT, so the
        // window 01:30-03:00 lasts 30 minutes of real time.
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-08T06:29:59Z")),
            0,
            "01:29:59 EST"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-08T06:30:00Z")),
            1,
            "01:30 EST"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-08T06:59:59Z")),
            1,
            "01:59:59 EST"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-03-08T07:00:00Z")),
            0,
            "03:00 EDT"
        );
        // Fall back, 1 November 2026: 02:00 EDT goes back to 01:00 EST, so
        // the hour from 01:00 happens twice. Windows are wall-clock times:
        // 01:30-03:00 opens at 01:30 EDT, closes when the clock reads 01:00
        // again, and opens again at the second 01:30.
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T05:29:59Z")),
            0,
            "01:29:59 EDT"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T05:30:00Z")),
            1,
            "01:30 EDT"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T05:59:59Z")),
            1,
            "01:59:59 EDT"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T06:00:00Z")),
            0,
            "01:00 EST"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T06:30:00Z")),
            1,
            "01:30 EST again"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T07:59:59Z")),
            1,
            "02:59:59 EST"
        );
        assert_eq!(
            active_profile(&s, &ny(), at("2026-11-01T08:00:00Z")),
            0,
            "03:00 EST"
        );
    }

    #[test]
    fn overnight_windows_belong_to_the_day_they_start() {
        let mut n = night();
        n.window.days = [false, false, false, false, true, false, false]; // Friday only
        let s = [n];
        let utc = TimeZone::UTC;
        // Friday 4 December 2026, 23:00 and Saturday 05:59: Friday's night.
        assert_eq!(active_profile(&s, &utc, at("2026-12-04T23:00:00Z")), 1);
        assert_eq!(active_profile(&s, &utc, at("2026-12-05T05:59:00Z")), 1);
        assert_eq!(active_profile(&s, &utc, at("2026-12-05T06:00:00Z")), 0);
        // Thursday night is not a Friday night.
        assert_eq!(active_profile(&s, &utc, at("2026-12-03T23:00:00Z")), 0);
        assert_eq!(active_profile(&s, &utc, at("2026-12-04T05:00:00Z")), 0);
    }

    #[test]
    fn the_first_open_window_wins() {
        let s = [business(), night()];
        let utc = TimeZone::UTC;
        assert_eq!(active_profile(&s, &utc, at("2026-12-01T09:00:00Z")), 1);
        assert_eq!(active_profile(&s, &utc, at("2026-12-01T23:00:00Z")), 2);
        assert_eq!(active_profile(&s, &utc, at("2026-12-01T18:00:00Z")), 0);
    }

    #[test]
    fn a_shifted_clock_runs_at_the_real_pace() {
        let start = at("2026-12-01T16:59:59Z");
        let clock = Clock::starting_at(start);
        let now = clock.now();
        let drift = now.duration_since(start);
        assert!(
            drift >= jiff::SignedDuration::ZERO && drift < jiff::SignedDuration::from_secs(1),
            "{drift:?}"
        );
    }
}
