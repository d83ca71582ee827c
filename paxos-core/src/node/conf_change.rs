//! Membership changes as log entries (PROTOCOL.md rules M1-M3, L3).
//!
//! - A change is an entry; it takes effect for the slots after it, once it
//!   is decided. Each carries the full resulting membership, so replicas
//!   agree on the membership at every slot without replaying deltas.
//! - One node changes at a time, and voters are only ever promoted
//!   learners: majorities before and after a change always intersect.
//! - The leader proposes nothing past an undecided change. Deciding stops
//!   at each change, so every slot is decided by a quorum of the membership
//!   that governs it.
//! - A new leader's phase 1 needs a quorum of every membership its promises
//!   reveal past its decided prefix (see `phase1`), so values chosen under a
//!   membership it did not know of are never missed.

use super::leader::Proposed;
use super::{Node, Role};
use crate::errors::{ConfChangeError, DropReason, Error, Result};
use crate::membership::Membership;
use crate::progress::Progress;
use crate::storage::Storage;
use paxos_proto::Position;
use paxos_proto::{Body, ConfChange, ConfChangeType, Decide, Entry, EntryKind, ProstMessage};

impl<S: Storage> Node<S> {
    /// Leader: proposes a membership change; returns its slot.
    pub(crate) fn propose_conf_change(&mut self, mut cc: ConfChange) -> Result<u64> {
        let Role::Leader(ls) = &self.role else {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        };
        if self.log.next_conf_slot().is_some() {
            return Err(Error::ProposalDropped(DropReason::ConfChangePending));
        }
        let next = self.members.apply(&cc)?;
        if cc.change_type == ConfChangeType::PromoteLearner as i32 {
            // A voter far behind would hold back every quorum it is needed
            // in: promote only a learner within one window of the leader.
            let behind = ls
                .progress
                .iter()
                .find(|p| p.id == cc.node_id)
                .is_none_or(|p| {
                    p.matched.saturating_add(self.cfg.max_inflight_slots) < self.log.committed
                });
            if behind {
                return Err(ConfChangeError::LearnerBehind(cc.node_id).into());
            }
        }
        cc.result = Some(next.to_conf_state());
        cc.base = Some(self.members.since);
        match self.propose_entry(
            EntryKind::ConfChange,
            crate::arena::Payload::Owned(cc.encode_to_vec().into()),
        )? {
            Proposed::At(Position { slot, .. }) => {
                slog::info!(self.logger, "proposed membership change"; "slot" => slot,
                    "node" => cc.node_id, "type" => cc.change_type);
                Ok(slot)
            }
            Proposed::Forwarded(leader) => Err(Error::NotLeader {
                leader: Some(leader),
            }),
        }
    }

    /// A decided change takes effect only on the membership it was
    /// computed on (rule M3). Two leaders may each propose a change on the same
    /// membership at different slots (the first one's unchosen change
    /// survives on a few acceptors, and a later phase 1 re-proposes it after
    /// the second one's was decided): the later one is then void, for its
    /// `result` would silently undo the earlier change.
    pub(super) fn adopt_conf_entry(&mut self, e: &Entry) {
        let Some(Ok(cc)) = e.conf_change() else {
            // Only a leader's `propose_conf_change` writes these.
            slog::error!(self.logger, "decided an undecodable membership change"; "slot" => e.slot);
            return;
        };
        let m = if planted!(self.cfg, AdoptStaleConfChange) {
            let stale = ConfChange { base: None, ..cc };
            self.members.after(e.slot, &stale)
        } else {
            self.members.after(e.slot, &cc)
        };
        match m {
            Some(m) => self.set_members(m),
            None => {
                slog::warn!(self.logger, "decided membership change is void: its base was replaced";
                "slot" => e.slot, "base" => ?cc.base, "since" => self.members.since)
            }
        }
    }

    /// Adopts a membership: the leader starts or stops replicating to the
    /// nodes it adds or removes, and steps down if it is no longer a voter.
    pub(super) fn set_members(&mut self, m: Membership) {
        if m == self.members {
            return;
        }
        slog::info!(self.logger, "membership changed";
            "voters" => ?m.voters, "learners" => ?m.learners);
        self.members = m;
        self.conf_dirty = true;
        let committed = self.log.committed;
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let members = &self.members;
        ls.progress.retain(|p| members.contains(p.id));
        for p in &mut ls.progress {
            p.voter = members.is_voter(p.id);
        }
        for id in members.others(self.id) {
            if !ls.progress.iter().any(|p| p.id == id) {
                ls.progress.push(Progress::starting_after(
                    id,
                    members.is_voter(id),
                    committed,
                ));
            }
        }
        ls.pending_flush = true;
        if !self.members.is_voter(self.id) {
            // Tell everyone the removal is decided before going: the next
            // leader's phase 1 then starts past it.
            let decide = Body::Decide(Decide {
                ballot: Some(ls.ballot),
                committed,
            });
            let ids: Vec<u64> = ls.progress.iter().map(|p| p.id).collect();
            for id in ids {
                self.send(id, decide.clone());
            }
            slog::info!(self.logger, "removed from the voters: stepping down");
            self.become_follower(None);
        }
    }
}
