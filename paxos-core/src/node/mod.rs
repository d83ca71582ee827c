//! The node: its state, message dispatch, and the two operations every
//! handler builds on, [`Node::promise`] and [`Node::decide`].
//!
//! `Node`'s fields are private to this module tree. Each child module owns
//! one concern and adds the handlers for it (`pub(super)`: called by the
//! dispatcher or a sibling); the host-facing entry points are `pub(crate)`
//! for [`crate::RawNode`], which reads the node's output only through
//! [`output`].
//!
//! | module | concern | rules |
//! | --- | --- | --- |
//! | this one | state, dispatch, `promise`, `decide` | A1, F1, V1 |
//! | `acceptor` | Prepare, Accept, Heartbeat, Decide at any node | A1, A2, F1 |
//! | `election` | the timer, pre-vote, campaigns, stickiness | E1, E2, E4, E5 |
//! | `phase1` | a candidate's phase 1, adoption, winning | P1–P6 |
//! | `leader` | proposals, phase 2, commit, heartbeats | L1–L4 |
//! | `read_index`, `lease` | linearizable reads, leases | R1, R2 |
//! | `snapshot` | sending and installing snapshots | S1–S3 |
//! | `transfer` | leader transfer | E3 |
//! | `conf_change` | membership changes | M1–M3 |
//! | `outbox` | the one router for outgoing messages | A3, D2 |
//! | `output` | what `RawNode` takes out of the node | D1–D3, F2 |
//! | `invariants` | what holds between two calls of the host | |

mod acceptor;
mod conf_change;
mod election;
mod invariants;
mod leader;
mod lease;
mod outbox;
mod output;
mod phase1;
mod read_index;
mod snapshot;
mod status;
#[cfg(test)]
mod testutil;
mod transfer;

pub use leader::Proposed;
pub(crate) use output::Output;
pub use read_index::ReadState;
pub use status::{PeerProgress, Status};

use crate::config::Config;
use crate::errors::{ConfigError, Error, Result};
use crate::kinds;
use crate::log::Log;
use crate::membership::Membership;
use crate::rng::SplitMix64;
use crate::storage::Storage;
use election::{PreVote, Timer};
use leader::LeaderState;
use outbox::Outbox;
use paxos_proto::{Ballot, Body, HardState, Message};
use phase1::Phase1;
use slog::Logger;

/// The role a node plays right now.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StateRole {
    /// Accepts what the leader sends.
    Follower,
    /// Asking voters whether they would promise (pre-vote); changes nothing.
    PreCandidate,
    /// Running phase 1 in its own ballot.
    Candidate,
    /// Won phase 1; runs phase 2 for every slot.
    Leader,
}

#[derive(Clone, Debug, Hash)]
enum Role {
    Follower,
    PreCandidate(PreVote),
    Candidate(Phase1),
    Leader(LeaderState),
}

#[derive(Debug)]
pub(crate) struct Node<S: Storage> {
    id: u64,
    cfg: Config,
    logger: Logger,
    storage: S,
    members: Membership,
    /// Durable: the highest ballot promised. Never decreases.
    promised: Ballot,
    log: Log,
    /// Every slot <= accept_prefix is decided here or accepted in `promised`.
    accept_prefix: u64,
    role: Role,
    /// The leader this node last heard from in its promised ballot.
    leader: Option<u64>,
    /// The candidate this node last promised, until it hears from a leader:
    /// while that candidate's phase 1 keeps asking (each of its Prepares
    /// restarts the election timer) it counts as live for stickiness, so a
    /// phase 1 of many chunks is not cut short by another campaign.
    promised_to: Option<u64>,
    /// The highest round seen anywhere: the next campaign goes above it.
    max_round: u64,
    /// The election, heartbeat and check-quorum clocks, with the seeded
    /// generator behind the election timeouts.
    timer: Timer,
    /// Outgoing messages, filed by the one router (rules A3, D2).
    outbox: Outbox,
    /// Reads confirmed since the last `Ready`.
    read_states: Vec<crate::ReadState>,
    /// The hard state changed since the last `Ready`.
    hs_dirty: bool,
    /// The membership changed since the last `Ready`.
    conf_dirty: bool,
    /// Lease reads on and just started: whichever leader this node heard
    /// from before a crash may still hold a lease counting on it, so it
    /// promises no one until `election_ticks` pass.
    restart_quiet: bool,
    /// A voter refused our phase 1 because it compacted slots we have not
    /// decided: until we decide past `behind.0` (from a leader or its
    /// snapshot), or `behind.1` more ticks pass, our election timeout does
    /// not start a campaign, so the nodes that can lead are not out-bid.
    behind: Option<(u64, u32)>,
    /// A snapshot being received from the leader.
    snap_recv: Option<snapshot::SnapshotRecv>,
    /// A snapshot installed since the last `Ready`, for the host.
    pending_snapshot: Option<paxos_proto::Snapshot>,
    /// Where a leader copies small proposals (see `arena`).
    arena: crate::arena::Arena,
    /// The promise restored at start (only a planted bug reads it).
    restored_promised: Ballot,
}

