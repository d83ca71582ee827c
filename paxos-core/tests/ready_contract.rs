//! What a host may do within the `Ready` contract, and what the node must
//! still guarantee: Readys taken before earlier ones are advanced (peer
//! messages stepped in between), storage torn between a Ready's parts in
//! the order the contract allows, and transfers judged by the leadership
//! that asked for them. Each test is a regression for a hole a kinder host
//! never reached.

use paxos_core::proto::{
    Ballot, Body, ConfState, Entry, EntryKind, HardState, Heartbeat, InstallSnapshot, Message,
    PrePrepareReply, Prepare, Promise, Snapshot, SnapshotMetadata,
};
use paxos_core::{Config, MemStorage, RawNode, Ready, StateRole};

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn node(id: u64, voters: &[u64], storage: MemStorage) -> RawNode<MemStorage> {
    let cfg = Config::new(id, voters.to_vec());
    RawNode::new(&cfg, storage, &logger()).expect("node starts")
}

fn entry(slot: u64, ballot: Ballot, data: &'static str) -> Entry {
    Entry {
        slot,
        ballot: Some(ballot),
        kind: EntryKind::Normal as i32,
        data: data.into(),
    }
}

/// Persists a Ready's parts, whole.
fn persist(disk: &MemStorage, rd: &mut Ready) {
    let mut w = disk.wl();
    if let Some(s) = rd.take_snapshot() {
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

fn all_messages(rd: &mut Ready) -> Vec<Message> {
    let mut out = rd.take_messages();
    out.extend(rd.take_persisted_messages());
    out
}

fn prepare(
    from: u64,
    to: u64,
    ballot: Ballot,
    from_slot: u64,
    transfer: Option<Ballot>,
) -> Message {
    Message::new(
        from,
        to,
        Body::Prepare(Prepare {
            ballot: Some(ballot),
            from_slot,
            transfer,
        }),
    )
}

fn heartbeat(from: u64, to: u64, ballot: Ballot) -> Message {
    Message::new(
        from,
        to,
        Body::Heartbeat(Heartbeat {
            ballot: Some(ballot),
            committed: 0,
            seq: 1,
        }),
    )
}

/// A Prepare that arrives after a snapshot is installed but before the
/// Ready carrying it is persisted must not be answered from storage's older
/// values below the snapshot: reported beside a watermark past them, they
/// would be adopted as chosen.
#[test]
fn no_report_from_storage_under_an_unpersisted_snapshot() {
    let disk = MemStorage::new();
    let old = Ballot::new(1, 3);
    {
        // Slot 1 accepted in an old ballot, never chosen.
        let mut w = disk.wl();
        w.store_entries(&[entry(1, old, "stale")]);
        w.set_hard_state(HardState {
            promised: Some(old),
            committed: 0,
        });
    }
    let mut n = node(1, &[1, 2, 3], disk.clone());
    let lb = Ballot::new(2, 2);
    // Node 2 leads in ballot 2.2; node 1 follows it.
    n.step(heartbeat(2, 1, lb)).expect("heartbeat");
    let snap = Message::new(
        2,
        1,
        Body::InstallSnapshot(Box::new(InstallSnapshot {
            ballot: Some(lb),
            metadata: Some(SnapshotMetadata {
                slot: 2,
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![],
                    since: 0,
                    ..Default::default()
                }),
            }),
            offset: 0,
            data: "state after slot 2".into(),
            done: true,
        })),
    );
    n.step(snap).expect("snapshot");
    let mut installed = n.ready();
    assert!(installed.snapshot().is_some());
    // Not persisted yet: node 2 hands leadership to node 3, whose phase 1
    // starts at slot 1 (it has decided nothing).
    n.step(prepare(3, 1, Ballot::new(3, 3), 1, Some(lb)))
        .expect("prepare");
    let mut rd = n.ready();
    let out = all_messages(&mut rd);
    for m in &out {
        if let Some(Body::Promise(p)) = &m.body {
            panic!("promised, reporting from under the snapshot: {p:?}");
        }
    }
    // It cannot report slots 1..=2 from the snapshot: it refuses, as a node
    // that compacted them would, and says why (rule P5).
    assert!(
        out.iter()
            .any(|m| m.to == 3 && matches!(&m.body, Some(Body::Reject(r)) if r.compacted == 2)),
        "no compacted refusal: {out:?}"
    );
    persist(&disk, &mut installed);
    n.advance(installed);
    persist(&disk, &mut rd);
    n.advance(rd);
}

