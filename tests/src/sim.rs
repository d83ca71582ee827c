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
use crate::trace::{describe, message_words, TraceHash};
use bytes::Bytes;
use paxos_core::proto::{Body, ConfChange, ConfState, EntryKind, Message};
use paxos_core::{
    Config, Error, MemStorage, PlantedBug, Proposed, RawNode, Ready, StateRole, Storage,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

mod cycle;
mod observe;

/// Time units per tick.
pub const TICK: u64 = 100;
/// Events one run may take: more means a message storm, itself a bug.
const MAX_EVENTS: u64 = 2_000_000;
/// Search budget per key for the linearizability check.
const LIN_BUDGET: u64 = 2_000_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed: every choice of the run derives from it.
    pub seed: u64,
    /// Voters; drawn from {3, 5, 7} when unset.
    pub nodes: Option<u64>,
    /// Learners (receive decided entries, never vote); drawn when unset.
    pub learners: Option<u64>,
    /// Ticks of the fault phase.
    pub ticks: u64,
    /// After the fault phase everything heals: every submitted command must
    /// then be applied on every node within this many ticks.
    pub liveness_ticks: u64,
    /// The fault mix; drawn from the seed (swarm testing) when unset.
    pub mix: Option<FaultMix>,
    /// Scripted faults instead of random ones.
    pub schedule: Option<Schedule>,
    /// How the host drives the Ready cycle; drawn from the seed when unset.
    pub host: Option<HostMix>,
    /// Mean ticks between garbage messages (0: none); drawn when unset.
    pub garbage_every: Option<u64>,
    /// A protocol bug to plant in every node.
    pub bug: Option<PlantedBug>,
    /// Print every event.
    pub trace: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            nodes: None,
            learners: None,
            ticks: 500,
            liveness_ticks: 1500,
            mix: None,
            schedule: None,
            host: None,
            garbage_every: None,
            bug: None,
            trace: false,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Voters.
    pub nodes: u64,
    /// Learners.
    pub learners: u64,
    /// Ticks simulated.
    pub steps: u64,
    /// Events processed.
    pub events: u64,
    /// Slots chosen.
    pub decided: u64,
    /// Client operations invoked / completed.
    pub ops: (usize, usize),
    /// Leaderships won.
    pub elections: usize,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Voters replaced by new nodes (added, caught up, promoted, removed).
    pub replaced: u64,
    /// Every invariant violation, in order.
    pub violations: Vec<String>,
    /// Hash of every event: equal for equal runs.
    pub trace_hash: u64,
    /// Linearizability checks that ran out of budget (not violations, but
    /// not passes either).
    pub undecided_keys: Vec<u64>,
    /// The fault mix used.
    pub mix: FaultMix,
    /// The host behaviours used.
    pub host: HostMix,
}

impl Outcome {
    /// The closing line of a run.
    pub fn summary_line(&self) -> String {
        format!(
            "seed={} steps={} decided={} violations={} trace_hash={:016x}",
            self.seed,
            self.steps,
            self.decided,
            self.violations.len(),
            self.trace_hash
        )
    }

    /// The command that replays this run.
    pub fn replay_command(&self, opts: &SimOptions) -> String {
        let mut cmd = format!(
            "cargo run --release -p paxos-sim --bin sim -- --seed {} --nodes {} --learners {} --steps {}",
            self.seed, self.nodes, self.learners, opts.ticks
        );
        if let Some(s) = &opts.schedule {
            cmd.push_str(&format!(" --schedule '{s}'"));
        }
        if let Some(b) = opts.bug {
            cmd.push_str(&format!(" --bug {b:?}"));
        }
        if opts.host == Some(HostMix::kind()) {
            cmd.push_str(" --kind-host");
        }
        cmd + " --trace"
    }
}

