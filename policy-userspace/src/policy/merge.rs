//! Layering: `--policy state.toml --policy agency.toml`. Later files may
//! refer to what earlier ones define and add their own; every file's
//! actions are ceilings for every user (see `ceiling`), and where two files
//! disagree the more restrictive setting wins: deny beats limit beats
//! monitor beats allow, the smaller rate and burst win, `enforce` beats
//! `monitor`, `drop` beats `pass` for malformed packets, the shorter event
//! interval wins, and a user's identifiers are the union. What cannot be
//! ordered (two time zones, two definitions of one class or schedule, one
//! identifier for two users; overlapping addresses are `claims`') is an
//! error naming both files.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{
    PolicyError, ceiling,
    compile::{default_burst, params},
    types::*,
    validate::week_ranges,
};

/// Where each effective setting came from: description -> (value, file).
pub type Provenance = BTreeMap<String, (String, PathBuf)>;

/// A policy made of layers, and where each effective setting came from.
#[derive(Debug, Clone)]
pub struct Layered {
    pub policy: Policy,
    pub provenance: Provenance,
    /// Each file as validated (against the ones before it), base first:
    /// what `check` and `explain` show side by side.
    pub layers: Vec<(PathBuf, Policy)>,
}

fn rank(a: &ActionSpec) -> u8 {
    match a {
        ActionSpec::Allow => 0,
        ActionSpec::Monitor => 1,
        ActionSpec::Limit(_) => 2,
        ActionSpec::Deny => 3,
    }
}

fn burst(l: &LimitSpec, rate: Rate) -> u64 {
    l.burst.unwrap_or_else(|| default_burst(rate))
}

/// The stricter of two connection rates: the fewer connections per second
/// (the larger cost), and the smaller burst. A limit without one is the
/// looser.
fn stricter_conn(x: Option<ConnLimit>, y: Option<ConnLimit>) -> Option<ConnLimit> {
    match (x, y) {
        (Some(a), Some(b)) => {
            let slower = if b.cost_ns() > a.cost_ns() { b } else { a };
            Some(ConnLimit {
                burst: Some(a.burst_or_default().min(b.burst_or_default())),
                ..slower
            })
        }
        (a, b) => a.or(b),
    }
}

/// The more restrictive of two actions, and whether it is `b` (so the
/// provenance can say which file it came from).
pub fn stricter(a: &ActionSpec, b: &ActionSpec) -> Result<(ActionSpec, bool), String> {
    match (a, b) {
        (ActionSpec::Limit(x), ActionSpec::Limit(y)) => {
            let (rate, burst) = match (x.rate, y.rate) {
                (Some(p @ Rate::BytesPerSec(pb)), Some(q @ Rate::BytesPerSec(qb))) => (
                    Some(Rate::BytesPerSec(pb.min(qb))),
                    Some(burst(x, p).min(burst(y, q))),
                ),
                (Some(p @ Rate::PacketsPerSec(pn)), Some(q @ Rate::PacketsPerSec(qn))) => (
                    Some(Rate::PacketsPerSec(pn.min(qn))),
                    Some(burst(x, p).min(burst(y, q))),
                ),
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "`{a}` and `{b}` limit in different units (bits and packets); they cannot be ordered"
                    ));
                }
                // A limit on connections alone has no rate: the other's
                // rate is the stricter.
                (Some(_), None) => (x.rate, x.burst),
                (None, _) => (y.rate, y.burst),
            };
            let merged = LimitSpec {
                rate,
                burst,
                conn: stricter_conn(x.conn, y.conn),
                // Marking instead of dropping is the gentler choice.
                ecn: if x.ecn == Some(false) || y.ecn == Some(false) {
                    Some(false)
                } else {
                    x.ecn.or(y.ecn)
                },
                monitor_only: x.monitor_only && y.monitor_only,
                // Queueing is gentler than policing: keep it only if both ask.
                htb_class: if x.htb_class == y.htb_class {
                    x.htb_class
                } else {
                    None
                },
            };
            // Compared as the kernel sees them (a limit without `burst` has
            // the default one), so the file credited is the one whose limit
            // is enforced, and it keeps the spelling it was written in.
            let merged = ActionSpec::Limit(merged);
            let enforced = params(&merged);
            if enforced == params(a) {
                Ok((*a, false))
            } else if enforced == params(b) {
                Ok((*b, true))
            } else {
                Ok((merged, true))
            }
        }
        _ if rank(b) > rank(a) => Ok((*b, true)),
        _ => Ok((*a, false)),
    }
}

