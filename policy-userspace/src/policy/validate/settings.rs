//! `[settings]` and `[metrics]`.

use std::time::Duration;

use jiff::{Span, fmt::friendly::SpanParser};

use super::{Ctx, PolicyError, file};
use crate::policy::types::*;

/// `500ms`, `2s`: a duration in jiff's friendly format, in seconds and
/// milliseconds only: those are the units an event interval is written in,
/// and another (`1h`, `1us`) is refused rather than guessed at.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |units: &str| format!("`{text}` is not a duration{units} (like `500ms` or `2s`)");
    let span = SpanParser::new().parse_span(text).map_err(|_| bad(""))?;
    let in_units = Span::new()
        .seconds(span.get_seconds())
        .milliseconds(span.get_milliseconds());
    if span.fieldwise() != in_units.fieldwise() {
        return Err(bad(" in seconds or milliseconds"));
    }
    Duration::try_from(span).map_err(|_| bad(""))
}

pub(super) fn settings(
    cx: &Ctx<'_>,
    raw: Option<&file::SettingsSection>,
) -> Result<Settings, PolicyError> {
    let mut s = Settings::default();
    let Some(raw) = raw else {
        return Ok(s);
    };
    s.given = SettingsGiven {
        mode: raw.mode.is_some(),
        malformed: raw.malformed.is_some(),
        event_interval: raw.event_interval.is_some(),
        timezone: raw.timezone.is_some(),
    };
    if let Some(mode) = &raw.mode {
        s.mode = cx.choice(
            mode,
            "settings.mode",
            &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)],
        )?;
    }
    if let Some(m) = &raw.malformed {
        s.malformed_drop =
            cx.choice(m, "settings.malformed", &[("pass", false), ("drop", true)])?;
    }
    if let Some(tz) = &raw.timezone {
        s.timezone = jiff::tz::TimeZone::get(tz.get_ref()).map_err(|_| {
            cx.err(
                tz,
                "settings.timezone",
                format!(
                    "unknown time zone `{}`, expected an IANA name like `America/New_York`",
                    tz.get_ref()
                ),
            )
        })?;
        s.timezone_name.clone_from(tz.get_ref());
    }
    if let Some(i) = &raw.event_interval {
        s.event_interval =
            parse_duration(i.get_ref()).map_err(|m| cx.err(i, "settings.event_interval", m))?;
    }
    Ok(s)
}

/// `30s`, `5m`, `2h`, `1d`: a duration in whole seconds, in units up to
/// days (a day is 86 400 s here: a TTL knows no calendar).
fn parse_long_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like `30s`, `5m`, `2h` or `1d`)");
    let span = SpanParser::new().parse_span(text).map_err(|_| bad())?;
    if span.is_negative()
        || span.get_years() != 0
        || span.get_months() != 0
        || span.get_weeks() != 0
        || span.get_milliseconds() != 0
        || span.get_microseconds() != 0
        || span.get_nanoseconds() != 0
    {
        return Err(bad());
    }
    let secs = i64::from(span.get_days()) * 86_400
        + i64::from(span.get_hours()) * 3_600
        + span.get_minutes() * 60
        + span.get_seconds();
    u64::try_from(secs)
        .map(Duration::from_secs)
        .map_err(|_| bad())
}

/// Longest TTL floor and cap: a week. Past that a learned address outlives
/// any reason to believe it still belongs to the name.
const MAX_NAMES_TTL: Duration = Duration::from_secs(7 * 86_400);

pub(super) fn names(
    cx: &Ctx<'_>,
    raw: Option<&file::NamesSection>,
) -> Result<NamesSettings, PolicyError> {
    let mut out = NamesSettings::default();
    let Some(raw) = raw else {
        return Ok(out);
    };
    let ttl = |v: &toml::Spanned<String>, field: &str| {
        let d = parse_long_duration(v.get_ref()).map_err(|m| cx.err(v, field, m))?;
        if d > MAX_NAMES_TTL {
            return Err(cx.err(v, field, "at most 7 days (`7d`)"));
        }
        Ok(d)
    };
    if let Some(v) = &raw.ttl_floor {
        out.ttl_floor = Some(ttl(v, "names.ttl_floor")?);
    }
    if let Some(v) = &raw.ttl_cap {
        let cap = ttl(v, "names.ttl_cap")?;
        if cap.is_zero() {
            return Err(cx.err(v, "names.ttl_cap", "must be more than 0s"));
        }
        let floor = out
            .ttl_floor
            .unwrap_or(crate::names::learned::Limits::default().ttl_floor);
        if cap < floor {
            return Err(cx.err(
                v,
                "names.ttl_cap",
                format!("is below the TTL floor ({}s)", floor.as_secs()),
            ));
        }
        out.ttl_cap = Some(cap);
    }
    let count = |v: &toml::Spanned<i64>, field: &str, most: i64| {
        let n = *v.get_ref();
        if !(1..=most).contains(&n) {
            return Err(cx.err(v, field, format!("must be from 1 to {most}")));
        }
        Ok(n as usize)
    };
    if let Some(v) = &raw.addresses_per_name {
        out.addresses_per_name = Some(count(v, "names.addresses_per_name", 1024)?);
    }
    if let Some(v) = &raw.max_learned {
        out.max_learned = Some(count(v, "names.max_learned", 1 << 22)?);
    }
    if let Some(v) = &raw.scope {
        out.scope = Some(cx.choice(
            v,
            "names.scope",
            &[
                ("user", NamesScope::User),
                ("everyone", NamesScope::Everyone),
            ],
        )?);
    }
    Ok(out)
}

pub(super) fn parse_per_user(text: &str) -> Result<PerUser, String> {
    match text {
        "all" => Ok(PerUser::All),
        "none" => Ok(PerUser::None),
        _ => text
            .strip_prefix("top:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(PerUser::Top)
            .ok_or_else(|| {
                format!("`{text}` is not a choice: expected `all`, `none` or `top:N` (N > 0)")
            }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_in_seconds_and_milliseconds() {
        let ms = Duration::from_millis;
        for (text, d) in [
            ("0ms", ms(0)),
            ("250ms", ms(250)),
            ("1s", ms(1000)),
            ("02s", ms(2000)),
            ("1500ms", ms(1500)),
            ("1.5s", ms(1500)),
            ("1s 500ms", ms(1500)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn other_durations_are_refused() {
        for text in [
            "",
            "1",
            "ms",
            "-1s",
            "1s ago",
            "1h",
            "1m",
            "1d",
            "500us",
            "0.0005s",
            "1 fortnight",
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(e.starts_with(&format!("`{text}` is not a duration")), "{e}");
        }
        assert_eq!(
            parse_duration("1h").unwrap_err(),
            "`1h` is not a duration in seconds or milliseconds (like `500ms` or `2s`)"
        );
    }
}
