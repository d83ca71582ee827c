//! Whole-cluster scenarios through the public API only.

use paxos_core::proto::{Accept, Ballot, Body, Message};
use paxos_core::{Error, Proposed, StateRole};
use paxos_sim::scenario::{cmd, Cluster};

fn all_applied_equal(c: &Cluster, ids: &[u64], want: &[bytes::Bytes]) {
    for &id in ids {
        assert_eq!(
            c.applied_of(id),
            want,
            "node {id} applied a different sequence"
        );
    }
}

#[test]
fn three_nodes_elect_one_leader_by_ticks_alone() {
    let mut c = Cluster::new(3);
    let leader = c.await_leader(&[1, 2, 3], 100);
    c.tick(20);
    assert_eq!(
        c.leaders(),
        vec![leader],
        "exactly one leader, and it stays"
    );
    for id in 1..=3 {
        assert_eq!(
            c.node(id).status().leader,
            Some(leader),
            "node {id} knows the leader"
        );
    }
}

#[test]
fn five_nodes_elect_and_replicate() {
    let mut c = Cluster::new(5);
    let leader = c.await_leader(&[1, 2, 3, 4, 5], 100);
    let want: Vec<_> = (0..50).map(cmd).collect();
    for d in &want {
        c.propose(leader, d.clone())
            .expect("leader takes proposals");
    }
    c.stabilize();
    c.tick(3); // the decided watermark reaches followers on the next heartbeat
    all_applied_equal(&c, &[1, 2, 3, 4, 5], &want);
}

#[test]
fn ten_thousand_commands_applied_identically_everywhere() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let want: Vec<_> = (0..10_000).map(cmd).collect();
    for chunk in want.chunks(100) {
        for d in chunk {
            assert!(matches!(c.propose(1, d.clone()), Ok(Proposed::At(_))));
        }
        c.stabilize();
    }
    c.tick(3);
    all_applied_equal(&c, &[1, 2, 3], &want);
    assert_eq!(c.node(1).status().committed, c.node(2).status().committed);
}

#[test]
fn leader_crash_elects_a_new_leader_and_loses_nothing_decided() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut want: Vec<_> = (0..200).map(cmd).collect();
    for d in &want {
        c.propose(1, d.clone()).expect("leader");
    }
    c.stabilize();
    c.tick(3);
    all_applied_equal(&c, &[1, 2, 3], &want);
    let before = c.decided();

    c.crash(1);
    let new_leader = c.await_leader(&[2, 3], 200);
    assert_ne!(new_leader, 1);
    for i in 200..300 {
        c.propose(new_leader, cmd(i)).expect("new leader");
        want.push(cmd(i));
    }
    c.stabilize();
    c.tick(3);
    all_applied_equal(&c, &[2, 3], &want);
    let after = c.decided();
    for (slot, v) in &before {
        assert_eq!(after.get(slot), Some(v), "decided slot {slot} changed");
    }

    // The old leader comes back from its storage alone and catches up.
    c.restart(1);
    c.tick(30);
    all_applied_equal(&c, &[1, 2, 3], &want);
    assert_eq!(
        c.leaders(),
        vec![new_leader],
        "the rejoining node did not depose the leader"
    );
}

#[test]
fn crashed_follower_restarts_from_storage_and_catches_up() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..100);
    c.stabilize();
    c.crash(3);
    for i in 100..600 {
        c.propose(1, cmd(i)).expect("a majority is up");
        if i % 50 == 0 {
            c.stabilize();
        }
    }
    c.stabilize();
    let committed = c.node(1).status().committed;
    assert!(
        committed >= 600,
        "the majority kept committing: {committed}"
    );
    c.restart(3);
    c.tick(20);
    let want: Vec<_> = (0..600).map(cmd).collect();
    all_applied_equal(&c, &[1, 2, 3], &want);
}

