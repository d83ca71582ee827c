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
