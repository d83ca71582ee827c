//! A 3-node cluster in memory, its normal traffic and ticks interleaved
//! with arbitrary messages (any claimed sender, any ballots and slots, empty
//! and huge spans, snapshot chunks) decoded from the input. No input may
//! panic a node or make a host's `while has_ready()` loop spin; once the
//! garbage stops, the cluster elects a leader and commits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paxos_core::proto::{Message, ProstMessage};
use paxos_core::{Config, MemStorage, RawNode, StateRole};
use std::collections::VecDeque;

const N: u64 = 3;
/// Readys one input may cause at one node before the host loop spins.
const MAX_READIES: usize = 1000;

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    disks: Vec<MemStorage>,
    net: VecDeque<Message>,
    applied: Vec<u64>,
}

impl Cluster {
    fn new() -> Self {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let disks: Vec<MemStorage> = (0..N).map(|_| MemStorage::new()).collect();
        let nodes = (1..=N)
            .map(|id| {
                let cfg = Config {
                    seed: 7,
                    max_inflight_slots: 64,
                    max_snapshot_bytes: 1 << 16,
                    ..Config::new(id, (1..=N).collect::<Vec<_>>())
                };
                RawNode::new(&cfg, disks[(id - 1) as usize].clone(), &logger).expect("valid")
            })
            .collect();
        Cluster {
            nodes,
            disks,
            net: VecDeque::new(),
            applied: vec![0; N as usize],
        }
    }

    /// Runs every node's Ready loop: persist, send, apply, advance.
    fn drive(&mut self) {
        for i in 0..self.nodes.len() {
            let mut readies = 0;
            while self.nodes[i].has_ready() {
                readies += 1;
                assert!(readies < MAX_READIES, "node {} spins on has_ready", i + 1);
                let mut rd = self.nodes[i].ready();
                self.net.extend(rd.take_messages());
                {
                    let mut w = self.disks[i].wl();
                    if let Some(s) = rd.take_snapshot() {
                        if let Some(m) = &s.metadata {
                            self.applied[i] = self.applied[i].max(m.slot);
                        }
                        w.apply_snapshot(s);
                    }
                    w.store_entries(rd.entries());
                    if let Some(cs) = rd.conf_state() {
                        w.set_conf_state(cs.clone());
                    }
                    if let Some(hs) = rd.hard_state() {
                        w.set_hard_state(*hs);
                    }
                }
                self.net.extend(rd.take_persisted_messages());
                for e in rd.committed_entries() {
                    self.applied[i] = e.slot;
                }
                self.nodes[i].advance(rd);
            }
        }
    }

    fn deliver_one(&mut self) {
        if let Some(m) = self.net.pop_front() {
            if let Some(node) = self.nodes.get_mut((m.to.wrapping_sub(1)) as usize) {
                // Garbage may have left anything in flight: errors are fine.
                let _ = node.step(m);
            }
        }
    }

    fn tick(&mut self) {
        for n in &mut self.nodes {
            n.tick();
        }
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.status().role == StateRole::Leader)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cluster::new();
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        match op % 4 {
            0 => c.tick(),
            1 => {
                for _ in 0..(op / 4) {
                    c.deliver_one();
                }
            }
            2 => {
                if let Some(l) = c.leader() {
                    let _ = c.nodes[l].propose(vec![op]);
                }
            }
            _ => {
                // A forged message: a length, then that many bytes.
                let Some((&len, rest)) = input.split_first() else {
                    break;
                };
                let len = usize::from(len).min(rest.len());
                let (bytes, rest) = rest.split_at(len);
                input = rest;
                if let Ok(mut m) = <Message as ProstMessage>::decode(bytes) {
                    let to = 1 + u64::from(op / 4) % N;
                    m.to = to;
                    let _ = c.nodes[(to - 1) as usize].step(m);
                }
            }
        }
        c.drive();
    }
    // The garbage stops: within a bounded number of ticks the cluster must
    // elect a leader, and commit a proposal there.
    let mut committed = false;
    let mut target = None;
    for _ in 0..2000 {
        c.tick();
        for _ in 0..64 {
            c.drive();
            if c.net.is_empty() {
                break;
            }
            for _ in 0..c.net.len() {
                c.deliver_one();
            }
        }
        c.drive();
        if let Some(l) = c.leader() {
            match target {
                None => {
                    if let Ok(paxos_core::Proposed::At(at)) =
                        c.nodes[l].propose(b"after".to_vec())
                    {
                        target = Some((l, at.slot));
                    }
                }
                Some((tl, slot)) if c.applied[tl] >= slot => {
                    committed = true;
                    break;
                }
                Some((tl, _)) if tl != l => target = None,
                Some(_) => {}
            }
        }
    }
    assert!(
        committed,
        "no commit within 2000 ticks after the garbage stopped"
    );
});
