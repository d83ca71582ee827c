//! The simulator's own tests: determinism, the CI sweep with every fault on,
//! and proof that each planted protocol bug is caught.

use paxos_core::PlantedBug;
use paxos_sim::quorums::MAJORITIES;
use paxos_sim::{run, Fault, FaultMix, Schedule, SimOptions};

fn sweep_size() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in [1, 7, 99] {
        let a = run(SimOptions {
            seed,
            ..SimOptions::default()
        });
        let b = run(SimOptions {
            seed,
            ..SimOptions::default()
        });
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} is not deterministic"
        );
        assert_eq!(
            (a.steps, a.events, a.decided),
            (b.steps, b.events, b.decided)
        );
    }
    // The printed replay options (--nodes, --learners) repeat the run.
    for seed in [436, 1000] {
        let a = run(SimOptions {
            seed,
            ..SimOptions::default()
        });
        let b = run(SimOptions {
            seed,
            nodes: Some(a.nodes),
            learners: Some(a.learners),
            ..SimOptions::default()
        });
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed}: replay options change the run"
        );
    }
    let a = run(SimOptions {
        seed: 1,
        ..SimOptions::default()
    });
    let b = run(SimOptions {
        seed: 2,
        ..SimOptions::default()
    });
    assert_ne!(
        a.trace_hash, b.trace_hash,
        "different seeds gave the same run"
    );
}

#[test]
fn calm_cluster_decides_and_settles() {
    for nodes in [3, 5, 7] {
        let out = run(SimOptions {
            seed: 3,
            nodes: Some(nodes),
            mix: Some(FaultMix::calm()),
            ..SimOptions::default()
        });
        assert!(out.violations.is_empty(), "{:?}", out.violations);
        assert!(out.decided > 50, "only {} slots decided", out.decided);
        assert_eq!(out.ops.0, out.ops.1, "every operation completed");
    }
}

