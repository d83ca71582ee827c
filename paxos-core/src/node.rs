//! The node's state and message dispatch. The protocol's handlers live in
//! `acceptor`, `election`, `phase1` and `leader`, one concern each.

use crate::config::Config;
use crate::election::{PreVote, Timer};
use crate::errors::{ConfigError, Error, Result};
use crate::kinds;
use crate::leader::LeaderState;
use crate::log::Log;
use crate::membership::Membership;
use crate::phase1::Phase1;
use crate::rng::SplitMix64;
use crate::storage::Storage;
use paxos_proto::{Ballot, Body, HardState, Message};
use slog::Logger;

/// The role a node plays right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Debug)]
pub(crate) enum Role {
    Follower,
    PreCandidate(PreVote),
    Candidate(Phase1),
    Leader(LeaderState),
}

#[derive(Debug)]
pub(crate) struct Node<S: Storage> {
    pub(crate) id: u64,
    pub(crate) cfg: Config,
    pub(crate) logger: Logger,
    pub(crate) storage: S,
    pub(crate) members: Membership,
    /// Durable: the highest ballot promised. Never decreases.
    pub(crate) promised: Ballot,
    pub(crate) log: Log,
    /// Every slot <= accept_prefix is decided here or accepted in `promised`.
    pub(crate) accept_prefix: u64,
    pub(crate) role: Role,
    /// The leader this node last heard from in its promised ballot.
    pub(crate) leader: Option<u64>,
    /// The candidate this node last promised, until it hears from a leader:
    /// while that candidate's phase 1 keeps asking (each of its Prepares
    /// restarts the election timer) it counts as live for stickiness, so a
    /// phase 1 of many chunks is not cut short by another campaign.
    pub(crate) promised_to: Option<u64>,
    /// The highest round seen anywhere: the next campaign goes above it.
    pub(crate) max_round: u64,
    pub(crate) timer: Timer,
    pub(crate) rng: SplitMix64,
    /// Outgoing messages. Every one is sent only after the state of the
    /// `Ready` carrying it is durable (PROTOCOL.md rule A3).
    pub(crate) msgs: Vec<Message>,
    /// Outgoing messages that depend on nothing this node has yet to
    /// persist (see `Node::send`): the host may send them at once.
    pub(crate) immediate: Vec<Message>,
    /// Replies to ourselves (our own promise and acceptance): they count
    /// only once durable, so `advance` delivers them.
    pub(crate) self_msgs: Vec<Message>,
    /// Reads confirmed since the last `Ready`.
    pub(crate) read_states: Vec<crate::ReadState>,
    /// The hard state changed since the last `Ready`.
    pub(crate) hs_dirty: bool,
    /// The membership changed since the last `Ready`.
    pub(crate) conf_dirty: bool,
    /// Lease reads on and just started: whichever leader this node heard
    /// from before a crash may still hold a lease counting on it, so it
    /// promises no one until `election_ticks` pass.
    pub(crate) restart_quiet: bool,
    /// A voter refused our phase 1 because it compacted slots we have not
    /// decided: until we decide past `behind.0` (from a leader or its
    /// snapshot), or `behind.1` more ticks pass, our election timeout does
    /// not start a campaign, so the nodes that can lead are not out-bid.
    pub(crate) behind: Option<(u64, u32)>,
    /// A snapshot being received from the leader.
    pub(crate) snap_recv: Option<crate::snapshot::SnapshotRecv>,
    /// A snapshot installed since the last `Ready`, for the host.
    pub(crate) pending_snapshot: Option<paxos_proto::Snapshot>,
    /// Where a leader copies small proposals (see `arena`).
    pub(crate) arena: crate::arena::Arena,
}

impl<S: Storage> Node<S> {
    pub(crate) fn new(cfg: &Config, storage: S, logger: Logger) -> Result<Self> {
        cfg.validate()?;
        let init = storage.initial_state()?;
        let members = if init.conf_state.voters.is_empty() {
            Membership::new(&cfg.voters, &cfg.learners)?
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
            timer: Timer::default(),
            rng: SplitMix64::for_node(cfg.seed, cfg.id),
            msgs: Vec::new(),
            immediate: Vec::new(),
            self_msgs: Vec::new(),
            read_states: Vec::new(),
            hs_dirty: torn,
            conf_dirty: false,
            // A node that never promised anything acknowledged no lease.
            restart_quiet: cfg.read_lease_ticks > 0 && !promised.is_zero(),
            snap_recv: None,
            behind: None,
            arena: crate::arena::Arena::default(),
            pending_snapshot: None,
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

    /// Checks, in debug builds, what holds between any two calls of the
    /// host (each `RawNode` entry point ends here). Skipped while a planted
    /// bug is active, which may break one on purpose. The simulator's
    /// observer checks the cluster-wide counterparts.
    pub(crate) fn assert_invariants(&self) {
        #[cfg(feature = "planted-bugs")]
        if self.cfg.planted_bug.is_some() {
            return;
        }
        // Every campaign goes above the highest round seen (rule P1).
        debug_assert!(
            self.promised.round <= self.max_round,
            "promised {} above the highest round seen {}",
            self.promised,
            self.max_round
        );
        match &self.role {
            Role::Leader(ls) => {
                // A leader leads in its own ballot, the one it promised
                // (a higher promise ends its leadership), as a voter.
                debug_assert_eq!(ls.ballot.node, self.id, "leading in another's ballot");
                debug_assert_eq!(
                    ls.ballot, self.promised,
                    "leader's ballot is not its promise"
                );
                debug_assert!(self.members.is_voter(self.id), "a leader that is no voter");
            }
            Role::Candidate(ph) => {
                debug_assert_eq!(ph.ballot.node, self.id, "campaigning in another's ballot");
                debug_assert!(ph.ballot <= self.promised, "candidate above its promise");
            }
            Role::Follower | Role::PreCandidate(_) => {}
        }
    }

    /// Queues a message: to this node's own replies, to the messages that
    /// may leave at once, or to those that wait for the persist, as its
    /// kind says (`kinds::may_leave_before_persist`, rule D2). The
    /// leader's disk write then overlaps the round trip to the followers.
    pub(crate) fn send(&mut self, to: u64, body: Body) {
        let immediate = kinds::may_leave_before_persist(&body);
        let m = Message::new(self.id, to, body);
        if to == self.id {
            self.self_msgs.push(m);
        } else if immediate {
            self.immediate.push(m);
        } else {
            self.msgs.push(m);
        }
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
        let Some(body) = m.body else {
            return Err(malformed(m.from, "empty body"));
        };
        if !self.knows(m.from, &body) {
            return Err(Error::UnknownPeer(m.from));
        }
        let mut limit = crate::validate::round_limit(self.max_round.max(self.promised.round));
        if planted!(self.cfg, UncheckedRound) {
            limit = u64::MAX;
        }
        crate::validate::check(m.from, &body, limit)?;
        self.dispatch(m.from, body)
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
            Body::Propose(p) => self.on_forwarded(from, p.entries),
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
