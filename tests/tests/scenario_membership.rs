//! Membership changes: learners join, catch up (snapshot and log) and are
//! promoted; voters and learners are removed; a removed leader steps down;
//! nothing is proposed past an undecided change.

use paxos_core::proto::{ConfChange, ConfChangeType};
use paxos_core::{ConfChangeError, DropReason, Error, StateRole};
use paxos_sim::scenario::{cmd, Cluster};

use ConfChangeType::{AddLearner, PromoteLearner, RemoveNode};

fn voters(c: &Cluster, id: u64) -> Vec<u64> {
    c.node(id).status().voters
}

/// Issue acceptance: every member of a 3-node cluster is replaced, one at a
/// time, by a new empty node, while clients write and logs are compacted.
/// Every decided value survives on the new members.
#[test]
fn replace_every_member_one_at_a_time_while_clients_write() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut next_cmd = 0;
    let mut write = |c: &mut Cluster, leader: u64, n: u64| {
        c.propose_cmds(leader, next_cmd..next_cmd + n);
        next_cmd += n;
        c.stabilize();
    };
    write(&mut c, 1, 50);
    let mut leader = 1;
    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        // Compact everywhere first: the new node must start from a snapshot.
        for id in c.nodes.keys().copied().collect::<Vec<_>>() {
            c.compact(id, 0);
        }
        let current = voters(&c, leader);
        c.add_node(new, &current);
        c.change(leader, AddLearner, new);
        write(&mut c, leader, 20);
        c.tick(3);
        assert_eq!(
            c.applied_slot[&new], c.applied_slot[&leader],
            "learner {new} caught up"
        );
        assert_eq!(
            c.installed.get(&new),
            Some(&1),
            "learner {new} started from a snapshot"
        );
        c.change(leader, PromoteLearner, new);
        write(&mut c, leader, 10);
        c.change(leader, RemoveNode, old);
        if old == leader {
            assert_ne!(
                c.node(old).status().role,
                StateRole::Leader,
                "removed leader stepped down"
            );
        }
        c.crash(old);
        let remaining: Vec<u64> = voters(&c, new);
        assert!(!remaining.contains(&old) && remaining.contains(&new));
        leader = c.await_leader(&remaining, 200);
        write(&mut c, leader, 20);
    }
    assert_eq!(voters(&c, leader), vec![4, 5, 6]);
    let want: Vec<bytes::Bytes> = (0..next_cmd).map(cmd).collect();
    for id in [4, 5, 6] {
        assert_eq!(c.node(id).status().voters, vec![4, 5, 6], "node {id}");
        // The first joiner caught up from a snapshot that recorded every
        // command before it; later ones likewise. All hold the full history.
        assert_eq!(
            c.applied_of(id),
            want.as_slice(),
            "node {id} lost or reordered values"
        );
    }
}

#[test]
fn nothing_is_proposed_past_an_undecided_change() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.add_node(4, &[1, 2, 3]);
    let cc = ConfChange {
        change_type: AddLearner as i32,
        node_id: 4,
        ..ConfChange::default()
    };
    let slot = c
        .nodes
        .get_mut(&1)
        .expect("live")
        .propose_conf_change(cc.clone())
        .expect("ok");
    assert_eq!(
        c.propose(1, cmd(0)),
        Err(Error::ProposalDropped(DropReason::ConfChangePending))
    );
    let again = c.nodes.get_mut(&1).expect("live").propose_conf_change(cc);
    assert_eq!(
        again,
        Err(Error::ProposalDropped(DropReason::ConfChangePending))
    );
    c.stabilize();
    assert!(c.node(1).status().committed >= slot);
    assert_eq!(c.node(1).status().learners, vec![4]);
    // Every member, the new learner included, learns the change.
    for id in 1..=4 {
        assert_eq!(c.node(id).status().learners, vec![4], "node {id}");
    }
    c.propose_cmds(1, 0..5);
    c.stabilize();
    assert_eq!(c.applied_of(4).len(), 5);
}

#[test]
fn invalid_changes_are_typed_errors() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut propose = |t: ConfChangeType, id| {
        c.nodes
            .get_mut(&1)
            .expect("live")
            .propose_conf_change(ConfChange {
                change_type: t as i32,
                node_id: id,
                ..ConfChange::default()
            })
    };
    assert_eq!(
        propose(AddLearner, 2),
        Err(ConfChangeError::AlreadyMember(2).into())
    );
    assert_eq!(
        propose(PromoteLearner, 3),
        Err(ConfChangeError::NotLearner(3).into())
    );
    assert_eq!(
        propose(RemoveNode, 7),
        Err(ConfChangeError::NotMember(7).into())
    );
    assert_eq!(propose(AddLearner, 0), Err(ConfChangeError::ZeroId.into()));
    let at_follower = c
        .nodes
        .get_mut(&2)
        .expect("live")
        .propose_conf_change(ConfChange {
            change_type: AddLearner as i32,
            node_id: 9,
            ..ConfChange::default()
        });
    assert_eq!(at_follower, Err(Error::NotLeader { leader: Some(1) }));
}

#[test]
fn a_learner_far_behind_is_not_promoted() {
    let mut c = Cluster::with_config(3, |cfg| cfg.max_inflight_slots = 8);
    c.elect(1);
    c.add_node(4, &[1, 2, 3]);
    c.change(1, AddLearner, 4);
    c.isolate(4);
    c.propose_cmds(1, 0..8);
    c.stabilize();
    c.propose_cmds(1, 8..16);
    c.stabilize();
    let promote = ConfChange {
        change_type: PromoteLearner as i32,
        node_id: 4,
        ..ConfChange::default()
    };
    let r = c
        .nodes
        .get_mut(&1)
        .expect("live")
        .propose_conf_change(promote);
    assert_eq!(r, Err(ConfChangeError::LearnerBehind(4).into()));
    c.heal();
    c.tick(3);
    c.change(1, PromoteLearner, 4);
    assert_eq!(voters(&c, 1), vec![1, 2, 3, 4]);
}

#[test]
fn membership_survives_restarts() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.add_node(4, &[1, 2, 3]);
    c.change(1, AddLearner, 4);
    c.tick(2);
    c.change(1, PromoteLearner, 4);
    c.change(1, RemoveNode, 3);
    c.crash(3);
    for id in [1, 2, 4] {
        c.crash(id);
        c.restart(id);
        assert_eq!(voters(&c, id), vec![1, 2, 4], "node {id} after restart");
    }
    let l = c.await_leader(&[1, 2, 4], 300);
    c.propose_cmds(l, 0..5);
    c.stabilize();
    for id in [1, 2, 4] {
        assert_eq!(c.applied_of(id).len(), 5);
    }
}

/// A removed node that never learned of its removal cannot disrupt a live
/// leader: every voter hears from the leader and refuses its pre-votes.
#[test]
fn a_removed_node_cannot_depose_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.change(1, RemoveNode, 3);
    c.heal();
    // Node 3 still believes it is a voter; it times out and campaigns.
    for _ in 0..100 {
        c.tick(1);
        assert_eq!(c.leaders(), vec![1], "node 3 disrupted the leader");
    }
    assert_eq!(voters(&c, 1), vec![1, 2]);
    c.propose_cmds(1, 0..3);
    c.stabilize();
    assert_eq!(c.applied_of(2).len(), 3);
}
