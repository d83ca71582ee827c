//! Lease reads (`Config::read_lease_ticks`): served without a heartbeat
//! round while the lease holds, never after it lapses, never after a
//! transfer starts; restarted nodes honour leases they may have granted.

use paxos_core::{Config, ConfigError, Error, RawNode};
use paxos_sim::scenario::Cluster;

fn lease(cfg: &mut Config) {
    cfg.heartbeat_ticks = 2;
    cfg.election_ticks = 10;
    cfg.read_lease_ticks = 5;
}

fn read(c: &mut Cluster, id: u64, ctx: &'static [u8]) {
    c.nodes
        .get_mut(&id)
        .expect("live")
        .read_index(ctx)
        .expect("leader");
}

/// The read states node `id` has been handed so far.
fn reads(c: &Cluster, id: u64) -> usize {
    c.reads.get(&id).map_or(0, Vec::len)
}

#[test]
fn a_leased_read_needs_no_round_trip() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.propose_cmds(1, 0..5);
    c.stabilize();
    let committed = c.node(1).status().committed;
    read(&mut c, 1, b"leased");
    // Handed out in the next Ready, with no message delivered in between.
    let delivered = c.delivered;
    c.process_readies();
    assert_eq!(
        c.reads[&1],
        vec![(committed, bytes::Bytes::from_static(b"leased"))]
    );
    assert_eq!(c.delivered, delivered, "no heartbeat round was needed");
}

#[test]
fn a_cut_off_leader_serves_no_read_once_its_lease_lapses() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.isolate(1);
    // Within the lease: served (no other leader can exist yet).
    read(&mut c, 1, b"inside");
    c.stabilize();
    assert_eq!(reads(&c, 1), 1);
    // 5 leader ticks later the lease is gone; the followers' 10-tick
    // stickiness windows still hold, so no one else leads yet either.
    c.tick(5);
    read(&mut c, 1, b"outside");
    c.stabilize();
    assert_eq!(reads(&c, 1), 1, "served a read after its lease lapsed");
    assert_eq!(
        c.leaders(),
        vec![1],
        "elected a leader within the leased window"
    );
    let l = c.await_leader(&[2, 3], 300);
    c.propose(l, paxos_sim::scenario::cmd(1))
        .expect("new leader");
    c.stabilize();
    assert_eq!(reads(&c, 1), 1, "the stale leader confirmed a read");
}

/// A transfer's target may be promised despite the followers' leases, so
/// a leader that sent `TimeoutNow` serves no leased read again, even if the
/// transfer fails and it stays leader.
#[test]
fn a_transfer_ends_lease_reads() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.propose_cmds(1, 0..3);
    c.stabilize();
    read(&mut c, 1, b"before");
    c.process_readies();
    assert_eq!(reads(&c, 1), 1, "leased before the transfer");
    // The target is caught up: TimeoutNow leaves at once, and is lost.
    c.cut.insert((1, 2));
    c.nodes
        .get_mut(&1)
        .expect("live")
        .transfer_leader(2)
        .expect("voter");
    c.tick(12); // the transfer times out; node 1 resumes
    c.heal();
    c.tick(1);
    assert_eq!(c.leaders(), vec![1]);
    read(&mut c, 1, b"after");
    c.process_readies();
    assert_eq!(reads(&c, 1), 1, "served from a lease after a transfer");
    c.tick(2);
    assert_eq!(reads(&c, 1), 2, "confirmed by a quorum round instead");
}

#[test]
fn a_restarted_node_promises_no_one_for_an_election_timeout() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.crash(2);
    c.crash(1);
    // Node 3 sits out its own stickiness window (alone it cannot win).
    c.tick(10);
    c.restart(2);
    // Node 3 campaigns; node 2 may have acknowledged node 1's lease just
    // before crashing, so it must not promise yet.
    c.nodes
        .get_mut(&3)
        .expect("live")
        .campaign()
        .expect("voter, outside any lease");
    c.stabilize();
    assert!(c.leaders().is_empty(), "node 2 promised within the window");
    let l = c.await_leader(&[2, 3], 300);
    assert!(l == 2 || l == 3);
}

#[test]
fn a_lease_not_below_the_election_timeout_is_refused() {
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.election_ticks = 10;
    cfg.read_lease_ticks = 10;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let err = RawNode::new(&cfg, paxos_core::MemStorage::new(), &logger).expect_err("refused");
    assert_eq!(
        err,
        Error::Config(ConfigError::LeaseNotBelowElection {
            lease: 10,
            election: 10
        })
    );
}

/// A host's `campaign()` at a follower that acknowledged the leader's lease
/// would clear the stickiness the lease counts on: it is refused until the
/// leader has been silent for an election timeout.
#[test]
fn campaign_inside_an_acknowledged_lease_is_refused() {
    let mut c = Cluster::with_config(3, lease);
    c.elect(1);
    c.tick(2); // a heartbeat round: node 2 acknowledges the lease
    c.crash(1);
    let err = c.nodes.get_mut(&2).expect("live").campaign();
    assert_eq!(err, Err(Error::LeaseHeld { leader: Some(1) }));
    assert!(c.leaders().is_empty());
    // Once node 1 has been silent for election_ticks, it may.
    c.tick(10);
    let l = c.await_leader(&[2, 3], 300);
    assert!(l == 2 || l == 3);
    // A restarted node does not know whose lease it acknowledged: it
    // waits out an election timeout before campaigning too.
    let follower = if l == 2 { 3 } else { 2 };
    c.crash(follower);
    c.restart(follower);
    assert_eq!(
        c.nodes.get_mut(&follower).expect("live").campaign(),
        Err(Error::LeaseHeld { leader: None })
    );
}
