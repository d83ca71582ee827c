//! Phase 2: the leader proposes in its ballot for every slot, pipelined and
//! batched within the configured window; a slot is chosen once a quorum
//! accepted it in this ballot.

use super::read_index::ReadQueue;
use super::transfer::Transfer;
use super::{malformed, Node, Role};
use crate::arena::Payload;
use crate::errors::{DropReason, Error, Result, StorageError};
use crate::progress::{quorum_value, Progress, ProgressState};
use crate::storage::Storage;
use bytes::Bytes;
use paxos_proto::{
    framed_len, Accept, Accepted, Ballot, BatchBuilder, Body, Decide, Entry, EntryKind, Heartbeat,
    Message, Position, Propose,
};

/// Where a proposal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// This node leads: the proposal holds this position (its slot, and
    /// its index among the commands batched into that slot). A decided
    /// entry hands the command out with the same position
    /// ([`paxos_proto::Entry::commands`]); another value decided at that
    /// slot means the proposal was lost.
    At(Position),
    /// Forwarded to this leader (`Config::forward_proposals`). Like any
    /// message it may be lost: the client retries on timeout.
    Forwarded(u64),
}

/// The error for a command a batch cannot hold: 4 GiB or more (a larger
/// `max_batch_bytes` lets one try), or past the `u32` count (unreachable:
/// a command joins only below `max_batch_commands`, a `u32`). Checked
/// before the command is taken: nothing changes.
fn refused(_: paxos_proto::BatchError) -> Error {
    Error::ProposalDropped(DropReason::EntryTooLarge)
}

#[derive(Clone, Debug, Hash)]
pub(super) struct LeaderState {
    pub(super) ballot: Ballot,
    /// Every member but this node.
    pub(super) progress: Vec<Progress>,
    /// Our own durable prefix in `ballot` (counts toward the quorum only
    /// once persisted: it is raised by our own `Accepted`, delivered after
    /// the `Ready` that carried the entries).
    pub(super) self_matched: u64,
    /// Highest slot for which our own `Accepted` is queued.
    self_ack_queued: u64,
    uncommitted_bytes: u64,
    hb_seq: u64,
    /// Slots <= this were re-proposed when phase 1 ended: reads wait until
    /// they are chosen.
    pub(super) recovered_up_to: u64,
    /// Linearizable reads in flight.
    pub(super) reads: ReadQueue,
    /// A leadership transfer in progress.
    pub(super) transfer: Option<Transfer>,
    /// The committed watermark last announced to every peer.
    announced: u64,
    /// New entries wait here until the next `Ready`, so that proposals made
    /// back to back leave in one `Accept` per peer (batching).
    pub(super) pending_flush: bool,
    /// Lease reads (`Config::read_lease_ticks`).
    pub(super) lease: super::lease::Lease,
    /// Scratch for the voters' prefixes in `commit_step`, kept so the
    /// check after every `Accepted` neither allocates nor clears a
    /// `MAX_VOTERS` array.
    prefixes: Vec<u64>,
    /// Commands proposed since the last `Ready`, sharing one slot.
    open: OpenBatch,
}

/// Bytes of a batch payload beside its commands' (`framed_len` each): the
/// count.
const BATCH_COUNT_BYTES: u64 = 4;

/// The slot being filled by proposals made between two `Ready`s (instance
/// batching). It is not in the log yet: every entry point of the node but
/// `propose` seals it into one entry first, so nothing else ever sees a
/// slot still growing.
#[derive(Clone, Debug, Hash, Default)]
struct OpenBatch {
    /// The slot the commands will hold (0: none open).
    slot: u64,
    /// Commands in it.
    count: u32,
    /// Their lengths and bytes, as a batch payload holds them (all but
    /// `BATCH_COUNT_BYTES`).
    bytes: u64,
    /// The first command as the caller handed it over, while it is the
    /// only one: a slot of one command is a plain normal entry, and a large
    /// payload then stays uncopied.
    first: Option<Bytes>,
    /// Every command but a held `first`, written in place in a chunk (see
    /// `arena`): sealing appends the batch's trailer and splits it off.
    batch: BatchBuilder,
}

impl LeaderState {
    pub(super) fn new(
        ballot: Ballot,
        progress: Vec<Progress>,
        committed: u64,
        recovered_up_to: u64,
        uncommitted_bytes: u64,
    ) -> Self {
        LeaderState {
            ballot,
            progress,
            self_matched: committed,
            self_ack_queued: committed,
            uncommitted_bytes,
            hb_seq: 0,
            recovered_up_to,
            reads: ReadQueue::default(),
            transfer: None,
            announced: committed,
            pending_flush: true,
            lease: super::lease::Lease::default(),
            prefixes: Vec::new(),
            open: OpenBatch {
                batch: BatchBuilder::with_capacity(crate::arena::CHUNK),
                ..OpenBatch::default()
            },
        }
    }
}

