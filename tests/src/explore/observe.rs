//! What the explorer observes beyond the checker's view of persists,
//! messages and applies, as the simulator does (`sim/observe.rs`,
//! `sim/clients.rs`): stickiness at each grant (rules E2, E3), the index of
//! each confirmed read (R1), each node's membership against its decided
//! log and who may lead (M2, M3), and the clients' history
//! (`history.rs`).
//!
//! The explorer drives one node per action, and the kind host takes every
//! `Ready` right after it, so the messages queued by an action are that
//! node's (a wait ticks every node, and each tick's messages are judged
//! with their sender's state before that tick).

use crate::checker::Checker;
use crate::scenario::Cluster;
use paxos_core::proto::{Ballot, Body, Message};
use paxos_core::StateRole;
use std::collections::{BTreeMap, BTreeSet};

/// One node as the observer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Seen {
    /// Ticks this node took since the start.
    ticks: u64,
    /// The leader (or the transfer target it promised) it last heard
    /// from, and when (its ticks): its stickiness window.
    contact: Option<(u64, u64)>,
    /// The leadership it follows: the ballot of its last contact.
    followed: Option<Ballot>,
}

/// A node's role and promise before an input: what its grants are judged
/// against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Before {
    leader: bool,
    promised: Ballot,
}

/// The observer's record: part of the explored state, since it decides
/// which futures are violations.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct Observer {
    seen: BTreeMap<u64, Seen>,
    /// (ballot, target) of every `TimeoutNow` sent.
    timeouts_sent: BTreeSet<(Ballot, u64)>,
    /// Reads asked and not yet confirmed: context, and the highest slot
    /// some node had applied when it was asked (the read's floor).
    reads: BTreeMap<u64, u64>,
    /// Reads asked so far (the next context).
    asked: u64,
    /// The clients' history, checked for linearizability.
    pub(super) history: super::history::ClientHistory,
}

impl Observer {
    /// Node `id`'s role and promise now, if it runs.
    pub(super) fn before(c: &Cluster, id: u64) -> Option<Before> {
        c.nodes.get(&id).map(|n| {
            let st = n.status();
            Before {
                leader: st.role == StateRole::Leader,
                promised: st.promised,
            }
        })
    }

    /// Whether message `m`, about to reach `id` (in state `before`), is a
    /// transfer campaign exempt from stickiness there: only at a node that
    /// follows exactly the leadership that asked for it, or at that leader
    /// itself when it sent `TimeoutNow` to this candidate (rule E3).
    pub(super) fn exempt(&self, id: u64, before: Before, m: &Message) -> bool {
        let transfer = m.body.as_ref().and_then(Body::transfer);
        let followed = self.seen.get(&id).and_then(|s| s.followed);
        transfer.is_some_and(|t| {
            t == before.promised
                && if before.leader {
                    self.timeouts_sent.contains(&(t, m.from))
                } else {
                    followed == Some(t)
                }
        })
    }

    /// `m` reached `id` (in state `before`) and was taken: a leader's
    /// message in a ballot at least its promise renews its stickiness.
    pub(super) fn arrived(&mut self, id: u64, before: Before, m: &Message) {
        let ballot = match &m.body {
            Some(Body::Accept(a)) => a.ballot,
            Some(Body::Heartbeat(h)) => h.ballot,
            Some(Body::Decide(d)) => d.ballot,
            _ => None,
        };
        if let Some(b) = ballot.filter(|b| *b >= before.promised) {
            let s = self.seen.entry(id).or_default();
            s.contact = Some((m.from, s.ticks));
            s.followed = Some(b);
        }
    }

    /// The node took one tick.
    pub(super) fn tick_one(&mut self, id: u64) {
        self.seen.entry(id).or_default().ticks += 1;
    }

    /// The node crashed or restarted: it remembers no contact.
    pub(super) fn forget(&mut self, id: u64) {
        let s = self.seen.entry(id).or_default();
        s.contact = None;
        s.followed = None;
    }

