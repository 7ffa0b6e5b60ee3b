//! Rates: `20Mbit`, `2.5Gbit`, `500pps` (see the module documentation of
//! [`super`] for the grammar).

use std::fmt;

use super::{
    error::{RATE_EXPECTED, UnitError},
    hint::{number_hint, rate_unit_hint},
    quantity::{Quantity, lookup, write_scaled},
};

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

pub(super) const BIT_UNITS: [(&str, u64); 4] = [
    ("bit", 1),
    ("kbit", 1_000),
    ("Mbit", 1_000_000),
    ("Gbit", 1_000_000_000),
];
pub(super) const PACKET_UNITS: [(&str, u64); 2] = [("pps", 1), ("kpps", 1_000)];

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

/// A word that is a rate unit on its own (the second half of `20 Mbit`).
pub(super) fn is_rate_unit(word: &str) -> bool {
    lookup(&BIT_UNITS, word).is_some() || lookup(&PACKET_UNITS, word).is_some()
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rate::BytesPerSec(bytes) => write_scaled(f, u128::from(bytes) * 8, &BIT_UNITS),
            Rate::PacketsPerSec(packets) => write_scaled(f, u128::from(packets), &PACKET_UNITS),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::units::{testing::*, *};

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
}
