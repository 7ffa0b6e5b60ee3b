//! `[[quota]]`: whose budget, of which class, how many bytes per period,
//! when it resets, and what applies once it is used up.

use jiff::civil::Weekday;
use policy_common::MAX_QUOTA_SLOTS;
use toml::Spanned;

use super::{Ctx, PolicyError, file, rules::Known};
use crate::policy::{Quota, QuotaPeriod, QuotaReset, types::*, units};

/// This file's quotas; `earlier` are the layers' before it and `users`
/// every user with their group, to hold each user to
/// [`MAX_QUOTA_SLOTS`] quotas in all.
pub(super) fn quotas<'a>(
    cx: &Ctx<'_>,
    raw: &[Spanned<file::QuotaEntry>],
    known: &Known<'_>,
    earlier: &[Quota],
    users: impl Iterator<Item = &'a User> + Clone,
) -> Result<Vec<Quota>, PolicyError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let q = quota(cx, i, entry.get_ref(), known)?;
        for u in users.clone() {
            let n = earlier
                .iter()
                .chain(&out)
                .chain([&q])
                .filter(|q| q.applies_to(&u.name, u.group.as_deref()))
                .count();
            if n > MAX_QUOTA_SLOTS as usize {
                return Err(cx.err(
                    entry,
                    format!("quota[{i}]"),
                    format!(
                        "user `{}` would have {n} quotas with the earlier ones: at most \
                         {MAX_QUOTA_SLOTS} (the data path checks each per packet)",
                        u.name
                    ),
                ));
            }
        }
        out.push(q);
    }
    Ok(out)
}

fn quota(
    cx: &Ctx<'_>,
    i: usize,
    raw: &file::QuotaEntry,
    known: &Known<'_>,
) -> Result<Quota, PolicyError> {
    let field = |f: &str| format!("quota[{i}].{f}");
    let subject = match (&raw.user, &raw.group) {
        (Some(_), Some(g)) => {
            return Err(cx.err(
                g,
                field("group"),
                "a quota is for a user or a group, not both",
            ));
        }
        (Some(u), None) => {
            let name = u.get_ref();
            if name == UNIDENTIFIED {
                return Err(cx.err(
                    u,
                    field("user"),
                    "the unidentified user has no quota: nobody's budget could be told apart \
                     (limit it with `[unidentified] action`)",
                ));
            }
            if !known.users.contains(name.as_str()) {
                return Err(cx.err(u, field("user"), format!("no user named `{name}`")));
            }
            Subject::User(name.clone())
        }
        (None, Some(g)) => {
            if !known.groups.contains(g.get_ref().as_str()) {
                return Err(cx.err(
                    g,
                    field("group"),
                    format!("no user is in group `{}`", g.get_ref()),
                ));
            }
            Subject::Group(g.get_ref().clone())
        }
        (None, None) => Subject::Everyone,
    };
    let class = match &raw.class {
        Some(c) if c.get_ref() == DEFAULT_CLASS || known.classes.contains(c.get_ref().as_str()) => {
            Some(c.get_ref().clone())
        }
        Some(c) => {
            return Err(cx.err(
                c,
                field("class"),
                format!("no class named `{}`", c.get_ref()),
            ));
        }
        None => None,
    };
    let (bytes, period) =
        budget(raw.quota.get_ref()).map_err(|m| cx.err(&raw.quota, field("quota"), m))?;
    let reset = match &raw.reset {
        Some(r) => reset(r.get_ref(), period).map_err(|m| cx.err(r, field("reset"), m))?,
        None => QuotaReset::default(),
    };
    let exhausted = cx.action(&raw.exhausted, field("exhausted"))?;
    if matches!(exhausted, ActionSpec::Allow) {
        return Err(cx.err(
            &raw.exhausted,
            field("exhausted"),
            "`allow` once the budget is used up is no quota: give `deny`, `monitor` or a `limit`",
        ));
    }
    Ok(Quota {
        subject,
        class,
        bytes,
        period,
        reset,
        exhausted,
    })
}

