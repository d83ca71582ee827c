//! The bounded exhaustive explorer: the CI bound is exhausted clean, and
//! planted bugs are found with shortest traces that replay.

use paxos_core::PlantedBug;
use paxos_sim::diagram::render_page;
use paxos_sim::explore::{
    diagram, explore, explore_from, first_disallowed, parse_trace, replay, show_trace, Action,
    Bounds,
};

/// Three nodes, one campaign, one proposal, one read, one transfer, one
/// removal, one crash and one drop, every interleaving ten actions deep:
/// no violation anywhere.
#[test]
fn the_ci_bound_is_exhausted_without_a_violation() {
    let bounds = Bounds::default();
    let r = explore(&bounds, None);
    println!("{bounds:?}\n{r}");
    assert!(r.counterexample.is_none(), "{r}");
    assert!(r.exhausted, "{r}");
    assert_eq!(r.depth, bounds.depth, "{r}");
    // A search that merged too much would shrink: pin the order of size.
    assert!(r.states > 500_000, "{r}");
}

/// The CI bound with a host that may lag (take `Ready`s and hold their
/// persist; a crash loses what it held), nine actions deep: no violation,
/// also when the lagging host applies decided entries before the persist.
#[test]
fn a_lagging_host_is_exhausted_without_a_violation() {
    let bounds = Bounds {
        lags: 1,
        depth: 9,
        ..Bounds::default()
    };
    let r = explore(&bounds, None);
    println!("{bounds:?}\n{r}");
    assert!(r.counterexample.is_none(), "{r}");
    assert!(r.exhausted, "{r}");
    assert!(r.states > 300_000, "{r}");
    // The lag adds states: the same bound without it is smaller.
    let kind = explore(
        &Bounds {
            lags: 0,
            ..bounds.clone()
        },
        None,
    );
    assert!(kind.states < r.states, "{kind} vs {r}");
    // A lagging host that applies decided entries and keeps confirmed
    // reads before the persist (rule D5): clean too. (Here its space has
    // as many states: revealing early relabels the states where the apply
    // waited rather than opening new schedules.)
    let early = explore(
        &Bounds {
            early_apply: true,
            ..bounds
        },
        None,
    );
    println!("early apply: {early}");
    assert!(early.counterexample.is_none(), "{early}");
    assert!(early.exhausted, "{early}");
}

/// The CI bound without reads, transfers and removals: the base of the
/// bounds below, each of which adds only what its bug needs.
fn quiet() -> Bounds {
    Bounds {
        reads: 0,
        transfers: 0,
        removals: 0,
        ..Bounds::default()
    }
}

/// A bound for the bugs that need two leaderships: FIFO links (as over
/// TCP), two campaigns and one proposal, no crash and no drop.
fn two_leaders() -> Bounds {
    Bounds {
        fifo: true,
        campaigns: 2,
        crashes: 0,
        drops: 0,
        depth: 16,
        ..quiet()
    }
}

/// Searches `bounds` with `bug` planted and checks what it found: a trace
/// of `length` actions (the breadth-first search found none shorter) that
/// replays to the same violation with the bug, is clean without it, and is
/// drawn with its violation and every delivery.
fn finds(bug: PlantedBug, bounds: &Bounds, length: usize) {
    finds_from(bug, bounds, "", length);
}

/// [`finds`] for a search from the state `prefix` reaches: the trace found
/// extends it by a shortest continuation.
fn finds_from(bug: PlantedBug, bounds: &Bounds, prefix: &str, length: usize) {
    let prefix = parse_trace(prefix).expect("a trace");
    let r = explore_from(bounds, Some(bug), &prefix, |_, _, _| {}).expect("an allowed prefix");
    println!("{bug:?}: {r}");
    let Some((trace, violation)) = r.counterexample else {
        panic!("{bug:?} not found: {r}");
    };
    assert_eq!(trace.len(), length, "{bug:?}: {}", show_trace(&trace));
    assert_eq!(trace[..prefix.len()], prefix[..], "{bug:?}");
    assert_eq!(first_disallowed(bounds, Some(bug), &trace), None, "{bug:?}");
    let (violations, _) = replay(bounds, Some(bug), &trace);
    assert_eq!(
        violations.first(),
        Some(&violation),
        "{bug:?} does not replay"
    );
    // Without the bug the same trace is clean.
    let (clean, _) = replay(bounds, None, &trace);
    assert!(clean.is_empty(), "{bug:?}: {clean:?}");
    // Drawn, the trace shows its violation and every delivery.
    let d = diagram(bounds, Some(bug), &trace);
    assert_eq!(
        d.violation.as_ref().map(|(_, v)| v),
        Some(&violation),
        "{bug:?}"
    );
    let delivered = trace
        .iter()
        .filter(|a| matches!(a, Action::Deliver(_)))
        .count();
    assert_eq!(d.arrows.len(), delivered, "{bug:?}: one arrow per delivery");
    let page = render_page(&d, "t", &format!("{bug:?}"), &show_trace(&trace));
    assert_eq!(page.matches("class=\"msg\"").count(), delivered, "{bug:?}");
}

