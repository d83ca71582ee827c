//! A bounded exhaustive explorer of the real core: every reachable state of
//! a small cluster of [`paxos_core::RawNode`]s, within bounds, breadth
//! first, with the simulator's [`crate::checker::Checker`] judging every
//! state.
//!
//! Random simulation finds rare schedules by luck; this enumerates them.
//! The world is a [`Cluster`] (the scripted cluster the scenario tests use,
//! with the kind host: each node's `Ready`s are persisted, sent, applied
//! and advanced right after every action). Its actions are:
//!
//! - deliver any message in flight, drop it, or deliver it twice;
//! - tick a node, or have its host call `campaign()`;
//! - propose a new value at a leader;
//! - crash a node (between `Ready`s: the kind host has none outstanding),
//!   or restart a crashed one from its storage.
//!
//! Each kind of action but delivery has a budget ([`Bounds`]). A state is
//! everything that decides its futures and what the checker can still
//! find: every node's volatile and durable state, the application's, the
//! messages in flight as a multiset, the checker's record and the budgets
//! left. States are merged by a 64-bit fingerprint of all that, so the
//! search is breadth first over distinct states, and the first violation
//! found comes with a shortest trace.
//!
//! Nodes cannot be cloned, so a state is kept as the actions that reach it
//! and rebuilt by replaying them from the start: the runs are deterministic
//! (a fixed seed, no clock), so a replay reaches the very same state.
//! Identical messages in flight are delivered, dropped or duplicated only
//! once per state: the multiset makes the copies interchangeable.

mod draw;

pub use draw::diagram;

use crate::scenario::Cluster;
use paxos_core::proto::ProstMessage;
use paxos_core::{PlantedBug, StateRole};
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// The bounds of a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Voters, `1..=nodes`.
    pub nodes: u64,
    /// Actions from the start: the search stops below this depth.
    pub depth: usize,
    /// Host `campaign()` calls.
    pub campaigns: u32,
    /// Proposals (each a new value).
    pub proposals: u32,
    /// Ticks, of any node.
    pub ticks: u32,
    /// Waits: time passes for every running node at once, `election_ticks`
    /// ticks (stickiness windows close; timeouts may fire), with nothing
    /// delivered meanwhile.
    pub waits: u32,
    /// Each node's `Config::election_ticks` (with `heartbeat_ticks` one
    /// less):
    /// how long stickiness lasts, and when a timeout may start a
    /// campaign. Large, elections come only from `campaigns`.
    pub election_ticks: u32,
    /// Crashes (a crashed node may restart at any later point).
    pub crashes: u32,
    /// Messages lost.
    pub drops: u32,
    /// Messages delivered twice.
    pub duplicates: u32,
    /// Distinct states at which the search gives up (not exhausted).
    pub max_states: usize,
    /// Links are FIFO, as over TCP: only the oldest message in flight on
    /// each (sender, receiver) link may be delivered, dropped or
    /// duplicated. Off, any message in flight may be, in any order.
    pub fifo: bool,
}

impl Default for Bounds {
    /// The CI bound: three nodes, one campaign, one proposal, one crash and
    /// one drop, ten actions deep.
    fn default() -> Self {
        Bounds {
            nodes: 3,
            depth: 10,
            campaigns: 1,
            proposals: 1,
            ticks: 0,
            waits: 0,
            election_ticks: 1_000,
            crashes: 1,
            drops: 1,
            duplicates: 0,
            max_states: 2_000_000,
            fifo: false,
        }
    }
}

