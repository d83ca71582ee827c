//! Who votes and who learns, and how a membership change transforms it
//! (PROTOCOL.md rules M1-M3).

use crate::config::validate_membership;
use crate::errors::{ConfChangeError, ConfigError};
use paxos_proto::{ConfChange, ConfChangeType, ConfState, Quorums};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Sorted.
    pub(crate) voters: Vec<u64>,
    /// Sorted.
    pub(crate) learners: Vec<u64>,
    /// The slot of the change that made this membership (0: the initial
    /// one); a change proposed on it names it as its base.
    pub(crate) since: u64,
    /// The configured phase-1 and phase-2 quorum sizes (0: a majority),
    /// the cluster's, kept across changes (rule M4).
    configured: (u32, u32),
    /// The sizes in effect for these voters.
    quorums: Quorums,
}

impl Membership {
    pub(crate) fn new(voters: &[u64], learners: &[u64]) -> Result<Self, ConfigError> {
        validate_membership(voters, learners)?;
        let mut voters = voters.to_vec();
        let mut learners = learners.to_vec();
        voters.sort_unstable();
        learners.sort_unstable();
        let quorums = Quorums::for_voters(voters.len(), 0, 0);
        Ok(Membership {
            voters,
            learners,
            since: 0,
            configured: (0, 0),
            quorums,
        })
    }

    /// This membership with the configured quorum sizes `phase1` and
    /// `phase2` (0: a majority); the sizes in effect follow from them and
    /// the number of voters ([`Quorums::for_voters`]).
    pub(crate) fn with_quorums(mut self, phase1: u32, phase2: u32) -> Self {
        self.configured = (phase1, phase2);
        self.quorums = Quorums::for_voters(self.voters.len(), phase1, phase2);
        self
    }

    pub(crate) fn from_conf_state(cs: &ConfState) -> Result<Self, ConfigError> {
        let mut m = Membership::new(&cs.voters, &cs.learners)?
            .with_quorums(cs.phase1_quorum, cs.phase2_quorum);
        m.since = cs.since;
        Ok(m)
    }

