//! Scan and fan-out detection, and quarantine (policy-common's scan.rs: the
//! estimator and its error). Runs only when the policy has `[detect.scan]`
//! (`present::SCAN`).

use policy_common::{
    Config, USER_UNIDENTIFIED, dir, event_kind, global_counter, host_bit, port_bit, reason,
    scan_flag, set_and_count,
};

use crate::{
    conn::{Flow, Opening},
    counters,
    enforce::Traffic,
    events,
    maps::SCAN,
    opaque::unlinked,
    parse::Packet,
};

/// ICMP and ICMPv6 echo requests: a ping sweep contacts hosts too.
#[inline(always)]
fn echo_request(p: &Packet) -> bool {
    p.has_icmp_type && (p.icmp_type == 8 && !p.is_v6 || p.icmp_type == 128 && p.is_v6)
}

#[inline(always)]
fn coarse_now() -> u64 {
    // The coarse clock: windows and quarantines are seconds long.
    crate::clock::coarse_ns()
}

/// Whether the packet is denied by its user's quarantine: the user is in
/// one, or this packet's new flow crossed a threshold and began one, and
/// the packet's class is not one a quarantine allows. Counts the user's new
/// flows (uploads only: what the user opens) into the window's estimators.
///
/// Several CPUs may update one user's state at once (plain loads and
/// stores, no atomics: new flows of one user on several CPUs at once are
/// rare, and the estimators only need to be about right): a lost bit makes
/// the estimate lower, a lost quarantine start is made again by the next
/// new flow, since the bits stay set.
#[inline(always)]
pub(crate) fn quarantined(t: &Traffic, p: &Packet, flow: &mut Flow, cfg: &Config) -> bool {
    // Tests on unlinked copies (opaque.rs): narrowed user, class or
    // direction registers kept the verifier's states apart through
    // enforcement and counting, for hundreds of thousands of instructions.
    let user = unlinked(t.user);
    if user == USER_UNIDENTIFIED || user >= cfg.scan_users {
        return false;
    }
    let Some(s) = SCAN.get_ptr_mut(user) else {
        return false;
    };
    // SAFETY: the pointer is to this user's array value, valid for the run;
    // the races are the ones described above.
    let s = unsafe { &mut *s };
    let class = unlinked(t.class);
    let allowed = class < 64 && cfg.quarantine_classes & (1 << class) != 0;
    let mut now = 0;
    if s.until_ns != 0 {
        now = coarse_now();
        if now < s.until_ns {
            if !allowed {
                counters::global(global_counter::QUARANTINE_DENIED);
            }
            return !allowed;
        }
    }
    if unlinked(u32::from(t.dir)) != u32::from(dir::UPLOAD) {
        return false;
    }
    let opens = !matches!(flow.opening(p, t.dir, cfg), Opening::No) || echo_request(p);
    if !opens {
        return false;
    }
    if now == 0 {
        now = coarse_now();
    }
    if s.window_ns == 0 || now.wrapping_sub(s.window_ns) > cfg.scan_window_ns {
        s.window_ns = now;
        s.hosts = [0; 4];
        s.ports = [0; 4];
    }
    let hosts = set_and_count(&mut s.hosts, host_bit(p.dst_words()));
    let ports = if p.has_ports {
        set_and_count(&mut s.ports, port_bit(p.proto, p.dport))
    } else {
        0
    };
    let why = if cfg.scan_host_bits != 0 && hosts >= cfg.scan_host_bits {
        reason::HOSTS
    } else if cfg.scan_port_bits != 0 && ports >= cfg.scan_port_bits {
        reason::PORTS
    } else {
        return false;
    };
    counters::global(if why == reason::HOSTS {
        global_counter::QUARANTINES_HOSTS
    } else {
        global_counter::QUARANTINES_PORTS
    });
    s.reason = why;
    if cfg.scan_flags & scan_flag::MONITOR != 0 {
        // Report once a window: the bits stay set, and every further new
        // flow would cross again.
        let window = (s.window_ns >> 30) as u32 | 1;
        if s.reported == window {
            return false;
        }
        s.reported = window;
        events::emit_with(event_kind::QUARANTINE, why as u8, t, p, 0);
        return false;
    }
    s.until_ns = now.saturating_add(cfg.quarantine_ns).max(1);
    // After the quarantine the user starts from an empty window.
    s.window_ns = 0;
    events::emit_with(event_kind::QUARANTINE, why as u8, t, p, 0);
    if !allowed {
        counters::global(global_counter::QUARANTINE_DENIED);
    }
    !allowed
}
