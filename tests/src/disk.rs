//! A simulated disk whose syncs may fail. Drawn per seed from a stream of
//! its own, so a seed that draws the healthy disk replays exactly as it did
//! before failing disks existed.
//!
//! When a sync fails, what reached the disk is a prefix of the `Ready`
//! contract's order (rule D1): nothing, or the snapshot, or the snapshot and
//! a prefix of the entries (a torn last record is dropped, as a checksum
//! would drop it), or everything but the hard state with the membership —
//! never the hard state without what comes before it. The host must then
//! send, reveal and advance nothing of that `Ready`, and stop the node, which
//! restarts from what reached the disk (rule D4).

use crate::rng::Rng;

/// Lowest and highest failure rate a failing disk draws (per sync).
const DRAWN_RATES: (f64, f64) = (1.0 / 500.0, 1.0 / 30.0);

/// What reached the disk of a sync that failed: a prefix of the contract's
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    /// Nothing of the `Ready`.
    Nothing,
    /// The snapshot alone.
    Snapshot,
    /// The snapshot (if any) and this many of the first entries.
    Entries(usize),
    /// The snapshot and every entry; not the hard state nor the membership.
    AllButState,
}

/// How a run's disk behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Disk {
    /// Chance that a sync (the persist of one `Ready`) fails; 0: healthy.
    pub fail_rate: f64,
}

impl Disk {
    /// A disk whose syncs always succeed.
    pub fn healthy() -> Self {
        Disk { fail_rate: 0.0 }
    }

    /// A disk whose syncs fail with chance `rate` (0: healthy).
    pub fn failing(rate: f64) -> Self {
        Disk {
            fail_rate: rate.clamp(0.0, 1.0),
        }
    }

    /// Whether no sync ever fails.
    pub fn is_healthy(&self) -> bool {
        self.fail_rate <= 0.0
    }

    /// Draws the disk for `seed`: half the seeds get a failing one, with a
    /// rate between 1/500 and 1/30 (log-uniform).
    pub fn draw(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xd15c_fa11_5eed);
        if !rng.chance(0.5) {
            return Disk::healthy();
        }
        let (lo, hi) = (DRAWN_RATES.0.ln(), DRAWN_RATES.1.ln());
        Disk::failing((lo + rng.unit() * (hi - lo)).exp())
    }

    /// The seed of the disk's own stream of choices during a run.
    pub fn stream(seed: u64) -> Rng {
        Rng::new(seed ^ 0xd15c_d1ce_5eed)
    }

    /// Whether the sync of one `Ready` fails, and if so what reached the
    /// disk. A `Ready` with nothing to write (no snapshot, no entries, no
    /// hard state or membership) needs no sync and never fails. A healthy
    /// disk draws nothing.
    pub fn sync(
        &self,
        rng: &mut Rng,
        snapshot: bool,
        entries: usize,
        state: bool,
    ) -> Option<Reached> {
        if self.is_healthy() || !(snapshot || entries > 0 || state) {
            return None;
        }
        if !rng.chance(self.fail_rate) {
            return None;
        }
        let mut prefixes = vec![Reached::Nothing, Reached::AllButState];
        if snapshot {
            prefixes.push(Reached::Snapshot);
        }
        if entries >= 2 {
            prefixes.push(Reached::Entries(
                rng.range_inclusive(1, entries as u64 - 1) as usize
            ));
        }
        Some(rng.pick(&prefixes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_seeds_fail_within_the_drawn_rates() {
        let disks: Vec<Disk> = (0..400).map(Disk::draw).collect();
        let failing = disks.iter().filter(|d| !d.is_healthy()).count();
        assert!((150..250).contains(&failing), "{failing} failing of 400");
        assert!(disks.iter().all(|d| d.is_healthy()
            || (DRAWN_RATES.0 * 0.99..=DRAWN_RATES.1 * 1.01).contains(&d.fail_rate)));
        assert_eq!(Disk::draw(7), Disk::draw(7), "a seed fixes its disk");
    }

    #[test]
    fn a_failed_sync_reaches_a_prefix_of_what_the_ready_holds() {
        let disk = Disk::failing(1.0);
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            match disk.sync(&mut rng, false, 3, true) {
                Some(Reached::Entries(n)) => assert!((1..3).contains(&n)),
                Some(Reached::Snapshot) => panic!("no snapshot to reach the disk"),
                Some(_) => {}
                None => panic!("a rate of 1 always fails"),
            }
        }
        assert_eq!(
            disk.sync(&mut rng, false, 0, false),
            None,
            "nothing to sync"
        );
        assert_eq!(Disk::healthy().sync(&mut rng, true, 5, true), None);
    }
}
