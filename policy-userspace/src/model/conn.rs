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

impl Conns {
    pub(super) fn starting_at(now_ns: u64) -> Self {
        Self {
            now_ns,
            mask: DEFAULT_CONN_FLOW_WIDTH - 1,
            slots: HashMap::new(),
            buckets: HashMap::new(),
        }
    }
}

/// The UDP flow's place in the table, when its packet opens it.
pub(super) struct Opening {
    hash: u64,
    cells: [u32; 2],
    words: [u64; 2],
    stamp: u32,
}

/// Whether a packet opens a connection, as policy-ebpf's conn.rs says.
pub(super) enum Opens {
    No,
    Tcp,
    Udp(Opening),
}

impl Opens {
    pub(super) fn any(&self) -> bool {
        !matches!(self, Self::No)
    }
}

fn words(a: &Addr16) -> [u64; 2] {
    let w = |i: usize| u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    [w(0), w(1)]
}

impl Conns {
    fn stamp(&self) -> u32 {
        (self.now_ns >> STAMP_SHIFT) as u32
    }

    /// Whether the packet opens a connection; a UDP packet of a flow seen
    /// recently refreshes the flow's stamp, as in the kernel.
    pub(super) fn opening(&mut self, p: &PacketInfo, direction: u8) -> Opens {
        if !p.has_ports {
            return Opens::No;
        }
        match p.proto {
            6 if tcp_opens(p.tcp_flags) => return Opens::Tcp,
            17 => {}
            _ => return Opens::No,
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
                return Opens::No;
            }
        }
        Opens::Udp(Opening {
            hash,
            cells,
            words,
            stamp,
        })
    }

    /// Whether a packet that opens a connection (`opens.any()`) under limit
    /// `a` may pass its connection limit.
    pub(super) fn admit(
        &mut self,
        user: UserId,
        class: u32,
        direction: u8,
        a: &ActionParams,
    ) -> Admit {
        let now = self.now_ns;
        let tat = self.buckets.entry((user, class, direction)).or_insert(0);
        let new = (*tat).max(now).saturating_add(a.conn_cost_ns);
        if new - now <= a.conn_tolerance_ns {
            *tat = new;
            Admit::Yes
        } else {
            Admit::Refused
        }
    }

    /// Records a new UDP flow, as the kernel does once it was admitted by
    /// a connection limit or its packet passed.
    pub(super) fn remember(&mut self, o: &Opening) {
        let i = victim(o.words, o.stamp);
        self.slots
            .insert(o.cells[i & 1], slot_word(o.hash, o.stamp));
    }
}
