//! The explored world: a [`Cluster`] driven by one [`Action`] at a time,
//! with the [`Observer`] and what is left of each budget, and the
//! fingerprint by which equal states are merged.

use super::action::Action;
use super::hasher::Fingerprinter;
use super::observe::{Before, Observer};
use super::Bounds;
use crate::scenario::Cluster;
use paxos_core::proto::{Ballot, Body, ConfChange, ConfChangeType, Message, Prepare, ProstMessage};
use paxos_core::{Error, PlantedBug, Ready, StateRole};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

/// The explored world: the cluster, the observer, and what is left of
/// each budget.
pub(super) struct World {
    pub(super) cluster: Cluster,
    pub(super) left: Bounds,
    /// Values proposed so far (the next one is new).
    proposed: u64,
    obs: Observer,
    /// Membership changes are explored: a reply from a node the receiver
    /// no longer counts is then refused by design, not a violation.
    removals: bool,
    /// Per node: a hash of its state and storage, as of the last
    /// fingerprint. An action changes only the nodes it drives (the kind
    /// host leaves no `Ready` pending anywhere else), so only those are
    /// hashed again: most of a fingerprint's cost is the nodes' state.
    hashes: BTreeMap<u64, u64>,
    /// Nodes driven since their hash was taken.
    dirty: BTreeSet<u64>,
    /// Lagging hosts (see [`Action::Lag`]) and the `Ready`s each holds,
    /// oldest first.
    held: BTreeMap<u64, Vec<Ready>>,
}

/// `Ready`s a lagging host may hold before its node counts as spinning.
const MAX_HELD: usize = 1_000;

impl World {
    pub(super) fn new(bounds: &Bounds, bug: Option<PlantedBug>) -> World {
        let election_ticks = bounds.election_ticks.max(2);
        let (lease, q1, q2) = (bounds.lease_ticks, bounds.phase1, bounds.phase2);
        let max_msg_entries = bounds.max_msg_entries;
        let mut cluster = Cluster::with_config(bounds.nodes, move |cfg| {
            cfg.election_ticks = election_ticks;
            // One heartbeat round per election timeout: a wait sends one
            // round, not a flood of them.
            cfg.heartbeat_ticks = (election_ticks - 1).max(1);
            cfg.read_lease_ticks = lease;
            cfg.phase1_quorum = q1;
            cfg.phase2_quorum = q2;
            cfg.planted_bug = bug;
            if let Some(n) = max_msg_entries {
                cfg.max_msg_entries = n;
            }
        });
        cluster.fail_fast = false;
        World {
            cluster,
            left: bounds.clone(),
            proposed: 0,
            obs: Observer::default(),
            removals: bounds.removals > 0,
            hashes: BTreeMap::new(),
            dirty: (1..=bounds.nodes).collect(),
            held: BTreeMap::new(),
        }
    }

    /// An independent copy of this world (see [`Cluster::fork`]).
    pub(super) fn fork(&self) -> World {
        World {
            cluster: self.cluster.fork(),
            left: self.left.clone(),
            proposed: self.proposed,
            obs: self.obs.clone(),
            removals: self.removals,
            hashes: self.hashes.clone(),
            dirty: self.dirty.clone(),
            held: self
                .held
                .iter()
                .map(|(&id, rds)| (id, rds.iter().map(Ready::fork).collect()))
                .collect(),
        }
    }

    /// Replays `trace` from the start.
    pub(super) fn replay(bounds: &Bounds, bug: Option<PlantedBug>, trace: &[Action]) -> World {
        let mut w = World::new(bounds, bug);
        for &a in trace {
            w.apply(a);
        }
        w
    }

    /// How many `Ready`s node `id`'s host holds, or `None` when it does
    /// not lag.
    #[cfg(test)]
    pub(super) fn held_readys(&self, id: u64) -> Option<usize> {
        self.held.get(&id).map(Vec::len)
    }

