//! A scripted in-memory cluster for scenario tests, judged by the
//! simulator's [`Checker`].
//!
//! Where [`crate::sim`] draws every event from a seed, a [`Cluster`] does
//! exactly what a test tells it, one step at a time: tick, deliver the
//! messages in flight, crash, restart, cut links, compact, change the
//! membership. Each node's `Ready` is persisted through the simulator's own
//! persist path ([`host::persist`]), and the checker sees every write,
//! message, apply, snapshot, install, start and leadership, exactly as it
//! does in a simulation. After every step the cluster fails the test if the
//! checker found a violation (see [`Cluster::fail_fast`]).
//!
//! The application on each node keeps the commands it applied and a
//! [`Digest`] of everything it applied, and snapshots both in a small format
//! of its own (see [`Cluster::compact`]): scenario tests propose plain
//! bytes, not the simulator's key-value commands.
//!
//! ```
//! use paxos_sim::scenario::{cmd, Cluster};
//!
//! let mut c = Cluster::new(3);
//! c.elect(1);
//! c.propose_cmds(1, 0..10);
//! c.stabilize();
//! c.tick(3);
//! assert_eq!(c.applied_of(3).len(), 10);
//! assert_eq!(c.applied_of(3)[0], cmd(0));
//! ```

use crate::checker::Checker;
use crate::disk::Reached;
use crate::host;
use bytes::Bytes;
use paxos_core::proto::{Ballot, ConfChange, ConfChangeType, ConfState, Entry, Message, Snapshot};
use paxos_core::{
    Config, MemStorage, Proposed, RawNode, Ready, Result, SplitMix64, StateRole, Storage,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Readies one node may hand out in a row (without new input) before the
/// cluster calls it spinning.
const MAX_READIES_IN_A_ROW: usize = 1_000;

/// Rounds of deliveries [`Cluster::stabilize`] waits for quiet.
const MAX_SETTLE_ROUNDS: usize = 100_000;

/// How a node's storage is built over its durable [`MemStorage`] (see
/// [`Cluster::with_storage`]).
type Wrap<S> = std::rc::Rc<dyn Fn(&MemStorage) -> S>;

/// How a test adjusts every node's configuration.
type Tweak = std::rc::Rc<dyn Fn(&mut Config)>;

/// An in-memory cluster: nodes, their durable storages, an application per
/// node, and a network with cut links, duplication and reordering.
///
/// Nodes read through `S` (by default the [`MemStorage`] itself); the
/// cluster writes every `Ready` to the `MemStorage` underneath.
pub struct Cluster<S: Storage = MemStorage> {
    /// The nodes the cluster started with, `1..=n`.
    pub ids: Vec<u64>,
    /// The running nodes (a crashed node is absent until restarted).
    pub nodes: BTreeMap<u64, RawNode<S>>,
    /// Every node's durable storage; it survives crashes.
    pub storages: BTreeMap<u64, MemStorage>,
    /// Normal commands applied by each node (restored from its snapshot at
    /// a restart, so the whole history while [`Cluster::keep_history`]).
    pub applied: BTreeMap<u64, Vec<Bytes>>,
    /// Last slot applied by each node.
    pub applied_slot: BTreeMap<u64, u64>,
    /// Messages sent and not yet delivered.
    pub queue: VecDeque<Message>,
    /// Cut links, as (from, to): messages on them are dropped.
    pub cut: BTreeSet<(u64, u64)>,
    /// Every delivered message arrives twice.
    pub duplicate: bool,
    /// Each batch of deliveries is shuffled.
    pub reorder: bool,
    /// Draws the shuffles.
    rng: SplitMix64,
    /// Highest promise each node persisted (the checker judges that it
    /// never goes down).
    pub max_promised: BTreeMap<u64, Ballot>,
    /// Messages delivered so far (duplicates counted).
    pub delivered: u64,
    /// Confirmed reads per node: (index, ctx).
    pub reads: BTreeMap<u64, Vec<(u64, Bytes)>>,
    /// Per node: a digest of everything it applied. Unlike
    /// [`Cluster::applied`] it survives snapshots in constant space.
    pub digest: BTreeMap<u64, Digest>,
    /// Keep every applied command, in [`Cluster::applied`] and in
    /// snapshots. Long runs turn it off: snapshots then hold the digest
    /// alone, and the checker forgets every slot all nodes' snapshots
    /// cover, so memory stays constant.
    pub keep_history: bool,
    /// Snapshots installed from the leader, per node.
    pub installed: BTreeMap<u64, u64>,
    /// Per node: the membership in effect at its applied slot (what a
    /// snapshot taken there records).
    pub conf: BTreeMap<u64, ConfState>,
    /// Nodes that joined after the start: the membership they boot with.
    pub boot_conf: BTreeMap<u64, ConfState>,
    /// The simulator's checker: sees every persist, send, apply, snapshot,
    /// install, start and leadership.
    pub checker: Checker,
    /// Per node: the next sync fails, leaving this prefix on disk (see
    /// [`Cluster::fail_next_sync`]).
    pub failing_syncs: BTreeMap<u64, Reached>,
    /// Panic at the end of any step after which the checker holds a
    /// violation (on by default). Off, violations only accumulate in
    /// [`Checker::violations`], for tests that expect some.
    pub fail_fast: bool,
    tweak: Tweak,
    wrap: Wrap<S>,
    logger: slog::Logger,
}

impl<S: Storage> std::fmt::Debug for Cluster<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("ids", &self.ids)
            .field("running", &self.nodes.keys().collect::<Vec<_>>())
            .field("applied_slot", &self.applied_slot)
            .field("queued", &self.queue.len())
            .field("cut", &self.cut)
            .field("violations", &self.checker.violations())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// `n` nodes, `1..=n`, all voters, with the default configuration.
    pub fn new(n: u64) -> Self {
        Self::with_config(n, |_| {})
    }

    /// `n` nodes whose configuration `tweak` adjusts.
    pub fn with_config(n: u64, tweak: impl Fn(&mut Config) + 'static) -> Self {
        Self::with_storage(n, tweak, MemStorage::clone)
    }
}

