//! Scan detection and quarantine as the kernel keeps them (policy-ebpf's
//! scan.rs): per user, the window's two estimators and the quarantine's
//! end, at the model's clock.

use std::collections::HashMap;

use policy_common::{
    Config, ScanState, USER_UNIDENTIFIED, UserId, dir, host_bit, port_bit, reason, scan_flag,
    set_and_count,
};

use super::PacketInfo;

#[derive(Default)]
pub(super) struct Scans {
    state: HashMap<UserId, ScanState>,
}

fn words(a: &policy_common::Addr16) -> [u64; 2] {
    let w = |i: usize| u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    [w(0), w(1)]
}

fn echo_request(p: &PacketInfo) -> bool {
    let v4 = policy_common::mapped_v4(&p.dst).is_some();
    matches!((p.proto, p.icmp_type), (1, Some(8)) if v4)
        || matches!((p.proto, p.icmp_type), (58, Some(128)) if !v4)
}

impl Scans {
    /// The kernel's `scan::quarantined`: whether the packet is denied by
    /// its user's quarantine; `opens` says (once asked) whether the packet
    /// opens a flow.
    #[expect(
        clippy::too_many_arguments,
        reason = "the kernel function's inputs, one by one"
    )]
    pub(super) fn quarantined(
        &mut self,
        cfg: &Config,
        now: u64,
        user: UserId,
        class: u32,
        direction: u8,
        p: &PacketInfo,
        opens: impl FnOnce() -> bool,
    ) -> bool {
        if user == USER_UNIDENTIFIED || user >= cfg.scan_users {
            return false;
        }
        let s = self.state.entry(user).or_default();
        let allowed = class < 64 && cfg.quarantine_classes & (1 << class) != 0;
        if s.until_ns != 0 && now < s.until_ns {
            return !allowed;
        }
        if direction != dir::UPLOAD || !(opens() || echo_request(p)) {
            return false;
        }
        if s.window_ns == 0 || now.wrapping_sub(s.window_ns) > cfg.scan_window_ns {
            s.window_ns = now;
            s.hosts = [0; 4];
            s.ports = [0; 4];
        }
        let hosts = set_and_count(&mut s.hosts, host_bit(words(&p.dst)));
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
        s.reason = why;
        if cfg.scan_flags & scan_flag::MONITOR != 0 {
            let window = (s.window_ns >> 30) as u32 | 1;
            s.reported = window;
            return false;
        }
        s.until_ns = now.saturating_add(cfg.quarantine_ns).max(1);
        s.window_ns = 0;
        !allowed
    }
}
