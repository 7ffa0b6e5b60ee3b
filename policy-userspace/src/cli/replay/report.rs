//! What a replay found: per user and class, what passed, was limited or
//! denied; how long each user was at a limit; who would be quarantined or
//! run out of quota; by hour of the policy's day and by profile.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{Timestamp, tz::TimeZone};
use policy_common::drop_reason;
use serde::Serialize;

use super::engine::{Outcome, Step};
use crate::{policy::CompiledPolicy, wire::Direction};

/// Packets and bytes of one kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Amount {
    pub packets: u64,
    pub bytes: u64,
}

impl Amount {
    fn add(&mut self, len: u64) {
        self.packets += 1;
        self.bytes += len;
    }
}

/// What happened to some traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Tally {
    pub passed: Amount,
    pub limited: Amount,
    pub denied: Amount,
    /// Passed, but the policy would have dropped them (monitor).
    pub monitored: Amount,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, len: u64) {
        match outcome {
            Outcome::Pass | Outcome::NonIp | Outcome::Malformed { dropped: false } => {
                self.passed.add(len);
            }
            Outcome::Limited => self.limited.add(len),
            Outcome::Deny | Outcome::Malformed { dropped: true } => self.denied.add(len),
            Outcome::Monitor => self.monitored.add(len),
            Outcome::Refused | Outcome::Oversize => {}
        }
    }

    /// Share of the bytes limited or denied.
    pub(super) fn dropped_share(&self) -> f64 {
        let all = self.passed.bytes + self.limited.bytes + self.denied.bytes + self.monitored.bytes;
        if all == 0 {
            0.0
        } else {
            (self.limited.bytes + self.denied.bytes) as f64 / all as f64
        }
    }
}

/// A user's part of the report.
#[derive(Debug, Default, Clone, Serialize)]
pub(super) struct UserReport {
    /// By class name and direction (a list in JSON: keys must be strings
    /// there).
    #[serde(serialize_with = "class_rows")]
    pub classes: BTreeMap<(String, &'static str), Tally>,
    /// Seconds of the capture in which at least one of the user's packets
    /// was limited.
    pub seconds_at_limit: u64,
    /// Drops by reason (`deny_rule`, `limit`, `quota`, `quarantine`, ...).
    pub drops_by_reason: BTreeMap<&'static str, u64>,
}

impl UserReport {
    pub(super) fn total(&self) -> Tally {
        let mut t = Tally::default();
        for c in self.classes.values() {
            t.passed.packets += c.passed.packets;
            t.passed.bytes += c.passed.bytes;
            t.limited.packets += c.limited.packets;
            t.limited.bytes += c.limited.bytes;
            t.denied.packets += c.denied.packets;
            t.denied.bytes += c.denied.bytes;
            t.monitored.packets += c.monitored.packets;
            t.monitored.bytes += c.monitored.bytes;
        }
        t
    }

    pub(super) fn quarantined(&self) -> bool {
        self.drops_by_reason.contains_key("quarantine")
    }

    pub(super) fn hit_quota(&self) -> bool {
        self.drops_by_reason.contains_key("quota")
    }
}

/// One hour of the policy's day.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Hour {
    /// Its start in the policy's time zone, `YYYY-MM-DD HH:00`.
    pub hour: String,
    /// The profiles in force during it.
    pub profiles: BTreeSet<String>,
    pub tally: Tally,
}

/// A replay's findings.
#[derive(Debug, Default, Serialize)]
pub(super) struct Report {
    pub packets: u64,
    /// Of which the test run refused (too short) or could not take (longer
    /// than a test run's page).
    pub refused: u64,
    pub oversize: u64,
    pub disagreements: u64,
    /// The capture's first and last timestamps (Unix ns) and its span.
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub users: BTreeMap<String, UserReport>,
    /// By their start; a list in time order in JSON.
    #[serde(serialize_with = "values")]
    pub hours: BTreeMap<i64, Hour>,
    pub profiles: BTreeMap<String, Tally>,
    #[serde(skip)]
    limited_seconds: BTreeMap<u32, BTreeSet<u64>>,
    #[serde(skip)]
    hour_cache: Option<(u64, i64, String)>,
}