impl<S: Storage> Cluster<S> {
    /// `n` nodes that read their durable storage through `wrap` (a storage
    /// that fails on demand, say); the cluster persists to the
    /// [`MemStorage`] underneath.
    pub fn with_storage(
        n: u64,
        tweak: impl Fn(&mut Config) + 'static,
        wrap: impl Fn(&MemStorage) -> S + 'static,
    ) -> Self {
        let ids: Vec<u64> = (1..=n).collect();
        let mut c = Cluster {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            storages: BTreeMap::new(),
            applied: BTreeMap::new(),
            applied_slot: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            duplicate: false,
            reorder: false,
            rng: SplitMix64::new(0x5eed),
            max_promised: BTreeMap::new(),
            delivered: 0,
            reads: BTreeMap::new(),
            digest: BTreeMap::new(),
            keep_history: true,
            installed: BTreeMap::new(),
            conf: BTreeMap::new(),
            boot_conf: BTreeMap::new(),
            checker: Checker::with_quorums(ids.clone(), {
                // The sizes the nodes start with, as `config` gives them.
                let mut cfg = Config::new(1, ids.clone());
                tweak(&mut cfg);
                (cfg.phase1_quorum, cfg.phase2_quorum)
            }),
            failing_syncs: BTreeMap::new(),
            fail_fast: true,
            tweak: std::rc::Rc::new(tweak),
            wrap: std::rc::Rc::new(wrap),
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        };
        for &id in &ids {
            c.storages.insert(id, MemStorage::new());
            c.start(id);
        }
        c.checked();
        c
    }