/// One step of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the message at this position in flight.
    Deliver(usize),
    /// Deliver it twice.
    Duplicate(usize),
    /// Lose it.
    Drop(usize),
    /// Tick a node.
    Tick(u64),
    /// Every running node ticks `election_ticks` times.
    Wait,
    /// The node's host calls `campaign()`.
    Campaign(u64),
    /// The leader is given a new value to propose.
    Propose(u64),
    /// The node crashes.
    Crash(u64),
    /// The crashed node restarts from its storage.
    Restart(u64),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deliver(i) => write!(f, "deliver:{i}"),
            Action::Duplicate(i) => write!(f, "duplicate:{i}"),
            Action::Drop(i) => write!(f, "drop:{i}"),
            Action::Tick(n) => write!(f, "tick:{n}"),
            Action::Wait => write!(f, "wait:0"),
            Action::Campaign(n) => write!(f, "campaign:{n}"),
            Action::Propose(n) => write!(f, "propose:{n}"),
            Action::Crash(n) => write!(f, "crash:{n}"),
            Action::Restart(n) => write!(f, "restart:{n}"),
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        let (kind, arg) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("action {s:?}: expected kind:number"))?;
        let n: u64 = arg
            .parse()
            .map_err(|e| format!("action {s:?}: bad number: {e}"))?;
        let i = usize::try_from(n).map_err(|e| format!("action {s:?}: {e}"))?;
        Ok(match kind {
            "deliver" => Action::Deliver(i),
            "duplicate" => Action::Duplicate(i),
            "drop" => Action::Drop(i),
            "tick" => Action::Tick(n),
            "wait" => Action::Wait,
            "campaign" => Action::Campaign(n),
            "propose" => Action::Propose(n),
            "crash" => Action::Crash(n),
            "restart" => Action::Restart(n),
            other => return Err(format!("action {s:?}: unknown kind {other:?}")),
        })
    }
}

