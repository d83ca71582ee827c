//! The driver: one thread owns the `RawNode`, its storage and the state
//! machine, and runs the Ready loop: send what may leave at once, apply the
//! decided entries in memory and answer their clients, persist, send the
//! rest, advance.
//!
//! Everything else talks to it through one bounded channel ([`Inbox`]):
//! peer messages from the transport, client requests from the HTTP API,
//! answers to address lookups. Each turn it drains what arrived, ticks when
//! a tick is due, then handles every `Ready`: it installs the snapshot (if
//! any) and applies the decided entries to the state machine first, and
//! answers the clients waiting on them (they are chosen already: the
//! `Ready` contract allows both, PROTOCOL.md rule D5), then writes **one**
//! synced transaction: the Ready's snapshot, hard state and entries
//! together with what applying changed — the blocks and applied slot
//! always, the KV and session tables at checkpoints (group commit: one
//! sync per Ready, however many commands it carries). Only after that sync
//! do the persisted messages (promises, acceptances) leave.
//!
//! redb's sync blocks, which is why this is a plain thread and not a task:
//! the tokio reactor never waits on the disk.

use crate::api::{hex, StatusJson};
use crate::config::{Directory, Member};
use crate::metrics::Metrics;
use crate::state::{Command, Lookup, MemberAddress, Op, Outcome, SnapshotError, StateMachine};
use crate::storage::{Compaction, ReadyWrite, RedbStorage, StoreError};
use crate::transport::Outbox;
use bytes::Bytes;
use paxos_core::proto::{
    ConfChange, ConfChangeType, EntryKind, Message, Snapshot, SnapshotMetadata,
};
use paxos_core::{ConfChangeError, DropReason, Error as CoreError, Proposed, RawNode, StateRole};
use prost::Message as _;
use slog::Logger;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

mod hold;
mod ready;
mod requests;
mod resolve;

pub(crate) use resolve::Resolver;

/// Inputs queued for the driver before senders are refused.
pub(crate) const INBOX_CAPACITY: usize = 16 * 1024;
/// Inputs handled per turn before the driver ticks and takes a Ready.
const MAX_DRAIN: usize = 4096;
/// Readys handled per turn before the driver looks at its inbox again.
const MAX_READYS: usize = 64;
/// A client waiting longer than this is dropped (its HTTP request has
/// given up by then too).
pub(crate) const CLIENT_WAIT: Duration = Duration::from_secs(5);
/// How often waiting clients are checked for timeouts and hang-ups.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Most clients waiting at once; more are refused as overload.
const MAX_WAITING: usize = 64 * 1024;
/// Every Ready stores its blocks, which carry the commands; the KV and
/// session tables are brought up to date (a checkpoint) once this many
/// keys and sessions changed, or this many commands ran, since the last
/// one. Rewriting a key's page once per checkpoint instead of once per
/// Ready is most of a sync's cost under random keys; the price is a
/// restart redoing at most `CHECKPOINT_COMMANDS` commands from the chain.
const CHECKPOINT_PENDING: usize = 4096;
const CHECKPOINT_COMMANDS: u64 = 32 * 1024;

/// The sending side of the driver's channel.
pub(crate) type Inbox = SyncSender<Input>;

/// One input to the driver.
#[derive(Debug)]
pub(crate) enum Input {
    /// A message a peer sent (already admitted by the transport).
    Peer(Message),
    /// A client request and where to answer it.
    Client(ClientOp, oneshot::Sender<Reply>),
    /// The answer to a lookup of a member's addresses (`None`: failed).
    Resolved(MemberAddress, Option<Member>),
}

/// What a client asks.
#[derive(Clone, Debug)]
pub(crate) enum ClientOp {
    /// A put, delete or compare-and-swap. `session` is the client's
    /// (id, seq); the driver assigns one when absent.
    Write { session: Option<(u64, u64)>, op: Op },
    /// A read: linearizable through `read_index`, or `stale` from local state.
    Read { key: Bytes, stale: bool },
    /// Hand leadership to voter `to` (at the leader).
    Transfer { to: u64 },
    /// A membership change (at the leader).
    Member {
        change: ConfChangeType,
        id: u64,
        /// Where an added node listens: every member learns it from the
        /// change's context.
        address: Option<MemberAddress>,
    },
}

