//! `[sets]` and `[[class]]`: what traffic is in which class.

use policy_common::{MAX_CLASS_RULES, MAX_CLASSES, MAX_SETS, cast, ethertype};
use toml::Spanned;

use super::{
    Ctx, PolicyError,
    file::{self, PortSpec, ProtoSpec},
    net::parse_net,
    units, valid_name,
};
use crate::policy::types::*;
use crate::wire::Proto;

/// Most domain patterns in one set: the matcher is a hash per exact name
/// and per wildcard suffix, so this bounds memory, not time.
pub(super) const MAX_SET_DOMAINS: usize = 10_000;

pub(super) fn sets(
    cx: &Ctx<'_>,
    raw: &std::collections::BTreeMap<String, Spanned<file::SetEntry>>,
) -> Result<Vec<Set>, PolicyError> {
    let mut out = Vec::new();
    for (name, entry) in raw {
        let field = format!("sets.{name}");
        if !valid_name(name) {
            return Err(cx.err(entry, &field, format!("`{name}` is not a valid set name")));
        }
        if out.len() == MAX_SETS as usize {
            return Err(cx.err(entry, &field, format!("more than {MAX_SETS} sets")));
        }
        let e = entry.get_ref();
        // A plain list's elements are `sets.NAME[i]`; a table's
        // `sets.NAME.cidrs[i]`.
        let table = !e.domains.is_empty() || cx.source[entry.span()].trim_start().starts_with('{');
        let cidr_field = |i: usize| {
            if table {
                format!("{field}.cidrs[{i}]")
            } else {
                format!("{field}[{i}]")
            }
        };
        let mut parsed = Vec::with_capacity(e.cidrs.len());
        for (i, net) in e.cidrs.iter().enumerate() {
            parsed.push(parse_net(net.get_ref()).map_err(|m| cx.err(net, cidr_field(i), m))?);
        }
        if e.domains.len() > MAX_SET_DOMAINS {
            return Err(cx.err(
                entry,
                format!("{field}.domains"),
                format!("more than {MAX_SET_DOMAINS} domains in one set"),
            ));
        }
        let mut domains: Vec<String> = Vec::with_capacity(e.domains.len());
        for (i, d) in e.domains.iter().enumerate() {
            let pattern = crate::names::domain::DomainPattern::parse(d.get_ref())
                .map_err(|err| cx.err(d, format!("{field}.domains[{i}]"), err.to_string()))?;
            if !domains.iter().any(|x| x == pattern.as_str()) {
                domains.push(pattern.as_str().to_owned());
            }
        }
        out.push(Set {
            name: name.clone(),
            nets: parsed,
            domains,
        });
    }
    Ok(out)
}

pub(super) fn classes(
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
    if let Some(t) = &raw.ethertype {
        let name = format!("{field}.ethertype");
        out.ethertype = Some(ethertype(t.get_ref()).map_err(|e| cx.err(t, name.clone(), e))?);
        // Refused rather than never matched: the class would be silently
        // empty, as no frame is both non-IP and IP.
        if out.proto.is_some() || !out.sets.is_empty() || out.dscp.is_some() {
            return Err(cx.err(
                t,
                name,
                "ethertype matches non-IP frames: it cannot be combined with `proto`, `ports`, `sets`, `icmp_type` or `dscp`",
            ));
        }
    }
    Ok(out)
}

/// A non-IP EtherType by name or number. IPv4, IPv6 and VLAN tags are
/// refused: IP is matched with `proto`, and tags are looked through.
fn ethertype(spec: &ProtoSpec) -> Result<u16, String> {
    let t = match spec {
        ProtoSpec::Number(n) => u16::try_from(*n)
            .ok()
            .filter(|t| *t >= ethertype::MIN)
            .ok_or_else(|| format!("`{n}` is not an EtherType (0x0600 to 0xffff)"))?,
        ProtoSpec::Name(name) => match name.as_str() {
            "arp" => ethertype::ARP,
            "lldp" => ethertype::LLDP,
            _ => {
                return Err(format!(
                    "unknown EtherType `{name}`, expected `arp`, `lldp` or a number (like 0x88cc)"
                ));
            }
        },
    };
    if matches!(
        t,
        ethertype::IPV4 | ethertype::IPV6 | ethertype::VLAN | ethertype::QINQ
    ) {
        return Err(format!(
            "EtherType {t:#06x} is IP or a VLAN tag: match IP with `proto`; tags are looked through"
        ));
    }
    Ok(t)
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
