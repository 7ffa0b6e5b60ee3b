//! Humane values in policy files: rates, sizes and actions.
//!
//! Policy files say `limit 20Mbit burst 256KiB` instead of raw numbers. This
//! module reads those values; it knows nothing about users, rules or maps.
//! Every error quotes the text it could not read and says what it expected.
//!
//! # Numbers
//!
//! Every quantity starts with a decimal number: digits, optionally followed
//! by a point and more digits (`20`, `2.5`, `0.75`). There is no sign, no
//! exponent and no digit separator. Fractions are computed exactly (no
//! floating point) and the result is rounded down to a whole number of the
//! stored unit. Zero is always an error, and so is anything that rounds down
//! to zero.
//!
//! # Rates
//!
//! ```text
//! rate = number [" "] rate-unit        e.g. 20Mbit, 2.5Gbit, 500pps, 1 kpps
//! ```
//!
//! | unit   | meaning                            |
//! |--------|------------------------------------|
//! | `bit`  | bits per second                    |
//! | `kbit` | 1 000 bits per second              |
//! | `Mbit` | 1 000 000 bits per second          |
//! | `Gbit` | 1 000 000 000 bits per second      |
//! | `pps`  | packets per second                 |
//! | `kpps` | 1 000 packets per second           |
//!
//! At most one space may separate the number from the unit. Unit names are
//! case-sensitive, exactly as in the table.
//!
//! Bit multiples are SI (powers of 1000) because that is how networking
//! quotes speeds: a 1 Gbit/s link carries 10^9 bits per second, and `tc`
//! reads `kbit`/`mbit` as 1000/1000000 bits per second too. Bit rates are
//! kept as whole bytes per second, rounded down, so the smallest bit rate is
//! `8bit`; `2.5Mbit` is 312 500 bytes per second.
//!
//! `bps`, `kbps`, `Mbps` and `Gbps` are rejected on purpose: `tc` reads
//! `bps` as *bytes* per second while most people mean bits, so the policy
//! language makes you write `bit` and leaves no doubt.
//!
//! # Sizes
//!
//! ```text
//! size = number [" "] size-unit        e.g. 256KiB, 1.5MiB, 64KB, 1500B
//!      | digits                        a plain whole number of bytes: 1500
//! ```
//!
//! | unit  | bytes         |    | unit  | bytes          |
//! |-------|---------------|----|-------|----------------|
//! | `B`   | 1             |    |       |                |
//! | `KB`  | 1 000         |    | `KiB` | 1 024          |
//! | `MB`  | 1 000 000     |    | `MiB` | 1 048 576      |
//! | `GB`  | 1 000 000 000 |    | `GiB` | 1 073 741 824  |
//!
//! `kB`, the official SI spelling, is accepted as well as `KB`. Both SI and
//! IEC (1024-based) multiples exist because both are in daily use for
//! memory and buffer sizes (`tc` reads `kb` as 1024 bytes, disk vendors use
//! 1000): the explicit `i` in `KiB` says which one is meant, so neither
//! reading is ever guessed.
//!
//! # Actions
//!
//! ```text
//! action = "allow" | "deny" | "monitor"
//!        | "limit" rate { limit-option }
//! limit-option = "burst" (size | count)
//!              | "ecn" | "no-ecn"
//!              | "monitor"
//!              | "htb" major ":" minor
//! ```
//!
//! Words are separated by whitespace; keywords are lowercase. The options of
//! `limit` may come in any order, each at most once (and only one of `ecn`
//! and `no-ecn`):
//!
//! - `burst`: how much may pass at once above the rate. With a bit rate it
//!   is a size (`burst 256KiB`; a plain number is bytes). With a packet rate
//!   it is a plain whole number of packets (`burst 50`); a size is an error
//!   there. Left out, a default applies.
//! - `ecn` / `no-ecn`: turn ECN marking of over-limit ECN-capable packets on
//!   or off. Left out, a default applies.
//! - `monitor`: count what the limit would drop, but drop nothing. Useful to
//!   try a limit out before enforcing it.
//! - `htb <major>:<minor>`: on TC egress, hand the traffic off to this HTB
//!   class. Both numbers are hexadecimal, exactly as `tc` prints class ids: `htb 1:10` is major 0x1, minor 0x10 (16). The
//!   major number is the HTB qdisc's handle and must be at least 1; the
//!   minor number must be at least 1 too (`1:0` is the qdisc itself, not a
//!   class). Each is at most `ffff`.
//!
//! ```text
//! allow
//! limit 20Mbit
//! limit 2.5Mbit burst 256KiB no-ecn
//! limit 1000pps burst 50 monitor
//! limit 100Mbit htb 1:10
//! ```

use std::{borrow::Cow, fmt, iter::Peekable, str::SplitWhitespace};

/// A rate: bytes per second or packets per second.
///
/// Displays in the canonical form [`parse_rate`] reads back: bit rates with
/// the largest of `Gbit`, `Mbit`, `kbit`, `bit` that divides them exactly
/// (`20Mbit`, `1500kbit`), packet rates as `kpps` when a whole number of
/// thousands, else `pps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// Written in bits per second, stored in bytes per second (rounded down).
    BytesPerSec(u64),
    PacketsPerSec(u64),
}

