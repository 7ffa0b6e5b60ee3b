//! [`UnitError`]: why a rate, size or action could not be read, and the
//! `expected ...` texts its messages share.

use std::fmt;

pub(super) const RATE_EXPECTED: &str =
    "a number and one of bit, kbit, Mbit, Gbit, pps, kpps (e.g. `20Mbit`)";
pub(super) const SIZE_EXPECTED: &str = "a number of bytes, or a number and one of B, KB, MB, GB, KiB, MiB, GiB \
     (e.g. `256KiB`)";
pub(super) const COUNT_EXPECTED: &str = "a whole number of packets (e.g. `50`)";
pub(super) const ACTION_EXPECTED: &str = "`allow`, `deny`, `monitor` or `limit <rate> [options]`";
pub(super) const LIMIT_OPTIONS_EXPECTED: &str = "`burst <size>`, `conn <n>/<period>`, \
     `conn-burst <count>`, `ecn`, `no-ecn`, `monitor` or `htb <major>:<minor>`";
pub(super) const HTB_EXPECTED: &str =
    "`<major>:<minor>` in hexadecimal, as tc prints class ids (e.g. `1:10`)";

/// Why a rate, size or action could not be read.
///
/// Every message quotes the offending text and says what was expected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("empty {what}: expected {expected}")]
    Empty {
        what: &'static str,
        expected: &'static str,
    },
    #[error("`{input}` is not a rate: expected {}{}", RATE_EXPECTED, HintSuffix(.hint))]
    NotARate { input: String, hint: Option<String> },
    #[error("`{input}` is not a size: expected {}{}", SIZE_EXPECTED, HintSuffix(.hint))]
    NotASize { input: String, hint: Option<String> },
    #[error("`{input}` is not a packet count: expected {}{}", COUNT_EXPECTED, HintSuffix(.hint))]
    NotACount { input: String, hint: Option<String> },
    #[error("`{input}` is zero: expected a {what} greater than zero")]
    Zero { input: String, what: &'static str },
    #[error("`{input}` is too small: expected a {what} of at least {minimum}")]
    TooSmall {
        input: String,
        what: &'static str,
        minimum: &'static str,
    },
    #[error("`{input}` is too large: expected a {what} of at most {maximum}")]
    TooLarge {
        input: String,
        what: &'static str,
        maximum: &'static str,
    },
    #[error("`{word}` is not an action: expected {}{}", ACTION_EXPECTED, HintSuffix(.hint))]
    UnknownAction { word: String, hint: Option<String> },
    #[error("`{action}` takes no options, found `{word}`: expected nothing after `{action}`")]
    UnexpectedWord { action: &'static str, word: String },
    #[error("`limit` needs a rate first{}: expected `limit <rate> [options]` (e.g. `limit 20Mbit`)", FoundSuffix(.found))]
    MissingRate { found: Option<String> },
    #[error("`{word}` is not a `limit` option: expected {}{}", LIMIT_OPTIONS_EXPECTED, HintSuffix(.hint))]
    UnknownLimitOption { word: String, hint: Option<String> },
    #[error("`{option}` needs a value{}: expected {expected}", FoundSuffix(.found))]
    MissingValue {
        option: &'static str,
        expected: &'static str,
        found: Option<String>,
    },
    #[error("`{option}` is given more than once: each `limit` option may appear at most once")]
    DuplicateOption { option: &'static str },
    #[error(
        "`{second}` contradicts the earlier `{first}`: expected at most one of `ecn` and `no-ecn`"
    )]
    ConflictingOptions {
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "`{input}` is not a connection rate: expected {}",
        super::conn::CONN_EXPECTED
    )]
    NotAConnRate { input: String },
    #[error(
        "`burst` sets the burst of a byte or packet rate, and this limit has none: expected `conn-burst <count>` for its connections"
    )]
    BurstWithoutRate,
    #[error(
        "`limit {conn}conn/...` already limits connections: expected no `conn` option after it"
    )]
    ConnTwice { conn: u64 },
    #[error("`{input}` is not an HTB class: {reason}")]
    NotAnHtbClass { input: String, reason: String },
}

/// Formats an optional hint as `; hint`.
struct HintSuffix<'a>(&'a Option<String>);

impl fmt::Display for HintSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

/// Formats an optional offending word as `, found `word``.
struct FoundSuffix<'a>(&'a Option<String>);

impl fmt::Display for FoundSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(word) => write!(f, ", found `{word}`"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::units::*;

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for s in [
            "٣Mbit",
            "20Мbit",
            "20Mbit\u{0}",
            "\u{feff}20Mbit",
            "...",
            ".",
            "0.",
            "1..5Mbit",
            "1.5.Mbit",
            "😀",
            "20😀",
            ":",
            "",
        ] {
            assert!(parse_rate(s).is_err(), "{s:?}");
            assert!(parse_size(s).is_err(), "{s:?}");
            assert!(parse_action(s).is_err(), "{s:?}");
            assert!(parse_action(&format!("limit {s}")).is_err(), "{s:?}");
            assert!(
                parse_action(&format!("limit 1Mbit burst {s}")).is_err(),
                "{s:?}"
            );
            assert!(
                parse_action(&format!("limit 1pps burst {s}")).is_err(),
                "{s:?}"
            );
            assert!(
                parse_action(&format!("limit 1Mbit htb {s}")).is_err(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn errors_compare_equal() {
        assert_eq!(
            parse_rate("0pps"),
            Err(UnitError::Zero {
                input: "0pps".to_owned(),
                what: "rate"
            })
        );
        assert_eq!(
            parse_action("limit 1Mbit ecn no-ecn"),
            Err(UnitError::ConflictingOptions {
                first: "ecn",
                second: "no-ecn"
            })
        );
    }
}
