//! Workloads for measuring paxos-core, shared by the criterion benches and
//! the `compare` binary.
//!
//! A cluster runs in one thread on `MemStorage`, with an instant FIFO
//! "network": every pump handles each node's `Ready` (persist, queue the
//! messages, apply, advance) and then delivers every queued message. Nothing
//! ticks while a workload is timed.
#![deny(missing_docs)]

#[cfg(feature = "peers")]
pub mod peers;

use bytes::Bytes;
use paxos_core::proto::Message;
use paxos_core::{Config, MemStorage, Proposed, RawNode, StateRole};
use std::time::{Duration, Instant};

/// Payload bytes per command.
pub const PAYLOAD_LEN: usize = 128;

/// Command `seq`: its sequence number (little endian) then filler derived
/// from it, so the state machine's hash covers real content.
pub fn payload(seq: u64) -> Bytes {
    let mut buf = [0u8; PAYLOAD_LEN];
    fill_payload(seq, &mut buf);
    Bytes::copy_from_slice(&buf)
}

/// Writes command `seq` (see [`payload`]) into `buf`: the workloads build
/// each command in one reused buffer and lend it to the library, which
/// copies or allocates as its API needs.
pub fn fill_payload(seq: u64, buf: &mut [u8; PAYLOAD_LEN]) {
    let (head, filler) = buf.split_at_mut(8);
    head.copy_from_slice(&seq.to_le_bytes());
    let s = seq as u8;
    for (i, b) in (0u8..).zip(filler) {
        *b = s.wrapping_add(i) ^ 0x5A;
    }
}

/// A node's state machine: commands applied, and an order-sensitive hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Commands applied.
    pub count: u64,
    /// Running hash of their payloads in apply order.
    pub hash: u64,
}

impl Applied {
    /// Applies the next command; panics if it is not the next in order, so
    /// a run can never skip or reorder silently.
    pub fn apply(&mut self, node: u64, data: &[u8]) {
        assert_eq!(data.len(), PAYLOAD_LEN, "node {node}: payload length");
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&data[..8]);
        assert_eq!(
            u64::from_le_bytes(seq),
            self.count,
            "node {node}: applied out of order"
        );
        let mut h = self.hash;
        for w in data.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            h = (h.rotate_left(23) ^ u64::from_le_bytes(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        self.hash = h ^ (h >> 29);
        self.count += 1;
    }

    /// The state after commands `0..n`.
    pub fn expected(n: u64) -> Applied {
        let mut a = Applied::default();
        for seq in 0..n {
            a.apply(0, &payload(seq));
        }
        a
    }
}

/// A cluster of paxos-core nodes in one thread.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes (index i is node i + 1).
    pub nodes: Vec<RawNode<MemStorage>>,
    /// Their storages.
    pub disks: Vec<MemStorage>,
    /// Their state machines.
    pub applied: Vec<Applied>,
    queue: Vec<Message>,
    /// The other message buffer: `pump` delivers one while the nodes fill
    /// the other.
    spare: Vec<Message>,
    /// The leader's index, once elected.
    pub leader: usize,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Nodes that are down: not driven, and messages to them are lost.
    pub down: Vec<bool>,
}

impl Cluster {
    /// `n` fresh nodes with the benchmark configuration, no leader yet.
    pub fn new(n: u64) -> Self {
        Cluster::with_quorums(n, None, None)
    }

