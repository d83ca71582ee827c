//! Client requests at the driver: writes proposed back to back at the end
//! of each turn (so the library batches them into one slot), linearizable
//! reads through `read_index`, membership changes, and
//! the answers once applied (or refused, with the leader to try).

use super::*;

/// Capacity of the turn's encoded writes kept for the next turn: room for
/// a few hundred writes of ordinary size.
const KEPT_ENCODED: usize = 256 << 10;

impl Driver {
    pub(super) fn client(&mut self, op: ClientOp, tx: oneshot::Sender<Reply>) {
        let waiter = Waiter {
            tx,
            since: Instant::now(),
        };
        match op {
            ClientOp::Write { session, op } => self.write(session, op, waiter),
            ClientOp::Read { key, stale: true } => {
                self.metrics.reads_stale.fetch_add(1, Relaxed);
                let value = self.sm.get(&key).cloned();
                let _ = waiter.tx.send(Reply::Value(value));
            }
            ClientOp::Read { key, stale: false } => {
                self.read_batch.push(ReadWaiter { key, waiter });
            }
            ClientOp::Member {
                change,
                id,
                address,
            } => self.member(change, id, address, waiter),
            ClientOp::Transfer { to } => match self.node.transfer_leader(to) {
                Ok(()) => {
                    slog::info!(self.logger, "transferring leadership"; "to" => to);
                    let _ = waiter.tx.send(Reply::TransferStarted);
                }
                Err(CoreError::NotLeader { leader }) => self.refuse(waiter, leader),
                Err(e @ CoreError::NotVoter(_)) => {
                    let _ = waiter.tx.send(Reply::Refused {
                        reason: "not_voter",
                        error: e.to_string(),
                    });
                }
                Err(e) => {
                    let _ = waiter.tx.send(unavailable(&e));
                }
            },
        }
    }

    pub(super) fn write(&mut self, session: Option<(u64, u64)>, op: Op, waiter: Waiter) {
        if let Some((client, seq)) = session {
            // A retry of what was already applied gets its first outcome,
            // from the applied state, without taking another slot.
            match self.sm.lookup(client, seq) {
                Lookup::New => {}
                Lookup::Applied(outcome) => {
                    let _ = waiter.tx.send(Reply::Applied {
                        client,
                        seq,
                        outcome,
                    });
                    return;
                }
                Lookup::Forgotten => {
                    let _ = waiter.tx.send(Reply::Applied {
                        client,
                        seq,
                        outcome: Outcome::Forgotten,
                    });
                    return;
                }
            }
        }
        // Distinct sessions waiting: O(1), unlike `waiting()`, and close
        // enough for a bound.
        if self.writes.len()
            + self.write_batch.waiters.len()
            + self.read_batch.len()
            + self.reads_ready.len()
            >= MAX_WAITING
        {
            let _ = waiter
                .tx
                .send(Reply::Busy("too many waiting clients".into()));
            return;
        }
        let (client, seq) = session.unwrap_or_else(|| {
            self.next_seq += 1;
            (self.own_client, self.next_seq - 1)
        });
        let batch = &mut self.write_batch;
        Command::encode_op_into(client, seq, op, &mut batch.encoded);
        batch.ends.push(batch.encoded.len());
        batch.waiters.push(((client, seq), waiter));
    }

    /// Proposes every write of this turn, back to back: nothing reaches the
    /// node in between, so the library puts them into as few slots as its
    /// batch limits allow (`Config::max_batch_commands`, `max_batch_bytes`).
    pub(super) fn propose_writes(&mut self) {
        if self.write_batch.ends.is_empty() {
            return;
        }
        if self.hold_writes(Instant::now()) {
            return;
        }
        let mut batch = std::mem::take(&mut self.write_batch);
        let mut start = 0;
        for (&end, (session, waiter)) in batch.ends.iter().zip(batch.waiters.drain(..)) {
            let data = batch.encoded.get(start..end).unwrap_or_default();
            start = end;
            match self.node.propose_slice(data) {
                Ok(Proposed::At(position)) => {
                    self.proposed_to = self.proposed_to.max(position.slot);
                    self.metrics.proposals.fetch_add(1, Relaxed);
                    self.writes.entry(session).or_default().push(waiter);
                }
                // Not configured; a forwarded proposal has no slot to wait on.
                Ok(Proposed::Forwarded(leader)) => self.refuse(waiter, Some(leader)),
                Err(CoreError::NotLeader { leader }) => self.refuse(waiter, leader),
                Err(e) => {
                    self.metrics.proposals_refused.fetch_add(1, Relaxed);
                    let _ = waiter.tx.send(unavailable(&e));
                }
            }
        }
        // The vectors keep their capacity for the next turn (an exceptional
        // turn's buffer is not kept at its size).
        batch.encoded.clear();
        batch.encoded.shrink_to(KEPT_ENCODED);
        batch.ends.clear();
        self.write_batch = batch;
    }

    /// Whether the writes of this turn wait for a later one (see
    /// [`hold`](super::hold)).
    fn hold_writes(&mut self, now: Instant) -> bool {
        let turn = hold::Turn {
            leader: self.role == StateRole::Leader,
            in_flight: self.slot_in_flight(),
            queued: self.write_batch.ends.len(),
        };
        self.write_hold.holds(turn, now)
    }

    /// Whether the reads of this turn wait for a later one (see
    /// [`hold`](super::hold)).
    fn hold_reads(&mut self, now: Instant) -> bool {
        let turn = hold::Turn {
            leader: self.role == StateRole::Leader,
            in_flight: self.round_in_flight(),
            queued: self.read_batch.len(),
        };
        self.read_hold.holds(turn, now)
    }

