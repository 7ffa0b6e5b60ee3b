//! `htb <major>:<minor>`: the HTB class a `limit` hands traffic off to.

use super::error::{HTB_EXPECTED, UnitError};

/// `major:minor`, both hexadecimal as tc prints them.
pub(super) fn parse_htb(s: &str) -> Result<(u16, u16), UnitError> {
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

#[cfg(test)]
mod tests {
    use crate::policy::units::{testing::*, *};

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
}
