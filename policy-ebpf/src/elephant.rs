//! Elephant flows: a count-min sketch of passed bytes per flow
//! (policy-common's sketch.rs), read before enforcement and added to after.

use policy_common::{Config, cells, flow_hash};

use crate::{maps::FLOW_SKETCH, parse::Packet};

/// The address words of the flow key, as sketch.rs hashes them.
#[inline(always)]
fn words(p: &Packet) -> [u64; 4] {
    let (s, d) = (p.src_words(), p.dst_words());
    [s[0], s[1], d[0], d[1]]
}

/// Whether the packet's flow is estimated past the elephant threshold (in
/// passed bytes). Only flows with ports are tracked; the flow's cells are
/// left in `p` for [`account`].
#[inline(always)]
pub(crate) fn is_elephant(p: &mut Packet, direction: u8, cfg: &Config) -> bool {
    if cfg.elephant_bytes == 0 || !p.has_ports {
        return false;
    }
    let hash = flow_hash(words(p), p.sport, p.dport, p.proto, direction);
    p.flow_cells = cells(hash, cfg.sketch_mask);
    let [a, b] = p.flow_cells;
    // In range whenever the loader's mask matches the map; a miss reads as
    // an empty cell (no promotion), never as a bigger one.
    let count = |i| FLOW_SKETCH.get(i).copied().unwrap_or(0);
    let estimate = count(a).min(count(b));
    estimate > cfg.elephant_bytes
}

/// Adds a passed packet's bytes to its flow's cells. Call after
/// [`is_elephant`], which found them.
#[inline(always)]
pub(crate) fn account(p: &Packet, cfg: &Config, len: u64) {
    if cfg.elephant_bytes == 0 || !p.has_ports {
        return;
    }
    for i in p.flow_cells {
        if let Some(cell) = FLOW_SKETCH.get_ptr_mut(i) {
            // SAFETY: the pointer is to an array value, valid for the run.
            // A plain read-add-write, not an atomic add (which costs more on
            // every packet): two CPUs adding to one cell at once lose one of
            // the adds, so the estimate may fall short of the true count,
            // which only delays a promotion.
            unsafe {
                let v = core::ptr::read_volatile(cell);
                core::ptr::write_volatile(cell, v.saturating_add(len));
            }
        }
    }
}
