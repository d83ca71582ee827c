//! Instance batching (rule L5): commands proposed between two `Ready`s
//! share one slot, each keeps its position, and the slot is chosen, lost
//! or recovered as one value.

use bytes::Bytes;
use paxos_core::proto::{batch_payload, Accept, Body, Entry, EntryKind, Message};
use paxos_core::{Config, Error, Position, Proposed};
use paxos_sim::scenario::{cmd, Cluster};

/// The library's batching limits (the scenario cluster turns batching off
/// unless told).
fn batched(cfg: &mut Config) {
    cfg.max_batch_commands = Config::default().max_batch_commands;
}

fn at(c: &mut Cluster, id: u64, data: impl Into<Bytes>) -> Position {
    match c.propose(id, data) {
        Ok(Proposed::At(p)) => p,
        other => panic!("node {id} did not take the proposal: {other:?}"),
    }
}

fn pos(slot: u64, index: u32) -> Position {
    Position { slot, index }
}

/// Every node applied exactly `want`, in order.
fn all_applied(c: &Cluster, want: &[Bytes]) {
    for &id in c.nodes.keys() {
        assert_eq!(c.applied_of(id), want, "node {id}'s commands");
    }
}

#[test]
fn proposals_between_readys_share_a_slot_and_keep_their_positions() {
    let mut c = Cluster::with_config(3, batched);
    c.elect(1);
    let first = c.node(1).status().last_slot + 1;
    let got: Vec<Position> = (0..5).map(|i| at(&mut c, 1, cmd(i))).collect();
    let want: Vec<Position> = (0..5).map(|i| pos(first, i)).collect();
    assert_eq!(got, want);
    c.stabilize();
    c.tick(3);
    all_applied(&c, &(0..5).map(cmd).collect::<Vec<_>>());
    let (kind, data) = c.decided()[&first].clone();
    assert_eq!(kind, EntryKind::Batch as i32, "one slot holds all five");
    let entry = Entry {
        slot: first,
        kind,
        data,
        ..Entry::default()
    };
    let handed: Vec<(Position, Bytes)> = entry
        .commands()
        .expect("framed")
        .map(|c| (c.position, c.data))
        .collect();
    assert_eq!(
        handed,
        want.into_iter().zip((0..5).map(cmd)).collect::<Vec<_>>()
    );
    c.assert_clean();
}

#[test]
fn a_lone_proposal_is_a_normal_entry_and_any_other_call_closes_the_slot() {
    let mut c = Cluster::with_config(3, batched);
    c.elect(1);
    let first = c.node(1).status().last_slot + 1;
    assert_eq!(at(&mut c, 1, cmd(0)), pos(first, 0));
    c.nodes.get_mut(&1).expect("live").tick();
    assert_eq!(
        at(&mut c, 1, cmd(1)),
        pos(first + 1, 0),
        "a tick sealed the slot"
    );
    assert_eq!(at(&mut c, 1, cmd(2)), pos(first + 1, 1));
    c.stabilize();
    c.tick(3);
    all_applied(&c, &(0..3).map(cmd).collect::<Vec<_>>());
    let decided = c.decided();
    assert_eq!(decided[&first], (EntryKind::Normal as i32, cmd(0)));
    assert_eq!(decided[&(first + 1)].0, EntryKind::Batch as i32);
}

#[test]
fn the_limits_on_commands_and_bytes_open_new_slots() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.max_batch_commands = 3;
        // The count (4 bytes), then 4 bytes of length per command.
        cfg.max_batch_bytes = 31;
    });
    c.elect(1);
    let s = c.node(1).status().last_slot + 1;
    let small = |i: u8| Bytes::from(vec![i; 5]); // 9 bytes framed: 3 fit
    let got: Vec<Position> = (0..7).map(|i| at(&mut c, 1, small(i))).collect();
    assert_eq!(
        got,
        [
            pos(s, 0),
            pos(s, 1),
            pos(s, 2),
            pos(s + 1, 0),
            pos(s + 1, 1),
            pos(s + 1, 2),
            pos(s + 2, 0)
        ],
        "three commands a slot"
    );
    // 12 bytes framed: two fit in 31 bytes, a third does not.
    let mid = |i: u8| Bytes::from(vec![i; 8]);
    c.nodes.get_mut(&1).expect("live").tick();
    let got: Vec<Position> = (0..3).map(|i| at(&mut c, 1, mid(i))).collect();
    assert_eq!(got, [pos(s + 3, 0), pos(s + 3, 1), pos(s + 4, 0)]);
    // Larger than a batch may be: a slot of its own, kept whole.
    let big = Bytes::from(vec![7u8; 64]);
    assert_eq!(at(&mut c, 1, big.clone()), pos(s + 5, 0));
    assert_eq!(at(&mut c, 1, mid(9)), pos(s + 6, 0));
    c.stabilize();
    c.tick(3);
    let mut want: Vec<Bytes> = (0..7).map(small).collect();
    want.extend((0..3).map(mid));
    want.extend([big, mid(9)]);
    all_applied(&c, &want);
    c.assert_clean();
}

