//! Lays a validated policy out as the contents of the kernel's maps, in the
//! contract's types. Done once, here, for every consumer (the loader now; the
//! reference model later).

use std::net::IpAddr;

use ipnet::IpNet;
use policy_common::{USER_UNIDENTIFIED, UserId, UserPolicy, action};

use super::{Action, Policy, UNIDENTIFIED};

/// One user as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledUser {
    pub id: UserId,
    pub name: String,
    pub policy: UserPolicy,
}

/// The contents of every identity and policy map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Index = [`UserId`]; entry 0 is the unidentified user.
    pub users: Vec<CompiledUser>,
    pub v4_exact: Vec<([u8; 4], UserId)>,
    pub v6_exact: Vec<([u8; 16], UserId)>,
    /// (prefix length, network, user); host routes go to the exact maps.
    pub v4_cidrs: Vec<(u8, [u8; 4], UserId)>,
    pub v6_cidrs: Vec<(u8, [u8; 16], UserId)>,
}

fn user_policy(a: Action) -> UserPolicy {
    UserPolicy {
        action: match a {
            Action::Allow => action::ALLOW,
            Action::Deny => action::DENY,
        },
        _pad: 0,
    }
}

impl CompiledPolicy {
    pub fn compile(policy: &Policy) -> Self {
        let mut out = Self::default();
        out.users.push(CompiledUser {
            id: USER_UNIDENTIFIED,
            name: UNIDENTIFIED.to_owned(),
            policy: user_policy(policy.unidentified),
        });
        for user in &policy.users {
            let id = UserId::try_from(out.users.len()).expect("validated policies fit in u32 ids");
            out.users.push(CompiledUser {
                id,
                name: user.name.clone(),
                policy: user_policy(user.action),
            });
            for net in &user.nets {
                let host = net.prefix_len() == net.max_prefix_len();
                match (net.addr(), host) {
                    (IpAddr::V4(a), true) => out.v4_exact.push((a.octets(), id)),
                    (IpAddr::V6(a), true) => out.v6_exact.push((a.octets(), id)),
                    (IpAddr::V4(a), false) => out.v4_cidrs.push((net.prefix_len(), a.octets(), id)),
                    (IpAddr::V6(a), false) => out.v6_cidrs.push((net.prefix_len(), a.octets(), id)),
                }
            }
        }
        out
    }

    /// The user id a source address maps to under this policy: exact match,
    /// then longest prefix, else unidentified. The same rule as the kernel's
    /// `identity::user_of`; tests compare the two.
    pub fn user_of(&self, addr: IpAddr) -> UserId {
        let longest = |nets: &mut dyn Iterator<Item = (IpNet, UserId)>| {
            nets.filter(|(net, _)| net.contains(&addr))
                .max_by_key(|(net, _)| net.prefix_len())
                .map(|(_, id)| id)
        };
        match addr {
            IpAddr::V4(a) => self
                .v4_exact
                .iter()
                .find(|(k, _)| *k == a.octets())
                .map(|(_, id)| *id)
                .or_else(|| {
                    longest(&mut self.v4_cidrs.iter().map(|(p, n, id)| {
                        (IpNet::new(IpAddr::from(*n), *p).expect("valid prefix"), *id)
                    }))
                }),
            IpAddr::V6(a) => self
                .v6_exact
                .iter()
                .find(|(k, _)| *k == a.octets())
                .map(|(_, id)| *id)
                .or_else(|| {
                    longest(&mut self.v6_cidrs.iter().map(|(p, n, id)| {
                        (IpNet::new(IpAddr::from(*n), *p).expect("valid prefix"), *id)
                    }))
                }),
        }
        .unwrap_or(USER_UNIDENTIFIED)
    }

    pub fn user(&self, name: &str) -> Option<&CompiledUser> {
        self.users.iter().find(|u| u.name == name)
    }
}
