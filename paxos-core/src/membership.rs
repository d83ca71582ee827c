//! Who votes and who learns.

use crate::config::validate_membership;
use crate::errors::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Sorted.
    pub(crate) voters: Vec<u64>,
    /// Sorted.
    pub(crate) learners: Vec<u64>,
}

impl Membership {
    pub(crate) fn new(voters: &[u64], learners: &[u64]) -> Result<Self, ConfigError> {
        validate_membership(voters, learners)?;
        let mut voters = voters.to_vec();
        let mut learners = learners.to_vec();
        voters.sort_unstable();
        learners.sort_unstable();
        Ok(Membership { voters, learners })
    }

    /// Votes needed for a majority of the voters.
    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub(crate) fn is_voter(&self, id: u64) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.is_voter(id) || self.learners.binary_search(&id).is_ok()
    }

    /// Every member but `me`, voters first.
    pub(crate) fn others(&self, me: u64) -> impl Iterator<Item = u64> + '_ {
        self.voters
            .iter()
            .chain(&self.learners)
            .copied()
            .filter(move |&id| id != me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