    /// When the writes or reads held back are due, if any are.
    pub(super) fn held_due(&self) -> Option<Instant> {
        let writes = self.write_hold.due(self.slot_in_flight());
        let reads = self.read_hold.due(self.round_in_flight());
        writes.into_iter().chain(reads).min()
    }

    /// A slot proposed here is still above the committed watermark.
    fn slot_in_flight(&self) -> bool {
        self.proposed_to > self.node.committed()
    }

    /// A `read_index` round started here is still unconfirmed.
    fn round_in_flight(&self) -> bool {
        !self.reads_pending.is_empty()
    }

    pub(super) fn member(
        &mut self,
        change: ConfChangeType,
        id: u64,
        address: Option<MemberAddress>,
        waiter: Waiter,
    ) {
        let cc = ConfChange {
            change_type: change as i32,
            node_id: id,
            context: address
                .map(|a| a.encode_to_vec().into())
                .unwrap_or_default(),
            ..ConfChange::default()
        };
        let e = match self.node.propose_conf_change(cc) {
            Ok(slot) => {
                self.conf_waiters.push((slot, waiter));
                return;
            }
            Err(CoreError::NotLeader { leader }) => return self.refuse(waiter, leader),
            Err(e) => e,
        };
        let reason = match &e {
            CoreError::ProposalDropped(DropReason::ConfChangePending) => "conf_change_pending",
            CoreError::ConfChange(c) => match c {
                ConfChangeError::ZeroId => "zero_id",
                ConfChangeError::AlreadyMember(_) => "already_member",
                ConfChangeError::NotLearner(_) => "not_learner",
                ConfChangeError::NotMember(_) => "not_member",
                ConfChangeError::LastVoter => "last_voter",
                ConfChangeError::LearnerBehind(_) => "learner_behind",
                ConfChangeError::UnknownType(_) | ConfChangeError::Invalid(_) => "invalid",
            },
            _ => {
                let _ = waiter.tx.send(unavailable(&e));
                return;
            }
        };
        let _ = waiter.tx.send(Reply::Refused {
            reason,
            error: e.to_string(),
        });
    }

    pub(super) fn refuse(&self, waiter: Waiter, leader: Option<u64>) {
        self.metrics.proposals_refused.fetch_add(1, Relaxed);
        let _ = waiter.tx.send(Reply::NotLeader {
            leader,
            session: None,
        });
    }

    pub(super) fn waiting(&self) -> usize {
        self.writes.values().map(Vec::len).sum::<usize>()
            + self.reads_pending.values().map(Vec::len).sum::<usize>()
            + self.reads_ready.len()
            + self.read_batch.len()
            + self.write_batch.waiters.len()
            + self.conf_waiters.len()
    }

    /// One `read_index` round for every linearizable read of this turn
    /// (and of turns held back): a quorum heartbeat per batch, not per read.
    pub(super) fn start_reads(&mut self) {
        if self.read_batch.is_empty() || self.hold_reads(Instant::now()) {
            return;
        }
        let batch = std::mem::take(&mut self.read_batch);
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match self
            .node
            .read_index(Bytes::copy_from_slice(&ctx.to_be_bytes()))
        {
            Ok(()) => {
                self.reads_pending.insert(ctx, batch);
            }
            Err(CoreError::NotLeader { leader }) => {
                for r in batch {
                    let _ = r.waiter.tx.send(Reply::NotLeader {
                        leader,
                        session: None,
                    });
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.waiter.tx.send(unavailable(&e));
                }
            }
        }
    }

    /// Answers the membership changes proposed here that were applied: the
    /// one at its slot, or, if that slot holds something else (a new
    /// leader filled it), that it was not chosen.
    pub(super) fn answer_member_changes(&mut self, conf_slots: &[u64]) {
        let applied = self.sm.applied();
        let cs = self.sm.conf_state();
        let mut i = 0;
        while i < self.conf_waiters.len() {
            let slot = self.conf_waiters[i].0;
            if slot > applied {
                i += 1;
                continue;
            }
            let (_, w) = self.conf_waiters.swap_remove(i);
            let reply = if conf_slots.contains(&slot) {
                Reply::MemberChanged {
                    voters: cs.voters.clone(),
                    learners: cs.learners.clone(),
                }
            } else {
                Reply::Retry(
                    "the membership change was not chosen, or another change took effect first; retry"
                        .into(),
                )
            };
            let _ = w.tx.send(reply);
        }
    }

    /// Answers every confirmed read whose index the state machine reached.
    pub(super) fn serve_reads(&mut self) {
        let applied = self.sm.applied();
        let mut i = 0;
        while i < self.reads_ready.len() {
            if self.reads_ready[i].0 <= applied {
                let (_, r) = self.reads_ready.swap_remove(i);
                self.metrics.reads_linearizable.fetch_add(1, Relaxed);
                let value = self.sm.get(&r.key).cloned();
                let _ = r.waiter.tx.send(Reply::Value(value));
            } else {
                i += 1;
            }
        }
    }
}

/// The answer for a refusal of the core's other than "not the leader":
/// a moment's refusal is worth asking again, an overload is not.
fn unavailable(e: &CoreError) -> Reply {
    match e {
        CoreError::ProposalDropped(
            DropReason::TransferInProgress | DropReason::ConfChangePending,
        )
        | CoreError::LeaseHeld { .. } => Reply::Retry(e.to_string()),
        _ => Reply::Busy(e.to_string()),
    }
}
