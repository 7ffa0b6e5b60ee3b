//! The `; hint` part of a [`super::UnitError`]: what the writer probably
//! meant.

use super::{
    limit::LIMIT_KEYWORDS,
    rate::{BIT_UNITS, PACKET_UNITS, is_rate_unit, parse_rate},
    size::{SIZE_UNITS, parse_size, size_multiplier},
};

/// A hint for text that does not start with a number.
pub(super) fn number_hint(input: &str, what: &str) -> Option<String> {
    if input.starts_with('-') {
        Some(format!("a {what} cannot be negative"))
    } else if input.starts_with('+') {
        Some("leave out the `+`".to_owned())
    } else if input.starts_with('.') {
        Some("write a digit before the point (e.g. `0.5`)".to_owned())
    } else if input.starts_with(|c: char| c.is_ascii_digit()) {
        Some("a number is digits with at most one point, and digits on both sides of it".to_owned())
    } else {
        None
    }
}

/// A hint for a number with an unknown rate unit.
pub(super) fn rate_unit_hint(number: &str, unit: &str) -> Option<String> {
    if let Some(hint) = spacing_hint(unit) {
        return Some(hint);
    }
    if unit.is_empty() {
        return Some(format!(
            "the unit is missing (e.g. `{number}Mbit` or `{number}pps`)"
        ));
    }
    let lower = unit.to_ascii_lowercase();
    if let Some(prefix) = lower.strip_suffix("bps") {
        let bits = match prefix {
            "" => Some("bit"),
            "k" => Some("kbit"),
            "m" => Some("Mbit"),
            "g" => Some("Gbit"),
            _ => None,
        };
        if let Some(bits) = bits {
            return Some(format!(
                "`{unit}` is ambiguous (tc reads `bps` as bytes per second, most people mean \
                 bits), so write `{number}{bits}` for bits per second"
            ));
        }
    }
    if size_multiplier(unit).is_some() {
        return Some(format!(
            "`{unit}` is a size, not a rate (e.g. `{number}Mbit` for megabits per second)"
        ));
    }
    let units = BIT_UNITS.iter().chain(PACKET_UNITS.iter()).map(|&(u, _)| u);
    did_you_mean(number, unit, units)
}

/// A hint for a number with an unknown size unit.
pub(super) fn size_unit_hint(number: &str, unit: &str) -> Option<String> {
    if let Some(hint) = spacing_hint(unit) {
        return Some(hint);
    }
    if is_rate_unit(unit) {
        return Some(format!("`{unit}` is a rate, not a size"));
    }
    if let Some(prefix) = ["K", "M", "G"]
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(unit))
    {
        return Some(format!(
            "did you mean `{number}{prefix}iB` (1024-based) or `{number}{prefix}B` (1000-based)?"
        ));
    }
    if ["byte", "bytes"].contains(&unit) {
        return Some(format!("did you mean `{number}B`?"));
    }
    did_you_mean(number, unit, SIZE_UNITS.iter().map(|&(u, _)| u))
}

fn spacing_hint(unit: &str) -> Option<String> {
    if unit.starts_with(char::is_whitespace) {
        Some("put at most one space between the number and the unit".to_owned())
    } else if unit.starts_with(',') {
        Some("use `.` as the decimal point".to_owned())
    } else {
        None
    }
}

/// Suggests the known unit that `unit` differs from only in case, in a
/// plural `s` or in a `/s` suffix.
fn did_you_mean<'u>(
    number: &str,
    unit: &str,
    known: impl Iterator<Item = &'u str> + Clone,
) -> Option<String> {
    let per_second = unit
        .strip_suffix("/s")
        .or_else(|| unit.strip_suffix("/sec"));
    let candidates = [Some(unit), per_second, unit.strip_suffix('s')];
    candidates.into_iter().flatten().find_map(|candidate| {
        known
            .clone()
            .find(|k| k.eq_ignore_ascii_case(candidate))
            .map(|k| format!("did you mean `{number}{k}`?"))
    })
}

/// A hint for an unknown first word of an action.
pub(super) fn action_hint(word: &str) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    let suggestion = match lower.as_str() {
        "allow" | "deny" | "monitor" | "limit" => lower.clone(),
        "accept" | "permit" | "pass" => "allow".to_owned(),
        "drop" | "block" | "reject" => "deny".to_owned(),
        "log" | "count" | "audit" => "monitor".to_owned(),
        "ratelimit" | "rate-limit" | "throttle" | "shape" | "police" => "limit <rate>".to_owned(),
        _ if parse_rate(word).is_ok() => format!("limit {word}"),
        _ => return None,
    };
    Some(format!("did you mean `{suggestion}`?"))
}

/// A hint for an unknown word after `limit <rate>`.
pub(super) fn limit_option_hint(word: &str) -> Option<String> {
    if let Some((key, value)) = word.split_once('=')
        && LIMIT_KEYWORDS.contains(&key)
    {
        return Some(format!(
            "separate the option and its value with a space (e.g. `{key} {value}`)"
        ));
    }
    let lower = word.to_ascii_lowercase();
    if LIMIT_KEYWORDS.contains(&lower.as_str()) {
        return Some(format!("did you mean `{lower}`?"));
    }
    if ["noecn", "no_ecn", "-ecn", "!ecn"].contains(&lower.as_str()) {
        return Some("did you mean `no-ecn`?".to_owned());
    }
    if parse_rate(word).is_ok() {
        return Some("a `limit` has exactly one rate".to_owned());
    }
    if parse_size(word).is_ok() {
        return Some(format!("did you mean `burst {word}`?"));
    }
    None
}
