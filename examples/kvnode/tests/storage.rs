//! RedbStorage: durability, the state machine persisted with each Ready,
//! and whole nodes restarting from their files.

mod store;

use bytes::Bytes;
use kvnode::state::StateMachine;
use kvnode::storage::{ReadyWrite, RedbStorage};
use paxos_core::proto::{Ballot, ConfState, HardState, Message, ProstMessage};
use paxos_core::{Config, RawNode, StateRole, Storage, StorageError};
use std::collections::VecDeque;

use store::*;

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
            since: 0,
            ..Default::default()
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
fn the_state_machine_persists_with_the_ready_and_reloads_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let mut sm = StateMachine::default();
    {
        let s = RedbStorage::open(&path).expect("open");
        assert_eq!(
            s.load_state_machine().expect("empty"),
            StateMachine::default()
        );
        for batch in [1..=5u64, 6..=9] {
            let entries = apply_slots(&mut sm, batch, |slot| put(1, slot, "k", &slot.to_string()));
            let changes = sm.take_changes();
            assert_eq!(changes.blocks.len(), entries.len());
            persist_applied(&s, &entries, &changes);
        }
    }
    let s = RedbStorage::open(&path).expect("reopen");
    let loaded = s.load_state_machine().expect("load");
    assert_eq!(loaded, sm);
    assert_eq!(loaded.applied(), 9);
    assert_eq!(loaded.get(b"k"), Some(&Bytes::from("9")));
    // The blocks stay in the store; the state machine holds only the head.
    let blocks = s.blocks(1, usize::MAX).expect("blocks");
    assert_eq!(blocks.len(), 9);
    assert_eq!(kvnode::state::verify_chain(&blocks, &sm), Ok(()));
    let page: Vec<u64> = s
        .blocks(4, 2)
        .expect("a page")
        .iter()
        .map(|b| b.height)
        .collect();
    assert_eq!(page, [4, 5]);
}

#[test]
fn state_between_checkpoints_is_redone_from_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let mut sm = StateMachine::default();
    {
        let s = RedbStorage::open(&path).expect("open");
        // Only the fourth Ready is a checkpoint; the others store blocks.
        for (i, slots) in [1..=3u64, 4..=5, 6..=8, 9..=9, 10..=12]
            .into_iter()
            .enumerate()
        {
            let entries = apply_slots(&mut sm, slots, |slot| {
                put(
                    1 + slot % 3,
                    slot,
                    &format!("k{}", slot % 4),
                    &slot.to_string(),
                )
            });
            let changes = if i == 3 {
                sm.take_changes()
            } else {
                sm.take_chain_changes()
            };
            assert_eq!(changes.checkpoint, i == 3);
            assert_eq!(changes.kv.is_empty(), i != 3, "state tables wait");
            persist_applied(&s, &entries, &changes);
            // After every Ready, what a restart loads is exactly the state.
            let loaded = s.load_state_machine().expect("load");
            assert_eq!(loaded, sm, "after Ready {i}");
            for client in 1..=3 {
                assert_eq!(loaded.stored_sessions(), sm.stored_sessions(), "{client}");
            }
        }
    }
    let s = RedbStorage::open(&path).expect("reopen");
    let loaded = s.load_state_machine().expect("load");
    assert_eq!(loaded, sm);
    assert_eq!(loaded.get(b"k0"), Some(&Bytes::from("12")));
    assert_eq!(
        loaded.commands_since_checkpoint(),
        3,
        "slots 10..=12 redone"
    );
    drop(s);

    // A block above the checkpoint that was altered on disk is refused,
    // not redone into a state no other replica has.
    let chain: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("chain");
    write_behind(&path, |txn| {
        use redb::ReadableTable;
        let mut table = txn.open_table(chain).expect("chain");
        let mut block = {
            let v = table.get(11).expect("read").expect("block 11");
            kvnode::state::Block::decode(v.value()).expect("decode")
        };
        block.commands = vec![put(9, 1, "k0", "forged")];
        table
            .insert(11, block.encode_to_vec().as_slice())
            .expect("write");
    });
    let s = RedbStorage::open(&path).expect("reopen");
    assert!(matches!(
        s.load_state_machine(),
        Err(StorageError::Corrupt(why)) if why.contains("redoing")
    ));
}

struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Option<RawNode<RedbStorage>>>,
    disks: Vec<Option<RedbStorage>>,
    sms: Vec<StateMachine>,
    net: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let mut c = Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            nodes: vec![None, None, None],
            disks: vec![None, None, None],
            sms: vec![StateMachine::default(); 3],
            net: VecDeque::new(),
        };
        for i in 0..3 {
            c.start(i);
        }
        c
    }

    /// (Re)starts node i from its file alone: the state machine as saved,
    /// and the node told how far it got.
    fn start(&mut self, i: usize) {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let disk =
            RedbStorage::open(self.dir.path().join(format!("n{}.redb", i + 1))).expect("open");
        let sm = disk.load_state_machine().expect("load");
        let cfg = Config {
            seed: 5,
            applied: sm.applied(),
            ..Config::new(i as u64 + 1, vec![1, 2, 3])
        };
        self.nodes[i] = Some(RawNode::new(&cfg, disk.clone(), &logger).expect("restore"));
        self.disks[i] = Some(disk);
        self.sms[i] = sm;
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.disks[i] = None; // the file is closed: only what was synced remains
    }

    /// The kvnode Ready loop: apply decided entries, persist the Ready and
    /// the state machine's changes in one synced transaction, then send.
    fn drive(&mut self) {
        for _ in 0..100_000 {
            for i in 0..3 {
                let (Some(node), Some(disk)) = (self.nodes[i].as_mut(), self.disks[i].as_ref())
                else {
                    continue;
                };
                while node.has_ready() {
                    let mut rd = node.ready();
                    for e in rd.take_committed_entries() {
                        self.sms[i].apply(&e);
                    }
                    let changes = self.sms[i].take_changes();
                    disk.persist_ready(ReadyWrite {
                        hard_state: rd.hard_state(),
                        conf_state: rd.conf_state(),
                        entries: rd.entries(),
                        changes: Some(&changes),
                        ..ReadyWrite::default()
                    })
                    .expect("persist");
                    self.net.extend(rd.take_messages());
                    self.net.extend(rd.take_persisted_messages());
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
    for i in 0..100u64 {
        let d = put(7, i + 1, &format!("k{}", i % 10), &i.to_string());
        c.nodes[leader]
            .as_mut()
            .expect("live")
            .propose(d)
            .expect("leader");
    }
    c.drive();
    let before_crash = c.sms[leader].clone();
    // The 100 puts were proposed back to back: the library batched them.
    assert!(before_crash.applied() >= 1);
    for k in 0..10u64 {
        let last = Bytes::from((90 + k).to_string());
        assert_eq!(before_crash.get(format!("k{k}").as_bytes()), Some(&last));
    }
    assert!(
        c.sms.iter().all(|sm| *sm == before_crash),
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
    for i in 100..150u64 {
        let d = put(7, i + 1, &format!("k{}", i % 10), &i.to_string());
        c.nodes[new_leader]
            .as_mut()
            .expect("live")
            .propose(d)
            .expect("leader");
    }
    c.drive();
    // The old leader comes back from its file alone: state machine as saved
    // (nothing re-applied), then catches up.
    c.start(leader);
    assert_eq!(
        c.sms[leader], before_crash,
        "the saved state machine is exactly what was applied"
    );
    c.tick(20);
    let reference = c.sms[new_leader].clone();
    assert_eq!(reference.get(b"k9"), Some(&Bytes::from("149")));
    for (i, sm) in c.sms.iter().enumerate() {
        assert_eq!(
            *sm,
            reference,
            "node {} holds a different state or chain",
            i + 1
        );
        let disk = c.disks[i].as_ref().expect("running");
        let blocks = disk.blocks(1, usize::MAX).expect("blocks");
        assert_eq!(kvnode::state::verify_chain(&blocks, &reference), Ok(()));
    }
}