    pub(crate) fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            since: self.since,
            phase1_quorum: self.configured.0,
            phase2_quorum: self.configured.1,
        }
    }

    /// The membership after the change decided at `slot`, or `None` when
    /// the change is void (see [`ConfChange::outcome`]) or its result is
    /// not a valid membership.
    pub(crate) fn after(&self, slot: u64, cc: &ConfChange) -> Option<Membership> {
        Membership::from_conf_state(&cc.outcome(&self.to_conf_state(), slot)?).ok()
    }

    /// The quorum sizes in effect (rule M4).
    pub(crate) fn quorums(&self) -> Quorums {
        self.quorums
    }

    /// Promises a candidate needs, and pre-vote grants (rules P2, E1, M4).
    pub(crate) fn phase1_quorum(&self) -> usize {
        self.quorums.phase1
    }

    /// Acceptances that choose a value, and everything else a leadership
    /// counts: check quorum, read confirmation, leases (rules L1, E4, R1,
    /// R2, M4).
    pub(crate) fn phase2_quorum(&self) -> usize {
        self.quorums.phase2
    }

    // A linear scan: memberships are small (at most MAX_VOTERS voters,
    // mostly three or five), and it is asked for every message stepped.
    #[inline]
    pub(crate) fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    #[inline]
    pub(crate) fn is_learner(&self, id: u64) -> bool {
        self.learners.contains(&id)
    }

    #[inline]
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member but `me`, voters first.
    pub(crate) fn others(&self, me: u64) -> impl Iterator<Item = u64> + '_ {
        self.voters
            .iter()
            .chain(&self.learners)
            .copied()
            .filter(move |&id| id != me)
    }

    /// The membership after `cc`. One node changes at a time, and a voter
    /// is only ever a promoted learner: so any majority of the voters before
    /// and any majority after share a node, which phase 1 relies on.
    pub(crate) fn apply(&self, cc: &ConfChange) -> Result<Membership, ConfChangeError> {
        let id = cc.node_id;
        if id == 0 {
            return Err(ConfChangeError::ZeroId);
        }
        let mut voters = self.voters.clone();
        let mut learners = self.learners.clone();
        match ConfChangeType::try_from(cc.change_type) {
            Ok(ConfChangeType::AddLearner) => {
                if self.contains(id) {
                    return Err(ConfChangeError::AlreadyMember(id));
                }
                learners.push(id);
            }
            Ok(ConfChangeType::PromoteLearner) => {
                if !self.is_learner(id) {
                    return Err(ConfChangeError::NotLearner(id));
                }
                learners.retain(|&l| l != id);
                voters.push(id);
            }
            Ok(ConfChangeType::RemoveNode) => {
                if !self.contains(id) {
                    return Err(ConfChangeError::NotMember(id));
                }
                if self.voters == [id] {
                    return Err(ConfChangeError::LastVoter);
                }
                voters.retain(|&v| v != id);
                learners.retain(|&l| l != id);
            }
            Err(_) => return Err(ConfChangeError::UnknownType(cc.change_type)),
        }
        Ok(Membership::new(&voters, &learners)
            .map_err(ConfChangeError::Invalid)?
            .with_quorums(self.configured.0, self.configured.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(t: ConfChangeType, id: u64) -> ConfChange {
        ConfChange {
            change_type: t as i32,
            node_id: id,
            ..ConfChange::default()
        }
    }

    #[test]
    fn quorum_and_lookup() {
        let m = Membership::new(&[3, 1, 2], &[9]).expect("valid");
        assert_eq!((m.phase1_quorum(), m.phase2_quorum()), (2, 2));
        assert!(m.is_voter(2) && !m.is_voter(9) && m.contains(9) && !m.contains(4));
        assert_eq!(m.others(2).collect::<Vec<_>>(), vec![1, 3, 9]);
        assert_eq!(
            Membership::new(&[1, 2, 3, 4], &[])
                .expect("valid")
                .phase1_quorum(),
            3
        );
        assert_eq!(
            Membership::new(&[1], &[]).expect("valid").phase2_quorum(),
            1
        );
        let flexible = Membership::new(&[1, 2, 3, 4, 5], &[])
            .expect("valid")
            .with_quorums(4, 2);
        assert_eq!((flexible.phase1_quorum(), flexible.phase2_quorum()), (4, 2));
        assert_eq!(
            Membership::from_conf_state(&flexible.to_conf_state()),
            Ok(flexible)
        );
    }

    #[test]
    fn changes_add_promote_remove_and_reject_nonsense() {
        use ConfChangeType::*;
        let m = Membership::new(&[1, 2, 3], &[]).expect("valid");
        let m = m.apply(&cc(AddLearner, 4)).expect("add");
        assert_eq!(
            (m.voters.clone(), m.learners.clone()),
            (vec![1, 2, 3], vec![4])
        );
        let m = m.apply(&cc(PromoteLearner, 4)).expect("promote");
        assert_eq!(m.voters, vec![1, 2, 3, 4]);
        let m = m.apply(&cc(RemoveNode, 1)).expect("remove");
        assert_eq!(
            (m.voters.clone(), m.learners.clone()),
            (vec![2, 3, 4], vec![])
        );
        assert_eq!(
            m.apply(&cc(AddLearner, 2)),
            Err(ConfChangeError::AlreadyMember(2))
        );
        assert_eq!(
            m.apply(&cc(PromoteLearner, 3)),
            Err(ConfChangeError::NotLearner(3))
        );
        assert_eq!(
            m.apply(&cc(RemoveNode, 9)),
            Err(ConfChangeError::NotMember(9))
        );
        assert_eq!(m.apply(&cc(AddLearner, 0)), Err(ConfChangeError::ZeroId));
        let one = Membership::new(&[1], &[]).expect("valid");
        assert_eq!(
            one.apply(&cc(RemoveNode, 1)),
            Err(ConfChangeError::LastVoter)
        );
        let bad = ConfChange {
            change_type: 42,
            node_id: 5,
            ..ConfChange::default()
        };
        assert_eq!(one.apply(&bad), Err(ConfChangeError::UnknownType(42)));
    }

    /// The single-change rule's point: majorities before and after a change
    /// always intersect.
    #[test]
    fn majorities_across_one_change_intersect() {
        use ConfChangeType::*;
        let base = Membership::new(&[1, 2, 3, 4], &[5]).expect("valid");
        for change in [cc(PromoteLearner, 5), cc(RemoveNode, 1), cc(RemoveNode, 4)] {
            let after = base.apply(&change).expect("valid");
            for a in subsets(&base.voters, base.phase1_quorum()) {
                for b in subsets(&after.voters, after.phase1_quorum()) {
                    assert!(a.iter().any(|x| b.contains(x)), "{a:?} vs {b:?}");
                }
            }
        }
    }

    /// Rule M4: a change keeps the configured sizes, and in every
    /// membership each phase-1 quorum meets each phase-2 quorum.
    #[test]
    fn flexible_sizes_follow_changes_and_intersect() {
        use ConfChangeType::*;
        let mut m = Membership::new(&[1, 2, 3, 4, 5], &[6])
            .expect("valid")
            .with_quorums(4, 2);
        for change in [
            cc(RemoveNode, 1),
            cc(RemoveNode, 2),
            cc(PromoteLearner, 6),
            cc(RemoveNode, 3),
            cc(RemoveNode, 4),
        ] {
            m = m.apply(&change).expect("valid");
            assert_eq!(m.configured, (4, 2));
            let n = m.voters.len();
            for a in subsets(&m.voters, m.phase1_quorum()) {
                for b in subsets(&m.voters, m.phase2_quorum()) {
                    assert!(
                        a.iter().any(|x| b.contains(x)),
                        "{n} voters: {a:?} vs {b:?}"
                    );
                }
            }
        }
        // Down to two voters, then one: both must agree to choose, then
        // the last voter alone.
        assert_eq!(m.voters.len(), 2);
        assert_eq!((m.phase1_quorum(), m.phase2_quorum()), (2, 2));
        let one = m.apply(&cc(RemoveNode, 5)).expect("valid");
        assert_eq!((one.phase1_quorum(), one.phase2_quorum()), (1, 1));
    }

    fn subsets(items: &[u64], k: usize) -> Vec<Vec<u64>> {
        (0u32..1 << items.len())
            .filter(|m| m.count_ones() as usize == k)
            .map(|m| {
                (0..items.len())
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| items[i])
                    .collect()
            })
            .collect()
    }
}