impl<S: Storage> Node<S> {
    /// Proposes a command or another entry of `kind` (rule L5 for a
    /// command that joins the slot being filled).
    #[inline]
    pub(crate) fn propose_entry(&mut self, kind: EntryKind, data: Payload<'_>) -> Result<Proposed> {
        // The common case, small enough to inline into the host's call.
        if kind == EntryKind::Normal {
            if let Some(joined) = self.join_open_slot(data.as_slice()) {
                return joined;
            }
        }
        self.propose_in_new_slot(kind, data)
    }

    /// A command joining the slot being filled, if one is open and has room
    /// for it. Only proposals reached the node since the slot opened, so
    /// what its first command was checked against (a transfer, rule L3,
    /// the window) still holds.
    #[inline]
    fn join_open_slot(&mut self, data: &[u8]) -> Option<Result<Proposed>> {
        let Role::Leader(ls) = &mut self.role else {
            return None;
        };
        let open = &mut ls.open;
        let framed = framed_len(data.len()) as u64;
        if open.slot == 0
            || open.count >= self.cfg.max_batch_commands
            || BATCH_COUNT_BYTES + open.bytes + framed > self.cfg.max_batch_bytes
        {
            return None;
        }
        if ls.uncommitted_bytes + open.bytes + framed > self.cfg.max_inflight_bytes {
            return Some(Err(Error::ProposalDropped(
                DropReason::TooManyInflightBytes,
            )));
        }
        // The first command moves into the batch only once it is in: a
        // refusal leaves the slot as it was.
        if let Some(first) = &open.first {
            if let Err(e) = open.batch.push(first) {
                return Some(Err(refused(e)));
            }
            open.first = None;
        }
        if let Err(e) = open.batch.push(data) {
            return Some(Err(refused(e)));
        }
        let index = open.count;
        open.count += 1;
        open.bytes += framed;
        Some(Ok(Proposed::At(Position {
            slot: open.slot,
            index,
        })))
    }

    /// [`Node::propose_entry`] for anything but a command joining the open
    /// slot: a forward, a refusal, or a new slot. Kept out of line, so that
    /// the common case stays small enough to inline.
    #[inline(never)]
    fn propose_in_new_slot(&mut self, kind: EntryKind, data: Payload<'_>) -> Result<Proposed> {
        let Role::Leader(ls) = &mut self.role else {
            return match self.leader {
                Some(leader) if self.cfg.forward_proposals && leader != self.id => {
                    let entry = Entry {
                        slot: 0,
                        ballot: None,
                        kind: kind as i32,
                        data: data.into_bytes(),
                    };
                    self.send(
                        leader,
                        Body::Propose(Propose {
                            entries: vec![entry],
                        }),
                    );
                    Ok(Proposed::Forwarded(leader))
                }
                leader => Err(Error::NotLeader { leader }),
            };
        };
        let size = data.len() as u64;
        if size > self.cfg.max_inflight_bytes {
            return Err(Error::ProposalDropped(DropReason::EntryTooLarge));
        }
        let framed = framed_len(data.len()) as u64;
        if ls.transfer.is_some() {
            return Err(Error::ProposalDropped(DropReason::TransferInProgress));
        }
        // Rule L3: nothing past an undecided membership change.
        if self.log.next_conf_slot().is_some() && !planted!(self.cfg, ProposePastConfChange) {
            return Err(Error::ProposalDropped(DropReason::ConfChangePending));
        }
        self.seal_batch();
        // Sealing keeps the role.
        let Role::Leader(ls) = &mut self.role else {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        };
        if self.log.last() - self.log.committed >= self.cfg.max_inflight_slots {
            return Err(Error::ProposalDropped(DropReason::TooManyInflightSlots));
        }
        if ls.uncommitted_bytes + size > self.cfg.max_inflight_bytes {
            return Err(Error::ProposalDropped(DropReason::TooManyInflightBytes));
        }
        let slot = self.log.last() + 1;
        if kind == EntryKind::Normal && self.cfg.max_batch_commands > 1 {
            // Later proposals before the next `Ready` may join this slot.
            let open = &mut ls.open;
            match data {
                Payload::Owned(b) => open.first = Some(b),
                Payload::Borrowed(s) => open.batch.push(s).map_err(refused)?,
            }
            open.slot = slot;
            open.count = 1;
            open.bytes = framed;
            ls.pending_flush = true;
            return Ok(Proposed::At(Position { slot, index: 0 }));
        }
        ls.pending_flush = true;
        let data = self.arena.intern(data);
        self.write_own(slot, kind, data);
        Ok(Proposed::At(Position { slot, index: 0 }))
    }

