//! Actions: `allow`, `deny`, `monitor`, `limit <rate> [options]` (see the
//! module documentation of [`super`] for the grammar), and their canonical
//! text.

use std::fmt;

use super::{
    error::{ACTION_EXPECTED, UnitError},
    hint::action_hint,
    limit::{LimitSpec, parse_limit},
    rate::Rate,
    size::Size,
};

/// An action as written in a rule.
///
/// Displays in the canonical form [`parse_action`] reads back identically:
/// `limit <rate> [burst ..] [conn ..] [conn-burst ..] [ecn|no-ecn] [monitor]
/// [htb ..]` in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionSpec {
    Allow,
    Deny,
    Monitor,
    Limit(LimitSpec),
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

impl fmt::Display for ActionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = match self {
            ActionSpec::Allow => return f.write_str("allow"),
            ActionSpec::Deny => return f.write_str("deny"),
            ActionSpec::Monitor => return f.write_str("monitor"),
            ActionSpec::Limit(limit) => limit,
        };
        match (limit.rate, limit.conn) {
            (Some(rate), _) => write!(f, "limit {rate}")?,
            (None, Some(conn)) => write!(f, "limit {}conn/{}", conn.count, conn.per_name())?,
            (None, None) => f.write_str("limit")?,
        }
        if let (Some(burst), Some(rate)) = (limit.burst, limit.rate) {
            match rate {
                Rate::BytesPerSec(_) => write!(f, " burst {}", Size(burst))?,
                Rate::PacketsPerSec(_) => write!(f, " burst {burst}")?,
            }
        }
        if let Some(conn) = limit.conn {
            if limit.rate.is_some() {
                write!(f, " conn {conn}")?;
            }
            if let Some(burst) = conn.burst {
                write!(f, " conn-burst {burst}")?;
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
    use crate::policy::units::{testing::*, *};

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
                    rate: Some(Rate::BytesPerSec(312_500)),
                    conn: None,
                    burst: Some(262_144),
                    ecn: Some(false),
                    monitor_only: true,
                    htb_class: Some((1, 0x10)),
                }),
                "limit 2500kbit burst 256KiB no-ecn monitor htb 1:10",
            ),
            (
                ActionSpec::Limit(LimitSpec {
                    rate: Some(Rate::PacketsPerSec(1_000)),
                    conn: None,
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
                                rate: Some(rate),
                                conn: None,
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
}
