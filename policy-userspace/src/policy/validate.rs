//! From the on-disk schema to the typed, checked [`Policy`]. Every error
//! points at the offending value.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::{IpNet, Ipv4Net};
use policy_common::{
    MAX_CLASS_RULES, MAX_CLASSES, MAX_MACS_PER_BINDING, MAX_NAME_LEN, MAX_SETS, cast,
};
use toml::Spanned;

use super::{
    PolicyError,
    error::Location,
    file::{self, PortSpec, ProtoSpec},
    types::*,
    units::{self, ActionSpec},
};
use crate::wire::Proto;

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn err<T>(
        &self,
        value: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::invalid(self.path, self.source, value.span(), field, message)
    }

    fn action(
        &self,
        value: &Spanned<String>,
        field: impl Into<String>,
    ) -> Result<ActionSpec, PolicyError> {
        units::parse_action(value.get_ref()).map_err(|e| self.err(value, field, e.to_string()))
    }

    fn name(
        &self,
        value: &Spanned<String>,
        field: impl Into<String>,
        what: &str,
    ) -> Result<String, PolicyError> {
        let name = value.get_ref();
        if valid_name(name) {
            Ok(name.clone())
        } else {
            Err(self.err(
                value,
                field,
                format!(
                    "`{name}` is not a valid {what} name (1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ - .)"
                ),
            ))
        }
    }

    fn choice<T: Copy>(
        &self,
        value: &Spanned<String>,
        field: &str,
        choices: &[(&str, T)],
    ) -> Result<T, PolicyError> {
        choices
            .iter()
            .find(|(name, _)| name == value.get_ref())
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
                self.err(
                    value,
                    field,
                    format!(
                        "unknown value `{}`, expected {}",
                        value.get_ref(),
                        names.join(" or ")
                    ),
                )
            })
    }
}

/// Names are ASCII, and at most [`MAX_NAME_LEN`] bytes: a user's or class's
/// name must fit its slot in the pinned id allocation.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parses `10.0.0.2`, `2001:db8::2` or a CIDR with no host bits set. An
/// IPv4-mapped address or prefix (`::ffff:10.0.0.2`, `::ffff:10.0.0.0/120`)
/// comes back as the IPv4 one: the kernel keeps IPv4 in the mapped form, so
/// the two spellings are one address and must compare equal everywhere.
pub(super) fn parse_net(text: &str) -> Result<IpNet, String> {
    let net = if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not a valid CIDR (like 10.1.0.0/24)"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        net
    } else {
        text.parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{text}` is not a valid IP address or CIDR"))?
    };
    Ok(canonical(net))
}

/// `net` with IPv4-mapped IPv6 (`::ffff:0:0/96` and inside) as IPv4.
pub(super) fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// How `net` was written, if not as it prints: for messages.
pub(super) fn spelled(net: &IpNet, text: &str) -> String {
    let plain = if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    };
    if text == plain || text == net.to_string() {
        String::new()
    } else {
        format!(" (written `{text}`)")
    }
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("`{text}` is not a MAC address (like 02:00:00:00:00:01)");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "`{text}` is a multicast MAC address; it cannot identify a user"
        ));
    }
    Ok(mac)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like `500ms` or `2s`)");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
}

fn port_range(spec: &PortSpec) -> Result<(u16, u16), String> {
    let port = |n: i64| u16::try_from(n).ok().filter(|p| *p != 0);
    match spec {
        PortSpec::Port(n) => port(*n)
            .map(|p| (p, p))
            .ok_or_else(|| format!("`{n}` is not a port (1 to 65535)")),
        PortSpec::Range(text) => {
            let bad = || format!("`{text}` is not a port range (like \"6000-6010\")");
            let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
            let lo = lo.trim().parse().ok().and_then(port).ok_or_else(bad)?;
            let hi = hi.trim().parse().ok().and_then(port).ok_or_else(bad)?;
            if lo > hi {
                return Err(format!("`{text}`: the range is empty (start above end)"));
            }
            Ok((lo, hi))
        }
    }
}

fn proto(spec: &ProtoSpec) -> Result<u8, String> {
    match spec {
        ProtoSpec::Number(n) => {
            u8::try_from(*n).map_err(|_| format!("`{n}` is not an IP protocol number (0 to 255)"))
        }
        ProtoSpec::Name(name) => Proto::from_name(name).map(|p| p.0).ok_or_else(|| {
            format!(
                "unknown protocol `{name}`, expected `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or a number"
            )
        }),
    }
}