    /// The actions enabled here, one per distinct outcome.
    pub(super) fn enabled(&self) -> Vec<Action> {
        let mut out = Vec::new();
        let c = &self.cluster;
        let mut seen = HashSet::new();
        let mut links = HashSet::new();
        for (i, m) in c.queue.iter().enumerate() {
            // Over FIFO links only each link's oldest message can move, but
            // for a reordering delivery.
            let head = links.insert((m.from, m.to));
            if self.left.fifo && !head {
                if self.left.reorders > 0 && seen.insert(m) {
                    out.push(Action::Deliver(i));
                }
                continue;
            }
            // Identical copies in flight have identical futures.
            if !seen.insert(m) {
                continue;
            }
            out.push(Action::Deliver(i));
            if self.left.drops > 0 {
                out.push(Action::Drop(i));
            }
            if self.left.duplicates > 0 {
                out.push(Action::Duplicate(i));
            }
        }
        if self.left.waits > 0 && !c.nodes.is_empty() {
            out.push(Action::Wait);
        }
        for id in 1..=self.left.nodes {
            let Some(node) = c.nodes.get(&id) else {
                out.push(Action::Restart(id));
                continue;
            };
            let st = node.status();
            let leads = st.role == StateRole::Leader;
            if self.left.ticks > 0 {
                out.push(Action::Tick(id));
            }
            if self.left.campaigns > 0 && !leads {
                out.push(Action::Campaign(id));
            }
            if leads {
                if self.left.proposals > 0 {
                    out.push(Action::Propose(id));
                }
                if self.left.reads > 0 {
                    out.push(Action::Read(id));
                }
                for &v in &st.voters {
                    if self.left.transfers > 0 && v != id {
                        out.push(Action::Transfer(id, v));
                    }
                    if self.left.removals > 0 {
                        out.push(Action::Remove(id, v));
                    }
                }
            }
            if self.left.forgeries > 0 {
                out.push(Action::Forge(id));
            }
            match self.held.get(&id) {
                Some(rds) if !rds.is_empty() => out.push(Action::Flush(id)),
                Some(_) => {}
                None if self.left.lags > 0 => out.push(Action::Lag(id)),
                None => {}
            }
            // Something applied since the last snapshot to compact.
            if self.left.compactions > 0
                && c.applied_slot.get(&id).copied().unwrap_or(0)
                    > c.storages[&id].rl().snapshot_slot()
            {
                out.push(Action::Compact(id));
            }
            if self.left.crashes > 0 {
                out.push(Action::Crash(id));
            }
        }
        out
    }

    /// Whether `a` is enabled here: one of [`World::enabled`], or a
    /// delivery, drop or duplication of a copy of a message it names.
    pub(super) fn allows(&self, a: Action) -> bool {
        let enabled = self.enabled();
        if enabled.contains(&a) {
            return true;
        }
        let q = &self.cluster.queue;
        let same = |i: usize, j: usize| q.get(i).is_some() && q.get(i) == q.get(j);
        enabled.iter().any(|&e| match (a, e) {
            (Action::Deliver(i), Action::Deliver(j))
            | (Action::Drop(i), Action::Drop(j))
            | (Action::Duplicate(i), Action::Duplicate(j)) => same(i, j),
            _ => false,
        })
    }

