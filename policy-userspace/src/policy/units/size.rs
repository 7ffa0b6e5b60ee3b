//! Sizes: `256KiB`, `1.5MB`, `1500` (see the module documentation of
//! [`super`] for the grammar).

use std::fmt;

use super::{
    error::{SIZE_EXPECTED, UnitError},
    hint::{number_hint, size_unit_hint},
    quantity::{Quantity, lookup, write_scaled},
};

/// Canonical size units, smallest first; `kB` is also accepted (see
/// [`size_multiplier`]).
pub(super) const SIZE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

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

/// A word that is a size unit on its own (the second half of `256 KiB`).
pub(super) fn is_size_unit(word: &str) -> bool {
    !word.is_empty() && size_multiplier(word).is_some()
}

pub(super) fn size_multiplier(unit: &str) -> Option<u64> {
    match unit {
        "" => Some(1),
        "kB" => Some(1_000),
        _ => lookup(&SIZE_UNITS, unit),
    }
}

/// Displays bytes as a size [`parse_size`] reads back: the largest unit that
/// divides it exactly (`256KiB`, `64KB`, `1500B`).
pub(super) struct Size(pub(super) u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_scaled(f, u128::from(self.0), &SIZE_UNITS)
    }
}

/// `bytes` as [`parse_size`] reads it back (`5GiB`).
pub fn format_size(bytes: u64) -> String {
    Size(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use crate::policy::units::{testing::*, *};

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
}
