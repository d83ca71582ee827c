//! A storage that fails on demand: the node must neither panic nor spin,
//! and must finish its work once storage recovers.

use paxos_core::proto::{Entry, EntryKind, Message};
use paxos_core::{Config, InitialState, MemStorage, RawNode, StateRole, Storage, StorageError};
use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone)]
struct Flaky {
    inner: MemStorage,
    down: Rc<Cell<bool>>,
}

impl Storage for Flaky {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.inner.initial_state()
    }
    fn entries(&self, lo: u64, hi: u64, n: usize, bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if self.down.get() {
            return Err(StorageError::Unavailable("disk on fire".into()));
        }
        self.inner.entries(lo, hi, n, bytes)
    }
    fn first_slot(&self) -> Result<u64, StorageError> {
        self.inner.first_slot()
    }
    fn last_slot(&self) -> Result<u64, StorageError> {
        self.inner.last_slot()
    }
    fn snapshot(&self) -> Result<paxos_core::proto::Snapshot, StorageError> {
        if self.down.get() {
            return Err(StorageError::Unavailable("disk on fire".into()));
        }
        self.inner.snapshot()
    }
}

struct Net {
    nodes: Vec<RawNode<Flaky>>,
    disks: Vec<MemStorage>,
    up: Vec<bool>,
    applied: Vec<u64>,
}

impl Net {
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut queue: Vec<Message> = Vec::new();
            for i in 0..self.nodes.len() {
                // A bounded loop: a node that kept reporting a Ready it cannot
                // make progress on would spin a host's `while has_ready()`.
                let mut readies = 0;
                while self.up[i] && self.nodes[i].has_ready() {
                    readies += 1;
                    assert!(readies < 1000, "node {} spins on has_ready", i + 1);
                    let mut rd = self.nodes[i].ready();
                    if let Some(hs) = rd.hard_state() {
                        self.disks[i].wl().set_hard_state(*hs);
                    }
                    self.disks[i].wl().store_entries(rd.entries());
                    queue.extend(rd.take_messages());
                    queue.extend(rd.take_persisted_messages());
                    for e in rd.take_committed_entries() {
                        assert_eq!(
                            e.slot,
                            self.applied[i] + 1,
                            "node {} applied out of order",
                            i + 1
                        );
                        self.applied[i] = e.slot;
                        assert_eq!(e.kind, EntryKind::Normal as i32);
                    }
                    self.nodes[i].advance(rd);
                }
            }
            if queue.is_empty() {
                return;
            }
            for m in queue {
                let to = (m.to - 1) as usize;
                if self.up[to] {
                    self.nodes[to].step(m).expect("well formed");
                }
            }
        }
        panic!("did not settle");
    }

    fn tick(&mut self, n: u32) {
        for _ in 0..n {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if self.up[i] {
                    node.tick();
                }
            }
            self.pump();
        }
    }
}

#[test]
fn unavailable_storage_delays_catch_up_without_panics_or_spinning() {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let down = Rc::new(Cell::new(false));
    let disks: Vec<MemStorage> = (0..3).map(|_| MemStorage::new()).collect();
    let nodes = (1..=3u64)
        .map(|id| {
            let storage = Flaky {
                inner: disks[(id - 1) as usize].clone(),
                down: down.clone(),
            };
            RawNode::new(&Config::new(id, vec![1, 2, 3]), storage, &logger).expect("valid")
        })
        .collect();
    let mut net = Net {
        nodes,
        disks,
        up: vec![true; 3],
        applied: vec![0; 3],
    };
    net.nodes[0].campaign().expect("voter");
    net.pump();
    assert_eq!(net.nodes[0].status().role, StateRole::Leader);
    net.up[2] = false;
    for i in 0..300u32 {
        net.nodes[0]
            .propose(i.to_be_bytes().to_vec())
            .expect("leader");
        net.pump();
    }
    assert_eq!(net.applied[0], 300);
    // Node 3 returns while every storage read fails: the leader must fetch
    // applied slots from storage to catch it up, and cannot.
    down.set(true);
    net.up[2] = true;
    net.tick(10);
    assert!(net.applied[2] < 300, "caught up without reading storage?");
    assert_eq!(
        net.nodes[0].status().role,
        StateRole::Leader,
        "storage trouble deposed the leader"
    );
    down.set(false);
    net.tick(10);
    assert_eq!(net.applied[2], 300, "caught up once storage recovered");
}
