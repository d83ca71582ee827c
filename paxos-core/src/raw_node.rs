//! The public driver: feed ticks, messages and proposals in; take `Ready`s
//! out; persist, send, apply, `advance`.

use crate::arena::Payload;
use crate::buffers::Buffers;
use crate::config::Config;
use crate::errors::Result;
use crate::node::{Node, Output, Proposed, ReadState, Status};
use crate::storage::Storage;
use bytes::Bytes;
use paxos_proto::{ConfChange, ConfState, Entry, EntryKind, HardState, Message, Snapshot};
use slog::Logger;

/// What the host must do next (PROTOCOL.md rules D1-D5), in this order:
/// 1. persist, durably: [`Ready::snapshot`] (if any: from then on storage
///    holds no slot it covers and returns it from [`Storage::snapshot`]),
///    then [`Ready::entries`] (each replaces whatever its slot held), then
///    [`Ready::hard_state`] together with [`Ready::conf_state`] (these two
///    in one atomic write). One atomic write of everything is fine too. A
///    host whose writes are not atomic must keep this order: a crash then
///    leaves some prefix of it on disk, and the node restarts safely from
///    each one (a snapshot without the hard state after it, entries without
///    the promise that covers their ballot), but not from another order (a
///    hard state durable before its entries would name as decided a slot
///    whose older value is still on disk);
/// 2. then send [`Ready::persisted_messages`] — a reply may promise that state is
///    durable, so sending first would break the protocol's safety.
///    [`Ready::messages`] (a leader's own traffic) may instead
///    be sent at once, before or while persisting: the leader's disk write
///    then overlaps the round trip to its followers;
/// 3. install the snapshot's data as the application's state (if any), then
///    apply [`Ready::committed_entries`] in order. These are chosen
///    already (a quorum accepted them durably), so a host may also apply
///    them, and reveal their results to clients, before or while it
///    persists this `Ready`: a crash cannot change them, and applying them
///    again after a restart reaches the same results (PROTOCOL.md rule D5;
///    kvnode answers its clients first, then writes what applying changed
///    in the same transaction as the `Ready`);
/// 4. call [`RawNode::advance`] with this `Ready`.
///
/// A host may pipeline: take further `Ready`s, and step messages, ticks and
/// proposals, before advancing earlier ones. It must then persist the
/// `Ready`s in the order they were handed out (a later one's entries
/// overwrite an earlier one's), send a `Ready`'s messages only once it and
/// every earlier one are durable, apply decided entries in order across
/// them, and advance them in the order they were handed out. The node's
/// replies to itself (its own promise and acceptance) count only when the
/// `Ready` carrying them is advanced, so nothing it decides ever rests on
/// state that is not yet durable.
///
/// If a persist fails (a write or sync error), the host must not retry it
/// in place and carry on: the node's memory may already count on it. It
/// sends nothing more of this `Ready` (its [`Ready::messages`] sent
/// already are fine) nor of later ones, reveals no result that depends on
/// it (decided entries do not), does not advance it, and stops the node, restarting it from
/// storage. What reached the disk is a prefix of the order in step 1, and
/// the node restarts safely from each one (PROTOCOL.md rule D4).
#[derive(Debug, Hash, Default)]
pub struct Ready {
    number: u64,
    /// Everything else, boxed: handing a `Ready` out and back moves two
    /// words. `advance` keeps the box, emptied, for a later `Ready`.
    parts: Box<ReadyParts>,
}

/// A `Ready`'s contents.
#[derive(Clone, Debug, Hash, Default)]
struct ReadyParts {
    /// Filled in place by the node. Its rare parts (snapshot, membership)
    /// are boxed in turn.
    out: Output,
    committed_entries: Vec<Entry>,
}

impl ReadyParts {
    /// Empties what the host left, keeping the vectors' room: the node
    /// swaps its queues into them next time (see `Node::take_output`).
    #[inline]
    fn clear(&mut self) {
        let out = &mut self.out;
        out.hard_state = None;
        clear_if_any(&mut out.entries);
        clear_if_any(&mut out.messages);
        clear_if_any(&mut out.persisted_messages);
        clear_if_any(&mut out.read_states);
        out.conf_state = None;
        out.snapshot = None;
        clear_if_any(&mut self.committed_entries);
    }
}

/// A vector drained by the host is empty already: `clear` would still call
/// the elements' out-of-line drop.
#[inline]
fn clear_if_any<T>(v: &mut Vec<T>) {
    if !v.is_empty() {
        v.clear();
    }
}

