//! From the on-disk schema to the typed, checked model.

use std::{collections::HashMap, path::Path};

use ipnet::IpNet;
use toml::Spanned;

use super::{PolicyError, file};

/// The name under which unmatched packets are accounted. Reserved: no user
/// may take it.
pub const UNIDENTIFIED: &str = "unidentified";

/// What to do with a user's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// Host addresses are stored as /32 or /128 networks.
    pub nets: Vec<IpNet>,
    pub action: Action,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub users: Vec<User>,
    /// Applies to packets from addresses no user claims. Default: `allow`, so
    /// that loading a policy that forgets a subnet does not cut a host off.
    pub unidentified: Action,
}

struct Ctx<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Ctx<'_> {
    fn err<T>(&self, value: &Spanned<T>, field: String, message: String) -> PolicyError {
        PolicyError::invalid(self.path, self.source, value.span(), field, message)
    }

    fn action(&self, value: &Spanned<String>, field: String) -> Result<Action, PolicyError> {
        match value.get_ref().as_str() {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            other => Err(self.err(
                value,
                field,
                format!("unknown action `{other}`, expected `allow` or `deny`"),
            )),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parses `10.0.0.2`, `2001:db8::2` or a CIDR with no host bits set.
fn parse_net(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not a valid CIDR (like 10.1.0.0/24)"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        text.parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{text}` is not a valid IP address or CIDR"))
    }
}

pub(super) fn validate(
    path: &Path,
    source: &str,
    raw: file::PolicyFile,
) -> Result<Policy, PolicyError> {
    let cx = Ctx { path, source };
    let unidentified = match &raw.unidentified {
        Some(section) => cx.action(&section.action, "unidentified.action".into())?,
        None => Action::Allow,
    };

    let mut names: HashMap<String, usize> = HashMap::new();
    let mut owners: HashMap<IpNet, String> = HashMap::new();
    let mut users = Vec::with_capacity(raw.users.len());
    for (i, entry) in raw.users.iter().enumerate() {
        let name = entry.name.get_ref();
        let field = |f: &str| format!("user[{i}].{f}");
        if !valid_name(name) {
            return Err(cx.err(
                &entry.name,
                field("name"),
                format!("`{name}` is not a valid user name (1 to 64 of A-Z a-z 0-9 _ - .)"),
            ));
        }
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
        if entry.ips.is_empty() {
            return Err(cx.err(
                &entry.name,
                field("ips"),
                format!("user `{name}` has no addresses, so no packet could ever be theirs"),
            ));
        }
        let mut nets = Vec::with_capacity(entry.ips.len());
        for (j, ip) in entry.ips.iter().enumerate() {
            let net =
                parse_net(ip.get_ref()).map_err(|m| cx.err(ip, field(&format!("ips[{j}]")), m))?;
            if let Some(owner) = owners.insert(net, name.clone()) {
                let message = if owner == *name {
                    format!("`{net}` is listed twice")
                } else {
                    format!(
                        "`{net}` already belongs to user `{owner}`; an address identifies one user"
                    )
                };
                return Err(cx.err(ip, field(&format!("ips[{j}]")), message));
            }
            nets.push(net);
        }
        let action = match &entry.action {
            Some(a) => cx.action(a, field("action"))?,
            None => Action::Allow,
        };
        users.push(User {
            name: name.clone(),
            nets,
            action,
        });
    }
    Ok(Policy {
        users,
        unidentified,
    })
}
