//! What holds between any two calls of the host: `RawNode` checks it at the
//! end of every entry point, in debug builds. Each property is one
//! assertion, and each names the simulator check that sees the same
//! property from outside the node (`paxos_sim::Checker`).

use super::{Node, Role};
use crate::storage::Storage;
use crate::validate::MAX_SLOT;

impl<S: Storage> Node<S> {
    /// Whether the node's own assertions hold it to the rules: not while a
    /// planted bug breaks one on purpose (those runs must fail in the
    /// simulator's checker instead).
    pub(super) fn checks_on(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if self.cfg.planted_bug.is_some() {
            return false;
        }
        true
    }

    /// Checks, in debug builds, what holds between any two calls of the
    /// host. Skipped while a planted bug is active, which may break one on
    /// purpose: those runs must fail in the simulator's checker instead.
    pub(crate) fn assert_invariants(&self) {
        if !self.checks_on() {
            return;
        }
        // Every campaign goes above the highest round seen (rule P1).
        // Checker: promises never decrease (`on_persist`).
        debug_assert!(
            self.promised.round <= self.max_round,
            "promised {} above the highest round seen {}",
            self.promised,
            self.max_round
        );
        // Rule V1: no slot past MAX_SLOT ever enters the log, so `+ 1` on
        // a slot never overflows.
        debug_assert!(self.log.last() <= MAX_SLOT, "a slot past MAX_SLOT");
        // The committed watermark is held or compacted (rules F1, S1).
        // Checker: an applied slot was chosen (`on_apply`).
        debug_assert!(
            self.log.committed <= self.log.last().max(self.log.snapshot_floor()),
            "committed {} past the log ({}) and the snapshot ({})",
            self.log.committed,
            self.log.last(),
            self.log.snapshot_floor()
        );
        match &self.role {
            Role::Leader(ls) => {
                // A leader leads in its own ballot, the one it promised
                // (a higher promise ends its leadership), as a voter, and
                // knows it leads. Checker: one leader per ballot
                // (`on_leader`).
                debug_assert_eq!(ls.ballot.node, self.id, "leading in another's ballot");
                debug_assert_eq!(
                    ls.ballot, self.promised,
                    "leader's ballot is not its promise"
                );
                debug_assert!(self.members.is_voter(self.id), "a leader that is no voter");
                debug_assert_eq!(
                    self.leader,
                    Some(self.id),
                    "a leader that does not know it leads"
                );
                // Progress is kept for other members only, once each.
                debug_assert!(
                    ls.progress.iter().all(|p| p.id != self.id),
                    "a leader tracking its own progress"
                );
                debug_assert!(
                    ls.progress
                        .iter()
                        .enumerate()
                        .all(|(i, p)| ls.progress[..i].iter().all(|q| q.id != p.id)),
                    "a peer's progress kept twice"
                );
            }
            Role::Candidate(ph) => {
                debug_assert_eq!(ph.ballot.node, self.id, "campaigning in another's ballot");
                debug_assert!(ph.ballot <= self.promised, "candidate above its promise");
            }
            Role::Follower | Role::PreCandidate(_) => {}
        }
    }
}