/// An action as written in a rule.
///
/// Displays in the canonical form [`parse_action`] reads back identically:
/// `limit <rate> [burst ..] [ecn|no-ecn] [monitor] [htb ..]` in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionSpec {
    Allow,
    Deny,
    Monitor,
    Limit(LimitSpec),
}

/// The `limit` action and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    pub rate: Rate,
    /// Burst in bytes (byte rates) or packets (packet rates); None = default.
    pub burst: Option<u64>,
    /// ECN marking; None = default (the caller decides the default).
    pub ecn: Option<bool>,
    /// Count what the limit would drop instead of dropping.
    pub monitor_only: bool,
    /// Hand off to an HTB class on TC egress: (major, minor), as in tc's
    /// `major:minor` class ids, which are hexadecimal (`1:10` is (0x1, 0x10)).
    pub htb_class: Option<(u16, u16)>,
}

const RATE_EXPECTED: &str = "a number and one of bit, kbit, Mbit, Gbit, pps, kpps (e.g. `20Mbit`)";
const SIZE_EXPECTED: &str = "a number of bytes, or a number and one of B, KB, MB, GB, KiB, MiB, GiB \
     (e.g. `256KiB`)";
const COUNT_EXPECTED: &str = "a whole number of packets (e.g. `50`)";
const ACTION_EXPECTED: &str = "`allow`, `deny`, `monitor` or `limit <rate> [options]`";
const LIMIT_OPTIONS_EXPECTED: &str =
    "`burst <size>`, `ecn`, `no-ecn`, `monitor` or `htb <major>:<minor>`";
const HTB_EXPECTED: &str = "`<major>:<minor>` in hexadecimal, as tc prints class ids (e.g. `1:10`)";

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

const BIT_UNITS: [(&str, u64); 4] = [
    ("bit", 1),
    ("kbit", 1_000),
    ("Mbit", 1_000_000),
    ("Gbit", 1_000_000_000),
];
const PACKET_UNITS: [(&str, u64); 2] = [("pps", 1), ("kpps", 1_000)];
/// Canonical size units, smallest first; `kB` is also accepted (see
/// [`size_multiplier`]).
const SIZE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];
/// Words that start a `limit` option.
const LIMIT_KEYWORDS: [&str; 5] = ["burst", "ecn", "no-ecn", "monitor", "htb"];

/// A number and its unit, split apart as written.
struct Quantity<'a> {
    /// The number as written.
    number: &'a str,
    /// Digits before the point.
    whole: &'a str,
    /// Digits after the point; empty without a point.
    frac: &'a str,
    /// What follows the number, after at most one space.
    unit: &'a str,
}

impl<'a> Quantity<'a> {
    /// `None` unless `s` starts with a well-formed number.
    fn split(s: &'a str) -> Option<Self> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, rest) = s.split_at(end);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (number.contains('.') && !digits(frac)) {
            return None;
        }
        Some(Self {
            number,
            whole,
            frac,
            unit: rest.strip_prefix(' ').unwrap_or(rest),
        })
    }

    fn is_zero(&self) -> bool {
        self.whole
            .bytes()
            .chain(self.frac.bytes())
            .all(|b| b == b'0')
    }

    /// The number times `multiplier`, rounded down; `None` on overflow.
    fn scaled(&self, multiplier: u64) -> Option<u128> {
        let mut whole: u128 = 0;
        for b in self.whole.bytes() {
            whole = whole.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        }
        // floor(multiplier * 0.d1d2..dn), exactly: nested floor divisions
        // by 10 from the last digit equal one floor division by 10^n, and
        // the running value stays below `multiplier`, so nothing overflows.
        let mut frac: u64 = 0;
        for b in self.frac.bytes().rev() {
            frac = (frac + u64::from(b - b'0') * multiplier) / 10;
        }
        whole
            .checked_mul(u128::from(multiplier))?
            .checked_add(u128::from(frac))
    }
}

/// Parses a rate such as `20Mbit`, `2.5Gbit` or `500pps`; see the module
/// documentation for the grammar. Surrounding whitespace is ignored.
pub fn parse_rate(s: &str) -> Result<Rate, UnitError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(UnitError::Empty {
            what: "rate",
            expected: RATE_EXPECTED,
        });
    }
    let not_a_rate = |hint| UnitError::NotARate {
        input: input.to_owned(),
        hint,
    };
    let Some(q) = Quantity::split(input) else {
        return Err(not_a_rate(number_hint(input, "rate")));
    };
    let (multiplier, packets) = if let Some(m) = lookup(&BIT_UNITS, q.unit) {
        (m, false)
    } else if let Some(m) = lookup(&PACKET_UNITS, q.unit) {
        (m, true)
    } else {
        return Err(not_a_rate(rate_unit_hint(q.number, q.unit)));
    };
    if q.is_zero() {
        return Err(UnitError::Zero {
            input: input.to_owned(),
            what: "rate",
        });
    }
    let too_large = |maximum| UnitError::TooLarge {
        input: input.to_owned(),
        what: "rate",
        maximum,
    };
    let too_small = |minimum| UnitError::TooSmall {
        input: input.to_owned(),
        what: "rate",
        minimum,
    };
    if packets {
        let max = "18446744073709551615pps";
        let pps = q.scaled(multiplier).ok_or_else(|| too_large(max))?;
        let pps = u64::try_from(pps).map_err(|_| too_large(max))?;
        if pps == 0 {
            return Err(too_small("`1pps`"));
        }
        Ok(Rate::PacketsPerSec(pps))
    } else {
        let max = "2^64-1 bytes per second";
        let bits = q.scaled(multiplier).ok_or_else(|| too_large(max))?;
        let bytes = u64::try_from(bits / 8).map_err(|_| too_large(max))?;
        if bytes == 0 {
            return Err(too_small(
                "`8bit` (rates are kept in whole bytes per second)",
            ));
        }
        Ok(Rate::BytesPerSec(bytes))
    }
}