/// Each planted bug within reach of a small bound is found, with a
/// shortest trace: the breadth-first search finds none shorter, and the
/// trace replays to the same violation.
#[test]
fn planted_bugs_are_found_with_shortest_traces() {
    // Two campaigns: a second candidate asks a node that heard from the
    // leader (or the leader itself) to grant it.
    let rival = Bounds {
        campaigns: 2,
        proposals: 0,
        crashes: 0,
        drops: 0,
        ..quiet()
    };
    // A leader that may propose the removal of any voter.
    let removal = Bounds {
        removals: 1,
        crashes: 0,
        drops: 0,
        depth: 11,
        ..quiet()
    };
    // A second leader hands leadership on while the first still leads.
    let transfer = Bounds {
        transfers: 1,
        proposals: 0,
        depth: 14,
        ..two_leaders()
    };
    // Four voters with flexible quorums: elections need three promises,
    // choices two acceptances.
    let flexible = Bounds {
        nodes: 4,
        phase1: Some(3),
        phase2: Some(2),
        crashes: 0,
        drops: 0,
        ..quiet()
    };
    // One forged message, nothing else.
    let forgery = Bounds {
        forgeries: 1,
        depth: 2,
        ..quiet()
    };
    for (bug, bounds, length) in [
        (PlantedBug::UncheckedRound, forgery, 1),
        (PlantedBug::ReplyBeforePersist, Bounds::default(), 5),
        (PlantedBug::CommitWithoutQuorum, Bounds::default(), 6),
        (PlantedBug::IgnoreStickiness, rival, 7),
        (PlantedBug::ProposePastConfChange, removal, 11),
        (PlantedBug::LeadWithoutQuorum, Bounds::default(), 3),
        (PlantedBug::PhaseOneQuorumOfPhaseTwo, flexible, 7),
        (PlantedBug::StaleTransferExempt, transfer, 14),
    ] {
        finds(bug, &bounds, length);
    }
    finds_from(
        PlantedBug::ReportUnpersistedSnapshot,
        &snapshots(),
        BEFORE_THE_SNAPSHOT,
        21,
    );
}

/// A bound for snapshots: two leaderships, two proposals, one compaction
/// and one lagging host, no crash or drop, 30 actions deep.
fn snapshots() -> Bounds {
    Bounds {
        campaigns: 2,
        proposals: 2,
        compactions: 1,
        lags: 1,
        crashes: 0,
        drops: 0,
        depth: 30,
        ..quiet()
    }
}

/// Where the search for `ReportUnpersistedSnapshot` starts (breadth first
/// from the start it is some 21 actions deep, past what this machine
/// searches): node 3 leads and holds v1 at slot 1 alone; node 1 is
/// elected by node 2, chooses v2 there with it, and compacts. The search
/// finds the rest: node 3's host lags while it installs node 1's
/// snapshot, a late Prepare reaches it, and (with the bug) its promise
/// reports storage's v1 as chosen.
const BEFORE_THE_SNAPSHOT: &str = "campaign:3,deliver:0,deliver:1,deliver:1,deliver:2,propose:3,\
     campaign:1,deliver:6,deliver:7,deliver:7,deliver:8,propose:1,deliver:10,deliver:11,compact:1";

/// A bound for the read bugs: two leaderships, and one read asked of a
/// leader.
fn reads() -> Bounds {
    Bounds {
        reads: 1,
        ..two_leaders()
    }
}

/// The read bugs' shortest traces: node 1 leads, node 2 is elected by
/// node 3 and decides a value, then node 1 (cut off, still leading)
/// confirms a read without a quorum round and misses it.
const STALE_READ: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,campaign:2,\
     deliver:5,deliver:5,deliver:6,deliver:6,deliver:7,deliver:7,propose:2,deliver:8,deliver:8,read:1";

