//! Single messages from the network, whatever their fields and whoever they
//! claim to be from: each is a typed error or changes nothing that matters,
//! and the cluster goes on electing and committing.

use paxos_core::proto::{
    Accept, Accepted, Ballot, Body, ConfState, Entry, HeartbeatReply, InstallSnapshot, Message,
    Prepare, Promise, SnapshotMetadata,
};
use paxos_core::{Config, Error, MemStorage, RawNode, StateRole, MAX_ROUND_JUMP};
use paxos_sim::scenario::{cmd, Cluster};

fn step(c: &mut Cluster, m: Message) -> paxos_core::Result<()> {
    let to = m.to;
    c.nodes.get_mut(&to).expect("live").step(m)
}

/// Proposes one command at `leader` and runs until every live node applied it.
fn commit_one(c: &mut Cluster, leader: u64, i: u64) {
    c.propose_cmds(leader, i..i + 1);
    c.tick(3);
    for &id in c.nodes.keys() {
        assert!(
            c.applied_of(id).contains(&cmd(i)),
            "node {id} did not apply command {i}"
        );
    }
}

/// Three forged Prepares with the highest ballot there is, one to each
/// member, each claiming to come from another member and to be a transfer:
/// they used to stop a cluster for good (every member promised a ballot
/// whose successor wrapped to round 0). Now each is refused, nothing is
/// promised, and the cluster commits at once, and again after every member
/// restarts from its storage.
#[test]
fn forged_highest_ballot_prepares_stop_nothing() {
    let mut c = Cluster::new(3);
    c.elect(1);
    commit_one(&mut c, 1, 0);
    let lb = c.node(1).status().promised;
    for (to, claimed) in [(1, 2), (2, 3), (3, 1)] {
        let forged = Message::new(
            claimed,
            to,
            Body::Prepare(Prepare {
                ballot: Some(Ballot::new(u64::MAX, claimed)),
                from_slot: 1,
                transfer: Some(lb),
            }),
        );
        assert!(matches!(step(&mut c, forged), Err(Error::Malformed { .. })));
        assert_eq!(
            c.node(to).status().promised,
            lb,
            "node {to} promised a forged ballot"
        );
    }
    commit_one(&mut c, 1, 1);
    for id in [1, 2, 3] {
        c.crash(id);
        c.restart(id);
    }
    let l = c.await_leader(&[1, 2, 3], 100);
    commit_one(&mut c, l, 2);
}

/// The most a forged ballot may bid is `MAX_ROUND_JUMP` above what a node
/// has seen: it may cost an election, never the cluster's future ballots.
#[test]
fn a_forged_ballot_within_the_jump_costs_at_most_an_election() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let lb = c.node(1).status().promised;
    let round = lb.round + MAX_ROUND_JUMP;
    for to in [2, 3] {
        let forged = Message::new(
            1,
            to,
            Body::Prepare(Prepare {
                ballot: Some(Ballot::new(round, 1)),
                from_slot: 1,
                transfer: Some(lb),
            }),
        );
        step(&mut c, forged).expect("within bounds");
    }
    // The real leader's next heartbeat meets the forged promise, it steps
    // down, and the next election bids above the forged round.
    let mut l = 0;
    for _ in 0..300 {
        c.tick(1);
        if let Some(&x) = c.leaders().first() {
            if c.node(x).status().promised.round > round {
                l = x;
                break;
            }
        }
    }
    assert_ne!(l, 0, "no leader above the forged round");
    commit_one(&mut c, l, 0);
}

/// An `Accepted` or heartbeat reply claiming `matched` far past anything
/// the leader sent that peer counted as its acceptance of slots it never
/// received. A reply now claims at most what was sent: a slot proposed but
/// not yet sent to anyone stays undecided, whatever the claim.
#[test]
fn a_forged_acceptance_counts_only_what_was_sent() {
    let mut c = Cluster::new(3);
    c.elect(1);
    // The forger speaks as member 2: what the leader decides on its word is
    // not what a quorum accepted, and the checker will say so (checked below).
    c.fail_fast = false;
    c.isolate(2);
    c.isolate(3);
    c.propose_cmds(1, 0..1);
    c.stabilize(); // slot 1 went out (and was lost)
    let b = c.node(1).status().promised;
    let last = c.node(1).status().last_slot;
    c.propose_cmds(1, 1..2); // slot last + 1: not sent to anyone yet
    let forged = Body::Accepted(Accepted {
        ballot: Some(b),
        matched: u64::MAX >> 2,
        last_slot: u64::MAX >> 2,
    });
    step(&mut c, Message::new(2, 1, forged)).expect("well formed");
    let st = c.node(1).status();
    let peer = st.progress.iter().find(|p| p.id == 2).expect("peer 2");
    assert!(
        peer.matched <= last,
        "peer 2 credited with slot {}",
        peer.matched
    );
    // The reply made the leader send slot last + 1 to peer 2 (lost too); a
    // heartbeat reply may now claim it, but the leader's own acceptance is
    // not durable yet, so nothing past `last` is decided.
    let forged = Body::HeartbeatReply(HeartbeatReply {
        ballot: Some(b),
        matched: u64::MAX >> 2,
        seq: 1,
    });
    step(&mut c, Message::new(2, 1, forged)).expect("well formed");
    let st = c.node(1).status();
    assert!(
        st.committed <= last,
        "decided slot {} before it was durable",
        st.committed
    );
    c.heal();
    commit_one(&mut c, 1, 2);
    // Node 1 applied the slots the forged replies vouched for (both sent to
    // node 2) before node 2 held them; nothing else went wrong.
    assert_eq!(
        c.checker.violations(),
        [
            "node 1 applied slot 1 before it was chosen",
            "node 1 applied slot 2 before it was chosen",
        ]
    );
}

