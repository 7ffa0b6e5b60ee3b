//! Connection rates: `conn 20/min` inside a `limit`, or `limit 20conn/min`
//! alone.

use std::fmt;

use super::error::UnitError;

/// What `conn` and a leading `<n>conn/<period>` expect.
pub(super) const CONN_EXPECTED: &str =
    "a whole number of connections per `s`, `min` or `h` (e.g. `20/min`)";

/// The period of a connection rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "min",
            Self::Hour => "h",
        }
    }
}

/// Connections opened per period (see policy-common's conn.rs for what
/// opens one), with a burst of connections that may open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnLimit {
    pub count: u64,
    pub per: Period,
    /// Connections that may open at once; None = the default, one period's
    /// worth ([`Self::count`]).
    pub burst: Option<u64>,
}

impl ConnLimit {
    /// Nanoseconds per connection (the bucket's cost), at least 1.
    pub fn cost_ns(&self) -> u64 {
        (u128::from(self.per.seconds()) * 1_000_000_000 / u128::from(self.count.max(1)))
            .try_into()
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub(super) fn per_name(&self) -> &'static str {
        self.per.name()
    }

    pub fn burst_or_default(&self) -> u64 {
        self.burst.unwrap_or(self.count).max(1)
    }
}

/// `20/min`: the value of `conn`.
pub(super) fn parse_conn_rate(s: &str) -> Result<ConnLimit, UnitError> {
    let bad = || UnitError::NotAConnRate {
        input: s.to_owned(),
    };
    let (count, period) = s.split_once('/').ok_or_else(bad)?;
    let per = match period {
        "s" | "sec" => Period::Second,
        "min" | "m" => Period::Minute,
        "h" | "hour" => Period::Hour,
        _ => return Err(bad()),
    };
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: u64 = count.parse().map_err(|_| UnitError::TooLarge {
        input: s.to_owned(),
        what: "connection count",
        maximum: "1000000000",
    })?;
    if count == 0 {
        return Err(UnitError::Zero {
            input: s.to_owned(),
            what: "connection count",
        });
    }
    if count > 1_000_000_000 {
        return Err(UnitError::TooLarge {
            input: s.to_owned(),
            what: "connection count",
            maximum: "1000000000",
        });
    }
    Ok(ConnLimit {
        count,
        per,
        burst: None,
    })
}

/// `20conn/min`, the first word of a limit on connections alone; `None`
/// when the word is not of that shape (it is then read as a rate).
pub(super) fn parse_leading(word: &str) -> Option<Result<ConnLimit, UnitError>> {
    let (count, period) = word.split_once("conn/")?;
    Some(
        parse_conn_rate(&format!("{count}/{period}")).map_err(|_| UnitError::NotAConnRate {
            input: word.to_owned(),
        }),
    )
}

impl fmt::Display for ConnLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_second_minute_hour() {
        let c = parse_conn_rate("20/min").unwrap();
        assert_eq!((c.count, c.per), (20, Period::Minute));
        assert_eq!(c.cost_ns(), 3_000_000_000);
        assert_eq!(parse_conn_rate("5/s").unwrap().cost_ns(), 200_000_000);
        assert_eq!(parse_conn_rate("1/h").unwrap().per, Period::Hour);
        assert_eq!(c.burst_or_default(), 20, "one period's worth");
        assert_eq!(c.to_string(), "20/min");
    }

    #[test]
    fn bad_rates_say_what_was_expected() {
        for s in ["20", "/min", "20/week", "2.5/min", "-1/s", "20/"] {
            let e = parse_conn_rate(s).unwrap_err().to_string();
            assert!(e.contains("connections per"), "{s}: {e}");
        }
        assert!(matches!(
            parse_conn_rate("0/min"),
            Err(UnitError::Zero { .. })
        ));
        assert!(matches!(
            parse_conn_rate("99999999999/s"),
            Err(UnitError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_leading_word_is_a_connection_rate_only_with_conn() {
        assert_eq!(parse_leading("20conn/min").unwrap().unwrap().count, 20);
        assert!(parse_leading("20Mbit").is_none());
        assert!(parse_leading("20conn/week").unwrap().is_err());
    }
}
