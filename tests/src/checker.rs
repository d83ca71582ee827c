//! Invariants checked after every step, from an observer's view that sees
//! every persisted write, every message and every apply.

use crate::kv::Command;
use paxos_core::proto::{
    Ballot, Body, ConfChange, Entry, EntryKind, HardState, Message, ProstMessage, Quorums,
};
use std::collections::{BTreeMap, BTreeSet};

mod scenario_hooks;
mod violations;

/// A value as the checker compares it.
type Value = (i32, bytes::Bytes);

/// A membership change: the slot of the change its proposer built on, if
/// it says, and the membership it results in.
type Change = (Option<u64>, Governing);

/// The invariants the simulator checks (README, "Simulation"), and what they saw.
#[derive(Clone, Debug, Default, Hash)]
pub struct Checker {
    /// The membership governing each slot from the key on: only its
    /// voters' acceptances choose a value, a phase-2 quorum of them (rule
    /// M4). A chosen membership change that takes effect starts a new
    /// entry at the slot after it.
    configs: BTreeMap<u64, Governing>,
    /// The membership the cluster started with.
    initial: Governing,
    /// Every chosen membership change, by slot.
    changes: BTreeMap<u64, Change>,
    /// Slots where a membership change was accepted and nothing is chosen
    /// yet: the voters of any later slot are unknown until it is.
    conf_pending: BTreeSet<u64>,
    /// Acceptance records waiting for `conf_pending` to resolve.
    deferred: BTreeSet<(u64, Ballot)>,
    /// Per (slot, ballot): the value and the nodes that durably accepted it.
    accepted: BTreeMap<(u64, Ballot), (Value, BTreeSet<u64>)>,
    /// Per slot: the value chosen (accepted by a quorum in one ballot) and
    /// the lowest ballot it was chosen in.
    chosen: BTreeMap<u64, (Value, Ballot)>,
    /// Every command proposed to some node.
    proposed: BTreeMap<(u64, u64), bytes::Bytes>,
    /// Payloads proposed as plain bytes (by scenario tests), not commands.
    payloads: BTreeSet<bytes::Bytes>,
    /// Per node: last slot applied since its last restart.
    applied: BTreeMap<u64, u64>,
    /// Per node: the highest promise persisted.
    persisted_promise: BTreeMap<u64, Ballot>,
    /// Per node: the highest promise its messages ever vouched for.
    exposed_promise: BTreeMap<u64, Ballot>,
    /// Per ballot: the node that led in it.
    leaders: BTreeMap<Ballot, u64>,
    /// Per ballot not yet led in: what the promises delivered to its owner
    /// told it.
    phase1: BTreeMap<Ballot, Phase1Heard>,
    /// Snapshots installed from a leader.
    pub installs: u64,
    /// Per slot: the state (snapshot bytes) a replica had after applying it.
    states: BTreeMap<u64, bytes::Bytes>,
    /// Violations, in the order found: reported only through the named
    /// methods of `violations.rs`.
    violations: Vec<String>,
}

/// The voters governing slots, and how many of them choose a value.
#[derive(Clone, Debug, Default, Hash)]
struct Governing {
    voters: BTreeSet<u64>,
    phase1: usize,
    phase2: usize,
}

/// What promises for one ballot told its owner: enough to know which
/// memberships its phase 1 had to hear a quorum of (rule P2).
#[derive(Clone, Debug, Default, Hash)]
struct Phase1Heard {
    /// The nodes whose promise the candidate took in.
    promisers: BTreeSet<u64>,
    /// The first slot reported on (the candidate's decided prefix + 1).
    from_slot: Option<u64>,
    /// Per reported slot, the report the candidate adopts there (a chosen
    /// one, else the highest ballot's), as `((chosen, ballot), change)`:
    /// the membership change it carries, if any, as (base, result).
    adopted: BTreeMap<u64, ((bool, Ballot), Option<Change>)>,
}

impl Phase1Heard {
    /// The candidate asked about slots from `slot` on.
    fn asked_from(&mut self, slot: u64) {
        self.from_slot = Some(self.from_slot.map_or(slot, |s| s.min(slot)));
    }

