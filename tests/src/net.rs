//! The simulated network: per-link delay, drop, duplication, clogging and
//! cut links.

use crate::faults::FaultMix;
use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Links and their faults.
#[derive(Debug, Default)]
pub struct Net {
    /// Directed links that lose everything.
    cut: BTreeSet<(u64, u64)>,
    /// Directed links whose messages wait until the given time.
    clogged: BTreeMap<(u64, u64), u64>,
}

impl Net {
    /// Cuts a -> b.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
    }

    /// Cuts both directions between a and b.
    pub fn cut_both(&mut self, a: u64, b: u64) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Holds a -> b until `until`.
    pub fn clog(&mut self, a: u64, b: u64, until: u64) {
        self.clogged.insert((a, b), until);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.clogged.clear();
    }

    /// Whether a -> b is up.
    pub fn connected(&self, a: u64, b: u64) -> bool {
        !self.cut.contains(&(a, b))
    }

    /// Whether any link is cut or clogged.
    pub fn faulty(&self) -> bool {
        !self.cut.is_empty() || !self.clogged.is_empty()
    }

    /// When (if ever) copies of a message sent now from a to b arrive.
    /// `faults` false gives one copy after the minimum delay range.
    pub fn route(
        &self,
        rng: &mut Rng,
        mix: &FaultMix,
        faults: bool,
        a: u64,
        b: u64,
        now: u64,
    ) -> Vec<u64> {
        if !self.connected(a, b) {
            return Vec::new();
        }
        if faults && rng.chance(mix.drop) {
            return Vec::new();
        }
        let copies = if faults && rng.chance(mix.duplicate) {
            2
        } else {
            1
        };
        let floor = self.clogged.get(&(a, b)).copied().unwrap_or(0);
        (0..copies)
            .map(|_| {
                let mut d = rng.range_inclusive(mix.min_delay, mix.max_delay);
                if faults && rng.chance(mix.tail) {
                    d *= 10;
                }
                (now + d).max(floor)
            })
            .collect()
    }
}