/// Validates one file. `base` is what earlier layers defined: this file may
/// refer to its sets, classes, users, groups and schedules.
pub(super) fn validate(
    path: &Path,
    source: &str,
    raw: file::PolicyFile,
    base: Option<&Policy>,
) -> Result<Policy, PolicyError> {
    let cx = Ctx { path, source };
    let settings = settings(&cx, raw.settings.as_ref())?;
    let sets = sets(&cx, &raw.sets)?;
    let known_sets: Vec<String> = sets
        .iter()
        .map(|s| s.name.clone())
        .chain(
            base.into_iter()
                .flat_map(|b| b.sets.iter().map(|s| s.name.clone())),
        )
        .collect();
    let classes = classes(&cx, &raw.classes, &known_sets)?;
    let users = users(&cx, &raw.users)?;
    let unidentified = match &raw.unidentified {
        Some(section) => Some(cx.action(&section.action, "unidentified.action")?),
        None => None,
    };
    let per_user = match raw.metrics.as_ref().and_then(|m| m.per_user.as_ref()) {
        Some(v) => Some(parse_per_user(v.get_ref()).map_err(|m| cx.err(v, "metrics.per_user", m))?),
        None => None,
    };
    let schedules = schedules(&cx, &raw.schedule)?;
    // Profiles: the earlier layers' first, then this file's new schedules.
    let mut profiles: Vec<String> =
        base.map_or_else(|| vec![OFF_HOURS.to_owned()], |b| b.profiles.clone());
    for s in &schedules {
        if !profiles.contains(&s.name) {
            profiles.push(s.name.clone());
        }
    }
    let all_users = || {
        users
            .iter()
            .chain(base.into_iter().flat_map(|b| b.users.iter()))
    };
    let known = Known {
        classes: classes
            .iter()
            .map(|c| c.name.as_str())
            .chain(
                base.into_iter()
                    .flat_map(|b| b.classes.iter().map(|c| c.name.as_str())),
            )
            .collect(),
        users: all_users().map(|u| u.name.as_str()).collect(),
        groups: all_users().filter_map(|u| u.group.as_deref()).collect(),
    };
    let rules = rules(&cx, &raw.rules, &known, &profiles)?;
    Ok(Policy {
        settings,
        per_user,
        schedules,
        profiles,
        sets,
        classes,
        users,
        unidentified,
        rules,
    })
}

fn settings(cx: &Ctx<'_>, raw: Option<&file::SettingsSection>) -> Result<Settings, PolicyError> {
    let mut s = Settings::default();
    let Some(raw) = raw else {
        return Ok(s);
    };
    s.given = SettingsGiven {
        mode: raw.mode.is_some(),
        malformed: raw.malformed.is_some(),
        event_interval: raw.event_interval.is_some(),
        timezone: raw.timezone.is_some(),
    };
    if let Some(mode) = &raw.mode {
        s.mode = cx.choice(
            mode,
            "settings.mode",
            &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)],
        )?;
    }
    if let Some(m) = &raw.malformed {
        s.malformed_drop =
            cx.choice(m, "settings.malformed", &[("pass", false), ("drop", true)])?;
    }
    if let Some(tz) = &raw.timezone {
        s.timezone = jiff::tz::TimeZone::get(tz.get_ref()).map_err(|_| {
            cx.err(
                tz,
                "settings.timezone",
                format!(
                    "unknown time zone `{}`, expected an IANA name like `America/New_York`",
                    tz.get_ref()
                ),
            )
        })?;
        s.timezone_name.clone_from(tz.get_ref());
    }
    if let Some(i) = &raw.event_interval {
        s.event_interval =
            parse_duration(i.get_ref()).map_err(|m| cx.err(i, "settings.event_interval", m))?;
    }
    Ok(s)
}