#[test]
fn minority_side_commits_nothing_while_majority_continues() {
    let mut c = Cluster::new(5);
    c.elect(1);
    c.propose_cmds(1, 0..10);
    c.stabilize();
    c.tick(3);
    let committed_before = c.node(1).status().committed;
    c.partition(&[1, 2], &[3, 4, 5]);
    c.propose_cmds(1, 10..20);
    c.stabilize();
    assert_eq!(
        c.node(1).status().committed,
        committed_before,
        "minority leader committed"
    );
    assert_eq!(
        c.node(2).status().committed,
        committed_before,
        "minority follower committed"
    );

    let majority_leader = c.await_leader(&[3, 4, 5], 300);
    c.propose_cmds(majority_leader, 100..110);
    c.stabilize();
    c.tick(3);
    assert!(c.node(majority_leader).status().committed > committed_before + 9);
    assert!(c.node(1).status().committed == committed_before);
    assert!(
        c.leaders().iter().all(|&l| l == majority_leader),
        "the isolated leader stepped down"
    );

    c.heal();
    c.tick(30);
    let reference = c.applied_of(majority_leader).to_vec();
    all_applied_equal(&c, &[1, 2, 3, 4, 5], &reference);
    for i in 100..110 {
        assert!(
            reference.contains(&cmd(i)),
            "acknowledged majority write {i} lost"
        );
    }
}

#[test]
fn duplicated_and_reordered_messages_change_nothing() {
    fn run(duplicate: bool, reorder: bool) -> (Vec<bytes::Bytes>, u64) {
        let mut c = Cluster::new(3);
        c.duplicate = duplicate;
        c.reorder = reorder;
        c.elect(1);
        for round in 0..20 {
            for i in 0..25 {
                c.propose(1, cmd(round * 25 + i)).expect("leader");
            }
            c.stabilize();
        }
        c.tick(5);
        let applied = c.applied_of(1).to_vec();
        all_applied_equal(&c, &[1, 2, 3], &applied);
        (applied, c.delivered)
    }
    let (clean, clean_msgs) = run(false, false);
    let (messy, messy_msgs) = run(true, true);
    assert_eq!(clean.len(), 500);
    assert_eq!(clean, messy);
    assert!(messy_msgs > clean_msgs, "faults were actually injected");
}

#[test]
fn promised_never_decreases_across_elections_and_restarts() {
    let mut c = Cluster::new(3);
    for round in 0..6u64 {
        let id = round % 3 + 1;
        if !c.nodes.contains_key(&id) {
            c.restart(id);
        }
        c.tick(25);
        c.nodes
            .get_mut(&id)
            .expect("live")
            .campaign()
            .expect("voter");
        c.stabilize();
        c.tick(2);
        let leader = c.await_leader(&[1, 2, 3], 200);
        c.propose(leader, cmd(round)).expect("leader");
        c.stabilize();
        // Remember every node's promise, crash one, and check it comes back no lower.
        let victim = (round + 1) % 3 + 1;
        let promised = c.node(victim).status().promised;
        c.crash(victim);
        c.restart(victim);
        assert!(c.node(victim).status().promised >= promised);
    }
    // The checker judged every persisted hard state on the way.
    assert!(c.max_promised.values().all(|b| *b > Ballot::ZERO));
}

#[test]
fn rejoining_partitioned_follower_does_not_depose_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let ballot = c.node(1).status().promised;
    c.isolate(3);
    c.tick(100); // node 3 times out again and again
    assert_eq!(
        c.node(3).status().promised,
        ballot,
        "pre-vote kept node 3's round from inflating"
    );
    c.heal();
    c.tick(30);
    assert_eq!(c.leaders(), vec![1]);
    assert_eq!(
        c.node(1).status().promised,
        ballot,
        "the leader kept its ballot"
    );
    assert_eq!(c.node(3).status().leader, Some(1));
}

#[test]
fn leader_without_a_quorum_steps_down() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    c.tick(25);
    assert_ne!(c.node(1).status().role, StateRole::Leader);
}

