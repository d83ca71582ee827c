//! Flexible quorums (rule M4) on a five-node cluster with `Q1 = 4` and
//! `Q2 = 2`: commits need two acceptors, elections four.

use paxos_core::proto::{ConfChangeType, Quorums};
use paxos_core::Config;
use paxos_sim::scenario::{cmd, Cluster};

fn flexible(c: &mut Config) {
    c.phase1_quorum = Some(4);
    c.phase2_quorum = Some(2);
}

/// The cluster's sizes as the node reports them.
fn sizes(c: &Cluster, id: u64) -> (usize, usize) {
    let Quorums { phase1, phase2, .. } = c.node(id).status().quorums;
    (phase1, phase2)
}

#[test]
fn two_live_acceptors_commit_with_a_phase_two_quorum_of_two() {
    let mut c = Cluster::with_config(5, flexible);
    c.elect(1);
    assert_eq!(sizes(&c, 1), (4, 2));
    for id in [3, 4, 5] {
        c.crash(id);
    }
    c.propose_cmds(1, 0..20);
    c.stabilize();
    c.tick(3);
    let want: Vec<_> = (0..20).map(cmd).collect();
    assert_eq!(c.applied_of(1), want, "the leader applied every command");
    assert_eq!(c.applied_of(2), want, "so did its one live follower");
    c.assert_clean();
}

#[test]
fn majorities_do_not_commit_with_two_live_acceptors() {
    let mut c = Cluster::new(5);
    c.elect(1);
    assert_eq!(sizes(&c, 1), (3, 3));
    for id in [3, 4, 5] {
        c.crash(id);
    }
    c.propose_cmds(1, 0..20);
    c.tick(3);
    assert!(c.applied_of(1).is_empty(), "committed without a majority");
}

#[test]
fn an_election_needs_a_phase_one_quorum_of_four() {
    let mut c = Cluster::with_config(5, flexible);
    c.elect(1);
    c.propose_cmds(1, 0..5);
    c.stabilize();
    // The leader and another voter go: three remain, one short of Q1.
    c.crash(1);
    c.crash(2);
    c.tick(300);
    assert!(c.leaders().is_empty(), "elected with three of five");
    // A fourth voter back: now one of them wins and holds what was chosen.
    c.restart(2);
    let leader = c.await_leader(&[2, 3, 4, 5], 300);
    c.propose_cmds(leader, 5..10);
    c.stabilize();
    c.tick(3);
    let want: Vec<_> = (0..10).map(cmd).collect();
    for id in [2, 3, 4, 5] {
        assert_eq!(c.applied_of(id), want, "node {id}");
    }
    c.assert_clean();
}

#[test]
fn the_sizes_follow_the_voters_through_removals() {
    let mut c = Cluster::with_config(5, flexible);
    c.elect(1);
    // The node to remove is cut off first: the change commits without it
    // (Q2 = 2), and its late replies would come from a stranger.
    c.isolate(5);
    c.change(1, ConfChangeType::RemoveNode, 5);
    c.crash(5);
    c.tick(3);
    // Four voters: Q1 stays 4 (configured), Q2 stays 2.
    for id in 1..=4 {
        assert_eq!(sizes(&c, id), (4, 2), "node {id}");
    }
    c.isolate(4);
    c.change(1, ConfChangeType::RemoveNode, 4);
    c.crash(4);
    c.heal();
    c.tick(3);
    // Three voters: Q1 clamps to 3; 3 + 2 > 3.
    for id in 1..=3 {
        assert_eq!(sizes(&c, id), (3, 2), "node {id}");
    }
    // The smaller membership commits with two of its three voters...
    c.crash(3);
    c.propose_cmds(1, 0..5);
    c.stabilize();
    c.tick(3);
    assert_eq!(c.applied_of(2).len(), 5);
    // ...and elects with all three (Q1 = 3), never needing 4 or 5: a
    // transfer hands leadership to node 2, whose phase 1 needs 1 and 3.
    c.restart(3);
    c.tick(3);
    c.nodes
        .get_mut(&1)
        .expect("live")
        .transfer_leader(2)
        .expect("a voter");
    let leader = c.await_leader(&[2], 100);
    assert_eq!(leader, 2);
    c.propose_cmds(2, 5..10);
    c.stabilize();
    c.tick(3);
    for id in 1..=3 {
        assert_eq!(c.applied_of(id).len(), 10, "node {id}");
    }
    c.assert_clean();
}

#[test]
fn a_pair_that_need_not_intersect_is_a_typed_error() {
    let cfg = Config {
        phase1_quorum: Some(2),
        phase2_quorum: Some(3),
        ..Config::new(1, vec![1, 2, 3, 4, 5])
    };
    assert_eq!(
        cfg.validate(),
        Err(paxos_core::ConfigError::QuorumsDoNotIntersect {
            phase1: 2,
            phase2: 3,
            voters: 5
        })
    );
    let storage = paxos_core::MemStorage::new();
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    assert!(matches!(
        paxos_core::RawNode::new(&cfg, storage, &logger),
        Err(paxos_core::Error::Config(_))
    ));
}

/// The configured sizes describe a new cluster's voters: a restart takes
/// its membership and sizes from storage, so a configuration whose pair
/// does not fit its own (stale) voter list still restarts; a new node with
/// it is refused.
#[test]
fn a_restart_takes_its_sizes_from_storage() {
    let cfg = Config {
        phase1_quorum: Some(1),
        phase2_quorum: Some(3),
        ..Config::new(1, vec![1, 2, 3, 4])
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let fresh = paxos_core::MemStorage::new();
    assert!(paxos_core::RawNode::new(&cfg, fresh, &logger).is_err());
    let mut held = Config::new(1, vec![1, 2, 3]).initial_conf_state();
    (held.phase1_quorum, held.phase2_quorum) = (1, 3);
    let stored = paxos_core::MemStorage::new();
    stored.wl().set_conf_state(held);
    let node = paxos_core::RawNode::new(&cfg, stored, &logger).expect("restarts");
    let q = node.status().quorums;
    assert_eq!((q.voters, q.phase1, q.phase2), (3, 1, 3));
}