impl Ready {
    /// Sequence number of this `Ready` (1, 2, ...).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// A copy of this `Ready`, for model checkers that fork a node (see
    /// [`RawNode::fork`]) while its host holds `Ready`s it has not
    /// advanced: the copy's host completes and advances the copy on the
    /// forked node. A `Ready` and its copy are never both advanced on one
    /// node.
    pub fn fork(&self) -> Ready {
        Ready {
            number: self.number,
            parts: self.parts.clone(),
        }
    }

    /// A snapshot received from the leader: the application's state after
    /// every slot it covers. Persist it first, install it before applying
    /// [`Ready::committed_entries`] (which continue right after it).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.parts.out.snapshot.as_deref()
    }

    /// Takes the snapshot, leaving none.
    pub fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.parts.out.snapshot.take().map(|s| *s)
    }

    /// The membership to persist, if it changed: the one in effect after
    /// the decided slots of [`Ready::hard_state`], so persist both together
    /// (a restart restores the node from the pair).
    pub fn conf_state(&self) -> Option<&ConfState> {
        self.parts.out.conf_state.as_deref()
    }

    /// The hard state to persist, if it changed.
    pub fn hard_state(&self) -> Option<&HardState> {
        self.parts.out.hard_state.as_ref()
    }

    /// Entries to persist, in write order (a later one for the same slot wins).
    pub fn entries(&self) -> &[Entry] {
        &self.parts.out.entries
    }

    /// Takes the entries to persist, leaving none.
    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.parts.out.entries)
    }

    /// Moves the entries to persist out one by one, leaving their buffer
    /// here for [`RawNode::advance`] to reuse (see [`Ready::drain_persisted_messages`]).
    pub fn drain_entries(&mut self) -> std::vec::Drain<'_, Entry> {
        self.parts.out.entries.drain(..)
    }

    /// Messages that may be sent before this `Ready`'s state is durable: a
    /// leader's Accepts, heartbeats and announcements, pre-votes and
    /// forwarded proposals, which depend on nothing it has yet to persist.
    /// Sending them after persisting is correct too, only slower.
    pub fn messages(&self) -> &[Message] {
        &self.parts.out.messages
    }

    /// Takes the messages that may leave at once, leaving none.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.parts.out.messages)
    }

    /// Moves the messages that may leave at once out one by one, leaving
    /// their buffer here for [`RawNode::advance`] to reuse: the
    /// allocation-free alternative to [`Ready::take_messages`].
    pub fn drain_messages(&mut self) -> std::vec::Drain<'_, Message> {
        self.parts.out.messages.drain(..)
    }

    /// Messages to send once this `Ready`'s state is durable (raft-rs's
    /// name, with its meaning).
    pub fn persisted_messages(&self) -> &[Message] {
        &self.parts.out.persisted_messages
    }

    /// Takes the messages that wait for the persist, leaving none.
    pub fn take_persisted_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.parts.out.persisted_messages)
    }

    /// Moves the messages out one by one, leaving their buffer here for
    /// [`RawNode::advance`] to reuse: the allocation-free alternative to
    /// [`Ready::take_persisted_messages`]. The same goes for reading
    /// [`Ready::committed_entries`] in place rather than taking them.
    pub fn drain_persisted_messages(&mut self) -> std::vec::Drain<'_, Message> {
        self.parts.out.persisted_messages.drain(..)
    }

    /// Decided entries to apply, in slot order, contiguous, each exactly
    /// once. There is no `drain_committed_entries`: a host that reads them
    /// here, in place, hands the vector back with the `Ready` in
    /// [`RawNode::advance`], which is all a drain would do.
    pub fn committed_entries(&self) -> &[Entry] {
        &self.parts.committed_entries
    }

    /// Takes the decided entries, leaving none.
    pub fn take_committed_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.parts.committed_entries)
    }

    /// Reads confirmed by the leader: serve each once the application has
    /// applied up to its `index`.
    pub fn read_states(&self) -> &[ReadState] {
        &self.parts.out.read_states
    }

    /// Takes the confirmed reads, leaving none.
    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.parts.out.read_states)
    }
}

/// `Ready` contents kept for reuse at most: a host that pipelines more
/// `Ready`s allocates for the others.
const SPARE_PARTS: usize = 4;

