//! tikv raft-rs 0.7 behind [`Replicated`].

use crate::{Applied, Replicated};
use bytes::Bytes;
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

fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 3,
        // Whole batches in one append, many appends in flight, proposals
        // merged into the queued append, commits broadcast at once: the
        // library's fastest settings for this workload.
        max_size_per_msg: raft::NO_LIMIT,
        max_inflight_msgs: 256,
        batch_append: true,
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
    /// Three nodes, ticked until one leads and every node applied its
    /// first-term entry.
    pub fn elected() -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters = vec![1, 2, 3];
        let nodes = voters
            .iter()
            .map(|&id| {
                let store = MemStorage::new_with_conf_state((voters.clone(), vec![]));
                RawNode::new(&config(id), store, &logger).expect("raft config")
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
    fn propose(&mut self, data: Bytes) {
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
