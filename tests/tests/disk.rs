//! Failing syncs (rule D4): a host that stops the node when a sync fails
//! stays safe, also when it answers the clients of decided entries before
//! the sync (rule D5), and a host that sends a `Ready`'s replies before its
//! sync is caught.

use paxos_core::proto::ConfChangeType;
use paxos_sim::disk::{Disk, Reached};
use paxos_sim::host::HostMix;
use paxos_sim::scenario::{cmd, Cluster};
use paxos_sim::{run, FaultMix, SimOptions};

/// The planted host bug (replies before the sync) is
/// caught within 10 seeds once syncs fail (at seed 0 with a failing disk of
/// rate 1/50), and in none of these 20 with a healthy disk: only a failed
/// sync (or a rare torn crash) shows what was revealed too early.
#[test]
fn acking_before_the_sync_is_caught_with_a_failing_disk() {
    let opts = |seed, disk| SimOptions {
        seed,
        disk: Some(disk),
        ack_before_sync: true,
        ..SimOptions::default()
    };
    let caught = (0..10).find(|&seed| !run(opts(seed, Disk::failing(0.02))).violations.is_empty());
    assert!(
        caught.is_some(),
        "not caught in 10 seeds with a failing disk"
    );
    for seed in 0..20 {
        let out = run(opts(seed, Disk::healthy()));
        assert!(
            out.violations.is_empty(),
            "seed {seed}: caught without a failing sync: {:?}",
            out.violations
        );
    }
}

/// Rule D5: hosts that apply decided entries and answer their clients
/// before every sync stay clean when syncs fail, while the same hosts
/// sending their replies before the sync too are caught.
#[test]
fn answering_decided_entries_before_the_sync_is_safe() {
    let opts = |seed, replies_early| SimOptions {
        seed,
        disk: Some(Disk::failing(0.02)),
        host: Some(HostMix {
            reveal_early: true,
            ..HostMix::draw(seed)
        }),
        ack_before_sync: replies_early,
        ..SimOptions::default()
    };
    let (mut failures, mut sync_failures, mut completed) = (Vec::new(), 0, 0);
    for seed in 0..200 {
        let out = run(opts(seed, false));
        sync_failures += out.sync_failures;
        completed += out.ops.1;
        if !out.violations.is_empty() {
            failures.push(format!("seed {seed}: {:?}", out.violations));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(sync_failures > 200, "only {sync_failures} syncs failed");
    assert!(
        completed > 1000,
        "only {completed} client operations completed"
    );
    assert!(
        (0..10).any(|seed| !run(opts(seed, true)).violations.is_empty()),
        "replies before the sync not caught in 10 seeds"
    );
}

/// Every fault at once, and a failing disk: no violation.
#[test]
fn every_fault_with_a_failing_disk_finds_no_violation() {
    let mut failures = Vec::new();
    let mut sync_failures = 0;
    for seed in 0..300 {
        let mix = FaultMix::everything(&mut paxos_sim::rng::Rng::new(seed));
        let rate = [1.0 / 500.0, 1.0 / 100.0, 1.0 / 30.0][(seed % 3) as usize];
        let opts = SimOptions {
            seed,
            mix: Some(mix),
            disk: Some(Disk::failing(rate)),
            ..SimOptions::default()
        };
        let out = run(opts.clone());
        sync_failures += out.sync_failures;
        if !out.violations.is_empty() {
            failures.push(format!(
                "seed {seed} (every fault, disk {rate}): {:?} — replay: {}",
                out.violations,
                out.replay_command(&opts)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(sync_failures > 300, "only {sync_failures} syncs failed");
}

/// `--disk-fail 0` is the healthy disk: the run is the one a seed that
/// draws a healthy disk makes.
#[test]
fn a_healthy_disk_replays_the_drawn_healthy_run() {
    let seed = (0..100)
        .find(|&s| Disk::draw(s).is_healthy())
        .expect("half the seeds draw a healthy disk");
    let drawn = run(SimOptions {
        seed,
        ..SimOptions::default()
    });
    let pinned = run(SimOptions {
        seed,
        disk: Some(Disk::failing(0.0)),
        ..SimOptions::default()
    });
    assert_eq!(drawn.trace_hash, pinned.trace_hash);
    assert_eq!(pinned.sync_failures, 0);
}

/// A follower and then the leader fail a sync, each leaving a different
/// prefix on disk; each is stopped, restarts from what reached the disk and
/// catches up, and every node applies the same commands.
#[test]
fn nodes_stopped_by_failed_syncs_recover_from_the_prefix_on_disk() {
    for reached in [
        Reached::Nothing,
        Reached::Snapshot,
        Reached::Entries(1),
        Reached::AllButState,
    ] {
        let mut c = Cluster::new(3);
        c.elect(1);
        c.propose_cmds(1, 0..5);
        c.stabilize();
        c.fail_next_sync(2, reached);
        c.propose_cmds(1, 5..10);
        c.stabilize();
        assert!(!c.nodes.contains_key(&2), "{reached:?}: node 2 stopped");
        c.restart(2);
        c.fail_next_sync(1, reached);
        c.propose_cmds(1, 10..20);
        c.stabilize();
        assert!(!c.nodes.contains_key(&1), "{reached:?}: node 1 stopped");
        c.restart(1);
        let leader = c.await_leader(&[1, 2, 3], 200);
        c.propose_cmds(leader, 20..25);
        c.stabilize();
        c.tick(5);
        c.stabilize();
        let applied = c.applied_of(3).to_vec();
        assert!(
            applied.contains(&cmd(24)),
            "{reached:?}: the last command applied"
        );
        for id in [1, 2] {
            assert_eq!(c.applied_of(id), &applied[..], "{reached:?}: node {id}");
        }
        c.assert_clean();
    }
}

/// A failed sync during a membership change: the change still completes.
#[test]
fn a_failed_sync_during_a_membership_change() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..3);
    c.stabilize();
    c.fail_next_sync(3, Reached::Entries(1));
    c.change(1, ConfChangeType::AddLearner, 4);
    c.restart(3);
    c.add_node(4, &[1, 2, 3]);
    c.propose_cmds(1, 3..6);
    c.stabilize();
    c.tick(5);
    c.stabilize();
    assert_eq!(c.applied_of(4), c.applied_of(1));
    assert_eq!(c.applied_of(3), c.applied_of(1));
    c.assert_clean();
}