/// Bookkeeping for a `Ready` handed out and not yet advanced.
#[derive(Clone, Debug, Hash)]
struct Outstanding {
    number: u64,
    /// Our own replies to ourselves: they may only count once the `Ready`
    /// is durable, so they are delivered in `advance`.
    to_self: Vec<Message>,
    /// The last decided slot this `Ready` handed out.
    handed: u64,
    /// The lowest slot among this `Ready`'s entries: not durable until it
    /// is advanced.
    min_written: u64,
}

/// A Multi-Paxos node, driven by its host. Pure and single-threaded: no
/// clocks, threads, I/O or global randomness inside; the same inputs give the
/// same outputs.
#[derive(Debug)]
pub struct RawNode<S: Storage> {
    node: Node<S>,
    next_ready: u64,
    /// Last decided slot handed out in a `Ready`.
    handed: u64,
    /// Last decided slot the host confirmed applied (by `advance`).
    applied: u64,
    /// Readys handed out and not yet advanced, oldest first. Mostly one
    /// at most (a host that advances before taking the next): a plain
    /// vector, cheaper than a ring for that, and short when a host
    /// pipelines.
    outstanding: Vec<Outstanding>,
    /// Set when decided entries after `handed` could not be read (a storage
    /// error): `has_ready` stops reporting them until the node is driven
    /// again, so a host's `while has_ready()` loop cannot spin.
    apply_stalled: bool,
    /// Vectors handed back by `advance`, for the next `Ready`s' replies to
    /// ourselves.
    buffers: Buffers,
    /// `Ready` contents handed back by `advance`, emptied, for the next
    /// `Ready`s: no allocation per `Ready` in the steady state. Boxes, not
    /// the contents themselves: each one goes out in a `Ready` as it is.
    #[allow(clippy::vec_box)]
    spare_parts: Vec<Box<ReadyParts>>,
    /// What `has_ready` answers, as `advance` left the node: kept until
    /// any other call changes it (each clears it first). A host that
    /// checks every node in turn then finds the ones it did not drive
    /// since without looking through their output again.
    ready_after_advance: Option<bool>,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node, restoring its state from `storage`. After a crash,
    /// pass the same storage (holding exactly what was persisted) and set
    /// `config.applied` to what the application had applied.
    pub fn new(config: &Config, storage: S, logger: &Logger) -> Result<Self> {
        let logger = logger.new(slog::o!("node" => config.id));
        let node = Node::new(config, storage, logger)?;
        Ok(RawNode {
            apply_stalled: false,
            buffers: Buffers::default(),
            spare_parts: Vec::new(),
            node,
            next_ready: 1,
            handed: config.applied,
            applied: config.applied,
            outstanding: Vec::new(),
            ready_after_advance: None,
        })
    }

    /// Advances logical time by one tick (heartbeats, election timeouts).
    pub fn tick(&mut self) {
        self.ready_after_advance = None;
        self.apply_stalled = false;
        self.node.seal_batch();
        self.node.tick();
        self.node.assert_invariants();
    }

