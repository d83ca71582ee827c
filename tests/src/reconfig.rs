//! Membership churn for the simulator: replace voters one at a time with
//! brand-new empty nodes (add as learner, let it catch up, promote, remove
//! the old voter), as an operator would. Each step is decided from the
//! membership the leader reports, so a change lost to a crash or a
//! partition is simply proposed again.

use paxos_core::proto::ConfChangeType;

/// What the driver asks of the simulator next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Boot the new node with empty storage.
    Boot(u64),
    /// Propose this change at the leader.
    Propose(ConfChangeType, u64),
    /// The old voter is out: stop it for good.
    Retire(u64),
    /// Nothing to do now.
    Wait,
}

/// One replacement in progress: `new` takes `old`'s place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The spare joining.
    pub new: u64,
    /// The voter leaving.
    pub old: u64,
    booted: bool,
}

impl Replacement {
    /// Starts replacing `old` with `new`.
    pub fn new(new: u64, old: u64) -> Self {
        Replacement {
            new,
            old,
            booted: false,
        }
    }

    /// The next step, given the leader's membership and whether the new
    /// node has caught up with the leader.
    pub fn next(&mut self, voters: &[u64], learners: &[u64], caught_up: bool) -> Action {
        if !self.booted {
            self.booted = true;
            return Action::Boot(self.new);
        }
        let (is_voter, is_learner) = (voters.contains(&self.new), learners.contains(&self.new));
        if !is_voter && !is_learner {
            return Action::Propose(ConfChangeType::AddLearner, self.new);
        }
        if is_learner {
            return if caught_up {
                Action::Propose(ConfChangeType::PromoteLearner, self.new)
            } else {
                Action::Wait
            };
        }
        if voters.contains(&self.old) {
            return Action::Propose(ConfChangeType::RemoveNode, self.old);
        }
        Action::Retire(self.old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_add_promote_remove_retire_and_repeats_lost_steps() {
        let mut r = Replacement::new(4, 1);
        assert_eq!(r.next(&[1, 2, 3], &[], false), Action::Boot(4));
        let add = Action::Propose(ConfChangeType::AddLearner, 4);
        assert_eq!(r.next(&[1, 2, 3], &[], false), add);
        // The change was lost: proposed again.
        assert_eq!(r.next(&[1, 2, 3], &[], false), add);
        assert_eq!(r.next(&[1, 2, 3], &[4], false), Action::Wait);
        let promote = Action::Propose(ConfChangeType::PromoteLearner, 4);
        assert_eq!(r.next(&[1, 2, 3], &[4], true), promote);
        let remove = Action::Propose(ConfChangeType::RemoveNode, 1);
        assert_eq!(r.next(&[1, 2, 3, 4], &[], true), remove);
        assert_eq!(r.next(&[2, 3, 4], &[], true), Action::Retire(1));
    }
}
