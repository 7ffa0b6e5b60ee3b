//! `[[user]]`: who is behind a packet, and the addresses, MACs, UIDs and
//! cgroups that say so.

use std::{collections::HashMap, path::PathBuf};

use ipnet::IpNet;
use policy_common::MAX_MACS_PER_BINDING;

use super::{
    Ctx, PolicyError, file,
    net::{parse_mac, parse_net, spelled},
};
use crate::policy::{error::Location, types::*};

pub(super) fn users(cx: &Ctx<'_>, raw: &[file::UserEntry]) -> Result<Vec<User>, PolicyError> {
    let mut claimed = Claimed::default();
    raw.iter()
        .enumerate()
        .map(|(i, entry)| user(cx, &mut claimed, i, entry))
        .collect()
}

/// What the users so far have claimed: a name, an address, a MAC or a UID
/// identifies one user. Addresses and MACs keep the offset of the claim for
/// messages (located only then: locating is a scan of the text).
#[derive(Default)]
struct Claimed {
    names: HashMap<String, usize>,
    nets: HashMap<IpNet, (String, usize)>,
    macs: HashMap<[u8; 6], (String, usize)>,
    uids: HashMap<u32, String>,
}

/// `user[i].f`, the field messages name.
fn field(i: usize, f: &str) -> String {
    format!("user[{i}].{f}")
}

/// User `i`, checked in the order its messages are reported.
fn user(
    cx: &Ctx<'_>,
    claimed: &mut Claimed,
    i: usize,
    entry: &file::UserEntry,
) -> Result<User, PolicyError> {
    let name = name(cx, claimed, i, entry)?;
    identified(cx, i, entry, &name)?;
    let nets = nets(cx, claimed, i, entry, &name)?;
    let macs = macs(cx, claimed, i, entry, &name)?;
    let uids = uids(cx, claimed, i, entry, &name)?;
    let cgroups = cgroups(cx, i, entry)?;
    let group = match &entry.group {
        Some(g) => Some(cx.name(g, field(i, "group"), "group")?),
        None => None,
    };
    let spoof_check = spoof_check(cx, i, entry, &nets, &macs)?;
    let action = match &entry.action {
        Some(a) => Some(cx.action(a, field(i, "action"))?),
        None => None,
    };
    Ok(User {
        name,
        spoof_check,
        nets,
        macs,
        uids,
        cgroups,
        group,
        action,
    })
}

/// A valid name, not the reserved one, not taken by an earlier user.
fn name(
    cx: &Ctx<'_>,
    claimed: &mut Claimed,
    i: usize,
    entry: &file::UserEntry,
) -> Result<String, PolicyError> {
    let name = cx.name(&entry.name, field(i, "name"), "user")?;
    if name == UNIDENTIFIED {
        return Err(cx.err(
            &entry.name,
            field(i, "name"),
            format!("`{UNIDENTIFIED}` is reserved; set its action in [unidentified]"),
        ));
    }
    if let Some(first) = claimed.names.insert(name.clone(), i) {
        return Err(cx.err(
            &entry.name,
            field(i, "name"),
            format!("user `{name}` is already defined as user[{first}]"),
        ));
    }
    Ok(name)
}

/// A user with nothing to identify them by could never match a packet.
fn identified(
    cx: &Ctx<'_>,
    i: usize,
    entry: &file::UserEntry,
    name: &str,
) -> Result<(), PolicyError> {
    if entry.ips.is_empty()
        && entry.macs.is_empty()
        && entry.uids.is_empty()
        && entry.cgroups.is_empty()
    {
        return Err(cx.err(
            &entry.name,
            field(i, "ips"),
            format!("user `{name}` has no addresses, MACs, UIDs or cgroups, so no packet could ever be theirs"),
        ));
    }
    Ok(())
}

fn nets(
    cx: &Ctx<'_>,
    claimed: &mut Claimed,
    i: usize,
    entry: &file::UserEntry,
    name: &str,
) -> Result<Vec<IpNet>, PolicyError> {
    let mut nets = Vec::with_capacity(entry.ips.len());
    for (j, ip) in entry.ips.iter().enumerate() {
        let f = field(i, &format!("ips[{j}]"));
        let net = parse_net(ip.get_ref()).map_err(|m| cx.err(ip, &f, m))?;
        if let Some((owner, first)) = claimed.nets.insert(net, (name.to_owned(), ip.span().start)) {
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
    Ok(nets)
}

fn macs(
    cx: &Ctx<'_>,
    claimed: &mut Claimed,
    i: usize,
    entry: &file::UserEntry,
    name: &str,
) -> Result<Vec<[u8; 6]>, PolicyError> {
    let mut macs = Vec::with_capacity(entry.macs.len());
    for (j, m) in entry.macs.iter().enumerate() {
        let f = field(i, &format!("macs[{j}]"));
        let mac = parse_mac(m.get_ref()).map_err(|e| cx.err(m, &f, e))?;
        if let Some((owner, first)) = claimed.macs.insert(mac, (name.to_owned(), m.span().start)) {
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
    Ok(macs)
}

fn uids(
    cx: &Ctx<'_>,
    claimed: &mut Claimed,
    i: usize,
    entry: &file::UserEntry,
    name: &str,
) -> Result<Vec<u32>, PolicyError> {
    let mut uids = Vec::with_capacity(entry.uids.len());
    for (j, u) in entry.uids.iter().enumerate() {
        let f = field(i, &format!("uids[{j}]"));
        let uid = u32::try_from(*u.get_ref())
            .map_err(|_| cx.err(u, &f, "expected a UID, 0 to 4294967295"))?;
        if let Some(owner) = claimed.uids.insert(uid, name.to_owned()) {
            return Err(cx.err(u, f, format!("UID {uid} already belongs to user `{owner}`")));
        }
        uids.push(uid);
    }
    Ok(uids)
}

fn cgroups(cx: &Ctx<'_>, i: usize, entry: &file::UserEntry) -> Result<Vec<PathBuf>, PolicyError> {
    let mut cgroups = Vec::with_capacity(entry.cgroups.len());
    for (j, c) in entry.cgroups.iter().enumerate() {
        let p = PathBuf::from(c.get_ref());
        if !p.is_absolute() {
            return Err(cx.err(
                c,
                field(i, &format!("cgroups[{j}]")),
                "expected an absolute cgroup v2 directory",
            ));
        }
        cgroups.push(p);
    }
    Ok(cgroups)
}

/// Whether the user's exact addresses are bound to their MACs: asked for
/// only when there are both, on by default then, and possible only for as
/// many MACs as a binding holds.
fn spoof_check(
    cx: &Ctx<'_>,
    i: usize,
    entry: &file::UserEntry,
    nets: &[IpNet],
    macs: &[[u8; 6]],
) -> Result<bool, PolicyError> {
    let has_exact = nets.iter().any(|n| n.prefix_len() == n.max_prefix_len());
    if entry.spoof_check == Some(true) && (macs.is_empty() || !has_exact) {
        return Err(cx.err(
            &entry.name,
            field(i, "spoof_check"),
            "spoof_check binds exact addresses to MACs: the user needs both `ips` (single addresses) and `macs`",
        ));
    }
    if entry.spoof_check != Some(false) && macs.len() > MAX_MACS_PER_BINDING && has_exact {
        return Err(cx.err(
            &entry.name,
            field(i, "macs"),
            format!(
                "an address can be bound to at most {MAX_MACS_PER_BINDING} MACs; \
                 set `spoof_check = false` or list fewer"
            ),
        ));
    }
    Ok(entry.spoof_check.unwrap_or(!macs.is_empty() && has_exact))
}