    /// Handles a message from a peer. Bad messages return a typed error and
    /// change nothing.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        self.ready_after_advance = None;
        self.apply_stalled = false;
        self.node.seal_batch();
        let r = self.node.step(msg);
        self.node.assert_invariants();
        r
    }

    /// Proposes a command. At the leader it returns the command's
    /// [`Position`](paxos_proto::Position): commands proposed between two
    /// `Ready`s share one slot, up to `Config::max_batch_commands` and
    /// `Config::max_batch_bytes` (instance batching), and the decided
    /// entry hands each out again with its position
    /// ([`paxos_proto::Entry::commands`]). Any other call on the node
    /// closes the slot being filled; the next proposal takes a new one.
    /// Elsewhere it fails with [`crate::Error::NotLeader`] naming the known
    /// leader (or is forwarded, with `Config::forward_proposals`).
    ///
    /// A payload of up to 256 bytes is copied into a chunk shared with the
    /// leader's other small proposals, so the caller's buffer (perhaps a
    /// slice pinning a whole network read) is released at once and no
    /// per-command reference count is allocated; a larger one is kept as
    /// given, without a copy.
    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<Proposed> {
        self.propose_payload(Payload::Owned(data.into()))
    }

    /// [`RawNode::propose`] for a command the caller keeps: the leader
    /// copies it straight into the slot being filled (or, up to 256 bytes
    /// alone in its slot, into the shared chunk), so a host proposing from
    /// its own read buffer needs no allocation of its own per command. A
    /// forwarded proposal is copied into its message.
    pub fn propose_slice(&mut self, data: &[u8]) -> Result<Proposed> {
        self.propose_payload(Payload::Borrowed(data))
    }

    fn propose_payload(&mut self, data: Payload<'_>) -> Result<Proposed> {
        self.ready_after_advance = None;
        let r = self.node.propose_entry(EntryKind::Normal, data);
        self.node.assert_invariants();
        r
    }

    /// Asks for a linearizable read. At the leader, a [`ReadState`] with
    /// this `ctx` appears in a later `Ready` once leadership is confirmed by
    /// a quorum; serve the read when the application has applied up to its
    /// `index`. Elsewhere it fails with [`crate::Error::NotLeader`]. A read
    /// in flight when the leader loses leadership is dropped: retry it.
    pub fn read_index(&mut self, ctx: impl Into<Bytes>) -> Result<()> {
        self.ready_after_advance = None;
        self.node.seal_batch();
        let r = self.node.read_index(ctx.into());
        self.node.assert_invariants();
        r
    }

    /// Hands leadership to voter `to`: the leader brings it up to date, then
    /// tells it to campaign at once (exempt from stickiness). New proposals
    /// fail with `ProposalDropped(TransferInProgress)` meanwhile; if the
    /// transfer does not complete within `election_ticks`, the leader
    /// resumes. Fails with `NotLeader` elsewhere and `NotVoter` for a learner
    /// or stranger. A transfer to the leader itself cancels one in progress.
    pub fn transfer_leader(&mut self, to: u64) -> Result<()> {
        self.ready_after_advance = None;
        self.node.seal_batch();
        let r = self.node.transfer_leader(to);
        self.node.assert_invariants();
        r
    }

    /// Proposes a membership change at the leader; returns its slot. Add a
    /// new node as a learner, let it catch up, then promote it; remove
    /// voters and learners one at a time. The change takes effect once
    /// decided (a later `Ready` carries the new [`Ready::conf_state`]); until
    /// then every proposal fails with `ProposalDropped(ConfChangePending)`.
    /// A leader removed from the voters steps down once its removal is
    /// decided. Promoting a learner more than `max_inflight_slots` behind
    /// fails with [`crate::ConfChangeError::LearnerBehind`].
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<u64> {
        self.ready_after_advance = None;
        self.node.seal_batch();
        let r = self.node.propose_conf_change(cc);
        self.node.assert_invariants();
        r
    }

    /// Starts an election now, without waiting for the timeout. Fails with
    /// `NotVoter` at a learner. With `Config::read_lease_ticks` set, fails
    /// with [`crate::Error::LeaseHeld`] while this node may count toward a
    /// leader's lease (it heard from a leader, or restarted, within
    /// `election_ticks`): use [`RawNode::transfer_leader`] at the leader
    /// instead, or retry once the leader has been silent that long.
    pub fn campaign(&mut self) -> Result<()> {
        self.ready_after_advance = None;
        self.node.seal_batch();
        let r = self.node.campaign(None);
        self.node.assert_invariants();
        r
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        match self.ready_after_advance {
            Some(known) => known,
            None => self.ready_pending(),
        }
    }

    fn ready_pending(&self) -> bool {
        self.node.has_output() || (self.node.committed() > self.handed && !self.apply_stalled)
    }

    /// Collects what to persist, send and apply since the last `Ready`.
    pub fn ready(&mut self) -> Ready {
        self.ready_after_advance = None;
        self.node.seal_batch();
        let number = self.next_ready;
        self.next_ready += 1;
        // Empty, as `advance` leaves the ones it keeps.
        let mut parts = self.spare_parts.pop().unwrap_or_default();
        let kept = self.node.take_output(&mut self.buffers, &mut parts.out);
        if let Some(m) = parts
            .out
            .snapshot
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
        {
            // The application's state jumps to the snapshot's slot; decided
            // entries continue after it.
            self.handed = self.handed.max(m.slot);
        }
        // Slots below every write not yet durable (this Ready's included)
        // are durable: their decided entries can be moved out of memory.
        let durable_floor = self
            .outstanding
            .iter()
            .map(|o| o.min_written)
            .fold(kept.min_written, u64::min);
        let stalled = self.node.take_committed(
            &mut self.handed,
            durable_floor,
            &mut parts.committed_entries,
        );
        if let Some(stalled) = stalled {
            self.apply_stalled = stalled;
        }
        self.outstanding.push(Outstanding {
            number,
            to_self: kept.to_self,
            handed: self.handed,
            min_written: kept.min_written,
        });
        Ready { number, parts }
    }

    /// Tells the node the host persisted, sent and applied `rd`.
    pub fn advance(&mut self, rd: Ready) {
        self.ready_after_advance = None;
        let done = if self.outstanding.len() > 1 {
            Some(self.outstanding.remove(0))
        } else {
            self.outstanding.pop()
        };
        let Some(done) = done else {
            debug_assert!(false, "advance without an outstanding Ready");
            return;
        };
        debug_assert_eq!(done.number, rd.number, "Readys must be advanced in order");
        self.node.seal_batch();
        self.applied = done.handed;
        self.node.release(self.applied);
        let mut to_self = done.to_self;
        self.node.deliver_to_self(&mut to_self);
        self.buffers.give_messages(to_self);
        if self.spare_parts.len() < SPARE_PARTS {
            let mut parts = rd.parts;
            parts.clear();
            self.spare_parts.push(parts);
        }
        self.node.assert_invariants();
        self.ready_after_advance = Some(self.ready_pending());
    }

    /// The committed watermark: every slot up to it is decided here. The
    /// same as [`Status::committed`], without building a `Status`: cheap
    /// enough for a host to ask on every turn.
    pub fn committed(&self) -> u64 {
        self.node.committed()
    }

    /// A snapshot of the node's state, for monitoring and tests.
    pub fn status(&self) -> Status {
        self.node.status(self.applied)
    }

    /// The storage this node reads from.
    pub fn storage(&self) -> &S {
        self.node.storage()
    }

    /// A copy of this node that reads from `storage`, which must hold
    /// exactly what this node's storage holds (a deep copy of it): the two
    /// then behave alike on every input, independently. For model checkers
    /// that branch a run instead of replaying it from the start. A `Ready`
    /// taken and not yet advanced stays outstanding in both: the copy's
    /// host advances its [`Ready::fork`]. The copy hands out no buffers
    /// handed back to this one.
    pub fn fork(&self, storage: S) -> RawNode<S> {
        RawNode {
            node: self.node.fork(storage),
            next_ready: self.next_ready,
            handed: self.handed,
            applied: self.applied,
            outstanding: self.outstanding.clone(),
            apply_stalled: self.apply_stalled,
            buffers: Buffers::default(),
            spare_parts: Vec::new(),
            // Recomputed on the first `has_ready`: the same answer.
            ready_after_advance: None,
        }
    }

    /// A view for model checkers that merge equal states: its `Debug`
    /// shows everything that decides this node's futures and nothing that
    /// does not. Left out: the configuration (fixed per node; its
    /// `applied` is read only at start), the storage (the host holds it and
    /// can show it), the logger, the count of `Ready`s handed out, the
    /// pools of vectors and `Ready` contents handed back, the cached answer
    /// of `has_ready`, and the free room of the buffer small proposals are
    /// copied into. Two nodes of one cluster whose views
    /// print alike behave alike on every input. Its `Hash` covers the same
    /// fields, without formatting them.
    pub fn state(&self) -> NodeState<'_, S> {
        NodeState(self)
    }
}

