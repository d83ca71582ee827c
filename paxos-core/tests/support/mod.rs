//! An in-memory cluster for scenario tests: nodes, durable `MemStorage`s, a
//! network with cut links, duplication and reordering, and invariant checks
//! on every `Ready` (same value per slot everywhere, contiguous apply,
//! promises never decreasing across restarts).
#![allow(dead_code)]

use bytes::Bytes;
use paxos_core::proto::{Ballot, ConfChange, ConfChangeType, ConfState, EntryKind, Message};
use paxos_core::{Config, MemStorage, Proposed, RawNode, Result, StateRole, Storage};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct Cluster {
    pub ids: Vec<u64>,
    pub nodes: BTreeMap<u64, RawNode<MemStorage>>,
    pub storages: BTreeMap<u64, MemStorage>,
    /// Normal commands applied by each node since its last restart.
    pub applied: BTreeMap<u64, Vec<Bytes>>,
    /// Last slot applied by each node since its last restart.
    pub applied_slot: BTreeMap<u64, u64>,
    /// The first value applied anywhere for each slot: every later apply must match.
    pub decided: BTreeMap<u64, (i32, Bytes)>,
    pub queue: VecDeque<Message>,
    pub cut: BTreeSet<(u64, u64)>,
    pub duplicate: bool,
    pub reorder: bool,
    rng: u64,
    /// The state digest after each slot, from the first node to apply it.
    pub digest_at: BTreeMap<u64, Digest>,
    /// Highest promise each node ever persisted.
    pub max_promised: BTreeMap<u64, Ballot>,
    pub delivered: u64,
    /// Confirmed reads per node: (index, ctx).
    pub reads: BTreeMap<u64, Vec<(u64, Bytes)>>,
    /// Per node: a digest of everything it applied (count, rolling hash).
    /// Unlike `applied` it survives snapshots in constant space.
    pub digest: BTreeMap<u64, Digest>,
    /// Keep every applied command and check every slot (off for long runs,
    /// which compare digests instead, in constant memory).
    pub keep_history: bool,
    /// Snapshots installed from the leader, per node.
    pub installed: BTreeMap<u64, u64>,
    /// Per node: the membership in effect at its applied slot (what a
    /// snapshot taken there records).
    pub conf: BTreeMap<u64, ConfState>,
    /// Nodes that joined after the start: the membership they boot with.
    pub boot_conf: BTreeMap<u64, ConfState>,
    tweak: fn(&mut Config),
    logger: slog::Logger,
}

impl Cluster {
    pub fn new(n: u64) -> Self {
        Self::with_config(n, |_| {})
    }