    /// Takes one action, then lets every node's host handle its `Ready`s,
    /// and has the observer judge what they sent.
    pub(super) fn apply(&mut self, a: Action) {
        if a == Action::Wait {
            return self.wait();
        }
        let c = &mut self.cluster;
        // The node this action drives, as it was before.
        let driven = match a {
            Action::Deliver(i) | Action::Duplicate(i) => c.queue.get(i).map(|m| m.to),
            Action::Tick(id)
            | Action::Campaign(id)
            | Action::Propose(id)
            | Action::Read(id)
            | Action::Transfer(id, _)
            | Action::Remove(id, _)
            | Action::Forge(id)
            | Action::Lag(id)
            | Action::Flush(id)
            | Action::Compact(id) => Some(id),
            Action::Drop(_) | Action::Wait | Action::Crash(_) | Action::Restart(_) => None,
        };
        match a {
            Action::Crash(id) | Action::Restart(id) => self.dirty.insert(id),
            _ => driven.is_some_and(|id| self.dirty.insert(id)),
        };
        let before: BTreeMap<u64, Before> = driven
            .and_then(|id| Some((id, Observer::before(c, id)?)))
            .into_iter()
            .collect();
        let mut exempt = None;
        match a {
            Action::Deliver(i) | Action::Duplicate(i) => {
                let copies = if matches!(a, Action::Duplicate(_)) {
                    self.left.duplicates = self.left.duplicates.saturating_sub(1);
                    2
                } else {
                    1
                };
                let overtakes = self.left.fifo
                    && c.queue.get(i).is_some_and(|m| {
                        c.queue
                            .iter()
                            .take(i)
                            .any(|o| (o.from, o.to) == (m.from, m.to))
                    });
                if overtakes {
                    self.left.reorders = self.left.reorders.saturating_sub(1);
                }
                if let Some(m) = c.queue.remove(i) {
                    if let Some(&b) = before.get(&m.to) {
                        if self.obs.exempt(m.to, b, &m) {
                            exempt = Some(m.from);
                        }
                        for _ in 0..copies {
                            let Some(node) = c.nodes.get_mut(&m.to) else {
                                break;
                            };
                            match node.step(m.clone()) {
                                Ok(()) => {
                                    c.checker.on_deliver(&m);
                                    self.obs.arrived(m.to, b, &m);
                                }
                                // A reply from a node the receiver no
                                // longer counts is refused by design.
                                Err(Error::UnknownPeer(_)) if self.removals => {}
                                Err(e) => c.checker.refused_cluster_message(m.to, e),
                            }
                        }
                    }
                }
            }
            Action::Drop(i) => {
                self.left.drops = self.left.drops.saturating_sub(1);
                c.drop_one(i);
            }
            Action::Wait => unreachable!("handled above"),
            Action::Tick(id) => {
                self.left.ticks = self.left.ticks.saturating_sub(1);
                if let Some(node) = c.nodes.get_mut(&id) {
                    node.tick();
                    self.obs.tick_one(id);
                }
            }
            Action::Campaign(id) => {
                self.left.campaigns = self.left.campaigns.saturating_sub(1);
                if let Some(node) = c.nodes.get_mut(&id) {
                    // A refusal (a lease held, say) is an outcome too.
                    let _ = node.campaign();
                }
            }
            Action::Propose(id) => {
                self.left.proposals = self.left.proposals.saturating_sub(1);
                self.proposed += 1;
                let value = bytes::Bytes::from(format!("v{}", self.proposed));
                if c.nodes.contains_key(&id) {
                    // Refused proposals (a full window, say) change nothing.
                    if let Ok(paxos_core::Proposed::At(_)) = c.propose(id, value) {
                        self.obs.history.put(self.proposed);
                    }
                }
            }
            Action::Read(id) => {
                self.left.reads = self.left.reads.saturating_sub(1);
                let ctx = self.obs.ask_read(c);
                if let Some(node) = c.nodes.get_mut(&id) {
                    if node.read_index(ctx.to_be_bytes().to_vec()).is_err() {
                        self.obs.read_refused(ctx);
                    }
                }
            }
            Action::Transfer(id, to) => {
                self.left.transfers = self.left.transfers.saturating_sub(1);
                if let Some(node) = c.nodes.get_mut(&id) {
                    let _ = node.transfer_leader(to);
                }
            }
            Action::Remove(id, who) => {
                self.left.removals = self.left.removals.saturating_sub(1);
                if let Some(node) = c.nodes.get_mut(&id) {
                    let cc = ConfChange {
                        change_type: ConfChangeType::RemoveNode as i32,
                        node_id: who,
                        ..ConfChange::default()
                    };
                    let _ = node.propose_conf_change(cc);
                }
            }
            Action::Forge(id) => {
                self.left.forgeries = self.left.forgeries.saturating_sub(1);
                // In the name of the next member: a ballot owned by its
                // sender, well formed but for its round.
                let from = id % self.left.nodes + 1;
                let m = Message {
                    from,
                    to: id,
                    body: Some(Body::Prepare(Prepare {
                        ballot: Some(Ballot::new(1 << 63, from)),
                        from_slot: 1,
                        transfer: None,
                    })),
                };
                if let Some(node) = c.nodes.get_mut(&id) {
                    let shown = m.to_string();
                    if node.step(m).is_ok() {
                        c.checker.accepted_garbage(id, &shown);
                    }
                }
            }
            Action::Compact(id) => {
                self.left.compactions = self.left.compactions.saturating_sub(1);
                if c.nodes.contains_key(&id) {
                    c.compact(id, 0);
                }
            }
            Action::Crash(id) => {
                self.left.crashes = self.left.crashes.saturating_sub(1);
                if c.nodes.contains_key(&id) {
                    // What the lagging host held never reached the disk.
                    self.held.remove(&id);
                    c.crash(id);
                    self.obs.forget(id);
                }
            }
            Action::Lag(id) => {
                self.left.lags = self.left.lags.saturating_sub(1);
                if c.nodes.contains_key(&id) {
                    self.held.insert(id, Vec::new());
                }
            }
            Action::Flush(id) => {
                // The host keeps lagging: what the advances bring is held
                // again at the settle below.
                let rds = self.held.get_mut(&id).map(std::mem::take);
                for mut rd in rds.unwrap_or_default() {
                    c.handle_ready(id, &mut rd);
                    let Some(node) = c.nodes.get_mut(&id) else {
                        // The node went down mid-flush (a failed sync):
                        // what it held is lost, and it restarts keeping up.
                        self.held.remove(&id);
                        break;
                    };
                    node.advance(rd);
                }
            }
            Action::Restart(id) => {
                if !c.nodes.contains_key(&id) {
                    c.restart(id);
                    self.obs.forget(id);
                }
            }
        }
        self.settle(&before, exempt);
    }