/// A node's state as [`Node::state_view`] shows it: what decides its
/// futures, borrowed field by field. Its `Debug` and its `Hash` cover the
/// same fields by construction, so a model checker that merges states by
/// the hash merges exactly the states that print alike.
#[derive(Debug, Hash)]
pub(crate) struct StateView<'a> {
    id: u64,
    members: &'a Membership,
    promised: &'a Ballot,
    log: &'a Log,
    accept_prefix: u64,
    role: &'a Role,
    leader: Option<u64>,
    promised_to: Option<u64>,
    max_round: u64,
    timer: &'a Timer,
    outbox: &'a Outbox,
    read_states: &'a [crate::ReadState],
    hs_dirty: bool,
    conf_dirty: bool,
    restart_quiet: bool,
    behind: Option<(u64, u32)>,
    snap_recv: &'a Option<snapshot::SnapshotRecv>,
    pending_snapshot: &'a Option<paxos_proto::Snapshot>,
    restored_promised: &'a Ballot,
}

impl<S: Storage> Node<S> {
    /// A copy of this node reading from `storage` (see
    /// [`crate::RawNode::fork`]).
    pub(crate) fn fork(&self, storage: S) -> Node<S> {
        Node {
            id: self.id,
            cfg: self.cfg.clone(),
            logger: self.logger.clone(),
            storage,
            members: self.members.clone(),
            promised: self.promised,
            log: self.log.clone(),
            accept_prefix: self.accept_prefix,
            role: self.role.clone(),
            leader: self.leader,
            promised_to: self.promised_to,
            max_round: self.max_round,
            timer: self.timer.clone(),
            outbox: self.outbox.clone(),
            read_states: self.read_states.clone(),
            hs_dirty: self.hs_dirty,
            conf_dirty: self.conf_dirty,
            restart_quiet: self.restart_quiet,
            behind: self.behind,
            snap_recv: self.snap_recv.clone(),
            pending_snapshot: self.pending_snapshot.clone(),
            // Where small payloads are copied: entries already made keep
            // their own handles on the old chunk.
            arena: crate::arena::Arena::default(),
            restored_promised: self.restored_promised,
        }
    }

    /// The state that decides this node's futures (see
    /// [`crate::RawNode::state`]). Every field is named in the pattern, so
    /// a field added to `Node` fails to compile here until it is either
    /// shown or argued away.
    pub(crate) fn state_view(&self) -> StateView<'_> {
        let Node {
            id,
            // Fixed per node for the life of a cluster but for `applied`,
            // which only `new` reads.
            cfg: _,
            logger: _,
            // The host's: it shows its durable state itself.
            storage: _,
            members,
            promised,
            log,
            accept_prefix,
            role,
            leader,
            promised_to,
            max_round,
            timer,
            outbox,
            read_states,
            hs_dirty,
            conf_dirty,
            restart_quiet,
            behind,
            snap_recv,
            pending_snapshot,
            // Where small payloads are copied: its free room changes no
            // behaviour.
            arena: _,
            restored_promised,
        } = self;
        StateView {
            id: *id,
            members,
            promised,
            log,
            accept_prefix: *accept_prefix,
            role,
            leader: *leader,
            promised_to: *promised_to,
            max_round: *max_round,
            timer,
            outbox,
            read_states,
            hs_dirty: *hs_dirty,
            conf_dirty: *conf_dirty,
            restart_quiet: *restart_quiet,
            behind: *behind,
            snap_recv,
            pending_snapshot,
            restored_promised,
        }
    }
}