struct Merger<'a> {
    base_paths: &'a [PathBuf],
    path: &'a Path,
    provenance: Provenance,
}

/// What the provenance notes: one place per kind of setting, so the first
/// layer and every later one describe it in the same words.
impl Merger<'_> {
    fn conflict(&self, message: String) -> PolicyError {
        PolicyError::Conflict {
            earlier: self.base_paths.to_vec(),
            path: self.path.to_owned(),
            message,
        }
    }

    fn note(&mut self, what: String, value: String) {
        self.provenance.insert(what, (value, self.path.to_owned()));
    }

    /// A quota, under its subject and class; several are numbered.
    fn note_quota(&mut self, q: &super::Quota) {
        let who = match &q.subject {
            Subject::User(u) => format!("user {u}"),
            Subject::Group(g) => format!("group {g}"),
            _ => "everyone".to_owned(),
        };
        let base = format!("quota {who} {}", q.class.as_deref().unwrap_or("all"));
        let key = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base} #{n}")
                }
            })
            .find(|k| !self.provenance.contains_key(k))
            .unwrap_or(base);
        self.note(key, format!("{}, then {}", q.describe(), q.exhausted));
    }

    fn note_scan(&mut self, scan: &ScanPolicy) {
        self.note("detect.scan".into(), describe_scan(scan));
    }

    fn note_mode(&mut self, mode: Mode) {
        self.note("settings.mode".into(), format!("{mode:?}").to_lowercase());
    }

    fn note_malformed(&mut self, drop: bool) {
        self.note(
            "settings.malformed".into(),
            if drop { "drop" } else { "pass" }.into(),
        );
    }

    fn note_event_interval(&mut self, interval: std::time::Duration) {
        self.note("settings.event_interval".into(), format!("{interval:?}"));
    }

    fn note_timezone(&mut self, name: &str) {
        self.note("settings.timezone".into(), name.to_owned());
    }

    fn note_schedule(&mut self, sch: &Schedule) {
        self.note(
            format!("schedule {}", sch.name),
            describe_window(&sch.window),
        );
    }

    fn note_net(&mut self, set: &str, net: impl std::fmt::Display) {
        self.note(format!("set {set} contains {net}"), "yes".into());
    }

    fn note_domain(&mut self, set: &str, domain: &str) {
        self.note(format!("set {set} contains domain {domain}"), "yes".into());
    }

    fn note_class(&mut self, name: &str) {
        self.note(format!("class {name}"), "defined".into());
    }

    fn note_identifier(&mut self, user: &str, id: &str) {
        self.note(format!("user {user} is identified by {id}"), "yes".into());
    }

    fn note_user_action(&mut self, user: &str, a: &ActionSpec) {
        self.note(format!("user {user} action"), a.to_string());
    }

    fn note_unidentified(&mut self, a: &ActionSpec) {
        self.note("unidentified action".into(), a.to_string());
    }

    fn note_unid_buckets(&mut self, b: &UnidBuckets) {
        self.note("unidentified buckets".into(), b.describe());
    }

    /// A user the earlier layers do not have: every identifier, and the
    /// action.
    fn note_user(&mut self, u: &User) {
        for id in identifiers(u) {
            self.note_identifier(&u.name, &id);
        }
        if let Some(a) = &u.action {
            self.note_user_action(&u.name, a);
        }
    }
}

/// Records every setting of the first layer.
pub(super) fn first(policy: Policy, path: &Path) -> Layered {
    let mut m = Merger {
        base_paths: &[],
        path,
        provenance: Provenance::new(),
    };
    let s = &policy.settings;
    m.note_mode(s.mode);
    m.note_malformed(s.malformed_drop);
    m.note_event_interval(s.event_interval);
    m.note_timezone(&s.timezone_name);
    for sch in &policy.schedules {
        m.note_schedule(sch);
    }
    for set in &policy.sets {
        for net in &set.nets {
            m.note_net(&set.name, net);
        }
    }
    for c in &policy.classes {
        m.note_class(&c.name);
    }
    for u in &policy.users {
        m.note_user(u);
    }
    if let Some(a) = &policy.unidentified {
        m.note_unidentified(a);
    }
    if let Some(scan) = &policy.scan {
        m.note_scan(scan);
    }
    for q in &policy.quotas {
        m.note_quota(q);
    }
    m.note_unid_buckets(&policy.unidentified_buckets);
    for r in &policy.rules {
        for (p, a) in policy.profiles.iter().zip(&r.actions) {
            m.note(rule_key(r, p), a.to_string());
        }
    }
    Layered {
        provenance: m.provenance,
        layers: vec![(path.to_owned(), policy.clone())],
        policy,
    }
}

