//! A bounded exhaustive explorer of the real core: every reachable state of
//! a small cluster of [`paxos_core::RawNode`]s, within bounds, breadth
//! first, with the simulator's [`crate::checker::Checker`] judging every
//! state.
//!
//! Random simulation finds rare schedules by luck; this enumerates them.
//! The world is a [`Cluster`] (the scripted cluster the scenario tests use,
//! with the kind host: each node's `Ready`s are persisted, sent, applied
//! and advanced right after every action, unless its host lags). Its
//! actions are:
//!
//! - deliver any message in flight, drop it, or deliver it twice;
//! - tick a node, or have its host call `campaign()`;
//! - propose a new value at a leader, ask it for a read (`read_index`),
//!   a leadership transfer, or the removal of a voter;
//! - forge a message from one member to another, which must be refused;
//! - have a node's host lag: it takes each `Ready` and sends its
//!   `messages` at once, holding the persist, the other sends, the apply
//!   and the advance until a flush action completes them (a pipelining
//!   host that syncs now and then);
//! - have a node's host snapshot its application and compact its log;
//! - crash a node, with what a lagging host held lost, or restart a
//!   crashed one from its storage.
//!
//! With FIFO links only each link's oldest message moves, but for a
//! budget of reorderings.
//!
//! Each kind of action but delivery has a budget ([`Bounds`]). Beyond the
//! checker, an observer (`observe.rs`) judges what the simulator's own
//! observer does: stickiness at each grant, each confirmed read's index,
//! and each node's membership; and the clients' history of proposals and
//! reads must stay linearizable (`history.rs`). A state is everything that decides its
//! futures and what the checker can still find: every node's volatile and
//! durable state, the application's, the messages in flight as a
//! multiset, the checker's and observer's records and the budgets left.
//! States are merged by a 64-bit fingerprint of all that, so the search is
//! breadth first over distinct states, and the first violation
//! found comes with a shortest trace.
//!
//! A state is kept as the action that reached it from its parent (a tree
//! of traces, a few bytes per state) and rebuilt when it is expanded: the
//! runs are deterministic (a fixed seed, no clock), so a replay reaches the
//! very same state. Worlds along the last trace rebuilt are kept and forked
//! (`RawNode::fork`), so a state costs about one action to rebuild, not
//! one per action of its trace.
//! Identical messages in flight are delivered, dropped or duplicated only
//! once per state: the multiset makes the copies interchangeable.

mod action;
pub mod cli;
mod draw;
mod hasher;
mod history;
mod observe;
mod world;

pub use action::{parse_trace, show_trace, Action};
pub use draw::diagram;

use paxos_core::PlantedBug;
use std::collections::HashSet;
use std::fmt;
use std::time::Instant;
use world::World;

/// The bounds of a search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Voters, `1..=nodes`.
    pub nodes: u64,
    /// Actions from the start: the search stops below this depth.
    pub depth: usize,
    /// Host `campaign()` calls.
    pub campaigns: u32,
    /// Proposals (each a new value).
    pub proposals: u32,
    /// Reads asked of a leader (`read_index`).
    pub reads: u32,
    /// Leadership transfers asked of a leader (`transfer_leader`).
    pub transfers: u32,
    /// Removals of a voter proposed at a leader (`propose_conf_change`).
    pub removals: u32,
    /// Forged messages (see [`Action::Forge`]).
    pub forgeries: u32,
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
    /// Each node's `Config::read_lease_ticks` (0: no lease reads).
    pub lease_ticks: u32,
    /// Each node's `Config::phase1_quorum` (`None`: a majority).
    pub phase1: Option<usize>,
    /// Each node's `Config::phase2_quorum` (`None`: a majority).
    pub phase2: Option<usize>,
    /// Each node's `Config::max_msg_entries` (`None`: the default), so
    /// that a report or an Accept of a few entries takes several messages.
    pub max_msg_entries: Option<usize>,
    /// Lagging hosts (see [`Action::Lag`]): pipelined `Ready`s, and
    /// crashes with `Ready`s taken and not persisted.
    pub lags: u32,
    /// A lagging host applies each `Ready`'s decided entries and keeps the
    /// reads it confirmed as it takes it, before the persist (rule D5);
    /// the persist, the persisted messages and the advance wait for the
    /// flush as before. A `Ready` with a snapshot, and any after it, wait
    /// whole: their entries follow the snapshot.
    pub early_apply: bool,
    /// Compactions (see [`Action::Compact`]).
    pub compactions: u32,
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
    /// With `fifo`: deliveries of a message that is not its link's oldest
    /// (a reordering, as across a reconnection). Lets one message overtake
    /// another without opening every order to the search.
    pub reorders: u32,
}