    pub fn with_config(n: u64, tweak: fn(&mut Config)) -> Self {
        let ids: Vec<u64> = (1..=n).collect();
        let mut c = Cluster {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            storages: BTreeMap::new(),
            applied: BTreeMap::new(),
            applied_slot: BTreeMap::new(),
            decided: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            duplicate: false,
            reorder: false,
            rng: 0x5eed,
            max_promised: BTreeMap::new(),
            digest_at: BTreeMap::new(),
            delivered: 0,
            reads: BTreeMap::new(),
            digest: BTreeMap::new(),
            keep_history: true,
            installed: BTreeMap::new(),
            conf: BTreeMap::new(),
            boot_conf: BTreeMap::new(),
            tweak,
            logger: slog::Logger::root(slog::Discard, slog::o!()),
        };
        for &id in &ids {
            c.storages.insert(id, MemStorage::new());
            c.start(id);
        }
        c
    }

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
            },
        };
        self.conf.insert(id, conf);
        let node = RawNode::new(&cfg, self.storages[&id].clone(), &self.logger)
            .expect("node starts from its storage");
        self.nodes.insert(id, node);
        self.applied.insert(id, applied);
        self.applied_slot.insert(id, slot);
        self.digest.insert(id, digest);
    }

    /// The application snapshots its state at its applied slot, and the
    /// storage discards every slot it covers but the last `keep`.
    pub fn compact(&mut self, id: u64, keep: u64) {
        let slot = self.applied_slot[&id];
        let data = encode_state(&self.digest[&id], &self.applied[&id], self.keep_history);
        let mut store = self.storages[&id].wl();
        store.create_snapshot(slot, self.conf[&id].clone(), data);
        store.compact(slot.saturating_sub(keep));
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
            },
        );
        self.storages.insert(id, MemStorage::new());
        self.start(id);
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

    /// Rebuilds the node from its storage alone; the application starts
    /// empty and re-applies from slot 1.
    pub fn restart(&mut self, id: u64) {
        assert!(!self.nodes.contains_key(&id), "node {id} is running");
        self.start(id);
    }

    pub fn node(&self, id: u64) -> &RawNode<MemStorage> {
        &self.nodes[&id]
    }

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

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Handles every pending `Ready` of every live node: persist, send, apply, advance.
    pub fn process_readies(&mut self) -> bool {
        let mut any = false;
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            while self.nodes[&id].has_ready() {
                any = true;
                let mut rd = self.nodes.get_mut(&id).expect("live").ready();
                let store = &self.storages[&id];
                if let Some(snap) = rd.take_snapshot() {
                    let slot = snap.metadata.as_ref().map_or(0, |m| m.slot);
                    assert!(
                        slot > self.applied_slot[&id],
                        "node {id}: snapshot at {slot} does not move past applied {}",
                        self.applied_slot[&id]
                    );
                    let (digest, applied) = decode_state(&snap.data);
                    if let Some(want) = self.digest_at.get(&slot) {
                        assert_eq!(*want, digest, "node {id}: snapshot at {slot} differs");
                    }
                    self.digest.insert(id, digest);
                    self.applied.insert(id, applied);
                    self.applied_slot.insert(id, slot);
                    let cs = snap.metadata.as_ref().and_then(|m| m.conf_state.clone());
                    self.conf
                        .insert(id, cs.expect("snapshots record their membership"));
                    *self.installed.entry(id).or_default() += 1;
                    store.wl().apply_snapshot(snap);
                }
                if let Some(cs) = rd.conf_state() {
                    store.wl().set_conf_state(cs.clone());
                }
                if let Some(hs) = rd.hard_state() {
                    let prev = self.max_promised.get(&id).copied().unwrap_or(Ballot::ZERO);
                    assert!(
                        hs.promised() >= prev,
                        "node {id}: promise went down from {prev} to {}",
                        hs.promised()
                    );
                    self.max_promised.insert(id, hs.promised());
                    store.wl().set_hard_state(*hs);
                }
                store.wl().store_entries(rd.entries());
                self.queue.extend(rd.take_messages());
                self.queue.extend(rd.take_persisted_messages());
                for r in rd.take_read_states() {
                    self.reads.entry(id).or_default().push((r.index, r.ctx));
                }
                for e in rd.take_committed_entries() {
                    let last = self.applied_slot[&id];
                    assert_eq!(e.slot, last + 1, "node {id} applied out of order");
                    self.applied_slot.insert(id, e.slot);
                    if let Some(cc) = e.conf_change() {
                        let cc = cc.expect("membership changes decode");
                        assert!(cc.result.is_some(), "changes carry their result");
                        // A void change (its base replaced first) changes nothing.
                        if let Some(cs) = cc.outcome(&self.conf[&id], e.slot) {
                            self.conf.insert(id, cs);
                        }
                    }
                    let digest = self.digest.get_mut(&id).expect("live");
                    digest.apply(&e.data);
                    let digest = *digest;
                    // Every node's state after each slot must agree; long runs
                    // keep only a window of these, in constant memory.
                    let want = *self.digest_at.entry(e.slot).or_insert(digest);
                    assert_eq!(
                        want, digest,
                        "node {id}: state after slot {} differs",
                        e.slot
                    );
                    if !self.keep_history {
                        while self.digest_at.len() > DIGEST_WINDOW {
                            self.digest_at.pop_first();
                        }
                        continue;
                    }
                    let value = (e.kind, e.data.clone());
                    let first = self.decided.entry(e.slot).or_insert_with(|| value.clone());
                    assert_eq!(
                        *first, value,
                        "slot {} decided twice with different values",
                        e.slot
                    );
                    if e.kind == EntryKind::Normal as i32 {
                        self.applied.get_mut(&id).expect("live").push(e.data);
                    }
                }
                self.nodes.get_mut(&id).expect("live").advance(rd);
            }
        }
        any
    }

    /// Delivers every queued message (and those they cause, once).
    pub fn deliver(&mut self) -> bool {
        let mut batch: Vec<Message> = self.queue.drain(..).collect();
        if batch.is_empty() {
            return false;
        }
        if self.reorder {
            for i in (1..batch.len()).rev() {
                let j = (self.next_rand() % (i as u64 + 1)) as usize;
                batch.swap(i, j);
            }
        }
        for m in batch {
            if self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let copies = if self.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                if let Some(node) = self.nodes.get_mut(&m.to) {
                    self.delivered += 1;
                    node.step(m.clone())
                        .expect("a cluster message is well formed");
                }
            }
        }
        true
    }

    /// Runs until no node has anything to do and no message is in flight.
    pub fn stabilize(&mut self) {
        for _ in 0..100_000 {
            let a = self.process_readies();
            let b = self.deliver();
            if !a && !b {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    pub fn tick(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.stabilize();
        }
    }

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

    pub fn propose(&mut self, id: u64, data: impl Into<Bytes>) -> Result<Proposed> {
        self.nodes.get_mut(&id).expect("live").propose(data)
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

    pub fn applied_of(&self, id: u64) -> &[Bytes] {
        &self.applied[&id]
    }
}

/// Slots whose post-apply digest long runs remember.
const DIGEST_WINDOW: usize = 1 << 16;

/// A replica's state in constant space: how many slots it applied and a
/// rolling hash over their payloads (FNV-1a, order-sensitive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub count: u64,
    pub hash: u64,
}

impl Digest {
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
            out.extend_from_slice(&(a.len() as u32).to_le_bytes());
            out.extend_from_slice(a);
        }
    }
    Bytes::from(out)
}

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

pub fn cmd(i: u64) -> Bytes {
    Bytes::from(format!("cmd-{i}"))
}