/// Parses a size such as `256KiB`, `1.5MB` or a plain number of bytes
/// (`1500`) into bytes, rounded down; see the module documentation for the
/// grammar. Surrounding whitespace is ignored.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(UnitError::Empty {
            what: "size",
            expected: SIZE_EXPECTED,
        });
    }
    let not_a_size = |hint| UnitError::NotASize {
        input: input.to_owned(),
        hint,
    };
    let Some(q) = Quantity::split(input) else {
        return Err(not_a_size(number_hint(input, "size")));
    };
    if q.unit.is_empty() && !q.frac.is_empty() {
        return Err(not_a_size(Some(format!(
            "a number without a unit counts whole bytes; add a unit for a fraction (e.g. `{}KiB`)",
            q.number
        ))));
    }
    let Some(multiplier) = size_multiplier(q.unit) else {
        return Err(not_a_size(size_unit_hint(q.number, q.unit)));
    };
    if q.is_zero() {
        return Err(UnitError::Zero {
            input: input.to_owned(),
            what: "size",
        });
    }
    let too_large = || UnitError::TooLarge {
        input: input.to_owned(),
        what: "size",
        maximum: "18446744073709551615B",
    };
    let bytes = q.scaled(multiplier).ok_or_else(too_large)?;
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(UnitError::TooSmall {
            input: input.to_owned(),
            what: "size",
            minimum: "`1B` (sizes are kept in whole bytes, rounded down)",
        });
    }
    Ok(bytes)
}

/// Parses an action such as `deny` or `limit 20Mbit burst 256KiB ecn`; see
/// the module documentation for the grammar.
pub fn parse_action(s: &str) -> Result<ActionSpec, UnitError> {
    let mut words = s.split_whitespace().peekable();
    let Some(first) = words.next() else {
        return Err(UnitError::Empty {
            what: "action",
            expected: ACTION_EXPECTED,
        });
    };
    let (action, keyword) = match first {
        "allow" => (ActionSpec::Allow, "allow"),
        "deny" => (ActionSpec::Deny, "deny"),
        "monitor" => (ActionSpec::Monitor, "monitor"),
        "limit" => return parse_limit(&mut words).map(ActionSpec::Limit),
        other => {
            return Err(UnitError::UnknownAction {
                word: other.to_owned(),
                hint: action_hint(other),
            });
        }
    };
    match words.next() {
        Some(word) => Err(UnitError::UnexpectedWord {
            action: keyword,
            word: word.to_owned(),
        }),
        None => Ok(action),
    }
}

type Words<'a> = Peekable<SplitWhitespace<'a>>;

/// Everything after `limit`.
fn parse_limit(words: &mut Words<'_>) -> Result<LimitSpec, UnitError> {
    let rate = match words.next() {
        None => return Err(UnitError::MissingRate { found: None }),
        Some(word) if LIMIT_KEYWORDS.contains(&word) => {
            return Err(UnitError::MissingRate {
                found: Some(word.to_owned()),
            });
        }
        // A bare number is never a rate, so take whatever follows it as its
        // unit (`limit 20 Mbps` then reports `20 Mbps`, not a missing unit).
        Some(word) => parse_rate(&join_unit(word, words, |next| {
            !LIMIT_KEYWORDS.contains(&next)
        }))?,
    };
    let mut spec = LimitSpec {
        rate,
        burst: None,
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

/// `major:minor`, both hexadecimal as tc prints them.
fn parse_htb(s: &str) -> Result<(u16, u16), UnitError> {
    let fail = |reason: String| UnitError::NotAnHtbClass {
        input: s.to_owned(),
        reason,
    };
    let Some((major, minor)) = s.split_once(':') else {
        return Err(fail(format!("expected {HTB_EXPECTED}")));
    };
    let hex = |part: &str| -> Result<u16, UnitError> {
        if part.starts_with("0x") || part.starts_with("0X") {
            return Err(fail(format!(
                "expected {HTB_EXPECTED}, without a `0x` prefix"
            )));
        }
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(format!("expected {HTB_EXPECTED}")));
        }
        // Only hex digits, so the only possible failure is overflow.
        u16::from_str_radix(part, 16).map_err(|_| {
            fail(format!(
                "`{part}` is more than 16 bits: expected at most `ffff`"
            ))
        })
    };
    if minor.is_empty() && !major.is_empty() {
        return Err(fail(format!(
            "expected a minor number after the `:` (e.g. `{major}:10`); `{major}:` names the \
             HTB qdisc itself, not a class"
        )));
    }
    let (major, minor) = (hex(major)?, hex(minor)?);
    if major == 0 {
        return Err(fail(
            "expected a major number of at least 1 (the HTB qdisc's handle, as in \
             `tc qdisc add dev eth0 root handle 1: htb`)"
                .to_owned(),
        ));
    }
    if minor == 0 {
        return Err(fail(format!(
            "expected a minor number of at least 1; `{major:x}:0` names the HTB qdisc itself, \
             not a class"
        )));
    }
    Ok((major, minor))
}