#[test]
fn proposal_at_a_follower_names_the_leader_or_is_forwarded() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick(3);
    assert_eq!(
        c.propose(2, cmd(0)),
        Err(Error::NotLeader { leader: Some(1) })
    );

    let mut f = Cluster::with_config(3, |cfg| cfg.forward_proposals = true);
    f.elect(1);
    f.tick(3);
    assert_eq!(f.propose(2, cmd(7)), Ok(Proposed::Forwarded(1)));
    f.stabilize();
    f.tick(3);
    all_applied_equal(&f, &[1, 2, 3], &[cmd(7)]);
}

#[test]
fn bad_messages_are_typed_errors_and_change_nothing() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let before = c.node(2).status();
    let node = c.nodes.get_mut(&2).expect("live");
    let accept = |ballot, entries| {
        Body::Accept(Accept {
            ballot,
            entries,
            committed: 1_000_000,
        })
    };
    let entry = |slot| paxos_core::proto::Entry {
        slot,
        ..Default::default()
    };
    let cases = vec![
        (
            Message {
                from: 1,
                to: 3,
                body: None,
            },
            "wrong recipient",
        ),
        (
            // Requests from a leader are heard from any node (a lagging node
            // learns of members added after its decided prefix only from
            // them); replies only from members.
            Message::new(
                9,
                2,
                Body::Accepted(paxos_core::proto::Accepted {
                    ballot: Some(Ballot::new(9, 9)),
                    matched: 5,
                    last_slot: 5,
                }),
            ),
            "reply from an unknown peer",
        ),
        (
            Message {
                from: 1,
                to: 2,
                body: None,
            },
            "empty body",
        ),
        (Message::new(1, 2, accept(None, vec![])), "missing ballot"),
        (
            Message::new(1, 2, accept(Some(Ballot::new(99, 3)), vec![])),
            "ballot of another node",
        ),
        (
            Message::new(
                1,
                2,
                accept(Some(Ballot::new(99, 1)), vec![entry(5), entry(7)]),
            ),
            "holes",
        ),
        (
            Message::new(2, 2, accept(Some(Ballot::new(99, 2)), vec![])),
            "from itself",
        ),
    ];
    for (m, what) in cases {
        assert!(node.step(m).is_err(), "{what} was accepted");
    }
    assert_eq!(node.status(), before, "a rejected message changed state");
    assert!(!node.has_ready(), "a rejected message produced output");
}

#[test]
fn stale_leader_is_rejected_and_steps_down() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    // Nodes 2 and 3 elect a new leader while 1 still believes it leads.
    let new_leader = c.await_leader(&[2, 3], 300);
    c.heal();
    // Node 1's next heartbeat meets a higher promise and is rejected.
    if c.node(1).status().role == StateRole::Leader {
        c.tick(3);
    }
    assert_ne!(c.node(1).status().role, StateRole::Leader);
    c.tick(30);
    assert_eq!(c.node(1).status().leader, Some(new_leader));
}

#[test]
fn followers_learn_decisions_without_waiting_for_a_heartbeat() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let want: Vec<_> = (0..64).map(cmd).collect();
    for d in &want {
        c.propose(1, d.clone()).expect("leader");
    }
    c.stabilize(); // no tick: the leader announces its new watermark itself
    all_applied_equal(&c, &[1, 2, 3], &want);
}

#[test]
fn leader_refuses_proposals_beyond_its_inflight_limits() {
    use paxos_core::DropReason;
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.max_inflight_slots = 4;
        cfg.max_inflight_bytes = 64;
    });
    c.elect(1);
    c.isolate(1); // nothing gets chosen while cut off
    for i in 0..4 {
        c.propose(1, bytes::Bytes::from(vec![i as u8; 8]))
            .expect("within the window");
    }
    c.stabilize();
    assert_eq!(
        c.propose(1, bytes::Bytes::from_static(b"x")),
        Err(Error::ProposalDropped(DropReason::TooManyInflightSlots))
    );
    c.heal();
    c.stabilize();
    c.tick(3); // the heartbeat reply makes the leader resend what was lost
    assert_eq!(c.node(1).status().committed, 4, "the window drained");
    assert_eq!(
        c.propose(1, bytes::Bytes::from(vec![0u8; 65])),
        Err(Error::ProposalDropped(DropReason::EntryTooLarge))
    );
    c.propose(1, bytes::Bytes::from(vec![0u8; 40]))
        .expect("fits");
    assert_eq!(
        c.propose(1, bytes::Bytes::from(vec![0u8; 40])),
        Err(Error::ProposalDropped(DropReason::TooManyInflightBytes))
    );
}