/// Phase 1 is won only once the candidate's own promise is durable: a host
/// that steps peers' Promises before advancing the Ready that carries it
/// must not get a leader before then.
#[test]
fn a_candidate_needs_its_own_durable_promise_to_win() {
    let disk = MemStorage::new();
    let mut n = node(1, &[1, 2, 3], disk.clone());
    n.campaign().expect("voter");
    let mut rd = n.ready();
    let pre = all_messages(&mut rd);
    let ballot = pre
        .iter()
        .find_map(|m| match &m.body {
            Some(Body::PrePrepare(p)) => p.ballot,
            _ => None,
        })
        .expect("pre-vote sent");
    n.advance(rd);
    let grant = Message::new(
        2,
        1,
        Body::PrePrepareReply(PrePrepareReply {
            ballot: Some(ballot),
            granted: true,
            promised: None,
        }),
    );
    n.step(grant).expect("grant");
    // The Ready with our own promise: taken, not yet persisted.
    let mut own = n.ready();
    assert!(own.hard_state().is_some_and(|hs| hs.promised() == ballot));
    for from in [2, 3] {
        let promise = Message::new(
            from,
            1,
            Body::Promise(Promise {
                ballot: Some(ballot),
                from_slot: 1,
                entries: vec![],
                committed: 0,
                next_slot: 0,
            }),
        );
        n.step(promise).expect("promise");
    }
    assert_eq!(
        n.status().role,
        StateRole::Candidate,
        "won phase 1 before its own promise was durable"
    );
    persist(&disk, &mut own);
    n.advance(own);
    assert_eq!(n.status().role, StateRole::Leader);
}

/// The contract lets a host persist a snapshot before the hard state after
/// it: a crash in between must not leave a node that cannot restart.
#[test]
fn restart_after_a_snapshot_persisted_without_its_hard_state() {
    let disk = MemStorage::new();
    disk.wl().apply_snapshot(Snapshot {
        metadata: Some(SnapshotMetadata {
            slot: 5,
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                learners: vec![],
                since: 0,
                ..Default::default()
            }),
        }),
        data: "state".into(),
    });
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.applied = 5; // the application restored the snapshot
    let n = RawNode::new(&cfg, disk, &logger()).expect("restarts");
    assert_eq!(n.status().committed, 5);
}

/// Entries persist before the hard state that promises their ballot: a
/// crash in between restarts the node with a promise covering them.
#[test]
fn restart_after_entries_persisted_without_their_promise() {
    let disk = MemStorage::new();
    let b = Ballot::new(4, 2);
    {
        let mut w = disk.wl();
        w.set_hard_state(HardState {
            promised: Some(Ballot::new(3, 1)),
            committed: 0,
        });
        w.store_entries(&[entry(1, b, "x"), entry(2, b, "y")]);
    }
    let mut n = node(1, &[1, 2, 3], disk);
    assert_eq!(n.status().promised, b);
    assert!(
        n.ready().hard_state().is_some_and(|hs| hs.promised() == b),
        "the raised promise is persisted again"
    );
}

/// A transfer is exempt from stickiness only at a voter that follows the
/// very leadership that asked for it; a stale one from an abandoned
/// campaign is refused, and promising a fresh one keeps the voter sticky.
#[test]
fn a_transfer_is_exempt_only_under_the_leadership_that_asked() {
    let disk = MemStorage::new();
    let mut n = node(1, &[1, 2, 3, 4, 5], disk.clone());
    let first = Ballot::new(1, 2);
    n.step(heartbeat(2, 1, first)).expect("heartbeat");
    let mut rd = n.ready();
    persist(&disk, &mut rd);
    n.advance(rd);
    let newer = Ballot::new(2, 4);
    n.step(heartbeat(4, 1, newer)).expect("heartbeat");
    let mut rd = n.ready();
    persist(&disk, &mut rd);
    n.advance(rd);
    let promised_to = |n: &mut RawNode<MemStorage>, disk: &MemStorage, to: u64| {
        let mut rd = n.ready();
        persist(disk, &mut rd);
        let granted = all_messages(&mut rd)
            .iter()
            .any(|m| m.to == to && matches!(m.body, Some(Body::Promise(_))));
        n.advance(rd);
        granted
    };
    // Node 3 was asked to take over by the leadership of ballot 1.2, which
    // node 1 no longer follows: node 4 leads now, and may hold a lease.
    n.step(prepare(3, 1, Ballot::new(5, 3), 1, Some(first)))
        .expect("prepare");
    assert!(
        !promised_to(&mut n, &disk, 3),
        "a stale transfer was promised"
    );
    assert_eq!(n.status().promised, newer);
    // The leadership node 1 follows asks: exempt.
    n.step(prepare(5, 1, Ballot::new(6, 5), 1, Some(newer)))
        .expect("prepare");
    assert!(promised_to(&mut n, &disk, 5));
    // Still sticky, now to node 5: another candidate is refused.
    n.step(prepare(3, 1, Ballot::new(7, 3), 1, None))
        .expect("prepare");
    assert!(
        !promised_to(&mut n, &disk, 3),
        "stickiness cleared by a transfer"
    );
}
