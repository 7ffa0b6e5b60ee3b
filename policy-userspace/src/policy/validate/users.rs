//! `[[user]]`: who is behind a packet, and the addresses, MACs, UIDs and
//! cgroups that say so.

use std::{collections::HashMap, path::PathBuf};

use ipnet::IpNet;
use policy_common::MAX_MACS_PER_BINDING;

use super::{
    Ctx, PolicyError, file,
    net::{parse_mac, parse_net, spelled},
};
use crate::policy::error::Location;
use crate::policy::types::*;

pub(super) fn users(cx: &Ctx<'_>, raw: &[file::UserEntry]) -> Result<Vec<User>, PolicyError> {
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
