//! Flexible quorums (Howard, Malkhi and Spiegelman, "Flexible Paxos:
//! Quorum intersection revisited", 2016): Paxos is safe when every
//! phase-1 quorum meets every phase-2 quorum, whatever their sizes.

use crate::ConfState;

/// The quorum sizes in effect for one membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quorums {
    /// Promises a candidate needs (phase 1), and pre-vote grants.
    pub phase1: usize,
    /// Acceptances that choose a value (phase 2). Everything else a
    /// leadership counts needs this many too: a leader's check quorum, and
    /// the acknowledgements that confirm a read or grant a lease, because a
    /// set of this size meets every phase-1 quorum.
    pub phase2: usize,
    /// The voters.
    pub voters: usize,
}

impl Quorums {
    /// The sizes in effect for `voters` voters, from the configured sizes
    /// (0: a majority). One rule, applied alike by every replica to every
    /// membership, so a change of voters changes the sizes the same way
    /// everywhere:
    /// - one voter: both sizes are 1;
    /// - otherwise `phase2` is the configured size within `[2, voters]` (a
    ///   leader must not decide alone: deciding its own removal it would
    ///   leave the others no trace of it), and
    /// - `phase1` is the configured size within `[1, voters]`, raised to
    ///   `voters - phase2 + 1` where needed, so the two always intersect.
    ///
    /// ```
    /// use paxos_proto::Quorums;
    /// let q = Quorums::for_voters(5, 4, 2);
    /// assert_eq!((q.phase1, q.phase2), (4, 2));
    /// // Majorities by default.
    /// let q = Quorums::for_voters(5, 0, 0);
    /// assert_eq!((q.phase1, q.phase2), (3, 3));
    /// // After a removal the pair still intersects.
    /// let q = Quorums::for_voters(4, 3, 1);
    /// assert_eq!((q.phase1, q.phase2), (3, 2));
    /// ```
    pub fn for_voters(voters: usize, phase1: u32, phase2: u32) -> Quorums {
        let majority = voters / 2 + 1;
        if voters <= 1 {
            return Quorums {
                phase1: 1,
                phase2: 1,
                voters,
            };
        }
        let configured = |q: u32| match usize::try_from(q) {
            Ok(0) | Err(_) => majority,
            Ok(q) => q,
        };
        let phase2 = configured(phase2).clamp(2, voters);
        let phase1 = configured(phase1).clamp(1, voters).max(voters - phase2 + 1);
        Quorums {
            phase1,
            phase2,
            voters,
        }
    }
}

impl ConfState {
    /// The quorum sizes in effect for this membership.
    pub fn quorums(&self) -> Quorums {
        Quorums::for_voters(self.voters.len(), self.phase1_quorum, self.phase2_quorum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_derived_pair_intersects() {
        for voters in 1..=9usize {
            for p1 in 0..=10u32 {
                for p2 in 0..=10u32 {
                    let q = Quorums::for_voters(voters, p1, p2);
                    assert!(q.phase1 + q.phase2 > voters, "{q:?}");
                    assert!((1..=voters.max(1)).contains(&q.phase1), "{q:?}");
                    assert!((1..=voters.max(1)).contains(&q.phase2), "{q:?}");
                    if voters >= 2 {
                        assert!(q.phase2 >= 2, "{q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn majorities_by_default() {
        for voters in 2..=9usize {
            let q = Quorums::for_voters(voters, 0, 0);
            assert_eq!(q.phase1, voters / 2 + 1);
            assert_eq!(q.phase2, voters / 2 + 1);
        }
    }
}