fn class_rows<S: serde::Serializer>(
    classes: &BTreeMap<(String, &'static str), Tally>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        class: &'a str,
        direction: &'a str,
        #[serde(flatten)]
        tally: &'a Tally,
    }
    s.collect_seq(classes.iter().map(|((class, direction), tally)| Row {
        class,
        direction,
        tally,
    }))
}

fn values<S: serde::Serializer, K, V: Serialize>(
    map: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.values())
}

pub(super) fn reason_name(outcome: Outcome, reason: u8) -> &'static str {
    match (outcome, reason) {
        (Outcome::Malformed { .. }, _) | (_, drop_reason::MALFORMED) => "malformed",
        (_, drop_reason::SPOOFED) => "spoofed",
        (_, drop_reason::QUARANTINE) => "quarantine",
        (_, drop_reason::QUOTA) => "quota",
        (_, drop_reason::CLASS_LIMIT) => "limit_class",
        (Outcome::Limited, _) => "limit",
        (Outcome::Deny, _) => "deny_rule",
        (Outcome::Monitor, _) => "monitor",
        _ => "-",
    }
}

impl Report {
    pub(super) fn add(&mut self, policy: &CompiledPolicy, tz: &TimeZone, s: &Step) {
        self.packets += 1;
        self.first_ns.get_or_insert(s.ts_ns);
        self.last_ns = Some(self.last_ns.unwrap_or(0).max(s.ts_ns));
        match s.outcome {
            Outcome::Refused => {
                self.refused += 1;
                return;
            }
            Outcome::Oversize => {
                self.oversize += 1;
                return;
            }
            _ => {}
        }
        if !s.agrees {
            self.disagreements += 1;
        }
        let user = name(policy, s.user);
        let class = policy
            .classes
            .get(s.class as usize)
            .map_or("?", String::as_str);
        let u = self.users.entry(user.to_owned()).or_default();
        u.classes
            .entry((class.to_owned(), Direction::from_wire(s.dir).as_str()))
            .or_default()
            .add(s.outcome, s.len);
        if matches!(s.outcome, Outcome::Deny | Outcome::Limited) {
            *u.drops_by_reason
                .entry(reason_name(s.outcome, s.reason))
                .or_default() += 1;
        }
        if s.outcome == Outcome::Limited {
            self.limited_seconds
                .entry(s.user)
                .or_default()
                .insert(s.ts_ns / 1_000_000_000);
        }
        let profile = policy
            .profiles
            .get(s.profile)
            .map_or("?", String::as_str)
            .to_owned();
        self.profiles
            .entry(profile.clone())
            .or_default()
            .add(s.outcome, s.len);
        let (start, label) = self.hour_of(s.ts_ns, tz);
        let hour = self.hours.entry(start).or_insert_with(|| Hour {
            hour: label,
            profiles: BTreeSet::new(),
            tally: Tally::default(),
        });
        hour.profiles.insert(profile);
        hour.tally.add(s.outcome, s.len);
    }

    /// The hour `ts_ns` falls in, in `tz`: its start (Unix seconds) and
    /// label; worked out once per second of capture.
    fn hour_of(&mut self, ts_ns: u64, tz: &TimeZone) -> (i64, String) {
        let second = ts_ns / 1_000_000_000;
        if let Some((s, start, label)) = &self.hour_cache
            && *s == second
        {
            return (*start, label.clone());
        }
        let at = Timestamp::from_second(second as i64).unwrap_or(Timestamp::UNIX_EPOCH);
        let zoned = at.to_zoned_datetime(tz.clone());
        // The local hour began this many seconds ago, whatever the zone's
        // offset (some are half or quarter hours).
        let into = i64::from(zoned.minute()) * 60 + i64::from(zoned.second());
        let start = second as i64 - into;
        let label = format!("{} {:02}:00", zoned.date(), zoned.hour());
        self.hour_cache = Some((second, start, label.clone()));
        (start, label)
    }

    /// Done: the seconds at a limit are counted.
    pub(super) fn finish(&mut self, policy: &CompiledPolicy) {
        for (user, seconds) in std::mem::take(&mut self.limited_seconds) {
            if let Some(u) = self.users.get_mut(name(policy, user)) {
                u.seconds_at_limit = seconds.len() as u64;
            }
        }
    }
}

/// The user's name (id 0 is `unidentified`).
pub(super) fn name(policy: &CompiledPolicy, user: u32) -> &str {
    policy
        .users
        .get(user as usize)
        .map_or("?", |u| u.name.as_str())
}
