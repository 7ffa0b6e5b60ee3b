//! policyd's kernel programs: XDP on ingress, TC on ingress and egress. The
//! entry points are thin; every stage lives in its own module and is shared:
//! parse -> identity -> classify (and elephant) -> enforce (buckets) ->
//! counters/events.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod atomic;
mod bucket;
mod classify;
mod clock;
mod conn;
mod counters;
mod ecn;
mod elephant;
mod enforce;
mod events;
mod identity;
mod keys;
mod learn;
mod load;
mod maps;
mod non_ip;
mod opaque;
mod parse;
mod quota;
mod scan;
mod unid;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    helpers::{bpf_skb_cgroup_id, bpf_skb_load_bytes, bpf_xdp_load_bytes},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use policy_common::{GenU32, GenU64, UserId, drop_reason, event_kind, global_counter};

use crate::{
    enforce::Decision,
    maps::{CONFIG, FLOW, GENERATION, IFACES, SCRATCH, USER_CGROUPS, USER_UIDS},
    parse::{Malformed, Parsed},
};

/// What the shared pipeline needs from a program type.
trait Hook {
    const EGRESS: bool;
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Whole packet length (TC: including non-linear data).
    fn len(&self) -> u64;
    fn ifindex(&self) -> u32;
    /// The user owning the sending socket (TC egress of local traffic).
    fn socket_user(&self, _present: u32, _generation: u32) -> Option<UserId> {
        None
    }
    /// Hands the packet to a traffic-control class (TC egress); false where
    /// that is impossible.
    fn set_classid(&self, _classid: u32) -> bool {
        false
    }
    /// Copies the packet's first `len` bytes to `to` (also from
    /// non-linear data); false when the helper fails.
    fn load_bytes(&self, to: *mut u8, len: u32) -> bool;
}

impl Hook for XdpContext {
    const EGRESS: bool = false;
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    fn len(&self) -> u64 {
        (XdpContext::data_end(self) - XdpContext::data(self)) as u64
    }
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }
    fn load_bytes(&self, to: *mut u8, len: u32) -> bool {
        // SAFETY: `to` has room for `len` bytes (learn.rs bounds it); the
        // helper (kernel 5.18+) reads fragments of multi-buffer frames too.
        unsafe { bpf_xdp_load_bytes(self.ctx, 0, to.cast(), len) == 0 }
    }
}

/// TC in either direction; `E` says which.
struct Tc<'a, const E: bool>(&'a TcContext);

impl<const E: bool> Hook for Tc<'_, E> {
    const EGRESS: bool = E;
    fn data(&self) -> usize {
        self.0.data()
    }
    fn data_end(&self) -> usize {
        self.0.data_end()
    }
    fn len(&self) -> u64 {
        u64::from(self.0.len())
    }
    fn ifindex(&self) -> u32 {
        // SAFETY: reading a field of the program's own context.
        unsafe { (*self.0.skb.skb).ifindex }
    }
    fn socket_user(&self, present: u32, generation: u32) -> Option<UserId> {
        if !E || present & policy_common::present::SOCKET_OWNERS == 0 {
            return None;
        }
        // SAFETY: helpers valid for TC programs; both return 0/overflowuid
        // when the packet has no full socket (forwarded traffic).
        let cgroup = unsafe { bpf_skb_cgroup_id(self.0.skb.skb) };
        if cgroup == 0 {
            return None;
        }
        // SAFETY: HashMap::get's hazard is an entry removed and its slot
        // reused while we hold the reference; the value is a plain id
        // copied out at once, so at worst it is another entry's id.
        unsafe {
            USER_CGROUPS.get(GenU64 {
                generation,
                _pad: 0,
                value: cgroup,
            })
        }
        .or_else(|| {
            // SAFETY: as for USER_CGROUPS: a plain id copied out at once.
            unsafe {
                USER_UIDS.get(GenU32 {
                    generation,
                    value: self.0.get_socket_uid(),
                })
            }
        })
        .copied()
    }
    fn load_bytes(&self, to: *mut u8, len: u32) -> bool {
        // SAFETY: as for XDP; bpf_skb_load_bytes reads non-linear data.
        unsafe { bpf_skb_load_bytes(self.0.skb.skb.cast(), 0, to.cast(), len) == 0 }
    }
    fn set_classid(&self, classid: u32) -> bool {
        if !E {
            return false;
        }
        // SAFETY: TC programs may write skb->priority; HTB reads it as the
        // class id when it names one of its classes.
        unsafe { (*self.0.skb.skb).priority = classid };
        true
    }
}

