//! A small deterministic generator (xorshift64*) for the tests that walk
//! thousands of generated cases (the kernel's differential tests, the
//! layering ceilings): the same cases on every run, so a failure can be
//! reproduced from its index. Hand-written rather than `rand`, because the
//! tests' cases are this exact sequence.

/// xorshift64* state; a zero seed would stay zero, so seed it with anything
/// else.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        debug_assert_ne!(seed, 0, "xorshift never leaves zero");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// True once in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n)
    }
}