/// A bound for the lease bug: two leaderships, lease reads of 500 ticks
/// (elections take 1,000), and one read.
fn leases() -> Bounds {
    Bounds {
        lease_ticks: 500,
        ..reads()
    }
}

/// The lease bug's shortest trace: node 1 leads and its first heartbeat
/// round, acknowledged by node 2, grants it a lease; node 2's host
/// campaigns inside that lease, node 3 elects it and it decides a value,
/// and node 1 serves a read from its lease that misses it.
const CAMPAIGN_IN_LEASE: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,deliver:2,\
     deliver:3,campaign:2,deliver:4,deliver:4,deliver:5,deliver:5,deliver:6,deliver:6,propose:2,\
     deliver:7,deliver:7,read:1";

/// The read and lease bugs' traces replay to a read below its floor and a
/// client history that is not linearizable, and are clean without the bug (the searches that find them are the ignored
/// test at the end).
#[test]
fn stale_reads_replay() {
    let stale = parse_trace(STALE_READ).expect("a trace");
    let lease = parse_trace(CAMPAIGN_IN_LEASE).expect("a trace");
    for (bug, bounds, trace) in [
        (PlantedBug::ReadWithoutQuorum, reads(), &stale),
        (PlantedBug::ConfirmWithTooFew, reads(), &stale),
        (PlantedBug::CampaignInsideLease, leases(), &lease),
    ] {
        assert_eq!(first_disallowed(&bounds, Some(bug), trace), None, "{bug:?}");
        let (violations, _) = replay(&bounds, Some(bug), trace);
        assert_eq!(
            violations.first().map(String::as_str),
            Some("node 1 confirmed a read at index 0, below slot 1 applied before it was asked"),
            "{bug:?}"
        );
        // The clients' history says so too, on its own: the read returned
        // nothing after v1's put had completed.
        assert_eq!(
            violations.get(1).map(String::as_str),
            Some("history not linearizable on key 0 (2 operations)"),
            "{bug:?}"
        );
        let (clean, _) = replay(&bounds, None, trace);
        assert!(clean.is_empty(), "{bug:?}: {clean:?}");
    }
}

/// The replay command a search prints (its flags carry every budget the
/// search had) replays the counterexample it found to the same violation.
#[test]
fn a_printed_replay_command_reproduces_its_violation() {
    let explore = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("explore")
            .args(args)
            .output()
            .expect("explore runs")
    };
    let found = explore(&["--bug", "CommitWithoutQuorum", "--campaigns", "2"]);
    let out = String::from_utf8_lossy(&found.stdout).into_owned();
    assert_eq!(found.status.code(), Some(1), "{out}");
    let violation = out
        .split("violation=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no violation printed: {out}"));
    let command = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("replay: cargo run --release -p paxos-sim --bin sim -- explore ")
        })
        .unwrap_or_else(|| panic!("no replay command printed: {out}"));
    assert!(command.contains("--campaigns 2"), "{command}");
    let args: Vec<&str> = command.split_whitespace().collect();
    let replayed = explore(&args);
    let again = String::from_utf8_lossy(&replayed.stdout);
    assert_eq!(replayed.status.code(), Some(1), "{again}");
    assert!(again.contains(&format!("VIOLATION {violation}")), "{again}");
}

/// `--from` searches on from the state a trace reaches: the trace found
/// extends it; a prefix the bounds do not allow is refused.
#[test]
fn the_binary_searches_from_a_prefix() {
    let explore = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("explore")
            .args(args)
            .output()
            .expect("explore runs")
    };
    let found = explore(&[
        "--bug",
        "CommitWithoutQuorum",
        "--from",
        "campaign:1,deliver:1",
    ]);
    let out = String::from_utf8_lossy(&found.stdout);
    assert_eq!(found.status.code(), Some(1), "{out}");
    assert!(
        out.contains("length=6 trace=campaign:1,deliver:1,"),
        "{out}"
    );
    let refused = explore(&["--from", "campaign:1,campaign:2"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--from: action 2 (campaign:2) is not allowed"),
        "{err}"
    );
}