    /// Takes in one promise.
    fn heard(&mut self, from: u64, p: &paxos_core::proto::Promise) {
        self.promisers.insert(from);
        self.asked_from(p.from_slot);
        for e in &p.entries {
            let rank = (e.slot <= p.committed, e.ballot());
            self.adopt(e.slot, rank, e.kind, &e.data);
        }
    }

    /// A report of a value (`kind`, `data`) at `slot` wins over what was
    /// adopted there if it ranks higher: chosen first, then by ballot.
    fn adopt(&mut self, slot: u64, rank: (bool, Ballot), kind: i32, data: &bytes::Bytes) {
        if self.adopted.get(&slot).is_some_and(|(r, _)| *r >= rank) {
            return;
        }
        let change = (kind == EntryKind::ConfChange as i32)
            .then(|| <ConfChange as ProstMessage>::decode(data.clone()).ok())
            .flatten()
            .and_then(|cc| Some((cc.base, Governing::from_conf_state(cc.result?))));
        self.adopted.insert(slot, (rank, change));
    }
}

impl Governing {
    /// The membership a change's result describes.
    fn from_conf_state(cs: paxos_core::proto::ConfState) -> Governing {
        Governing::new(
            cs.voters.into_iter().collect(),
            cs.phase1_quorum,
            cs.phase2_quorum,
        )
    }

    /// The membership of `voters` with the configured sizes `p1`, `p2` (0:
    /// a majority), by the rule every replica applies.
    fn new(voters: BTreeSet<u64>, p1: u32, p2: u32) -> Governing {
        let q = Quorums::for_voters(voters.len(), p1, p2);
        Governing {
            voters,
            phase1: q.phase1,
            phase2: q.phase2,
        }
    }
}

impl Checker {
    /// A checker for a cluster with these voters, choosing by majorities.
    pub fn new(voters: Vec<u64>) -> Self {
        Checker::with_quorums(voters, crate::quorums::MAJORITIES)
    }

    /// A checker for a cluster with these voters and configured quorum
    /// sizes: a value is chosen once a phase-2 quorum of the membership
    /// governing its slot accepted it in one ballot.
    pub fn with_quorums(voters: Vec<u64>, sizes: crate::quorums::Sizes) -> Self {
        let size = |q: Option<usize>| q.and_then(|q| u32::try_from(q).ok()).unwrap_or(0);
        let initial = Governing::new(voters.into_iter().collect(), size(sizes.0), size(sizes.1));
        Checker {
            configs: BTreeMap::from([(1, initial.clone())]),
            initial,
            ..Checker::default()
        }
    }

    /// Slots chosen so far.
    pub fn chosen_count(&self) -> u64 {
        self.chosen.len() as u64
    }

    /// Chosen slots holding several commands (instance batching).
    pub fn batched_count(&self) -> u64 {
        let batch = paxos_core::proto::EntryKind::Batch as i32;
        self.chosen.values().filter(|(v, _)| v.0 == batch).count() as u64
    }

    /// Whether the value chosen at `at.slot` holds `data` at `at.index`.
    pub fn holds(&self, at: paxos_core::Position, data: &[u8]) -> bool {
        let Some((kind, payload)) = self.chosen(at.slot) else {
            return false;
        };
        let entry = Entry {
            slot: at.slot,
            ballot: None,
            kind: *kind,
            data: payload.clone(),
        };
        let mut commands = entry.commands().into_iter().flatten();
        commands.any(|c| c.position == at && c.data == data)
    }

    /// The value chosen in `slot`, if any.
    pub fn chosen(&self, slot: u64) -> Option<&Value> {
        self.chosen.get(&slot).map(|(v, _)| v)
    }

