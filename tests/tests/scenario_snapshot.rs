//! Snapshots and compaction: peers behind the leader's compacted prefix are
//! sent the snapshot in chunks, restarted nodes restore from their own, and
//! a long run with periodic compaction keeps the log and memory bounded.

use paxos_sim::scenario::Cluster;

/// Small messages, so a snapshot of a few KiB takes many chunks.
fn small_chunks(cfg: &mut paxos_core::Config) {
    cfg.max_msg_bytes = 256;
    cfg.max_msg_entries = 16;
}

fn compact_all(c: &mut Cluster, keep: u64) {
    let live: Vec<u64> = c.nodes.keys().copied().collect();
    for id in live {
        c.compact(id, keep);
    }
}

#[test]
fn lagging_follower_catches_up_from_a_chunked_snapshot() {
    let mut c = Cluster::with_config(3, small_chunks);
    c.elect(1);
    c.isolate(3);
    c.propose_cmds(1, 0..300);
    c.stabilize();
    compact_all(&mut c, 0);
    c.propose_cmds(1, 300..320);
    c.stabilize();
    assert!(c.applied_slot[&3] < 300, "node 3 was cut off");
    c.heal();
    c.tick(10);
    assert_eq!(c.installed.get(&3), Some(&1), "one snapshot installed");
    let want = c.applied_of(1).to_vec();
    assert_eq!(want.len(), 320);
    assert_eq!(c.applied_of(3), want.as_slice());
    assert_eq!(c.applied_slot[&3], c.applied_slot[&1]);
    let snap_slot = c.storages[&3].rl().snapshot_slot();
    assert_eq!(snap_slot, 300, "the leader's snapshot, persisted");
    assert_eq!(c.digest[&3], c.digest[&1]);
    // The log continues after the snapshot: new commands still replicate.
    c.propose_cmds(1, 320..330);
    c.stabilize();
    assert_eq!(c.applied_of(3).len(), 330);
}

#[test]
fn snapshot_transfer_survives_duplication_and_reordering() {
    let mut c = Cluster::with_config(3, small_chunks);
    c.elect(1);
    c.isolate(2);
    c.propose_cmds(1, 0..200);
    c.stabilize();
    compact_all(&mut c, 5);
    c.heal();
    c.duplicate = true;
    c.reorder = true;
    c.tick(30);
    assert_eq!(c.applied_of(2), c.applied_of(1));
    assert!(c.installed[&2] >= 1);
}

#[test]
fn restarted_node_restores_from_its_own_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..100);
    c.stabilize();
    compact_all(&mut c, 10);
    c.crash(2);
    c.restart(2);
    assert_eq!(c.applied_of(2).len(), 100, "restored from the snapshot");
    assert_eq!(c.node(2).status().applied, c.applied_slot[&2]);
    c.propose_cmds(1, 100..110);
    c.stabilize();
    assert_eq!(c.applied_of(2), c.applied_of(1));
    // The leader restarts from its snapshot too, and a new one is elected.
    c.crash(1);
    c.restart(1);
    let l = c.await_leader(&[1, 2, 3], 200);
    c.propose_cmds(l, 110..120);
    c.stabilize();
    for id in [1, 2, 3] {
        assert_eq!(c.applied_of(id).len(), 120, "node {id}");
    }
}

#[test]
fn applied_below_the_compacted_prefix_is_a_typed_error() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose_cmds(1, 0..10);
    c.stabilize();
    c.compact(2, 0);
    c.crash(2);
    let mut cfg = c.config(2);
    cfg.applied = 3;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let err = paxos_core::RawNode::new(&cfg, c.storages[&2].clone(), &logger)
        .expect_err("the application did not restore the snapshot");
    assert!(
        matches!(
            err,
            paxos_core::Error::Config(paxos_core::ConfigError::AppliedBelowCompacted {
                applied: 3,
                ..
            })
        ),
        "{err}"
    );
}

/// A candidate that has not decided what a voter compacted cannot use that
/// voter's promise; the voters that know more elect one of their own.
#[test]
fn voters_elect_around_a_candidate_behind_their_compaction() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.propose_cmds(1, 0..50);
    c.stabilize();
    compact_all(&mut c, 0);
    c.crash(1);
    c.heal();
    // Node 3 is far behind node 2's compacted prefix: it cannot win node 2's
    // promise, so node 2 leads and sends it the snapshot.
    let l = c.await_leader(&[2, 3], 300);
    assert_eq!(l, 2);
    c.stabilize();
    c.tick(5);
    assert_eq!(c.applied_of(3).len(), 50);
}

/// Issue acceptance: 1,000,000 commands with compaction every 10,000
/// applied slots. The storage retains a bounded tail of the log, and the
/// process's resident memory stops growing once the run is warm.
#[test]
fn a_million_commands_with_compaction_stay_bounded() {
    const TOTAL: u64 = 1_000_000;
    const EVERY: u64 = 10_000;
    const KEEP: u64 = 1_000;
    let mut c = Cluster::new(3);
    c.keep_history = false;
    c.elect(1);
    let payload = bytes::Bytes::from(vec![7u8; 128]);
    let mut max_retained = 0;
    let mut rss_warm = None;
    let mut next_compaction = EVERY;
    let mut sent = 0;
    while sent < TOTAL {
        for _ in 0..64 {
            c.propose(1, payload.clone()).expect("leader accepts");
            sent += 1;
        }
        c.stabilize();
        if c.applied_slot[&3] >= next_compaction {
            compact_all(&mut c, KEEP);
            next_compaction += EVERY;
            for s in c.storages.values() {
                max_retained = max_retained.max(s.rl().retained_slots());
            }
            if sent >= TOTAL / 10 && rss_warm.is_none() {
                rss_warm = rss_kib();
            }
        }
    }
    for id in [1, 2, 3] {
        assert_eq!(c.digest[&id].count, c.applied_slot[&id]);
        assert_eq!(c.digest[&id], c.digest[&1], "node {id} diverged");
    }
    assert!(c.applied_slot[&1] >= TOTAL, "every command applied");
    // Between compactions the log grows by EVERY slots past the KEEP tail.
    let bound = EVERY + KEEP + 64;
    assert!(
        max_retained <= bound,
        "storage retained {max_retained} slots, bound {bound}"
    );
    // 900,000 commands of 128 B after warming up: without compaction the
    // logs alone would grow by > 300 MiB across three storages.
    if let (Some(warm), Some(end)) = (rss_warm, rss_kib()) {
        let growth_mib = end.saturating_sub(warm) / 1024;
        assert!(growth_mib < 32, "resident memory grew {growth_mib} MiB");
    }
}

/// Resident set size, where the platform reports it.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
