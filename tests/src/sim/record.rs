//! The simulator's side of a space-time diagram (`SimOptions::record`):
//! hooks that read the run's state into its [`Diagram`]. They never draw
//! from a random stream nor touch the trace hash, so a recorded run is the
//! same run.
//!
//! [`Diagram`]: crate::diagram::Diagram

use super::Sim;
use crate::diagram::{NodeView, Role};
use crate::faults::Fault;
use paxos_core::proto::Message;

impl Sim {
    /// `id` sent `m`; the network delivers copies at `times`.
    pub(super) fn record_send(&mut self, id: u64, m: &Message, times: &[u64]) {
        if !(1..=self.total).contains(&m.to) {
            return; // a reply to a garbage peer's claimed sender
        }
        let now = self.now;
        if let Some(d) = self.rec.as_deref_mut() {
            d.send(now, id, m, times);
        }
    }

    /// A copy of `m` arrives now.
    pub(super) fn record_delivery(&mut self, m: &Message) {
        if !(1..=self.total).contains(&m.to) {
            return;
        }
        let up = self.nodes[(m.to - 1) as usize].raw.is_some();
        let now = self.now;
        if let Some(d) = self.rec.as_deref_mut() {
            d.deliver(now, m, up);
        }
    }

    /// A fault is injected now.
    pub(super) fn record_fault(&mut self, f: &Fault) {
        let now = self.now;
        if let Some(d) = self.rec.as_deref_mut() {
            d.fault(now, *f);
        }
    }

    /// The state after an event: who is up, committed slots, violations.
    pub(super) fn record_step(&mut self) {
        let Some(d) = self.rec.as_deref_mut() else {
            return;
        };
        let views: Vec<NodeView> = (1..=self.total)
            .map(|id| NodeView {
                id,
                role: if id <= self.voters {
                    Role::Voter
                } else if id <= self.n {
                    Role::Learner
                } else {
                    Role::Joined
                },
                present: !self.retired.contains(&id) && (id <= self.n || self.joined.contains(&id)),
                committed: self.nodes[(id - 1) as usize]
                    .raw
                    .as_ref()
                    .map(|r| r.status().committed),
            })
            .collect();
        d.step(self.now, &views, self.checker.violations(), self.faults_on);
    }
}
