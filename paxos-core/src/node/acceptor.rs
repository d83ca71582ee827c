//! The acceptor: every voter (and learner) answers Prepare, Accept and
//! heartbeats under the acceptor rules A1-A3 of PROTOCOL.md.

use super::{Node, Role};
use crate::storage::Storage;
use paxos_proto::{
    Accepted, Ballot, Body, Entry, HeartbeatReply, PrePrepareReply, Promise, Reject,
};

impl<S: Storage> Node<S> {
    /// Leader stickiness (rule E2): while this node hears from a live
    /// leader (or is one, or from the candidate it promised, or is a
    /// candidate whose phase 1 progresses), it refuses to promise anyone
    /// else, so a partitioned or rejoining node cannot depose a healthy
    /// leader, nor cut short a phase 1 in progress.
    pub(super) fn lease_blocks(&self, candidate: u64) -> bool {
        if planted!(self.cfg, IgnoreStickiness) {
            return false;
        }
        match self.role {
            Role::Leader(_) => true,
            _ if self.restart_quiet => true,
            // Rule E2: a candidate is the candidate it promised. While its
            // phase 1 makes progress (each chunk restarts the clock) it
            // neither promises nor pre-grants a rival: two candidates that
            // out-bid each other's long phase 1 would livelock.
            Role::Candidate(_) => {
                candidate != self.id && self.timer.within(self.cfg.election_ticks)
            }
            _ => {
                matches!(self.leader.or(self.promised_to), Some(l) if l != candidate)
                    && self.timer.within(self.cfg.election_ticks)
            }
        }
    }

    /// Whether a transfer campaign by `candidate`, asked for by the leader
    /// of ballot `transfer`, is exempt from stickiness here (rule E3). Only the leader
    /// that sent `TimeoutNow` voided its lease, so only a voter that follows
    /// exactly that leadership may skip its stickiness for it; a delayed
    /// transfer from an abandoned campaign must not capture a voter that
    /// since acknowledged a newer leader's lease. At that leader itself,
    /// only the target of its own transfer in progress is exempt.
    fn transfer_exempt(&self, candidate: u64, transfer: Option<Ballot>) -> bool {
        let Some(t) = transfer else {
            return false;
        };
        if planted!(self.cfg, StaleTransferExempt) {
            return true;
        }
        if t != self.promised || self.leader != Some(t.node) {
            return false;
        }
        match &self.role {
            Role::Follower => true,
            Role::Leader(ls) => ls.transfer.is_some_and(|tr| tr.sent && tr.to == candidate),
            _ => false,
        }
    }