fn lookup(units: &[(&str, u64)], unit: &str) -> Option<u64> {
    units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, m)| m)
}

/// A word that is a rate unit on its own (the second half of `20 Mbit`).
fn is_rate_unit(word: &str) -> bool {
    lookup(&BIT_UNITS, word).is_some() || lookup(&PACKET_UNITS, word).is_some()
}

/// A word that is a size unit on its own (the second half of `256 KiB`).
fn is_size_unit(word: &str) -> bool {
    !word.is_empty() && size_multiplier(word).is_some()
}

fn size_multiplier(unit: &str) -> Option<u64> {
    match unit {
        "" => Some(1),
        "kB" => Some(1_000),
        _ => lookup(&SIZE_UNITS, unit),
    }
}

/// A hint for text that does not start with a number.
fn number_hint(input: &str, what: &str) -> Option<String> {
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
fn rate_unit_hint(number: &str, unit: &str) -> Option<String> {
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
fn size_unit_hint(number: &str, unit: &str) -> Option<String> {
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
fn action_hint(word: &str) -> Option<String> {
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
fn limit_option_hint(word: &str) -> Option<String> {
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

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::BytesPerSec(bytes) => write_scaled(f, u128::from(bytes) * 8, &BIT_UNITS),
            Rate::PacketsPerSec(packets) => write_scaled(f, u128::from(packets), &PACKET_UNITS),
        }
    }
}

/// Writes `value` with the largest of `units` (smallest first, the first
/// with multiplier 1) that divides it exactly.
fn write_scaled(f: &mut fmt::Formatter<'_>, value: u128, units: &[(&str, u64)]) -> fmt::Result {
    let (name, multiplier) = units
        .iter()
        .rev()
        .find(|&&(_, m)| value != 0 && value.is_multiple_of(u128::from(m)))
        .unwrap_or(&units[0]);
    write!(f, "{}{name}", value / u128::from(*multiplier))
}

/// Displays bytes as a size [`parse_size`] reads back: the largest unit that
/// divides it exactly (`256KiB`, `64KB`, `1500B`).
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, u128::from(self.0), &SIZE_UNITS)
    }
}

