//! A tiny seeded PRNG (SplitMix64): the only randomness in the node, so a
//! seed replays every timeout bit for bit.

#[derive(Clone, Debug)]
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64, id: u64) -> Self {
        // Mix the id in so nodes sharing one seed still draw different timeouts.
        let mut p = Prng(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        p.next_u64();
        p
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[lo, hi)`; `lo` when the range is empty.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_ids_differ() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut p = Prng::new(7, 1);
                move |_| p.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut p = Prng::new(7, 1);
                move |_| p.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..5)
            .map({
                let mut p = Prng::new(7, 2);
                move |_| p.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn range_stays_in_bounds() {
        let mut p = Prng::new(1, 1);
        for _ in 0..1000 {
            let v = p.range(10, 20);
            assert!((10..20).contains(&v));
        }
        assert_eq!(p.range(5, 5), 5);
    }
}