    /// An independent copy of the cluster as it is now: every storage
    /// copied deep, every running node forked onto its copy (see
    /// [`RawNode::fork`]), the network, the applications and the checker
    /// cloned. Call it between steps, with no `Ready` outstanding.
    pub fn fork(&self) -> Self {
        let storages: BTreeMap<u64, MemStorage> = self
            .storages
            .iter()
            .map(|(&id, s)| (id, s.deep_copy()))
            .collect();
        // Inserted in order rather than collected: collecting sorts a
        // vector of nodes first, which moved each (large) node twice more.
        let mut nodes = BTreeMap::new();
        for (&id, n) in &self.nodes {
            nodes.insert(id, n.fork((self.wrap)(&storages[&id])));
        }
        Cluster {
            ids: self.ids.clone(),
            nodes,
            storages,
            applied: self.applied.clone(),
            applied_slot: self.applied_slot.clone(),
            queue: self.queue.clone(),
            cut: self.cut.clone(),
            duplicate: self.duplicate,
            reorder: self.reorder,
            rng: self.rng.clone(),
            max_promised: self.max_promised.clone(),
            delivered: self.delivered,
            reads: self.reads.clone(),
            digest: self.digest.clone(),
            keep_history: self.keep_history,
            installed: self.installed.clone(),
            conf: self.conf.clone(),
            boot_conf: self.boot_conf.clone(),
            checker: self.checker.clone(),
            failing_syncs: self.failing_syncs.clone(),
            fail_fast: self.fail_fast,
            tweak: self.tweak.clone(),
            wrap: self.wrap.clone(),
            logger: self.logger.clone(),
        }
    }

    /// The configuration node `id` starts with: the cluster's membership
    /// (or the one it joined with), seed 42, one command per slot, then the
    /// test's tweak.
    pub fn config(&self, id: u64) -> Config {
        let mut cfg = match self.boot_conf.get(&id) {
            Some(cs) => {
                let mut cfg = Config::new(id, cs.voters.clone());
                cfg.learners = cs.learners.clone();
                cfg
            }
            None => Config::new(id, self.ids.clone()),
        };
        cfg.seed = 42;
        // Scripts count slots: a slot per command, unless the test's tweak
        // turns instance batching on (`tests/scenario_batching.rs`).
        cfg.max_batch_commands = 1;
        (self.tweak)(&mut cfg);
        cfg
    }

    /// Starts the node from its storage: the application restores the
    /// storage's snapshot (if any), then re-applies what follows it.
    fn start(&mut self, id: u64) {
        let snap = self.storages[&id].snapshot().expect("snapshot");
        let slot = snap.metadata.as_ref().map_or(0, |m| m.slot);
        let (digest, applied) = decode_state(&snap.data);
        let mut cfg = self.config(id);
        cfg.applied = slot;
        let conf = match snap.metadata.and_then(|m| m.conf_state) {
            Some(cs) if slot > 0 => cs,
            _ => ConfState {
                voters: cfg.voters.clone(),
                learners: cfg.learners.clone(),
                since: 0,
                ..Default::default()
            },
        };
        self.conf.insert(id, conf);
        let storage = (self.wrap)(&self.storages[&id]);
        let node = RawNode::new(&cfg, storage, &self.logger).expect("node starts from its storage");
        self.checker.on_start(id, node.status().promised, slot);
        self.nodes.insert(id, node);
        self.applied.insert(id, applied);
        self.applied_slot.insert(id, slot);
        self.digest.insert(id, digest);
    }

    /// The application snapshots its state at its applied slot, and the
    /// storage discards every slot it covers but the last `keep`.
    ///
    /// Snapshot data: the [`Digest`] (count, then hash, little-endian), then,
    /// while [`Cluster::keep_history`], every applied command, each prefixed
    /// with its length as a little-endian `u32`.
    pub fn compact(&mut self, id: u64, keep: u64) {
        let slot = self.applied_slot[&id];
        let data = encode_state(&self.digest[&id], &self.applied[&id], self.keep_history);
        {
            let mut store = self.storages[&id].wl();
            store.create_snapshot(slot, self.conf[&id].clone(), data.clone());
            store.compact(slot.saturating_sub(keep));
        }
        self.checker.on_snapshot(id, slot, &data);
        if !self.keep_history {
            let covered = self.storages.values().map(|s| s.rl().snapshot_slot()).min();
            self.checker.forget_below(covered.unwrap_or(0));
        }
        self.checked();
    }

    /// Starts a brand-new node with empty storage that boots believing in
    /// `voters` with itself a learner (it learns the real membership from
    /// the leader's snapshot and log).
    pub fn add_node(&mut self, id: u64, voters: &[u64]) {
        self.boot_conf.insert(
            id,
            ConfState {
                voters: voters.to_vec(),
                learners: vec![id],
                since: 0,
                ..Default::default()
            },
        );
        self.storages.insert(id, MemStorage::new());
        self.start(id);
        self.checked();
    }