/// A Promise whose watermark and report lie two million slots past the
/// candidate's made it write two million no-ops in one `step`; now the
/// candidate stands down instead, having written nothing.
#[test]
fn a_promise_far_ahead_fills_no_gap() {
    let disk = MemStorage::new();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.max_inflight_slots = 64;
    let mut n = RawNode::new(&cfg, disk, &logger).expect("starts");
    n.campaign().expect("voter");
    let mut rd = n.ready();
    let ballot = Ballot::new(1, 1);
    let _ = rd.take_messages();
    n.advance(rd);
    n.step(Message::new(
        2,
        1,
        Body::PrePrepareReply(paxos_core::proto::PrePrepareReply {
            ballot: Some(ballot),
            granted: true,
            promised: None,
        }),
    ))
    .expect("grant");
    let rd = n.ready();
    n.advance(rd); // our own promise is durable and counted
    let far = 2_000_000;
    let forged = Body::Promise(Promise {
        ballot: Some(ballot),
        from_slot: 1,
        entries: vec![Entry {
            slot: far,
            ballot: Some(Ballot::new(1, 2)),
            ..Entry::default()
        }],
        committed: far,
        next_slot: 0,
    });
    n.step(Message::new(2, 1, forged)).expect("well formed");
    let st = n.status();
    assert_ne!(st.role, StateRole::Leader);
    assert!(st.last_slot < 1000, "filled a gap up to {}", st.last_slot);
}

/// An Accept run `[u64::MAX, 0]` passed the contiguity check in release
/// (the sum wrapped) and panicked in debug.
#[test]
fn a_wrapping_accept_run_is_refused() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let b = c.node(1).status().promised;
    let e = |slot| Entry {
        slot,
        ballot: Some(b),
        ..Entry::default()
    };
    let forged = Message::new(
        1,
        2,
        Body::Accept(Accept {
            ballot: Some(b),
            entries: vec![e(u64::MAX), e(0)],
            committed: 0,
        }),
    );
    assert!(matches!(step(&mut c, forged), Err(Error::Malformed { .. })));
    commit_one(&mut c, 1, 0);
}

/// One chunk from "node 99", a stranger, at slot 1000 with voters `[99]`
/// was installed: the node then reported committed 1000, leader 99, voters
/// `[99]`. A snapshot is taken only from the leader a node follows in its
/// promised ballot; this one changes nothing.
#[test]
fn a_strangers_snapshot_is_not_installed() {
    let mut c = Cluster::new(3);
    c.elect(1);
    commit_one(&mut c, 1, 0);
    let before = c.node(2).status();
    let forged = Message::new(
        99,
        2,
        Body::InstallSnapshot(Box::new(InstallSnapshot {
            ballot: Some(Ballot::new(before.promised.round + 1, 99)),
            metadata: Some(SnapshotMetadata {
                slot: 1000,
                conf_state: Some(ConfState {
                    voters: vec![99],
                    learners: vec![],
                    since: 0,
                    ..Default::default()
                }),
            }),
            offset: 0,
            data: "yours now".into(),
            done: true,
        })),
    );
    step(&mut c, forged).expect("heard, and ignored");
    c.stabilize();
    let after = c.node(2).status();
    assert_eq!(after.committed, before.committed);
    assert_eq!(after.voters, vec![1, 2, 3]);
    assert_eq!(after.leader, Some(1));
    commit_one(&mut c, 1, 1);
}

/// A snapshot stream past `Config::max_snapshot_bytes` is refused.
#[test]
fn a_snapshot_past_its_byte_bound_is_refused() {
    let mut c = Cluster::with_config(3, |cfg| cfg.max_snapshot_bytes = 16);
    c.elect(1);
    let b = c.node(1).status().promised;
    let chunk = |offset: u64, done| {
        Message::new(
            1,
            2,
            Body::InstallSnapshot(Box::new(InstallSnapshot {
                ballot: Some(b),
                metadata: Some(SnapshotMetadata {
                    slot: 50,
                    conf_state: None,
                }),
                offset,
                data: vec![7u8; 10].into(),
                done,
            })),
        )
    };
    step(&mut c, chunk(0, false)).expect("within the bound");
    assert!(matches!(
        step(&mut c, chunk(10, true)),
        Err(Error::Malformed { .. })
    ));
    assert!(c.node(2).status().committed < 50);
}
