//! The two namespaces every end-to-end comparison runs in: a gateway whose
//! `gw0` faces a client namespace's `cl0`, with policyd running on `gw0` or
//! nothing yet (the other limiters are configured on top).

use policyd_tests::{
    NetNs,
    topology::{Net, Topology},
};

use crate::policyd_bin;

pub(crate) enum Gateway {
    Policyd(Topology),
    Plain(Net),
}

impl Gateway {
    /// policyd enforcing `policy` on `gw0`, ready.
    pub(crate) fn policyd(net: Net, policy: &str) -> Self {
        Self::policyd_with(net, policy, &[])
    }

    /// As [`Self::policyd`], with more arguments to `policyd run`.
    pub(crate) fn policyd_with(net: Net, policy: &str, extra: &[&str]) -> Self {
        Gateway::Policyd(Topology::start(net, &policyd_bin(), policy, extra).expect("policyd"))
    }

    pub(crate) fn gw(&self) -> &NetNs {
        match self {
            Gateway::Policyd(t) => &t.gw,
            Gateway::Plain(n) => &n.gw,
        }
    }

    pub(crate) fn cl(&self) -> &NetNs {
        match self {
            Gateway::Policyd(t) => &t.cl,
            Gateway::Plain(n) => &n.cl,
        }
    }

    /// The running policyd, if this gateway has one.
    pub(crate) fn policyd_topology(&self) -> Option<&Topology> {
        match self {
            Gateway::Policyd(t) => Some(t),
            Gateway::Plain(_) => None,
        }
    }
}
