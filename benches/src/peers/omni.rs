//! OmniPaxos 0.2 behind [`Replicated`].

use crate::{Applied, Replicated};
use bytes::Bytes;
use omnipaxos::messages::Message;
use omnipaxos::storage::{Entry, NoSnapshot};
use omnipaxos::util::LogEntry;
use omnipaxos::{ClusterConfig, OmniPaxos, ServerConfig};
use omnipaxos_storage::memory_storage::MemoryStorage;

/// A command: the same ref-counted buffer the other libraries carry.
#[derive(Clone, Debug)]
pub struct Cmd(pub Bytes);

impl Entry for Cmd {
    type Snapshot = NoSnapshot;
}

type Node = OmniPaxos<Cmd, MemoryStorage<Cmd>>;

/// An OmniPaxos cluster with a stable leader.
pub struct OmniCluster {
    nodes: Vec<Node>,
    applied: Vec<Applied>,
    applied_idx: Vec<usize>,
    queue: Vec<Message<Cmd>>,
    leader: usize,
    delivered: u64,
}

fn server_config(pid: u64) -> ServerConfig {
    ServerConfig {
        pid,
        // No batching delay: appends go out at once, and back-to-back appends
        // still merge into the queued AcceptDecide.
        batch_size: 1,
        election_tick_timeout: 1,
        resend_message_tick_timeout: 100,
        flush_batch_tick_timeout: 200,
        buffer_size: 4096,
        leader_priority: 0,
    }
}

impl OmniCluster {
    /// Three servers, ticked until all follow one leader in the accept phase.
    pub fn elected() -> Self {
        let ids = vec![1, 2, 3];
        let cluster = ClusterConfig {
            configuration_id: 1,
            nodes: ids.clone(),
            flexible_quorum: None,
        };
        let nodes = ids
            .iter()
            .map(|&pid| {
                cluster
                    .clone()
                    .build_for_server(server_config(pid), MemoryStorage::default())
                    .expect("omnipaxos config")
            })
            .collect();
        let mut c = OmniCluster {
            nodes,
            applied: vec![Applied::default(); 3],
            applied_idx: vec![0; 3],
            queue: Vec::with_capacity(1024),
            leader: usize::MAX,
            delivered: 0,
        };
        let mut stable = 0;
        for _ in 0..10_000 {
            for n in &mut c.nodes {
                n.tick();
            }
            while c.pump() {}
            let first = c.nodes[0].get_current_leader();
            match first {
                Some((pid, true)) if c.nodes.iter().all(|n| n.get_current_leader() == first) => {
                    c.leader = pid as usize - 1;
                    stable += 1;
                }
                _ => stable = 0,
            }
            if stable >= 40 {
                return c;
            }
        }
        panic!("omnipaxos: no stable leader");
    }
}

impl std::fmt::Debug for OmniCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmniCluster")
            .field("leader", &self.leader)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl Replicated for OmniCluster {
    fn propose(&mut self, data: Bytes) {
        self.nodes[self.leader]
            .append(Cmd(data))
            .expect("omnipaxos: append");
    }

    fn pump(&mut self) -> bool {
        let mut did = false;
        for i in 0..3 {
            let node = &mut self.nodes[i];
            node.take_outgoing_messages(&mut self.queue);
            let decided = node.get_decided_idx();
            let from = self.applied_idx[i];
            if decided > from {
                did = true;
                for e in node.read_entries(from..decided).expect("decided entries") {
                    match e {
                        LogEntry::Decided(Cmd(b)) => self.applied[i].apply(i as u64 + 1, &b),
                        other => panic!("omnipaxos: unexpected entry {other:?}"),
                    }
                }
                self.applied_idx[i] = decided;
            }
        }
        if !self.queue.is_empty() {
            did = true;
            self.delivered += self.queue.len() as u64;
            for m in std::mem::take(&mut self.queue) {
                let to = m.get_receiver() as usize - 1;
                self.nodes[to].handle_incoming(m);
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