fn parse_per_user(text: &str) -> Result<PerUser, String> {
    match text {
        "all" => Ok(PerUser::All),
        "none" => Ok(PerUser::None),
        _ => text
            .strip_prefix("top:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(PerUser::Top)
            .ok_or_else(|| {
                format!("`{text}` is not a choice: expected `all`, `none` or `top:N` (N > 0)")
            }),
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM` as minutes after midnight; `24:00` only where `allow_24`.
fn parse_hhmm(text: &str, allow_24: bool) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a time of day (like `08:00` or `17:30`)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) if allow_24 => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// The minutes of the week a window covers, as ranges (overnight windows
/// spill into the next day; Sunday night into Monday).
pub(super) fn week_ranges(w: &Window) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let week = 7 * 1440;
    for (d, on) in w.days.iter().enumerate() {
        if !on {
            continue;
        }
        let day = d as u32 * 1440;
        let (start, end) = (u32::from(w.start), u32::from(w.end));
        if start < end {
            out.push((day + start, day + end));
        } else {
            out.push((day + start, day + 1440));
            let next = (day + 1440) % week;
            out.push((next, next + end));
        }
    }
    out
}

fn schedules(
    cx: &Ctx<'_>,
    raw: &std::collections::BTreeMap<String, Spanned<file::ScheduleEntry>>,
) -> Result<Vec<Schedule>, PolicyError> {
    let mut out: Vec<Schedule> = Vec::new();
    for (name, entry) in raw {
        let field = |f: &str| format!("schedule.{name}.{f}");
        if !valid_name(name) || name == OFF_HOURS {
            return Err(cx.err(
                entry,
                format!("schedule.{name}"),
                format!("`{name}` cannot name a schedule (`{OFF_HOURS}` is the time outside all of them)"),
            ));
        }
        if out.len() + 1 == policy_common::MAX_PROFILES {
            return Err(cx.err(
                entry,
                format!("schedule.{name}"),
                format!(
                    "at most {} schedules (plus `{OFF_HOURS}`)",
                    policy_common::MAX_PROFILES - 1
                ),
            ));
        }
        let e = entry.get_ref();
        let mut days = [false; 7];
        for (j, d) in e.days.iter().enumerate() {
            let i = DAYS.iter().position(|x| x == d.get_ref()).ok_or_else(|| {
                cx.err(
                    d,
                    field(&format!("days[{j}]")),
                    format!(
                        "`{}` is not a day: expected one of {}",
                        d.get_ref(),
                        DAYS.join(", ")
                    ),
                )
            })?;
            days[i] = true;
        }
        if !days.contains(&true) {
            return Err(cx.err(entry, field("days"), "the schedule has no days"));
        }
        let start = parse_hhmm(e.start.get_ref(), false)
            .map_err(|m| cx.err(&e.start, field("start"), m))?;
        let end = parse_hhmm(e.end.get_ref(), true).map_err(|m| cx.err(&e.end, field("end"), m))?;
        if start == end {
            return Err(cx.err(
                &e.end,
                field("end"),
                "the window is empty (start and end are equal)",
            ));
        }
        let mut holidays = std::collections::BTreeSet::new();
        for (j, h) in e.holidays.iter().enumerate() {
            let date: jiff::civil::Date = h.get_ref().parse().map_err(|_| {
                cx.err(
                    h,
                    field(&format!("holidays[{j}]")),
                    format!("`{}` is not a date (like `2026-12-25`)", h.get_ref()),
                )
            })?;
            holidays.insert(date);
        }
        let window = Window { days, start, end };
        for other in &out {
            let mine = week_ranges(&window);
            let theirs = week_ranges(&other.window);
            if mine
                .iter()
                .any(|a| theirs.iter().any(|b| a.0 < b.1 && b.0 < a.1))
            {
                return Err(cx.err(
                    entry,
                    format!("schedule.{name}"),
                    format!("its windows overlap those of schedule `{}`: a moment must have one profile", other.name),
                ));
            }
        }
        out.push(Schedule {
            name: name.clone(),
            window,
            holidays,
        });
    }
    Ok(out)
}

fn sets(
    cx: &Ctx<'_>,
    raw: &std::collections::BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<Set>, PolicyError> {
    let mut out = Vec::new();
    for (name, nets) in raw {
        let field = format!("sets.{name}");
        if !valid_name(name) {
            return Err(cx.err(nets, &field, format!("`{name}` is not a valid set name")));
        }
        if out.len() == MAX_SETS as usize {
            return Err(cx.err(nets, &field, format!("more than {MAX_SETS} sets")));
        }
        let mut parsed = Vec::with_capacity(nets.get_ref().len());
        for (i, net) in nets.get_ref().iter().enumerate() {
            parsed.push(
                parse_net(net.get_ref()).map_err(|m| cx.err(net, format!("{field}[{i}]"), m))?,
            );
        }
        out.push(Set {
            name: name.clone(),
            nets: parsed,
        });
    }
    Ok(out)
}

fn classes(
    cx: &Ctx<'_>,
    raw: &[file::ClassEntry],
    sets: &[String],
) -> Result<Vec<Class>, PolicyError> {
    let mut out: Vec<Class> = Vec::new();
    let mut kernel_rules = 0usize;
    let mut elephant_seen: Option<String> = None;
    for (i, entry) in raw.iter().enumerate() {
        let field = |f: &str| format!("class[{i}].{f}");
        let name = cx.name(&entry.name, field("name"), "class")?;
        if name == DEFAULT_CLASS {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("`{DEFAULT_CLASS}` is reserved for packets no class matches"),
            ));
        }
        if out.iter().any(|c| c.name == name) {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("class `{name}` is defined twice"),
            ));
        }
        if out.len() + 1 == MAX_CLASSES as usize {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("more than {} classes", MAX_CLASSES - 1),
            ));
        }
        let matches = match &entry.matches {
            Some(m) => {
                let m2 = class_match(cx, m, &field("match"), sets)?;
                kernel_rules += m2.remote_ports.len().max(1) * m2.user_ports.len().max(1);
                if kernel_rules > MAX_CLASS_RULES as usize {
                    return Err(cx.err(
                        m,
                        field("match"),
                        format!(
                            "the classes so far need {kernel_rules} kernel rules (one per port range \
                             combination), more than the {MAX_CLASS_RULES} the data path evaluates"
                        ),
                    ));
                }
                Some(m2)
            }
            None => None,
        };
        let elephant_bytes = match &entry.elephant {
            Some(e) => {
                if let Some(other) = &elephant_seen {
                    return Err(cx.err(
                        e,
                        field("elephant"),
                        format!(
                            "class `{other}` already receives elephant flows; only one class may"
                        ),
                    ));
                }
                elephant_seen = Some(name.clone());
                Some(
                    units::parse_size(e.get_ref())
                        .map_err(|m| cx.err(e, field("elephant"), m.to_string()))?,
                )
            }
            None => None,
        };
        if matches.is_none() && elephant_bytes.is_none() {
            return Err(cx.err(
                &entry.name,
                field("match"),
                format!("class `{name}` has neither `match` nor `elephant`, so no packet could ever be in it"),
            ));
        }
        out.push(Class {
            name,
            matches,
            elephant_bytes,
        });
    }
    Ok(out)
}

fn class_match(
    cx: &Ctx<'_>,
    m: &Spanned<file::MatchEntry>,
    field: &str,
    sets: &[String],
) -> Result<Match, PolicyError> {
    let raw = m.get_ref();
    let mut out = Match::default();
    if let Some(p) = &raw.proto {
        out.proto = Some(proto(p.get_ref()).map_err(|e| cx.err(p, format!("{field}.proto"), e))?);
    }
    for (list, dest, name) in [
        (&raw.ports, &mut out.remote_ports, "ports"),
        (&raw.user_ports, &mut out.user_ports, "user_ports"),
    ] {
        for (j, p) in list.iter().enumerate() {
            dest.push(
                port_range(p.get_ref())
                    .map_err(|e| cx.err(p, format!("{field}.{name}[{j}]"), e))?,
            );
        }
    }
    if (!out.remote_ports.is_empty() || !out.user_ports.is_empty())
        && !matches!(out.proto, Some(6 | 17 | 132))
    {
        return Err(cx.err(
            m,
            format!("{field}.ports"),
            "ports need `proto` set to `tcp`, `udp` or `sctp`",
        ));
    }
    for (j, s) in raw.sets.iter().enumerate() {
        if !sets.contains(s.get_ref()) {
            return Err(cx.err(
                s,
                format!("{field}.sets[{j}]"),
                format!("no set named `{}` in [sets]", s.get_ref()),
            ));
        }
        if !out.sets.contains(s.get_ref()) {
            out.sets.push(s.get_ref().clone());
        }
    }
    if let Some(l2) = &raw.l2 {
        out.l2_cast = Some(cx.choice(
            l2,
            &format!("{field}.l2"),
            &[
                ("broadcast", cast::BROADCAST),
                ("multicast", cast::MULTICAST),
                ("broadcast-or-multicast", cast::BROADCAST | cast::MULTICAST),
            ],
        )?);
    }
    if let Some(t) = &raw.icmp_type {
        if !matches!(out.proto, Some(1 | 58)) {
            return Err(cx.err(
                t,
                format!("{field}.icmp_type"),
                "icmp_type needs `proto` set to `icmp` or `icmpv6`",
            ));
        }
        out.icmp_type = Some(
            u8::try_from(*t.get_ref())
                .map_err(|_| cx.err(t, format!("{field}.icmp_type"), "expected 0 to 255"))?,
        );
    }
    if let Some(d) = &raw.dscp {
        out.dscp = Some(
            u8::try_from(*d.get_ref())
                .ok()
                .filter(|d| *d < 64)
                .ok_or_else(|| {
                    cx.err(
                        d,
                        format!("{field}.dscp"),
                        "expected a DSCP codepoint, 0 to 63",
                    )
                })?,
        );
    }
    Ok(out)
}

fn users(cx: &Ctx<'_>, raw: &[file::UserEntry]) -> Result<Vec<User>, PolicyError> {
    let mut names: HashMap<String, usize> = HashMap::new();
    // Owner and the offset of the claim, for messages (located only then:
    // locating is a scan of the text).
    let mut nets_owner: HashMap<IpNet, (String, usize)> = HashMap::new();
    let mut macs_owner: HashMap<[u8; 6], (String, usize)> = HashMap::new();
    let mut uids_owner: HashMap<u32, String> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let field = |f: &str| format!("user[{i}].{f}");
        let name = cx.name(&entry.name, field("name"), "user")?;
        if name == UNIDENTIFIED {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("`{UNIDENTIFIED}` is reserved; set its action in [unidentified]"),
            ));
        }
        if let Some(first) = names.insert(name.clone(), i) {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("user `{name}` is already defined as user[{first}]"),
            ));
        }
        if entry.ips.is_empty()
            && entry.macs.is_empty()
            && entry.uids.is_empty()
            && entry.cgroups.is_empty()
        {
            return Err(cx.err(
                &entry.name,
                field("ips"),
                format!("user `{name}` has no addresses, MACs, UIDs or cgroups, so no packet could ever be theirs"),
            ));
        }
        let mut nets = Vec::with_capacity(entry.ips.len());
        for (j, ip) in entry.ips.iter().enumerate() {
            let f = field(&format!("ips[{j}]"));
            let net = parse_net(ip.get_ref()).map_err(|m| cx.err(ip, &f, m))?;
            if let Some((owner, first)) = nets_owner.insert(net, (name.clone(), ip.span().start)) {
                let first = Location::at(cx.path, cx.source, first);
                let written = spelled(&net, ip.get_ref());
                let message = if owner == name {
                    format!("`{net}`{written} is listed twice (first at {first})")
                } else {
                    format!(
                        "`{net}`{written} already belongs to user `{owner}` ({first}); \
                         an address identifies one user"
                    )
                };
                return Err(cx.err(ip, f, message));
            }
            nets.push(net);
        }
        let mut macs = Vec::with_capacity(entry.macs.len());
        for (j, m) in entry.macs.iter().enumerate() {
            let f = field(&format!("macs[{j}]"));
            let mac = parse_mac(m.get_ref()).map_err(|e| cx.err(m, &f, e))?;
            if let Some((owner, first)) = macs_owner.insert(mac, (name.clone(), m.span().start)) {
                let first = Location::at(cx.path, cx.source, first);
                return Err(cx.err(
                    m,
                    f,
                    format!(
                        "`{}` already belongs to user `{owner}` ({first})",
                        m.get_ref()
                    ),
                ));
            }
            macs.push(mac);
        }
        let mut uids = Vec::with_capacity(entry.uids.len());
        for (j, u) in entry.uids.iter().enumerate() {
            let f = field(&format!("uids[{j}]"));
            let uid = u32::try_from(*u.get_ref())
                .map_err(|_| cx.err(u, &f, "expected a UID, 0 to 4294967295"))?;
            if let Some(owner) = uids_owner.insert(uid, name.clone()) {
                return Err(cx.err(u, f, format!("UID {uid} already belongs to user `{owner}`")));
            }
            uids.push(uid);
        }
        let mut cgroups = Vec::with_capacity(entry.cgroups.len());
        for (j, c) in entry.cgroups.iter().enumerate() {
            let p = PathBuf::from(c.get_ref());
            if !p.is_absolute() {
                return Err(cx.err(
                    c,
                    field(&format!("cgroups[{j}]")),
                    "expected an absolute cgroup v2 directory",
                ));
            }
            cgroups.push(p);
        }
        let group = match &entry.group {
            Some(g) => Some(cx.name(g, field("group"), "group")?),
            None => None,
        };
        let has_exact = nets.iter().any(|n| n.prefix_len() == n.max_prefix_len());
        if entry.spoof_check == Some(true) && (macs.is_empty() || !has_exact) {
            return Err(cx.err(
                &entry.name,
                field("spoof_check"),
                "spoof_check binds exact addresses to MACs: the user needs both `ips` (single addresses) and `macs`",
            ));
        }
        if entry.spoof_check != Some(false) && macs.len() > MAX_MACS_PER_BINDING && has_exact {
            return Err(cx.err(
                &entry.name,
                field("macs"),
                format!(
                    "an address can be bound to at most {MAX_MACS_PER_BINDING} MACs; \
                     set `spoof_check = false` or list fewer"
                ),
            ));
        }
        let action = match &entry.action {
            Some(a) => Some(cx.action(a, field("action"))?),
            None => None,
        };
        out.push(User {
            name,
            spoof_check: entry.spoof_check.unwrap_or(!macs.is_empty() && has_exact),
            nets,
            macs,
            uids,
            cgroups,
            group,
            action,
        });
    }
    Ok(out)
}

/// The span of `key = value` in the table whose header is at `table`:
/// flattened fields lose their spans, so the key is looked up in the text,
/// from the header to the next one (a line that starts with the key, then
/// `=`). Falls back to the header.
fn key_span(source: &str, table: std::ops::Range<usize>, key: &str) -> std::ops::Range<usize> {
    let text = source.get(table.start..).unwrap_or("");
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = table.start + offset + (line.len() - trimmed.len());
            return start..start + key.len();
        }
        offset += line.len();
    }
    table
}

/// The names a rule may refer to: this file's and earlier layers'.
struct Known<'a> {
    classes: HashSet<&'a str>,
    users: HashSet<&'a str>,
    groups: HashSet<&'a str>,
}

fn rules(
    cx: &Ctx<'_>,
    raw: &[Spanned<file::RuleEntry>],
    known: &Known<'_>,
    profiles: &[String],
) -> Result<Vec<Rule>, PolicyError> {
    let groups = &known.groups;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let field = |f: &str| format!("rule[{i}].{f}");
        let class = r.class.get_ref().clone();
        if class != DEFAULT_CLASS && !known.classes.contains(class.as_str()) {
            return Err(cx.err(
                &r.class,
                field("class"),
                format!("no class named `{class}`"),
            ));
        }
        let subject = match (&r.user, &r.group, r.aggregate) {
            (Some(_), Some(g), _) => {
                return Err(cx.err(
                    g,
                    field("group"),
                    "a rule is for a user or a group, not both",
                ));
            }
            (Some(u), None, false) => {
                let name = u.get_ref();
                if name != UNIDENTIFIED && !known.users.contains(name.as_str()) {
                    return Err(cx.err(u, field("user"), format!("no user named `{name}`")));
                }
                Subject::User(name.clone())
            }
            (None, Some(g), false) => {
                if !groups.contains(g.get_ref().as_str()) {
                    return Err(cx.err(
                        g,
                        field("group"),
                        format!("no user is in group `{}`", g.get_ref()),
                    ));
                }
                Subject::Group(g.get_ref().clone())
            }
            (None, None, false) => Subject::Everyone,
            (None, None, true) => Subject::Aggregate,
            (Some(u), None, true) => {
                return Err(cx.err(
                    u,
                    field("aggregate"),
                    "an aggregate rule is for the whole class, not a user",
                ));
            }
            (None, Some(g), true) => {
                return Err(cx.err(
                    g,
                    field("aggregate"),
                    "an aggregate rule is for the whole class, not a group",
                ));
            }
        };
        let default = match &r.action {
            Some(a) => Some(cx.action(a, field("action"))?),
            None => None,
        };
        let mut actions = vec![default.unwrap_or(ActionSpec::Allow); profiles.len()];
        for (key, value) in &r.profiles {
            let span = key_span(cx.source, spanned.span(), key);
            let err = |message: String| {
                PolicyError::invalid(cx.path, cx.source, span.clone(), field(key), message)
            };
            let Some(p) = profiles.iter().position(|x| x == key) else {
                let names: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
                return Err(err(format!(
                    "unknown field `{key}`, expected `class`, `user`, `group`, `aggregate`, `action` \
                     or a profile of this policy ({})",
                    names.join(", ")
                )));
            };
            let toml::Value::String(text) = value else {
                return Err(err(format!(
                    "expected an action as a string, like \"limit 20Mbit\", found {value}"
                )));
            };
            actions[p] = units::parse_action(text).map_err(|e| err(e.to_string()))?;
        }
        if default.is_none() && r.profiles.is_empty() {
            let names: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
            return Err(cx.err(
                &r.class,
                field("action"),
                format!(
                    "the rule sets no action: give `action`, or one per profile ({})",
                    names.join(", ")
                ),
            ));
        }
        if subject == Subject::Aggregate
            && let Some(bad) = actions
                .iter()
                .find(|a| !matches!(a, ActionSpec::Allow | ActionSpec::Limit(_)))
        {
            return Err(cx.err(
                &r.class,
                field("action"),
                format!("an aggregate rule can only `limit` (or `allow`), not `{bad}`"),
            ));
        }
        let key = (
            class.clone(),
            match &subject {
                Subject::User(u) => format!("user {u}"),
                Subject::Group(g) => format!("group {g}"),
                Subject::Everyone => "everyone".to_owned(),
                Subject::Aggregate => "aggregate".to_owned(),
            },
        );
        if let Some(first) = seen.insert(key.clone(), i) {
            return Err(cx.err(
                &r.class,
                field("class"),
                format!("rule[{first}] already sets class `{class}` for {}", key.1),
            ));
        }
        out.push(Rule {
            class,
            subject,
            actions,
            default: default.unwrap_or(ActionSpec::Allow),
        });
    }
    Ok(out)
}