/// Parses a trace as [`Action`]'s `Display` writes it, comma-separated.
pub fn parse_trace(s: &str) -> Result<Vec<Action>, String> {
    s.split(',')
        .filter(|a| !a.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Shows a trace as [`parse_trace`] reads it.
pub fn show_trace(trace: &[Action]) -> String {
    trace
        .iter()
        .map(Action::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What a search found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Distinct states visited.
    pub states: usize,
    /// Actions tried (edges, merged or not).
    pub transitions: u64,
    /// The deepest level reached.
    pub depth: usize,
    /// Every state within the bounds was visited (the search was not cut
    /// short by `max_states` or a violation).
    pub exhausted: bool,
    /// No new state appeared at the last level: the space the budgets
    /// allow is finite, and it was covered whole, whatever the depth.
    pub closed: bool,
    /// The first violation found, with a shortest trace to it.
    pub counterexample: Option<(Vec<Action>, String)>,
    /// Seconds the search took.
    pub seconds: f64,
}

impl Report {
    /// Distinct states per second.
    pub fn states_per_sec(&self) -> f64 {
        self.states as f64 / self.seconds.max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "states={} transitions={} depth={} exhausted={} closed={} seconds={:.1} states_per_sec={:.0}",
            self.states,
            self.transitions,
            self.depth,
            self.exhausted,
            self.closed,
            self.seconds,
            self.states_per_sec()
        )?;
        match &self.counterexample {
            Some((trace, v)) => write!(
                f,
                " violation={v:?} length={} trace={}",
                trace.len(),
                show_trace(trace)
            ),
            None => write!(f, " violations=0"),
        }
    }
}

/// The explored world: the cluster and what is left of each budget.
struct World {
    cluster: Cluster,
    left: Bounds,
    /// Values proposed so far (the next one is new).
    proposed: u64,
}

impl World {
    fn new(bounds: &Bounds, bug: Option<PlantedBug>) -> World {
        let election_ticks = bounds.election_ticks.max(2);
        let mut cluster = Cluster::with_config(bounds.nodes, move |cfg| {
            cfg.election_ticks = election_ticks;
            // One heartbeat round per election timeout: a wait sends one
            // round, not a flood of them.
            cfg.heartbeat_ticks = (election_ticks - 1).max(1);
            cfg.planted_bug = bug;
        });
        cluster.fail_fast = false;
        World {
            cluster,
            left: bounds.clone(),
            proposed: 0,
        }
    }

    /// Replays `trace` from the start.
    fn replay(bounds: &Bounds, bug: Option<PlantedBug>, trace: &[Action]) -> World {
        let mut w = World::new(bounds, bug);
        for &a in trace {
            w.apply(a);
        }
        w
    }

    /// The actions enabled here, one per distinct outcome.
    fn enabled(&self) -> Vec<Action> {
        let mut out = Vec::new();
        let c = &self.cluster;
        let mut seen = HashSet::new();
        let mut links = HashSet::new();
        for (i, m) in c.queue.iter().enumerate() {
            // Over FIFO links only each link's oldest message can move.
            if self.left.fifo && !links.insert((m.from, m.to)) {
                continue;
            }
            // Identical copies in flight have identical futures.
            if !seen.insert(m.encode_to_vec()) {
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
            match c.nodes.get(&id) {
                Some(node) => {
                    let leads = node.status().role == StateRole::Leader;
                    if self.left.ticks > 0 {
                        out.push(Action::Tick(id));
                    }
                    if self.left.campaigns > 0 && !leads {
                        out.push(Action::Campaign(id));
                    }
                    if self.left.proposals > 0 && leads {
                        out.push(Action::Propose(id));
                    }
                    if self.left.crashes > 0 {
                        out.push(Action::Crash(id));
                    }
                }
                None => out.push(Action::Restart(id)),
            }
        }
        out
    }

    /// Takes one action, then lets every node's host handle its `Ready`s.
    fn apply(&mut self, a: Action) {
        let c = &mut self.cluster;
        match a {
            Action::Deliver(i) => {
                c.deliver_one(i, 1);
            }
            Action::Duplicate(i) => {
                self.left.duplicates = self.left.duplicates.saturating_sub(1);
                c.deliver_one(i, 2);
            }
            Action::Drop(i) => {
                self.left.drops = self.left.drops.saturating_sub(1);
                c.drop_one(i);
            }
            Action::Tick(id) => {
                self.left.ticks = self.left.ticks.saturating_sub(1);
                if let Some(node) = c.nodes.get_mut(&id) {
                    node.tick();
                }
            }
            Action::Wait => {
                self.left.waits = self.left.waits.saturating_sub(1);
                for _ in 0..self.left.election_ticks.max(2) {
                    for node in c.nodes.values_mut() {
                        node.tick();
                    }
                    // Each tick's Readys are handled as they come.
                    c.process_readies();
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
                    let _ = c.propose(id, value);
                }
            }
            Action::Crash(id) => {
                self.left.crashes = self.left.crashes.saturating_sub(1);
                if c.nodes.contains_key(&id) {
                    c.crash(id);
                }
            }
            Action::Restart(id) => {
                if !c.nodes.contains_key(&id) {
                    c.restart(id);
                }
            }
        }
        c.process_readies();
    }

    /// The first violation the checker holds, if any.
    fn violation(&self) -> Option<String> {
        self.cluster.checker.first_violation().map(str::to_owned)
    }

    /// A fingerprint of everything that decides this state's futures.
    ///
    /// Each part is written with `Debug` into one reused buffer, hashed at
    /// the end: formatting is most of a state's cost. A node shows only
    /// [`paxos_core::RawNode::state`], which leaves out what cannot change
    /// its futures (its configuration, fixed per node id within a search;
    /// its storage, shown here once; counters and buffer pools).
    fn fingerprint(&self) -> u64 {
        use std::fmt::Write;
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let c = &self.cluster;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        TEXT.with_borrow_mut(|t| {
            t.clear();
            // Writing into a String cannot fail.
            let _ = (|| -> fmt::Result {
                for id in 1..=self.left.nodes {
                    match c.nodes.get(&id) {
                        Some(node) => write!(t, "{:?}", node.state())?,
                        None => t.write_str("crashed")?,
                    }
                    write!(t, "{:?}", c.storages.get(&id))?;
                }
                write!(t, "{:?}{:?}", c.applied, c.applied_slot)?;
                write!(t, "{:?}{:?}{}", c.checker, self.left, self.proposed)
            })();
            h.write(t.as_bytes());
        });
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

/// Searches every state within `bounds`, breadth first, with `bug` planted
/// (or none), and stops at the first violation.
pub fn explore(bounds: &Bounds, bug: Option<PlantedBug>) -> Report {
    let start = Instant::now();
    let root = World::new(bounds, bug);
    let mut visited = HashSet::new();
    visited.insert(root.fingerprint());
    let mut frontier: Vec<Vec<Action>> = vec![Vec::new()];
    let mut transitions = 0u64;
    let mut depth = 0;
    let report =
        |visited: &HashSet<u64>, transitions, depth, done: Option<bool>, counterexample| Report {
            states: visited.len(),
            transitions,
            depth,
            exhausted: done.is_some(),
            closed: done == Some(true),
            counterexample,
            seconds: start.elapsed().as_secs_f64(),
        };
    if let Some(v) = root.violation() {
        return report(&visited, 0, 0, None, Some((Vec::new(), v)));
    }
    while depth < bounds.depth && !frontier.is_empty() {
        let mut next = Vec::new();
        for trace in &frontier {
            let actions = World::replay(bounds, bug, trace).enabled();
            for a in actions {
                transitions += 1;
                let mut child = trace.clone();
                child.push(a);
                let w = World::replay(bounds, bug, &child);
                if let Some(v) = w.violation() {
                    return report(&visited, transitions, depth + 1, None, Some((child, v)));
                }
                if visited.insert(w.fingerprint()) {
                    if visited.len() >= bounds.max_states {
                        return report(&visited, transitions, depth + 1, None, None);
                    }
                    next.push(child);
                }
            }
        }
        frontier = next;
        depth += 1;
    }
    report(
        &visited,
        transitions,
        depth,
        Some(frontier.is_empty()),
        None,
    )
}

/// Replays `trace` and returns every violation the checker found, in order,
/// with a line per action describing the messages in flight after it.
pub fn replay(
    bounds: &Bounds,
    bug: Option<PlantedBug>,
    trace: &[Action],
) -> (Vec<String>, Vec<String>) {
    let mut w = World::new(bounds, bug);
    let mut lines = Vec::new();
    for &a in trace {
        w.apply(a);
        let flight: Vec<String> = w.cluster.queue.iter().map(|m| m.to_string()).collect();
        lines.push(format!("{a}: in flight [{}]", flight.join("; ")));
    }
    (w.cluster.checker.violations().to_vec(), lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_round_trip() {
        let t = vec![
            Action::Campaign(1),
            Action::Deliver(0),
            Action::Drop(2),
            Action::Duplicate(1),
            Action::Propose(1),
            Action::Crash(2),
            Action::Restart(2),
            Action::Tick(3),
        ];
        assert_eq!(parse_trace(&show_trace(&t)), Ok(t));
        assert!(parse_trace("fly:1").is_err());
    }

    #[test]
    fn replays_reach_the_same_state() {
        let bounds = Bounds::default();
        let t = [Action::Campaign(1), Action::Deliver(0), Action::Deliver(0)];
        let a = World::replay(&bounds, None, &t);
        let b = World::replay(&bounds, None, &t);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = World::replay(&bounds, None, &t[..2]);
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn a_tiny_bound_is_exhausted_clean() {
        let bounds = Bounds {
            depth: 4,
            crashes: 0,
            drops: 0,
            ..Bounds::default()
        };
        let r = explore(&bounds, None);
        assert!(r.counterexample.is_none(), "{r}");
        assert!(r.states > 10, "{r}");
        assert_eq!(r.depth, 4, "{r}");
    }
}