    /// Proposes a membership change at `leader` and runs until it is decided.
    pub fn change(&mut self, leader: u64, t: ConfChangeType, node: u64) {
        let cc = ConfChange {
            change_type: t as i32,
            node_id: node,
            ..ConfChange::default()
        };
        let slot = self
            .nodes
            .get_mut(&leader)
            .expect("live")
            .propose_conf_change(cc)
            .unwrap_or_else(|e| panic!("{t:?} {node} refused: {e}"));
        self.stabilize();
        assert!(
            self.node(leader).status().committed >= slot,
            "{t:?} {node} at slot {slot} not decided"
        );
    }

    /// Drops the node and everything it held in memory; storage survives.
    pub fn crash(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.queue.retain(|m| m.to != id);
    }

    /// Rebuilds the node from its storage alone; the application restores
    /// the storage's snapshot and re-applies what follows it.
    pub fn restart(&mut self, id: u64) {
        assert!(!self.nodes.contains_key(&id), "node {id} is running");
        self.start(id);
        self.checked();
    }

    /// The running node `id`.
    pub fn node(&self, id: u64) -> &RawNode<S> {
        &self.nodes[&id]
    }

    /// Cuts every link between `id` and the cluster's original nodes.
    pub fn isolate(&mut self, id: u64) {
        for &other in &self.ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Cuts every link between `a` and `b` (both directions).
    pub fn partition(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Handles every pending `Ready` of every running node: persist, send,
    /// apply, advance.
    pub fn process_readies(&mut self) -> bool {
        let mut any = false;
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let mut readies = 0;
            while self.nodes[&id].has_ready() {
                readies += 1;
                assert!(
                    readies <= MAX_READIES_IN_A_ROW,
                    "node {id} spins on has_ready"
                );
                any = true;
                let mut rd = self.nodes.get_mut(&id).expect("live").ready();
                self.handle_ready(id, &mut rd);
                // A failed sync stopped the node: nothing to advance.
                let Some(node) = self.nodes.get_mut(&id) else {
                    break;
                };
                node.advance(rd);
            }
        }
        self.checked();
        any
    }

    /// The next sync of node `id` fails, leaving `reached` on disk: the
    /// host then stops the node (rule D4) until [`Cluster::restart`].
    pub fn fail_next_sync(&mut self, id: u64, reached: Reached) {
        self.failing_syncs.insert(id, reached);
    }

    /// Does what a host does with one `Ready` of node `id` before advancing
    /// it: persists it (through [`host::persist`]), queues its messages,
    /// records its confirmed reads, installs its snapshot and applies its
    /// decided entries. Returns the entries applied; the caller advances.
    /// If the sync fails (see [`Cluster::fail_next_sync`]) the node is
    /// stopped instead, with nothing of the `Ready` sent but its
    /// `messages`, and nothing applied: the caller must not advance.
    pub fn handle_ready(&mut self, id: u64, rd: &mut Ready) -> Vec<Entry> {
        let snapshot = rd.take_snapshot();
        for m in rd.take_messages() {
            self.checker.on_send(&m);
            self.queue.push_back(m);
        }
        let failure = self.failing_syncs.remove(&id);
        let synced = host::persist(
            &self.storages[&id],
            &mut self.checker,
            id,
            rd,
            snapshot.as_ref(),
            failure,
        );
        if synced.is_err() {
            self.crash(id);
            return Vec::new();
        }
        if let Some(hs) = rd.hard_state() {
            let max = self.max_promised.entry(id).or_insert(Ballot::ZERO);
            *max = (*max).max(hs.promised());
        }
        for m in rd.take_persisted_messages() {
            self.checker.on_send(&m);
            self.queue.push_back(m);
        }
        if let Some(snap) = snapshot {
            self.install(id, &snap);
        }
        self.reveal_early(id, rd)
    }

    /// Keeps the reads a `Ready` confirmed and applies its decided entries,
    /// which a host may do before persisting it (rule D5); returns the
    /// entries. Its snapshot, if any, must be installed first.
    pub fn reveal_early(&mut self, id: u64, rd: &mut Ready) -> Vec<Entry> {
        for r in rd.take_read_states() {
            self.reads.entry(id).or_default().push((r.index, r.ctx));
        }
        let entries = rd.take_committed_entries();
        for e in &entries {
            self.apply(id, e);
        }
        entries
    }

    /// The application replaces its state with a snapshot from the leader.
    fn install(&mut self, id: u64, snap: &Snapshot) {
        let slot = snap.metadata.as_ref().map_or(0, |m| m.slot);
        self.checker.on_install(id, slot, &snap.data);
        let (digest, applied) = decode_state(&snap.data);
        self.digest.insert(id, digest);
        self.applied.insert(id, applied);
        self.applied_slot.insert(id, slot);
        match snap.metadata.as_ref().and_then(|m| m.conf_state.clone()) {
            Some(cs) => {
                self.conf.insert(id, cs);
            }
            None => self.checker.snapshot_without_membership(id, slot),
        }
        *self.installed.entry(id).or_default() += 1;
    }

    /// The application applies one decided entry.
    fn apply(&mut self, id: u64, e: &Entry) {
        self.checker.on_apply(id, e);
        self.applied_slot.insert(id, e.slot);
        if let Some(cc) = e.conf_change() {
            match cc.ok().filter(|cc| cc.result.is_some()) {
                // A void change (its base replaced first) changes nothing.
                Some(cc) => {
                    if let Some(cs) = cc.outcome(&self.conf[&id], e.slot) {
                        self.conf.insert(id, cs);
                    }
                }
                None => self.checker.garbled_change_applied(id, e.slot),
            }
        }
        self.digest.get_mut(&id).expect("live").apply(&e.data);
        if self.keep_history {
            // The checker saw a malformed batch above.
            let commands = e.commands().into_iter().flatten().map(|c| c.data);
            self.applied.get_mut(&id).expect("live").extend(commands);
        }
    }

    /// Delivers every queued message (and those they cause, once).
    pub fn deliver(&mut self) -> bool {
        let mut batch: Vec<Message> = self.queue.drain(..).collect();
        if batch.is_empty() {
            return false;
        }
        if self.reorder {
            for i in (1..batch.len()).rev() {
                let j = self.rng.range_inclusive(0, i as u64) as usize;
                batch.swap(i, j);
            }
        }
        let copies = if self.duplicate { 2 } else { 1 };
        for m in batch {
            self.arrive(&m, copies);
        }
        self.checked();
        true
    }

    /// Delivers the `i`th message in flight, `copies` times (a duplicate
    /// arrives twice), unless its link is cut; false when there is no
    /// `i`th message. The caller processes the `Ready`s it causes.
    pub fn deliver_one(&mut self, i: usize, copies: u32) -> bool {
        let Some(m) = self.queue.remove(i) else {
            return false;
        };
        self.arrive(&m, copies);
        self.checked();
        true
    }

    /// `copies` of `m` reach its receiver, unless the link is cut or the
    /// receiver is down; a refusal is the checker's to judge.
    fn arrive(&mut self, m: &Message, copies: u32) {
        if self.cut.contains(&(m.from, m.to)) {
            return;
        }
        for _ in 0..copies {
            if let Some(node) = self.nodes.get_mut(&m.to) {
                self.delivered += 1;
                match node.step(m.clone()) {
                    Ok(()) => self.checker.on_deliver(m),
                    Err(e) => self.checker.refused_cluster_message(m.to, e),
                }
            }
        }
    }

    /// Loses the `i`th message in flight; false when there is none.
    pub fn drop_one(&mut self, i: usize) -> bool {
        self.queue.remove(i).is_some()
    }

    /// Runs until no node has anything to do and no message is in flight.
    pub fn stabilize(&mut self) {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let a = self.process_readies();
            let b = self.deliver();
            if !a && !b {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    /// Ticks every running node `ticks` times, settling after each.
    pub fn tick(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.stabilize();
        }
    }

    /// The running nodes that believe they lead.
    pub fn leaders(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.status().role == StateRole::Leader)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ticks until some node among `among` leads, at most `max_ticks`.
    pub fn await_leader(&mut self, among: &[u64], max_ticks: u32) -> u64 {
        for _ in 0..max_ticks {
            if let Some(&l) = self.leaders().iter().find(|l| among.contains(l)) {
                return l;
            }
            self.tick(1);
        }
        panic!("no leader among {among:?} within {max_ticks} ticks");
    }

    /// Makes `id` campaign and settles; it must win.
    pub fn elect(&mut self, id: u64) {
        self.nodes
            .get_mut(&id)
            .expect("live")
            .campaign()
            .expect("voter");
        self.stabilize();
        assert_eq!(
            self.node(id).status().role,
            StateRole::Leader,
            "node {id} failed to win"
        );
    }

    /// Proposes `data` at node `id` (the checker learns it was proposed).
    pub fn propose(&mut self, id: u64, data: impl Into<Bytes>) -> Result<Proposed> {
        let data = data.into();
        self.checker.on_propose_bytes(&data);
        self.nodes.get_mut(&id).expect("live").propose(data)
    }

    /// [`Cluster::propose`] through `RawNode::propose_slice`: the command
    /// stays the caller's.
    pub fn propose_slice(&mut self, id: u64, data: &[u8]) -> Result<Proposed> {
        self.checker.on_propose_bytes(&Bytes::copy_from_slice(data));
        self.nodes.get_mut(&id).expect("live").propose_slice(data)
    }

    /// Proposes `cmd(i)` for every i in `range` at `id`; each must take a slot.
    pub fn propose_cmds(&mut self, id: u64, range: std::ops::Range<u64>) {
        for i in range {
            match self.propose(id, cmd(i)) {
                Ok(Proposed::At(_)) => {}
                other => panic!("node {id} refused command {i}: {other:?}"),
            }
        }
    }

    /// The normal commands node `id` applied, in order.
    pub fn applied_of(&self, id: u64) -> &[Bytes] {
        &self.applied[&id]
    }

    /// Per slot up to the highest any node applied: the value the checker
    /// saw chosen there, as (entry kind, data).
    pub fn decided(&self) -> BTreeMap<u64, (i32, Bytes)> {
        let last = self.applied_slot.values().copied().max().unwrap_or(0);
        (1..=last)
            .filter_map(|s| self.checker.chosen(s).map(|v| (s, v.clone())))
            .collect()
    }

    /// Panics if the checker found a violation.
    pub fn assert_clean(&self) {
        assert!(
            self.checker.violations().is_empty(),
            "the checker found violations: {:#?}",
            self.checker.violations()
        );
    }

    /// The end of every step: shows the leaders to the checker, then fails
    /// the test on any violation (with [`Cluster::fail_fast`]).
    fn checked(&mut self) {
        for (&id, node) in &self.nodes {
            let st = node.status();
            if st.role == StateRole::Leader {
                self.checker.on_leader(id, st.promised);
            }
        }
        if self.fail_fast {
            self.assert_clean();
        }
    }
}

/// A replica's state in constant space: how many slots it applied and a
/// rolling hash over their payloads (FNV-1a, order-sensitive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    /// Slots applied.
    pub count: u64,
    /// The rolling hash after the last of them.
    pub hash: u64,
}

impl Digest {
    /// Folds one applied slot's payload in.
    pub fn apply(&mut self, data: &[u8]) {
        let mut h = self.hash ^ 0xcbf2_9ce4_8422_2325;
        for &b in data.iter().chain(&self.count.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.count += 1;
        self.hash = h;
    }
}

/// Snapshot data: the digest, then (optionally) every applied command,
/// each length-prefixed.
fn encode_state(d: &Digest, applied: &[Bytes], with_history: bool) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(&d.count.to_le_bytes());
    out.extend_from_slice(&d.hash.to_le_bytes());
    if with_history {
        for a in applied {
            let len = u32::try_from(a.len()).expect("a command fits a u32 length");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(a);
        }
    }
    Bytes::from(out)
}

/// The digest and commands `encode_state` wrote; empty for no data.
fn decode_state(data: &[u8]) -> (Digest, Vec<Bytes>) {
    if data.len() < 16 {
        return (Digest::default(), Vec::new());
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
    let digest = Digest {
        count: word(0),
        hash: word(8),
    };
    let mut applied = Vec::new();
    let mut rest = &data[16..];
    while rest.len() >= 4 {
        let n = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        applied.push(Bytes::copy_from_slice(&rest[4..4 + n]));
        rest = &rest[4 + n..];
    }
    (digest, applied)
}

/// The `i`th test command: `cmd-{i}`.
pub fn cmd(i: u64) -> Bytes {
    Bytes::from(format!("cmd-{i}"))
}