impl fmt::Display for ActionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = match self {
            ActionSpec::Allow => return f.write_str("allow"),
            ActionSpec::Deny => return f.write_str("deny"),
            ActionSpec::Monitor => return f.write_str("monitor"),
            ActionSpec::Limit(limit) => limit,
        };
        write!(f, "limit {}", limit.rate)?;
        if let Some(burst) = limit.burst {
            match limit.rate {
                Rate::BytesPerSec(_) => write!(f, " burst {}", Size(burst))?,
                Rate::PacketsPerSec(_) => write!(f, " burst {burst}")?,
            }
        }
        match limit.ecn {
            Some(true) => f.write_str(" ecn")?,
            Some(false) => f.write_str(" no-ecn")?,
            None => {}
        }
        if limit.monitor_only {
            f.write_str(" monitor")?;
        }
        if let Some((major, minor)) = limit.htb_class {
            write!(f, " htb {major:x}:{minor:x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn bytes(s: &str) -> u64 {
        match parse_rate(s) {
            Ok(Rate::BytesPerSec(b)) => b,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[track_caller]
    fn pps(s: &str) -> u64 {
        match parse_rate(s) {
            Ok(Rate::PacketsPerSec(p)) => p,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[track_caller]
    fn size(s: &str) -> u64 {
        parse_size(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn limit(rate: Rate) -> LimitSpec {
        LimitSpec {
            rate,
            burst: None,
            ecn: None,
            monitor_only: false,
            htb_class: None,
        }
    }

    #[track_caller]
    fn limit_of(s: &str) -> LimitSpec {
        match parse_action(s) {
            Ok(ActionSpec::Limit(spec)) => spec,
            other => panic!("{s}: {other:?}"),
        }
    }

    /// The error message of `result`, which must contain every one of `parts`.
    #[track_caller]
    fn message<T: fmt::Debug>(result: Result<T, UnitError>, parts: &[&str]) -> String {
        let msg = match result {
            Ok(value) => panic!("expected an error, got {value:?}"),
            Err(err) => err.to_string(),
        };
        for part in parts {
            assert!(msg.contains(part), "{msg:?} does not contain {part:?}");
        }
        msg
    }

    // ---- rates ----

    #[test]
    fn every_bit_unit() {
        assert_eq!(bytes("8bit"), 1);
        assert_eq!(bytes("1kbit"), 125);
        assert_eq!(bytes("1Mbit"), 125_000);
        assert_eq!(bytes("1Gbit"), 125_000_000);
        assert_eq!(bytes("20Mbit"), 2_500_000);
        assert_eq!(bytes("400Gbit"), 50_000_000_000);
    }

    #[test]
    fn every_packet_unit() {
        assert_eq!(pps("1pps"), 1);
        assert_eq!(pps("500pps"), 500);
        assert_eq!(pps("1kpps"), 1_000);
        assert_eq!(pps("2kpps"), 2_000);
    }

    #[test]
    fn rate_fractions_are_exact() {
        assert_eq!(bytes("2.5Mbit"), 312_500);
        assert_eq!(bytes("1.5Gbit"), 187_500_000);
        assert_eq!(bytes("0.125kbit"), 15); // 125 bit/s
        assert_eq!(bytes("0.000008Mbit"), 1); // 8 bit/s
        assert_eq!(bytes("1.000000008Gbit"), 125_000_001);
        assert_eq!(bytes("20.0Mbit"), 2_500_000);
        assert_eq!(bytes("007Mbit"), 875_000);
        assert_eq!(pps("1.5kpps"), 1_500);
        assert_eq!(pps("0.001kpps"), 1);
        // More digits than any float holds: still exact, still rounded down.
        assert_eq!(
            bytes("0.99999999999999999999999999999999999999999999Gbit"),
            124_999_999
        );
    }

    #[test]
    fn rates_round_down() {
        assert_eq!(bytes("15bit"), 1);
        assert_eq!(bytes("16bit"), 2);
        assert_eq!(bytes("1.001kbit"), 125); // 1001 bit/s
        assert_eq!(bytes("0.0159kbit"), 1); // 15.9 bit/s
        assert_eq!(pps("2.999pps"), 2);
        assert_eq!(pps("1.0009kpps"), 1_000);
    }

    #[test]
    fn rate_whitespace() {
        assert_eq!(bytes("20 Mbit"), 2_500_000);
        assert_eq!(bytes("  20Mbit\t"), 2_500_000);
        assert_eq!(pps("5 kpps"), 5_000);
        message(parse_rate("20  Mbit"), &["`20  Mbit`", "at most one space"]);
        message(parse_rate("20\tMbit"), &["`20\tMbit`", "at most one space"]);
    }

    #[test]
    fn rate_zero() {
        for s in [
            "0bit",
            "0Mbit",
            "0.0Gbit",
            "000kbit",
            "0pps",
            "0.000kpps",
            "0 Mbit",
        ] {
            message(
                parse_rate(s),
                &[&format!("`{s}` is zero"), "greater than zero"],
            );
        }
    }

    #[test]
    fn rate_too_small() {
        for s in ["1bit", "7bit", "7.99bit", "0.001kbit", "0.000007Mbit"] {
            message(
                parse_rate(s),
                &[&format!("`{s}` is too small"), "at least `8bit`"],
            );
        }
        for s in ["0.5pps", "0.0009kpps"] {
            message(
                parse_rate(s),
                &[&format!("`{s}` is too small"), "at least `1pps`"],
            );
        }
    }

    #[test]
    fn rate_overflow() {
        // The largest byte rate is 2^64-1 bytes/s, i.e. 8 * (2^64-1) bit/s.
        assert_eq!(bytes("147573952589676412920bit"), u64::MAX);
        assert_eq!(bytes("147573952589676412927bit"), u64::MAX);
        assert_eq!(pps("18446744073709551615pps"), u64::MAX);
        for s in [
            "147573952589676412928bit",
            "147573952589676413Gbit",
            "99999999999999999999999999999999999999999999999999Gbit",
            "18446744073709551616pps",
            "18446744073709552kpps",
            "999999999999999999999999999999999999999999999999999999pps",
        ] {
            message(parse_rate(s), &[&format!("`{s}` is too large"), "at most"]);
        }
    }

    #[test]
    fn rate_message_says_what_is_expected() {
        assert_eq!(
            parse_rate("20Mbps").unwrap_err().to_string(),
            "`20Mbps` is not a rate: expected a number and one of bit, kbit, Mbit, Gbit, pps, \
             kpps (e.g. `20Mbit`); `Mbps` is ambiguous (tc reads `bps` as bytes per second, \
             most people mean bits), so write `20Mbit` for bits per second"
        );
        assert_eq!(
            parse_rate("fast").unwrap_err().to_string(),
            "`fast` is not a rate: expected a number and one of bit, kbit, Mbit, Gbit, pps, \
             kpps (e.g. `20Mbit`)"
        );
        assert_eq!(
            parse_rate("").unwrap_err().to_string(),
            "empty rate: expected a number and one of bit, kbit, Mbit, Gbit, pps, kpps \
             (e.g. `20Mbit`)"
        );
    }

    #[test]
    fn bps_is_rejected_with_a_hint() {
        for (s, suggestion) in [
            ("800bps", "`800bit`"),
            ("20kbps", "`20kbit`"),
            ("20Kbps", "`20kbit`"),
            ("20Mbps", "`20Mbit`"),
            ("20MBps", "`20Mbit`"),
            ("20mbps", "`20Mbit`"),
            ("1Gbps", "`1Gbit`"),
            ("1.5 Gbps", "`1.5Gbit`"),
        ] {
            message(
                parse_rate(s),
                &[&format!("`{s}` is not a rate"), "ambiguous", suggestion],
            );
        }
    }

    #[test]
    fn rate_garbage() {
        for (s, hint) in [
            ("Mbit", None),
            ("twenty Mbit", None),
            ("20", Some("the unit is missing")),
            ("-5Mbit", Some("cannot be negative")),
            ("+5Mbit", Some("leave out the `+`")),
            (".5Mbit", Some("digit before the point")),
            ("5.Mbit", Some("digits on both sides")),
            ("1.2.3Mbit", Some("digits on both sides")),
            ("2,5Mbit", Some("`.` as the decimal point")),
            ("1e6bit", None),
            ("1_000bit", None),
            ("20Tbit", None),
            ("20Mbit extra", None),
            ("20mbit", Some("did you mean `20Mbit`?")),
            ("20Kbit", Some("did you mean `20kbit`?")),
            ("20GBIT", Some("did you mean `20Gbit`?")),
            ("20Mbits", Some("did you mean `20Mbit`?")),
            ("20Mbit/s", Some("did you mean `20Mbit`?")),
            ("20KPPS", Some("did you mean `20kpps`?")),
            ("20MB", Some("`MB` is a size, not a rate")),
            ("20KiB", Some("`KiB` is a size, not a rate")),
        ] {
            let msg = message(
                parse_rate(s),
                &[
                    &format!("`{s}` is not a rate"),
                    "expected a number and one of bit",
                ],
            );
            if let Some(hint) = hint {
                assert!(msg.contains(hint), "{msg:?} does not contain {hint:?}");
            }
        }
    }

    #[test]
    fn rate_display() {
        for (rate, text) in [
            (Rate::BytesPerSec(1), "8bit"),
            (Rate::BytesPerSec(15), "120bit"),
            (Rate::BytesPerSec(125), "1kbit"),
            (Rate::BytesPerSec(2_500_000), "20Mbit"),
            (Rate::BytesPerSec(187_500), "1500kbit"),
            (Rate::BytesPerSec(312_500), "2500kbit"),
            (Rate::BytesPerSec(125_000_000), "1Gbit"),
            (Rate::BytesPerSec(187_500_000), "1500Mbit"),
            (Rate::BytesPerSec(u64::MAX), "147573952589676412920bit"),
            (Rate::PacketsPerSec(1), "1pps"),
            (Rate::PacketsPerSec(500), "500pps"),
            (Rate::PacketsPerSec(1_500), "1500pps"),
            (Rate::PacketsPerSec(2_000), "2kpps"),
        ] {
            assert_eq!(rate.to_string(), text);
        }
    }

    #[test]
    fn rate_display_round_trips() {
        let values = [
            1,
            2,
            7,
            125,
            999,
            1_000,
            12_345,
            312_500,
            2_500_000,
            125_000_000,
            1 << 40,
            10_u64.pow(18),
            u64::MAX / 8,
            u64::MAX - 1,
            u64::MAX,
        ];
        for v in values {
            for rate in [Rate::BytesPerSec(v), Rate::PacketsPerSec(v)] {
                assert_eq!(parse_rate(&rate.to_string()), Ok(rate), "{rate}");
            }
        }
    }

    // ---- sizes ----

    #[test]
    fn every_size_unit() {
        assert_eq!(size("1500"), 1_500);
        assert_eq!(size("1B"), 1);
        assert_eq!(size("1KB"), 1_000);
        assert_eq!(size("1kB"), 1_000);
        assert_eq!(size("1MB"), 1_000_000);
        assert_eq!(size("1GB"), 1_000_000_000);
        assert_eq!(size("1KiB"), 1_024);
        assert_eq!(size("1MiB"), 1_048_576);
        assert_eq!(size("1GiB"), 1_073_741_824);
        assert_eq!(size("256KiB"), 262_144);
        assert_eq!(size("64 KB"), 64_000);
        assert_eq!(size(" 9000 "), 9_000);
    }

    #[test]
    fn size_fractions_and_rounding() {
        assert_eq!(size("1.5MiB"), 1_572_864);
        assert_eq!(size("1.5KB"), 1_500);
        assert_eq!(size("0.5KiB"), 512);
        assert_eq!(size("2.5B"), 2);
        assert_eq!(size("1.0001KiB"), 1_024); // 1024.1024
        assert_eq!(size("0.999KiB"), 1_022); // 1022.976
        assert_eq!(size("0.1GiB"), 107_374_182); // 107374182.4
        assert_eq!(size("1.5B"), 1);
        assert_eq!(size("1.9999GB"), 1_999_900_000);
    }

    #[test]
    fn size_zero_and_too_small() {
        for s in ["0", "0B", "0KiB", "0.0MB", "000"] {
            message(
                parse_size(s),
                &[&format!("`{s}` is zero"), "greater than zero"],
            );
        }
        for s in ["0.5B", "0.0009KB", "0.0001KiB"] {
            message(
                parse_size(s),
                &[&format!("`{s}` is too small"), "at least `1B`"],
            );
        }
    }

    #[test]
    fn size_overflow() {
        assert_eq!(size("18446744073709551615"), u64::MAX);
        assert_eq!(size("18446744073709551615B"), u64::MAX);
        assert_eq!(size("17179869183GiB"), u64::MAX - (1 << 30) + 1);
        for s in [
            "18446744073709551616",
            "17179869184GiB",
            "18446744073709552KB",
            "99999999999999999999999999999999999999999999999999GB",
        ] {
            message(parse_size(s), &[&format!("`{s}` is too large"), "at most"]);
        }
    }

    #[test]
    fn size_garbage() {
        assert_eq!(
            parse_size("").unwrap_err().to_string(),
            "empty size: expected a number of bytes, or a number and one of B, KB, MB, GB, \
             KiB, MiB, GiB (e.g. `256KiB`)"
        );
        for (s, hint) in [
            ("big", None),
            ("KiB", None),
            ("1TB", None),
            ("-1KiB", Some("cannot be negative")),
            ("1.5", Some("counts whole bytes")),
            (
                "256K",
                Some("`256KiB` (1024-based) or `256KB` (1000-based)"),
            ),
            ("1m", Some("`1MiB` (1024-based) or `1MB` (1000-based)")),
            ("256kb", Some("did you mean `256KB`?")),
            ("256kib", Some("did you mean `256KiB`?")),
            ("1gib", Some("did you mean `1GiB`?")),
            ("256 bytes", Some("did you mean `256B`?")),
            ("256Mbit", Some("`Mbit` is a rate, not a size")),
            ("256  KiB", Some("at most one space")),
        ] {
            let msg = message(
                parse_size(s),
                &[
                    &format!("`{s}` is not a size"),
                    "one of B, KB, MB, GB, KiB, MiB, GiB",
                ],
            );
            if let Some(hint) = hint {
                assert!(msg.contains(hint), "{msg:?} does not contain {hint:?}");
            }
        }
    }

    // ---- actions ----

    #[test]
    fn simple_actions() {
        assert_eq!(parse_action("allow"), Ok(ActionSpec::Allow));
        assert_eq!(parse_action("deny"), Ok(ActionSpec::Deny));
        assert_eq!(parse_action("monitor"), Ok(ActionSpec::Monitor));
        assert_eq!(parse_action("  deny\n"), Ok(ActionSpec::Deny));
    }

    #[test]
    fn simple_actions_take_no_options() {
        for s in ["allow now", "deny 20Mbit", "monitor monitor"] {
            let (action, word) = s.split_once(' ').unwrap();
            message(
                parse_action(s),
                &[
                    &format!("`{action}` takes no options, found `{word}`"),
                    "expected nothing",
                ],
            );
        }
    }

    #[test]
    fn empty_and_unknown_actions() {
        for s in ["", "   ", "\t\n"] {
            assert_eq!(
                parse_action(s).unwrap_err().to_string(),
                "empty action: expected `allow`, `deny`, `monitor` or `limit <rate> [options]`"
            );
        }
        for (s, hint) in [
            ("frobnicate", None),
            ("Allow", Some("did you mean `allow`?")),
            ("DENY", Some("did you mean `deny`?")),
            ("Limit 20Mbit", Some("did you mean `limit`?")),
            ("drop", Some("did you mean `deny`?")),
            ("accept", Some("did you mean `allow`?")),
            ("log", Some("did you mean `monitor`?")),
            ("throttle 1Mbit", Some("did you mean `limit <rate>`?")),
            ("20Mbit", Some("did you mean `limit 20Mbit`?")),
        ] {
            let word = s.split_whitespace().next().unwrap();
            let msg = message(
                parse_action(s),
                &[
                    &format!("`{word}` is not an action"),
                    "expected `allow`, `deny`, `monitor` or `limit <rate> [options]`",
                ],
            );
            if let Some(hint) = hint {
                assert!(msg.contains(hint), "{msg:?} does not contain {hint:?}");
            }
        }
    }

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
            Rate::BytesPerSec(312_500)
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
            rate: Rate::BytesPerSec(312_500),
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
        assert_eq!(spec.rate, Rate::BytesPerSec(2_500_000));
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
                    "expected `burst <size>`, `ecn`, `no-ecn`, `monitor` or `htb <major>:<minor>`",
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
    fn htb_classes_are_hex() {
        for (s, class) in [
            ("1:10", (1, 0x10)),
            ("1:1", (1, 1)),
            ("10:a", (0x10, 0xa)),
            ("A:Bc", (0xa, 0xbc)),
            ("0001:0010", (1, 0x10)),
            ("ffff:ffff", (0xffff, 0xffff)),
        ] {
            assert_eq!(
                limit_of(&format!("limit 1Mbit htb {s}")).htb_class,
                Some(class),
                "{s}"
            );
        }
    }

    #[test]
    fn bad_htb_classes() {
        for (s, reason) in [
            ("10", "expected `<major>:<minor>` in hexadecimal"),
            (":10", "expected `<major>:<minor>` in hexadecimal"),
            ("1:g", "expected `<major>:<minor>` in hexadecimal"),
            ("1:2:3", "expected `<major>:<minor>` in hexadecimal"),
            ("1:+1", "expected `<major>:<minor>` in hexadecimal"),
            ("0x1:0x10", "without a `0x` prefix"),
            (
                "1:",
                "expected a minor number after the `:` (e.g. `1:10`); `1:` names",
            ),
            ("0:10", "major number of at least 1"),
            ("1:0", "at least 1; `1:0` names the HTB qdisc itself"),
            ("01:00", "at least 1; `1:0` names the HTB qdisc itself"),
            ("1:10000", "`10000` is more than 16 bits"),
            ("fffff:1", "`fffff` is more than 16 bits"),
        ] {
            message(
                parse_action(&format!("limit 1Mbit htb {s}")),
                &[&format!("`{s}` is not an HTB class"), reason],
            );
        }
    }

    // ---- display ----

    #[test]
    fn action_display() {
        for (action, text) in [
            (ActionSpec::Allow, "allow"),
            (ActionSpec::Deny, "deny"),
            (ActionSpec::Monitor, "monitor"),
            (
                ActionSpec::Limit(limit(Rate::BytesPerSec(2_500_000))),
                "limit 20Mbit",
            ),
            (
                ActionSpec::Limit(LimitSpec {
                    rate: Rate::BytesPerSec(312_500),
                    burst: Some(262_144),
                    ecn: Some(false),
                    monitor_only: true,
                    htb_class: Some((1, 0x10)),
                }),
                "limit 2500kbit burst 256KiB no-ecn monitor htb 1:10",
            ),
            (
                ActionSpec::Limit(LimitSpec {
                    rate: Rate::PacketsPerSec(1_000),
                    burst: Some(50),
                    ecn: Some(true),
                    monitor_only: false,
                    htb_class: Some((0xabc, 0xffff)),
                }),
                "limit 1kpps burst 50 ecn htb abc:ffff",
            ),
        ] {
            assert_eq!(action.to_string(), text);
        }
    }

    #[test]
    fn burst_sizes_display_with_the_largest_exact_unit() {
        for (burst, text) in [
            (1, "1B"),
            (1_500, "1500B"),
            (1_000, "1KB"),
            (1_024, "1KiB"),
            (64_000, "64KB"),
            (1_024_000, "1000KiB"),
            (1_000_000, "1MB"),
            (1_572_864, "1536KiB"),
            (1 << 20, "1MiB"),
            (3_000_000_000, "3GB"),
            (5 << 30, "5GiB"),
        ] {
            let action = ActionSpec::Limit(LimitSpec {
                burst: Some(burst),
                ..limit(Rate::BytesPerSec(125))
            });
            assert_eq!(action.to_string(), format!("limit 1kbit burst {text}"));
        }
    }

    #[test]
    fn action_display_round_trips() {
        let mut actions = vec![ActionSpec::Allow, ActionSpec::Deny, ActionSpec::Monitor];
        let rates = [
            Rate::BytesPerSec(1),
            Rate::BytesPerSec(312_500),
            Rate::BytesPerSec(123_456_789),
            Rate::BytesPerSec(u64::MAX),
            Rate::PacketsPerSec(1),
            Rate::PacketsPerSec(1_500),
            Rate::PacketsPerSec(u64::MAX),
        ];
        let bursts = [None, Some(1), Some(1_500), Some(262_144), Some(u64::MAX)];
        let ecns = [None, Some(true), Some(false)];
        let classes = [
            None,
            Some((1, 1)),
            Some((0x10, 0xabcd)),
            Some((0xffff, 0xffff)),
        ];
        for rate in rates {
            for burst in bursts {
                for ecn in ecns {
                    for monitor_only in [false, true] {
                        for htb_class in classes {
                            actions.push(ActionSpec::Limit(LimitSpec {
                                rate,
                                burst,
                                ecn,
                                monitor_only,
                                htb_class,
                            }));
                        }
                    }
                }
            }
        }
        for action in actions {
            let text = action.to_string();
            assert_eq!(parse_action(&text), Ok(action), "{text}");
        }
    }

    #[test]
    fn canonical_text_is_stable() {
        for s in [
            "deny",
            "limit 2.5Mbit",
            "limit 20 Mbit htb 1:10 monitor ecn burst 256 KiB",
            "limit 1.5kpps monitor burst 0050",
            "limit 0.125kbit no-ecn",
            "limit 1000000bit burst 1.5MiB",
        ] {
            let action = parse_action(s).unwrap();
            let canonical = action.to_string();
            assert_eq!(parse_action(&canonical), Ok(action), "{s} -> {canonical}");
            assert_eq!(parse_action(&canonical).unwrap().to_string(), canonical);
        }
        assert_eq!(
            parse_action("limit 20 Mbit htb 1:10 monitor ecn burst 256 KiB")
                .unwrap()
                .to_string(),
            "limit 20Mbit burst 256KiB ecn monitor htb 1:10"
        );
        assert_eq!(
            parse_action("limit 1000000bit burst 1.5MiB")
                .unwrap()
                .to_string(),
            "limit 1Mbit burst 1536KiB"
        );
    }

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