    /// Writes this leader's own value for `slot` into its log, counting its
    /// bytes as undecided.
    fn write_own(&mut self, slot: u64, kind: EntryKind, data: Bytes) {
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        ls.uncommitted_bytes += data.len() as u64;
        let ballot = Some(ls.ballot);
        self.log.write(Entry {
            slot,
            ballot,
            kind: kind as i32,
            data,
        });
        self.accept_prefix = slot;
    }

    /// Writes the open batch, if any, into the log as one entry: a normal
    /// entry for one command, a batch entry for several.
    ///
    /// Every entry point of the node calls this, and almost always no slot
    /// is open: that check is inlined, the sealing is not.
    #[inline]
    pub(crate) fn seal_batch(&mut self) {
        if matches!(&self.role, Role::Leader(ls) if ls.open.slot != 0) {
            self.seal_open_batch();
        }
    }

    fn seal_open_batch(&mut self) {
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let open = &mut ls.open;
        if open.slot == 0 {
            return;
        }
        let slot = std::mem::take(&mut open.slot);
        let (kind, data) = match (std::mem::take(&mut open.count), open.first.take()) {
            (1, Some(first)) => (EntryKind::Normal, self.arena.intern(Payload::Owned(first))),
            // A slot of one borrowed command: the command itself.
            (_, None) if open.batch.count() == 1 => (
                EntryKind::Normal,
                open.batch.finish_one().unwrap_or_default(),
            ),
            _ => (EntryKind::Batch, open.batch.finish()),
        };
        open.bytes = 0;
        self.write_own(slot, kind, data);
    }

    pub(super) fn on_propose(&mut self, from: u64, entries: Vec<Entry>) -> Result<()> {
        if entries.iter().any(|e| e.kind != EntryKind::Normal as i32) {
            return Err(malformed(from, "only normal entries may be forwarded"));
        }
        if !matches!(self.role, Role::Leader(_)) {
            // Never forward twice: a stale route must not loop.
            slog::debug!(self.logger, "dropping forwarded proposal: not leader"; "from" => from);
            return Ok(());
        }
        for e in entries {
            if let Err(err) = self.propose_entry(EntryKind::Normal, Payload::Owned(e.data)) {
                slog::debug!(self.logger, "dropping forwarded proposal"; "from" => from, "error" => %err);
            }
        }
        Ok(())
    }

    pub(super) fn needs_flush(&self) -> bool {
        matches!(&self.role, Role::Leader(ls) if ls.pending_flush)
    }

    /// Sends what each peer lacks, and queues our own acceptance of new
    /// entries (delivered to ourselves once they are persisted).
    pub(super) fn flush(&mut self) {
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if !ls.pending_flush {
            return;
        }
        ls.pending_flush = false;
        self.seal_batch();
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let announce = self.log.committed > ls.announced;
        ls.announced = self.log.committed;
        for i in 0..ls.progress.len() {
            let sent = self.send_accepts(i);
            // Every Accept carries the watermark; peers that got none hear
            // it now rather than on the next heartbeat.
            if announce && !sent {
                self.announce_decided(i);
            }
        }
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let last = self.log.last();
        if last > ls.self_ack_queued {
            ls.self_ack_queued = last;
            let ballot = Some(ls.ballot);
            // A reply to ourselves: straight to the queue `Outbox::send`
            // files it in (rule A3), once per flush.
            self.outbox.to_self.push(Message::new(
                self.id,
                self.id,
                Body::Accepted(Accepted {
                    ballot,
                    matched: last,
                    last_slot: last,
                }),
            ));
        }
    }

    /// `send_accepts` by peer id: deciding a membership change may have
    /// reshuffled the progress list since the caller looked the peer up.
    pub(super) fn send_accepts_to(&mut self, id: u64) {
        if let Role::Leader(ls) = &self.role {
            if let Some(i) = ls.progress.iter().position(|p| p.id == id) {
                self.send_accepts(i);
            }
        }
    }

    /// Sends `Accept`s to the peer at `i`: one probe, or a stream up to the
    /// window, or the next snapshot chunk. Returns whether it sent any.
    ///
    /// Called for every peer on every flush and after every reply, mostly
    /// with nothing to send (the peer has every slot, or a probe is out):
    /// that first check of the loop below is inlined.
    #[inline]
    pub(super) fn send_accepts(&mut self, i: usize) -> bool {
        if let Role::Leader(ls) = &self.role {
            if let Some(p) = ls.progress.get(i) {
                if p.state != ProgressState::Snapshot
                    && (p.next > self.log.last()
                        || (p.state == ProgressState::Probe && p.probe_sent))
                {
                    return false;
                }
            }
        }
        self.send_accepts_from(i)
    }

