//! RedbStorage: durability, bad files, and whole nodes restarting from it.

use bytes::Bytes;
use kvnode::state::StateMachine;
use kvnode::storage::{ReadyWrite, RedbStorage};
use paxos_core::proto::{Ballot, ConfState, Entry, EntryKind, HardState, Message, ProstMessage};
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
fn a_stored_slot_past_the_limit_is_corruption_not_an_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    // The compacted prefix and the applied slot set to the top of `u64`
    // behind the store's back: `first_slot` would be `u64::MAX + 1`.
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .expect("table");
            for key in ["compacted", "applied"] {
                t.insert(key, u64::MAX.to_be_bytes().as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let s = RedbStorage::open(&path).expect("reopen");
    for got in [s.first_slot(), s.last_slot(), s.compacted()] {
        assert!(
            matches!(&got, Err(StorageError::Corrupt(why)) if why.contains("past the limit")),
            "{got:?}"
        );
    }
    assert!(matches!(
        s.load_state_machine(),
        Err(StorageError::Corrupt(_))
    ));
}

#[test]
fn a_store_with_sessions_of_the_single_outcome_form_is_refused_and_kept() {
    use kvnode::state::{Outcome, StoredSession};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("sessions"))
                .expect("table");
            let old = StoredSession::from_outcome(5, &Outcome::Done).encode_to_vec();
            t.insert(9u64, old.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("earlier kvnode"), "{err}");
    // The old sessions are still there, for the kvnode that wrote them.
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::open(&path).expect("raw open");
    let txn = db.begin_read().expect("txn");
    let t = txn
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("sessions"))
        .expect("table");
    assert_eq!(t.len().expect("len"), 1);
}