    /// Judges the messages `sent` by nodes whose state before the input
    /// was `before`: every grant against stickiness, and every `TimeoutNow`
    /// recorded. `exempt`: the transfer candidate the input exempted.
    pub(super) fn sent(
        &mut self,
        checker: &mut Checker,
        election_ticks: u32,
        before: &BTreeMap<u64, Before>,
        exempt: Option<u64>,
        sent: &[Message],
    ) {
        for m in sent {
            if let Some(Body::TimeoutNow(t)) = &m.body {
                if let Some(b) = t.ballot {
                    self.timeouts_sent.insert((b, m.to));
                }
            }
            let Some(b) = before.get(&m.from) else {
                continue;
            };
            self.grant(checker, election_ticks, m, b.leader, exempt == Some(m.to));
        }
    }

    /// The simulator's stickiness rule, as `sim/observe.rs` states it: a
    /// node that heard from a live leader within `election_ticks` promises
    /// no one else, and a leader promises no one, but for a transfer asked
    /// for by exactly that leadership.
    fn grant(
        &mut self,
        checker: &mut Checker,
        election_ticks: u32,
        m: &Message,
        was_leader: bool,
        exempt: bool,
    ) {
        let id = m.from;
        let grant = match &m.body {
            Some(Body::Promise(_)) => m.to != id,
            Some(Body::PrePrepareReply(r)) => r.granted,
            // A campaign starts.
            Some(Body::PrePrepare(_) | Body::Prepare(_)) => {
                self.forget(id);
                return;
            }
            _ => false,
        };
        if !grant {
            return;
        }
        let s = self.seen.entry(id).or_default();
        let lease = s
            .contact
            .filter(|&(leader, at)| leader != m.to && s.ticks - at < u64::from(election_ticks));
        if let Some(Body::Promise(p)) = &m.body {
            // It follows no one now, unless it promised a transfer inside
            // its window: then it stays sticky to the transfer's target.
            let sticky = exempt && (was_leader || lease.is_some());
            s.contact = sticky.then_some((m.to, s.ticks));
            s.followed = p.ballot.filter(|_| sticky);
        }
        if exempt {
            return;
        }
        if was_leader {
            checker.leader_promised(id, m.to);
        } else if let Some((leader, at)) = lease {
            let age = s.ticks - at;
            checker.stickiness_broken(id, m.to, m.kind_name(), leader, age);
        }
    }

    /// A read was asked of a leader: its context, recorded with its floor.
    pub(super) fn ask_read(&mut self, c: &Cluster) -> u64 {
        self.asked += 1;
        let floor = c.applied_slot.values().copied().max().unwrap_or(0);
        self.reads.insert(self.asked, floor);
        self.history.get(self.asked);
        self.asked
    }

    /// A read asked with context `ctx` was dropped (refused).
    pub(super) fn read_refused(&mut self, ctx: u64) {
        self.reads.remove(&ctx);
    }

    /// Judges every read the cluster's nodes confirmed (rule R1): its index
    /// covers every slot some node had applied when it was asked.
    pub(super) fn confirmed_reads(&mut self, c: &mut Cluster) {
        for (id, confirmed) in std::mem::take(&mut c.reads) {
            for (index, ctx) in confirmed {
                let ctx = <[u8; 8]>::try_from(&ctx[..]).map(u64::from_be_bytes);
                let Ok(ctx) = ctx else {
                    continue;
                };
                if let Some(floor) = self.reads.remove(&ctx) {
                    if index < floor {
                        c.checker.read_below_floor(id, index, floor);
                    }
                    self.history.read_confirmed(ctx, index, &mut c.checker);
                }
            }
        }
    }

    /// Who may lead and what each node's membership is (rules M2, M3): a
    /// leader is a voter, and once everything decided is applied, a node's
    /// membership is the one its decided log yields.
    pub(super) fn membership(c: &mut Cluster) {
        for (&id, node) in &c.nodes {
            let st = node.status();
            if st.role == StateRole::Leader && !st.voters.contains(&id) {
                c.checker.non_voter_leads(id, st.promised);
            }
            if c.applied_slot.get(&id) != Some(&st.committed) || st.applied != st.committed {
                continue;
            }
            let Some(conf) = c.conf.get(&id) else {
                continue;
            };
            let mut voters = conf.voters.clone();
            let mut learners = conf.learners.clone();
            voters.sort_unstable();
            learners.sort_unstable();
            if st.voters != voters || st.learners != learners {
                c.checker.membership_diverged(
                    id,
                    st.committed,
                    (&st.voters, &st.learners),
                    (&voters, &learners),
                );
            }
        }
    }
}
