//! A storage that fails on demand: the node must neither panic nor spin,
//! and must finish its work once storage recovers.

use paxos_core::proto::Entry;
use paxos_core::{InitialState, MemStorage, StateRole, Storage, StorageError};
use paxos_sim::scenario::Cluster;
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

#[test]
fn unavailable_storage_delays_catch_up_without_panics_or_spinning() {
    let down = Rc::new(Cell::new(false));
    let flag = down.clone();
    // Every node reads through a storage that fails while `down` is set; the
    // cluster persists to the disk underneath, and no node may hand out a
    // Ready after Ready without input (the cluster fails a node that spins).
    let mut c = Cluster::with_storage(
        3,
        |_| {},
        move |disk| Flaky {
            inner: disk.clone(),
            down: flag.clone(),
        },
    );
    c.elect(1);
    assert_eq!(c.node(1).status().role, StateRole::Leader);
    c.isolate(3);
    for i in 0..300u32 {
        c.propose(1, i.to_be_bytes().to_vec()).expect("leader");
        c.stabilize();
    }
    assert_eq!(c.applied_slot[&1], 300);
    assert_eq!(c.applied_of(1).len(), 300, "every slot a command");
    // Node 3 returns while every storage read fails: the leader must fetch
    // applied slots from storage to catch it up, and cannot.
    down.set(true);
    c.heal();
    c.tick(10);
    assert!(
        c.applied_slot[&3] < 300,
        "caught up without reading storage?"
    );
    assert_eq!(
        c.node(1).status().role,
        StateRole::Leader,
        "storage trouble deposed the leader"
    );
    down.set(false);
    c.tick(10);
    assert_eq!(c.applied_slot[&3], 300, "caught up once storage recovered");
}