    /// `n` fresh nodes like [`Cluster::new`], with the given phase-1 and
    /// phase-2 quorum sizes (`None`: a majority; see
    /// [`Config::phase1_quorum`]). Panics unless
    /// `phase1 + phase2 > n` and `phase2 >= 2` (the sizes `Config::validate`
    /// accepts).
    pub fn with_quorums(n: u64, phase1: Option<usize>, phase2: Option<usize>) -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=n).collect();
        let disks: Vec<MemStorage> = voters.iter().map(|_| MemStorage::new()).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let cfg = Config {
                    seed: 1,
                    max_msg_entries: 4096,
                    max_msg_bytes: 16 << 20,
                    max_ready_entries: 1 << 20,
                    max_ready_bytes: 1 << 30,
                    phase1_quorum: phase1,
                    phase2_quorum: phase2,
                    ..Config::new(id, voters.clone())
                };
                RawNode::new(&cfg, disks[(id - 1) as usize].clone(), &logger).expect("valid config")
            })
            .collect();
        Cluster {
            nodes,
            disks,
            applied: vec![Applied::default(); n as usize],
            queue: Vec::with_capacity(1024),
            spare: Vec::with_capacity(1024),
            leader: usize::MAX,
            delivered: 0,
            down: vec![false; n as usize],
        }
    }

    /// A cluster of `n` with a stable leader and nothing in flight.
    pub fn elected(n: u64) -> Self {
        Cluster::elected_with_quorums(n, None, None)
    }

    /// [`Cluster::with_quorums`], ticked to a stable leader (which needs
    /// `phase1` promises) with nothing in flight.
    pub fn elected_with_quorums(n: u64, phase1: Option<usize>, phase2: Option<usize>) -> Self {
        let mut c = Cluster::with_quorums(n, phase1, phase2);
        c.elect_by_ticks();
        c
    }

    /// Ticks until one node leads and every node follows it; returns ticks.
    pub fn elect_by_ticks(&mut self) -> u64 {
        for tick in 1..=10_000 {
            for node in &mut self.nodes {
                node.tick();
            }
            while self.pump() {}
            let leaders: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].status().role == StateRole::Leader)
                .collect();
            if let [l] = leaders[..] {
                let id = l as u64 + 1;
                if self.nodes.iter().all(|n| n.status().leader == Some(id)) {
                    self.leader = l;
                    return tick;
                }
            }
        }
        panic!("no stable leader after 10,000 ticks");
    }

    /// Handles every node's Ready once and delivers every queued message.
    /// False when nothing happened.
    pub fn pump(&mut self) -> bool {
        let mut did = false;
        for i in 0..self.nodes.len() {
            if self.down[i] {
                continue;
            }
            let node = &mut self.nodes[i];
            // Checked before the loop, as the raft-rs adapter does: the
            // compiler then sets the loop up only for a node with a Ready.
            if !node.has_ready() {
                continue;
            }
            did = true;
            loop {
                let mut rd = node.ready();
                // One write under the lock (atomic), taken only when there
                // is something to persist.
                let has_entries = !rd.entries().is_empty();
                if has_entries || rd.hard_state().is_some() {
                    let mut disk = self.disks[i].wl();
                    if let Some(hs) = rd.hard_state() {
                        disk.set_hard_state(*hs);
                    }
                    if has_entries {
                        disk.store_owned_entries(rd.drain_entries());
                    }
                }
                // Drained and read in place, the Ready's vectors go back
                // to the node in `advance` for reuse. Most Readys carry one
                // kind of message or none: an empty drain is skipped.
                if !rd.messages().is_empty() {
                    self.queue.extend(rd.drain_messages());
                }
                if !rd.persisted_messages().is_empty() {
                    self.queue.extend(rd.drain_persisted_messages());
                }
                for e in rd.committed_entries() {
                    // One command, several batched into the slot, or none.
                    let commands = e.command_slices().expect("the cluster frames its batches");
                    for (_, data) in commands {
                        self.applied[i].apply(i as u64 + 1, data);
                    }
                }
                node.advance(rd);
                if !node.has_ready() {
                    break;
                }
            }
        }
        if !self.queue.is_empty() {
            did = true;
            self.delivered += self.queue.len() as u64;
            // Swap in the spare so both keep their capacity.
            let mut batch = std::mem::replace(&mut self.queue, std::mem::take(&mut self.spare));
            for m in batch.drain(..) {
                let to = (m.to - 1) as usize;
                if !self.down[to] {
                    self.nodes[to]
                        .step(m)
                        .expect("cluster messages are well formed");
                }
            }
            self.spare = batch;
        }
        did
    }

    /// Proposes one command at the leader.
    pub fn propose(&mut self, data: &[u8]) {
        match self.nodes[self.leader].propose_slice(data) {
            Ok(Proposed::At(_)) => {}
            other => panic!("leader refused a proposal: {other:?}"),
        }
    }

    /// Lowest applied count over the nodes.
    pub fn min_applied(&self) -> u64 {
        self.applied.iter().map(|a| a.count).min().unwrap_or(0)
    }
}

/// A replicated cluster under test, elected and idle: ours or a peer's.
pub trait Replicated {
    /// Proposes one command at the leader. The command is lent: a library
    /// that keeps it copies it (or allocates, if its API takes ownership).
    fn propose(&mut self, data: &[u8]);
    /// One round: handle every node's output, deliver every queued message.
    /// False when nothing happened.
    fn pump(&mut self) -> bool;
    /// Each node's state machine.
    fn states(&self) -> &[Applied];
    /// Messages delivered so far.
    fn delivered(&self) -> u64;
    /// The lowest applied count over the nodes (no allocation: it runs in
    /// the timed loop).
    fn min_applied(&self) -> u64 {
        self.states().iter().map(|a| a.count).min().unwrap_or(0)
    }
}

impl Replicated for Cluster {
    fn propose(&mut self, data: &[u8]) {
        Cluster::propose(self, data);
    }
    fn pump(&mut self) -> bool {
        Cluster::pump(self)
    }
    fn states(&self) -> &[Applied] {
        &self.applied
    }
    fn delivered(&self) -> u64 {
        self.delivered
    }
}

/// The harness with no replication at all: each proposed command goes
/// into one log and straight to three state machines. Its rate is the
/// ceiling for any library in this harness (building each command, keeping
/// it, three applies and the pump loop cost it too), which puts a ratio
/// target in perspective.
#[derive(Debug)]
pub struct HarnessOnly {
    applied: Vec<Applied>,
    /// Every command, back to back, kept (as the libraries' storages keep
    /// theirs) until the run ends.
    log: Vec<u8>,
    /// Commands at the end of `log` not applied yet.
    pending: usize,
}