    /// A node persisted a hard state and entries (one `Ready`).
    pub fn on_persist(&mut self, node: u64, hs: Option<&HardState>, entries: &[Entry]) {
        if let Some(hs) = hs {
            let prev = self
                .persisted_promise
                .get(&node)
                .copied()
                .unwrap_or(Ballot::ZERO);
            if hs.promised() < prev {
                self.promise_regressed(node, hs.promised(), prev);
            }
            self.persisted_promise.insert(node, hs.promised().max(prev));
        }
        for e in entries {
            let value = (e.kind, e.data.clone());
            let ballot = e.ballot();
            // P2b: once v is chosen in ballot b, every proposal in a higher
            // ballot carries v. Checked at each acceptance, this catches a
            // bad phase 1 at the new leader's own write, long before a
            // second quorum could choose the wrong value.
            if let Some((v, b)) = self.chosen.get(&e.slot) {
                if ballot > *b && *v != value {
                    let (v, b) = (v.1.clone(), *b);
                    self.accepted_over_chosen(node, &value.1, e.slot, ballot, &v, b);
                }
            }
            let rec = self
                .accepted
                .entry((e.slot, ballot))
                .or_insert_with(|| (value.clone(), BTreeSet::new()));
            if rec.0 != value {
                self.two_values_in_ballot(e.slot, ballot);
                continue;
            }
            rec.1.insert(node);
            if e.kind == EntryKind::ConfChange as i32 && !self.chosen.contains_key(&e.slot) {
                self.conf_pending.insert(e.slot);
            }
            self.try_choose(e.slot, ballot);
        }
    }

    /// Whether the acceptors of (slot, ballot) are a quorum of the voters
    /// governing the slot; deferred while an earlier membership change is
    /// undecided.
    fn try_choose(&mut self, slot: u64, ballot: Ballot) {
        if self.conf_pending.range(..slot).next().is_some() {
            self.deferred.insert((slot, ballot));
            return;
        }
        let Some((value, acceptors)) = self.accepted.get(&(slot, ballot)) else {
            return;
        };
        let governing = self
            .configs
            .range(..=slot)
            .next_back()
            .map(|(_, g)| g)
            .expect("a membership governs slot 1 on");
        let votes = acceptors
            .iter()
            .filter(|a| governing.voters.contains(a))
            .count();
        if votes < governing.phase2 {
            return;
        }
        let value = value.clone();
        match self.chosen.get(&slot) {
            None => self.choose(slot, value, ballot),
            Some((v, _)) if *v != value => {
                let first = v.1.clone();
                self.chosen_twice(slot, &first, &value.1, ballot);
            }
            Some(_) => {}
        }
    }

    fn choose(&mut self, slot: u64, value: Value, ballot: Ballot) {
        // P2b for acceptances seen before the choice was known (deferred).
        let later: Vec<Ballot> = self
            .accepted
            .range((slot, ballot)..=(slot, Ballot::new(u64::MAX, u64::MAX)))
            .filter(|(_, (v, _))| *v != value)
            .map(|((_, b), _)| *b)
            .collect();
        for b in later {
            self.accepted_other_after_choice(slot, b, ballot);
        }
        if value.0 == EntryKind::ConfChange as i32 {
            let cc = <ConfChange as ProstMessage>::decode(value.1.clone()).ok();
            match cc.and_then(|cc| Some((cc.base, cc.result?))) {
                Some((base, cs)) => {
                    let governing = Governing::from_conf_state(cs);
                    self.changes.insert(slot, (base, governing));
                    self.rebuild_configs();
                }
                None => self.change_without_result(slot),
            }
        }
        self.chosen.insert(slot, (value, ballot));
        if self.conf_pending.remove(&slot) {
            for (s, b) in std::mem::take(&mut self.deferred) {
                if !self.chosen.contains_key(&s) {
                    self.try_choose(s, b);
                }
            }
        }
    }

    /// The memberships from the chosen changes, in slot order: a change
    /// takes effect only if it was built on the membership in effect before
    /// its slot (the last change that took effect, or the initial one);
    /// otherwise another change replaced its base first and it is void.
    fn rebuild_configs(&mut self) {
        let mut configs = BTreeMap::from([(1, self.initial.clone())]);
        let mut since = 0;
        for (&slot, (base, governing)) in &self.changes {
            if base.is_none_or(|b| b == since) {
                configs.insert(slot + 1, governing.clone());
                since = slot;
            }
        }
        self.configs = configs;
    }