impl<S: Storage> Node<S> {
    pub(crate) fn new(cfg: &Config, storage: S, logger: Logger) -> Result<Self> {
        let init = storage.initial_state()?;
        // A restart takes its membership, quorum sizes included, from
        // storage: the configured sizes describe a new cluster's voters.
        if init.conf_state.voters.is_empty() {
            cfg.validate()?;
        } else {
            cfg.validate_except_quorums()?;
        }
        let members = if init.conf_state.voters.is_empty() {
            Membership::from_conf_state(&cfg.initial_conf_state())?
        } else {
            Membership::from_conf_state(&init.conf_state)?
        };
        // Rule D3: the log's committed watermark covers the compacted prefix
        // even when the hard state after a persisted snapshot was lost.
        let log = Log::restore(&storage, init.hard_state.committed, cfg.applied)?;
        let (committed, compacted) = (log.committed, log.snapshot_floor());
        if cfg.applied > committed {
            return Err(ConfigError::AppliedBeyondCommitted {
                applied: cfg.applied,
                committed,
            }
            .into());
        }
        if cfg.applied < compacted {
            return Err(ConfigError::AppliedBelowCompacted {
                applied: cfg.applied,
                compacted,
            }
            .into());
        }
        // Entries persisted without the hard state after them were accepted
        // under a promise at least as high as their ballot.
        let promised = init.hard_state.promised().max(log.highest_ballot());
        let torn = promised != init.hard_state.promised() || committed != init.hard_state.committed;
        let mut node = Node {
            id: cfg.id,
            cfg: cfg.clone(),
            logger,
            storage,
            members,
            promised,
            log,
            accept_prefix: committed,
            role: Role::Follower,
            leader: None,
            promised_to: None,
            max_round: promised.round,
            timer: Timer::new(SplitMix64::for_node(cfg.seed, cfg.id)),
            outbox: Outbox::default(),
            read_states: Vec::new(),
            hs_dirty: torn,
            conf_dirty: false,
            // A node that never promised anything acknowledged no lease.
            restart_quiet: cfg.read_lease_ticks > 0 && !promised.is_zero(),
            snap_recv: None,
            behind: None,
            arena: crate::arena::Arena::default(),
            pending_snapshot: None,
            restored_promised: promised,
        };
        node.extend_accept_prefix();
        node.reset_election_timer();
        slog::info!(node.logger, "node started";
            "id" => node.id, "promised" => %promised, "committed" => committed,
            "applied" => cfg.applied, "last" => node.log.last());
        Ok(node)
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            promised: Some(self.promised),
            committed: self.log.committed,
        }
    }

    pub(crate) fn state_role(&self) -> StateRole {
        match self.role {
            Role::Follower => StateRole::Follower,
            Role::PreCandidate(_) => StateRole::PreCandidate,
            Role::Candidate(_) => StateRole::Candidate,
            Role::Leader(_) => StateRole::Leader,
        }
    }

    /// Queues a message through the one router ([`Outbox::send`]).
    fn send(&mut self, to: u64, body: Body) {
        self.outbox.send(self.id, to, body);
    }

    /// Sends `body` to every voter but this node.
    pub(crate) fn send_to_other_voters(&mut self, body: Body) {
        for i in 0..self.members.voters.len() {
            let v = self.members.voters[i];
            if v != self.id {
                self.send(v, body.clone());
            }
        }
    }

    pub(crate) fn observe_round(&mut self, round: u64) {
        self.max_round = self.max_round.max(round);
    }

    /// Steps a message from the network: checks its envelope, then handles it.
    pub(crate) fn step(&mut self, m: Message) -> Result<()> {
        if m.to != self.id {
            return Err(Error::WrongRecipient {
                to: m.to,
                me: self.id,
            });
        }
        if m.from == self.id {
            return Err(malformed(
                m.from,
                "a node's messages to itself never cross the network",
            ));
        }
        // Checked in place: the body is moved once, into `dispatch`.
        let Some(body) = &m.body else {
            return Err(malformed(m.from, "empty body"));
        };
        if !self.knows(m.from, body) {
            return Err(Error::UnknownPeer(m.from));
        }
        let mut limit = crate::validate::round_limit(self.max_round.max(self.promised.round));
        if planted!(self.cfg, UncheckedRound) {
            limit = u64::MAX;
        }
        crate::validate::check(m.from, body, limit)?;
        match m.body {
            Some(body) => self.dispatch(m.from, body),
            None => Err(malformed(m.from, "empty body")),
        }
    }

    /// Whether to hear `body` from `from`. A leader's or candidate's
    /// requests are heard from any node: a lagging node learns of members
    /// added after its decided prefix only from them, and ballots (not
    /// membership) decide whether they are obeyed. Replies count only from
    /// the nodes asked; forwarded proposals only from members.
    fn knows(&self, from: u64, body: &Body) -> bool {
        if self.members.contains(from) {
            return true;
        }
        if kinds::is_leadership_request(body) {
            return true;
        }
        match &self.role {
            Role::Candidate(ph) => ph.asked(from),
            Role::Leader(ls) => ls.progress.iter().any(|p| p.id == from),
            Role::Follower | Role::PreCandidate(_) => false,
        }
    }

    /// Handles a message whose envelope is known good (from a peer, or one of
    /// this node's own replies to itself, delivered once persisted).
    pub(crate) fn dispatch(&mut self, from: u64, body: Body) -> Result<()> {
        match body {
            Body::PrePrepare(p) => {
                let b = owned_ballot(from, p.ballot)?;
                self.on_pre_prepare(from, b, p.transfer, p.committed);
                Ok(())
            }
            Body::PrePrepareReply(r) => {
                let b = some_ballot(from, r.ballot)?;
                self.on_pre_prepare_reply(from, b, r.granted, r.promised.unwrap_or(Ballot::ZERO));
                Ok(())
            }
            Body::Prepare(p) => {
                let b = owned_ballot(from, p.ballot)?;
                self.on_prepare(from, b, p.from_slot, p.transfer)
            }
            Body::Promise(p) => {
                some_ballot(from, p.ballot)?;
                self.on_promise(from, p)
            }
            Body::Accept(a) => {
                // Checked at the edge (`validate`): a contiguous run of slots.
                let b = owned_ballot(from, a.ballot)?;
                self.on_accept(from, b, a.entries, a.committed);
                Ok(())
            }
            Body::Accepted(a) => {
                let b = some_ballot(from, a.ballot)?;
                self.on_accepted(from, b, a.matched, a.last_slot);
                Ok(())
            }
            Body::Reject(r) => {
                let b = some_ballot(from, r.ballot)?;
                let promised = some_ballot(from, r.promised)?;
                self.on_reject(from, b, promised, r.compacted);
                Ok(())
            }
            Body::Heartbeat(h) => {
                let b = owned_ballot(from, h.ballot)?;
                self.on_heartbeat(from, b, h.committed, h.seq);
                Ok(())
            }
            Body::HeartbeatReply(h) => {
                let b = some_ballot(from, h.ballot)?;
                self.on_heartbeat_reply(from, b, h.matched, h.seq);
                Ok(())
            }
            Body::Propose(p) => self.on_propose(from, p.entries),
            Body::TimeoutNow(t) => {
                let b = owned_ballot(from, t.ballot)?;
                self.on_timeout_now(from, b)
            }
            Body::InstallSnapshot(s) => {
                let b = owned_ballot(from, s.ballot)?;
                self.on_install_snapshot(from, b, *s)
            }
            Body::SnapshotReply(r) => {
                let b = some_ballot(from, r.ballot)?;
                self.on_snapshot_reply(from, b, &r);
                Ok(())
            }
            Body::Decide(d) => {
                let b = owned_ballot(from, d.ballot)?;
                self.on_decide(b, d.committed);
                Ok(())
            }
        }
    }

    /// Raises the promise. The new value is durable before any reply leaves,
    /// because every message waits for its `Ready` to be persisted.
    pub(crate) fn promise(&mut self, b: Ballot) {
        debug_assert!(b >= self.promised, "promise would decrease");
        if b > self.promised {
            self.promised = b;
            self.hs_dirty = true;
            // Nothing is accepted in the new ballot yet.
            if !planted!(self.cfg, CountAcrossBallots) {
                self.accept_prefix = self.log.committed;
            }
            self.observe_round(b.round);
        }
    }

    /// Marks every slot <= `slot` decided, adopting each membership change
    /// among the newly decided slots. The caller knows them chosen: a
    /// quorum accepted them in one ballot (rule L1), or the leader said so
    /// of slots this node accepted in its ballot (rule F1), or phase 1
    /// learned so (rule P3).
    ///
    /// Inlined: the followers call it for every Accept and Decide, mostly
    /// with nothing new to decide.
    #[inline]
    fn decide(&mut self, slot: u64) {
        if slot <= self.log.committed {
            return;
        }
        // Only held slots are decided: a hole would be applied as nothing
        // (rules F1, F2). Checker: `applied_before_chosen`.
        debug_assert!(
            !self.checks_on() || slot <= self.log.last().max(self.log.snapshot_floor()),
            "deciding slot {slot} past the log ({}) and the snapshot ({})",
            self.log.last(),
            self.log.snapshot_floor()
        );
        self.hs_dirty = true;
        if !self.log.has_conf_slots() {
            self.log.committed = slot; // the hot path: no change in flight
            return;
        }
        self.decide_changes_up_to(slot);
    }

    /// `decide` when undecided membership changes are held.
    fn decide_changes_up_to(&mut self, slot: u64) {
        for e in self.log.decide_up_to(slot) {
            self.adopt_conf_entry(&e);
        }
    }
}

pub(crate) fn malformed(from: u64, reason: &'static str) -> Error {
    Error::Malformed { from, reason }
}

/// A ballot that must be present and non-zero.
fn some_ballot(from: u64, b: Option<Ballot>) -> Result<Ballot> {
    match b {
        Some(b) if b.round > 0 && b.node > 0 => Ok(b),
        _ => Err(malformed(from, "missing or zero ballot")),
    }
}

/// A ballot the sender proposes in: it must be the sender's own (every node
/// proposes only in ballots carrying its id).
fn owned_ballot(from: u64, b: Option<Ballot>) -> Result<Ballot> {
    let b = some_ballot(from, b)?;
    if b.node != from {
        return Err(malformed(from, "ballot not owned by its sender"));
    }
    Ok(b)
}
