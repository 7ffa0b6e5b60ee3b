//! Connection limits as the kernel keeps them (policy-ebpf's conn.rs and
//! enforce.rs): which packets open a connection, the recent-UDP-flow table
//! slot for slot, and a GCRA bucket per (user, class, direction).

use std::collections::HashMap;

use policy_common::{
    ActionParams, Addr16, DEFAULT_CONN_FLOW_WIDTH, STAMP_SHIFT, UserId, cells, flow_hash, seen,
    slot_word, tcp_opens, victim,
};

use super::PacketInfo;

pub(super) enum Admit {
    Yes,
    Refused,
}

pub(super) struct Conns {
    pub now_ns: u64,
    pub mask: u32,
    slots: HashMap<u32, u64>,
    /// (user, class, direction) -> the bucket's theoretical arrival time.
    buckets: HashMap<(UserId, u32, u8), u64>,
}

impl Default for Conns {
    fn default() -> Self {
        Self {
            now_ns: 0,
            mask: DEFAULT_CONN_FLOW_WIDTH - 1,
            slots: HashMap::new(),
            buckets: HashMap::new(),
        }
    }
}

/// The UDP flow's place in the table, when its packet opens it.
struct Opening {
    hash: u64,
    cells: [u32; 2],
    words: [u64; 2],
    stamp: u32,
}

fn words(a: &Addr16) -> [u64; 2] {
    let w = |i: usize| u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    [w(0), w(1)]
}

impl Conns {
    fn stamp(&self) -> u32 {
        (self.now_ns >> STAMP_SHIFT) as u32
    }

    /// `None`: the packet opens no connection. `Some(None)`: a TCP SYN.
    /// `Some(Some(_))`: a new UDP flow.
    fn opening(&mut self, p: &PacketInfo, direction: u8) -> Option<Option<Opening>> {
        if !p.has_ports {
            return None;
        }
        match p.proto {
            6 => return tcp_opens(p.tcp_flags).then_some(None),
            17 => {}
            _ => return None,
        }
        let (s, d) = (words(&p.src), words(&p.dst));
        let hash = flow_hash(
            [s[0], s[1], d[0], d[1]],
            p.sport,
            p.dport,
            p.proto,
            direction,
        );
        let cells = cells(hash, self.mask);
        let stamp = self.stamp();
        let words = cells.map(|c| self.slots.get(&c).copied().unwrap_or(0));
        for (cell, word) in cells.iter().zip(words) {
            if seen(word, hash, stamp) {
                self.slots.insert(*cell, slot_word(hash, stamp));
                return None;
            }
        }
        Some(Some(Opening {
            hash,
            cells,
            words,
            stamp,
        }))
    }

    /// Whether a packet under limit `a` may pass its connection limit;
    /// `dry_run` (monitor mode or a `monitor` limit) remembers a refused
    /// UDP flow as the kernel does, since its packet passes.
    pub(super) fn admit(
        &mut self,
        p: &PacketInfo,
        user: UserId,
        class: u32,
        direction: u8,
        a: &ActionParams,
        dry_run: bool,
    ) -> Admit {
        if a.conn_cost_ns == 0 {
            return Admit::Yes;
        }
        let Some(udp) = self.opening(p, direction) else {
            return Admit::Yes;
        };
        let now = self.now_ns;
        let tat = self.buckets.entry((user, class, direction)).or_insert(0);
        let new = (*tat).max(now).saturating_add(a.conn_cost_ns);
        let admitted = new - now <= a.conn_tolerance_ns;
        if admitted {
            *tat = new;
        }
        if let Some(o) = udp
            && (admitted || dry_run)
        {
            let i = victim(o.words, o.stamp);
            self.slots
                .insert(o.cells[i & 1], slot_word(o.hash, o.stamp));
        }
        if admitted { Admit::Yes } else { Admit::Refused }
    }
}
