//! Elephant-flow detection by a count-min sketch (Cormode and
//! Muthukrishnan, 2005): [`SKETCH_ROWS`] rows of counters, each row indexed
//! by its own part of one 64-bit hash of the flow's 5-tuple and direction.
//! A passed packet adds its length to its cell in every row; a flow's bytes
//! are estimated as the smallest of its cells, which is never below the
//! true count (other flows only add). The kernel and the reference model
//! both call [`flow_hash`] and [`cells`], so they agree cell for cell.
//!
//! Why a sketch and not a table of flows: the table needed a hash lookup
//! and an atomic add on every passed packet, and an insert (an LRU
//! allocation) for every new flow; the sketch is two array cells at
//! indexes computed once, whatever the number of flows, in memory fixed
//! by its width.
//!
//! Error bound: a flow is promoted early only if, in both rows, the flows
//! it shares its cell with carried at least the threshold `T` between them.
//! With `N` bytes passed in total (since the last decay) and width `W`, a
//! row's cell holds `N / W` of others' bytes on average, so by Markov's
//! inequality a given small flow is falsely promoted with probability at
//! most `(N / (W * T))^SKETCH_ROWS` (the two rows' hashes are
//! independent halves of one 64-bit hash). Example: the baseline's 100 MiB
//! threshold, W = 65 536 and a minute of 10 Gbit/s (N = 75 GB) give
//! 0.011^2, about one small flow in 8 000.
//!
//! Ageing: the daemon halves every cell each [`DECAY_INTERVAL_SECS`], so
//! the sketch forgets ended flows, and an elephant that keeps sending at
//! `r` bytes per interval stays promoted while `2r` exceeds the threshold.

/// Rows of the sketch (hash functions).
pub const SKETCH_ROWS: u32 = 2;

/// Default cells per row (a power of two).
pub const DEFAULT_SKETCH_WIDTH: u32 = 65_536;

/// Seconds between two halvings of the sketch by the daemon.
pub const DECAY_INTERVAL_SECS: u64 = 60;

