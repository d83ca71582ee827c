//! The acceptor: every voter (and learner) answers Prepare, Accept and
//! heartbeats under DESIGN §3's acceptor rules.

use crate::node::{Node, Role};
use crate::storage::Storage;
use paxos_proto::{
    Accepted, Ballot, Body, Entry, HeartbeatReply, PrePrepareReply, Promise, Reject,
};

impl<S: Storage> Node<S> {
    /// Leader stickiness: while this node hears from a live leader (or is
    /// one), it refuses to promise anyone else, so a partitioned or rejoining
    /// node cannot depose a healthy leader.
    pub(crate) fn lease_blocks(&self, candidate: u64) -> bool {
        match self.role {
            Role::Leader(_) => true,
            _ => {
                matches!(self.leader, Some(l) if l != candidate)
                    && self.timer.elapsed < self.cfg.election_ticks
            }
        }
    }

    /// Pre-vote: answers whether a Prepare(b) would be promised. No state changes.
    pub(crate) fn on_pre_prepare(&mut self, from: u64, b: Ballot, transfer: bool) {
        let granted = b > self.promised && (transfer || !self.lease_blocks(from));
        let promised = Some(self.promised);
        self.send(
            from,
            Body::PrePrepareReply(PrePrepareReply {
                ballot: Some(b),
                granted,
                promised,
            }),
        );
    }

    /// Phase 1b. A duplicate Prepare (b == promised) is answered again.
    pub(crate) fn on_prepare(
        &mut self,
        from: u64,
        b: Ballot,
        from_slot: u64,
        transfer: bool,
    ) -> crate::Result<()> {
        if b < self.promised {
            self.reject(from, b);
            return Ok(());
        }
        if from != self.id && !transfer && self.lease_blocks(from) {
            slog::debug!(self.logger, "prepare refused: leader lease held";
                "from" => from, "ballot" => %b, "leader" => ?self.leader);
            return Ok(());
        }
        if from != self.id {
            if b > self.promised {
                self.become_follower(None);
            } else {
                self.reset_election_timer();
            }
        }
        self.promise(b);
        let from_slot = from_slot.max(1);
        let (entries, next) = self.log.fetch(
            &self.storage,
            from_slot,
            self.log.last(),
            self.cfg.max_msg_entries,
            self.cfg.max_msg_bytes,
        )?;
        let committed = self.log.committed;
        self.send(
            from,
            Body::Promise(Promise {
                ballot: Some(b),
                from_slot,
                entries,
                committed,
                next_slot: next.unwrap_or(0),
            }),
        );
        Ok(())
    }

    /// Phase 2b: accept a contiguous run of entries proposed in `b`.
    pub(crate) fn on_accept(&mut self, from: u64, b: Ballot, entries: Vec<Entry>, committed: u64) {
        if b < self.promised {
            self.reject(from, b);
            return;
        }
        self.promise(b);
        self.follow(b.node);
        // Bound what a peer can make this node hold: slots beyond the window
        // are dropped now and resent once the prefix catches up.
        let window_end = self
            .accept_prefix
            .saturating_add(self.cfg.max_inflight_slots);
        let mut last_slot = 0;
        for mut e in entries {
            last_slot = e.slot;
            if e.slot <= self.log.committed {
                continue; // decided here already: its value cannot differ
            }
            if e.slot > window_end {
                break;
            }
            e.ballot = Some(b);
            self.log.write(e);
        }
        self.extend_accept_prefix();
        self.learn_committed(committed);
        let matched = self.accept_prefix;
        self.send(
            from,
            Body::Accepted(Accepted {
                ballot: Some(b),
                matched,
                last_slot,
            }),
        );
    }

    pub(crate) fn on_heartbeat(&mut self, from: u64, b: Ballot, committed: u64, seq: u64) {
        if b < self.promised {
            self.reject(from, b);
            return;
        }
        self.promise(b);
        self.follow(b.node);
        self.learn_committed(committed);
        let matched = self.accept_prefix;
        self.send(
            from,
            Body::HeartbeatReply(HeartbeatReply {
                ballot: Some(b),
                matched,
                seq,
            }),
        );
    }

    fn reject(&mut self, to: u64, b: Ballot) {
        let promised = Some(self.promised);
        self.send(
            to,
            Body::Reject(Reject {
                ballot: Some(b),
                promised,
            }),
        );
    }

    /// Heard from the leader of the promised ballot.
    fn follow(&mut self, leader: u64) {
        if !matches!(self.role, Role::Follower) || self.leader != Some(leader) {
            slog::info!(self.logger, "following leader"; "leader" => leader, "ballot" => %self.promised);
            self.become_follower(Some(leader));
        }
        self.timer.elapsed = 0;
    }

    /// Grows `accept_prefix` over slots accepted in the promised ballot.
    pub(crate) fn extend_accept_prefix(&mut self) {
        let mut p = self.accept_prefix.max(self.log.committed);
        while self
            .log
            .get(p + 1)
            .is_some_and(|e| e.ballot() == self.promised)
        {
            p += 1;
        }
        self.accept_prefix = p;
    }

    /// The follower learning rule (DESIGN §3): told by the leader of the
    /// promised ballot b that slots <= c are chosen, a slot may be marked
    /// decided only if it was accepted in b here. `accept_prefix` is exactly
    /// the slots decided here or accepted in b, so the rule is a `min`.
    fn learn_committed(&mut self, c: u64) {
        let decided = c.min(self.accept_prefix);
        if decided > self.log.committed {
            self.log.committed = decided;
            self.hs_dirty = true;
        }
    }
}
