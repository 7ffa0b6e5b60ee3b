//! Scan and fan-out detection, and quarantine.
//!
//! Per user and window, the kernel estimates how many distinct destination
//! addresses and distinct destination ports the user's new flows (TCP SYN
//! without ACK, a UDP flow's first packet, ICMP echo requests: conn.rs)
//! went to, by *linear counting* (Whang, Vander-Zanden and Taylor, 1990): a
//! destination sets one bit of a [`SCAN_BITS`]-bit map chosen by its hash;
//! after `n` distinct destinations `m (1 - (1 - 1/m)^n)` bits are set on
//! average, so a threshold of `n` destinations is a threshold of
//! [`bits_for`] set bits, and the estimate `-m ln(1 - bits/m)` has a
//! standard error of `sqrt(m (e^t - t - 1)) / n` with `t = n / m`: 4.5 % at
//! 25 destinations, 4.7 % at 100, 5.0 % at 200 (m = 256). The bitmaps are
//! 32 bytes each, per user, whatever the traffic.
//!
//! The packet whose destination crosses a threshold puts its user in
//! quarantine until [`ScanState::until_ns`], in the kernel; quarantined,
//! the user's packets are denied unless their class is in
//! [`crate::Config::quarantine_classes`].

use crate::sketch::mix;

/// Bits of each estimator (a power of two).
pub const SCAN_BITS: u32 = 256;
const WORDS: usize = (SCAN_BITS / 64) as usize;

/// Most destinations a threshold may name: past `m ln m` (about 1 400 for
/// m = 256) a linear-counting bitmap is nearly full and says little.
pub const MAX_SCAN_THRESHOLD: u32 = 1_000;

/// Value of [`crate::MAP_SCAN`] at a user's id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanState {
    /// Start of the current window (coarse monotonic ns); 0: none yet.
    pub window_ns: u64,
    /// In quarantine until then (coarse monotonic ns); 0 or past: not.
    pub until_ns: u64,
    pub hosts: [u64; WORDS],
    pub ports: [u64; WORDS],
    /// A [`reason`] code: why the last quarantine (or report) began.
    pub reason: u32,
    /// The window a dry run (`action = "monitor"`) last reported, so it
    /// reports once per window (the window's start, in 2^30 ns units).
    pub reported: u32,
}

/// [`ScanState::reason`] and event codes.
pub mod reason {
    /// Too many distinct destination addresses.
    pub const HOSTS: u32 = 1;
    /// Too many distinct destination ports.
    pub const PORTS: u32 = 2;
    /// Set by `policyd release`: not in quarantine.
    pub const RELEASED: u32 = 3;
}

/// [`crate::Config::scan_flags`] bits.
pub mod scan_flag {
    /// Report crossings (events, counters), quarantine nobody.
    pub const MONITOR: u32 = 1 << 0;
}

/// The set bits at which `n` distinct destinations are reached on
/// average (rounded up, at least 1).
pub const fn bits_for(n: u32) -> u32 {
    // (1 - 1/m)^n in 32.32 fixed point, by repeated multiplication (no
    // floating point in the kernel's crate; n is at most a few thousand).
    let one: u64 = 1 << 32;
    let mut left = one;
    let mut i = 0;
    while i < n {
        left = left * (SCAN_BITS as u64 - 1) / SCAN_BITS as u64;
        i += 1;
    }
    let set = (SCAN_BITS as u64 * (one - left)).div_ceil(one) as u32;
    if set == 0 {
        1
    } else if set > SCAN_BITS {
        SCAN_BITS
    } else {
        set
    }
}

/// The bit a destination address (as two native-endian words) sets.
#[inline(always)]
pub const fn host_bit(addr: [u64; 2]) -> u32 {
    (mix(mix(addr[0] ^ HOST_SEED) ^ addr[1]) as u32) & (SCAN_BITS - 1)
}

/// The bit a destination port (with its protocol) sets.
#[inline(always)]
pub const fn port_bit(proto: u8, port: u16) -> u32 {
    (mix(((proto as u64) << 16 | port as u64) ^ PORT_SEED) as u32) & (SCAN_BITS - 1)
}

const HOST_SEED: u64 = 0x2545_f491_4f6c_dd1d;
const PORT_SEED: u64 = 0x5851_f42d_4c95_7f2d;

/// Sets `bit` in `map`; returns the number of bits set afterwards.
#[inline(always)]
pub fn set_and_count(map: &mut [u64; WORDS], bit: u32) -> u32 {
    let i = (bit / 64) as usize & (WORDS - 1);
    map[i] |= 1 << (bit % 64);
    let mut n = 0;
    let mut w = 0;
    while w < WORDS {
        n += popcount(map[w]);
        w += 1;
    }
    n
}

/// Bits set in `x`, without a popcount instruction (BPF has none): the
/// classic SWAR sum.
#[inline(always)]
pub const fn popcount(mut x: u64) -> u32 {
    x -= (x >> 1) & 0x5555_5555_5555_5555;
    x = (x & 0x3333_3333_3333_3333) + ((x >> 2) & 0x3333_3333_3333_3333);
    x = (x + (x >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (x.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn popcount_counts() {
        for x in [
            0u64,
            1,
            3,
            u64::MAX,
            0x8000_0000_0000_0001,
            0xdead_beef_cafe,
        ] {
            assert_eq!(popcount(x), x.count_ones(), "{x:#x}");
        }
    }

    #[test]
    fn thresholds_in_bits() {
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(25), 24);
        assert_eq!(bits_for(100), 83);
        assert!(bits_for(MAX_SCAN_THRESHOLD) < SCAN_BITS);
    }

    /// The estimate's error as the module states it: over many simulated
    /// users, n distinct destinations set about bits_for(n) bits, and the
    /// threshold is crossed by the n-th destination within a few percent.
    #[test]
    fn crossing_the_threshold_is_within_a_few_percent_of_n() {
        for n in [25u32, 100, 200] {
            let k = bits_for(n);
            let mut crossings = std::vec::Vec::new();
            for user in 0..400u64 {
                let mut map = [0u64; WORDS];
                let mut at = None;
                for d in 0..(3 * n as u64) {
                    let addr = [user << 32, d.wrapping_mul(0x9e37_79b9) ^ 0xffff_0000];
                    if set_and_count(&mut map, host_bit(addr)) >= k {
                        at = Some(d + 1);
                        break;
                    }
                }
                crossings.push(at.expect("crossed within 3n") as f64);
            }
            let mean = crossings.iter().sum::<f64>() / crossings.len() as f64;
            let err = (mean - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.08, "n = {n}: crossed at {mean:.1} on average");
        }
    }

    #[test]
    fn ports_and_protocols_set_different_bits() {
        let bits: std::collections::HashSet<u32> = (0..64).map(|p| port_bit(6, p)).collect();
        assert!(bits.len() > 50, "{}", bits.len());
        assert_ne!(
            (0..16)
                .map(|p| port_bit(6, p))
                .collect::<std::vec::Vec<_>>(),
            (0..16)
                .map(|p| port_bit(17, p))
                .collect::<std::vec::Vec<_>>()
        );
    }
}