/// `5GiB/day`.
fn budget(s: &str) -> Result<(u64, QuotaPeriod), String> {
    let expected = "a size per `day`, `week` or `month` (like `5GiB/day`)";
    let (size, per) = s
        .rsplit_once('/')
        .ok_or_else(|| format!("`{s}` is not a quota: expected {expected}"))?;
    let period = match per.trim() {
        "day" | "d" => QuotaPeriod::Day,
        "week" | "w" => QuotaPeriod::Week,
        "month" => QuotaPeriod::Month,
        other => return Err(format!("`{other}` is not a period: expected {expected}")),
    };
    let bytes = units::parse_size(size).map_err(|e| e.to_string())?;
    Ok((bytes, period))
}

/// `03:00`; `mon 03:00` or `mon`; `15 03:00` or `15`.
fn reset(s: &str, period: QuotaPeriod) -> Result<QuotaReset, String> {
    let mut out = QuotaReset::default();
    let words: Vec<&str> = s.split_whitespace().collect();
    let (day, time) = match (period, words.as_slice()) {
        (QuotaPeriod::Day, [t]) => (None, Some(*t)),
        (QuotaPeriod::Week | QuotaPeriod::Month, [d]) if !d.contains(':') => (Some(*d), None),
        (QuotaPeriod::Week | QuotaPeriod::Month, [d, t]) => (Some(*d), Some(*t)),
        (QuotaPeriod::Day, _) => {
            return Err(format!(
                "`{s}` is not a time of day: expected `HH:MM` (like `03:00`)"
            ));
        }
        (QuotaPeriod::Week, _) => {
            return Err(format!(
                "`{s}` is not a weekly reset: expected a day and a time (like `mon 03:00`)"
            ));
        }
        (QuotaPeriod::Month, _) => {
            return Err(format!(
                "`{s}` is not a monthly reset: expected a day of the month, 1 to 28, and a time \
                 (like `1 03:00`)"
            ));
        }
    };
    if let Some(d) = day {
        match period {
            QuotaPeriod::Week => out.weekday = weekday(d)?,
            _ => {
                out.day = d
                    .parse::<i8>()
                    .ok()
                    .filter(|n| (1..=28).contains(n))
                    .ok_or_else(|| {
                        format!("`{d}` is not a day every month has: expected 1 to 28")
                    })?;
            }
        }
    }
    if let Some(t) = time {
        out.minute = minute(t)?;
    }
    Ok(out)
}

fn weekday(d: &str) -> Result<Weekday, String> {
    Ok(match d {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return Err(format!("`{d}` is not a day: expected `mon` to `sun`")),
    })
}

fn minute(t: &str) -> Result<u16, String> {
    let bad = || format!("`{t}` is not a time of day: expected `HH:MM` (like `03:00`)");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || t.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_resets_read_back() {
        assert_eq!(budget("5GiB/day"), Ok((5 << 30, QuotaPeriod::Day)));
        assert_eq!(
            budget("100GB/month"),
            Ok((100_000_000_000, QuotaPeriod::Month))
        );
        assert!(budget("5GiB").unwrap_err().contains("per `day`"));
        assert!(budget("5GiB/year").unwrap_err().contains("`year`"));
        assert_eq!(reset("03:30", QuotaPeriod::Day).unwrap().minute, 210);
        let w = reset("fri 18:00", QuotaPeriod::Week).unwrap();
        assert_eq!((w.weekday, w.minute), (Weekday::Friday, 1080));
        assert_eq!(reset("15", QuotaPeriod::Month).unwrap().day, 15);
        assert!(
            reset("31", QuotaPeriod::Month)
                .unwrap_err()
                .contains("1 to 28")
        );
        assert!(reset("mon 03:00", QuotaPeriod::Day).is_err());
        assert!(reset("24:00", QuotaPeriod::Day).is_err());
    }
}
