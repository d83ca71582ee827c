//! The simulator: whole clusters in one thread, driven by one seed.
//!
//! Time is in units of 1/100 tick. Events (node ticks, message deliveries,
//! client requests and replies, faults) sit in one queue ordered by time and
//! insertion order, so a seed fixes the run completely.

use crate::checker::Checker;
use crate::faults::{Fault, FaultMix, Schedule};
use crate::host::HostMix;
use crate::kv::{Command, KvState};
use crate::linearizability::{check, History, Op, Ret, Verdict};
use crate::net::Net;
use crate::reconfig::{Action, Replacement};
use crate::rng::Rng;
use crate::trace::{
    message_words, TraceHash, TRACE_APPLY, TRACE_CLIENT_DONE, TRACE_CRASH, TRACE_FAULT,
    TRACE_INSTALL, TRACE_LIVENESS, TRACE_RECONFIG, TRACE_SNAPSHOT, TRACE_START,
};
use bytes::Bytes;
use paxos_core::proto::{Body, ConfChange, ConfState, EntryKind, Message};
use paxos_core::{Config, Error, MemStorage, Proposed, RawNode, Ready, StateRole, Storage};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

mod app;
mod chaos;
mod clients;
mod cycle;
mod observe;
mod options;
mod record;
mod settle;

pub use options::{Outcome, SimOptions};

/// Time units per tick.
pub const TICK: u64 = 100;
/// Events one run may take: more means a message storm, itself a bug.
const MAX_EVENTS: u64 = 2_000_000;
/// Search budget per key for the linearizability check.
const LIN_BUDGET: u64 = 2_000_000;

#[derive(Debug)]
enum Reply {
    Done {
        seq: u64,
        /// Where the command was applied (none for a read).
        at: Option<paxos_core::Position>,
        ret: Ret,
    },
    NotLeader(Option<u64>),
    Busy,
}

#[derive(Debug)]
enum Ev {
    Tick(u64),
    Deliver(Message),
    Arrive {
        node: u64,
        cmd: Command,
        read: bool,
    },
    Reply {
        client: u64,
        reply: Reply,
    },
    Wake(u64),
    Restart(u64),
    Fault(Fault),
    Chaos,
    Reconfig,
    /// The host persists the Readys it took from this node.
    Flush(u64),
    /// The host takes the Readys of a node it let proposals gather at.
    Drive(u64),
    HostCampaign,
    /// A garbage peer sends one message.
    Garbage,
}