#[test]
fn read_index_confirms_with_a_quorum_and_returns_the_decided_watermark() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..10);
    c.stabilize();
    let committed = c.node(1).status().committed;
    assert_eq!(
        c.nodes.get_mut(&2).expect("live").read_index(&b"r0"[..]),
        Err(Error::NotLeader { leader: Some(1) })
    );
    c.nodes
        .get_mut(&1)
        .expect("live")
        .read_index(&b"r1"[..])
        .expect("leader");
    c.stabilize();
    assert_eq!(
        c.reads.get(&1),
        Some(&vec![(committed, bytes::Bytes::from_static(b"r1"))])
    );
}

#[test]
fn a_cut_off_leader_never_confirms_a_read() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    c.nodes
        .get_mut(&1)
        .expect("live")
        .read_index(&b"stale"[..])
        .expect("still believes it leads");
    c.stabilize();
    let new_leader = c.await_leader(&[2, 3], 300);
    c.propose(new_leader, cmd(99)).expect("new leader");
    c.stabilize();
    assert!(
        !c.reads.contains_key(&1),
        "a leader without a quorum served a read"
    );
    c.heal();
    c.tick(30);
    assert!(
        !c.reads.contains_key(&1),
        "the stale read confirmed after healing"
    );
}

#[test]
fn single_node_reads_confirm_at_once() {
    let mut c = Cluster::new(1);
    c.elect(1);
    c.propose(1, cmd(1)).expect("leader");
    c.stabilize();
    c.nodes
        .get_mut(&1)
        .expect("live")
        .read_index(&b"x"[..])
        .expect("leader");
    c.stabilize();
    assert_eq!(c.reads.get(&1).map(Vec::len), Some(1));
    assert_eq!(c.reads[&1][0].0, 1);
}

#[test]
fn transfer_hands_leadership_over_and_loses_nothing() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..20);
    c.stabilize();
    let old_ballot = c.node(1).status().promised;
    c.nodes
        .get_mut(&1)
        .expect("live")
        .transfer_leader(3)
        .expect("leader");
    c.stabilize();
    assert_eq!(
        c.leaders(),
        vec![3],
        "the target took over without waiting for a timeout"
    );
    assert!(c.node(3).status().promised > old_ballot);
    c.propose_cmds(3, 20..30);
    c.stabilize();
    let want: Vec<_> = (0..30).map(cmd).collect();
    all_applied_equal(&c, &[1, 2, 3], &want);
}

#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.propose_cmds(1, 0..200);
    c.stabilize();
    c.heal();
    c.nodes
        .get_mut(&1)
        .expect("live")
        .transfer_leader(3)
        .expect("leader");
    c.stabilize();
    c.tick(3); // a heartbeat round lets the leader see what node 3 holds
    assert_eq!(c.leaders(), vec![3]);
    let want: Vec<_> = (0..200).map(cmd).collect();
    all_applied_equal(&c, &[1, 2, 3], &want);
}

#[test]
fn proposals_wait_during_a_transfer_and_resume_if_it_times_out() {
    use paxos_core::DropReason;
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.nodes
        .get_mut(&1)
        .expect("live")
        .transfer_leader(3)
        .expect("leader");
    assert_eq!(
        c.propose(1, cmd(0)),
        Err(Error::ProposalDropped(DropReason::TransferInProgress))
    );
    c.tick(c.config(1).election_ticks);
    assert_eq!(c.leaders(), vec![1], "the old leader kept its quorum");
    assert!(
        matches!(c.propose(1, cmd(1)), Ok(Proposed::At(_))),
        "resumed after the timeout"
    );
}

