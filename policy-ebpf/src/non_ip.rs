//! Non-IP frames (ARP, LLDP, ...), when the policy has a class rule that
//! can match them (`present::NON_IP_RULES`): identified by MAC, classified
//! by the rules without IP conditions, enforced and counted like IP
//! traffic. A frame no such rule matches passes unenforced, as every non-IP
//! frame did before: a policy's `default` action (say a user's blanket
//! `deny`) never cuts a user off ARP, only a class that names L2 traffic
//! does.

use policy_common::{CLASS_DEFAULT, Config};

use crate::{
    Hook, Verdict, classify,
    conn::Flow,
    counters,
    enforce::{self, Decision},
    events, identity,
    parse::Packet,
    quota,
};

#[inline(always)]
pub(crate) fn process<H: Hook>(
    ctx: &H,
    p: &mut Packet,
    flow: &mut Flow,
    cfg: &Config,
    generation: u32,
) -> Verdict {
    let class = classify::classify_non_ip(p, cfg, generation);
    if class == CLASS_DEFAULT {
        return Verdict::Pass;
    }
    p.clear_addresses();
    let who = identity::identify_non_ip(
        p,
        identity::iface_side(ctx.ifindex()),
        H::EGRESS,
        cfg.present,
        generation,
    );
    if who.user == policy_common::USER_UNIDENTIFIED {
        counters::global(policy_common::global_counter::UNIDENTIFIED);
    }
    let t = enforce::Traffic {
        user: who.user,
        class,
        dir: who.dir,
        len: ctx.len(),
        generation,
    };
    // No IP header to mark and no TCP flow to drop early.
    let signal = enforce::Signal {
        ecn_capable: false,
        tcp: false,
    };
    // A frame without ports opens no connection (conn.rs): a `conn` limit
    // never counts it, and scan detection never sees it.
    flow.reset();
    let enforced = enforce::decide(&t, p, flow, cfg, signal, H::EGRESS);
    if enforced.tc_classid != 0 {
        ctx.set_classid(enforced.tc_classid);
    }
    counters::account(&t, enforced.decision, false, enforced.reason);
    events::of_decision(enforced.decision, &t, p, cfg.event_interval_ns);
    if matches!(enforced.decision, Decision::Pass | Decision::Monitor)
        && cfg.present & policy_common::present::QUOTAS != 0
    {
        quota::account(&t, p, cfg);
    }
    match enforced.decision {
        Decision::Pass | Decision::Monitor => Verdict::Pass,
        Decision::Deny | Decision::Limited => Verdict::Drop,
    }
}
