//! The simulator's checker judges every step of a scripted cluster: a
//! planted protocol bug shows up as a violation, and fails the step that
//! made it.

use paxos_core::PlantedBug;
use paxos_sim::scenario::{cmd, Cluster};

fn commit_without_quorum(cfg: &mut paxos_core::Config) {
    cfg.planted_bug = Some(PlantedBug::CommitWithoutQuorum);
}

/// A leader cut off from every follower decides its own acceptance alone:
/// the checker sees it apply a slot no quorum chose.
#[test]
fn a_planted_bug_is_reported_by_the_checker() {
    let mut c = Cluster::with_config(3, commit_without_quorum);
    c.fail_fast = false;
    c.elect(1);
    c.assert_clean();
    c.isolate(1);
    c.propose_cmds(1, 0..1);
    c.stabilize();
    assert_eq!(c.applied_of(1), &[cmd(0)], "the planted bug took effect");
    assert!(
        c.checker
            .violations()
            .iter()
            .any(|v| v.contains("applied slot 1 before it was chosen")),
        "violations: {:?}",
        c.checker.violations()
    );
}

/// With `fail_fast` (the default) the same step fails the test.
#[test]
#[should_panic(expected = "the checker found violations")]
fn a_violation_fails_the_step_that_made_it() {
    let mut c = Cluster::with_config(3, commit_without_quorum);
    c.elect(1);
    c.isolate(1);
    c.propose_cmds(1, 0..1);
    c.stabilize();
}

/// Without a planted bug the same scenario is clean, and the slot is
/// decided only once the followers are back.
#[test]
fn the_same_scenario_without_the_bug_is_clean() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    c.propose_cmds(1, 0..1);
    c.stabilize();
    assert!(c.applied_of(1).is_empty());
    c.heal();
    c.tick(3);
    assert_eq!(c.applied_of(3), &[cmd(0)]);
    c.assert_clean();
}

/// Rule P2 counts the promises a candidate took in, not the ones sent to
/// it: a leader whose second promise was lost on the way led on too few,
/// whatever its peer sent.
#[test]
fn a_promise_counts_toward_an_election_once_delivered() {
    use paxos_core::proto::{Ballot, Body, Message, Prepare, Promise};
    use paxos_sim::checker::Checker;
    let ballot = Ballot::new(2, 1);
    let prepare = Message::new(
        1,
        2,
        Body::Prepare(Prepare {
            ballot: Some(ballot),
            from_slot: 1,
            transfer: None,
        }),
    );
    let promise = Message::new(
        2,
        1,
        Body::Promise(Promise {
            ballot: Some(ballot),
            from_slot: 1,
            ..Promise::default()
        }),
    );
    let elect = |deliver: bool| {
        let mut checker = Checker::new(vec![1, 2, 3]);
        checker.on_send(&prepare);
        checker.on_send(&promise);
        if deliver {
            checker.on_deliver(&promise);
        }
        checker.on_leader(1, ballot);
        checker.violations().to_vec()
    };
    assert_eq!(
        elect(true),
        Vec::<String>::new(),
        "its own and node 2's: a majority"
    );
    assert_eq!(
        elect(false),
        ["node 1 leads in ballot 2.1 on 1 promises, short of a phase-1 quorum of 2 of voters {1, 2, 3}"],
        "the promise sent but never delivered was not heard"
    );
}