/// The driver's answer.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A write was applied (now durable) with this outcome.
    Applied {
        client: u64,
        seq: u64,
        outcome: Outcome,
    },
    /// A read's value.
    Value(Option<Bytes>),
    /// A leadership transfer started; it completes when `to` leads.
    TransferStarted,
    /// What was proposed may or may not take effect (never retried).
    OutcomeUnknown(String),
    /// Not the leader: ask this one (if known). `session` is set when the
    /// write was proposed here first: retry it with the same (id, seq).
    NotLeader {
        leader: Option<u64>,
        session: Option<(u64, u64)>,
    },
    /// The leader cannot take it now (overload): the client may retry, but
    /// the member does not retry on its behalf.
    Busy(String),
    /// Refused for a moment (a transfer or membership change under way,
    /// a change that was not chosen): a member waiting out an election
    /// asks again.
    Retry(String),
    /// A membership change was applied: the membership after it.
    MemberChanged {
        voters: Vec<u64>,
        learners: Vec<u64>,
    },
    /// The protocol refused a membership change; `reason` names why.
    Refused { reason: &'static str, error: String },
}

/// Why the driver stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// A Ready could not be persisted: continuing could break promises
    /// already made, so the node stops (and recovers from disk on restart).
    #[error("cannot persist: {0}")]
    Persist(#[from] StoreError),
    /// The leader's snapshot does not decode. The protocol already counts
    /// its slots as decided here: stopping beats applying later slots on a
    /// state that lacks the snapshot's.
    #[error("cannot install the snapshot up to slot {slot}: {error}")]
    BadSnapshot {
        /// The snapshot's slot.
        slot: u64,
        /// What is wrong with it.
        error: SnapshotError,
    },
}

/// When to snapshot and how much log to keep behind a snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotPolicy {
    /// Snapshot once this many slots were applied since the last one (0: never).
    pub(crate) every: u64,
    /// Entries kept below a snapshot's slot, so a peer lagging by fewer
    /// catches up from the log rather than with a whole snapshot.
    pub(crate) log_tail: u64,
}

struct Waiter {
    tx: oneshot::Sender<Reply>,
    since: Instant,
}

/// The writes of one turn, proposed back to back at its end.
#[derive(Default)]
struct WriteBatch {
    /// The encoded commands back to back, in one buffer kept from turn to
    /// turn: the library copies each into its slot (`propose_slice`), so
    /// a write costs no allocation of its own here.
    encoded: Vec<u8>,
    /// Where each command ends in `encoded`.
    ends: Vec<usize>,
    /// Each command's session and who waits for it, in the same order.
    waiters: Vec<((u64, u64), Waiter)>,
}

struct ReadWaiter {
    key: Bytes,
    waiter: Waiter,
}

/// The driver's links to the rest of the process: its inbox, the peer
/// senders, what it publishes, its stop flag, and who its peers are.
pub(crate) struct Links {
    /// Requests, peer messages and ticks, in arrival order.
    pub(crate) inbox: Receiver<Input>,
    /// One bounded queue per peer.
    pub(crate) outbox: Outbox,
    /// Counters the metrics endpoint serves.
    pub(crate) metrics: Arc<Metrics>,
    /// What `/status` serves.
    pub(crate) view: Arc<Mutex<StatusJson>>,
    /// Set to stop the driver at its next turn.
    pub(crate) stop: Arc<AtomicBool>,
    /// Who to talk to: updated as membership changes are applied.
    pub(crate) directory: Directory,
    /// The members `--peers` lists: their addresses win over learned ones.
    pub(crate) configured: Vec<Member>,
    /// Looks up member addresses that are names, off the driver thread.
    pub(crate) resolver: Resolver,
}

