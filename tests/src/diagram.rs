//! Space-time diagrams of simulated runs.
//!
//! With [`SimOptions::record`](crate::SimOptions::record) set, the
//! simulator fills a [`Diagram`] as it runs: every node's lifetime, each
//! message copy from its send to its delivery (or its loss), crashes,
//! faults, every node's committed slot over time and the first violation.
//! [`render`] draws it as one self-contained HTML page (inline SVG, time
//! running down the page, a lane per node). Recording only reads the
//! simulator's state: the run, and its trace hash, are the same with or
//! without it.

use crate::faults::Fault;
use crate::trace::message_words;
use paxos_core::proto::{Ballot, Message};
use std::collections::{BTreeMap, VecDeque};

mod html;

pub use html::{render, render_page};

/// Deliveries drawn at most: past the time of the last of them, the page
/// stops and says so.
pub const MAX_ARROWS: usize = 20_000;

/// What a lane's node is when it first starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A voter from the start.
    Voter,
    /// A learner from the start.
    Learner,
    /// A spare that joined the cluster later.
    Joined,
}

/// One node's lane.
#[derive(Clone, Debug)]
pub struct Lane {
    /// The node.
    pub id: u64,
    /// What it was when it first started.
    pub role: Role,
    /// When it first existed (time units).
    pub from: u64,
    /// When it was retired for good, if it was.
    pub until: Option<u64>,
}

/// One copy of a message that reached its receiver's host.
#[derive(Clone, Debug)]
pub struct Arrow {
    /// The sender.
    pub from: u64,
    /// The receiver.
    pub to: u64,
    /// When it was sent.
    pub sent: u64,
    /// When it arrived.
    pub at: u64,
    /// The message kind (`Body::name`).
    pub kind: &'static str,
    /// The message's ballot, if it carries one.
    pub ballot: Option<Ballot>,
    /// The message, as the trace prints it.
    pub text: String,
    /// The network's second copy of a duplicated message.
    pub duplicate: bool,
    /// False when the receiver was down at arrival: the copy was lost.
    pub received: bool,
}

/// A message the network dropped (a cut link or a random drop).
#[derive(Clone, Debug)]
pub struct Dropped {
    /// The sender.
    pub from: u64,
    /// The intended receiver.
    pub to: u64,
    /// When it was sent.
    pub sent: u64,
    /// The message kind (`Body::name`).
    pub kind: &'static str,
    /// The message, as the trace prints it.
    pub text: String,
}

/// A stretch of time a node was down.
#[derive(Clone, Debug)]
pub struct Down {
    /// The node.
    pub node: u64,
    /// When it crashed (or failed to restart).
    pub from: u64,
    /// When it was up again, if it ever was.
    pub until: Option<u64>,
}

/// A fault the simulator injected.
#[derive(Clone, Debug)]
pub struct FaultMark {
    /// When.
    pub at: u64,
    /// Which.
    pub fault: Fault,
}

/// A node's committed slot changed.
#[derive(Clone, Debug)]
pub struct Commit {
    /// The node.
    pub node: u64,
    /// When.
    pub at: u64,
    /// Its committed slot from then on.
    pub slot: u64,
}

/// A node as the simulator sees it after an event.
#[derive(Clone, Copy, Debug)]
pub struct NodeView {
    /// The node.
    pub id: u64,
    /// Its role when it first starts.
    pub role: Role,
    /// Whether it is part of the cluster now (not a spare yet to join,
    /// not retired).
    pub present: bool,
    /// Its committed slot, while it is up.
    pub committed: Option<u64>,
}

/// A copy on its way: its arrival, receiver and message words.
type InFlightKey = (u64, u64, [u64; 6]);

/// Everything recorded of one run, in time order.
#[derive(Clone, Debug, Default)]
pub struct Diagram {
    /// One lane per node that ever existed, in id order.
    pub lanes: Vec<Lane>,
    /// Message copies that arrived, in arrival order (the first
    /// [`MAX_ARROWS`] only).
    pub arrows: Vec<Arrow>,
    /// Messages dropped, up to the last arrow kept.
    pub drops: Vec<Dropped>,
    /// Downtimes.
    pub downs: Vec<Down>,
    /// Faults injected, up to the last arrow kept.
    pub faults: Vec<FaultMark>,
    /// Committed slot changes, up to the last arrow kept.
    pub commits: Vec<Commit>,
    /// The first violation: when it was found and what it says.
    pub violation: Option<(u64, String)>,
    /// Violations found in all.
    pub violations: usize,
    /// When the liveness phase began (every fault healed).
    pub liveness_at: Option<u64>,
    /// When the run ended.
    pub end: u64,
    /// Copies delivered to a live node in the whole run (drawn or not).
    pub delivered: u64,
    /// Copies that found their receiver down in the whole run.
    pub lost: u64,
    /// Messages dropped in the whole run.
    pub dropped: u64,
    /// Messages duplicated in the whole run.
    pub duplicated: u64,
    /// Copies on their way: (arrival, receiver, message words) -> (send
    /// time, duplicate) of each, in the order sent.
    in_flight: BTreeMap<InFlightKey, VecDeque<(u64, bool)>>,
    /// Per node: up after the last event, and its committed slot then.
    seen: BTreeMap<u64, (bool, u64)>,
}