    /// Pre-vote: answers whether a Prepare(b) would be promised. No state
    /// changes. Besides stickiness, a voter prefers candidates that know at
    /// least as much decided log as it does: any Paxos node may lead safely,
    /// but a far-behind leader spends its term fetching the chosen prefix in
    /// phase 1. The node with the highest watermark in any live quorum is
    /// granted by all of it, so elections still always succeed.
    ///
    /// A node that is no voter itself (a removed leader that decided its
    /// own removal) may know the most and still never lead, so it does not
    /// hold out for itself: it grants candidates it could promise, those
    /// whose phase 1 starts past its compacted prefix. Candidates are not
    /// checked against this node's membership: a lagging voter may not know
    /// yet that a new voter was promoted.
    pub(super) fn on_pre_prepare(
        &mut self,
        from: u64,
        b: Ballot,
        transfer: Option<Ballot>,
        committed: u64,
    ) {
        let up_to_date = committed >= self.log.committed
            || (!self.members.is_voter(self.id)
                && self
                    .storage
                    .first_slot()
                    .is_ok_and(|f| committed.saturating_add(1) >= f));
        let granted = b > self.promised
            && (self.transfer_exempt(from, transfer) || (up_to_date && !self.lease_blocks(from)));
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
    pub(super) fn on_prepare(
        &mut self,
        from: u64,
        b: Ballot,
        from_slot: u64,
        transfer: Option<Ballot>,
    ) -> crate::Result<()> {
        if b < self.promised {
            self.reject(from, b);
            return Ok(());
        }
        let exempt = from != self.id && self.transfer_exempt(from, transfer);
        let blocked = from != self.id && self.lease_blocks(from);
        if blocked && !exempt {
            slog::debug!(self.logger, "prepare refused: leader lease held";
                "from" => from, "ballot" => %b, "leader" => ?self.leader);
            return Ok(());
        }
        let from_slot = from_slot.max(1);
        // Read before promising: an acceptor that compacted slots the
        // candidate has not decided cannot report them, so it must not
        // count toward that candidate's phase 1. The candidate is behind;
        // one that knows more (pre-vote prefers it) will lead instead.
        let (entries, next) = match self.log.fetch(
            &self.storage,
            from_slot,
            self.log.last(),
            self.cfg.max_msg_entries,
            self.cfg.max_msg_bytes,
        ) {
            Err(crate::Error::Storage(crate::StorageError::Compacted(c))) => {
                slog::info!(self.logger, "prepare refused: candidate is behind the compacted prefix";
                    "from" => from, "from_slot" => from_slot, "compacted" => c);
                // Tell the candidate, so that it stands down rather than
                // keep out-bidding the nodes that could lead, and bid above
                // its round when this node campaigns (liveness; no state
                // that safety depends on changes).
                self.observe_round(b.round);
                let promised = Some(self.promised);
                self.send(
                    from,
                    Body::Reject(Reject {
                        ballot: Some(b),
                        promised,
                        compacted: c,
                    }),
                );
                return Ok(());
            }
            r => r?,
        };
        if from != self.id {
            if blocked {
                // A transfer this node would otherwise have refused: it
                // stays sticky, now to the transfer's target, so that no
                // third candidate is promised within the window either.
                self.become_follower(Some(from));
            } else if b > self.promised {
                self.become_follower(None);
                self.promised_to = Some(from);
            } else {
                self.reset_election_timer();
            }
        }
        self.promise(b);
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
    pub(super) fn on_accept(&mut self, from: u64, b: Ballot, entries: Vec<Entry>, committed: u64) {
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

    pub(super) fn on_heartbeat(&mut self, from: u64, b: Ballot, committed: u64, seq: u64) {
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

    /// The leader's watermark moved. A stale one is ignored: the next
    /// heartbeat or Accept from that leader meets a Reject.
    pub(super) fn on_decide(&mut self, b: Ballot, committed: u64) {
        if b < self.promised {
            return;
        }
        self.promise(b);
        self.follow(b.node);
        self.learn_committed(committed);
    }

    pub(super) fn reject(&mut self, to: u64, b: Ballot) {
        let promised = Some(self.promised);
        self.send(
            to,
            Body::Reject(Reject {
                ballot: Some(b),
                promised,
                compacted: 0,
            }),
        );
    }

    /// Heard from the leader of the promised ballot.
    pub(super) fn follow(&mut self, leader: u64) {
        if !matches!(self.role, Role::Follower) || self.leader != Some(leader) {
            slog::info!(self.logger, "following leader"; "leader" => leader, "ballot" => %self.promised);
            self.become_follower(Some(leader));
        }
        self.timer.heard();
    }

    /// Grows `accept_prefix` over slots accepted in the promised ballot.
    pub(super) fn extend_accept_prefix(&mut self) {
        let mut p = self.accept_prefix.max(self.log.committed);
        while self
            .log
            .get(p + 1)
            .is_some_and(|e| e.ballot() == self.promised || planted!(self.cfg, CountAcrossBallots))
        {
            p += 1;
        }
        self.accept_prefix = p;
        debug_assert!(self.accept_prefix >= self.log.committed);
    }

    /// The follower learning rule (PROTOCOL.md rule F1): told by the leader of the
    /// promised ballot b that slots <= c are chosen, a slot may be marked
    /// decided only if it was accepted in b here. `accept_prefix` is exactly
    /// the slots decided here or accepted in b, so the rule is a `min`.
    fn learn_committed(&mut self, c: u64) {
        let decided = if planted!(self.cfg, ApplyPastGap) {
            c.min(self.log.last())
        } else {
            c.min(self.accept_prefix)
        };
        self.decide(decided);
    }
}

#[cfg(test)]
mod tests {
    use crate::node::testutil::{accept, drain, entry, node, node_with};
    use crate::node::Role;
    use crate::{Config, MemStorage};
    use paxos_proto::{Ballot, Body, Heartbeat, PrePrepare, Prepare};

    fn prepare(b: Ballot, from_slot: u64) -> Body {
        Body::Prepare(Prepare {
            ballot: Some(b),
            from_slot,
            transfer: None,
        })
    }

    #[test]
    fn lower_ballot_is_rejected_with_the_promise() {
        let mut n = node(1, &[1, 2, 3]);
        n.dispatch(3, prepare(Ballot::new(5, 3), 1)).expect("ok");
        drain(&mut n);
        n.dispatch(2, prepare(Ballot::new(4, 2), 1)).expect("ok");
        let out = drain(&mut n);
        let Some(Body::Reject(r)) = &out[0].body else {
            panic!("{out:?}")
        };
        assert_eq!(r.promised, Some(Ballot::new(5, 3)));
        assert_eq!(n.promised, Ballot::new(5, 3));
        // A stale Accept is rejected the same way and stores nothing.
        n.dispatch(
            2,
            accept(Ballot::new(4, 2), vec![entry(1, Ballot::new(4, 2), "x")], 0),
        )
        .expect("ok");
        assert!(matches!(drain(&mut n)[0].body, Some(Body::Reject(_))));
        assert!(n.log.get(1).is_none());
    }

    #[test]
    fn duplicate_prepare_is_answered_again() {
        let mut n = node(1, &[1, 2, 3]);
        for _ in 0..2 {
            n.dispatch(2, prepare(Ballot::new(3, 2), 1)).expect("ok");
            let out = drain(&mut n);
            assert!(matches!(out[0].body, Some(Body::Promise(_))), "{out:?}");
        }
        assert!(
            n.hs_dirty,
            "the promise must be persisted before the reply leaves"
        );
    }

    #[test]
    fn accept_stores_raises_promise_and_reports_prefix() {
        let mut n = node(1, &[1, 2, 3]);
        let b = Ballot::new(2, 2);
        let entries = (1..=3).map(|s| entry(s, b, "v")).collect();
        n.dispatch(2, accept(b, entries, 2)).expect("ok");
        assert_eq!(n.promised, b);
        assert_eq!(n.leader, Some(2));
        assert_eq!(n.log.committed, 2);
        let out = drain(&mut n);
        let Some(Body::Accepted(a)) = &out[0].body else {
            panic!("{out:?}")
        };
        assert_eq!((a.matched, a.last_slot), (3, 3));
    }

    #[test]
    fn learning_rule_needs_the_leaders_ballot() {
        // Slot 1 accepted in ballot 1.2; the leader of 2.3 says slot 1 is
        // chosen. Our value may be an older one: do not decide it.
        let mut n = node(1, &[1, 2, 3]);
        let old = Ballot::new(1, 2);
        n.dispatch(2, accept(old, vec![entry(1, old, "old")], 0))
            .expect("ok");
        let new = Ballot::new(2, 3);
        n.dispatch(
            3,
            Body::Heartbeat(Heartbeat {
                ballot: Some(new),
                committed: 1,
                seq: 1,
            }),
        )
        .expect("ok");
        assert_eq!(
            n.log.committed, 0,
            "decided a value accepted in a lower ballot"
        );
        // Once the value is accepted in the leader's ballot, it is decided.
        n.dispatch(3, accept(new, vec![entry(1, new, "chosen")], 1))
            .expect("ok");
        assert_eq!(n.log.committed, 1);
        assert_eq!(n.log.get(1).map(|e| e.data.clone()), Some("chosen".into()));
    }

    #[test]
    fn gap_holds_back_the_prefix_and_the_window_bounds_memory() {
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.max_inflight_slots = 10;
        let mut n = node_with(cfg, MemStorage::new());
        let b = Ballot::new(1, 2);
        n.dispatch(2, accept(b, vec![entry(3, b, "c")], 3))
            .expect("ok");
        let out = drain(&mut n);
        let Some(Body::Accepted(a)) = &out[0].body else {
            panic!()
        };
        assert_eq!((a.matched, a.last_slot), (0, 3), "gap at 1..=2 reported");
        assert_eq!(n.log.committed, 0, "never decide past a gap");
        n.dispatch(2, accept(b, vec![entry(50, b, "far")], 3))
            .expect("ok");
        assert!(n.log.get(50).is_none(), "slot beyond the window was held");
        n.dispatch(2, accept(b, vec![entry(1, b, "a"), entry(2, b, "b")], 3))
            .expect("ok");
        assert_eq!((n.accept_prefix, n.log.committed), (3, 3));
    }

    #[test]
    fn stickiness_refuses_other_candidates_while_the_leader_is_alive() {
        let mut n = node(1, &[1, 2, 3]);
        let lb = Ballot::new(1, 2);
        n.dispatch(2, accept(lb, vec![], 0)).expect("ok");
        drain(&mut n);
        let pre = |b| {
            Body::PrePrepare(PrePrepare {
                ballot: Some(b),
                transfer: None,
                committed: 0,
            })
        };
        n.dispatch(3, pre(Ballot::new(2, 3))).expect("ok");
        let Some(Body::PrePrepareReply(r)) = &drain(&mut n)[0].body else {
            panic!()
        };
        assert!(!r.granted, "granted a pre-vote while the leader is alive");
        n.dispatch(3, prepare(Ballot::new(2, 3), 1)).expect("ok");
        assert!(
            drain(&mut n).is_empty(),
            "promised while the leader is alive"
        );
        assert_eq!(n.promised, lb);
        // A transfer asked for by the leader it follows is exempt.
        n.dispatch(
            3,
            Body::PrePrepare(PrePrepare {
                ballot: Some(Ballot::new(2, 3)),
                transfer: Some(lb),
                committed: 0,
            }),
        )
        .expect("ok");
        let Some(Body::PrePrepareReply(r)) = &drain(&mut n)[0].body else {
            panic!()
        };
        assert!(r.granted);
        // Once the leader is silent for election_ticks, the lease is gone.
        for _ in 0..n.cfg.election_ticks {
            n.timer.tick_election();
        }
        n.dispatch(3, prepare(Ballot::new(2, 3), 1)).expect("ok");
        assert!(matches!(drain(&mut n)[0].body, Some(Body::Promise(_))));
        assert!(matches!(n.role, Role::Follower));
        assert_eq!(n.leader, None);
    }

    /// A phase 1 of many chunks can outlast an election timeout: the voters
    /// it keeps asking hold out for it against other candidates, as they
    /// would for a leader.
    #[test]
    fn a_promised_candidate_still_asking_is_live_for_stickiness() {
        let mut n = node(1, &[1, 2, 3]);
        n.dispatch(3, prepare(Ballot::new(2, 3), 1)).expect("ok");
        assert!(matches!(drain(&mut n)[0].body, Some(Body::Promise(_))));
        let pre = |n: &mut crate::node::Node<MemStorage>| {
            n.dispatch(
                2,
                Body::PrePrepare(PrePrepare {
                    ballot: Some(Ballot::new(3, 2)),
                    transfer: None,
                    committed: 0,
                }),
            )
            .expect("ok");
            match &drain(n)[0].body {
                Some(Body::PrePrepareReply(r)) => r.granted,
                other => panic!("{other:?}"),
            }
        };
        n.timer.set_elapsed(n.cfg.election_ticks - 1);
        // Node 3 asks for the next chunk of the report: still live.
        n.dispatch(3, prepare(Ballot::new(2, 3), 1)).expect("ok");
        drain(&mut n);
        assert!(!pre(&mut n), "granted a rival of a phase 1 in progress");
        // Silent for an election timeout: no longer.
        n.timer.set_elapsed(n.cfg.election_ticks);
        assert!(pre(&mut n));
    }

    #[test]
    fn large_promise_is_split() {
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.max_msg_entries = 3;
        let mut n = node_with(cfg, MemStorage::new());
        let b = Ballot::new(1, 2);
        n.dispatch(2, accept(b, (1..=7).map(|s| entry(s, b, "v")).collect(), 0))
            .expect("ok");
        drain(&mut n);
        n.timer.set_elapsed(n.cfg.election_ticks);
        n.dispatch(3, prepare(Ballot::new(2, 3), 1)).expect("ok");
        let Some(Body::Promise(p)) = &drain(&mut n)[0].body else {
            panic!()
        };
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.next_slot, 4);
        n.dispatch(3, prepare(Ballot::new(2, 3), 7)).expect("ok");
        let Some(Body::Promise(p)) = &drain(&mut n)[0].body else {
            panic!()
        };
        assert_eq!((p.entries.len(), p.next_slot), (1, 0));
    }

    /// Regression (simulator seed 10392): a node 100 slots behind kept
    /// winning pre-votes, never finished fetching the chosen prefix within
    /// one election timeout, and kept the up-to-date nodes from campaigning.
    #[test]
    fn pre_vote_prefers_candidates_at_least_as_up_to_date() {
        let mut n = node(1, &[1, 2, 3]);
        let b = Ballot::new(1, 2);
        n.dispatch(2, accept(b, (1..=5).map(|s| entry(s, b, "v")).collect(), 5))
            .expect("ok");
        assert_eq!(n.log.committed, 5);
        n.timer.set_elapsed(n.cfg.election_ticks); // the leader went quiet
        drain(&mut n);
        let pre = |committed| {
            Body::PrePrepare(PrePrepare {
                ballot: Some(Ballot::new(2, 3)),
                transfer: None,
                committed,
            })
        };
        for (committed, want) in [(4, false), (5, true), (9, true)] {
            n.dispatch(3, pre(committed)).expect("ok");
            let Some(Body::PrePrepareReply(r)) = &drain(&mut n)[0].body else {
                panic!()
            };
            assert_eq!(r.granted, want, "candidate committed {committed}");
        }
    }

    #[test]
    fn no_promise_to_a_candidate_behind_the_compacted_prefix() {
        let b1 = Ballot::new(1, 2);
        let s = MemStorage::new();
        {
            let mut w = s.wl();
            w.store_entries(&(1..=10).map(|i| entry(i, b1, "v")).collect::<Vec<_>>());
            w.set_hard_state(paxos_proto::HardState {
                promised: Some(b1),
                committed: 10,
            });
            w.create_snapshot(6, paxos_proto::ConfState::default(), "state");
            w.compact(6);
        }
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.applied = 10;
        let mut n = node_with(cfg, s);
        // Slots 1..=6 are gone: a candidate that has decided only up to 4
        // would learn nothing of 5 and 6 from us. No promise, no state
        // change; the candidate is told why, so that it stands down.
        n.dispatch(3, prepare(Ballot::new(2, 3), 5)).expect("ok");
        let out = drain(&mut n);
        let Some(Body::Reject(r)) = &out[0].body else {
            panic!("{out:?}")
        };
        assert_eq!((out.len(), r.compacted, r.promised), (1, 6, Some(b1)));
        assert_eq!(n.promised, b1);
        assert!(!n.hs_dirty);
        // A candidate that decided the compacted prefix gets the rest.
        n.dispatch(3, prepare(Ballot::new(2, 3), 7)).expect("ok");
        let Some(Body::Promise(p)) = &drain(&mut n)[0].body else {
            panic!()
        };
        assert_eq!((p.entries.len(), p.committed), (4, 10));
    }
}