/// Everything the driver thread owns.
pub(crate) struct Driver {
    node: RawNode<RedbStorage>,
    storage: RedbStorage,
    sm: StateMachine,
    inbox: Receiver<Input>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    view: Arc<Mutex<StatusJson>>,
    logger: Logger,
    tick: Duration,
    /// This process's own client id, for writes that come without one.
    own_client: u64,
    next_seq: u64,
    /// Set to stop the driver at its next turn.
    stop: Arc<AtomicBool>,
    writes: HashMap<(u64, u64), Vec<Waiter>>,
    /// Writes that arrived this turn: one proposal for all.
    write_batch: WriteBatch,
    /// The highest slot a write was proposed at here.
    proposed_to: u64,
    /// Whether `write_batch` is held back for a later turn.
    write_hold: hold::Hold,
    /// Linearizable reads that arrived this turn: one `read_index` for all.
    read_batch: Vec<ReadWaiter>,
    /// Whether `read_batch` is held back for a later turn.
    read_hold: hold::Hold,
    /// Reads waiting for their `ReadState`, by context.
    reads_pending: HashMap<u64, Vec<ReadWaiter>>,
    /// Confirmed reads waiting for the state machine to reach their index.
    reads_ready: Vec<(u64, ReadWaiter)>,
    next_read_ctx: u64,
    role: StateRole,
    last_sweep: Instant,
    policy: SnapshotPolicy,
    /// The slot of the latest snapshot (taken or installed).
    last_snapshot: u64,
    /// The end of the log's compacted prefix, for the status.
    compacted: u64,
    /// Who to talk to: updated as membership changes are applied.
    directory: Directory,
    /// The members `--peers` lists: their addresses win over learned ones.
    configured: Vec<Member>,
    /// Looks up member addresses that are names, off this thread.
    resolver: Resolver,
    /// Membership changes proposed here, by slot, waiting to be applied.
    conf_waiters: Vec<(u64, Waiter)>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("applied", &self.sm.applied())
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for the node restored from `storage` (with its state
    /// machine and the slot of its latest snapshot), linked to the rest of
    /// the process by `links`.
    pub(crate) fn new(
        restored: crate::server::Restored,
        links: Links,
        logger: Logger,
        tick: Duration,
        own_client: u64,
        policy: SnapshotPolicy,
    ) -> Self {
        let crate::server::Restored {
            storage,
            sm,
            last_snapshot,
            node,
        } = restored;
        let Links {
            inbox,
            outbox,
            metrics,
            view,
            stop,
            directory,
            configured,
            resolver,
        } = links;
        let role = node.status().role;
        Driver {
            node,
            storage,
            sm,
            inbox,
            outbox,
            metrics,
            view,
            logger,
            tick,
            own_client,
            next_seq: 1,
            stop,
            writes: HashMap::new(),
            write_batch: WriteBatch::default(),
            proposed_to: 0,
            write_hold: hold::Hold::default(),
            read_hold: hold::Hold::default(),
            read_batch: Vec::new(),
            reads_pending: HashMap::new(),
            reads_ready: Vec::new(),
            next_read_ctx: 1,
            role,
            last_sweep: Instant::now(),
            policy,
            last_snapshot,
            compacted: 0,
            directory,
            configured,
            resolver,
            conf_waiters: Vec::new(),
        }
    }

    /// Runs until `stop` is set, every sender is gone, or storage fails.
    pub(crate) fn run(mut self) -> Result<(), DriverError> {
        self.compacted = self.storage.compacted().unwrap_or(0);
        self.sync_members();
        let mut next_tick = Instant::now() + self.tick;
        self.publish();
        loop {
            // Leftover Readys (more than one turn's worth) mean no waiting.
            let wait = if self.node.has_ready() {
                Duration::ZERO
            } else {
                let until = self.held_due().map_or(next_tick, |h| h.min(next_tick));
                until.saturating_duration_since(Instant::now())
            };
            match self.inbox.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle(input) {
                        return Ok(());
                    }
                    for _ in 0..MAX_DRAIN {
                        match self.inbox.try_recv() {
                            Ok(input) => {
                                if !self.handle(input) {
                                    return Ok(());
                                }
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return Ok(()),
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if self.stop.load(Relaxed) {
                return Ok(());
            }
            self.propose_writes();
            self.start_reads();
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                next_tick += self.tick;
                // After a stall (a slow sync) longer than a tick, start the
                // cadence afresh rather than catch up with a burst of ticks
                // that would look to the protocol like a silent leader.
                // This is why kvnode leaves `read_lease_ticks` off: a leader
                // that drops ticks counts its lease in a clock running behind
                // real time, past the followers' stickiness; lease reads
                // would need the leader to void its lease after a stall.
                if next_tick <= now {
                    next_tick = now + self.tick;
                }
            }
            self.process_readys()?;
            self.after_turn();
        }
    }

    /// Handles one input; `false` to stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Peer(msg) => {
                self.metrics.driver_queue.fetch_sub(1, Relaxed);
                if let Err(e) = self.node.step(msg) {
                    self.metrics.step_errors.fetch_add(1, Relaxed);
                    slog::debug!(self.logger, "message refused"; "error" => %e);
                }
            }
            Input::Client(op, tx) => {
                self.metrics.driver_queue.fetch_sub(1, Relaxed);
                self.client(op, tx);
            }
            Input::Resolved(address, member) => {
                if member.is_none() {
                    slog::warn!(self.logger, "member's addresses do not resolve";
                        "member" => address.id, "peer" => &address.peer, "http" => &address.http);
                }
                self.resolver.resolved(address, member);
                self.sync_members();
            }
        }
        !self.stop.load(Relaxed)
    }

    /// Points the transport, the frame admission and the HTTP redirects at
    /// the current members: the protocol's membership and the applied one
    /// (they differ while a change is decided but not yet applied), with
    /// addresses from `--peers` or else from the changes that added them.
    fn sync_members(&mut self) {
        let st = self.node.status();
        let cs = self.sm.conf_state();
        let ids: std::collections::BTreeSet<u64> = st
            .voters
            .iter()
            .chain(&st.learners)
            .chain(&cs.voters)
            .chain(&cs.learners)
            .copied()
            .chain([st.id])
            .collect();
        let mut known = std::collections::BTreeMap::new();
        for id in ids {
            let member = match self.configured.iter().find(|m| m.id == id) {
                Some(m) => Some(m.clone()),
                None => match self.sm.addresses().find(|a| a.id == id) {
                    Some(a) => self.resolver.member(&a.clone()),
                    None => None,
                },
            };
            match member {
                Some(m) => {
                    known.insert(id, m);
                }
                None => slog::warn!(self.logger, "no address known for member"; "member" => id),
            }
        }
        let members: Vec<Member> = known.values().cloned().collect();
        slog::info!(self.logger, "members"; "voters" => ?st.voters, "learners" => ?st.learners,
            "known" => ?known.keys().collect::<Vec<_>>());
        self.outbox.set_peers(&members);
        self.directory.set(known);
    }