enum Verdict {
    Pass,
    Drop,
}

/// The whole pipeline for one packet.
#[inline(always)]
fn process<H: Hook>(ctx: &H) -> Verdict {
    // Read once: this packet sees one generation of the policy throughout.
    let generation = GENERATION.get(0).copied().unwrap_or(0) & 1;
    // In-range indexes of arrays: the lookups cannot fail.
    let (Some(cfg), Some(p), Some(flow)) = (
        CONFIG.get(generation),
        SCRATCH.get_ptr_mut(0),
        FLOW.get_ptr_mut(0),
    ) else {
        return Verdict::Pass;
    };
    // SAFETY: the pointer is this CPU's slot of SCRATCH, valid map memory
    // for the whole run. The &mut is unique because no other run of these
    // programs touches the slot until this one returns: every hook runs
    // with bottom halves disabled (softirq for XDP and TC ingress,
    // rcu_read_lock_bh() in __dev_queue_xmit for TC egress) and migration
    // off (bpf_prog_run's cant_migrate()), so on a non-RT kernel nothing
    // else runs a network hook on this CPU meanwhile; hardirqs and NMIs
    // run no XDP or TC program; and these programs never start another
    // hook themselves (no XDP_TX/XDP_REDIRECT, no redirect or
    // clone_redirect helper). Nesting would only garble the two packets'
    // decisions: every packet access is bounds-checked by the verifier.
    // See docs/datapath.md, "One scratch slot per CPU".
    let p = unsafe { &mut *p };
    // SAFETY: this CPU's slot of FLOW, unique for the run as SCRATCH's is.
    let flow = unsafe { &mut *flow };
    let (data, data_end) = (ctx.data(), ctx.data_end());
    match parse::parse(data, data_end, p) {
        Ok(Parsed::Ip) => {}
        Ok(Parsed::Other) => {
            counters::global(global_counter::NON_IP);
            if cfg.present & policy_common::present::NON_IP_RULES == 0 {
                return Verdict::Pass;
            }
            return non_ip::process(ctx, p, flow, cfg, generation);
        }
        Err(Malformed) => {
            counters::global(global_counter::MALFORMED);
            if cfg.malformed_drop == 0 {
                return Verdict::Pass;
            }
            // A drop is counted like any other, under nobody: it has no
            // identity to be had.
            let t = enforce::Traffic {
                user: policy_common::USER_UNIDENTIFIED,
                class: policy_common::CLASS_DEFAULT,
                dir: policy_common::dir::at(identity::iface_side(ctx.ifindex()), H::EGRESS),
                len: ctx.len(),
                generation,
            };
            counters::account(&t, Decision::Deny, false, drop_reason::MALFORMED);
            return Verdict::Drop;
        }
    }
    if p.too_deep {
        counters::global(global_counter::EXT_HEADERS_DEEP);
    }
    let len = ctx.len();
    let who = identity::identify(
        p,
        identity::iface_side(ctx.ifindex()),
        H::EGRESS,
        ctx.socket_user(cfg.present, generation),
        cfg.present,
        generation,
    );
    if who.user == policy_common::USER_UNIDENTIFIED {
        counters::global(global_counter::UNIDENTIFIED);
    }
    // Before classifying and enforcing, where few paths reach (after the
    // decision every path of enforcement would walk it again): so an
    // answer is copied whatever its own verdict. One the policy then drops
    // teaches the daemon what its user would have learned, which is
    // harmless; a flood of them is bounded by the ring and counted.
    if cfg.present & policy_common::present::NAMES != 0 {
        learn::snoop(data, data_end, p, &who, len, generation, |to, n| {
            ctx.load_bytes(to, n)
        });
    }
    let mut class = classify::classify(p, who.dir, cfg, generation, who.user);
    if elephant::is_elephant(p, who.dir, cfg) {
        class = cfg.elephant_class;
    }

    let t = enforce::Traffic {
        user: who.user,
        class,
        dir: who.dir,
        len,
        generation,
    };
    flow.reset();
    let quarantined = cfg.present & policy_common::present::SCAN != 0
        && !who.spoofed
        && scan::quarantined(&t, p, flow, cfg);
    let enforced = if quarantined {
        enforce::Enforced {
            decision: if cfg.mode == policy_common::mode::MONITOR {
                Decision::Monitor
            } else {
                Decision::Deny
            },
            mark_ce: false,
            tc_classid: 0,
            reason: drop_reason::QUARANTINE,
        }
    } else if who.spoofed {
        counters::global(global_counter::SPOOFED);
        events::emit(event_kind::SPOOF, &t, p, cfg.event_interval_ns);
        let decision = if cfg.mode == policy_common::mode::MONITOR {
            Decision::Monitor
        } else {
            Decision::Deny
        };
        enforce::Enforced {
            decision,
            mark_ce: false,
            tc_classid: 0,
            reason: drop_reason::SPOOFED,
        }
    } else {
        let signal = enforce::Signal {
            ecn_capable: p.ecn == 1 || p.ecn == 2,
            tcp: p.proto == 6 && p.has_ports,
        };
        enforce::decide(&t, p, flow, cfg, signal, H::EGRESS)
    };
    if enforced.tc_classid != 0 {
        ctx.set_classid(enforced.tc_classid);
    }
    let marked =
        enforced.decision == Decision::Pass && enforced.mark_ce && ecn::mark_ce(data, data_end, p);
    counters::account(&t, enforced.decision, marked, enforced.reason);
    if !who.spoofed {
        events::of_decision(enforced.decision, &t, p, cfg.event_interval_ns);
    }
    let passed = matches!(enforced.decision, Decision::Pass | Decision::Monitor);
    flow.finish(passed);
    if passed && cfg.present & policy_common::present::QUOTAS != 0 {
        quota::account(&t, p, cfg);
    }
    match enforced.decision {
        Decision::Pass | Decision::Monitor => {
            elephant::account(p, cfg, len);
            Verdict::Pass
        }
        Decision::Deny | Decision::Limited => Verdict::Drop,
    }
}

