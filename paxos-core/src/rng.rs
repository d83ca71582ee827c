//! The workspace's one seeded PRNG (SplitMix64, Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", 2014): the only
//! randomness in the node, so a seed replays every timeout bit for bit.
//! The simulator, the benches and kvnode's load generator draw from it too.

/// A seeded SplitMix64 generator: 64 bits of state, one add and two
/// multiply-xorshift rounds per draw. Not cryptographic; it picks election
/// timeouts, schedules and workloads reproducibly.
///
/// ```
/// use paxos_core::SplitMix64;
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((10..20).contains(&a.range(10, 20)));
/// ```
#[derive(Clone, Debug, Hash)]
pub struct SplitMix64(u64);

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The node's generator: `seed` with the node's id mixed in, so nodes
    /// sharing one configured seed still draw different timeouts.
    pub(crate) fn for_node(seed: u64, id: u64) -> Self {
        let mut p = SplitMix64(seed ^ id.wrapping_mul(GAMMA));
        p.next_u64();
        p
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[lo, hi)`, like `lo..hi`; `lo` when the range is empty.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// A value in `[lo, hi]`, like `lo..=hi`; `lo` when the range is empty.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            // The whole of u64: every value is in range.
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(mut p: SplitMix64) -> Vec<u64> {
        (0..5).map(|_| p.next_u64()).collect()
    }

    #[test]
    fn same_seed_same_sequence_and_ids_differ() {
        assert_eq!(
            draws(SplitMix64::for_node(7, 1)),
            draws(SplitMix64::for_node(7, 1))
        );
        assert_ne!(
            draws(SplitMix64::for_node(7, 1)),
            draws(SplitMix64::for_node(7, 2))
        );
    }

    #[test]
    fn known_answer() {
        // SplitMix64's published first output for state 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut p = SplitMix64::for_node(1, 1);
        for _ in 0..1000 {
            assert!((10..20).contains(&p.range(10, 20)));
            assert!((10..=20).contains(&p.range_inclusive(10, 20)));
        }
        assert_eq!(p.range(5, 5), 5);
        assert_eq!(p.range_inclusive(5, 5), 5);
        assert_eq!(p.range_inclusive(6, 5), 6);
        p.range_inclusive(0, u64::MAX);
    }
}
