//! tikv raft-rs 0.7 behind [`Replicated`].

use crate::{Applied, Replicated};
use raft::eraftpb::{EntryType, Message};
use raft::prelude::{Config, Entry, RawNode};
use raft::storage::MemStorage;
use raft::StateRole;

/// A raft-rs cluster with a stable leader.
pub struct RaftCluster {
    nodes: Vec<RawNode<MemStorage>>,
    applied: Vec<Applied>,
    queue: Vec<Message>,
    leader: usize,
    delivered: u64,
}

/// The raft-rs settings that bear on throughput here, which `compare`
/// sweeps (see [`Knobs::sweep`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// `Config::max_size_per_msg`: bytes of entries per append message.
    pub max_size_per_msg: u64,
    /// `Config::max_inflight_msgs`: appends in flight per follower.
    pub max_inflight_msgs: usize,
    /// `Config::batch_append`: proposals merged into an append still queued.
    pub batch_append: bool,
}

impl Default for Knobs {
    /// Whole batches in one append, many appends in flight, proposals merged
    /// into the queued append.
    fn default() -> Self {
        Knobs {
            max_size_per_msg: raft::NO_LIMIT,
            max_inflight_msgs: 256,
            batch_append: true,
        }
    }
}

impl Knobs {
    /// Every combination of `max_size_per_msg` in {unlimited, 1 MiB,
    /// 16 KiB}, `max_inflight_msgs` in {256, 4096} and `batch_append` on or
    /// off; the default first. (`skip_bcast_commit` stays off: with it on,
    /// followers learn a commit only from the next append, so the last
    /// commands would never apply everywhere.)
    pub fn sweep() -> Vec<Knobs> {
        let mut all = vec![Knobs::default()];
        for max_size_per_msg in [raft::NO_LIMIT, 1 << 20, 16 << 10] {
            for max_inflight_msgs in [256, 4096] {
                for batch_append in [true, false] {
                    let k = Knobs {
                        max_size_per_msg,
                        max_inflight_msgs,
                        batch_append,
                    };
                    if !all.contains(&k) {
                        all.push(k);
                    }
                }
            }
        }
        all
    }
}

impl std::fmt::Display for Knobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.max_size_per_msg == raft::NO_LIMIT {
            write!(f, "max_size_per_msg=unlimited")?;
        } else {
            write!(f, "max_size_per_msg={}KiB", self.max_size_per_msg >> 10)?;
        }
        write!(
            f,
            ",max_inflight_msgs={},batch_append={}",
            self.max_inflight_msgs, self.batch_append
        )
    }
}

fn config(id: u64, knobs: Knobs) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 3,
        max_size_per_msg: knobs.max_size_per_msg,
        max_inflight_msgs: knobs.max_inflight_msgs,
        batch_append: knobs.batch_append,
        // Commits broadcast at once, so followers apply without waiting.
        skip_bcast_commit: false,
        max_uncommitted_size: raft::NO_LIMIT,
        max_committed_size_per_ready: raft::NO_LIMIT,
        check_quorum: false,
        pre_vote: false,
        ..Default::default()
    }
}

fn apply(a: &mut Applied, node: usize, entries: Vec<Entry>) {
    for e in entries {
        if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
            a.apply(node as u64 + 1, &e.data);
        }
    }
}

impl RaftCluster {
    /// Three nodes with the default [`Knobs`], ticked until one leads and
    /// every node applied its first-term entry.
    pub fn elected() -> Self {
        RaftCluster::elected_with(Knobs::default())
    }

    /// [`RaftCluster::elected`] with the given settings.
    pub fn elected_with(knobs: Knobs) -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters = vec![1, 2, 3];
        let nodes = voters
            .iter()
            .map(|&id| {
                let store = MemStorage::new_with_conf_state((voters.clone(), vec![]));
                RawNode::new(&config(id, knobs), store, &logger).expect("raft config")
            })
            .collect();
        let mut c = RaftCluster {
            nodes,
            applied: vec![Applied::default(); 3],
            queue: Vec::with_capacity(1024),
            leader: usize::MAX,
            delivered: 0,
        };
        for _ in 0..10_000 {
            for n in &mut c.nodes {
                n.tick();
            }
            while c.pump() {}
            let leaders: Vec<usize> = (0..3)
                .filter(|&i| c.nodes[i].raft.state == StateRole::Leader)
                .collect();
            if let [l] = leaders[..] {
                let commit = c.nodes[l].raft.raft_log.committed;
                let settled = commit > 0
                    && c.nodes.iter().all(|n| {
                        n.raft.leader_id == l as u64 + 1 && n.raft.raft_log.applied == commit
                    });
                if settled {
                    c.leader = l;
                    return c;
                }
            }
        }
        panic!("raft: no stable leader");
    }

    fn handle_ready(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        if !node.has_ready() {
            return false;
        }
        let mut rd = node.ready();
        self.queue.extend(rd.take_messages());
        apply(&mut self.applied[i], i, rd.take_committed_entries());
        if !rd.entries().is_empty() {
            node.store().wl().append(rd.entries()).expect("append");
        }
        if let Some(hs) = rd.hs() {
            node.store().wl().set_hardstate(hs.clone());
        }
        self.queue.extend(rd.take_persisted_messages());
        let mut light = node.advance(rd);
        if let Some(commit) = light.commit_index() {
            node.store().wl().mut_hard_state().set_commit(commit);
        }
        self.queue.extend(light.take_messages());
        apply(&mut self.applied[i], i, light.take_committed_entries());
        node.advance_apply();
        true
    }
}

impl std::fmt::Debug for RaftCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCluster")
            .field("leader", &self.leader)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl Replicated for RaftCluster {
    fn propose(&mut self, data: &[u8]) {
        self.nodes[self.leader]
            .propose(vec![], data.to_vec())
            .expect("raft: proposal dropped");
    }

    fn pump(&mut self) -> bool {
        let mut did = false;
        for i in 0..3 {
            did |= self.handle_ready(i);
        }
        if !self.queue.is_empty() {
            did = true;
            self.delivered += self.queue.len() as u64;
            for m in std::mem::take(&mut self.queue) {
                let to = m.to as usize - 1;
                self.nodes[to].step(m).expect("raft: step");
            }
        }
        did
    }

    fn states(&self) -> &[Applied] {
        &self.applied
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }
}
