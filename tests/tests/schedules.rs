//! Fault schedules as generated values: proptest searches them, and a failure
//! shrinks to a minimal schedule whose seed and replay command are printed.

use paxos_core::PlantedBug;
use paxos_sim::disk::Disk;
use paxos_sim::host::HostMix;
use paxos_sim::{run, Fault, FaultMix, Schedule, SimOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestCaseError, TestRunner};

fn fault(nodes: u64) -> impl Strategy<Value = Fault> {
    let node = 1..=nodes;
    prop_oneof![
        (node.clone(), 1..60u64).prop_map(|(node, down)| Fault::Crash { node, down }),
        node.clone().prop_map(Fault::Isolate),
        (1..(1u64 << nodes) - 1).prop_map(Fault::Split),
        (node.clone(), node.clone())
            .prop_filter("distinct", |(a, b)| a != b)
            .prop_map(|(from, to)| Fault::OneWay { from, to }),
        (node.clone(), node.clone())
            .prop_filter("distinct", |(a, b)| a != b)
            .prop_map(|(a, b)| Fault::CutPair(a, b)),
        (node.clone(), node, 1..30u64)
            .prop_filter("distinct", |(a, b, _)| a != b)
            .prop_map(|(from, to, ticks)| Fault::Clog { from, to, ticks }),
        Just(Fault::Heal),
    ]
}

fn schedule(nodes: u64) -> impl Strategy<Value = Schedule> {
    prop::collection::vec((0..300u64, fault(nodes)), 0..16).prop_map(|mut items| {
        items.sort_by_key(|(t, _)| *t);
        Schedule(items)
    })
}

fn lossy_mix() -> FaultMix {
    FaultMix {
        drop: 0.05,
        duplicate: 0.1,
        max_delay: 60,
        tail: 0.01,
        ready_crashes: true,
        ..FaultMix::calm()
    }
}

fn check(seed: u64, sched: Schedule, bug: Option<PlantedBug>) -> Result<(), TestCaseError> {
    check_with(seed, sched, bug, lossy_mix())
}

fn check_with(
    seed: u64,
    sched: Schedule,
    bug: Option<PlantedBug>,
    mix: FaultMix,
) -> Result<(), TestCaseError> {
    let opts = SimOptions {
        seed,
        nodes: Some(3),
        learners: Some(0),
        ticks: 300,
        mix: Some(mix),
        schedule: Some(sched),
        bug,
        // Only the scripted faults: no sync fails.
        disk: Some(Disk::healthy()),
        // Each proposal's Ready at once: the schedule alone decides when a
        // slot closes, so removing one fault changes one thing.
        host: Some(HostMix {
            propose_delay: 0,
            ..HostMix::draw(seed)
        }),
        ..SimOptions::default()
    };
    let out = run(opts.clone());
    if out.violations.is_empty() {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "seed={seed} violations={:?}\n  replay: {}",
            out.violations,
            out.replay_command(&opts)
        )))
    }
}

proptest! {
    // A fixed seed: the same schedules every run (and in CI).
    #![proptest_config(PtConfig {
        cases: 64,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed),
        ..PtConfig::default()
    })]

    #[test]
    fn generated_fault_schedules_keep_every_invariant(seed in 0..u64::MAX, sched in schedule(3)) {
        check(seed, sched, None)?;
    }
}

/// With a planted bug on a calm network (so only scripted faults can expose
/// it), proptest finds a failing schedule and shrinks it to a minimal one:
/// not empty, and removing any single fault makes the failure disappear. The
/// failure reports the seed and how to replay it. Deterministic (fixed seed).
#[test]
fn failures_shrink_to_a_minimal_schedule() {
    let bug = Some(PlantedBug::SkipHighestBallotAdoption);
    let calm = || FaultMix {
        max_delay: 60,
        ..FaultMix::calm()
    };
    let check = |seed, sched, bug| check_with(seed, sched, bug, calm());
    let mut runner = TestRunner::new(PtConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed),
        ..PtConfig::default()
    });
    let result = runner.run(&(0..1000u64, schedule(3)), |(seed, sched)| {
        check(seed, sched, bug)
    });
    let Err(proptest::test_runner::TestError::Fail(reason, (seed, minimal))) = result else {
        panic!("the planted bug was not found: {result:?}");
    };
    println!("minimal failing input: seed={seed} schedule={minimal}\n{reason}");
    assert!(
        reason.to_string().contains("replay: "),
        "the failure names its replay command"
    );
    assert!(
        check(seed, minimal.clone(), bug).is_err(),
        "the minimal schedule still fails"
    );
    assert!(
        check(seed, Schedule::default(), bug).is_ok(),
        "a calm run without faults passes"
    );
    assert!(!minimal.0.is_empty(), "the bug needs faults here");
    for i in 0..minimal.0.len() {
        let mut fewer = minimal.clone();
        let removed = fewer.0.remove(i);
        assert!(
            check(seed, fewer, bug).is_ok(),
            "not minimal: still fails without {}:{}",
            removed.0,
            removed.1
        );
    }
}
