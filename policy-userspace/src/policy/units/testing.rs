//! Helpers the unit tests of every value share.

use std::fmt;

use super::*;

#[track_caller]
pub(super) fn bytes(s: &str) -> u64 {
    match parse_rate(s) {
        Ok(Rate::BytesPerSec(b)) => b,
        other => panic!("{s}: {other:?}"),
    }
}

#[track_caller]
pub(super) fn pps(s: &str) -> u64 {
    match parse_rate(s) {
        Ok(Rate::PacketsPerSec(p)) => p,
        other => panic!("{s}: {other:?}"),
    }
}

#[track_caller]
pub(super) fn size(s: &str) -> u64 {
    parse_size(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(super) fn limit(rate: Rate) -> LimitSpec {
    LimitSpec {
        rate: Some(rate),
        burst: None,
        conn: None,
        ecn: None,
        monitor_only: false,
        htb_class: None,
    }
}

#[track_caller]
pub(super) fn limit_of(s: &str) -> LimitSpec {
    match parse_action(s) {
        Ok(ActionSpec::Limit(spec)) => spec,
        other => panic!("{s}: {other:?}"),
    }
}

/// The error message of `result`, which must contain every one of `parts`.
#[track_caller]
pub(super) fn message<T: fmt::Debug>(result: Result<T, UnitError>, parts: &[&str]) -> String {
    let msg = match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err.to_string(),
    };
    for part in parts {
        assert!(msg.contains(part), "{msg:?} does not contain {part:?}");
    }
    msg
}