/// The batch is one value: accepted by one follower only, it survives the
/// leader's crash whole (the new leader adopts it from the promise) and
/// every node applies all its commands, in their order.
#[test]
fn a_batch_is_recovered_whole_after_the_leader_crashes() {
    let mut c = Cluster::with_config(3, batched);
    c.elect(1);
    c.isolate(3);
    for i in 0..4 {
        at(&mut c, 1, cmd(i));
    }
    // The Accept reaches node 2 (and nothing gets back: node 1 crashes).
    let rd_taken = c.process_readies();
    assert!(rd_taken);
    c.crash(1);
    c.stabilize();
    c.heal();
    let leader = c.await_leader(&[2, 3], 300);
    at(&mut c, leader, cmd(4));
    c.stabilize();
    c.tick(3);
    let want: Vec<Bytes> = (0..5).map(cmd).collect();
    for id in [2, 3] {
        assert_eq!(c.applied_of(id), want, "node {id}'s commands");
    }
    c.assert_clean();
}

#[test]
fn a_malformed_batch_from_a_peer_is_refused_and_changes_nothing() {
    let mut c = Cluster::with_config(3, batched);
    c.elect(1);
    at(&mut c, 1, cmd(0));
    c.stabilize();
    let before = c.node(2).status();
    let ballot = Some(before.promised);
    let next = before.last_slot + 1;
    let good = batch_payload(&[b"fine", b"more"]).expect("two commands");
    let cut = good.slice(..good.len() - 1); // the lengths claim 8 bytes, 7 follow
    for data in [cut, Bytes::new(), Bytes::from_static(&[0xff; 11])] {
        let forged = Message::new(
            1,
            2,
            Body::Accept(Accept {
                ballot,
                entries: vec![Entry {
                    slot: next,
                    ballot,
                    kind: EntryKind::Batch as i32,
                    data,
                }],
                committed: before.committed,
            }),
        );
        let r = c.nodes.get_mut(&2).expect("live").step(forged);
        assert!(matches!(r, Err(Error::Malformed { .. })), "{r:?}");
        assert_eq!(c.node(2).status().last_slot, before.last_slot);
    }
    at(&mut c, 1, cmd(1));
    c.stabilize();
    c.tick(3);
    all_applied(&c, &[cmd(0), cmd(1)]);
}

#[test]
fn borrowed_and_owned_commands_share_slots_alike() {
    let mut c = Cluster::with_config(3, batched);
    c.elect(1);
    let s = c.node(1).status().last_slot + 1;
    let large = vec![5u8; 1000]; // past the copybreak: copied all the same
    let slice = |c: &mut Cluster, data: &[u8]| match c.propose_slice(1, data) {
        Ok(Proposed::At(p)) => p,
        other => panic!("node 1 did not take the proposal: {other:?}"),
    };
    // A slot mixing both, one of a borrowed command alone, one of a large
    // borrowed command alone.
    let mut got = vec![
        slice(&mut c, b"b0"),
        at(&mut c, 1, cmd(1)),
        slice(&mut c, b"b2"),
    ];
    c.nodes.get_mut(&1).expect("live").tick();
    got.push(slice(&mut c, b"alone"));
    c.nodes.get_mut(&1).expect("live").tick();
    got.push(slice(&mut c, &large));
    assert_eq!(
        got,
        [
            pos(s, 0),
            pos(s, 1),
            pos(s, 2),
            pos(s + 1, 0),
            pos(s + 2, 0)
        ]
    );
    c.stabilize();
    c.tick(3);
    let want = [
        Bytes::from_static(b"b0"),
        cmd(1),
        Bytes::from_static(b"b2"),
        Bytes::from_static(b"alone"),
        Bytes::from(large),
    ];
    all_applied(&c, &want);
    let decided = c.decided();
    assert_eq!(decided[&s].0, EntryKind::Batch as i32);
    for single in [s + 1, s + 2] {
        assert_eq!(
            decided[&single].0,
            EntryKind::Normal as i32,
            "one command is itself"
        );
    }
    assert_eq!(&decided[&(s + 1)].1[..], b"alone");
    c.assert_clean();
}
