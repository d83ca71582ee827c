//! Linearizable reads (PROTOCOL.md rule R1).
//!
//! The leader answers `read_index(ctx)` with the committed watermark it holds
//! at the request, but only once (1) its own phase-2 re-proposals are chosen,
//! so that watermark covers everything chosen before its leadership, and (2)
//! a quorum acknowledged a heartbeat sent after the request in its ballot, so
//! no newer leader can have decided anything it does not know. The host
//! serves the read once it has applied up to the returned index.

use super::{Node, Role};
use crate::errors::{DropReason, Error, Result};
use crate::storage::Storage;
use bytes::Bytes;
use std::collections::VecDeque;

/// A confirmed read: serve it once the application applied `index`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ReadState {
    /// The committed watermark the read must observe.
    pub index: u64,
    /// The caller's context, as passed to `read_index`.
    pub ctx: Bytes,
}

#[derive(Clone, Debug, Hash)]
struct PendingRead {
    ctx: Bytes,
    index: u64,
    /// The heartbeat round a quorum must acknowledge.
    seq: u64,
}

/// Reads in flight at a leader. Dropped with the leadership: a read that
/// never confirms is retried by its caller, like a lost proposal.
#[derive(Clone, Debug, Hash, Default)]
pub(super) struct ReadQueue {
    /// Waiting for the leader's re-proposals to be chosen.
    waiting: Vec<Bytes>,
    /// Waiting for a quorum to acknowledge their heartbeat round.
    pending: VecDeque<PendingRead>,
}

impl ReadQueue {
    fn len(&self) -> usize {
        self.waiting.len() + self.pending.len()
    }
}

impl<S: Storage> Node<S> {
    pub(crate) fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        let limit = usize::try_from(self.cfg.max_inflight_slots).unwrap_or(usize::MAX);
        let committed = self.log.committed;
        let Role::Leader(ls) = &mut self.role else {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        };
        if ls.reads.len() >= limit {
            return Err(Error::ProposalDropped(DropReason::TooManyReads));
        }
        if committed < ls.recovered_up_to {
            ls.reads.waiting.push(ctx);
            return Ok(());
        }
        if self.cfg.read_lease_ticks > 0 && ls.lease.valid() {
            // No newer leader can exist while the lease holds (see
            // `Config::read_lease_ticks`): the watermark is current.
            self.read_states.push(ReadState {
                index: committed,
                ctx,
            });
            return Ok(());
        }
        let seq = self.broadcast_heartbeat();
        if let Role::Leader(ls) = &mut self.role {
            ls.reads.pending.push_back(PendingRead {
                ctx,
                index: committed,
                seq,
            });
        }
        self.confirm_reads();
        Ok(())
    }

    /// Once the re-proposals are chosen, reads held back start their round.
    pub(super) fn release_waiting_reads(&mut self) {
        let committed = self.log.committed;
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if committed < ls.recovered_up_to || ls.reads.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut ls.reads.waiting);
        let seq = self.broadcast_heartbeat();
        if let Role::Leader(ls) = &mut self.role {
            for ctx in waiting {
                ls.reads.pending.push_back(PendingRead {
                    ctx,
                    index: committed,
                    seq,
                });
            }
        }
        self.confirm_reads();
    }

    /// Releases every read whose heartbeat round a quorum acknowledged.
    pub(super) fn confirm_reads(&mut self) {
        let pending = matches!(&self.role, Role::Leader(ls) if !ls.reads.pending.is_empty());
        if !pending {
            return;
        }
        let confirmed = if planted!(self.cfg, ReadWithoutQuorum) {
            u64::MAX
        } else {
            self.quorum_acked_round()
        };
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        while ls.reads.pending.front().is_some_and(|r| r.seq <= confirmed) {
            if let Some(r) = ls.reads.pending.pop_front() {
                self.read_states.push(ReadState {
                    index: r.index,
                    ctx: r.ctx,
                });
            }
        }
    }
}

#[cfg(test)]
impl super::leader::LeaderState {
    /// The heartbeat round the oldest confirmable read waits for (0: none).
    pub(super) fn reads_pending_seq_for_test(&self) -> u64 {
        self.reads.pending.front().map_or(0, |r| r.seq)
    }
}
