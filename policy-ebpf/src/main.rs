//! policyd's kernel programs. Each entry point is thin: parse, identify,
//! enforce, count, with the pieces in their own modules so XDP and TC share
//! them.
#![no_std]
#![no_main]

mod counters;
mod enforce;
mod identity;
mod maps;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Ingress enforcement: the source address identifies the user.
#[xdp]
pub fn policyd_xdp(ctx: XdpContext) -> u32 {
    match try_policyd_xdp(&ctx) {
        Ok(action) => action,
        // Only reachable through a map lookup that cannot fail for a loaded
        // program (array index in range); aborting makes such a bug visible in
        // the xdp:xdp_exception tracepoint instead of silently passing.
        Err(()) => xdp_action::XDP_ABORTED,
    }
}

fn try_policyd_xdp(ctx: &XdpContext) -> Result<u32, ()> {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let len = (data_end - data) as u64;
    let verdict = match parse::source_address(data, data_end) {
        Ok(Some(addr)) => {
            let user = identity::user_of(&addr);
            enforce::decide(user, len)?
        }
        Ok(None) => {
            counters::global(policy_common::global_counter::NON_IP);
            enforce::Verdict::Pass
        }
        Err(parse::Malformed) => {
            counters::global(policy_common::global_counter::MALFORMED);
            enforce::Verdict::Pass
        }
    };
    Ok(match verdict {
        enforce::Verdict::Pass => xdp_action::XDP_PASS,
        enforce::Verdict::Drop => xdp_action::XDP_DROP,
    })
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any reachable panic path, so this never runs.
    loop {}
}

/// GPL-compatible licence: required for helpers such as bpf_ktime_get_ns
/// that later programs use.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
