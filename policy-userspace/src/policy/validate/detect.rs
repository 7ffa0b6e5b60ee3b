//! `[detect.scan]`: thresholds, window, what a crossing does.

use std::time::Duration;

use jiff::fmt::friendly::SpanParser;
use policy_common::MAX_SCAN_THRESHOLD;
use toml::Spanned;

use super::{Ctx, PolicyError, file, rules::Known};
use crate::policy::types::*;

/// `90s`, `10m`, `1h`: a duration in jiff's friendly format, of fixed-length
/// units (no days: they are not always 24 hours long).
fn duration(cx: &Ctx<'_>, v: &Spanned<String>, field: &str) -> Result<Duration, PolicyError> {
    let bad = || {
        cx.err(
            v,
            field,
            format!(
                "`{}` is not a duration (like `60s`, `10m` or `1h`)",
                v.get_ref()
            ),
        )
    };
    let span = SpanParser::new()
        .parse_span(v.get_ref())
        .map_err(|_| bad())?;
    let d = Duration::try_from(span).map_err(|_| bad())?;
    if d < Duration::from_secs(1) {
        return Err(cx.err(v, field, "at least `1s`"));
    }
    Ok(d)
}

fn threshold(cx: &Ctx<'_>, v: &Spanned<i64>, field: &str) -> Result<u32, PolicyError> {
    match u32::try_from(*v.get_ref()) {
        Ok(n @ 2..=MAX_SCAN_THRESHOLD) => Ok(n),
        _ => Err(cx.err(
            v,
            field,
            format!(
                "`{}` is out of range: expected 2 to {MAX_SCAN_THRESHOLD} distinct destinations \
                 (the estimator counts up to about that many; docs/datapath.md)",
                v.get_ref()
            ),
        )),
    }
}

pub(super) fn scan(
    cx: &Ctx<'_>,
    entry: &Spanned<file::ScanEntry>,
    known: &Known<'_>,
) -> Result<ScanPolicy, PolicyError> {
    let raw = entry.get_ref();
    let hosts = match &raw.hosts {
        Some(v) => Some(threshold(cx, v, "detect.scan.hosts")?),
        None => None,
    };
    let ports = match &raw.ports {
        Some(v) => Some(threshold(cx, v, "detect.scan.ports")?),
        None => None,
    };
    if hosts.is_none() && ports.is_none() {
        return Err(cx.err(
            entry,
            "detect.scan",
            "give `hosts`, `ports` or both: the distinct destinations in a window that mark a scan",
        ));
    }
    let window = match &raw.window {
        Some(v) => duration(cx, v, "detect.scan.window")?,
        None => ScanPolicy::DEFAULT_WINDOW,
    };
    let monitor = match &raw.action {
        Some(v) => cx.choice(
            v,
            "detect.scan.action",
            &[("quarantine", false), ("monitor", true)],
        )?,
        None => false,
    };
    let quarantine = match &raw.quarantine {
        Some(v) => duration(cx, v, "detect.scan.quarantine")?,
        None => ScanPolicy::DEFAULT_QUARANTINE,
    };
    let mut allow = Vec::new();
    if let Some(list) = &raw.allow {
        for c in list.get_ref() {
            if c.get_ref() != "default" && !known.classes.contains(c.get_ref().as_str()) {
                return Err(cx.err(
                    c,
                    "detect.scan.allow",
                    format!("no class named `{}`", c.get_ref()),
                ));
            }
            if !allow.contains(c.get_ref()) {
                allow.push(c.get_ref().clone());
            }
        }
    }
    Ok(ScanPolicy {
        hosts,
        ports,
        window,
        monitor,
        quarantine,
        allow,
    })
}