    #[inline(never)]
    fn send_accepts_from(&mut self, i: usize) -> bool {
        // Split borrows: the peer's progress changes as its Accepts go out
        // through the one router.
        let Node {
            role,
            log,
            storage,
            cfg,
            outbox,
            logger,
            id,
            ..
        } = self;
        let Role::Leader(ls) = role else {
            return false;
        };
        let p = &mut ls.progress[i];
        let mut sent = false;
        loop {
            if p.state == ProgressState::Snapshot {
                if let Some(body) = super::snapshot::next_chunk(p, ls.ballot, cfg.max_msg_bytes) {
                    outbox.send(*id, p.id, body);
                    sent = true;
                }
                return sent;
            }
            if p.next > log.last() || (p.state == ProgressState::Probe && p.probe_sent) {
                return sent;
            }
            let window_end = p.matched.saturating_add(cfg.max_inflight_slots);
            if p.next > window_end {
                return sent;
            }
            let hi = log.last().min(window_end);
            let entries = match log.fetch(
                storage,
                p.next,
                hi,
                cfg.max_msg_entries,
                cfg.max_msg_bytes,
            ) {
                Ok((entries, _)) if !entries.is_empty() => entries,
                Ok(_) => {
                    slog::error!(logger, "leader log has a hole"; "slot" => p.next);
                    return sent;
                }
                Err(Error::Storage(StorageError::Compacted(_))) => {
                    if super::snapshot::start_snapshot(p, storage, logger) {
                        continue;
                    }
                    return sent;
                }
                Err(e) => {
                    slog::warn!(logger, "cannot read entries for peer"; "peer" => p.id, "error" => %e);
                    return sent;
                }
            };
            if let Some(e) = entries.last() {
                p.next = e.slot + 1; // <= log.last() + 1, within MAX_SLOT + 1
                p.sent = p.sent.max(e.slot);
            }
            outbox.send(
                *id,
                p.id,
                Body::Accept(Accept {
                    ballot: Some(ls.ballot),
                    entries,
                    committed: log.committed,
                }),
            );
            sent = true;
            if p.state == ProgressState::Probe {
                p.probe_sent = true;
                return sent;
            }
        }
    }

    fn announce_decided(&mut self, i: usize) {
        let committed = self.log.committed;
        let Role::Leader(ls) = &self.role else {
            return;
        };
        let (to, ballot) = (ls.progress[i].id, Some(ls.ballot));
        self.send(to, Body::Decide(Decide { ballot, committed }));
    }

    pub(super) fn on_accepted(&mut self, from: u64, b: Ballot, matched: u64, last_slot: u64) {
        if from == self.id {
            self.on_own_accepted(b, matched);
            return;
        }
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if b != ls.ballot {
            return; // never count acceptances across ballots
        }
        let Some(i) = ls.progress.iter().position(|p| p.id == from) else {
            return;
        };
        ls.progress[i].on_accepted(matched, last_slot);
        self.maybe_commit();
        self.send_accepts_to(from);
        self.maybe_send_timeout_now();
    }

    /// Our own acceptance of every slot up to `matched` in ballot `b`,
    /// delivered once durable.
    #[inline]
    pub(super) fn on_own_accepted(&mut self, b: Ballot, matched: u64) {
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if b != ls.ballot {
            return; // never count acceptances across ballots
        }
        // Our own acceptance is queued for exactly what we wrote.
        debug_assert!(matched <= self.log.last(), "own acceptance beyond the log");
        ls.self_matched = ls.self_matched.max(matched);
        self.maybe_commit();
    }

    pub(super) fn on_heartbeat_reply(&mut self, from: u64, b: Ballot, matched: u64, seq: u64) {
        let last = self.log.last();
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if b != ls.ballot {
            return;
        }
        let Some(i) = ls.progress.iter().position(|p| p.id == from) else {
            return;
        };
        ls.progress[i].on_heartbeat_reply(matched, last);
        // Only rounds actually sent count: an acknowledgement of a future
        // round must not confirm reads that have not had theirs.
        let seq = seq.min(ls.hb_seq);
        ls.progress[i].acked_seq = ls.progress[i].acked_seq.max(seq);
        self.maybe_commit();
        self.confirm_reads();
        self.renew_lease();
        self.send_accepts_to(from);
        self.maybe_send_timeout_now();
    }

