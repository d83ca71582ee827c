//! The simulator's seeded PRNG: a thin layer over the workspace's one
//! generator, [`paxos_core::SplitMix64`]. Every choice of a run comes from
//! here, so a seed replays the run exactly.

use paxos_core::SplitMix64;

/// Xored into every seed, so the simulator's streams differ from a bare
/// `SplitMix64::new(seed)` (and from the nodes' own generators).
const SEED_MIX: u64 = 0x6A09_E667_F3BC_C909;

/// A seeded pseudo-random generator: [`SplitMix64`]'s bits, plus the
/// helpers the simulator draws with.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator for `seed` (mixed with a fixed constant first).
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed ^ SEED_MIX))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A value in `[lo, hi]`, like `lo..=hi`; `lo` when empty.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        self.0.range_inclusive(lo, hi)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// An independent generator derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_splitmix64_of_the_mixed_seed() {
        let mut r = Rng::new(9);
        let mut s = SplitMix64::new(9 ^ SEED_MIX);
        for _ in 0..8 {
            assert_eq!(r.next_u64(), s.next_u64());
        }
        assert_eq!(r.range_inclusive(3, 9), s.range_inclusive(3, 9));
    }
}