/// The binary replays a printed trace: it shows the violation and fails
/// with the bug planted, and passes without it.
#[test]
fn the_binary_replays_a_printed_trace() {
    let trace = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,propose:1";
    let run = |bug: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("explore")
            .args(bug)
            .args(["--replay", trace])
            .output()
            .expect("explore runs")
    };
    let caught = run(&["--bug", "CommitWithoutQuorum"]);
    let out = String::from_utf8_lossy(&caught.stdout);
    assert_eq!(caught.status.code(), Some(1), "{out}");
    assert!(
        out.contains("VIOLATION node 1 applied slot 1 before it was chosen"),
        "{out}"
    );
    let clean = run(&[]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("explore")
        .args(["--replay", "fly:1"])
        .output()
        .expect("explore runs");
    assert_eq!(bad.status.code(), Some(2));
    // A second campaign the default budget does not allow is refused, not
    // replayed.
    let over = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("explore")
        .args(["--replay", "campaign:1,campaign:2"])
        .output()
        .expect("explore runs");
    assert_eq!(over.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&over.stderr).contains("action 2 (campaign:2) is not allowed"),
        "{}",
        String::from_utf8_lossy(&over.stderr)
    );
    // A trace with a two-node action and a violation only the observer
    // sees (a leader's grant to a transfer another leader asked for).
    let transfer = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("explore")
        .args([
            "--bug",
            "StaleTransferExempt",
            "--campaigns",
            "2",
            "--replay",
        ])
        .arg(
            "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,campaign:2,deliver:5,deliver:5,\
             deliver:6,deliver:6,deliver:7,transfer:2-3,deliver:8,deliver:8",
        )
        .output()
        .expect("explore runs");
    let out = String::from_utf8_lossy(&transfer.stdout);
    assert_eq!(transfer.status.code(), Some(1), "{out}");
    assert!(
        out.contains("VIOLATION leader 1 promised candidate 3"),
        "{out}"
    );
}

/// A bound for a second leader elected after the first one's followers'
/// stickiness lapsed: FIFO links, two campaigns and two proposals, and one
/// wait of a 3-tick election timeout.
fn after_a_wait() -> Bounds {
    Bounds {
        proposals: 2,
        waits: 1,
        election_ticks: 3,
        depth: 15,
        ..two_leaders()
    }
}

/// The shortest trace to `SkipHighestBallotAdoption`: node 1 chooses v1
/// with node 2; after a wait node 3 is elected by node 2, which reports v1,
/// and overwrites it with v2.
const SKIP_ADOPTION: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,deliver:2,\
     propose:1,deliver:4,wait:0,campaign:3,deliver:9,deliver:9,deliver:10,deliver:10,propose:3";

/// A bound for a message that overtakes older ones on its link: FIFO
/// links with one reordering, two campaigns and two proposals.
fn overtaking() -> Bounds {
    Bounds {
        proposals: 2,
        reorders: 1,
        depth: 17,
        ..two_leaders()
    }
}

/// The shortest trace to `ApplyPastGap`: node 1 leads and holds v1 at
/// slot 1 alone; node 2 is elected by node 3 and chooses v2 there, and its
/// Decide overtakes its Accept to node 1, which (with the bug) decides its
/// own stale v1.
const STALE_DECIDE: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,propose:1,\
     campaign:2,deliver:7,deliver:7,deliver:8,deliver:8,deliver:9,deliver:9,propose:2,\
     deliver:10,deliver:10,deliver:10";

/// The shortest trace to `CountAcrossBallots`: node 1 leads and node 2
/// accepts its v1 at slot 1; node 2 is elected by node 3 and adopts v1; its
/// heartbeat overtakes its older messages to node 1, which (with the bug)
/// reports its slot 1, accepted in ballot 1.1, as matched in node 2's
/// ballot, and node 2 decides slot 1 on that count before a quorum accepted
/// it in one ballot.
const CROSS_BALLOT: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,deliver:2,\
     propose:1,campaign:2,deliver:7,deliver:7,deliver:4,deliver:7,deliver:8,deliver:8,propose:2,\
     deliver:9";

/// A bound for a lease that outlives the followers' stickiness: FIFO
/// links, two campaigns, one proposal, one read, one wait of a 3-tick
/// election timeout, and leases of 1 tick (which the bug makes 4).
fn lease_and_wait() -> Bounds {
    Bounds {
        reads: 1,
        waits: 1,
        election_ticks: 3,
        lease_ticks: 1,
        depth: 18,
        max_states: 14_000_000,
        ..two_leaders()
    }
}