/// The stricter of two `[detect.scan]`s, setting by setting: the lower
/// threshold (one set in either file counts), the longer window (more is
/// counted), the longer quarantine, quarantining over reporting, and only
/// the classes both files allow during a quarantine.
fn stricter_scan(a: &ScanPolicy, b: &ScanPolicy) -> ScanPolicy {
    let lower = |x: Option<u32>, y: Option<u32>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    ScanPolicy {
        hosts: lower(a.hosts, b.hosts),
        ports: lower(a.ports, b.ports),
        window: a.window.max(b.window),
        monitor: a.monitor && b.monitor,
        quarantine: a.quarantine.max(b.quarantine),
        allow: a
            .allow
            .iter()
            .filter(|c| b.allow.contains(c))
            .cloned()
            .collect(),
    }
}

fn describe_scan(s: &ScanPolicy) -> String {
    let n = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "hosts {} ports {} in {:?}, {} for {:?}, allow [{}]",
        n(s.hosts),
        n(s.ports),
        s.window,
        if s.monitor { "report" } else { "quarantine" },
        s.quarantine,
        s.allow.join(", ")
    )
}

fn describe_window(w: &Window) -> String {
    let days: Vec<&str> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .zip(w.days)
        .filter_map(|(d, on)| on.then_some(*d))
        .collect();
    format!(
        "{} {:02}:{:02}-{:02}:{:02}",
        days.join(","),
        w.start / 60,
        w.start % 60,
        w.end / 60,
        w.end % 60
    )
}

fn identifiers(u: &User) -> Vec<String> {
    u.nets
        .iter()
        .map(ToString::to_string)
        .chain(u.macs.iter().map(|m| {
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        }))
        .chain(u.uids.iter().map(|id| format!("uid {id}")))
        .chain(u.cgroups.iter().map(|c| format!("cgroup {}", c.display())))
        .collect()
}

fn subject_name(s: &Subject) -> String {
    match s {
        Subject::User(u) => format!("user {u}"),
        Subject::Group(g) => format!("group {g}"),
        Subject::Everyone => "everyone".into(),
        Subject::Aggregate => "the class as a whole".into(),
    }
}

fn rule_key(r: &Rule, profile: &str) -> String {
    provenance_key(&r.class, &r.subject, profile)
}

/// The provenance entry of the rule for (`class`, `subject`) in `profile`.
pub fn provenance_key(class: &str, subject: &Subject, profile: &str) -> String {
    format!("rule {class} for {}, {profile}", subject_name(subject))
}

/// Appends the items of `from` that `into` lacks; returns them.
fn union<'a, T: PartialEq + Clone>(into: &mut Vec<T>, from: &'a [T]) -> Vec<&'a T> {
    let mut added = Vec::new();
    for x in from {
        if !into.contains(x) {
            into.push(x.clone());
            added.push(x);
        }
    }
    added
}

/// Adds `layer` (the file at `path`, validated against `base`) on top of
/// `base` (from `base_paths`).
pub(super) fn add(
    base: Layered,
    base_paths: &[PathBuf],
    layer: Policy,
    path: &Path,
) -> Result<Layered, PolicyError> {
    let mut m = Merger {
        base_paths,
        path,
        provenance: base.provenance,
    };
    let mut p = base.policy;
    // The base as it was: its rules and blankets, for the ceilings.
    let before = p.clone();
    let mut layers = base.layers;
    layers.push((path.to_owned(), layer.clone()));

    if let Some(pu) = layer.per_user {
        p.per_user = Some(pu);
        m.note("metrics.per_user".into(), format!("{pu:?}").to_lowercase());
    }
    m.settings(&mut p.settings, &layer.settings)?;
    m.schedules(&mut p.schedules, &layer.schedules)?;
    // The layer's profile list is the base's plus its new schedules; rules
    // of earlier files take their default action in the new profiles.
    p.profiles.clone_from(&layer.profiles);
    m.sets(&mut p.sets, &layer.sets)?;
    m.names(&mut p.names, &layer.names);
    m.classes(&mut p.classes, &layer.classes)?;
    for u in &layer.users {
        m.user(&mut p.users, u)?;
    }
    if let Some(a) = &layer.unidentified {
        let merged = m.stricter_noted(p.unidentified.as_ref(), a, "unidentified", |m, a| {
            m.note_unidentified(a);
        })?;
        p.unidentified = Some(merged);
    }
    if let Some(l) = &layer.scan {
        let merged = match &p.scan {
            Some(b) => stricter_scan(b, l),
            None => l.clone(),
        };
        if p.scan.as_ref() != Some(&merged) {
            m.note_scan(&merged);
        }
        p.scan = Some(merged);
    }
    // Every layer's quotas apply, each its own budget: a later layer can add
    // one, never lift or loosen an earlier one.
    for q in &layer.quotas {
        m.note_quota(q);
        p.quotas.push(q.clone());
    }
    let buckets = p.unidentified_buckets.stricter(layer.unidentified_buckets);
    if buckets != p.unidentified_buckets {
        p.unidentified_buckets = buckets;
        m.note_unid_buckets(&buckets);
    }

    // Rules: each file's effective action is a ceiling (see `ceiling`).
    p.rules = ceiling::combine(&before, &layer, &p.users, p.profiles.len())
        .map_err(|msg| m.conflict(msg))?;
    note_rules(&mut m.provenance, &layers, &p);
    Ok(Layered {
        policy: p,
        provenance: m.provenance,
        layers,
    })
}