/// One mixing step (the finaliser of SplitMix64, Steele et al. 2014): every
/// input bit affects every output bit.
#[inline(always)]
pub(crate) const fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash of a flow: its addresses as four 64-bit words (native byte
/// order, as the kernel loads them), the ports and the protocol and
/// direction.
///
/// Each [`mix`] is two dependent multiplies, and five of them chained were
/// a quarter of an allowed packet's time in the kernel (perf samples of
/// `BPF_PROG_TEST_RUN`, kernel 6.18). When both addresses are
/// IPv4-mapped, as every IPv4 packet's are, their 64 bits of IPv4 address
/// go into one word and two rounds do: that word is a one-to-one function
/// of the address pair, as the four-round chain is of the four words, so
/// two flows still share their hash only if the final round collides.
#[inline(always)]
pub const fn flow_hash(addrs: [u64; 4], sport: u16, dport: u16, proto: u8, dir: u8) -> u64 {
    let tail = ((sport as u64) << 48) | ((dport as u64) << 32) | ((proto as u64) << 8) | dir as u64;
    if addrs[0] == 0 && addrs[2] == 0 && addrs[1] & !V4 == MAPPED && addrs[3] & !V4 == MAPPED {
        let pair = (addrs[1] & V4) | (addrs[3] & V4).rotate_left(32);
        return mix(mix(pair ^ SEED) ^ tail);
    }
    let mut h = mix(addrs[0] ^ SEED);
    h = mix(h ^ addrs[1]);
    h = mix(h ^ addrs[2]);
    h = mix(h ^ addrs[3]);
    mix(h ^ tail)
}

/// The first word's offset into the chain (the golden ratio, as SplitMix64).
pub(crate) const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// In the second word of an IPv4-mapped address (`::ffff:a.b.c.d`, bytes
/// 8..16 in memory order): the IPv4 address's bits, and the rest's value.
/// The address fills half the word, so rotating it by 32 moves it to the
/// other half, whatever the byte order.
pub(crate) const V4: u64 = u64::from_ne_bytes([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
pub(crate) const MAPPED: u64 = u64::from_ne_bytes([0, 0, 0xff, 0xff, 0, 0, 0, 0]);

/// The flow's cell in each row, as indexes into the sketch array (row `r`
/// occupies `r * width .. (r + 1) * width`); `mask` is `width - 1`.
#[inline(always)]
pub const fn cells(hash: u64, mask: u32) -> [u32; SKETCH_ROWS as usize] {
    [
        (hash as u32) & mask,
        mask + 1 + (((hash >> 32) as u32) & mask),
    ]
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::{collections::HashMap, vec, vec::Vec};

    use super::{SKETCH_ROWS, cells, flow_hash};

    /// A flow of the simulation: distinct source addresses and ports.
    /// Even ids are IPv6 flows, odd ones IPv4 (IPv4-mapped addresses, which
    /// take the shorter hash).
    fn flow(i: u64) -> u64 {
        let addrs = if i.is_multiple_of(2) {
            [0x20_01_0d_b8, 0xffff_0000_0000 | i, 0x20_01_0d_b8, 1]
        } else {
            [0, mapped(0x0a00_0000 | i as u32), 0, mapped(0xc000_0201)]
        };
        flow_hash(addrs, (i % 50_000) as u16, 443, 6, 0)
    }

    /// The second word of `::ffff:a.b.c.d` for the address `a`, as the
    /// kernel loads it.
    fn mapped(a: u32) -> u64 {
        let mut b = [0, 0, 0xff, 0xff, 0, 0, 0, 0];
        b[4..].copy_from_slice(&a.to_be_bytes());
        u64::from_ne_bytes(b)
    }

    #[test]
    fn only_mapped_addresses_take_the_ipv4_hash() {
        let v4 = [0, mapped(0x0a00_0001), 0, mapped(0xc000_0201)];
        let swapped = [0, mapped(0xc000_0201), 0, mapped(0x0a00_0001)];
        assert_ne!(flow_hash(v4, 1, 2, 17, 0), flow_hash(swapped, 1, 2, 17, 0));
        // One address not mapped: the general chain, another hash.
        let mixed = [0, mapped(0x0a00_0001), 0, 0xc000_0201];
        assert_ne!(flow_hash(v4, 1, 2, 17, 0), flow_hash(mixed, 1, 2, 17, 0));
        // Pairs of addresses that differ in one, the other or both never
        // share a hash here (the pair word is one-to-one).
        let mut seen = std::collections::HashSet::new();
        for s in 0..100 {
            for d in 0..100 {
                let a = [0, mapped(0x0a00_0000 + s), 0, mapped(0x0a00_0000 + d)];
                assert!(seen.insert(flow_hash(a, 40_000, 443, 17, 0)), "{s} {d}");
            }
        }
    }

    /// Feeds `flows` (id, bytes) into a sketch of `width` and returns each
    /// flow's estimate.
    fn estimates(width: u32, flows: &[(u64, u64)]) -> HashMap<u64, u64> {
        let mask = width - 1;
        let mut sketch = vec![0u64; (SKETCH_ROWS * width) as usize];
        for (id, bytes) in flows {
            for c in cells(flow(*id), mask) {
                sketch[c as usize] += bytes;
            }
        }
        flows
            .iter()
            .map(|(id, _)| {
                let e = cells(flow(*id), mask).map(|c| sketch[c as usize]);
                (*id, e[0].min(e[1]))
            })
            .collect()
    }

    #[test]
    fn cells_stay_in_their_rows() {
        let mask = 1023;
        for i in 0..10_000 {
            let [a, b] = cells(flow(i), mask);
            assert!(a <= mask, "row 0 cell {a}");
            assert!((mask + 1..2 * (mask + 1)).contains(&b), "row 1 cell {b}");
        }
    }

    /// What the module's doc promises: never an underestimate, and small
    /// flows promoted no more often than `(N / (W * T))^rows`.
    #[test]
    fn false_promotions_stay_within_the_stated_bound() {
        const WIDTH: u32 = 1024;
        const THRESHOLD: u64 = 1_000_000;
        let mut flows: Vec<(u64, u64)> = (0..200).map(|i| (i, 2 * THRESHOLD)).collect();
        flows.extend((200..20_200).map(|i| (i, 1_000)));
        let total: u64 = flows.iter().map(|(_, b)| b).sum();
        let est = estimates(WIDTH, &flows);
        for (id, bytes) in &flows {
            assert!(est[id] >= *bytes, "flow {id}: estimate below its bytes");
        }
        let small = &flows[200..];
        let promoted = small.iter().filter(|(id, _)| est[id] > THRESHOLD).count();
        let rate = promoted as f64 / small.len() as f64;
        let bound = (total as f64 / (f64::from(WIDTH) * THRESHOLD as f64)).powi(2);
        assert!(
            rate <= bound,
            "{promoted} of {} small flows promoted: {rate:.4} > bound {bound:.4}",
            small.len()
        );
    }

    /// At the default width, a thousand flows are told apart exactly.
    #[test]
    fn a_wide_sketch_counts_few_flows_exactly() {
        let flows: Vec<(u64, u64)> = (0..1_000).map(|i| (i, 1_000 + i)).collect();
        let est = estimates(super::DEFAULT_SKETCH_WIDTH, &flows);
        for (id, bytes) in &flows {
            assert_eq!(est[id], *bytes, "flow {id}");
        }
    }
}