#[test]
fn transfer_errors_are_typed() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.tick(3);
    let n2 = c.nodes.get_mut(&2).expect("live");
    assert_eq!(
        n2.transfer_leader(3),
        Err(Error::NotLeader { leader: Some(1) })
    );
    let n1 = c.nodes.get_mut(&1).expect("live");
    assert_eq!(n1.transfer_leader(9), Err(Error::NotVoter(9)));
    assert_eq!(n1.transfer_leader(1), Ok(()), "to itself: nothing to do");
}

/// A host may take the next `Ready` before advancing the previous one
/// (persistence pipelined); each is persisted, sent and applied in order and
/// advanced in order. Nothing may be lost or applied twice.
#[test]
fn pipelined_readies_advanced_in_order() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut applied = Vec::new();
    for round in 0..50u64 {
        c.propose(1, cmd(round * 2)).expect("leader");
        let node = c.nodes.get_mut(&1).expect("live");
        let mut first = node.ready();
        node.propose(cmd(round * 2 + 1)).expect("leader");
        let mut second = node.ready();
        assert!(second.number() > first.number());
        c.checker.on_propose_bytes(&cmd(round * 2 + 1));
        for rd in [&mut first, &mut second] {
            for e in c.handle_ready(1, rd) {
                applied.push((e.slot, e.data));
            }
        }
        let node = c.nodes.get_mut(&1).expect("live");
        node.advance(first);
        node.advance(second);
        // The followers run the ordinary loop; the leader's next Readys too.
        for _ in 0..20 {
            c.deliver();
            while c.node(1).has_ready() {
                let mut rd = c.nodes.get_mut(&1).expect("live").ready();
                for e in c.handle_ready(1, &mut rd) {
                    applied.push((e.slot, e.data));
                }
                c.nodes.get_mut(&1).expect("live").advance(rd);
            }
            let leader_only = c.nodes.remove(&1).expect("live");
            c.process_readies();
            c.nodes.insert(1, leader_only);
        }
    }
    let slots: Vec<u64> = applied.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        slots,
        (1..=100).collect::<Vec<_>>(),
        "each slot applied once, in order"
    );
    let data: Vec<_> = applied.into_iter().map(|(_, d)| d).collect();
    assert_eq!(data, (0..100).map(cmd).collect::<Vec<_>>());
    all_applied_equal(&c, &[2, 3], &(0..100).map(cmd).collect::<Vec<_>>());
}

#[test]
fn restarting_with_applied_beyond_committed_is_a_typed_error() {
    use paxos_core::{Config, ConfigError, MemStorage, RawNode};
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let cfg = Config {
        applied: 5,
        ..Config::new(1, vec![1, 2, 3])
    };
    let err = RawNode::new(&cfg, MemStorage::new(), &logger).expect_err("nothing is committed");
    assert_eq!(
        err,
        Error::Config(ConfigError::AppliedBeyondCommitted {
            applied: 5,
            committed: 0
        })
    );
}

/// Copybreak: the leader copies a small proposal and lets the caller's
/// buffer go at once; a large one is kept as given, without a copy. Both
/// are applied byte for byte everywhere.
#[test]
fn small_proposals_release_the_callers_buffer_large_ones_are_shared() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let small = bytes::Bytes::from(vec![7u8; 100]);
    let large = bytes::Bytes::from(vec![9u8; 4096]);
    c.propose(1, small.clone()).expect("leader takes proposals");
    assert!(
        small.is_unique(),
        "the node keeps no handle on a small payload"
    );
    c.propose(1, large.clone()).expect("leader takes proposals");
    assert!(!large.is_unique(), "a large payload is shared, not copied");
    c.stabilize();
    c.tick(3);
    all_applied_equal(&c, &[1, 2, 3], &[small, large]);
}