/// The shortest trace to `LeaseOutlivesElection`: node 1 leads, and node
/// 2's acknowledgement of its first heartbeat round grants it a lease;
/// after a wait node 3's timeout fires, node 2 (its window closed) elects
/// it, it decides v1, and node 1 serves a read from its stretched lease
/// that misses it.
const LONG_LEASE: &str = "campaign:1,deliver:1,deliver:1,deliver:2,deliver:2,deliver:3,\
     deliver:3,wait:0,deliver:6,deliver:6,deliver:7,deliver:7,deliver:8,deliver:8,propose:3,\
     deliver:9,deliver:9,read:1";

/// A bound for a candidate behind a membership change: two campaigns,
/// one removal and one wait of a 3-tick election timeout, any delivery
/// order.
fn behind_a_change() -> Bounds {
    Bounds {
        campaigns: 2,
        removals: 1,
        waits: 1,
        election_ticks: 3,
        proposals: 0,
        crashes: 0,
        drops: 0,
        depth: 11,
        ..quiet()
    }
}

/// The shortest trace to `SkipNewMembershipQuorum`: node 2 leads and
/// proposes removing node 1, which only node 2 accepts; after a wait
/// node 1 campaigns, node 2's promise reports the change, and node 1
/// leads on promises from {1, 2}: a quorum of the old membership, but
/// one voter of the new one, {2, 3}.
const BEHIND_A_CHANGE: &str = "campaign:2,deliver:0,deliver:1,deliver:1,deliver:2,remove:2-1,\
     wait:0,deliver:8,deliver:9,deliver:9,deliver:10";

/// A bound for two leaders' membership changes: three campaigns, one
/// proposal, two removals, one wait of a 3-tick election timeout, no crash
/// or drop, 30 actions deep.
fn two_changes() -> Bounds {
    Bounds {
        campaigns: 3,
        proposals: 1,
        removals: 2,
        waits: 1,
        election_ticks: 3,
        crashes: 0,
        drops: 0,
        depth: 30,
        ..quiet()
    }
}

/// Where the search for `AdoptStaleConfChange` starts: node 1 leads,
/// proposes v1 at slot 1 and the removal of node 2 at slot 2 (on the
/// initial membership), which only it holds; node 2 is elected by node 3
/// and proposes removing node 3 at slot 1 (on the initial membership
/// too); node 1 hears node 2's heartbeat. The search finds the rest: after
/// a wait node 1 is elected again, adopts both changes, and decides them;
/// the one at slot 2 was built on a membership slot 1 replaced, so it is
/// void, but (with the bug) node 1 takes its result.
const BEFORE_TWO_CHANGES: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,propose:1,\
     remove:1-2,campaign:2,deliver:7,deliver:7,deliver:8,deliver:8,remove:2-3,deliver:8";

/// The shortest continuation found from [`BEFORE_TWO_CHANGES`].
const TWO_CHANGES: &str =
    "wait:0,deliver:14,deliver:15,deliver:15,deliver:16,deliver:18,deliver:19";

/// A bound for a candidate whose own report takes two messages: one entry
/// per message, two campaigns, two proposals, one crash and one lagging
/// host, no drop, 32 actions deep.
fn split_reports() -> Bounds {
    Bounds {
        campaigns: 2,
        proposals: 2,
        max_msg_entries: Some(1),
        lags: 1,
        drops: 0,
        depth: 32,
        ..quiet()
    }
}

/// Where the search for `LeadWithoutOwnPromise` starts: node 1 leads and
/// holds v1 and v2 at slots 1 and 2 alone, crashes and restarts; its host
/// lags, and it campaigns again and flushes its promise. Its own report
/// takes two messages, the second held by its host. The search finds the
/// rest: nodes 2 and 3 promise, and (with the bug) node 1 leads on their
/// reports alone, claims slot 2 (held in its old ballot) as accepted in
/// its new one, and decides it on node 2's acceptance alone.
const BEFORE_THE_SPLIT_REPORT: &str = "campaign:1,deliver:0,deliver:1,deliver:1,deliver:2,\
     propose:1,propose:1,crash:1,restart:1,lag:1,campaign:1,deliver:6,deliver:7,flush:1";

/// The shortest continuation found from [`BEFORE_THE_SPLIT_REPORT`].
const SPLIT_REPORT: &str = "deliver:7,deliver:7,deliver:7,deliver:7,deliver:9,deliver:10,\
     deliver:10,deliver:10,flush:1,deliver:10";

