//! Which user an address belongs to, across layers. Within one file a
//! user's prefix may lie inside another user's (the longest prefix decides,
//! on purpose); across files it may not, in either direction, in any
//! spelling: otherwise a later file could take an address, and with it the
//! rules an earlier file set for its owner, away from that owner.

use std::path::Path;

use ipnet::IpNet;

use super::{
    PolicyError,
    compile::{net16, truncate},
    error::Location,
    file::PolicyFile,
    validate::{parse_net, spelled},
};

/// One address or prefix of one user, where it was written.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    net: IpNet,
    /// As written, if not as `net` prints.
    written: String,
    user: String,
    field: String,
    at: Location,
}

/// The addresses a file gives its users (those that parse; validation
/// reports the others).
pub(super) fn collect(path: &Path, source: &str, raw: &PolicyFile) -> Vec<Claim> {
    // Where each line starts: one pass, not one scan per address.
    let lines: Vec<usize> = std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let locate = |offset: usize| {
        let line = lines.partition_point(|&start| start <= offset);
        Location {
            path: path.to_owned(),
            line,
            column: offset - lines[line - 1] + 1,
        }
    };
    let mut out = Vec::new();
    for (i, u) in raw.users.iter().enumerate() {
        for (j, ip) in u.ips.iter().enumerate() {
            if let Ok(net) = parse_net(ip.get_ref()) {
                out.push(Claim {
                    net,
                    written: spelled(&net, ip.get_ref()),
                    user: u.name.get_ref().clone(),
                    field: format!("user[{i}].ips[{j}]"),
                    at: locate(ip.span().start),
                });
            }
        }
    }
    out
}

/// Whether two networks share an address, in the kernel's 128-bit space
/// (where IPv4 is IPv4-mapped).
fn overlap(a: &IpNet, b: &IpNet) -> bool {
    let ((la, na), (lb, nb)) = (net16(a), net16(b));
    let len = la.min(lb);
    truncate(&na, len) == truncate(&nb, len)
}

/// An error if one of `new` (a file's claims) overlaps a claim of an
/// earlier file for another user.
pub(super) fn check(new: &[Claim], earlier: &[Claim]) -> Result<(), PolicyError> {
    for c in new {
        if let Some(e) = earlier
            .iter()
            .find(|e| e.user != c.user && overlap(&c.net, &e.net))
        {
            let theirs = if c.net == e.net {
                format!("is already user `{}`'s", e.user)
            } else {
                format!("overlaps user `{}`'s `{}`{}", e.user, e.net, e.written)
            };
            return Err(PolicyError::Invalid {
                location: c.at.clone(),
                field: c.field.clone(),
                message: format!(
                    "user `{}`: `{}`{} {theirs} ({}): an address identifies one user, and a \
                     later file cannot give an earlier file's user's addresses to another",
                    c.user, c.net, c.written, e.at
                ),
            });
        }
    }
    Ok(())
}
