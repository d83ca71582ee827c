//! Lease reads (`Config::read_lease_ticks`; the safety argument is on that
//! field). The leader counts its own ticks; a heartbeat round acknowledged
//! by a quorum grants a lease from the tick the round was *sent*, because
//! each acknowledging voter restarted its stickiness window no earlier.

use super::{Node, Role};
use crate::progress::quorum_value;
use crate::storage::Storage;
use std::collections::VecDeque;

/// Rounds remembered: a round older than this many is never the one that
/// completes a quorum while newer ones are outstanding.
const ROUNDS: usize = 256;

#[derive(Clone, Debug, Hash, Default)]
pub(super) struct Lease {
    /// The leader's ticks in this leadership.
    ticks: u64,
    /// (heartbeat round, tick it was sent), oldest first.
    sent: VecDeque<(u64, u64)>,
    /// The lease holds while `ticks < until`.
    until: u64,
    /// A leadership transfer started: no lease for the rest of this
    /// leadership.
    void: bool,
}

impl Lease {
    pub(super) fn tick(&mut self) {
        self.ticks += 1;
    }

    pub(super) fn on_round_sent(&mut self, seq: u64) {
        if self.sent.len() == ROUNDS {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, self.ticks));
    }

    /// A quorum acknowledged every round up to `seq`.
    pub(super) fn on_quorum_acked(&mut self, seq: u64, lease_ticks: u32) {
        let mut granted = None;
        while let Some(&(s, at)) = self.sent.front() {
            if s > seq {
                break;
            }
            granted = Some(at);
            self.sent.pop_front();
        }
        if let Some(at) = granted {
            self.until = self.until.max(at + u64::from(lease_ticks));
        }
    }

    pub(super) fn valid(&self) -> bool {
        !self.void && self.ticks < self.until
    }

    pub(super) fn void(&mut self) {
        self.void = true;
    }
}

impl<S: Storage> Node<S> {
    /// Lease reads: every round up to the one a quorum acknowledged renews
    /// the lease from when it was sent.
    pub(super) fn renew_lease(&mut self) {
        let mut lease_ticks = self.cfg.read_lease_ticks;
        if lease_ticks == 0 {
            return;
        }
        if planted!(self.cfg, LeaseOutlivesElection) {
            lease_ticks *= 4;
        }
        let acked = self.quorum_acked_round();
        if let Role::Leader(ls) = &mut self.role {
            ls.lease.on_quorum_acked(acked, lease_ticks);
        }
    }

    /// The highest heartbeat round a quorum of voters acknowledged in this
    /// ballot (the leader counts as acknowledging every round).
    pub(super) fn quorum_acked_round(&self) -> u64 {
        // Rule M4: a phase-2 quorum of acknowledgements meets every
        // phase-1 quorum, so no other leader was elected before them.
        let mut quorum = self.members.phase2_quorum();
        if planted!(self.cfg, ConfirmWithTooFew) {
            quorum = quorum.saturating_sub(1).max(1);
        }
        let Role::Leader(ls) = &self.role else {
            return 0;
        };
        let mut acked: Vec<u64> = self
            .members
            .voters
            .iter()
            .map(|&v| {
                if v == self.id {
                    u64::MAX
                } else {
                    ls.progress
                        .iter()
                        .find(|p| p.id == v)
                        .map_or(0, |p| p.acked_seq)
                }
            })
            .collect();
        quorum_value(&mut acked, quorum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_runs_from_the_acknowledged_round_sent_tick() {
        let mut l = Lease::default();
        assert!(!l.valid(), "no lease before any quorum round");
        l.on_round_sent(1); // at tick 0
        l.tick();
        l.tick();
        l.on_round_sent(2); // at tick 2
        l.tick();
        l.on_quorum_acked(1, 4);
        assert!(l.valid()); // tick 3 < 0 + 4
        l.tick();
        assert!(
            !l.valid(),
            "the lease counts from sending, not from the ack"
        );
        l.on_quorum_acked(2, 4);
        assert!(l.valid()); // tick 4 < 2 + 4
        l.void();
        assert!(!l.valid(), "a transfer ends lease reads");
    }
}
