//! A number and its unit as written, and the unit tables' lookup and
//! display shared by rates and sizes.

use std::fmt;

/// A number and its unit, split apart as written.
pub(super) struct Quantity<'a> {
    /// The number as written.
    pub(super) number: &'a str,
    /// Digits before the point.
    pub(super) whole: &'a str,
    /// Digits after the point; empty without a point.
    pub(super) frac: &'a str,
    /// What follows the number, after at most one space.
    pub(super) unit: &'a str,
}

impl<'a> Quantity<'a> {
    /// `None` unless `s` starts with a well-formed number.
    pub(super) fn split(s: &'a str) -> Option<Self> {
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

    pub(super) fn is_zero(&self) -> bool {
        self.whole
            .bytes()
            .chain(self.frac.bytes())
            .all(|b| b == b'0')
    }

    /// The number times `multiplier`, rounded down; `None` on overflow.
    pub(super) fn scaled(&self, multiplier: u64) -> Option<u128> {
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

pub(super) fn lookup(units: &[(&str, u64)], unit: &str) -> Option<u64> {
    units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, m)| m)
}

/// Writes `value` with the largest of `units` (smallest first, the first
/// with multiplier 1) that divides it exactly.
pub(super) fn write_scaled(
    f: &mut fmt::Formatter<'_>,
    value: u128,
    units: &[(&str, u64)],
) -> fmt::Result {
    let (name, multiplier) = units
        .iter()
        .rev()
        .find(|&&(_, m)| value != 0 && value.is_multiple_of(u128::from(m)))
        .unwrap_or(&units[0]);
    write!(f, "{}{name}", value / u128::from(*multiplier))
}