    /// Time passes for every running node at once: `election_ticks` ticks,
    /// each tick's `Ready`s handled as they come, nothing delivered.
    fn wait(&mut self) {
        self.left.waits = self.left.waits.saturating_sub(1);
        self.dirty.extend(1..=self.left.nodes);
        for _ in 0..self.left.election_ticks.max(2) {
            let c = &mut self.cluster;
            let ids: Vec<u64> = c.nodes.keys().copied().collect();
            let before: BTreeMap<u64, Before> = ids
                .iter()
                .filter_map(|&id| Some((id, Observer::before(c, id)?)))
                .collect();
            for node in c.nodes.values_mut() {
                node.tick();
            }
            for id in ids {
                self.obs.tick_one(id);
            }
            self.settle(&before, None);
        }
    }

    /// Every host handles its node's `Ready`s; the observer judges what
    /// they sent, the reads they confirmed, and who leads.
    fn settle(&mut self, before: &BTreeMap<u64, Before>, exempt: Option<u64>) {
        let c = &mut self.cluster;
        // The host takes Readys only here, so whatever is queued past this
        // mark is what the driven nodes sent now.
        let mark = c.queue.len();
        // A lagging host takes its node's Readys and sends only what may
        // leave before the persist (the `Ready` contract's step 2).
        for (&id, rds) in &mut self.held {
            let Some(node) = c.nodes.get_mut(&id) else {
                continue;
            };
            while node.has_ready() {
                if rds.len() >= MAX_HELD {
                    c.checker.endless_readies(id, MAX_HELD);
                    break;
                }
                let mut rd = node.ready();
                for m in rd.take_messages() {
                    c.checker.on_send(&m);
                    c.queue.push_back(m);
                }
                rds.push(rd);
            }
            if self.left.early_apply {
                // Decided entries in slot order: none past a held snapshot.
                // (A `Ready` revealed at an earlier settle holds nothing
                // more to reveal.)
                for rd in rds.iter_mut() {
                    if rd.snapshot().is_some() {
                        break;
                    }
                    c.reveal_early(id, rd);
                }
            }
        }
        c.process_readies();
        let sent: Vec<_> = c.queue.iter().skip(mark).cloned().collect();
        let election_ticks = self.left.election_ticks.max(2);
        self.obs
            .sent(&mut c.checker, election_ticks, before, exempt, &sent);
        self.obs.confirmed_reads(c);
        self.obs.history.applied(c);
        self.obs.history.close();
        Observer::membership(c);
    }

    /// The first violation the checker holds, if any.
    pub(super) fn violation(&self) -> Option<String> {
        self.cluster.checker.first_violation().map(str::to_owned)
    }

    /// Hashes again the nodes driven since their last hash.
    pub(super) fn rehash(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            let h = self.node_hash(id);
            self.hashes.insert(id, h);
        }
    }

    /// A hash of node `id`'s state and storage. A node shows only
    /// [`paxos_core::RawNode::state`], which leaves out what cannot change
    /// its futures (its configuration, fixed per node id within a search;
    /// its storage, shown here once; counters and buffer pools). Hashed
    /// field by field, not formatted: formatting cost twice as much as
    /// the rest of a search.
    fn node_hash(&self, id: u64) -> u64 {
        let c = &self.cluster;
        let mut h = Fingerprinter::new();
        c.nodes.get(&id).map(|node| node.state()).hash(&mut h);
        self.held.get(&id).hash(&mut h);
        c.storages.get(&id).hash(&mut h);
        h.finish()
    }

    /// A fingerprint of everything that decides this state's futures: each
    /// node's hash (see [`World::rehash`]), the applications, the checker's
    /// and observer's records, the budgets left, and the messages in flight
    /// (a multiset, or per link in order over FIFO links).
    pub(super) fn fingerprint(&mut self) -> u64 {
        self.rehash();
        let c = &self.cluster;
        let mut h = Fingerprinter::new();
        (&c.conf, &c.checker).hash(&mut h);
        (&self.hashes, &c.applied, &c.applied_slot).hash(&mut h);
        (&self.left, self.proposed, &self.obs).hash(&mut h);
        let mut flight: Vec<(u64, u64, Vec<u8>)> = c
            .queue
            .iter()
            .map(|m| (m.from, m.to, m.encode_to_vec()))
            .collect();
        if self.left.fifo {
            // Per link, the order is part of the state: a stable sort by
            // link keeps it.
            flight.sort_by_key(|(from, to, _)| (*from, *to));
        } else {
            flight.sort_unstable();
        }
        flight.hash(&mut h);
        h.finish()
    }
}