/// The CI sweep: `SIM_SEEDS` seeds (1,000 by default), each with its own
/// random mix of every fault, must show no violation at all.
#[test]
fn sweep_with_all_faults_finds_no_violation() {
    let n = sweep_size();
    let mut failures = Vec::new();
    let (mut decided, mut ops, mut installed, mut replaced) = (0, 0, 0, 0);
    let mut batched = 0;
    for seed in 0..n {
        let opts = SimOptions {
            seed,
            ..SimOptions::default()
        };
        let out = run(opts.clone());
        decided += out.decided;
        batched += out.batched;
        ops += out.ops.1;
        installed += out.snapshots_installed;
        replaced += out.replaced;
        if !out.violations.is_empty() {
            failures.push(format!(
                "seed {seed}: {:?}\n  replay: {}",
                out.violations,
                out.replay_command(&opts)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        decided > n * 20,
        "the sweep decided too little ({decided} slots over {n} seeds)"
    );
    assert!(
        ops > n as usize * 5,
        "the sweep completed too few client operations ({ops})"
    );
    // About half the seeds compact: lagging, partitioned and restarted
    // nodes must have caught up through snapshots.
    assert!(
        installed > n / 4,
        "only {installed} snapshots installed over {n} seeds"
    );
    // About a third of the seeds churn membership, replacing voters with
    // new empty nodes one at a time.
    assert!(
        replaced > n / 4,
        "only {replaced} voters replaced over {n} seeds"
    );
    // Half the hosts let proposals gather before taking a Ready: their
    // leaders batch commands into slots (rule L5).
    assert!(
        batched > n / 4,
        "only {batched} slots held batches over {n} seeds"
    );
    println!(
        "seeds={n} decided={decided} batched={batched} ops={ops} snapshots={installed} replaced={replaced} violations=0"
    );
}

/// 300 seeds with every fault on at once (drop, duplication, long tails,
/// partitions of every kind, clogs, crashes anywhere, clock skew).
#[test]
fn sweep_with_every_fault_at_once_finds_no_violation() {
    let mut failures = Vec::new();
    for seed in 0..300 {
        let mix = FaultMix::everything(&mut paxos_sim::rng::Rng::new(seed));
        let opts = SimOptions {
            seed,
            mix: Some(mix),
            ..SimOptions::default()
        };
        let out = run(opts.clone());
        if !out.violations.is_empty() {
            failures.push(format!("seed {seed} (every fault): {:?}", out.violations));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each planted bug must be caught within 2,000 seeds (three are caught by
/// scripted runs elsewhere).
#[test]
fn every_planted_bug_is_caught() {
    let pinned = [
        // Below, scripted: random runs caught it first at seed 689 before
        // the candidates' phase-1 heartbeats, and in none of 2,000 since.
        PlantedBug::LeaseOutlivesElection,
        // tests/holes.rs: scripted, as random runs reach them too rarely.
        PlantedBug::ReportUnpersistedSnapshot,
        PlantedBug::CampaignInsideLease,
    ];
    for bug in PlantedBug::ALL.into_iter().filter(|b| !pinned.contains(b)) {
        // SkipNewMembershipQuorum shows at seed 3, at the election: the
        // checker knows which memberships the promises revealed. The
        // rarest first show at seed 513 (AdoptStaleConfChange: two
        // leaders' changes on one membership) and 410 (ReadWithoutQuorum,
        // ConfirmWithTooFew); the unkind host's own holes at 60
        // (StaleTransferExempt) and 213 (LeadWithoutOwnPromise); an
        // unchecked round at seed 1.
        let caught = (0..2000).find_map(|seed| {
            let opts = SimOptions {
                seed,
                bug: Some(bug),
                ..SimOptions::default()
            };
            let out = run(opts);
            out.violations.first().map(|v| (seed, v.clone()))
        });
        match caught {
            Some((seed, v)) => println!("{bug:?}: caught at seed {seed}: {v}"),
            None => panic!("planted bug {bug:?} survived 2000 seeds"),
        }
    }
}

/// Majorities of memberships two changes apart may not intersect, so phase
/// 1 must hear a quorum of every membership its promises reveal. Skipping
/// that breaks agreement only when a candidate is two changes behind,
/// which is rare (the random sweep saw it once in 20,000 seeds while the
/// checker judged only what was chosen); the checker now judges each
/// election, and this pins the rule at a candidate driven through the
/// public API: a promise reports a change that promotes learner 4, and the
/// candidate must also hear from a quorum of the new membership.
#[test]
fn planted_skip_new_membership_quorum_is_caught() {
    use paxos_core::proto::{
        Ballot, Body, ConfChange, ConfChangeType, ConfState, Entry, EntryKind, Message,
        PrePrepareReply, Promise, ProstMessage,
    };
    use paxos_core::{Config, MemStorage, RawNode, StateRole};
    let leads_on_old_quorum = |bug: Option<PlantedBug>| {
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.learners = vec![4];
        cfg.planted_bug = bug;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut n = RawNode::new(&cfg, MemStorage::new(), &logger).expect("starts");
        n.campaign().expect("voter");
        let rd = n.ready();
        n.advance(rd);
        let ballot = Ballot::new(1, 1);
        let grant = PrePrepareReply {
            ballot: Some(ballot),
            granted: true,
            promised: None,
        };
        n.step(Message::new(2, 1, Body::PrePrepareReply(grant)))
            .expect("grant");
        let rd = n.ready();
        n.advance(rd); // our own promise, durable
        let change = ConfChange {
            change_type: ConfChangeType::PromoteLearner as i32,
            node_id: 4,
            context: Default::default(),
            result: Some(ConfState {
                voters: vec![1, 2, 3, 4],
                learners: vec![],
                since: 0,
                ..Default::default()
            }),
            base: Some(0),
        };
        let promise = Promise {
            ballot: Some(ballot),
            from_slot: 1,
            entries: vec![Entry {
                slot: 1,
                ballot: Some(Ballot::new(1, 2)),
                kind: EntryKind::ConfChange as i32,
                data: change.encode_to_vec().into(),
            }],
            committed: 0,
            next_slot: 0,
        };
        n.step(Message::new(2, 1, Body::Promise(promise)))
            .expect("promise");
        n.status().role == StateRole::Leader
    };
    assert!(
        !leads_on_old_quorum(None),
        "2 of {{1,2,3}} is no quorum of {{1,2,3,4}}"
    );
    assert!(
        leads_on_old_quorum(Some(PlantedBug::SkipNewMembershipQuorum)),
        "the planted bug no longer leads on the old quorum alone"
    );
}

/// Regression: a candidate far behind kept winning pre-votes and restarting
/// phase 1 before it could fetch the chosen prefix (liveness). Seeds from the
/// 30,000-seed soak that exposed it.
#[test]
fn regression_lagging_candidate_livelock() {
    for seed in [
        3663, 3974, 4026, 4878, 4985, 4999, 5324, 10148, 10392, 11404, 13982, 14712,
    ] {
        let opts = SimOptions {
            seed,
            // Found, or scripted, with majorities.
            quorums: Some(MAJORITIES),
            ..SimOptions::default()
        };
        let out = run(opts.clone());
        assert!(
            out.violations.is_empty(),
            "seed {seed}: {:?}\n  replay: {}",
            out.violations,
            out.replay_command(&opts)
        );
    }
}

/// Regression: duplicated split Promises multiplied into a message storm.
#[test]
fn regression_promise_chunk_storm() {
    let opts = SimOptions {
        seed: 88,
        // Found, or scripted, with majorities.
        quorums: Some(MAJORITIES),
        ..SimOptions::default()
    };
    let out = run(opts.clone());
    assert!(out.violations.is_empty(), "{:?}", out.violations);
    assert!(
        out.events < 100_000,
        "{} events: the storm is back",
        out.events
    );
}

/// Regression (observer): a node that follows a new leader through its
/// `Decide` answers a late duplicate Prepare from that leader; the
/// stickiness observer must count `Decide` as contact with the leader.
#[test]
fn regression_decide_renews_the_observed_lease() {
    let opts = SimOptions {
        seed: 4410,
        // Found, or scripted, with majorities.
        quorums: Some(MAJORITIES),
        ..SimOptions::default()
    };
    let out = run(opts.clone());
    assert!(
        out.violations.is_empty(),
        "{:?}\n  replay: {}",
        out.violations,
        out.replay_command(&opts)
    );
}

/// Regression (paxos-core): with a small message byte budget, a promise
/// chunk read from storage ended early without saying where to continue,
/// so the new leader never saw values already chosen and replaced them.
#[test]
fn regression_byte_limited_promise_chunk_hides_chosen_values() {
    let opts = SimOptions {
        seed: 11622,
        // Found, or scripted, with majorities.
        quorums: Some(MAJORITIES),
        ..SimOptions::default()
    };
    let out = run(opts.clone());
    assert_eq!(
        out.mix.msg_bytes, 40,
        "the seed no longer draws tiny messages"
    );
    assert!(
        out.violations.is_empty(),
        "{:?}\n  replay: {}",
        out.violations,
        out.replay_command(&opts)
    );
}

/// A lease that outlives an election lets an isolated old leader answer a
/// read at once while the new leader has already decided a newer write.
/// Random swarms rarely line that up (the read must reach the old leader
/// inside a window of a few ticks), so a scripted partition does: each
/// node in turn is cut off mid-run, with reads and writes on two keys.
#[test]
fn planted_lease_outliving_an_election_is_caught() {
    // The longest lease the (unskewed) clocks allow; clients that give up
    // on a silent node quickly, so writes reach the new leader soon; and
    // half the reads sent to any member, so some land at the old leader.
    let mix = FaultMix {
        read_lease_ticks: 8,
        read_anywhere: 0.5,
        client_timeout: 3,
        clients: 6,
        keys: 2,
        ..FaultMix::calm()
    };
    let opts = |seed: u64, node: u64, bug| SimOptions {
        seed,
        nodes: Some(3),
        learners: Some(0),
        ticks: 300,
        mix: Some(mix.clone()),
        schedule: Some(Schedule(vec![
            (60, Fault::Isolate(node)),
            (200, Fault::Heal),
        ])),
        bug,
        // Found, or scripted, with majorities.
        quorums: Some(MAJORITIES),
        ..SimOptions::default()
    };
    let mut caught = 0;
    for seed in 0..40 {
        for node in 1..=3 {
            let clean = run(opts(seed, node, None));
            assert!(
                clean.violations.is_empty(),
                "seed {seed} node {node}: {:?}",
                clean.violations
            );
            let out = run(opts(seed, node, Some(PlantedBug::LeaseOutlivesElection)));
            if let Some(v) = out.violations.first() {
                println!("seed {seed} isolating {node}: {v}");
                caught += 1;
            }
        }
    }
    println!("caught in {caught} of 120 runs");
    assert!(caught > 0, "the planted lease bug went unnoticed");
}
