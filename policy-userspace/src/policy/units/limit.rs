//! The options of `limit`: `burst`, `conn`, `conn-burst`, `ecn`/`no-ecn`,
//! `monitor`, `htb`.

use std::{borrow::Cow, iter::Peekable, str::SplitWhitespace};

use super::{
    conn::{CONN_EXPECTED, ConnLimit, parse_conn_rate, parse_leading},
    error::{HTB_EXPECTED, UnitError},
    hint::limit_option_hint,
    htb::parse_htb,
    quantity::Quantity,
    rate::{Rate, is_rate_unit, parse_rate},
    size::{is_size_unit, parse_size},
};

/// The `limit` action and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    /// The byte or packet rate; None for a limit on connections alone
    /// (`limit 20conn/min`).
    pub rate: Option<Rate>,
    /// Burst in bytes (byte rates) or packets (packet rates); None = default.
    pub burst: Option<u64>,
    /// The connection rate (`conn 20/min`), if any.
    pub conn: Option<ConnLimit>,
    /// ECN marking; None = default (the caller decides the default).
    pub ecn: Option<bool>,
    /// Count what the limit would drop instead of dropping.
    pub monitor_only: bool,
    /// Hand off to an HTB class on TC egress: (major, minor), as in tc's
    /// `major:minor` class ids, which are hexadecimal (`1:10` is (0x1, 0x10)).
    pub htb_class: Option<(u16, u16)>,
}

/// Words that start a `limit` option.
pub(super) const LIMIT_KEYWORDS: [&str; 7] = [
    "burst",
    "conn",
    "conn-burst",
    "ecn",
    "no-ecn",
    "monitor",
    "htb",
];

pub(super) type Words<'a> = Peekable<SplitWhitespace<'a>>;

/// Everything after `limit`.
pub(super) fn parse_limit(words: &mut Words<'_>) -> Result<LimitSpec, UnitError> {
    let (rate, conn) = match words.next() {
        None => return Err(UnitError::MissingRate { found: None }),
        Some(word) if LIMIT_KEYWORDS.contains(&word) => {
            return Err(UnitError::MissingRate {
                found: Some(word.to_owned()),
            });
        }
        Some(word) => match parse_leading(word) {
            Some(conn) => (None, Some(conn?)),
            // A bare number is never a rate, so take whatever follows it as
            // its unit (`limit 20 Mbps` then reports `20 Mbps`, not a
            // missing unit).
            None => (
                Some(parse_rate(&join_unit(word, words, |next| {
                    !LIMIT_KEYWORDS.contains(&next)
                }))?),
                None,
            ),
        },
    };
    let conn_alone = conn.map(|c| c.count);
    let mut spec = LimitSpec {
        rate,
        burst: None,
        conn,
        ecn: None,
        monitor_only: false,
        htb_class: None,
    };
    // Joins `burst 1 KiB`, and `burst 1 Mbit` too so that the mistake is
    // reported as one value rather than as an unknown option `Mbit`.
    let is_unit = |word: &str| is_size_unit(word) || is_rate_unit(word);
    while let Some(word) = words.next() {
        match word {
            "burst" => {
                if spec.burst.is_some() {
                    return Err(UnitError::DuplicateOption { option: "burst" });
                }
                let Some(rate) = rate else {
                    return Err(UnitError::BurstWithoutRate);
                };
                spec.burst = Some(match rate {
                    Rate::PacketsPerSec(_) => {
                        let expected = "a whole number of packets, as the rate is in packets \
                                        (e.g. `burst 50`)";
                        let value = option_value(words, "burst", expected)?;
                        parse_count(&join_unit(value, words, is_unit))?
                    }
                    Rate::BytesPerSec(_) => {
                        let expected = "a size, as the rate is in bits (e.g. `burst 256KiB`)";
                        let value = option_value(words, "burst", expected)?;
                        parse_size(&join_unit(value, words, is_unit))?
                    }
                });
            }
            "conn" => {
                if let Some(conn) = conn_alone {
                    return Err(UnitError::ConnTwice { conn });
                }
                if spec.conn.is_some() {
                    return Err(UnitError::DuplicateOption { option: "conn" });
                }
                spec.conn = Some(parse_conn_rate(option_value(
                    words,
                    "conn",
                    CONN_EXPECTED,
                )?)?);
            }
            "conn-burst" => {
                let expected = "a whole number of connections (e.g. `conn-burst 5`)";
                let value = parse_count(option_value(words, "conn-burst", expected)?)?;
                match &mut spec.conn {
                    Some(c) if c.burst.is_some() => {
                        return Err(UnitError::DuplicateOption {
                            option: "conn-burst",
                        });
                    }
                    Some(c) => c.burst = Some(value),
                    None => {
                        return Err(UnitError::MissingValue {
                            option: "conn-burst",
                            expected: "a `conn <n>/<period>` before it",
                            found: None,
                        });
                    }
                }
            }
            "ecn" | "no-ecn" => {
                let (on, keyword, other) = if word == "ecn" {
                    (true, "ecn", "no-ecn")
                } else {
                    (false, "no-ecn", "ecn")
                };
                match spec.ecn {
                    None => spec.ecn = Some(on),
                    Some(earlier) if earlier == on => {
                        return Err(UnitError::DuplicateOption { option: keyword });
                    }
                    Some(_) => {
                        return Err(UnitError::ConflictingOptions {
                            first: other,
                            second: keyword,
                        });
                    }
                }
            }
            "monitor" => {
                if spec.monitor_only {
                    return Err(UnitError::DuplicateOption { option: "monitor" });
                }
                spec.monitor_only = true;
            }
            "htb" => {
                if spec.htb_class.is_some() {
                    return Err(UnitError::DuplicateOption { option: "htb" });
                }
                spec.htb_class = Some(parse_htb(option_value(words, "htb", HTB_EXPECTED)?)?);
            }
            other => {
                return Err(UnitError::UnknownLimitOption {
                    word: other.to_owned(),
                    hint: limit_option_hint(other),
                });
            }
        }
    }
    Ok(spec)
}