#[derive(Debug)]
struct Scheduled {
    time: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

#[derive(Debug)]
struct SimNode {
    storage: MemStorage,
    raw: Option<RawNode<MemStorage>>,
    /// The application's state: in memory, lost on a crash.
    kv: KvState,
    tick_period: u64,
    /// Commands proposed here whose clients wait for this node's answer.
    waiting: BTreeSet<(u64, u64)>,
    /// Ticks seen (the node's own clock).
    ticks: u64,
    /// The last leader this node accepted from, and at which tick.
    contact: Option<(u64, u64)>,
    /// The leadership this node follows (the ballot of its last contact),
    /// until it campaigns or promises another.
    followed: Option<paxos_core::proto::Ballot>,
    /// Last slot the application applied since the last restart.
    applied: u64,
    /// Reads asked through `read_index`: ctx -> (client, seq, key, the
    /// highest slot any node had applied when it was asked).
    reads_asked: BTreeMap<Bytes, (u64, u64, u64, u64)>,
    /// Reads confirmed, waiting for `applied` to reach their index.
    reads_confirmed: Vec<(u64, Bytes)>,
    /// While stalled: the normal tick period to return to at the heal.
    stalled_period: Option<u64>,
    /// The slot of the application's latest snapshot.
    snapshot_slot: u64,
    /// The membership in effect at `applied` (what a snapshot records).
    conf: ConfState,
    /// A node that joined later: the membership it boots believing in.
    boot_conf: Option<ConfState>,
    /// Readys taken and not yet persisted (a pipelining host).
    inflight: VecDeque<Ready>,
    /// A flush of `inflight` is scheduled.
    flush_scheduled: bool,
    /// The host holds proposals: a `Drive` is scheduled.
    drive_scheduled: bool,
}

#[derive(Debug)]
struct Pending {
    cmd: Command,
    hist: usize,
    deadline: u64,
    /// Try the next node at the deadline (a timeout), rather than `hint`.
    rotate: bool,
    /// A Get served through `read_index` rather than through the log.
    read: bool,
}

#[derive(Debug)]
struct ClientState {
    seq: u64,
    pending: Option<Pending>,
    hint: u64,
}

/// One simulated run.
#[derive(Debug)]
pub struct Sim {
    opts: SimOptions,
    mix: FaultMix,
    /// Nodes in all: voters 1..=voters, then learners.
    n: u64,
    voters: u64,
    rng: Rng,
    net_rng: Rng,
    /// Where reads go when `FaultMix::read_anywhere` is set: its own
    /// stream, so every other seed replays unchanged.
    read_rng: Rng,
    now: u64,
    next_seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    clients: Vec<ClientState>,
    history: History,
    checker: Checker,
    net: Net,
    hash: TraceHash,
    fault_end: u64,
    faults_on: bool,
    deadline: u64,
    events: u64,
    election_ticks: u64,
    logger: slog::Logger,
    done: bool,
    /// Every acknowledged command and the position it was applied at.
    acked: Vec<(paxos_core::Position, bytes::Bytes)>,
    /// The highest slot any node has applied.
    max_applied: u64,
    /// Reads asked so far (each attempt gets its own context).
    read_attempts: u64,
    /// Nodes in all, spares included (ids n+1..=total join later).
    total: u64,
    /// Spares that joined.
    joined: BTreeSet<u64>,
    /// Voters replaced and stopped for good.
    retired: BTreeSet<u64>,
    /// The replacement in progress.
    replacement: Option<Replacement>,
    /// Every `TimeoutNow` sent: (the leader's ballot, its target).
    timeouts_sent: BTreeSet<(paxos_core::proto::Ballot, u64)>,
    /// How this run's host drives the Ready cycle.
    host: HostMix,
    /// The host's own choices (its stream, so the kind host replays as
    /// before).
    host_rng: Rng,
    /// Mean ticks between garbage messages (0: none), and their stream.
    garbage_every: u64,
    garbage_rng: Rng,
    /// The configured quorum sizes (rule M4).
    quorums: crate::quorums::Sizes,
    /// The disk, its own stream, and the syncs that failed so far.
    disk: crate::disk::Disk,
    disk_rng: Rng,
    sync_failures: u64,
    /// The space-time diagram being recorded (`SimOptions::record`).
    rec: Option<Box<crate::diagram::Diagram>>,
}

/// Runs one simulation.
pub fn run(opts: SimOptions) -> Outcome {
    let mut sim = Sim::new(opts);
    sim.run();
    sim.finish()
}

impl Sim {
    /// Builds the cluster, clients and fault plan for `opts`.
    pub fn new(opts: SimOptions) -> Sim {
        let mut rng = Rng::new(opts.seed);
        // Every draw happens whatever the overrides, so that a replay with
        // `--nodes N --learners L` (as printed) repeats the very same run.
        let mut drawn_mix = FaultMix::swarm(&mut rng);
        drawn_mix.draw_compaction(opts.seed);
        drawn_mix.draw_reconfig(opts.seed);
        drawn_mix.draw_lease(opts.seed);
        let drawn_voters = rng.pick(&[3, 3, 5, 5, 7]);
        let drawn_learners = if rng.chance(0.3) {
            rng.range_inclusive(1, 2)
        } else {
            0
        };
        let mix = opts.mix.clone().unwrap_or(drawn_mix);
        let voters = opts.nodes.unwrap_or(drawn_voters);
        let learners = opts.learners.unwrap_or(drawn_learners);
        let n = voters + learners;
        let net_rng = rng.fork();
        let read_rng = Rng::new(opts.seed ^ 0x7ead_a115_eed0);
        let host = opts
            .host
            .clone()
            .unwrap_or_else(|| HostMix::draw(opts.seed));
        let host_rng = HostMix::stream(opts.seed);
        let garbage_every = opts
            .garbage_every
            .unwrap_or_else(|| crate::garbage::draw_every(opts.seed));
        let garbage_rng = crate::garbage::stream(opts.seed);
        let quorums = opts
            .quorums
            .unwrap_or_else(|| crate::quorums::draw(opts.seed, voters));
        let disk = opts
            .disk
            .unwrap_or_else(|| crate::disk::Disk::draw(opts.seed));
        let disk_rng = crate::disk::Disk::stream(opts.seed);
        let rec = opts.record.then(Box::default);
        let mut sim = Sim {
            fault_end: opts.ticks * TICK,
            deadline: (opts.ticks + opts.liveness_ticks) * TICK,
            opts,
            mix,
            n,
            rng,
            net_rng,
            read_rng,
            now: 0,
            next_seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            clients: Vec::new(),
            history: History::new(),
            checker: Checker::with_quorums((1..=voters).collect(), quorums),
            voters,
            net: Net::default(),
            hash: TraceHash::default(),
            faults_on: true,
            events: 0,
            election_ticks: 0,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
            done: false,
            acked: Vec::new(),
            max_applied: 0,
            read_attempts: 0,
            total: n,
            joined: BTreeSet::new(),
            retired: BTreeSet::new(),
            replacement: None,
            timeouts_sent: BTreeSet::new(),
            host,
            host_rng,
            garbage_every,
            garbage_rng,
            quorums,
            disk,
            disk_rng,
            sync_failures: 0,
            rec,
        };
        sim.total = n + sim.mix.spares;
        sim.election_ticks = u64::from(sim.config(1).election_ticks);
        for id in 1..=sim.total {
            let tick_period = if sim.mix.skew {
                sim.rng
                    .range_inclusive(sim.mix.skew_range.0, sim.mix.skew_range.1)
            } else {
                TICK
            };
            sim.nodes.push(SimNode {
                storage: MemStorage::new(),
                raw: None,
                kv: KvState::default(),
                tick_period,
                waiting: BTreeSet::new(),
                ticks: 0,
                contact: None,
                followed: None,
                applied: 0,
                reads_asked: BTreeMap::new(),
                reads_confirmed: Vec::new(),
                stalled_period: None,
                snapshot_slot: 0,
                conf: ConfState::default(),
                boot_conf: None,
                inflight: VecDeque::new(),
                flush_scheduled: false,
                drive_scheduled: false,
            });
            sim.start(id);
            let first = sim.rng.range_inclusive(1, tick_period);
            sim.schedule(first, Ev::Tick(id));
        }
        for c in 0..sim.mix.clients {
            sim.clients.push(ClientState {
                seq: 0,
                pending: None,
                hint: c % n + 1,
            });
            let at = sim.rng.range_inclusive(1, 5 * TICK);
            sim.schedule(at, Ev::Wake(c));
        }
        if sim.mix.reconfig_every > 0 {
            sim.schedule(sim.mix.reconfig_every * TICK, Ev::Reconfig);
        }
        if sim.garbage_every > 0 {
            let at = sim.garbage_rng.range_inclusive(1, 2 * sim.garbage_every) * TICK;
            sim.schedule(at, Ev::Garbage);
        }
        if sim.host.campaign_every > 0 {
            let at = sim.host_rng.range_inclusive(1, 2 * sim.host.campaign_every) * TICK;
            sim.schedule(at, Ev::HostCampaign);
        }
        match sim.opts.schedule.clone() {
            Some(Schedule(items)) => {
                for (tick, fault) in items {
                    sim.schedule(tick * TICK, Ev::Fault(fault));
                }
            }
            None if sim.mix.chaos_every > 0 => {
                let at = sim.rng.range_inclusive(1, 2 * sim.mix.chaos_every) * TICK;
                sim.schedule(at, Ev::Chaos);
            }
            None => {}
        }
        sim
    }

