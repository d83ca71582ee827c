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

/// The `ServerConfig::batch_size` values `compare` sweeps. 1 is no
/// batching: appends go out at once, and back-to-back appends still merge
/// into the queued AcceptDecide. Larger sizes hold entries (at the leader,
/// and again at each follower) until the batch fills or a flush tick.
pub const BATCH_SIZES: [usize; 4] = [1, 64, 256, 1024];

fn server_config(pid: u64, batch_size: usize) -> ServerConfig {
    ServerConfig {
        pid,
        batch_size,
        election_tick_timeout: 1,
        resend_message_tick_timeout: 100,
        // Every tick flushes a partial batch; `pump` ticks only when the
        // cluster would otherwise be idle.
        flush_batch_tick_timeout: 1,
        buffer_size: 4096,
        leader_priority: 0,
    }
}

impl OmniCluster {
    /// Three servers without batching (`batch_size` 1), ticked until all
    /// follow one leader in the accept phase.
    pub fn elected() -> Self {
        OmniCluster::elected_with_batch(1)
    }

    /// [`OmniCluster::elected`] with the given `batch_size`. A batch that
    /// has not filled is flushed by a tick of every server (which also runs
    /// a leader-election heartbeat round) as soon as the cluster is
    /// otherwise idle: the earliest a flush timer could fire.
    pub fn elected_with_batch(batch_size: usize) -> Self {
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
                    .build_for_server(server_config(pid, batch_size), MemoryStorage::default())
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
    fn propose(&mut self, data: &[u8]) {
        self.nodes[self.leader]
            .append(Cmd(Bytes::copy_from_slice(data)))
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
        if !did && self.nodes.iter().any(|n| n.get_batched_len() > 0) {
            // Idle with a partial batch held somewhere: the flush timer.
            for n in &mut self.nodes {
                n.tick();
            }
            did = true;
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