impl Default for Bounds {
    /// The CI bound: three nodes, one campaign, one proposal, one read, one
    /// transfer, one removal, one crash and one drop, ten actions deep.
    fn default() -> Self {
        Bounds {
            nodes: 3,
            depth: 10,
            campaigns: 1,
            proposals: 1,
            reads: 1,
            transfers: 1,
            removals: 1,
            forgeries: 0,
            ticks: 0,
            waits: 0,
            election_ticks: 1_000,
            lease_ticks: 0,
            phase1: None,
            phase2: None,
            max_msg_entries: None,
            lags: 0,
            early_apply: false,
            compactions: 0,
            crashes: 1,
            drops: 1,
            duplicates: 0,
            max_states: 2_000_000,
            fifo: false,
            reorders: 0,
        }
    }
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

/// Searches every state within `bounds`, breadth first, with `bug` planted
/// (or none), and stops at the first violation.
pub fn explore(bounds: &Bounds, bug: Option<PlantedBug>) -> Report {
    explore_with(bounds, bug, |_, _, _| {})
}

/// [`explore`], telling `level` after each level is done: its depth, the
/// distinct states so far, and how many of them are new at that depth.
///
/// Each level's states are split among worker threads; their children come
/// back in frontier order and are merged in that order, so the report
/// (states, transitions, the counterexample) is the one a single thread
/// would give.
pub fn explore_with(
    bounds: &Bounds,
    bug: Option<PlantedBug>,
    level: impl FnMut(usize, usize, usize),
) -> Report {
    match explore_from(bounds, bug, &[], level) {
        Ok(r) => r,
        Err(_) => unreachable!("an empty prefix is always allowed"),
    }
}

/// [`explore_with`] from the state `prefix` reaches rather than from the
/// start: every state within `bounds` that extends it (its actions spend
/// the budgets and count toward `depth` too). A counterexample is the
/// prefix and a shortest continuation of it. Fails, naming the action,
/// when the prefix takes one the bounds do not allow where it comes (see
/// [`first_disallowed`]).
pub fn explore_from(
    bounds: &Bounds,
    bug: Option<PlantedBug>,
    prefix: &[Action],
    mut level: impl FnMut(usize, usize, usize),
) -> Result<Report, (usize, Action)> {
    if let Some(bad) = first_disallowed(bounds, bug, prefix) {
        return Err(bad);
    }
    let start = Instant::now();
    let mut root = World::replay(bounds, bug, prefix);
    let mut visited = HashSet::new();
    visited.insert(root.fingerprint());
    let mut tree = Tree::default();
    let mut transitions = 0u64;
    let mut depth = prefix.len();
    let whole =
        |suffix: Vec<Action>| -> Vec<Action> { prefix.iter().copied().chain(suffix).collect() };
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
        return Ok(report(
            &visited,
            0,
            depth,
            None,
            Some((whole(Vec::new()), v)),
        ));
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    while depth < bounds.depth && !tree.frontier().is_empty() {
        let mut next = Vec::new();
        let frontier = tree.frontier().len();
        let mut from = 0;
        while from < frontier {
            // A batch per round of workers, so that the children waiting to
            // be merged stay few.
            let to = (from + BATCH * workers).min(frontier);
            let share = (to - from).div_ceil(workers);
            let parts: Vec<Vec<Child>> = std::thread::scope(|s| {
                let tree = &tree;
                let handles: Vec<_> = (from..to)
                    .step_by(share)
                    .map(|a| {
                        s.spawn(move || expand(bounds, bug, prefix, tree, a..(a + share).min(to)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an explorer worker panicked"))
                    .collect()
            });
            for c in parts.into_iter().flatten() {
                transitions += 1;
                if let Some(v) = c.violation {
                    let trace = whole(tree.child_trace(c.parent, c.action));
                    return Ok(report(
                        &visited,
                        transitions,
                        depth + 1,
                        None,
                        Some((trace, v)),
                    ));
                }
                if visited.insert(c.fingerprint) {
                    if visited.len() >= bounds.max_states {
                        return Ok(report(&visited, transitions, depth + 1, None, None));
                    }
                    next.push((c.parent, c.action));
                }
            }
            from = to;
        }
        tree.levels.push(next);
        depth += 1;
        level(depth, visited.len(), tree.frontier().len());
    }
    Ok(report(
        &visited,
        transitions,
        depth,
        Some(tree.frontier().is_empty()),
        None,
    ))
}

/// Frontier states a worker expands per round.
const BATCH: usize = 2048;

/// Every state reached, level by level, as its parent's index in the level
/// above and the action that led from it: a trace is the path to the root
/// (the state the prefix reaches, or the start). `levels[d]` holds the
/// states `d + 1` actions below the root; the root, the only state of its
/// depth, has no level of its own.
#[derive(Default)]
struct Tree {
    levels: Vec<Vec<(u32, Action)>>,
}

impl Tree {
    /// The deepest level.
    fn frontier(&self) -> &[(u32, Action)] {
        const ROOT: &[(u32, Action)] = &[(0, Action::Wait)];
        self.levels.last().map_or(ROOT, Vec::as_slice)
    }

    /// The trace to state `i` of the deepest level.
    fn trace(&self, mut i: usize) -> Vec<Action> {
        let mut trace = Vec::with_capacity(self.levels.len());
        for level in self.levels.iter().rev() {
            let (parent, a) = level[i];
            trace.push(a);
            i = parent as usize;
        }
        trace.reverse();
        trace
    }

    /// The trace to a child of state `parent` of the deepest level.
    fn child_trace(&self, parent: u32, a: Action) -> Vec<Action> {
        let mut t = self.trace(parent as usize);
        t.push(a);
        t
    }
}

/// One action taken from a frontier state.
struct Child {
    parent: u32,
    action: Action,
    fingerprint: u64,
    violation: Option<String>,
}

/// Takes every enabled action from each frontier state in `range`, in
/// order, until the first violation.
///
/// Frontier states come grouped by their ancestors, so consecutive traces
/// share long prefixes: the worlds along the last trace are kept, and a
/// state is rebuilt from the deepest one its trace shares, not from the
/// start.
fn expand(
    bounds: &Bounds,
    bug: Option<PlantedBug>,
    prefix: &[Action],
    tree: &Tree,
    range: std::ops::Range<usize>,
) -> Vec<Child> {
    let mut out = Vec::new();
    // `path[i]` is the world after the first `i` actions of `last` (which
    // follow the prefix).
    let mut path = vec![World::replay(bounds, bug, prefix)];
    let mut last: Vec<Action> = Vec::new();
    for i in range {
        // Empty at the root, before the first level.
        let trace = tree.trace(i);
        let shared = trace.iter().zip(&last).take_while(|(a, b)| a == b).count();
        path.truncate(shared + 1);
        for &a in &trace[shared..] {
            let mut w = path[path.len() - 1].fork();
            w.apply(a);
            path.push(w);
        }
        last = trace;
        let parent = path.last_mut().expect("the root is kept");
        parent.rehash();
        let parent = &*parent;
        for a in parent.enabled() {
            let mut w = parent.fork();
            w.apply(a);
            let violation = w.violation();
            let stop = violation.is_some();
            out.push(Child {
                // Frontier sizes are bounded by `max_states`, far below u32.
                parent: u32::try_from(i).expect("frontier index fits u32"),
                action: a,
                fingerprint: if stop { 0 } else { w.fingerprint() },
                violation,
            });
            if stop {
                return out;
            }
        }
    }
    out
}

/// The first action of `trace` that the world within `bounds` does not
/// allow where it comes (a budget spent, a message not in flight, a link's
/// younger message without a reordering left), with its position: a
/// trace that has none is a schedule the search itself could take.
pub fn first_disallowed(
    bounds: &Bounds,
    bug: Option<PlantedBug>,
    trace: &[Action],
) -> Option<(usize, Action)> {
    let mut w = World::new(bounds, bug);
    for (i, &a) in trace.iter().enumerate() {
        if !w.allows(a) {
            return Some((i, a));
        }
        w.apply(a);
    }
    None
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
    use paxos_core::proto::{Ballot, Body};

    #[test]
    fn replays_reach_the_same_state() {
        let bounds = Bounds::default();
        let t = [Action::Campaign(1), Action::Deliver(0), Action::Deliver(0)];
        let mut a = World::replay(&bounds, None, &t);
        let mut b = World::replay(&bounds, None, &t);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut c = World::replay(&bounds, None, &t[..2]);
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    /// A lagging host sends a `Ready`'s `messages` at once and holds the
    /// rest: the candidate's Prepare leaves, and its promise is durable,
    /// only at the flush, after which it lags on; a crash before the flush
    /// loses the promise.
    #[test]
    fn a_lagging_host_holds_its_persist_and_replies() {
        let bounds = Bounds {
            lags: 1,
            ..Bounds::default()
        };
        let campaign = [
            Action::Lag(1),
            Action::Campaign(1),
            Action::Deliver(0), // PrePrepare 1->2
            Action::Deliver(1), // its grant: phase 1 starts
        ];
        let prepares = |w: &World| {
            w.cluster
                .queue
                .iter()
                .filter(|m| matches!(m.body, Some(Body::Prepare(_))))
                .count()
        };
        let promised = |w: &World| w.cluster.storages[&1].rl().hard_state().promised();
        let held = World::replay(&bounds, None, &campaign);
        assert_eq!(prepares(&held), 0, "a Prepare waits for the persist");
        assert_eq!(promised(&held), Ballot::ZERO);
        assert!(held.enabled().contains(&Action::Flush(1)));
        let mut flushed = campaign.to_vec();
        flushed.push(Action::Flush(1));
        let mut w = World::replay(&bounds, None, &flushed);
        assert_eq!(prepares(&w), 2);
        assert_eq!(promised(&w), Ballot::new(1, 1));
        // The host lags on: node 2's promise elects node 1, and what the
        // election gives its host to do is held until the next flush.
        assert_eq!(w.held_readys(1), Some(0));
        let at = |w: &World, to: u64, prepare: bool| {
            w.cluster.queue.iter().position(|m| {
                m.to == to
                    && if prepare {
                        matches!(m.body, Some(Body::Prepare(_)))
                    } else {
                        matches!(m.body, Some(Body::Promise(_)))
                    }
            })
        };
        w.apply(Action::Deliver(at(&w, 2, true).expect("a Prepare to 2")));
        w.apply(Action::Deliver(at(&w, 1, false).expect("a Promise to 1")));
        assert!(w.cluster.nodes[&1].status().role == paxos_core::StateRole::Leader);
        assert!(w.held_readys(1).is_some_and(|n| n > 0));
        assert!(w.enabled().contains(&Action::Flush(1)));
        let mut lost = campaign.to_vec();
        lost.extend([Action::Crash(1), Action::Restart(1)]);
        let lost = World::replay(&bounds, None, &lost);
        assert_eq!(prepares(&lost), 0);
        assert_eq!(promised(&lost), Ballot::ZERO, "the crash lost the promise");
    }

    /// A forked world, one action on, is the world the longer trace
    /// replays to: the fork copies everything, and the hashes kept per node
    /// are those of the nodes as they are.
    #[test]
    fn forks_reach_the_states_replays_do() {
        let bounds = Bounds {
            reads: 1,
            transfers: 1,
            removals: 1,
            forgeries: 1,
            waits: 1,
            election_ticks: 3,
            lags: 1,
            ..Bounds::default()
        };
        let mut frontier = vec![Vec::new()];
        let mut checked = 0;
        for _ in 0..4 {
            let mut next = Vec::new();
            for trace in &frontier {
                let mut parent = World::replay(&bounds, None, trace);
                parent.rehash();
                for a in parent.enabled() {
                    let mut child = trace.clone();
                    child.push(a);
                    let mut forked = parent.fork();
                    forked.apply(a);
                    let mut replayed = World::replay(&bounds, None, &child);
                    assert_eq!(
                        forked.fingerprint(),
                        replayed.fingerprint(),
                        "{}",
                        show_trace(&child)
                    );
                    checked += 1;
                    next.push(child);
                }
            }
            frontier = next;
        }
        assert!(checked > 1_000, "{checked}");
    }

    #[test]
    fn a_tiny_bound_is_exhausted_clean() {
        let bounds = Bounds {
            depth: 4,
            reads: 0,
            transfers: 0,
            removals: 0,
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
