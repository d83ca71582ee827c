//! RedbStorage: durability, bad files, and whole nodes restarting from it.

use bytes::Bytes;
use kvnode::storage::RedbStorage;
use paxos_core::proto::{Ballot, ConfState, Entry, EntryKind, HardState, Message};
use paxos_core::{Config, RawNode, StateRole, Storage, StorageError};
use std::collections::VecDeque;

fn entry(slot: u64, data: &str) -> Entry {
    Entry {
        slot,
        ballot: Some(Ballot::new(1, 1)),
        kind: EntryKind::Normal as i32,
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

#[test]
fn persisted_state_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    {
        let s = RedbStorage::open(&path).expect("open");
        let hs = HardState {
            promised: Some(Ballot::new(3, 2)),
            committed: 2,
        };
        s.persist(Some(&hs), &[entry(1, "a"), entry(2, "b"), entry(4, "d")])
            .expect("persist");
        s.persist(None, &[entry(2, "b2")])
            .expect("a later write replaces the slot");
        s.set_conf_state(&ConfState {
            voters: vec![1, 2, 3],
            learners: vec![],
        })
        .expect("conf");
    }
    let s = RedbStorage::open(&path).expect("reopen");
    let init = s.initial_state().expect("state");
    assert_eq!(init.hard_state.promised(), Ballot::new(3, 2));
    assert_eq!(init.hard_state.committed, 2);
    assert_eq!(init.conf_state.voters, vec![1, 2, 3]);
    let got = s.entries(1, 10, 100, 1 << 20).expect("entries");
    let slots: Vec<(u64, Bytes)> = got.into_iter().map(|e| (e.slot, e.data)).collect();
    assert_eq!(
        slots,
        vec![(1, "a".into()), (2, "b2".into()), (4, "d".into())]
    );
    assert_eq!(s.entries(1, 10, 2, 1 << 20).expect("bounded").len(), 2);
    assert_eq!(
        s.entries(1, 10, 100, 1)
            .expect("one oversize entry still goes")
            .len(),
        1
    );
    assert_eq!(s.last_slot(), Ok(4));
    assert_eq!(s.first_slot(), Ok(1));
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB; 10_000]).expect("write");
    let err = RedbStorage::open(&path).expect_err("garbage must not open");
    assert!(err.to_string().contains("cannot open"), "{err}");
    let missing = dir.path().join("no/such/dir/node.redb");
    assert!(RedbStorage::open(missing).is_err());
}

#[test]
fn a_corrupt_entry_is_reported_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let s = RedbStorage::open(&path).expect("open");
    s.persist(None, &[entry(1, "ok"), entry(2, "ok")])
        .expect("persist");
    drop(s);
    // Written behind the store's back: slot 3 holding another slot's entry,
    // and slot 5 holding bytes that are no entry at all.
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("entries"))
                .expect("table");
            use paxos_core::proto::ProstMessage;
            t.insert(3u64, entry(7, "misplaced").encode_to_vec().as_slice())
                .expect("insert");
            t.insert(5u64, [0xFFu8, 0xFF, 0xFF].as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let s = RedbStorage::open(&path).expect("reopen");
    assert!(matches!(
        s.entries(3, 3, 10, 1 << 20),
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        s.entries(5, 5, 10, 1 << 20),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(
        s.entries(1, 2, 10, 1 << 20).expect("healthy slots").len(),
        2
    );
}

struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Option<RawNode<RedbStorage>>>,
    disks: Vec<Option<RedbStorage>>,
    applied: Vec<Vec<Bytes>>,
    net: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let mut c = Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            nodes: vec![None, None, None],
            disks: vec![None, None, None],
            applied: vec![Vec::new(); 3],
            net: VecDeque::new(),
        };
        for i in 0..3 {
            c.start(i);
        }
        c
    }

    /// (Re)starts node i from its file alone; its application starts empty.
    fn start(&mut self, i: usize) {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let disk =
            RedbStorage::open(self.dir.path().join(format!("n{}.redb", i + 1))).expect("open");
        let cfg = Config {
            seed: 5,
            ..Config::new(i as u64 + 1, vec![1, 2, 3])
        };
        self.nodes[i] = Some(RawNode::new(&cfg, disk.clone(), &logger).expect("restore"));
        self.disks[i] = Some(disk);
        self.applied[i].clear();
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.disks[i] = None; // the file is closed: only what was synced remains
    }

    fn drive(&mut self) {
        for _ in 0..100_000 {
            for i in 0..3 {
                let (Some(node), Some(disk)) = (self.nodes[i].as_mut(), self.disks[i].as_ref())
                else {
                    continue;
                };
                while node.has_ready() {
                    let mut rd = node.ready();
                    disk.persist(rd.hard_state(), rd.entries())
                        .expect("persist");
                    self.net.extend(rd.take_messages());
                    for e in rd.take_committed_entries() {
                        if e.kind == EntryKind::Normal as i32 {
                            self.applied[i].push(e.data);
                        }
                    }
                    node.advance(rd);
                }
            }
            let Some(m) = self.net.pop_front() else {
                return;
            };
            if let Some(node) = self.nodes[(m.to - 1) as usize].as_mut() {
                node.step(m).expect("well formed");
            }
        }
        panic!("did not settle");
    }

    fn tick(&mut self, n: u32) {
        for _ in 0..n {
            for node in self.nodes.iter_mut().flatten() {
                node.tick();
            }
            self.drive();
        }
    }

    fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.nodes[i]
                .as_ref()
                .is_some_and(|n| n.status().role == StateRole::Leader)
        })
    }
}

#[test]
fn nodes_restart_from_their_files_and_lose_nothing_decided() {
    let mut c = Cluster::new();
    while c.leader().is_none() {
        c.tick(1);
    }
    let leader = c.leader().expect("leader");
    let mut want = Vec::new();
    for i in 0..100u32 {
        let d = Bytes::from(format!("cmd-{i}"));
        c.nodes[leader]
            .as_mut()
            .expect("live")
            .propose(d.clone())
            .expect("leader");
        want.push(d);
    }
    c.drive();
    assert!(
        c.applied.iter().all(|a| *a == want),
        "replicated before the crash"
    );

    // The leader dies; the others elect a new one and keep going.
    c.crash(leader);
    let mut ticks = 0;
    let new_leader = loop {
        c.tick(1);
        ticks += 1;
        assert!(ticks < 500, "no new leader");
        if let Some(l) = c.leader() {
            break l;
        }
    };
    for i in 100..150u32 {
        let d = Bytes::from(format!("cmd-{i}"));
        c.nodes[new_leader]
            .as_mut()
            .expect("live")
            .propose(d.clone())
            .expect("leader");
        want.push(d);
    }
    c.drive();
    // The old leader comes back from its file alone, re-applies and catches up.
    c.start(leader);
    c.tick(20);
    for (i, a) in c.applied.iter().enumerate() {
        assert_eq!(*a, want, "node {} applied a different history", i + 1);
    }
}
