//! Everything [`crate::RawNode`] takes out of the node, and all it tells
//! the node back: the one narrow interface between the host-facing driver
//! and the protocol's state.

use super::{Node, ReadState, Status};
use crate::buffers::Buffers;
use crate::storage::Storage;
use paxos_proto::{Body, ConfState, Entry, HardState, Message, Snapshot};

/// What one `Ready` carries out of the node for the host (rules D1, D2).
/// It is a part of the `Ready` itself: [`Node::take_output`] fills it in
/// place, so nothing is copied from one struct into the next per `Ready`.
/// A `Ready`'s parts are reused once advanced: empty, but its vectors
/// keep their room.
#[derive(Clone, Debug, Hash, Default)]
pub(crate) struct Output {
    /// The hard state, if it changed.
    pub(crate) hard_state: Option<HardState>,
    /// Entries to persist.
    pub(crate) entries: Vec<Entry>,
    /// Messages that may leave at once.
    pub(crate) messages: Vec<Message>,
    /// Messages that wait for the persist.
    pub(crate) persisted_messages: Vec<Message>,
    /// Reads confirmed since the last `Ready`.
    pub(crate) read_states: Vec<ReadState>,
    /// The membership, if it changed.
    pub(crate) conf_state: Option<Box<ConfState>>,
    /// A snapshot installed from the leader, if any.
    pub(crate) snapshot: Option<Box<Snapshot>>,
}

/// What [`Node::take_output`] hands `RawNode` rather than the host.
#[derive(Debug, Hash)]
pub(crate) struct Kept {
    /// The lowest slot among the `Ready`'s entries: not durable until the
    /// `Ready` is advanced.
    pub(crate) min_written: u64,
    /// The node's replies to itself, delivered when the `Ready` is advanced.
    pub(crate) to_self: Vec<Message>,
}

impl<S: Storage> Node<S> {
    /// Whether a `Ready` would carry anything but decided entries.
    pub(crate) fn has_output(&self) -> bool {
        self.hs_dirty
            || self.conf_dirty
            || self.log.has_unstable()
            || !self.outbox.is_empty()
            || !self.read_states.is_empty()
            || self.pending_snapshot.is_some()
            || self.needs_flush()
    }

    /// The committed watermark.
    pub(crate) fn committed(&self) -> u64 {
        self.log.committed
    }

    /// Takes what changed since the last `Ready` into `out`, which is
    /// empty (its vectors hold nothing, its options none), flushing the
    /// leader's batched Accepts first. A queue with something in it is
    /// swapped for `out`'s empty vector, which keeps the room it had: no
    /// vector is allocated per `Ready` in the steady state.
    pub(crate) fn take_output(&mut self, buffers: &mut Buffers, out: &mut Output) -> Kept {
        self.flush();
        if std::mem::take(&mut self.hs_dirty) {
            let mut hs = self.hard_state();
            if planted!(self.cfg, ReplyBeforePersist) {
                hs.promised = Some(self.restored_promised);
            }
            out.hard_state = Some(hs);
        }
        let min_written = self.log.take_unstable(&mut out.entries);
        swap_if_any(&mut self.outbox.persisted, &mut out.persisted_messages);
        swap_if_any(&mut self.outbox.immediate, &mut out.messages);
        swap_if_any(&mut self.read_states, &mut out.read_states);
        // The replies to ourselves stay with `RawNode` until the advance:
        // a buffer handed back earlier (or room for as many) replaces them.
        let to_self = if self.outbox.to_self.is_empty() {
            Vec::new()
        } else {
            let room = self.outbox.to_self.len();
            std::mem::replace(&mut self.outbox.to_self, buffers.messages(room))
        };
        if std::mem::take(&mut self.conf_dirty) {
            out.conf_state = Some(Box::new(self.members.to_conf_state()));
        }
        if let Some(snapshot) = self.pending_snapshot.take() {
            out.snapshot = Some(Box::new(snapshot));
        }
        Kept {
            min_written,
            to_self,
        }
    }

