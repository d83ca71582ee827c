//! What the simulator observes of its nodes beyond the checker's view of
//! persists, messages and applies: stickiness as each grant is made, a
//! node's membership against its decided log, and the garbage peer's
//! messages, every one of which must be refused.

use super::{Ev, Sim, TICK};
use crate::trace::TRACE_GARBAGE;
use paxos_core::proto::{Body, Message};

impl Sim {
    /// Stickiness, observed: an acceptor that heard from a live leader
    /// within `election_ticks` promises no one else, and a leader promises
    /// no one, but for a transfer asked for by exactly that leadership;
    /// promising such a transfer keeps the acceptor sticky, now to the
    /// transfer's target.
    pub(super) fn check_stickiness(
        &mut self,
        id: u64,
        m: &Message,
        was_leader: bool,
        exempt: bool,
    ) {
        let grant = match &m.body {
            Some(Body::Promise(_)) => m.to != id,
            Some(Body::PrePrepareReply(r)) => r.granted,
            // A campaign starts: with a pre-vote, or with phase 1 itself
            // where the candidate alone is a phase-1 quorum (rule M4).
            Some(Body::PrePrepare(_) | Body::Prepare(_)) => {
                let node = self.node(id);
                node.contact = None;
                node.followed = None;
                return;
            }
            Some(
                Body::Accept(_)
                | Body::Accepted(_)
                | Body::Reject(_)
                | Body::Heartbeat(_)
                | Body::HeartbeatReply(_)
                | Body::Propose(_)
                | Body::Decide(_)
                | Body::TimeoutNow(_)
                | Body::InstallSnapshot(_)
                | Body::SnapshotReply(_),
            )
            | None => false,
        };
        if !grant {
            return;
        }
        let election_ticks = self.election_ticks;
        let node = self.node(id);
        let lease = node
            .contact
            .filter(|&(leader, at)| leader != m.to && node.ticks - at < election_ticks);
        if let Some(Body::Promise(p)) = &m.body {
            // It follows no one now, unless it promised a transfer inside
            // its window: then it stays sticky to the transfer's target.
            // A later transfer asked for by that target's leadership is
            // then exempt here, as if this node had heard from it.
            let sticky = exempt && (was_leader || lease.is_some());
            node.contact = sticky.then_some((m.to, node.ticks));
            node.followed = p.ballot.filter(|_| sticky);
        }
        if exempt {
            return; // a leadership transfer may override the lease
        }
        if was_leader {
            self.checker.leader_promised(id, m.to);
        } else if let Some((leader, at)) = lease {
            let ticks = self.node(id).ticks;
            self.checker
                .stickiness_broken(id, m.to, m.kind_name(), leader, ticks - at);
        }
    }

    /// A garbage peer sends one broken message to a random node under a
    /// random claimed sender: the node must refuse it with a typed error.
    pub(super) fn garbage(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.now + self.garbage_rng.range_inclusive(1, 2 * self.garbage_every) * TICK;
        self.schedule(next, Ev::Garbage);
        let present = self.present_ids();
        let to = present[self
            .garbage_rng
            .range_inclusive(0, present.len() as u64 - 1) as usize];
        let mut from = self.garbage_rng.range_inclusive(1, self.total + 2);
        if from == to {
            from = self.total + 3;
        }
        let m = crate::garbage::message(&mut self.garbage_rng, from, to);
        self.hash.mix(&[self.now, TRACE_GARBAGE, from, to]);
        let Some(raw) = self.node(to).raw.as_mut() else {
            return;
        };
        let shown = m.to_string();
        match raw.step(m) {
            Ok(()) => {
                self.checker.accepted_garbage(to, &shown);
            }
            Err(e) => self.trace(|| format!("GARBAGE {shown} refused: {e}")),
        }
        self.drive(to);
    }

    /// Once everything decided is applied, the protocol's membership must
    /// be the one the decided log yields (each change through the one rule
    /// of `ConfChange::outcome`). Checked after each `advance`.
    pub(super) fn check_membership(&mut self, id: u64) {
        let node = &self.nodes[(id - 1) as usize];
        let Some(st) = node.raw.as_ref().map(|r| r.status()) else {
            return;
        };
        if node.applied != st.committed || st.applied != st.committed || node.conf.voters.is_empty()
        {
            return;
        }
        let mut voters = node.conf.voters.clone();
        let mut learners = node.conf.learners.clone();
        voters.sort_unstable();
        learners.sort_unstable();
        if st.voters != voters || st.learners != learners {
            self.checker.membership_diverged(
                id,
                st.committed,
                (&st.voters, &st.learners),
                (&voters, &learners),
            );
        }
    }
}