impl Diagram {
    /// An empty recording.
    pub fn new() -> Diagram {
        Diagram::default()
    }

    /// Whether the drawing is full: later events are counted only.
    pub fn full(&self) -> bool {
        self.arrows.len() >= MAX_ARROWS
    }

    /// The time up to which the page draws the run.
    pub fn shown_until(&self) -> u64 {
        match self.arrows.last() {
            Some(a) if self.full() => a.at,
            _ => self.end,
        }
    }

    /// Arrows of copies that reached a live node (each drawn as `msg`).
    pub fn received_arrows(&self) -> usize {
        self.arrows.iter().filter(|a| a.received).count()
    }

    /// A node sent `m` at `now`; the network delivers copies at `times`
    /// (none: dropped).
    pub fn send(&mut self, now: u64, from: u64, m: &Message, times: &[u64]) {
        if times.is_empty() {
            self.dropped += 1;
        }
        if times.len() > 1 {
            self.duplicated += 1;
        }
        if self.full() {
            return;
        }
        if times.is_empty() {
            self.drops.push(Dropped {
                from,
                to: m.to,
                sent: now,
                kind: kind(m),
                text: m.to_string(),
            });
        }
        let words = message_words(m);
        for (i, &t) in times.iter().enumerate() {
            self.in_flight
                .entry((t, m.to, words))
                .or_default()
                .push_back((now, i > 0));
        }
    }

    /// A copy of `m` arrives at `now`; `up` says whether its receiver runs.
    pub fn deliver(&mut self, now: u64, m: &Message, up: bool) {
        if up {
            self.delivered += 1;
        } else {
            self.lost += 1;
        }
        if self.full() {
            self.in_flight.clear();
            return;
        }
        let key = (now, m.to, message_words(m));
        let Some(queue) = self.in_flight.get_mut(&key) else {
            return;
        };
        let sent = queue.pop_front();
        if queue.is_empty() {
            self.in_flight.remove(&key);
        }
        let Some((sent, duplicate)) = sent else {
            return;
        };
        self.arrows.push(Arrow {
            from: m.from,
            to: m.to,
            sent,
            at: now,
            kind: kind(m),
            ballot: m.body.as_ref().and_then(|b| b.ballot()),
            text: m.to_string(),
            duplicate,
            received: up,
        });
    }

    /// A fault was injected at `now`.
    pub fn fault(&mut self, now: u64, fault: Fault) {
        if !self.full() {
            self.faults.push(FaultMark { at: now, fault });
        }
    }

    /// The state after an event at `now`: the nodes, the violations found
    /// so far, and whether faults are still on.
    pub fn step(&mut self, now: u64, nodes: &[NodeView], violations: &[String], faults_on: bool) {
        self.end = now;
        for v in nodes {
            self.observe(now, v);
        }
        if self.violation.is_none() {
            if let Some(first) = violations.first() {
                self.violation = Some((now, first.clone()));
            }
        }
        self.violations = violations.len();
        if !faults_on && self.liveness_at.is_none() {
            self.liveness_at = Some(now);
        }
    }

    fn observe(&mut self, now: u64, v: &NodeView) {
        let lane = self.lanes.iter().position(|l| l.id == v.id);
        let up = v.committed.is_some();
        match lane {
            None if v.present || up => self.lanes.push(Lane {
                id: v.id,
                role: v.role,
                from: now,
                until: None,
            }),
            None => return,
            Some(i) => {
                let lane = &mut self.lanes[i];
                if !v.present && lane.until.is_none() {
                    lane.until = Some(now);
                }
            }
        }
        let (was_up, was_committed) = self.seen.get(&v.id).copied().unwrap_or((false, 0));
        let fresh = !self.seen.contains_key(&v.id);
        if was_up && !up {
            self.downs.push(Down {
                node: v.id,
                from: now,
                until: None,
            });
        } else if !was_up && up && !fresh {
            if let Some(d) = self
                .downs
                .iter_mut()
                .rev()
                .find(|d| d.node == v.id && d.until.is_none())
            {
                d.until = Some(now);
            }
        } else if fresh && !up && v.present {
            // Present from the start but could not start.
            self.downs.push(Down {
                node: v.id,
                from: now,
                until: None,
            });
        }
        let committed = v.committed.unwrap_or(was_committed);
        if up && committed != was_committed && !self.full() {
            self.commits.push(Commit {
                node: v.id,
                at: now,
                slot: committed,
            });
        }
        self.seen.insert(v.id, (up, committed));
    }

    /// The run ended at `now` with these violations (some are only found
    /// at the end, by the final checks).
    pub fn finish(&mut self, now: u64, violations: &[String]) {
        self.end = self.end.max(now);
        if self.violation.is_none() {
            if let Some(first) = violations.first() {
                self.violation = Some((self.end, first.clone()));
            }
        }
        self.violations = violations.len();
        self.in_flight.clear();
    }
}

fn kind(m: &Message) -> &'static str {
    m.body.as_ref().map_or("Empty", |b| b.name())
}