/// The traces of the deep bugs replay to their violations with the bug,
/// and are clean without it.
#[test]
fn deep_traces_replay() {
    for (bug, bounds, trace, violation) in [
        (
            PlantedBug::SkipHighestBallotAdoption,
            after_a_wait(),
            SKIP_ADOPTION,
            "node 3 accepted b\"v2\" at slot 1 in ballot 2.3 after b\"v1\" was chosen in 1.1",
        ),
        (
            PlantedBug::ApplyPastGap,
            overtaking(),
            STALE_DECIDE,
            "node 1 applied b\"v1\" at slot 1 where b\"v2\" was chosen",
        ),
        (
            PlantedBug::CountAcrossBallots,
            overtaking(),
            CROSS_BALLOT,
            "node 2 applied slot 1 before it was chosen",
        ),
        (
            PlantedBug::LeaseOutlivesElection,
            lease_and_wait(),
            LONG_LEASE,
            "node 1 confirmed a read at index 0, below slot 1 applied before it was asked",
        ),
        (
            PlantedBug::SkipNewMembershipQuorum,
            behind_a_change(),
            BEHIND_A_CHANGE,
            "node 1 leads in ballot 2.1 on 1 promises, short of a phase-1 quorum of 2 of voters {2, 3}",
        ),
        (
            PlantedBug::AdoptStaleConfChange,
            two_changes(),
            format!("{BEFORE_TWO_CHANGES},{TWO_CHANGES}").as_str(),
            "node 1 at slot 2 has membership [1, 3]/[], but its decided log yields [1, 2]/[]",
        ),
        (
            PlantedBug::LeadWithoutOwnPromise,
            split_reports(),
            format!("{BEFORE_THE_SPLIT_REPORT},{SPLIT_REPORT}").as_str(),
            "node 2 applied slot 2 before it was chosen",
        ),
    ] {
        let trace = parse_trace(trace).expect("a trace");
        assert_eq!(
            first_disallowed(&bounds, Some(bug), &trace),
            None,
            "{bug:?}"
        );
        let (violations, _) = replay(&bounds, Some(bug), &trace);
        assert_eq!(
            violations.first().map(String::as_str),
            Some(violation),
            "{bug:?}"
        );
        let (clean, _) = replay(&bounds, None, &trace);
        assert!(clean.is_empty(), "{bug:?}: {clean:?}");
    }
}

/// The deep bugs' searches: the read bugs 16 actions deep (218,206 states
/// each), `CampaignInsideLease` 18 deep (511,861 states), `CountAcrossBallots`
/// 16 deep (886,391), `SkipHighestBallotAdoption` 15 deep, `ApplyPastGap`
/// 17 deep and `SkipNewMembershipQuorum` 11 deep (about 1.5 million states
/// each), and `LeaseOutlivesElection` 18 deep (10 million); then, from given
/// prefixes, `AdoptStaleConfChange` (1.1 million states) and
/// `LeadWithoutOwnPromise` (1.6 million). About four minutes on two cores:
/// with `--ignored` only.
#[test]
#[ignore = "about four minutes: searches of 0.2 to 10 million states"]
fn deep_bugs_are_found_with_shortest_traces() {
    for bug in [PlantedBug::ReadWithoutQuorum, PlantedBug::ConfirmWithTooFew] {
        finds(bug, &reads(), 16);
    }
    let lease = Bounds {
        depth: 18,
        max_states: 4_000_000,
        ..leases()
    };
    finds(PlantedBug::CampaignInsideLease, &lease, 18);
    finds(PlantedBug::SkipHighestBallotAdoption, &after_a_wait(), 15);
    finds(PlantedBug::ApplyPastGap, &overtaking(), 17);
    finds(PlantedBug::CountAcrossBallots, &overtaking(), 16);
    finds(PlantedBug::LeaseOutlivesElection, &lease_and_wait(), 18);
    finds(PlantedBug::SkipNewMembershipQuorum, &behind_a_change(), 11);
    finds_from(
        PlantedBug::AdoptStaleConfChange,
        &two_changes(),
        BEFORE_TWO_CHANGES,
        21,
    );
    finds_from(
        PlantedBug::LeadWithoutOwnPromise,
        &split_reports(),
        BEFORE_THE_SPLIT_REPORT,
        24,
    );
}