    fn config(&self, id: u64) -> Config {
        let mut cfg = Config::new(id, (1..=self.voters).collect::<Vec<_>>());
        cfg.learners = (self.voters + 1..=self.n).collect();
        if let Some(cs) = &self
            .nodes
            .get((id - 1) as usize)
            .and_then(|n| n.boot_conf.clone())
        {
            cfg.voters = cs.voters.clone();
            cfg.learners = cs.learners.clone();
        }
        cfg.seed = self.opts.seed;
        // Small limits so that windows, splitting and chunking are exercised.
        cfg.heartbeat_ticks = self.mix.heartbeat_ticks;
        cfg.election_ticks = self.mix.election_ticks.max(self.mix.heartbeat_ticks + 1);
        cfg.max_inflight_slots = self.mix.inflight_slots;
        cfg.max_msg_entries = self.mix.msg_entries;
        cfg.max_msg_bytes = self.mix.msg_bytes;
        cfg.read_lease_ticks = self.mix.read_lease_ticks;
        (cfg.phase1_quorum, cfg.phase2_quorum) = self.quorums;
        if cfg.voters.len() as u64 != self.voters && self.quorums != crate::quorums::MAJORITIES {
            // A node joining a membership of another size boots with the
            // sizes in effect for it (the configured pair need not fit
            // there); it takes the cluster's own from the log or a
            // snapshot, before it ever votes.
            let size = |q: Option<usize>| q.and_then(|q| u32::try_from(q).ok()).unwrap_or(0);
            let q = paxos_core::proto::Quorums::for_voters(
                cfg.voters.len(),
                size(self.quorums.0),
                size(self.quorums.1),
            );
            (cfg.phase1_quorum, cfg.phase2_quorum) = (Some(q.phase1), Some(q.phase2));
        }
        cfg.max_ready_entries = 16;
        cfg.planted_bug = self.opts.bug;
        cfg
    }