    /// Chosen = accepted by a quorum in this ballot: the quorum-th highest
    /// prefix among the voters (ours included) is chosen.
    ///
    /// Deciding stops at an undecided membership change: the slots after it
    /// are governed by the new membership, whose quorum is counted once the
    /// change itself is decided (PROTOCOL.md rule L3).
    fn maybe_commit(&mut self) {
        while self.may_choose() && self.commit_step() {}
    }

    /// False when `commit_step` would certainly decide nothing: fewer than
    /// a quorum of prefixes, counting ours and every peer's (voters or
    /// not, a superset of the voters'), pass the watermark. Inlined, it
    /// spares most acceptances the call.
    #[inline]
    fn may_choose(&self) -> bool {
        let Role::Leader(ls) = &self.role else {
            return false;
        };
        let quorum = if planted!(self.cfg, CommitWithoutQuorum) {
            1
        } else {
            self.members.phase2_quorum()
        };
        let committed = self.log.committed;
        let ahead = usize::from(ls.self_matched > committed)
            + ls.progress.iter().filter(|p| p.matched > committed).count();
        ahead >= quorum
    }

    /// One round of `maybe_commit`; true if it decided a membership change
    /// and more may follow under the new membership.
    #[inline(never)]
    fn commit_step(&mut self) -> bool {
        let Role::Leader(ls) = &mut self.role else {
            return false;
        };
        let prefixes = &mut ls.prefixes;
        prefixes.clear();
        prefixes.extend(self.members.voters.iter().map(|&v| {
            if v == self.id {
                ls.self_matched
            } else {
                ls.progress
                    .iter()
                    .find(|p| p.id == v)
                    .map_or(0, |p| p.matched)
            }
        }));
        let quorum = if planted!(self.cfg, CommitWithoutQuorum) {
            1
        } else {
            self.members.phase2_quorum()
        };
        let conf_slot = if planted!(self.cfg, ProposePastConfChange) {
            None
        } else {
            self.log.next_conf_slot()
        };
        let chosen = quorum_value(prefixes, quorum)
            .min(self.log.last())
            .min(conf_slot.unwrap_or(u64::MAX));
        if chosen <= self.log.committed {
            return false;
        }
        for slot in self.log.committed + 1..=chosen {
            let size = self.log.get(slot).map_or(0, Entry::size);
            ls.uncommitted_bytes = ls.uncommitted_bytes.saturating_sub(size);
        }
        ls.pending_flush = true;
        self.decide(chosen);
        self.release_waiting_reads();
        conf_slot == Some(chosen) && matches!(self.role, Role::Leader(_))
    }

    pub(super) fn tick_leader(&mut self) {
        if let Role::Leader(ls) = &mut self.role {
            ls.lease.tick();
        }
        self.tick_transfer();
        if self.timer.heartbeat_due(self.cfg.heartbeat_ticks) {
            self.broadcast_heartbeat();
        }
        if self.timer.quorum_check_due(self.cfg.election_ticks) {
            self.check_quorum();
        }
    }

    /// Stickiness, leader side: a leader that did not hear from a quorum
    /// within `election_ticks` steps down.
    /// It counts a phase-2 quorum (rule M4): with fewer it cannot choose
    /// anything, and a new leader may already have been elected.
    fn check_quorum(&mut self) {
        let quorum = self.members.phase2_quorum();
        let self_votes = usize::from(self.members.is_voter(self.id));
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let active = ls
            .progress
            .iter()
            .filter(|p| p.voter && p.recent_active)
            .count()
            + self_votes;
        for p in &mut ls.progress {
            p.recent_active = false;
        }
        if active < quorum {
            slog::warn!(self.logger, "lost contact with a quorum"; "active" => active, "quorum" => quorum);
            self.become_follower(None);
        }
    }

    /// Sends a heartbeat round to every peer; returns its sequence number.
    pub(super) fn broadcast_heartbeat(&mut self) -> u64 {
        let committed = self.log.committed;
        let Role::Leader(ls) = &mut self.role else {
            return 0;
        };
        ls.hb_seq += 1;
        let (ballot, seq) = (Some(ls.ballot), ls.hb_seq);
        if self.cfg.read_lease_ticks > 0 {
            ls.lease.on_round_sent(seq);
        }
        let ids: Vec<u64> = ls.progress.iter().map(|p| p.id).collect();
        for id in ids {
            self.send(
                id,
                Body::Heartbeat(Heartbeat {
                    ballot,
                    committed,
                    seq,
                }),
            );
        }
        seq
    }
}
