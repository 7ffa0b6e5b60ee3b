//! Connection-rate limits: whether a packet opens a connection (a TCP SYN
//! without ACK, the first UDP packet of a flow), and the table of recent
//! UDP flows behind the second (policy-common's conn.rs: the rules, the
//! table's layout and its error).
//!
//! Only packets of a class whose action limits connections, and (with
//! `[detect.scan]`) users' uploads, get here: a policy without either never
//! touches the table.

use policy_common::{Config, STAMP_SHIFT, cells, flow_hash, seen, slot_word, tcp_opens, victim};

use crate::{maps::CONN_FLOWS, parse::Packet};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Opening {
    /// Not a connection's first packet (or not TCP/UDP).
    No,
    Tcp,
    /// A UDP flow not seen recently: remembered once admitted.
    Udp,
}

#[inline(always)]
fn slot(i: u32) -> u64 {
    // A miss (never, with the loader's mask) reads as an empty slot: the
    // packet counts as a new flow, which is the stricter error.
    CONN_FLOWS.get(i).copied().unwrap_or(0)
}

/// A packet's flow as the stages that care see it: whether it opens one is
/// worked out once, by the first stage that asks (a connection limit, scan
/// detection), and the flow is remembered after the verdict. It lives in a
/// per-CPU map slot (maps.rs, `FLOW`), not on the stack: the verifier
/// tracks no values in map memory, so the paths through the stages that
/// fill it in differently meet again in one state after them (on the stack
/// the XDP program verified at 923 699 instructions, kernel 6.18).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Flow {
    asked: bool,
    opening: Opening,
    /// A connection limit admitted it (or a dry run let it through).
    admitted: bool,
    hash: u64,
    cells: [u32; 2],
    words: [u64; 2],
    stamp: u32,
}

impl Flow {
    /// Forgets the previous packet's flow (the slot is per CPU and reused).
    #[inline(always)]
    pub(crate) fn reset(&mut self) {
        self.asked = false;
        self.opening = Opening::No;
        self.admitted = false;
    }

    /// Whether `p`, going `direction`, opens a connection. A UDP packet of
    /// a flow already seen refreshes the flow's stamp (a store only when
    /// the stamp moved: once a second at most per flow).
    #[inline(always)]
    pub(crate) fn opening(&mut self, p: &Packet, direction: u8, cfg: &Config) -> Opening {
        if !self.asked {
            self.asked = true;
            self.opening = self.look(p, direction, cfg);
        }
        self.opening
    }

    #[inline(always)]
    fn look(&mut self, p: &Packet, direction: u8, cfg: &Config) -> Opening {
        if !p.has_ports {
            return Opening::No;
        }
        if p.proto == IPPROTO_TCP {
            return if tcp_opens(p.tcp_flags) {
                Opening::Tcp
            } else {
                Opening::No
            };
        }
        if p.proto != IPPROTO_UDP {
            return Opening::No;
        }
        let (s, d) = (p.src_words(), p.dst_words());
        let hash = flow_hash(
            [s[0], s[1], d[0], d[1]],
            p.sport,
            p.dport,
            p.proto,
            direction,
        );
        let cells = cells(hash, cfg.conn_flow_mask);
        // The coarse clock (4 ns against 33 for bpf_ktime_get_ns, kernel
        // 6.18): a stamp needs whole seconds.
        let stamp = (crate::clock::coarse_ns() >> STAMP_SHIFT) as u32;
        let words = [slot(cells[0]), slot(cells[1])];
        let mut i = 0;
        while i < 2 {
            if seen(words[i], hash, stamp) {
                let fresh = slot_word(hash, stamp);
                if words[i] != fresh
                    && let Some(w) = CONN_FLOWS.get_ptr_mut(cells[i])
                {
                    // SAFETY: a pointer to an array value, valid for the
                    // run. A plain store: a racing CPU's store of another
                    // flow into the slot wins or loses whole (aligned u64).
                    unsafe { core::ptr::write_volatile(w, fresh) };
                }
                return Opening::No;
            }
            i += 1;
        }
        self.hash = hash;
        self.cells = cells;
        self.words = words;
        self.stamp = stamp;
        Opening::Udp
    }

    #[inline(always)]
    pub(crate) fn admit(&mut self) {
        self.admitted = true;
    }

    /// Records a new UDP flow that a connection limit admitted or whose
    /// packet passed, so its next packets are not counted again; a flow
    /// refused by its limit is not, so its next packet asks again.
    #[inline(always)]
    pub(crate) fn finish(&self, passed: bool) {
        if self.opening != Opening::Udp || !(self.admitted || passed) {
            return;
        }
        let i = victim(self.words, self.stamp);
        if let Some(w) = CONN_FLOWS.get_ptr_mut(self.cells[i & 1]) {
            // SAFETY: as in `look`.
            unsafe { core::ptr::write_volatile(w, slot_word(self.hash, self.stamp)) };
        }
    }
}