/// How a later layer changes what the earlier ones made, noting each change.
impl Merger<'_> {
    /// Only what the layer gave counts.
    fn settings(&mut self, s: &mut Settings, l: &Settings) -> Result<(), PolicyError> {
        if l.given.mode && l.mode == Mode::Enforce && s.mode == Mode::Monitor {
            s.mode = Mode::Enforce;
            self.note_mode(Mode::Enforce);
        }
        if l.given.malformed && l.malformed_drop && !s.malformed_drop {
            s.malformed_drop = true;
            self.note_malformed(true);
        }
        if l.given.event_interval
            && (!s.given.event_interval || l.event_interval < s.event_interval)
        {
            s.event_interval = l.event_interval;
            s.given.event_interval = true;
            self.note_event_interval(l.event_interval);
        }
        if l.given.timezone {
            if s.given.timezone && s.timezone_name != l.timezone_name {
                return Err(self.conflict(format!(
                    "settings.timezone is `{}` here but `{}` in an earlier file",
                    l.timezone_name, s.timezone_name
                )));
            }
            s.timezone = l.timezone.clone();
            s.timezone_name.clone_from(&l.timezone_name);
            s.given.timezone = true;
            self.note_timezone(&l.timezone_name);
        }
        Ok(())
    }

    /// `[names]`: the larger of each field given wins (a later layer can
    /// keep learned addresses longer, keep more of them, or widen their
    /// scope to everyone; never the reverse), so what a domain set
    /// classifies only grows.
    fn names(&mut self, s: &mut NamesSettings, l: &NamesSettings) {
        fn larger<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        }
        let before = *s;
        s.ttl_floor = larger(s.ttl_floor, l.ttl_floor);
        s.ttl_cap = larger(s.ttl_cap, l.ttl_cap);
        s.addresses_per_name = larger(s.addresses_per_name, l.addresses_per_name);
        s.max_learned = larger(s.max_learned, l.max_learned);
        s.scope = larger(s.scope, l.scope);
        if *s != before {
            self.note("names".into(), format!("{s:?}"));
        }
    }

    /// New schedules join; a name defined twice must be the same.
    fn schedules(&mut self, all: &mut Vec<Schedule>, new: &[Schedule]) -> Result<(), PolicyError> {
        for sch in new {
            match all.iter().find(|x| x.name == sch.name) {
                Some(existing) if existing != sch => {
                    return Err(self.conflict(format!(
                        "schedule `{}` differs from an earlier file's",
                        sch.name
                    )));
                }
                Some(_) => {}
                None => {
                    for other in all.iter() {
                        let (a, b) = (week_ranges(&sch.window), week_ranges(&other.window));
                        if a.iter().any(|x| b.iter().any(|y| x.0 < y.1 && y.0 < x.1)) {
                            return Err(self.conflict(format!(
                                "schedule `{}` overlaps schedule `{}` of an earlier file",
                                sch.name, other.name
                            )));
                        }
                    }
                    self.note_schedule(sch);
                    all.push(sch.clone());
                }
            }
        }
        Ok(())
    }

    /// The union of prefixes.
    fn sets(&mut self, all: &mut Vec<Set>, new: &[Set]) -> Result<(), PolicyError> {
        for set in new {
            let i = match all.iter().position(|x| x.name == set.name) {
                Some(i) => i,
                None => {
                    all.push(Set {
                        name: set.name.clone(),
                        nets: Vec::new(),
                        domains: Vec::new(),
                    });
                    all.len() - 1
                }
            };
            for net in union(&mut all[i].nets, &set.nets) {
                self.note_net(&set.name, net);
            }
            for d in &set.domains {
                if !all[i].domains.contains(d) {
                    all[i].domains.push(d.clone());
                    self.note_domain(&set.name, d);
                }
            }
        }
        if all.len() > policy_common::MAX_SETS as usize {
            return Err(self.conflict(format!(
                "together the files define more than {} sets",
                policy_common::MAX_SETS
            )));
        }
        Ok(())
    }

    /// New classes are tried after the earlier files' (first match wins); a
    /// class defined twice must be the same.
    fn classes(&mut self, all: &mut Vec<Class>, new: &[Class]) -> Result<(), PolicyError> {
        for c in new {
            match all.iter().find(|x| x.name == c.name) {
                Some(existing) if existing != c => {
                    return Err(
                        self.conflict(format!("class `{}` differs from an earlier file's", c.name))
                    );
                }
                Some(_) => {}
                None => {
                    if c.elephant_bytes.is_some() && all.iter().any(|x| x.elephant_bytes.is_some())
                    {
                        return Err(self.conflict(format!(
                            "class `{}` takes elephant flows, but an earlier file's class already does",
                            c.name
                        )));
                    }
                    self.note_class(&c.name);
                    all.push(c.clone());
                }
            }
        }
        Ok(())
    }

    /// Identifiers are the union; an identifier names one user.
    fn user(&mut self, all: &mut Vec<User>, u: &User) -> Result<(), PolicyError> {
        for other in all.iter().filter(|x| x.name != u.name) {
            let theirs = identifiers(other);
            if let Some(id) = identifiers(u).into_iter().find(|id| theirs.contains(id)) {
                return Err(self.conflict(format!(
                    "{id} belongs to user `{}` here but to user `{}` in an earlier file",
                    u.name, other.name
                )));
            }
        }
        let Some(existing) = all.iter_mut().find(|x| x.name == u.name) else {
            self.note_user(u);
            all.push(u.clone());
            return Ok(());
        };
        match (&existing.group, &u.group) {
            (Some(a), Some(b)) if a != b => {
                return Err(self.conflict(format!(
                    "user `{}` is in group `{b}` here but in group `{a}` in an earlier file",
                    u.name
                )));
            }
            (None, Some(b)) => existing.group = Some(b.clone()),
            _ => {}
        }
        let before = identifiers(existing);
        for id in identifiers(u).into_iter().filter(|id| !before.contains(id)) {
            self.note_identifier(&u.name, &id);
        }
        union(&mut existing.nets, &u.nets);
        union(&mut existing.macs, &u.macs);
        union(&mut existing.uids, &u.uids);
        union(&mut existing.cgroups, &u.cgroups);
        existing.spoof_check |= u.spoof_check;
        if let Some(a) = &u.action {
            let who = format!("user `{}`", u.name);
            let merged = self.stricter_noted(existing.action.as_ref(), a, &who, |m, a| {
                m.note_user_action(&u.name, a);
            })?;
            existing.action = Some(merged);
        }
        Ok(())
    }

    /// The stricter of `current` and the layer's `a` (a conflict for `who`
    /// if they cannot be ordered), noted with `note` when it is the layer's.
    fn stricter_noted(
        &mut self,
        current: Option<&ActionSpec>,
        a: &ActionSpec,
        who: &str,
        note: impl FnOnce(&mut Self, &ActionSpec),
    ) -> Result<ActionSpec, PolicyError> {
        let (merged, from_layer) = match current {
            Some(e) => stricter(e, a).map_err(|msg| self.conflict(format!("{who}: {msg}")))?,
            None => (*a, true),
        };
        if from_layer {
            note(self, &merged);
        }
        Ok(merged)
    }
}

/// Records, for every rule of the combined policy and profile, its action
/// and the file whose ceiling it is (the first file that is that strict).
fn note_rules(provenance: &mut Provenance, layers: &[(PathBuf, Policy)], p: &Policy) {
    provenance.retain(|k, _| !k.starts_with("rule "));
    let ceilings = ceiling::Ceilings::new(layers, &p.users);
    for r in &p.rules {
        for (i, prof) in p.profiles.iter().enumerate() {
            let Some(v) = ceilings.verdicts(&r.subject, &r.class, i) else {
                continue;
            };
            provenance.insert(
                rule_key(r, prof),
                (r.actions[i].to_string(), v.layers[v.from].0.to_owned()),
            );
        }
    }
}
