//! Who votes and who learns, and how a membership change transforms it
//! (PROTOCOL.md rules M1-M3).

use crate::config::validate_membership;
use crate::errors::{ConfChangeError, ConfigError};
use paxos_proto::{ConfChange, ConfChangeType, ConfState};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Sorted.
    pub(crate) voters: Vec<u64>,
    /// Sorted.
    pub(crate) learners: Vec<u64>,
    /// The slot of the change that made this membership (0: the initial
    /// one); a change proposed on it names it as its base.
    pub(crate) since: u64,
}

impl Membership {
    pub(crate) fn new(voters: &[u64], learners: &[u64]) -> Result<Self, ConfigError> {
        validate_membership(voters, learners)?;
        let mut voters = voters.to_vec();
        let mut learners = learners.to_vec();
        voters.sort_unstable();
        learners.sort_unstable();
        Ok(Membership {
            voters,
            learners,
            since: 0,
        })
    }

    pub(crate) fn from_conf_state(cs: &ConfState) -> Result<Self, ConfigError> {
        let mut m = Membership::new(&cs.voters, &cs.learners)?;
        m.since = cs.since;
        Ok(m)
    }

    pub(crate) fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            since: self.since,
        }
    }

    /// The membership after the change decided at `slot`, or `None` when
    /// the change is void (see [`ConfChange::outcome`]) or its result is
    /// not a valid membership.
    pub(crate) fn after(&self, slot: u64, cc: &ConfChange) -> Option<Membership> {
        Membership::from_conf_state(&cc.outcome(&self.to_conf_state(), slot)?).ok()
    }

    /// Votes needed for a majority of the voters.
    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub(crate) fn is_voter(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    pub(crate) fn is_learner(&self, id: u64) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

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
        Membership::new(&voters, &learners).map_err(ConfChangeError::Invalid)
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
        assert_eq!(m.quorum(), 2);
        assert!(m.is_voter(2) && !m.is_voter(9) && m.contains(9) && !m.contains(4));
        assert_eq!(m.others(2).collect::<Vec<_>>(), vec![1, 3, 9]);
        assert_eq!(
            Membership::new(&[1, 2, 3, 4], &[]).expect("valid").quorum(),
            3
        );
        assert_eq!(Membership::new(&[1], &[]).expect("valid").quorum(), 1);
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
            for a in subsets(&base.voters, base.quorum()) {
                for b in subsets(&after.voters, after.quorum()) {
                    assert!(a.iter().any(|x| b.contains(x)), "{a:?} vs {b:?}");
                }
            }
        }
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