/// A store an earlier kvnode wrote (entries, no format mark) is refused
/// and left as it was; a store marked with another format too.
#[test]
fn a_store_of_an_earlier_entry_format_is_refused_and_kept() {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    let raw = |f: &dyn Fn(&redb::WriteTransaction)| {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("txn");
        f(&txn);
        txn.commit().expect("commit");
    };
    let meta = redb::TableDefinition::<&str, &[u8]>::new("meta");
    let entries = redb::TableDefinition::<u64, &[u8]>::new("entries");
    raw(&|txn| {
        txn.open_table(meta)
            .expect("meta")
            .remove("entry_format")
            .expect("unmark");
        let old = entry(1, "a batch of an earlier kvnode").encode_to_vec();
        let mut t = txn.open_table(entries).expect("entries");
        t.insert(1u64, old.as_slice()).expect("insert");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("earlier kvnode"), "{err}");
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_read().expect("txn");
        assert_eq!(
            txn.open_table(entries)
                .expect("entries")
                .len()
                .expect("len"),
            1
        );
        let t = txn.open_table(meta).expect("meta");
        assert!(
            t.get("entry_format").expect("get").is_none(),
            "left unmarked"
        );
    }
    raw(&|txn| {
        let mut t = txn.open_table(meta).expect("meta");
        t.insert("entry_format", b"v9".as_slice()).expect("mark");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("does not read"), "{err}");
    // The format before batch trailers: its batches would read as garbage.
    raw(&|txn| {
        let mut t = txn.open_table(meta).expect("meta");
        t.insert("entry_format", b"library-batches".as_slice())
            .expect("mark");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("length in front"), "{err}");
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

fn put(client: u64, seq: u64, k: &str, v: &str) -> Bytes {
    use kvnode::state::{Command, Op};
    Command::encode_op(client, seq, Op::put(k.to_owned(), v.to_owned()))
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
    {
        use redb::ReadableTable;
        let db = redb::Database::open(&path).expect("open raw");
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(chain).expect("chain");
            let mut block = {
                let v = table.get(11).expect("read").expect("block 11");
                kvnode::state::Block::decode(v.value()).expect("decode")
            };
            block.commands = vec![put(9, 1, "k0", "forged")];
            table
                .insert(11, block.encode_to_vec().as_slice())
                .expect("write");
        }
        txn.commit().expect("commit");
    }
    let s = RedbStorage::open(&path).expect("reopen");
    assert!(matches!(
        s.load_state_machine(),
        Err(StorageError::Corrupt(why)) if why.contains("redoing")
    ));
}

/// `n` slots each putting key `k{slot}`, applied to `sm`.
fn apply_puts(sm: &mut StateMachine, slots: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    apply_slots(sm, slots, |slot| put(1, slot, &format!("k{slot}"), "v"))
}

/// Persists a Ready's entries with what applying them changed.
fn persist_applied(s: &RedbStorage, entries: &[Entry], changes: &kvnode::state::Changes) {
    s.persist_ready(ReadyWrite {
        entries,
        changes: Some(changes),
        ..ReadyWrite::default()
    })
    .expect("persist");
}

/// One entry per slot carrying `data(slot)`, applied to `sm`.
fn apply_slots(
    sm: &mut StateMachine,
    slots: std::ops::RangeInclusive<u64>,
    data: impl Fn(u64) -> Bytes,
) -> Vec<Entry> {
    let entries: Vec<Entry> = slots
        .map(|slot| Entry {
            data: data(slot),
            ..entry(slot, "")
        })
        .collect();
    for e in &entries {
        sm.apply(e);
    }
    entries
}

/// Applies puts at `1..=slot` and persists them in one `Ready` with a
/// snapshot at `slot` that compacts up to `compact_to`; returns the
/// snapshot.
fn persist_with_snapshot(
    s: &RedbStorage,
    sm: &mut StateMachine,
    cs: &ConfState,
    slot: u64,
    compact_to: u64,
) -> paxos_core::proto::Snapshot {
    use kvnode::storage::Compaction;
    use paxos_core::proto::{Snapshot, SnapshotMetadata};
    let entries = apply_puts(sm, 1..=slot);
    let changes = sm.take_changes();
    let snapshot = Snapshot {
        metadata: Some(SnapshotMetadata {
            slot,
            conf_state: Some(cs.clone()),
        }),
        data: sm.snapshot_data().encode_to_vec().into(),
    };
    s.persist_ready(ReadyWrite {
        entries: &entries,
        changes: Some(&changes),
        created: Some(&Compaction {
            snapshot: snapshot.clone(),
            compact_to,
        }),
        ..ReadyWrite::default()
    })
    .expect("persist");
    snapshot
}

#[test]
fn a_snapshot_compacts_the_log_behind_it_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let mut sm = StateMachine::default();
    let cs = ConfState {
        voters: vec![1, 2, 3],
        learners: vec![],
        since: 0,
        ..Default::default()
    };
    {
        let s = RedbStorage::open(&path).expect("open");
        s.init_membership(&cs).expect("membership");
        let snapshot = persist_with_snapshot(&s, &mut sm, &cs, 20, 15);
        assert_eq!(s.first_slot(), Ok(16));
        assert_eq!(s.last_slot(), Ok(20));
        assert_eq!(
            s.entries(10, 20, 100, 1 << 20),
            Err(StorageError::Compacted(15))
        );
        assert_eq!(s.entries(16, 20, 100, 1 << 20).expect("tail").len(), 5);
        assert_eq!(s.snapshot(), Ok(snapshot));
        // An entry the compacted prefix covers is never stored again.
        s.persist(None, &[entry(3, "late")]).expect("persist");
        assert_eq!(s.first_slot(), Ok(16));
    }
    let s = RedbStorage::open(&path).expect("reopen");
    assert_eq!(s.first_slot(), Ok(16));
    assert_eq!(s.snapshot_slot(), Ok(20));
    let loaded = s.load_state_machine().expect("load");
    assert_eq!(loaded, sm);
    assert_eq!(loaded.conf_state(), &cs);
    // A node restarts on it: applied (20) is past the compacted prefix.
    let hs = HardState {
        promised: Some(Ballot::new(1, 1)),
        committed: 20,
    };
    s.persist(Some(&hs), &[]).expect("hard state");
    let config = Config {
        applied: loaded.applied(),
        ..Config::new(1, vec![1, 2, 3])
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    assert!(RawNode::new(&config, s.clone(), &log).is_ok());
}

/// A snapshot far ahead of the compacted prefix drops the entries behind
/// it a chunk (32) per transaction, in slot order, across reopening: no one
/// sync deletes them all.
#[test]
fn a_long_compaction_proceeds_a_chunk_per_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let mut sm = StateMachine::default();
    let cs = ConfState {
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    let hs = |committed| HardState {
        promised: Some(Ballot::new(1, 1)),
        committed,
    };
    {
        let s = RedbStorage::open(&path).expect("open");
        s.init_membership(&cs).expect("membership");
        let snapshot = persist_with_snapshot(&s, &mut sm, &cs, 100, 90);
        assert_eq!(s.first_slot(), Ok(33), "one chunk");
        assert_eq!(s.snapshot(), Ok(snapshot));
        assert_eq!(
            s.entries(32, 40, 100, 1 << 20),
            Err(StorageError::Compacted(32))
        );
        assert_eq!(s.entries(33, 100, 100, 1 << 20).expect("held").len(), 68);
        s.persist(Some(&hs(100)), &[]).expect("persist");
        assert_eq!(s.first_slot(), Ok(65), "a second chunk");
    }
    let s = RedbStorage::open(&path).expect("reopen");
    assert_eq!(s.first_slot(), Ok(65), "the compacted prefix is durable");
    s.persist(Some(&hs(100)), &[]).expect("persist");
    assert_eq!(s.first_slot(), Ok(91), "the last chunk stops at the target");
    s.persist(Some(&hs(100)), &[]).expect("persist");
    assert_eq!(s.first_slot(), Ok(91), "nothing more to drop");
    assert_eq!(s.last_slot(), Ok(100));
    assert_eq!(s.entries(91, 100, 100, 1 << 20).expect("tail").len(), 10);
}

#[test]
fn an_installed_snapshot_replaces_the_state_and_the_log() {
    use paxos_core::proto::{Snapshot, SnapshotMetadata};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    // The leader's state at slot 30.
    let mut leader = StateMachine::default();
    apply_puts(&mut leader, 1..=30);
    let cs = ConfState {
        voters: vec![1, 2],
        learners: vec![3],
        since: 0,
        ..Default::default()
    };
    let snapshot = Snapshot {
        metadata: Some(SnapshotMetadata {
            slot: 30,
            conf_state: Some(cs.clone()),
        }),
        data: leader.snapshot_data().encode_to_vec().into(),
    };
    let data = StateMachine::decode_snapshot(30, &snapshot.data).expect("decode");
    // A follower that holds an older state and a stale log.
    let s = RedbStorage::open(&path).expect("open");
    let mut mine = StateMachine::default();
    let old = apply_puts(&mut mine, 1..=5);
    let changes = mine.take_changes();
    s.persist_ready(ReadyWrite {
        entries: &old,
        changes: Some(&changes),
        ..ReadyWrite::default()
    })
    .expect("persist");
    let mut installed = StateMachine::from_snapshot(&data, cs.clone());
    let next = apply_puts(&mut installed, 31..=32);
    let changes = installed.take_changes();
    s.persist_ready(ReadyWrite {
        installed: Some((&snapshot, &data)),
        entries: &next,
        changes: Some(&changes),
        ..ReadyWrite::default()
    })
    .expect("install");
    assert_eq!(s.first_slot(), Ok(31));
    assert_eq!(s.last_slot(), Ok(32));
    assert_eq!(s.snapshot(), Ok(snapshot));
    let loaded = s.load_state_machine().expect("load");
    assert_eq!(loaded, installed);
    assert_eq!(loaded.base().height, 30);
    let heights: Vec<u64> = s
        .blocks(0, 100)
        .expect("blocks")
        .iter()
        .map(|b| b.height)
        .collect();
    assert_eq!(heights, [31, 32], "the chain is held from the snapshot on");
    assert_eq!(loaded.len(), 32);
    assert_eq!(loaded.conf_state(), &cs);
    leader.take_changes();
    apply_puts(&mut leader, 31..=32);
    assert_eq!(loaded.head(), leader.head(), "the same chain from there on");
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

/// SplitMix64, for the damaged-file test's flips.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_damaged_file_is_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.redb");
    {
        let s = RedbStorage::open(&good).expect("open");
        let mut sm = StateMachine::default();
        let entries = apply_puts(&mut sm, 1..=40);
        s.persist(
            Some(&HardState {
                promised: Some(Ballot::new(2, 1)),
                committed: 40,
            }),
            &[],
        )
        .expect("hard state");
        persist_applied(&s, &entries, &sm.take_changes());
    }
    let bytes = std::fs::read(&good).expect("read");
    // Flips land where the file holds something: zeroed free space is
    // not worth a try.
    let used: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
    let (mut state, mut refused, mut opened) = (7u64, 0, 0);
    for round in 0..400 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + splitmix(&mut state) % 8 {
            let i = usize::try_from(splitmix(&mut state) % used.len() as u64).expect("index");
            damaged[used[i]] ^= 1 << (splitmix(&mut state) % 8);
        }
        let path = dir.path().join(format!("damaged-{round}.redb"));
        std::fs::write(&path, &damaged).expect("write");
        // Every read a restart makes: each answers or is a typed error.
        let outcome = std::panic::catch_unwind(|| match RedbStorage::open(&path) {
            Err(e) => Err(e.to_string()),
            Ok(s) => {
                let _ = s.initial_state();
                let _ = s.load_state_machine();
                let _ = s.entries(1, 40, 100, 1 << 20);
                let _ = (s.first_slot(), s.last_slot(), s.snapshot_slot());
                Ok(())
            }
        });
        match outcome {
            Ok(Ok(())) => opened += 1,
            Ok(Err(e)) => {
                assert!(e.contains("damaged") || e.contains("cannot open"), "{e}");
                refused += 1;
            }
            Err(_) => panic!("round {round}: the store panicked"),
        }
        let _ = std::fs::remove_file(&path);
    }
    eprintln!("{refused} damaged files refused at open, {opened} opened");
    assert!(refused > 0);
}