    fn after_turn(&mut self) {
        let status = self.node.status();
        if status.role != self.role {
            self.role_changed(self.role, status.role, status.leader);
            self.role = status.role;
        }
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = Instant::now();
            self.sweep();
        }
        self.metrics
            .waiting_clients
            .store(self.waiting() as i64, Relaxed);
        self.metrics.sessions.store(
            i64::try_from(self.sm.sessions_len()).unwrap_or(i64::MAX),
            Relaxed,
        );
        self.publish_status(status);
    }

    fn role_changed(&mut self, from: StateRole, to: StateRole, leader: Option<u64>) {
        self.metrics.role_changes.fetch_add(1, Relaxed);
        match to {
            StateRole::Candidate => self.metrics.elections.fetch_add(1, Relaxed),
            StateRole::Leader => self.metrics.leaderships.fetch_add(1, Relaxed),
            _ => 0,
        };
        slog::info!(self.logger, "role changed"; "from" => ?from, "to" => ?to, "leader" => ?leader);
        if from != StateRole::Leader {
            return;
        }
        // The core drops reads in flight with the leadership; tell their
        // clients now rather than at their timeout.
        let reads = std::mem::take(&mut self.reads_pending)
            .into_values()
            .flatten()
            .chain(
                std::mem::take(&mut self.reads_ready)
                    .into_iter()
                    .map(|(_, r)| r),
            );
        for r in reads {
            let _ = r.waiter.tx.send(Reply::NotLeader {
                leader,
                session: None,
            });
        }
        // A membership change proposed here may still be chosen at its
        // slot: its outcome is unknown, and proposing it again would be
        // refused for a change that did take effect.
        for (slot, w) in self.conf_waiters.drain(..) {
            let _ = w.tx.send(Reply::OutcomeUnknown(format!(
                "leadership was lost while the change at slot {slot} was undecided; \
                 it may still take effect: check /status"
            )));
        }
        // Writes proposed here may still be chosen, or not: their clients
        // retry at the new leader with the same (id, seq), which the
        // sessions make safe.
        for ((client, seq), waiters) in self.writes.drain() {
            for w in waiters {
                let _ = w.tx.send(Reply::NotLeader {
                    leader,
                    session: Some((client, seq)),
                });
            }
        }
    }

    /// Drops clients that gave up or waited too long, and answers those
    /// whose sequence their session has forgotten (its outcome is no
    /// longer known).
    fn sweep(&mut self) {
        let live = |w: &Waiter| !w.tx.is_closed() && w.since.elapsed() < CLIENT_WAIT;
        let before = self.waiting();
        let sm = &self.sm;
        self.writes.retain(|(client, seq), waiters| {
            if sm.lookup(*client, *seq) == Lookup::Forgotten {
                for w in waiters.drain(..) {
                    let _ = w.tx.send(Reply::Applied {
                        client: *client,
                        seq: *seq,
                        outcome: Outcome::Forgotten,
                    });
                }
                return false;
            }
            waiters.retain(live);
            !waiters.is_empty()
        });
        self.reads_pending.retain(|_, batch| {
            batch.retain(|r| live(&r.waiter));
            !batch.is_empty()
        });
        self.reads_ready.retain(|(_, r)| live(&r.waiter));
        self.conf_waiters.retain(|(_, w)| live(w));
        let dropped = before - self.waiting();
        if dropped > 0 {
            self.metrics
                .client_timeouts
                .fetch_add(dropped as u64, Relaxed);
        }
    }

    fn publish(&self) {
        self.publish_status(self.node.status());
    }

    fn publish_status(&self, st: paxos_core::Status) {
        let (height, head) = self.sm.head();
        let mut view = match self.view.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        if view.height != height || view.head.is_empty() {
            view.head = hex(&head);
        }
        view.id = st.id;
        view.role = format!("{:?}", st.role);
        view.leader = st.leader;
        view.ballot = st.promised.to_string();
        view.committed = st.committed;
        view.applied = self.sm.applied();
        view.last_slot = st.last_slot;
        view.height = height;
        view.voters = st.voters;
        view.learners = st.learners;
        view.first_slot = self.compacted + 1;
        view.phase1_quorum = st.quorums.phase1;
        view.phase2_quorum = st.quorums.phase2;
    }
}