    /// Decided entries after `*handed` into `moved` (empty), contiguous,
    /// bounded by the config, never past a gap (rule F2); advances
    /// `*handed` past them. Entries below `durable_floor` move out of
    /// memory without a copy. Returns whether decided entries remain that
    /// could not be read (a storage error), so the host's `has_ready` loop
    /// must not spin on them: known only when a read was tried (`None`
    /// otherwise).
    pub(crate) fn take_committed(
        &mut self,
        handed: &mut u64,
        durable_floor: u64,
        moved: &mut Vec<Entry>,
    ) -> Option<bool> {
        if self.log.committed <= *handed {
            return None;
        }
        // Durable decided entries move out of memory: no copy on the hot path.
        let (max_entries, max_bytes) = (self.cfg.max_ready_entries, self.cfg.max_ready_bytes);
        let mut bytes = 0u64;
        while moved.len() < max_entries && (moved.is_empty() || bytes < max_bytes) {
            if *handed + 1 > self.log.committed {
                break;
            }
            match self.log.take_decided_front(*handed + 1, durable_floor) {
                Some(e) => {
                    bytes += e.size();
                    *handed = e.slot;
                    moved.push(e);
                }
                None => break,
            }
        }
        if self.log.committed <= *handed
            || moved.len() >= max_entries
            || (!moved.is_empty() && bytes >= max_bytes)
        {
            return None;
        }
        let fetched = self.log.fetch(
            &self.storage,
            *handed + 1,
            self.log.committed,
            max_entries - moved.len(),
            max_bytes.saturating_sub(bytes).max(1),
        );
        let mut entries = match fetched {
            Ok((entries, _)) => entries,
            Err(e) => {
                slog::warn!(self.logger, "cannot read decided entries"; "error" => %e);
                // What was moved out is handed out: it must not be lost.
                return Some(moved.is_empty());
            }
        };
        // Every slot <= committed is held; a hole would be a bug, and
        // applying past it would break the state machine. Stop at it.
        let first = *handed + 1;
        let contiguous = entries
            .iter()
            .enumerate()
            .take_while(|(i, e)| e.slot == first + *i as u64)
            .count();
        if contiguous < entries.len() && !planted!(self.cfg, ApplyPastGap) {
            slog::error!(self.logger, "hole in decided log"; "slot" => first + contiguous as u64);
            debug_assert!(
                false,
                "hole in decided log after slot {}",
                *handed + contiguous as u64
            );
            entries.truncate(contiguous);
        }
        let mut stalled = None;
        match entries.last() {
            Some(e) => *handed = e.slot,
            None => stalled = Some(moved.is_empty()),
        }
        moved.extend(entries);
        stalled
    }

    /// The host applied every decided slot up to `applied`.
    pub(crate) fn release(&mut self, applied: u64) {
        self.log.release(applied);
    }

    /// Delivers the node's replies to itself, now durable (rule A3).
    pub(crate) fn deliver_to_self(&mut self, msgs: &mut Vec<Message>) {
        if msgs.is_empty() {
            // Most Readys carry none: skip the drain's setup and drop.
            return;
        }
        for m in msgs.drain(..) {
            // Our own replies are well formed by construction.
            let r = match m.body {
                // A leader's acceptance of what it wrote, one per Ready:
                // what `dispatch` does with it, without the match and call.
                Some(Body::Accepted(a)) if m.from == self.id => {
                    super::some_ballot(m.from, a.ballot).map(|b| self.on_own_accepted(b, a.matched))
                }
                Some(body) => self.dispatch(m.from, body),
                None => Ok(()),
            };
            if let Err(e) = r {
                slog::error!(self.logger, "own reply failed"; "error" => %e);
            }
        }
    }

    /// The node's state for monitoring, with the host's applied slot.
    pub(crate) fn status(&self, applied: u64) -> Status {
        Status::of(self, applied)
    }

    /// The storage the node reads from.
    pub(crate) fn storage(&self) -> &S {
        &self.storage
    }
}

/// Swaps `queue` into `into` (empty) when it holds anything: `queue` is
/// left with `into`'s empty vector and its room.
#[inline]
fn swap_if_any<T>(queue: &mut Vec<T>, into: &mut Vec<T>) {
    if !queue.is_empty() {
        std::mem::swap(queue, into);
    }
}