    fn schedule(&mut self, time: u64, ev: Ev) {
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled {
            time,
            seq: self.next_seq,
            ev,
        }));
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if self.opts.trace {
            // A closed pipe (`sim --trace | head`) just ends the output.
            use std::io::Write;
            let out = format!("t={:>6}.{:02} {}", self.now / TICK, self.now % TICK, line());
            let _ = writeln!(std::io::stdout().lock(), "{out}");
        }
    }

    fn node(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts a node from its storage alone: the application restores the
    /// storage's snapshot (if any), and re-applies what follows it.
    fn start(&mut self, id: u64) {
        if !self.present(id) {
            return; // a spare not yet joined, or a retired voter
        }
        let mut cfg = self.config(id);
        let storage = self.node(id).storage.clone();
        let snap = storage.snapshot().unwrap_or_default();
        let slot = snap.metadata.as_ref().map_or(0, |m| m.slot);
        let kv = if slot == 0 {
            Some(KvState::default())
        } else {
            KvState::decode(&snap.data)
        };
        let Some(kv) = kv else {
            self.checker.own_snapshot_undecodable(id, slot);
            return;
        };
        cfg.applied = slot;
        let conf = match snap.metadata.and_then(|m| m.conf_state) {
            Some(cs) if slot > 0 => cs,
            _ => cfg.initial_conf_state(),
        };
        match RawNode::new(&cfg, storage, &self.logger) {
            Ok(raw) => {
                self.checker.on_start(id, raw.status().promised, slot);
                let node = self.node(id);
                node.raw = Some(raw);
                node.kv = kv;
                node.contact = None;
                node.followed = None;
                node.applied = slot;
                node.snapshot_slot = slot;
                node.conf = conf;
                self.trace(|| format!("START node {id}"));
                self.hash.mix(&[self.now, TRACE_START, id]);
            }
            Err(e) => self.checker.restart_failed(id, e),
        }
    }

    fn crash(&mut self, id: u64) {
        let node = self.node(id);
        if node.raw.take().is_none() {
            return;
        }
        node.kv = KvState::default();
        node.waiting.clear();
        node.contact = None;
        node.followed = None;
        node.applied = 0;
        node.reads_asked.clear();
        node.reads_confirmed.clear();
        // What the host took and had not persisted is lost.
        node.inflight.clear();
        node.flush_scheduled = false;
        self.trace(|| format!("CRASH node {id}"));
        self.hash.mix(&[self.now, TRACE_CRASH, id]);
    }

    /// Runs events until the liveness phase settles or its bound passes.
    pub fn run(&mut self) {
        while let Some(Reverse(s)) = self.queue.pop() {
            self.now = s.time;
            if self.faults_on && self.now >= self.fault_end {
                self.begin_liveness();
            }
            if self.now > self.deadline {
                self.liveness_failed();
                break;
            }
            self.events += 1;
            if self.events > MAX_EVENTS {
                self.checker.message_storm(MAX_EVENTS, self.now / TICK);
                break;
            }
            self.handle(s.ev);
            self.check_step();
            if self.rec.is_some() {
                self.record_step();
            }
            if self.done {
                break;
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(id) => {
                let period = self.node(id).tick_period;
                self.schedule(self.now + period, Ev::Tick(id));
                let node = self.node(id);
                if let Some(raw) = node.raw.as_mut() {
                    raw.tick();
                    node.ticks += 1;
                    self.drive(id);
                }
            }
            Ev::Deliver(m) => self.deliver(m),
            Ev::Arrive {
                node,
                cmd,
                read: false,
            } => self.arrive(node, cmd),
            Ev::Arrive {
                node,
                cmd,
                read: true,
            } => self.arrive_read(node, cmd),
            Ev::Reply { client, reply } => self.client_reply(client, reply),
            Ev::Wake(c) => self.client_wake(c),
            Ev::Restart(id) => {
                if self.node(id).raw.is_none() {
                    self.start(id);
                    self.drive(id);
                }
            }
            Ev::Fault(f) => {
                if self.faults_on {
                    self.apply_fault(f);
                }
            }
            Ev::Reconfig => self.reconfig(),
            Ev::Flush(id) => {
                if self.node(id).raw.is_some() {
                    self.flush(id);
                }
            }
            Ev::Drive(id) => {
                self.node(id).drive_scheduled = false;
                self.drive(id);
            }
            Ev::HostCampaign => self.host_campaign(),
            Ev::Garbage => self.garbage(),
            Ev::Chaos => {
                if !self.faults_on {
                    return;
                }
                let mut rng = self.rng.fork();
                let present = self.present_ids();
                let leader = self.current_leader();
                // Draw among positions 1..=n, then map them onto the nodes
                // present now (the identity unless membership churned).
                let slot_of = |id: u64| present.iter().position(|&p| p == id).map(|i| i as u64 + 1);
                let leader_pos = leader.and_then(slot_of).filter(|&p| p <= self.n);
                if let Some(f) = Fault::random(&mut rng, &self.mix, self.n, leader_pos) {
                    let f = f.map_nodes(|x| present.get((x - 1) as usize).copied().unwrap_or(x));
                    self.apply_fault(f);
                }
                let next = self.now + rng.range_inclusive(1, 2 * self.mix.chaos_every) * TICK;
                self.schedule(next, Ev::Chaos);
            }
        }
    }

    /// Nodes that exist now: the original ones not retired, and the spares
    /// that joined, in id order.
    fn present_ids(&self) -> Vec<u64> {
        (1..=self.total).filter(|&id| self.present(id)).collect()
    }

    /// The members (voters and learners) of the current leader's
    /// membership; empty while no node leads.
    fn final_members(&self) -> Vec<u64> {
        let Some(l) = self.current_leader() else {
            return Vec::new();
        };
        let Some(st) = self.nodes[(l - 1) as usize]
            .raw
            .as_ref()
            .map(|r| r.status())
        else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = st.voters.iter().chain(&st.learners).copied().collect();
        ids.sort_unstable();
        ids
    }

    fn present(&self, id: u64) -> bool {
        !self.retired.contains(&id) && (id <= self.n || self.joined.contains(&id))
    }

    /// The next node a client tries after `id` (the identity rotation
    /// 1..=n unless membership churned).
    fn next_present(&self, id: u64) -> u64 {
        let present = self.present_ids();
        present
            .iter()
            .copied()
            .find(|&p| p > id)
            .or_else(|| present.first().copied())
            .unwrap_or(1)
    }

    /// The live leader with the highest ballot, if any.
    fn current_leader(&self) -> Option<u64> {
        (1..=self.total)
            .filter_map(|id| {
                let st = self.nodes[(id - 1) as usize].raw.as_ref()?.status();
                (st.role == StateRole::Leader).then_some((st.promised, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn deliver(&mut self, m: Message) {
        if self.rec.is_some() {
            self.record_delivery(&m);
        }
        let id = m.to;
        if id == 0 || id > self.total {
            return; // a reply to a garbage peer's claimed sender: no such node
        }
        let Some(before) = self.node(id).raw.as_ref().map(|r| r.status()) else {
            return;
        };
        // Every message by which a node follows a leader renews its lease.
        let leader_ballot = match &m.body {
            Some(Body::Accept(a)) => a.ballot,
            Some(Body::Heartbeat(h)) => h.ballot,
            Some(Body::Decide(d)) => d.ballot,
            Some(
                Body::PrePrepare(_)
                | Body::PrePrepareReply(_)
                | Body::Prepare(_)
                | Body::Promise(_)
                | Body::Accepted(_)
                | Body::Reject(_)
                | Body::HeartbeatReply(_)
                | Body::Propose(_)
                | Body::TimeoutNow(_)
                | Body::InstallSnapshot(_)
                | Body::SnapshotReply(_),
            )
            | None => None,
        };
        let from = m.from;
        let transfer = m.body.as_ref().and_then(Body::transfer);
        // The observer's own reading of the transfer rule: a transfer is
        // exempt from stickiness only at a node that follows exactly the
        // leadership that asked for it (its last contact, in that very
        // ballot), or at that leader itself when it sent `TimeoutNow` to
        // this candidate.
        let followed = self.nodes[(id - 1) as usize].followed;
        let exempt = transfer.is_some_and(|t| {
            t == before.promised
                && if before.role == StateRole::Leader {
                    self.timeouts_sent.contains(&(t, from))
                } else {
                    followed == Some(t)
                }
        });
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        // The checker counts a promise once the candidate took it in.
        let promise = matches!(m.body, Some(Body::Promise(_))).then(|| m.clone());
        if let Err(e) = raw.step(m) {
            // Under membership churn a reply from a node the receiver does
            // not (or no longer) count is refused by design.
            if matches!(e, Error::UnknownPeer(_)) && self.mix.reconfig_every > 0 {
                self.trace(|| format!("node {id} ignores a reply from non-member {from}"));
                return;
            }
            self.checker.refused_cluster_message(id, e);
            return;
        }
        if let Some(p) = &promise {
            self.checker.on_deliver(p);
        }
        if let Some(b) = leader_ballot.filter(|b| *b >= before.promised) {
            let node = self.node(id);
            node.contact = Some((from, node.ticks));
            node.followed = Some(b);
            debug_assert_eq!(b.node, from);
        }
        self.drive_with(id, before.role == StateRole::Leader, exempt.then_some(from));
    }

    fn send(&mut self, id: u64, m: Message) {
        self.checker.on_send(&m);
        if let Some(Body::TimeoutNow(t)) = &m.body {
            if let Some(b) = t.ballot {
                self.timeouts_sent.insert((b, m.to));
            }
        }
        let times = self.net.route(
            &mut self.net_rng,
            &self.mix,
            self.faults_on,
            id,
            m.to,
            self.now,
        );
        if self.rec.is_some() {
            self.record_send(id, &m, &times);
        }
        let mut words = message_words(&m).to_vec();
        words.push(self.now);
        words.extend(&times);
        self.hash.mix(&words);
        self.trace(|| {
            let fate = match times.as_slice() {
                [] => "dropped".to_string(),
                [t] => format!("+{}", t - self.now),
                ts => format!("x{} +{}", ts.len(), ts[0] - self.now),
            };
            format!("{m} [{fate}]")
        });
        for t in times {
            self.schedule(t, Ev::Deliver(m.clone()));
        }
    }
}
