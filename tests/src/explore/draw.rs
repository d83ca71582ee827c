//! An explored trace as a space-time diagram: the explorer has no clock, so
//! each action takes one tick of the drawing. Messages are followed from
//! the action that sent them to the one that delivered (or dropped) them.

use super::world::World;
use super::{Action, Bounds};
use crate::diagram::{Diagram, NodeView, Role};
use crate::sim::TICK;
use paxos_core::proto::Message;
use paxos_core::PlantedBug;
use std::collections::VecDeque;

/// One message sent during the trace, and what became of it.
struct Sent {
    at: u64,
    msg: Message,
    /// Each copy's arrival, and whether its receiver was running then.
    arrivals: Vec<(u64, bool)>,
    /// Dropped by an action, or lost with the receiver's crash.
    dropped: bool,
}

/// The state after one action, for the drawing.
struct Frame {
    at: u64,
    nodes: Vec<NodeView>,
    violations: Vec<String>,
}

/// Replays `trace` and records it as a [`Diagram`] (see
/// [`crate::diagram::render_page`]).
pub fn diagram(bounds: &Bounds, bug: Option<PlantedBug>, trace: &[Action]) -> Diagram {
    let (sent, frames) = follow(bounds, bug, trace);
    let end = frames.last().map_or(0, |f| f.at);
    let mut d = Diagram::new();
    let mut step = 0u64;
    loop {
        let at = step * TICK;
        // Arrivals first: what they cause is sent in the same step.
        for s in &sent {
            for &(t, up) in &s.arrivals {
                if t == at {
                    d.deliver(at, &s.msg, up);
                }
            }
        }
        for s in sent.iter().filter(|s| s.at == at) {
            let times: Vec<u64> = if s.dropped {
                Vec::new()
            } else if s.arrivals.is_empty() {
                // Still in flight when the trace ends: never drawn arriving.
                vec![end + TICK]
            } else {
                s.arrivals.iter().map(|&(t, _)| t).collect()
            };
            d.send(at, s.msg.from, &s.msg, &times);
        }
        if let Some(f) = frames.iter().find(|f| f.at == at) {
            d.step(at, &f.nodes, &f.violations, true);
        }
        if at >= end {
            break;
        }
        step += 1;
    }
    let violations = frames.last().map_or(&[][..], |f| &f.violations[..]);
    d.finish(end, violations);
    d
}

/// Replays `trace`, following every message it sends.
fn follow(bounds: &Bounds, bug: Option<PlantedBug>, trace: &[Action]) -> (Vec<Sent>, Vec<Frame>) {
    let mut w = World::new(bounds, bug);
    let mut sent: Vec<Sent> = Vec::new();
    // Parallel to the cluster's queue: which `sent` each entry is.
    let mut ids: VecDeque<usize> = VecDeque::new();
    let mut frames = Vec::new();
    adopt(&w, 0, &mut ids, &mut sent);
    frames.push(frame(&w, 0));
    for (i, &a) in trace.iter().enumerate() {
        let at = (i as u64 + 1) * TICK;
        match a {
            Action::Deliver(k) | Action::Duplicate(k) => {
                let copies = if matches!(a, Action::Duplicate(_)) {
                    2
                } else {
                    1
                };
                if let Some(id) = ids.remove(k) {
                    let up = w.cluster.nodes.contains_key(&sent[id].msg.to);
                    sent[id].arrivals.extend((0..copies).map(|_| (at, up)));
                }
            }
            Action::Drop(k) => {
                if let Some(id) = ids.remove(k) {
                    sent[id].dropped = true;
                }
            }
            Action::Crash(n) => {
                // The cluster forgets what was on its way to a crashed node.
                ids.retain(|&id| {
                    let keep = sent[id].msg.to != n;
                    if !keep {
                        sent[id].dropped = true;
                    }
                    keep
                });
            }
            Action::Tick(_)
            | Action::Wait
            | Action::Campaign(_)
            | Action::Propose(_)
            | Action::Read(_)
            | Action::Transfer(..)
            | Action::Remove(..)
            | Action::Forge(_)
            | Action::Restart(_)
            | Action::Lag(_)
            | Action::Flush(_)
            | Action::Compact(_) => {}
        }
        w.apply(a);
        adopt(&w, at, &mut ids, &mut sent);
        frames.push(frame(&w, at));
    }
    (sent, frames)
}

/// Follows the messages the cluster queued since `ids` last matched it.
fn adopt(w: &World, at: u64, ids: &mut VecDeque<usize>, sent: &mut Vec<Sent>) {
    for m in w.cluster.queue.iter().skip(ids.len()) {
        ids.push_back(sent.len());
        sent.push(Sent {
            at,
            msg: m.clone(),
            arrivals: Vec::new(),
            dropped: false,
        });
    }
}

/// Who runs and what each has committed, after an action at `at`.
fn frame(w: &World, at: u64) -> Frame {
    let c = &w.cluster;
    Frame {
        at,
        nodes: (1..=w.left.nodes)
            .map(|id| NodeView {
                id,
                role: Role::Voter,
                present: true,
                committed: c.nodes.get(&id).map(|n| n.status().committed),
            })
            .collect(),
        violations: c.checker.violations().to_vec(),
    }
}