impl HarnessOnly {
    /// Three state machines, nothing applied.
    pub fn new() -> Self {
        HarnessOnly {
            applied: vec![Applied::default(); 3],
            log: Vec::new(),
            pending: 0,
        }
    }
}

impl Default for HarnessOnly {
    fn default() -> Self {
        HarnessOnly::new()
    }
}

impl Replicated for HarnessOnly {
    fn propose(&mut self, data: &[u8]) {
        assert_eq!(data.len(), PAYLOAD_LEN, "fixed-size commands");
        self.log.extend_from_slice(data);
        self.pending += 1;
    }
    fn pump(&mut self) -> bool {
        if self.pending == 0 {
            return false;
        }
        let from = self.log.len() - self.pending * PAYLOAD_LEN;
        for data in self.log[from..].chunks_exact(PAYLOAD_LEN) {
            for (i, a) in self.applied.iter_mut().enumerate() {
                a.apply(i as u64 + 1, data);
            }
        }
        self.pending = 0;
        true
    }
    fn states(&self) -> &[Applied] {
        &self.applied
    }
    fn delivered(&self) -> u64 {
        0
    }
}

/// One timed run's result.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    /// Commands applied on every node per second.
    pub ops_per_sec: f64,
    /// Messages delivered per command.
    pub msgs_per_cmd: f64,
    /// Wall time of the timed phase.
    pub elapsed: Duration,
}

/// Proposes `batch` commands at a time and pumps until all are applied on
/// every node, for `n` commands; then verifies every node applied exactly
/// commands `0..n` in order (outside the timed region).
pub fn run_workload<C: Replicated + ?Sized>(c: &mut C, batch: u64, n: u64) -> RunResult {
    let delivered = c.delivered();
    let start = Instant::now();
    let mut seq = 0;
    let mut buf = [0u8; PAYLOAD_LEN];
    while seq < n {
        let end = (seq + batch).min(n);
        while seq < end {
            fill_payload(seq, &mut buf);
            c.propose(&buf);
            seq += 1;
        }
        while c.min_applied() < end {
            assert!(c.pump(), "cluster went idle with commands outstanding");
        }
    }
    let elapsed = start.elapsed();
    verify(c, n);
    RunResult {
        elapsed,
        ops_per_sec: n as f64 / elapsed.as_secs_f64(),
        msgs_per_cmd: (c.delivered() - delivered) as f64 / n as f64,
    }
}

/// Panics unless every node applied exactly commands `0..n`, in order.
pub fn verify<C: Replicated + ?Sized>(c: &C, n: u64) {
    let want = Applied::expected(n);
    for (i, a) in c.states().iter().enumerate() {
        assert_eq!(*a, want, "node {} applied something else", i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_apply_everything_everywhere() {
        for (nodes, batch) in [(3, 64), (3, 1), (5, 64)] {
            let mut c = Cluster::elected(nodes);
            let r = run_workload(&mut c, batch, 1000);
            assert!(r.ops_per_sec > 0.0 && r.msgs_per_cmd > 0.0);
        }
    }

    #[test]
    fn flexible_quorums_still_apply_everything_everywhere() {
        // Q2 = 2 of 5: the leader commits on one follower's accept, yet
        // every follower still receives and applies every command.
        for batch in [64, 1] {
            let mut c = Cluster::elected_with_quorums(5, Some(4), Some(2));
            let r = run_workload(&mut c, batch, 1000);
            assert!(r.ops_per_sec > 0.0 && r.msgs_per_cmd > 0.0);
            assert_eq!(c.min_applied(), 1000);
        }
    }

    #[cfg(feature = "peers")]
    #[test]
    fn every_swept_peer_setting_applies_everything_everywhere() {
        use crate::peers::{omni, raft};
        for batch in [64, 1] {
            for size in omni::BATCH_SIZES {
                run_workload(
                    &mut omni::OmniCluster::elected_with_batch(size),
                    batch,
                    1000,
                );
            }
            for knobs in raft::Knobs::sweep() {
                run_workload(&mut raft::RaftCluster::elected_with(knobs), batch, 1000);
            }
        }
    }

    #[test]
    fn the_harness_alone_applies_everything_too() {
        for batch in [64, 1] {
            let mut h = HarnessOnly::new();
            let r = run_workload(&mut h, batch, 1000);
            assert!(r.ops_per_sec > 0.0);
            assert_eq!(
                h.log.len(),
                1000 * PAYLOAD_LEN,
                "every command kept, as storages keep theirs"
            );
            assert_eq!(h.pending, 0);
        }
    }

    #[test]
    #[should_panic(expected = "applied something else")]
    fn verification_catches_missing_commands() {
        let mut c = Cluster::elected(3);
        run_workload(&mut c, 64, 100);
        verify(&c, 101);
    }
}