#[derive(Debug)]
enum Reply {
    Done {
        seq: u64,
        slot: Option<u64>,
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
    /// Every acknowledged command and the slot it was applied at.
    acked: Vec<(u64, bytes::Bytes)>,
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
        let drawn_learners = if rng.chance(0.3) { rng.range(1, 2) } else { 0 };
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
            checker: Checker::new((1..=voters).collect()),
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
        };
        sim.total = n + sim.mix.spares;
        sim.election_ticks = u64::from(sim.config(1).election_ticks);
        for id in 1..=sim.total {
            let tick_period = if sim.mix.skew {
                sim.rng.range(sim.mix.skew_range.0, sim.mix.skew_range.1)
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
            });
            sim.start(id);
            let first = sim.rng.range(1, tick_period);
            sim.schedule(first, Ev::Tick(id));
        }
        for c in 0..sim.mix.clients {
            sim.clients.push(ClientState {
                seq: 0,
                pending: None,
                hint: c % n + 1,
            });
            let at = sim.rng.range(1, 5 * TICK);
            sim.schedule(at, Ev::Wake(c));
        }
        if sim.mix.reconfig_every > 0 {
            sim.schedule(sim.mix.reconfig_every * TICK, Ev::Reconfig);
        }
        if sim.garbage_every > 0 {
            let at = sim.garbage_rng.range(1, 2 * sim.garbage_every) * TICK;
            sim.schedule(at, Ev::Garbage);
        }
        if sim.host.campaign_every > 0 {
            let at = sim.host_rng.range(1, 2 * sim.host.campaign_every) * TICK;
            sim.schedule(at, Ev::HostCampaign);
        }
        match sim.opts.schedule.clone() {
            Some(Schedule(items)) => {
                for (tick, fault) in items {
                    sim.schedule(tick * TICK, Ev::Fault(fault));
                }
            }
            None if sim.mix.chaos_every > 0 => {
                let at = sim.rng.range(1, 2 * sim.mix.chaos_every) * TICK;
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
            let v = format!("node {id} cannot decode its own snapshot at slot {slot}");
            self.checker.violations.push(v);
            return;
        };
        cfg.applied = slot;
        let conf = match snap.metadata.and_then(|m| m.conf_state) {
            Some(cs) if slot > 0 => cs,
            _ => ConfState {
                voters: cfg.voters.clone(),
                learners: cfg.learners.clone(),
                since: 0,
            },
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
                self.hash.mix(&[self.now, 1, id]);
            }
            Err(e) => self
                .checker
                .violations
                .push(format!("node {id} failed to restart: {e}")),
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
        self.hash.mix(&[self.now, 2, id]);
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
                let v = format!(
                    "message storm: over {MAX_EVENTS} events by tick {}",
                    self.now / TICK
                );
                self.checker.violations.push(v);
                break;
            }
            self.handle(s.ev);
            self.check_step();
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
                let next = self.now + rng.range(1, 2 * self.mix.chaos_every) * TICK;
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

    /// One step of membership churn: pick a voter to replace with the next
    /// spare, then walk add, catch up, promote, remove, retire.
    fn reconfig(&mut self) {
        if !self.faults_on {
            return;
        }
        self.schedule(self.now + self.mix.reconfig_every * TICK, Ev::Reconfig);
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(st) = self.node(leader).raw.as_ref().map(|r| r.status()) else {
            return;
        };
        if self.replacement.is_none() {
            let spare = self.n + self.joined.len() as u64 + 1;
            if spare > self.total {
                return;
            }
            // Half the time the leader itself is replaced.
            let old = if self.rng.chance(0.5) {
                leader
            } else {
                st.voters[self.rng.range(0, st.voters.len() as u64 - 1) as usize]
            };
            self.replacement = Some(Replacement::new(spare, old));
        }
        let Some(mut r) = self.replacement else {
            return;
        };
        let slack = self.mix.inflight_slots / 2;
        let caught_up = self
            .node(r.new)
            .raw
            .as_ref()
            .is_some_and(|n| n.status().applied + slack >= st.committed);
        let action = r.next(&st.voters, &st.learners, caught_up);
        self.replacement = Some(r);
        self.trace(|| format!("RECONFIG {action:?}"));
        self.hash.mix(&[self.now, 8, r.new, r.old]);
        match action {
            Action::Boot(id) => {
                self.joined.insert(id);
                self.node(id).boot_conf = Some(ConfState {
                    voters: st.voters.clone(),
                    learners: st.learners.iter().copied().chain([id]).collect(),
                    since: 0,
                });
                self.start(id);
                self.drive(id);
            }
            Action::Propose(t, id) => {
                let cc = ConfChange {
                    change_type: t as i32,
                    node_id: id,
                    ..ConfChange::default()
                };
                if let Some(raw) = self.node(leader).raw.as_mut() {
                    // Refusals (pending change, learner behind) retry later.
                    if let Err(e) = raw.propose_conf_change(cc) {
                        self.trace(|| format!("membership change refused: {e}"));
                    }
                }
                self.drive(leader);
            }
            Action::Retire(id) => {
                self.crash(id);
                self.retired.insert(id);
                self.replacement = None;
            }
            Action::Wait => {}
        }
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

    fn apply_fault(&mut self, f: Fault) {
        let valid = |x: u64| (1..=self.total).contains(&x);
        self.trace(|| format!("FAULT {f}"));
        match f {
            Fault::Crash { node, down } if valid(node) => {
                self.crash(node);
                self.schedule(self.now + down.max(1) * TICK, Ev::Restart(node));
            }
            Fault::Isolate(a) if valid(a) => {
                for b in 1..=self.total {
                    if b != a {
                        self.net.cut_both(a, b);
                    }
                }
            }
            Fault::Split(mask) => {
                // Bit i is the i-th node present (node i+1 unless churned).
                let present = self.present_ids();
                let side = |x: u64| {
                    present
                        .iter()
                        .position(|&p| p == x)
                        .map_or(0, |i| (mask >> i) & 1)
                };
                for a in 1..=self.total {
                    for b in 1..=self.total {
                        if side(a) != side(b) {
                            self.net.cut(a, b);
                        }
                    }
                }
            }
            Fault::OneWay { from, to } if valid(from) && valid(to) => self.net.cut(from, to),
            Fault::CutPair(a, b) if valid(a) && valid(b) => self.net.cut_both(a, b),
            Fault::Clog { from, to, ticks } if valid(from) && valid(to) => {
                self.net.clog(from, to, self.now + ticks * TICK);
            }
            Fault::Heal => self.heal(),
            Fault::Stall(a) if valid(a) => {
                for b in 1..=self.total {
                    if b != a {
                        self.net.cut_both(a, b);
                    }
                }
                let node = self.node(a);
                if node.stalled_period.is_none() {
                    node.stalled_period = Some(node.tick_period);
                    node.tick_period *= 4;
                }
            }
            Fault::Campaign(id) if valid(id) => {
                if let Some(raw) = self.node(id).raw.as_mut() {
                    let result = raw.campaign();
                    self.trace(|| format!("HOST campaign() at node {id}: {result:?}"));
                }
                self.drive(id);
            }
            Fault::Transfer(to) if valid(to) => {
                if let Some(l) = self.current_leader() {
                    if let Some(raw) = self.node(l).raw.as_mut() {
                        // Refusals (a transfer to itself) are fine.
                        let _ = raw.transfer_leader(to);
                    }
                    self.drive(l);
                }
            }
            _ => {}
        }
        self.hash.mix(&[self.now, 3, fault_word(&f)]);
    }

    fn deliver(&mut self, m: Message) {
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
            _ => None,
        };
        let from = m.from;
        let transfer = match &m.body {
            Some(Body::PrePrepare(p)) => p.transfer,
            Some(Body::Prepare(p)) => p.transfer,
            _ => None,
        };
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
        if let Err(e) = raw.step(m) {
            // Under membership churn a reply from a node the receiver does
            // not (or no longer) count is refused by design.
            if matches!(e, Error::UnknownPeer(_)) && self.mix.reconfig_every > 0 {
                self.trace(|| format!("node {id} ignores a reply from non-member {from}"));
                return;
            }
            self.checker
                .violations
                .push(format!("node {id} refused a cluster message: {e}"));
            return;
        }
        if let Some(b) = leader_ballot.filter(|b| *b >= before.promised) {
            let node = self.node(id);
            node.contact = Some((from, node.ticks));
            node.followed = Some(b);
            debug_assert_eq!(b.node, from);
        }
        self.drive_with(id, before.role == StateRole::Leader, exempt.then_some(from));
    }

    fn arrive(&mut self, id: u64, cmd: Command) {
        let data = cmd.encode();
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        let reply = match raw.propose(data.clone()) {
            Ok(Proposed::At(slot)) => {
                self.checker.on_propose(&cmd, &data);
                self.node(id).waiting.insert((cmd.client, cmd.seq));
                self.trace(|| {
                    format!(
                        "node {id} proposes c{}#{} at slot {slot}",
                        cmd.client, cmd.seq
                    )
                });
                None
            }
            Ok(Proposed::Forwarded(_)) => None,
            Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
            Err(Error::ProposalDropped(_)) => Some(Reply::Busy),
            Err(e) => {
                self.checker
                    .violations
                    .push(format!("node {id} failed a proposal: {e}"));
                Some(Reply::Busy)
            }
        };
        if let Some(reply) = reply {
            self.send_to_client(cmd.client, reply);
        }
        self.drive(id);
    }

    fn arrive_read(&mut self, id: u64, cmd: Command) {
        let Op::Get { key } = cmd.op else {
            return;
        };
        // One context per attempt: a retried read must not take over the
        // bookkeeping of an earlier attempt that may still confirm.
        self.read_attempts += 1;
        let ctx = Bytes::from(self.read_attempts.to_be_bytes().to_vec());
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        let reply = match raw.read_index(ctx.clone()) {
            Ok(()) => {
                let floor = self.max_applied;
                self.node(id)
                    .reads_asked
                    .insert(ctx, (cmd.client, cmd.seq, key, floor));
                self.trace(|| format!("node {id} read_index c{}#{}", cmd.client, cmd.seq));
                None
            }
            Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
            Err(_) => Some(Reply::Busy),
        };
        if let Some(reply) = reply {
            self.send_to_client(cmd.client, reply);
        }
        self.drive(id);
    }

    /// Serves every confirmed read whose index the application reached.
    fn serve_reads(&mut self, id: u64) {
        let node = self.node(id);
        let applied = node.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut node.reads_confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        node.reads_confirmed = waiting;
        for (index, ctx) in ready {
            let node = self.node(id);
            let Some((client, seq, key, floor)) = node.reads_asked.remove(&ctx) else {
                continue;
            };
            // PROTOCOL.md rule R1: the read index covers everything decided before the
            // read began; a slot some node had already applied is decided.
            if index < floor {
                let v = format!("node {id} confirmed a read at index {index}, below slot {floor} applied before it was asked");
                self.checker.violations.push(v);
            }
            let node = self.node(id);
            let ret = Ret::Value(node.kv.get(key));
            self.trace(|| {
                format!("node {id} serves read c{client}#{seq} at index {index} -> {ret:?}")
            });
            self.send_to_client(
                client,
                Reply::Done {
                    seq,
                    slot: None,
                    ret,
                },
            );
        }
    }

    fn send_to_client(&mut self, client: u64, reply: Reply) {
        let at = self.now + self.net_rng.range(self.mix.min_delay, self.mix.max_delay);
        self.schedule(at, Ev::Reply { client, reply });
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
            format!("{} [{fate}]", describe(&m))
        });
        for t in times {
            self.schedule(t, Ev::Deliver(m.clone()));
        }
    }

    /// The application replaces its state with a snapshot from the leader.
    fn install(&mut self, id: u64, s: &paxos_core::proto::Snapshot) {
        let slot = s.metadata.as_ref().map_or(0, |m| m.slot);
        self.checker.on_install(id, slot, &s.data);
        self.hash.mix(&[self.now, 6, id, slot]);
        self.trace(|| format!("node {id} installs a snapshot at slot {slot}"));
        let Some(kv) = KvState::decode(&s.data) else {
            let v = format!("node {id} got an undecodable snapshot at slot {slot}");
            self.checker.violations.push(v);
            return;
        };
        let conf = s.metadata.as_ref().and_then(|m| m.conf_state.clone());
        let node = self.node(id);
        node.kv = kv;
        node.applied = slot;
        node.snapshot_slot = slot;
        node.conf = conf.unwrap_or_default();
        // Commands applied inside the snapshot were answered by whichever
        // node applied them; the client retries if that answer was lost.
        node.waiting.clear();
        self.max_applied = self.max_applied.max(slot);
    }

    /// The application snapshots its state every `compact_every` applied
    /// slots and lets storage discard the log below it.
    fn maybe_compact(&mut self, id: u64) {
        let (every, keep) = (self.mix.compact_every, self.mix.compact_keep);
        let node = self.node(id);
        if every == 0 || node.applied < node.snapshot_slot + every {
            return;
        }
        let (slot, data) = (node.applied, node.kv.encode());
        node.snapshot_slot = slot;
        {
            let mut disk = node.storage.wl();
            disk.create_snapshot(slot, node.conf.clone(), data.clone());
            disk.compact(slot.saturating_sub(keep));
        }
        self.checker.on_snapshot(id, slot, &data);
        self.hash.mix(&[self.now, 7, id, slot]);
        self.trace(|| format!("node {id} snapshots at slot {slot} and compacts"));
    }

    fn apply(&mut self, id: u64, e: &paxos_core::proto::Entry) {
        self.checker.on_apply(id, e);
        self.node(id).applied = e.slot;
        self.max_applied = self.max_applied.max(e.slot);
        self.hash.mix(&[self.now, 4, id, e.slot]);
        if let Some(cc) = e.conf_change() {
            match cc.ok().filter(|cc| cc.result.is_some()) {
                Some(cc) => match cc.outcome(&self.node(id).conf, e.slot) {
                    Some(cs) => {
                        self.trace(|| {
                            format!("node {id} applies slot {} membership {cs:?}", e.slot)
                        });
                        self.node(id).conf = cs;
                    }
                    None => self.trace(|| {
                        format!(
                            "node {id} applies slot {}: a void membership change",
                            e.slot
                        )
                    }),
                },
                None => {
                    let v = format!(
                        "node {id} applied a garbled membership change at slot {}",
                        e.slot
                    );
                    self.checker.violations.push(v);
                }
            }
            return;
        }
        if e.kind != EntryKind::Normal as i32 {
            self.trace(|| format!("node {id} applies slot {} (no-op)", e.slot));
            return;
        }
        let Some(cmd) = Command::decode(&e.data) else {
            return;
        };
        let node = self.node(id);
        let ret = node.kv.apply(&cmd);
        let waiting = node.waiting.remove(&(cmd.client, cmd.seq));
        self.trace(|| {
            format!(
                "node {id} applies slot {} c{}#{} {:?} -> {ret:?}",
                e.slot, cmd.client, cmd.seq, cmd.op
            )
        });
        if let (true, Some(ret)) = (waiting, ret) {
            let reply = Reply::Done {
                seq: cmd.seq,
                slot: Some(e.slot),
                ret,
            };
            self.send_to_client(cmd.client, reply);
        }
    }

    fn client_wake(&mut self, c: u64) {
        let now = self.now;
        let generating = self.faults_on;
        let cl = &mut self.clients[c as usize];
        match &cl.pending {
            None if generating => {
                cl.seq += 1;
                let key = self.rng.range(1, self.mix.keys);
                let op = match self.rng.range(0, 19) {
                    0..=9 => Op::Put {
                        key,
                        value: c * 1_000_000 + cl.seq,
                    },
                    10..=16 => Op::Get { key },
                    _ => Op::Delete { key },
                };
                let cmd = Command {
                    client: c,
                    seq: cl.seq,
                    op,
                };
                let hist = self.history.invoke(c, op, now);
                cl.pending = Some(Pending {
                    cmd,
                    hist,
                    deadline: 0,
                    rotate: false,
                    read: matches!(op, Op::Get { .. }) && self.rng.chance(0.5),
                });
                self.trace(|| format!("client {c} invokes #{} {op:?}", cmd.seq));
                self.client_send(c);
            }
            Some(p) if now >= p.deadline => {
                // Same command again: at the next node after a timeout, else
                // where the last answer pointed.
                let (rotate, hint) = (p.rotate, cl.hint);
                if rotate {
                    let next = self.next_present(hint);
                    self.clients[c as usize].hint = next;
                }
                self.client_send(c);
            }
            _ => {}
        }
    }

    fn client_send(&mut self, c: u64) {
        let now = self.now;
        let cl = &mut self.clients[c as usize];
        let Some(p) = cl.pending.as_mut() else {
            return;
        };
        p.deadline = now + self.mix.client_timeout * TICK;
        p.rotate = true;
        let (cmd, mut node, deadline, read) = (p.cmd, cl.hint, p.deadline, p.read);
        if read && self.mix.read_anywhere > 0.0 && self.read_rng.chance(self.mix.read_anywhere) {
            let present = self.present_ids();
            node = present[self.read_rng.range(0, present.len() as u64 - 1) as usize];
        }
        let lost = self.faults_on && self.net_rng.chance(self.mix.drop);
        if !lost {
            let at = now + self.net_rng.range(self.mix.min_delay, self.mix.max_delay);
            self.schedule(at, Ev::Arrive { node, cmd, read });
        }
        self.schedule(deadline, Ev::Wake(c));
    }

    fn client_reply(&mut self, c: u64, reply: Reply) {
        let now = self.now;
        let next = self.next_present(self.clients[c as usize].hint);
        // A hint names a node that exists (a planted bug may have a node
        // follow a garbage peer's claimed sender).
        let total = self.total;
        let cl = &mut self.clients[c as usize];
        let Some(p) = cl.pending.as_mut() else {
            return;
        };
        match reply {
            Reply::Done { seq, slot, ret } if seq == p.cmd.seq => {
                self.history.complete(p.hist, now, ret);
                if let Some(slot) = slot {
                    self.acked.push((slot, p.cmd.encode()));
                }
                self.hash.mix(&[now, 5, c, seq]);
                cl.pending = None;
                self.trace(|| format!("client {c} completes #{seq} -> {ret:?}"));
                let at = now + self.rng.range(0, 3 * TICK);
                self.schedule(at, Ev::Wake(c));
            }
            Reply::Done { .. } => {}
            Reply::NotLeader(hint) => {
                cl.hint = hint.filter(|h| (1..=total).contains(h)).unwrap_or(next);
                p.deadline = now + TICK;
                p.rotate = false;
                self.schedule(now + TICK, Ev::Wake(c));
            }
            Reply::Busy => {
                p.deadline = now + 2 * TICK;
                p.rotate = false;
                self.schedule(now + 2 * TICK, Ev::Wake(c));
            }
        }
    }

    /// Restores every link and every stalled clock.
    fn heal(&mut self) {
        self.net.heal();
        for node in &mut self.nodes {
            if let Some(period) = node.stalled_period.take() {
                node.tick_period = period;
            }
        }
    }

    fn begin_liveness(&mut self) {
        self.faults_on = false;
        self.heal();
        self.trace(|| "LIVENESS: faults stop, every link heals, crashed nodes restart".to_string());
        self.hash.mix(&[self.now, 6]);
        for id in 1..=self.total {
            if self.node(id).raw.is_none() {
                self.start(id);
                self.drive(id);
            }
        }
    }

    fn liveness_failed(&mut self) {
        let pending = self.clients.iter().filter(|c| c.pending.is_some()).count();
        let applied: Vec<String> = (1..=self.total)
            .map(|id| {
                self.nodes[(id - 1) as usize]
                    .raw
                    .as_ref()
                    .map_or("down".to_string(), |r| {
                        format!("{}/{}", r.status().applied, r.status().committed)
                    })
            })
            .collect();
        self.checker.violations.push(format!(
            "liveness: not settled {} ticks after healing ({pending} clients waiting, applied/committed {applied:?})",
            self.opts.liveness_ticks
        ));
    }

    /// Checks after every event: leaders per ballot, and (once healed)
    /// whether the run has settled.
    fn check_step(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(raw) = &node.raw {
                let st = raw.status();
                if st.role == StateRole::Leader {
                    let id = i as u64 + 1;
                    self.checker.on_leader(id, st.promised);
                    if !st.voters.contains(&id) {
                        let v = format!("node {id} leads in {} though not a voter", st.promised);
                        self.checker.violations.push(v);
                    }
                }
            }
        }
        if self.faults_on || self.clients.iter().any(|c| c.pending.is_some()) {
            return;
        }
        // Every member of the final membership (as the leader knows it)
        // is up and has applied everything decided. Nodes removed, or
        // booted but never added, are not members.
        let members = self.final_members();
        let states: Vec<(u64, u64)> = members
            .iter()
            .filter_map(|&id| self.nodes[(id - 1) as usize].raw.as_ref())
            .map(|r| (r.status().applied, r.status().committed))
            .collect();
        // Every acknowledgement came from some node's apply: settled means
        // each member has applied at least as far as any node did.
        let settled = !members.is_empty()
            && states.len() == members.len()
            && states
                .iter()
                .all(|&(a, c)| a == c && a == states[0].0 && a >= self.max_applied);
        if settled {
            self.trace(|| format!("SETTLED at slot {}", states[0].0));
            self.done = true;
        }
    }

    /// Final checks (linearizability of the client history) and the outcome.
    pub fn finish(mut self) -> Outcome {
        // No acknowledged command is lost: its slot still holds it, and once
        // settled every node has applied it.
        let applied_min = self
            .final_members()
            .into_iter()
            .map(|id| {
                self.nodes[(id - 1) as usize]
                    .raw
                    .as_ref()
                    .map_or(0, |r| r.status().applied)
            })
            .min()
            .unwrap_or(0);
        for (slot, data) in &self.acked {
            let held = self.checker.chosen(*slot).is_some_and(|(_, v)| v == data);
            if !held {
                self.checker
                    .violations
                    .push(format!("acknowledged command at slot {slot} lost"));
            }
            if self.done && applied_min < *slot {
                self.checker
                    .violations
                    .push(format!("acknowledged slot {slot} not applied everywhere"));
            }
        }
        let mut undecided_keys = Vec::new();
        match check(&self.history, LIN_BUDGET) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { key, ops } => {
                self.checker.violations.push(format!(
                    "history not linearizable on key {key} ({} operations)",
                    ops.len()
                ));
            }
            Verdict::Undecided { key } => undecided_keys.push(key),
        }
        let completed = self.history.ops.iter().filter(|o| o.ret.is_some()).count();
        Outcome {
            seed: self.opts.seed,
            nodes: self.voters,
            learners: self.n - self.voters,
            steps: self.now / TICK,
            events: self.events,
            decided: self.checker.chosen_count(),
            ops: (self.history.len(), completed),
            elections: self.checker.leadership_count(),
            snapshots_installed: self.checker.installs,
            replaced: self.retired.len() as u64,
            violations: self.checker.violations,
            trace_hash: self.hash.value(),
            undecided_keys,
            mix: self.mix,
            host: self.host,
        }
    }
}

fn fault_word(f: &Fault) -> u64 {
    match *f {
        Fault::Crash { node, down } => 1 << 56 | node << 32 | down,
        Fault::Isolate(n) => 2 << 56 | n,
        Fault::Split(m) => 3 << 56 | m,
        Fault::OneWay { from, to } => 4 << 56 | from << 32 | to,
        Fault::CutPair(a, b) => 5 << 56 | a << 32 | b,
        Fault::Clog { from, to, ticks } => 6 << 56 | from << 40 | to << 32 | ticks,
        Fault::Heal => 7 << 56,
        Fault::Transfer(n) => 8 << 56 | n,
        Fault::Stall(n) => 9 << 56 | n,
        Fault::Campaign(n) => 10 << 56 | n,
    }
}