    /// A client command was handed to a node for proposal.
    pub fn on_propose(&mut self, cmd: &Command, data: &bytes::Bytes) {
        self.proposed.insert((cmd.client, cmd.seq), data.clone());
    }

    /// A node sent a message: every ballot a message vouches for is a
    /// promise its sender made (pre-votes excepted).
    pub fn on_send(&mut self, m: &Message) {
        // Phase-1 traffic of a ballot not yet led in: once it is, the
        // election was judged, and its record is dropped.
        let open = |b: &Ballot| !self.leaders.contains_key(b);
        if let Some(Body::Prepare(p)) = &m.body {
            if let Some(b) = p.ballot.filter(|b| b.node == m.from && open(b)) {
                self.phase1.entry(b).or_default().asked_from(p.from_slot);
            }
        }
        if let Some(Body::Promise(p)) = &m.body {
            // A promise reports as chosen (at or below its watermark) only
            // the value that was chosen there.
            for e in p.entries.iter().filter(|e| e.slot <= p.committed) {
                let value = (e.kind, e.data.clone());
                if let Some((v, _)) = self.chosen.get(&e.slot) {
                    if *v != value {
                        let v = v.1.clone();
                        self.reported_wrong_chosen(m.from, &value.1, e.slot, &v);
                    }
                }
            }
        }
        let vouched = match &m.body {
            Some(Body::Prepare(p)) => p.ballot,
            Some(Body::Promise(p)) => p.ballot,
            Some(Body::Accept(a)) => a.ballot,
            Some(Body::Accepted(a)) => a.ballot,
            Some(Body::Heartbeat(h)) => h.ballot,
            Some(Body::HeartbeatReply(h)) => h.ballot,
            Some(Body::Decide(d)) => d.ballot,
            Some(Body::TimeoutNow(t)) => t.ballot,
            Some(Body::Reject(r)) => r.promised,
            Some(Body::PrePrepareReply(r)) => r.promised,
            // Pre-votes change nothing; a forwarded proposal and snapshot
            // transfer vouch for no promise of their sender's.
            Some(
                Body::PrePrepare(_)
                | Body::Propose(_)
                | Body::InstallSnapshot(_)
                | Body::SnapshotReply(_),
            )
            | None => None,
        };
        if let Some(b) = vouched {
            let e = self.exposed_promise.entry(m.from).or_insert(Ballot::ZERO);
            *e = (*e).max(b);
        }
    }

    /// A message reached its receiver, which took it in (`step` returned
    /// `Ok`). A promise counts toward its receiver's election only from
    /// here: rule P2 judges what the candidate heard, and a promise lost,
    /// refused or still in flight was not heard.
    pub fn on_deliver(&mut self, m: &Message) {
        if let Some(Body::Promise(p)) = &m.body {
            let open = |b: &Ballot| b.node == m.to && !self.leaders.contains_key(b);
            if let Some(b) = p.ballot.filter(open) {
                self.phase1.entry(b).or_default().heard(m.from, p);
            }
        }
    }

    /// A node (re)started with this promise: it must cover every promise its
    /// messages ever revealed (replies leave only after persisting).
    pub fn on_start(&mut self, node: u64, promised: Ballot, snapshot_slot: u64) {
        self.applied.insert(node, snapshot_slot);
        let exposed = self
            .exposed_promise
            .get(&node)
            .copied()
            .unwrap_or(Ballot::ZERO);
        if promised < exposed {
            self.promise_lost_on_restart(node, promised, exposed);
        }
    }

    /// A node applied a decided entry.
    pub fn on_apply(&mut self, node: u64, e: &Entry) {
        let last = self.applied.get(&node).copied().unwrap_or(0);
        if e.slot != last + 1 {
            self.applied_out_of_order(node, e.slot, last);
        }
        self.applied.insert(node, e.slot);
        let value = (e.kind, e.data.clone());
        match self.chosen(e.slot) {
            Some(v) if *v == value => {}
            Some(v) => {
                let v = v.1.clone();
                self.applied_unchosen_value(node, &value.1, e.slot, &v);
            }
            None => self.applied_before_chosen(node, e.slot),
        }
        let commands = match e.commands() {
            Ok(commands) => commands,
            Err(err) => return self.applied_malformed_batch(node, e.slot, err),
        };
        for c in commands {
            let known = Command::decode(&c.data)
                .and_then(|cmd| self.proposed.get(&(cmd.client, cmd.seq)))
                .is_some_and(|d| *d == c.data)
                || self.payloads.contains(&c.data);
            if !known {
                self.applied_unproposed(node, c.position);
            }
        }
    }