/// See [`RawNode::state`].
pub struct NodeState<'a, S: Storage>(&'a RawNode<S>);

impl<'a, S: Storage> NodeState<'a, S> {
    /// The fields shown, each named in the pattern: a field added to
    /// `RawNode` fails to compile here until it is shown or argued away.
    fn view(&self) -> RawNodeView<'a> {
        let RawNode {
            node,
            // Numbers the Readys; nothing depends on it but the check that
            // they are advanced in order, which `outstanding` carries.
            next_ready: _,
            handed,
            applied,
            outstanding,
            apply_stalled,
            buffers: _,
            spare_parts: _,
            // A cache of what `has_ready` computes from the rest.
            ready_after_advance: _,
        } = self.0;
        RawNodeView {
            node: node.state_view(),
            handed: *handed,
            applied: *applied,
            outstanding,
            apply_stalled: *apply_stalled,
        }
    }
}

/// What [`NodeState`] shows; its `Debug` and `Hash` cover the same fields
/// by construction.
#[derive(Debug, Hash)]
struct RawNodeView<'a> {
    node: crate::node::StateView<'a>,
    handed: u64,
    applied: u64,
    outstanding: &'a [Outstanding],
    apply_stalled: bool,
}

impl<S: Storage> std::fmt::Debug for NodeState<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl<S: Storage> std::hash::Hash for NodeState<'_, S> {
    /// What `Debug` shows, hashed field by field: model checkers merge
    /// states by it without formatting them.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.view().hash(h);
    }
}