/// The value after an option keyword; another keyword is not a value.
fn option_value<'a>(
    words: &mut Words<'a>,
    option: &'static str,
    expected: &'static str,
) -> Result<&'a str, UnitError> {
    match words.peek() {
        Some(&word) if !LIMIT_KEYWORDS.contains(&word) => {
            words.next();
            Ok(word)
        }
        found => Err(UnitError::MissingValue {
            option,
            expected,
            found: found.map(|&word| word.to_owned()),
        }),
    }
}

/// `20 Mbit` arrives as two words: rejoins them when `value` is a bare
/// number and `is_unit` accepts the next word, so actions accept the same
/// single space that [`parse_rate`] and [`parse_size`] do.
fn join_unit<'a>(
    value: &'a str,
    words: &mut Words<'_>,
    is_unit: impl Fn(&str) -> bool,
) -> Cow<'a, str> {
    let bare = Quantity::split(value).is_some_and(|q| q.unit.is_empty());
    match words.peek() {
        Some(&unit) if bare && is_unit(unit) => {
            words.next();
            Cow::Owned(format!("{value} {unit}"))
        }
        _ => Cow::Borrowed(value),
    }
}

/// A plain whole number of packets (a burst for a packet rate).
fn parse_count(s: &str) -> Result<u64, UnitError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        let hint = match Quantity::split(s) {
            Some(q) if !q.unit.is_empty() => {
                Some("a limit with a packet rate takes its burst in packets, not bytes".to_owned())
            }
            Some(_) => Some("a packet count has no fractional part".to_owned()),
            None => None,
        };
        return Err(UnitError::NotACount {
            input: s.to_owned(),
            hint,
        });
    }
    if s.bytes().all(|b| b == b'0') {
        return Err(UnitError::Zero {
            input: s.to_owned(),
            what: "packet count",
        });
    }
    // Only digits, so the only possible failure is overflow.
    s.parse().map_err(|_| UnitError::TooLarge {
        input: s.to_owned(),
        what: "packet count",
        maximum: "18446744073709551615",
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::units::{testing::*, *};

    #[test]
    fn limit_with_rate_only() {
        assert_eq!(
            parse_action("limit 20Mbit"),
            Ok(ActionSpec::Limit(limit(Rate::BytesPerSec(2_500_000))))
        );
        assert_eq!(
            parse_action("limit 1kpps"),
            Ok(ActionSpec::Limit(limit(Rate::PacketsPerSec(1_000))))
        );
        assert_eq!(
            limit_of("  limit\t2.5Mbit  ").rate,
            Some(Rate::BytesPerSec(312_500))
        );
    }

    #[test]
    fn limit_with_each_option() {
        let base = limit(Rate::BytesPerSec(2_500_000));
        assert_eq!(
            limit_of("limit 20Mbit burst 256KiB"),
            LimitSpec {
                burst: Some(262_144),
                ..base
            }
        );
        assert_eq!(
            limit_of("limit 20Mbit ecn"),
            LimitSpec {
                ecn: Some(true),
                ..base
            }
        );
        assert_eq!(
            limit_of("limit 20Mbit no-ecn"),
            LimitSpec {
                ecn: Some(false),
                ..base
            }
        );
        assert_eq!(
            limit_of("limit 20Mbit monitor"),
            LimitSpec {
                monitor_only: true,
                ..base
            }
        );
        assert_eq!(
            limit_of("limit 20Mbit htb 1:10"),
            LimitSpec {
                htb_class: Some((1, 0x10)),
                ..base
            }
        );
    }

    #[test]
    fn limit_options_in_any_order() {
        let expected = LimitSpec {
            rate: Some(Rate::BytesPerSec(312_500)),
            conn: None,
            burst: Some(64_000),
            ecn: Some(false),
            monitor_only: true,
            htb_class: Some((0xa, 0xff)),
        };
        let options = ["burst 64KB", "no-ecn", "monitor", "htb a:ff"];
        // Every permutation of the four options.
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let order = [a, b, c, d];
                        if (0..4).any(|i| !order.contains(&i)) {
                            continue;
                        }
                        let text = order.iter().map(|&i| options[i]).collect::<Vec<_>>();
                        let s = format!("limit 2.5Mbit {}", text.join(" "));
                        assert_eq!(limit_of(&s), expected, "{s}");
                    }
                }
            }
        }
    }

    #[test]
    fn limit_accepts_a_space_before_units() {
        let spec = limit_of("limit 20 Mbit burst 256 KiB ecn");
        assert_eq!(spec.rate, Some(Rate::BytesPerSec(2_500_000)));
        assert_eq!(spec.burst, Some(262_144));
        assert_eq!(spec.ecn, Some(true));
        assert_eq!(limit_of("limit 5 kpps burst 10").burst, Some(10));
        // A bare number followed by something that is not a unit stays bare.
        assert_eq!(
            limit_of("limit 1Mbit burst 1500 monitor").burst,
            Some(1_500)
        );
        message(
            parse_action("limit 20 monitor"),
            &["`20` is not a rate", "unit is missing"],
        );
        message(
            parse_action("limit 20 Mbps"),
            &["`20 Mbps` is not a rate", "ambiguous", "`20Mbit`"],
        );
        message(
            parse_action("limit 20 Mbit burst 1 Mbit"),
            &["`1 Mbit` is not a size", "is a rate, not a size"],
        );
    }

    #[test]
    fn limit_needs_a_rate() {
        for (s, found) in [
            ("limit", None),
            ("limit   ", None),
            ("limit burst 10KiB", Some("burst")),
            ("limit ecn", Some("ecn")),
            ("limit monitor", Some("monitor")),
        ] {
            let msg = message(
                parse_action(s),
                &["`limit` needs a rate", "expected `limit <rate>"],
            );
            match found {
                Some(word) => assert!(msg.contains(&format!("found `{word}`")), "{msg}"),
                None => assert!(!msg.contains("found"), "{msg}"),
            }
        }
        message(
            parse_action("limit 20Mbps"),
            &["`20Mbps` is not a rate", "`20Mbit`"],
        );
        message(parse_action("limit 0Mbit"), &["`0Mbit` is zero"]);
    }

    #[test]
    fn duplicate_options() {
        for (s, option) in [
            ("limit 1Mbit burst 1KiB burst 2KiB", "burst"),
            ("limit 1Mbit ecn monitor ecn", "ecn"),
            ("limit 1Mbit no-ecn no-ecn", "no-ecn"),
            ("limit 1Mbit monitor burst 10 monitor", "monitor"),
            ("limit 1Mbit htb 1:10 htb 1:20", "htb"),
            ("limit 10pps burst 5 burst 5", "burst"),
        ] {
            assert_eq!(
                parse_action(s),
                Err(UnitError::DuplicateOption { option }),
                "{s}"
            );
            message(
                parse_action(s),
                &[
                    &format!("`{option}` is given more than once"),
                    "at most once",
                ],
            );
        }
    }

    #[test]
    fn ecn_and_no_ecn_conflict() {
        message(
            parse_action("limit 1Mbit ecn no-ecn"),
            &["`no-ecn` contradicts the earlier `ecn`", "at most one of"],
        );
        message(
            parse_action("limit 1Mbit no-ecn burst 1KiB ecn"),
            &["`ecn` contradicts the earlier `no-ecn`"],
        );
    }

    #[test]
    fn missing_option_values() {
        for (s, option, found) in [
            ("limit 1Mbit burst", "burst", None),
            ("limit 1Mbit burst ecn", "burst", Some("ecn")),
            ("limit 1Mbit burst htb 1:10", "burst", Some("htb")),
            ("limit 100pps burst", "burst", None),
            ("limit 1Mbit htb", "htb", None),
            ("limit 1Mbit htb monitor", "htb", Some("monitor")),
        ] {
            let msg = message(parse_action(s), &[&format!("`{option}` needs a value")]);
            if let Some(word) = found {
                assert!(msg.contains(&format!("found `{word}`")), "{msg}");
            }
        }
        message(
            parse_action("limit 1Mbit burst"),
            &["expected a size, as the rate is in bits (e.g. `burst 256KiB`)"],
        );
        message(
            parse_action("limit 100pps burst"),
            &["expected a whole number of packets, as the rate is in packets"],
        );
        message(
            parse_action("limit 1Mbit htb"),
            &["expected `<major>:<minor>` in hexadecimal"],
        );
    }

    #[test]
    fn unknown_limit_options() {
        for (s, word, hint) in [
            ("limit 1Mbit fast", "fast", None),
            ("limit 1Mbit burst 1KiB please", "please", None),
            (
                "limit 1Mbit Burst 1KiB",
                "Burst",
                Some("did you mean `burst`?"),
            ),
            ("limit 1Mbit ECN", "ECN", Some("did you mean `ecn`?")),
            ("limit 1Mbit noecn", "noecn", Some("did you mean `no-ecn`?")),
            ("limit 1Mbit burst=1KiB", "burst=1KiB", Some("`burst 1KiB`")),
            (
                "limit 1Mbit 256KiB",
                "256KiB",
                Some("did you mean `burst 256KiB`?"),
            ),
            ("limit 1Mbit 2Mbit", "2Mbit", Some("exactly one rate")),
            ("limit 100pps burst 50 packets", "packets", None),
        ] {
            let msg = message(
                parse_action(s),
                &[
                    &format!("`{word}` is not a `limit` option"),
                    "expected `burst <size>`, `conn <n>/<period>`, `conn-burst <count>`, `ecn`, \
                     `no-ecn`, `monitor` or `htb <major>:<minor>`",
                ],
            );
            if let Some(hint) = hint {
                assert!(msg.contains(hint), "{msg:?} does not contain {hint:?}");
            }
        }
    }

    #[test]
    fn byte_rate_burst_is_a_size() {
        assert_eq!(limit_of("limit 1Mbit burst 256KiB").burst, Some(262_144));
        assert_eq!(limit_of("limit 1Mbit burst 1500").burst, Some(1_500));
        assert_eq!(limit_of("limit 1Mbit burst 1.5MiB").burst, Some(1_572_864));
        assert_eq!(limit_of("limit 1Mbit burst 64KB").burst, Some(64_000));
        message(parse_action("limit 1Mbit burst 0"), &["`0` is zero"]);
        message(
            parse_action("limit 1Mbit burst 10Mbit"),
            &["`10Mbit` is not a size", "is a rate, not a size"],
        );
        message(
            parse_action("limit 1Mbit burst lots"),
            &["`lots` is not a size"],
        );
    }

    #[test]
    fn packet_rate_burst_is_a_count() {
        assert_eq!(limit_of("limit 100pps burst 50").burst, Some(50));
        assert_eq!(limit_of("limit 2kpps burst 1 ecn").burst, Some(1));
        assert_eq!(
            limit_of("limit 1pps burst 18446744073709551615").burst,
            Some(u64::MAX)
        );
        for value in ["50KiB", "50B", "1 KiB", "2Mbit"] {
            message(
                parse_action(&format!("limit 100pps burst {value}")),
                &[
                    "is not a packet count",
                    "expected a whole number of packets (e.g. `50`)",
                    "in packets, not bytes",
                ],
            );
        }
        message(
            parse_action("limit 100pps burst 1.5"),
            &["`1.5` is not a packet count", "no fractional part"],
        );
        message(
            parse_action("limit 100pps burst lots"),
            &["`lots` is not a packet count"],
        );
        message(
            parse_action("limit 100pps burst 0"),
            &["`0` is zero", "packet count"],
        );
        message(
            parse_action("limit 100pps burst 18446744073709551616"),
            &["`18446744073709551616` is too large", "packet count"],
        );
    }

    #[test]
    fn connection_rates_with_a_rate_or_alone() {
        let both = limit_of("limit 50Mbit conn 20/min");
        assert_eq!(both.rate, Some(Rate::BytesPerSec(6_250_000)));
        let conn = both.conn.expect("a connection rate");
        assert_eq!(
            (conn.count, conn.per, conn.burst),
            (20, Period::Minute, None)
        );

        let alone = limit_of("limit 20conn/min conn-burst 5");
        assert_eq!(alone.rate, None);
        assert_eq!(alone.conn.map(|c| (c.count, c.burst)), Some((20, Some(5))));

        for text in [
            "limit 50Mbit conn 20/min",
            "limit 50Mbit burst 1MiB conn 20/min conn-burst 5 no-ecn monitor",
            "limit 20conn/min",
            "limit 20conn/min conn-burst 5 monitor",
            "limit 100pps burst 50 conn 1/s",
        ] {
            let shown = parse_action(text).unwrap().to_string();
            assert_eq!(shown, text, "the canonical text reads back the same");
        }
    }

    #[test]
    fn connection_rate_mistakes_are_explained() {
        message(
            parse_action("limit 20conn/min burst 5"),
            &["`burst`", "`conn-burst <count>`"],
        );
        message(
            parse_action("limit 20conn/min conn 5/s"),
            &["already limits connections"],
        );
        message(
            parse_action("limit 1Mbit conn 5/s conn 6/s"),
            &["`conn` is given more than once"],
        );
        message(
            parse_action("limit 1Mbit conn-burst 5"),
            &["`conn-burst` needs", "`conn <n>/<period>` before it"],
        );
        message(parse_action("limit 1Mbit conn"), &["`conn` needs a value"]);
        message(
            parse_action("limit 1Mbit conn 5/week"),
            &["`5/week` is not a connection rate", "per `s`, `min` or `h`"],
        );
        message(
            parse_action("limit 5conn/week"),
            &["`5conn/week` is not a connection rate"],
        );
    }
}
