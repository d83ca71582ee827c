//! Lease reads (`Config::read_lease_ticks`; the safety argument is on that
//! field). The leader counts its own ticks; a heartbeat round acknowledged
//! by a quorum grants a lease from the tick the round was *sent*, because
//! each acknowledging voter restarted its stickiness window no earlier.

use std::collections::VecDeque;

/// Rounds remembered: a round older than this many is never the one that
/// completes a quorum while newer ones are outstanding.
const ROUNDS: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct Lease {
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
    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
    }

    pub(crate) fn on_round_sent(&mut self, seq: u64) {
        if self.sent.len() == ROUNDS {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, self.ticks));
    }

    /// A quorum acknowledged every round up to `seq`.
    pub(crate) fn on_quorum_acked(&mut self, seq: u64, lease_ticks: u32) {
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

    pub(crate) fn valid(&self) -> bool {
        !self.void && self.ticks < self.until
    }

    pub(crate) fn void(&mut self) {
        self.void = true;
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
