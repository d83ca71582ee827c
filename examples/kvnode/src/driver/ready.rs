//! The Ready loop: each `Ready`'s decided entries applied and their
//! waiters answered, then the `Ready` persisted in one synced transaction
//! with what applying changed, then its persisted messages sent.

use super::*;

impl Driver {
    /// The Ready loop: apply, answer, persist (one sync), send, advance.
    pub(super) fn process_readys(&mut self) -> Result<(), DriverError> {
        for _ in 0..MAX_READYS {
            if !self.node.has_ready() {
                break;
            }
            let mut rd = self.node.ready();
            // A leader's Accepts and heartbeats go out before its own sync:
            // the followers' syncs overlap it. (Drained, and decided entries
            // read in place: the Ready's vectors go back for reuse.)
            self.outbox.send(rd.drain_messages());
            let installed = match rd.take_snapshot() {
                Some(snapshot) => self.install(snapshot)?,
                None => None,
            };
            // Decided entries are chosen already, so applying them and
            // answering their clients before the sync is safe (PROTOCOL.md
            // rule D5): a crash cannot unchoose them, and a restart redoes
            // them from the log to the same outcomes. What applying changed
            // is written in the Ready's transaction; a client waits for one
            // sync fewer.
            let committed = rd.committed_entries();
            // The membership changes that took effect (a void one, computed
            // on a membership another change replaced, does not).
            let mut conf_slots = Vec::new();
            let mut outcomes = Vec::new();
            for e in committed {
                outcomes.extend(self.sm.apply(e));
                if e.kind == EntryKind::ConfChange as i32 && self.sm.conf_state().since == e.slot {
                    conf_slots.push(e.slot);
                }
            }
            self.metrics
                .entries_applied
                .fetch_add(committed.len() as u64, Relaxed);
            self.metrics
                .commands_applied
                .fetch_add(outcomes.len() as u64, Relaxed);
            let changes = (!committed.is_empty()).then(|| {
                if self.sm.pending_changes() >= CHECKPOINT_PENDING
                    || self.sm.commands_since_checkpoint() >= CHECKPOINT_COMMANDS
                {
                    self.sm.take_changes()
                } else {
                    self.sm.take_chain_changes()
                }
            });
            for (client, seq, outcome) in outcomes {
                if let Some(waiters) = self.writes.remove(&(client, seq)) {
                    for w in waiters {
                        let _ = w.tx.send(Reply::Applied {
                            client,
                            seq,
                            outcome: outcome.clone(),
                        });
                    }
                }
            }
            for rs in rd.take_read_states() {
                let ctx = <[u8; 8]>::try_from(rs.ctx.as_ref()).map(u64::from_be_bytes);
                if let Some(batch) = ctx.ok().and_then(|c| self.reads_pending.remove(&c)) {
                    self.reads_ready
                        .extend(batch.into_iter().map(|r| (rs.index, r)));
                }
            }
            self.serve_reads();
            let created = self.take_snapshot();
            let write = ReadyWrite {
                hard_state: rd.hard_state(),
                conf_state: rd.conf_state(),
                entries: rd.entries(),
                changes: changes.as_ref(),
                installed: installed.as_ref().map(|(s, d)| (s, d)),
                created: created.as_ref(),
            };
            if !write.is_empty() {
                let started = Instant::now();
                self.storage.persist_ready(write)?;
                self.metrics.sync(started.elapsed());
                // A compaction proceeds a chunk per transaction: follow it
                // until it reaches the log tail behind the snapshot.
                let compacting =
                    self.compacted < self.last_snapshot.saturating_sub(self.policy.log_tail);
                if installed.is_some() || created.is_some() || compacting {
                    self.compacted = self.storage.compacted().unwrap_or(self.compacted);
                }
            }
            if installed.is_some() || !conf_slots.is_empty() {
                self.sync_members();
            }
            // Durable: now the replies that depend on it may leave.
            self.outbox.send(rd.drain_persisted_messages());
            self.answer_member_changes(&conf_slots);
            self.node.advance(rd);
        }
        Ok(())
    }

    /// Installs the leader's snapshot as the state (before the Ready's
    /// decided entries, which continue after it); returns it with its
    /// decoded data, for the store to persist. One no newer than what is
    /// applied here changes nothing.
    pub(super) fn install(
        &mut self,
        snapshot: Snapshot,
    ) -> Result<Option<(Snapshot, crate::state::SnapshotData)>, DriverError> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if meta.slot <= self.sm.applied() {
            return Ok(None);
        }
        let data = StateMachine::decode_snapshot(meta.slot, &snapshot.data).map_err(|error| {
            DriverError::BadSnapshot {
                slot: meta.slot,
                error,
            }
        })?;
        self.sm = StateMachine::from_snapshot(&data, meta.conf_state.unwrap_or_default());
        self.last_snapshot = meta.slot;
        self.metrics.snapshots_installed.fetch_add(1, Relaxed);
        slog::info!(self.logger, "installed snapshot"; "slot" => meta.slot,
            "bytes" => snapshot.data.len(), "keys" => self.sm.len());
        Ok(Some((snapshot, data)))
    }

    /// A snapshot of the applied state, once enough was applied since the
    /// last one, with the log compacted behind it but for a tail.
    pub(super) fn take_snapshot(&mut self) -> Option<Compaction> {
        let applied = self.sm.applied();
        if self.policy.every == 0 || applied < self.last_snapshot + self.policy.every {
            return None;
        }
        self.last_snapshot = applied;
        self.metrics.snapshots_taken.fetch_add(1, Relaxed);
        Some(Compaction {
            snapshot: Snapshot {
                metadata: Some(SnapshotMetadata {
                    slot: applied,
                    conf_state: Some(self.sm.conf_state().clone()),
                }),
                data: self.sm.snapshot_data().encode_to_vec().into(),
            },
            compact_to: applied.saturating_sub(self.policy.log_tail),
        })
    }
}
