//! RedbStorage and snapshots: compaction behind a snapshot taken here,
//! a chunk per transaction, and a snapshot installed from the leader.

mod store;

use kvnode::state::StateMachine;
use kvnode::storage::{ReadyWrite, RedbStorage};
use paxos_core::proto::{Ballot, ConfState, HardState, ProstMessage};
use paxos_core::{Config, RawNode, Storage, StorageError};

use store::*;

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

/// A compaction never passes the applied slot the store holds, whatever
/// its target says (a store whose applied slot lags its snapshot's is
/// damaged): the entries above it stay readable.
#[test]
fn a_compaction_stops_at_the_applied_slot() {
    use kvnode::storage::Compaction;
    use paxos_core::proto::{Snapshot, SnapshotMetadata};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStorage::open(dir.path().join("node.redb")).expect("open");
    let entries = apply_puts(&mut StateMachine::default(), 1..=100);
    let mut behind = StateMachine::default();
    apply_puts(&mut behind, 1..=40);
    let changes = behind.take_changes();
    s.persist_ready(ReadyWrite {
        entries: &entries,
        changes: Some(&changes),
        created: Some(&Compaction {
            snapshot: Snapshot {
                metadata: Some(SnapshotMetadata {
                    slot: 100,
                    conf_state: Some(ConfState::default()),
                }),
                data: Default::default(),
            },
            compact_to: 90,
        }),
        ..ReadyWrite::default()
    })
    .expect("persist");
    assert_eq!(s.first_slot(), Ok(33), "one chunk");
    for _ in 0..3 {
        s.persist(None, &entries[99..]).expect("persist");
    }
    assert_eq!(s.first_slot(), Ok(41), "stopped at the applied slot");
    assert_eq!(s.entries(41, 100, 100, 1 << 20).expect("held").len(), 60);
}