/// Ingress enforcement at the earliest point.
#[xdp]
fn policyd_xdp(ctx: XdpContext) -> u32 {
    match process(&ctx) {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
    }
}

/// An XDP program that does nothing: the floor that benchmarks measure
/// policyd's cost against, in the same run on the same machine. Never
/// attached by policyd.
#[xdp]
fn policyd_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Headers the TC programs need in the linear part of the skb: Ethernet,
/// two VLAN tags, IPv6 with extension headers, transport ports.
const TC_PULL: u32 = 256;

/// On a gateway, a packet leaving through TC egress that arrived on an
/// interface policyd attached XDP to was identified, counted, classified
/// and limited there: enforcing it again would take its tokens twice and
/// count it twice. `__sk_buff.ingress_ifindex` is `skb->skb_iif`, which
/// `__netif_receive_skb_core` sets to the device the packet was received on
/// (kernel 6.18; on veth that is the receiving end, whether the skb came
/// through `netif_rx` or, with XDP attached, the NAPI ring), and which is 0
/// for skbs the host itself sends: those are still enforced here. Every
/// interface marked attached in IFACES has policyd's ingress program: XDP,
/// native or generic, or TC ingress (`--hook tc`), all of which run before
/// the stack routes the packet; also under `--ingress-only`, where no
/// egress program runs at all. A packet received on a device
/// stacked on such an interface (a VLAN device) carries that device's
/// index and is enforced again here.
#[inline(always)]
fn enforced_on_ingress(ctx: &TcContext) -> bool {
    // SAFETY: reading a field of the program's own context.
    let arrived_on = unsafe { (*ctx.skb.skb).ingress_ifindex };
    // 0 (sent by the host) and indexes past the array have the zero entry.
    arrived_on != 0
        && IFACES
            .get(arrived_on)
            .is_some_and(|c| c.flags & policy_common::iface_flag::ATTACHED != 0)
}

fn tc<const E: bool>(ctx: &TcContext) -> i32 {
    if E && enforced_on_ingress(ctx) {
        return TC_ACT_OK;
    }
    // Best effort: a shorter packet is pulled whole; on failure the parser
    // sees what is linear and may count the packet as malformed.
    let _ = ctx.pull_data(ctx.len().min(TC_PULL));
    match process(&Tc::<E>(ctx)) {
        Verdict::Pass => TC_ACT_OK,
        Verdict::Drop => TC_ACT_SHOT,
    }
}

/// A classifier that does nothing: the floor for the TC programs' cost.
#[classifier]
fn policyd_tc_floor(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}

/// Ingress enforcement where XDP is unavailable or unwanted.
#[classifier]
fn policyd_tc_ingress(ctx: TcContext) -> i32 {
    tc::<false>(&ctx)
}

/// Egress enforcement: downloads on user-facing interfaces, uploads (and
/// local sockets' traffic) on network-facing ones.
#[classifier]
fn policyd_tc_egress(ctx: TcContext) -> i32 {
    tc::<true>(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any reachable panic path, so this never runs.
    loop {}
}

/// GPL-compatible licence: required for helpers such as bpf_ktime_get_ns.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
