//! `[settings]` and `[metrics]`.

use std::time::Duration;

use super::{Ctx, PolicyError, file};
use crate::policy::types::*;

fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like `500ms` or `2s`)");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
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
