//! `[schedule.NAME]`: the windows that switch profiles.

use toml::Spanned;

use super::{Ctx, PolicyError, file, valid_name};
use crate::policy::types::*;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM` as minutes after midnight; `24:00` only where `allow_24`.
fn parse_hhmm(text: &str, allow_24: bool) -> Result<u16, String> {
    if allow_24 && text == "24:00" {
        return Ok(24 * 60);
    }
    // jiff reads more than `HH:MM` (seconds, `0800`, offsets): the time must
    // also print back as the text, so that `HH:MM` is the one spelling.
    text.parse::<jiff::civil::Time>()
        .ok()
        .filter(|t| t.strftime("%H:%M").to_string() == text)
        .map(|t| u16::from(t.hour().unsigned_abs()) * 60 + u16::from(t.minute().unsigned_abs()))
        .ok_or_else(|| format!("`{text}` is not a time of day (like `08:00` or `17:30`)"))
}

/// The minutes of the week a window covers, as ranges (overnight windows
/// spill into the next day; Sunday night into Monday).
pub(in crate::policy) fn week_ranges(w: &Window) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let week = 7 * 1440;
    for (d, on) in w.days.iter().enumerate() {
        if !on {
            continue;
        }
        let day = d as u32 * 1440;
        let (start, end) = (u32::from(w.start), u32::from(w.end));
        if start < end {
            out.push((day + start, day + end));
        } else {
            out.push((day + start, day + 1440));
            let next = (day + 1440) % week;
            out.push((next, next + end));
        }
    }
    out
}

pub(super) fn schedules(
    cx: &Ctx<'_>,
    raw: &std::collections::BTreeMap<String, Spanned<file::ScheduleEntry>>,
) -> Result<Vec<Schedule>, PolicyError> {
    let mut out: Vec<Schedule> = Vec::new();
    for (name, entry) in raw {
        let field = |f: &str| format!("schedule.{name}.{f}");
        if !valid_name(name) || name == OFF_HOURS {
            return Err(cx.err(
                entry,
                format!("schedule.{name}"),
                format!("`{name}` cannot name a schedule (`{OFF_HOURS}` is the time outside all of them)"),
            ));
        }
        if out.len() + 1 == policy_common::MAX_PROFILES {
            return Err(cx.err(
                entry,
                format!("schedule.{name}"),
                format!(
                    "at most {} schedules (plus `{OFF_HOURS}`)",
                    policy_common::MAX_PROFILES - 1
                ),
            ));
        }
        let e = entry.get_ref();
        let mut days = [false; 7];
        for (j, d) in e.days.iter().enumerate() {
            let i = DAYS.iter().position(|x| x == d.get_ref()).ok_or_else(|| {
                cx.err(
                    d,
                    field(&format!("days[{j}]")),
                    format!(
                        "`{}` is not a day: expected one of {}",
                        d.get_ref(),
                        DAYS.join(", ")
                    ),
                )
            })?;
            days[i] = true;
        }
        if !days.contains(&true) {
            return Err(cx.err(entry, field("days"), "the schedule has no days"));
        }
        let start = parse_hhmm(e.start.get_ref(), false)
            .map_err(|m| cx.err(&e.start, field("start"), m))?;
        let end = parse_hhmm(e.end.get_ref(), true).map_err(|m| cx.err(&e.end, field("end"), m))?;
        if start == end {
            return Err(cx.err(
                &e.end,
                field("end"),
                "the window is empty (start and end are equal)",
            ));
        }
        let mut holidays = std::collections::BTreeSet::new();
        for (j, h) in e.holidays.iter().enumerate() {
            let date: jiff::civil::Date = h.get_ref().parse().map_err(|_| {
                cx.err(
                    h,
                    field(&format!("holidays[{j}]")),
                    format!("`{}` is not a date (like `2026-12-25`)", h.get_ref()),
                )
            })?;
            holidays.insert(date);
        }
        let window = Window { days, start, end };
        for other in &out {
            let mine = week_ranges(&window);
            let theirs = week_ranges(&other.window);
            if mine
                .iter()
                .any(|a| theirs.iter().any(|b| a.0 < b.1 && b.0 < a.1))
            {
                return Err(cx.err(
                    entry,
                    format!("schedule.{name}"),
                    format!("its windows overlap those of schedule `{}`: a moment must have one profile", other.name),
                ));
            }
        }
        out.push(Schedule {
            name: name.clone(),
            window,
            holidays,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_hhmm;

    #[test]
    fn times_of_day_are_hh_mm() {
        assert_eq!(parse_hhmm("00:00", false), Ok(0));
        assert_eq!(parse_hhmm("08:00", false), Ok(8 * 60));
        assert_eq!(parse_hhmm("17:30", false), Ok(17 * 60 + 30));
        assert_eq!(parse_hhmm("23:59", true), Ok(23 * 60 + 59));
        assert_eq!(parse_hhmm("24:00", true), Ok(24 * 60));
        for text in [
            "24:00",
            "8:00",
            "08:0",
            "0800",
            "08",
            "08:00:00",
            "08:00+01:00",
            "T08:00",
            "24:01",
            "12:60",
            "+8:00",
            " 08:00",
            "",
        ] {
            assert_eq!(
                parse_hhmm(text, false),
                Err(format!(
                    "`{text}` is not a time of day (like `08:00` or `17:30`)"
                )),
            );
        }
    }
}