    /// A node snapshotted its state after applying `slot`: every replica's
    /// state after the same slot must be the same bytes.
    pub fn on_snapshot(&mut self, node: u64, slot: u64, data: &bytes::Bytes) {
        match self.states.get(&slot) {
            Some(d) if d != data => self.replica_state_diverged(node, slot),
            Some(_) => {}
            None => {
                self.states.insert(slot, data.clone());
            }
        }
    }

    /// A node installed a snapshot from the leader: it must be exactly the
    /// state some replica reached by applying the chosen values up to
    /// `slot`, and it must move the node forward.
    pub fn on_install(&mut self, node: u64, slot: u64, data: &bytes::Bytes) {
        let last = self.applied.get(&node).copied().unwrap_or(0);
        if slot <= last {
            self.snapshot_behind(node, slot, last);
        }
        match self.states.get(&slot) {
            Some(d) if d == data => {}
            Some(_) => self.snapshot_differs(node, slot),
            None => self.snapshot_unknown(node, slot),
        }
        self.applied.insert(node, slot);
        self.installs += 1;
    }

    /// A node reported itself leader in `ballot`.
    pub fn on_leader(&mut self, node: u64, ballot: Ballot) {
        if ballot.node != node {
            self.leads_in_foreign_ballot(node, ballot);
        }
        match self.leaders.get(&ballot) {
            Some(&other) if other != node => {
                self.two_leaders(other, node, ballot);
            }
            Some(_) => {}
            None => {
                self.leaders.insert(ballot, node);
                self.check_phase1_quorum(node, ballot);
            }
        }
    }

    /// Rule P2: a leader heard promises from a phase-1 quorum of every
    /// membership its phase 1 revealed: the one governing the first slot
    /// it asked about, then each the changes the reports bring in (a
    /// chosen report first, else the highest ballot, per slot), applied in
    /// slot order as deciding will apply them. Its own promise counts, and
    /// so does its own report: it promises its ballot before asking, and
    /// its own promise never travels as a message, so its report is what
    /// it durably accepted below its ballot, as recorded here.
    ///
    /// Promises count as delivered (`on_deliver`): one lost, refused or
    /// still in flight was not heard, and neither was what it reported.
    fn check_phase1_quorum(&mut self, node: u64, ballot: Ballot) {
        let mut heard = self.phase1.remove(&ballot).unwrap_or_default();
        // A candidate that asked nobody (a quorum of one) was governed by
        // the newest membership it could know.
        let from_slot = heard.from_slot.unwrap_or(u64::MAX);
        let own = self
            .accepted
            .range((from_slot, Ballot::ZERO)..)
            .filter(|((_, b), (_, acceptors))| *b < ballot && acceptors.contains(&node));
        for (&(slot, b), ((kind, data), _)) in own {
            heard.adopt(slot, (false, b), *kind, data);
        }
        let Some((&start, first)) = self.configs.range(..=from_slot).next_back() else {
            return;
        };
        // A membership in effect from `start` was made at `start - 1`.
        let mut since = start - 1;
        let mut chain = vec![first.clone()];
        for (&slot, (_, change)) in heard.adopted.range(from_slot..) {
            if let Some((base, g)) = change {
                if base.is_none_or(|b| b == since) {
                    chain.push(g.clone());
                    since = slot;
                }
            }
        }
        let mut voted = heard.promisers;
        voted.insert(node);
        for g in chain {
            let promised = voted.intersection(&g.voters).count();
            if promised < g.phase1 {
                self.led_without_phase1_quorum(node, ballot, promised, g.phase1, &g.voters);
                return;
            }
        }
    }

    /// Elections won during the run.
    pub fn leadership_count(&self) -> usize {
        self.leaders.len()
    }
}
