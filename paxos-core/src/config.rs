//! Node configuration and its validation.

use crate::errors::ConfigError;

/// Hard ceiling on voters: quorum bookkeeping keeps one slot per voter on the
/// stack, and no practical Paxos cluster is larger.
pub const MAX_VOTERS: usize = 64;

/// Everything a node needs to know before it starts. All limits are explicit:
/// nothing inside the node grows without a bound set here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id. Must be non-zero.
    pub id: u64,
    /// The voters of a brand-new cluster. Ignored when storage already holds
    /// a membership (a restart).
    pub voters: Vec<u64>,
    /// The learners of a brand-new cluster (receive decided entries, never vote).
    pub learners: Vec<u64>,
    /// A leader sends a heartbeat every `heartbeat_ticks` ticks.
    pub heartbeat_ticks: u32,
    /// A follower that hears no leader for a random timeout in
    /// `[election_ticks, 2 * election_ticks)` ticks starts an election. It is
    /// also the stickiness window: an acceptor that heard from a live leader
    /// within it refuses to promise anyone else, and a leader that did not
    /// hear from a quorum within it steps down.
    pub election_ticks: u32,
    /// Most slots a leader holds proposed but not yet chosen, and most slots
    /// sent to one peer beyond what it acknowledged. A proposal beyond it is
    /// refused with [`crate::Error::ProposalDropped`]. Use the same value on
    /// every member: a candidate refuses, as garbage, a promise reporting a
    /// slot more than 64 of its own windows above the promiser's watermark,
    /// so a leader running a window over 64 times a candidate's could leave
    /// reports that candidate cannot take (it then does not win, and a node
    /// that can does).
    pub max_inflight_slots: u64,
    /// Most payload bytes a leader holds proposed but not yet chosen.
    pub max_inflight_bytes: u64,
    /// Most commands a leader puts into one slot (instance batching).
    /// Proposals made between two `Ready`s share a slot up to this many
    /// commands and [`Config::max_batch_bytes`]; the per-slot work of the
    /// protocol is then paid once for all of them. 1 turns batching off:
    /// every proposal takes a slot of its own.
    pub max_batch_commands: u32,
    /// Most payload bytes of one batched slot, counting each command's
    /// length prefix. A command larger than this alone takes a slot of its
    /// own.
    pub max_batch_bytes: u64,
    /// Most entries in one `Accept` or `Promise` message.
    pub max_msg_entries: usize,
    /// Most payload bytes in one message (a single larger entry still goes alone).
    pub max_msg_bytes: u64,
    /// Most committed entries handed out in one `Ready`.
    pub max_ready_entries: usize,
    /// Most committed payload bytes handed out in one `Ready` (at least one entry goes).
    pub max_ready_bytes: u64,
    /// Most bytes of a snapshot received from the leader: its chunks are
    /// assembled in memory, and a stream past this is refused.
    pub max_snapshot_bytes: u64,
    /// Seed of the PRNG behind randomized timeouts. The node mixes in its id,
    /// so one seed can serve a whole cluster.
    pub seed: u64,
    /// The highest slot the application has applied (on restart). Decided
    /// entries after it are handed out again.
    pub applied: u64,
    /// Forward proposals made at a follower to the leader it knows, instead
    /// of returning [`crate::Error::NotLeader`].
    pub forward_proposals: bool,
    /// Lease reads (0: off, the default). When set, the leader answers
    /// `read_index` at once, without a heartbeat round, while it holds a
    /// lease: `read_lease_ticks` of its own ticks from sending a heartbeat
    /// round that a quorum acknowledged.
    ///
    /// Why it is safe, in ticks: a voter that acknowledges that round
    /// resets its stickiness window, and promises no other candidate for
    /// `election_ticks` of *its* ticks after receiving it, which is after
    /// the leader sent it. So no other leader can be elected, and nothing
    /// can be decided without this leader, while the lease lasts, provided
    /// `read_lease_ticks` of the leader's ticks never take longer than
    /// `election_ticks - 1` of any voter's (the phase of a tick is unknown,
    /// so one tick of the window may be all but gone): tick periods must
    /// differ by at most the factor `(election_ticks - 1) /
    /// read_lease_ticks` (2x with `election_ticks = 11, read_lease_ticks =
    /// 5`). A restarted node does
    /// not remember whom it heard from, so with leases on it promises no
    /// one for `election_ticks` after starting. A leadership transfer lets
    /// its target skip stickiness, so a leader that starts one gives up
    /// lease reads for the rest of its leadership. Every node of a cluster
    /// must use the same setting. Must be below `election_ticks`.
    pub read_lease_ticks: u32,
    /// Flexible quorums (rule M4): promises a candidate needs, and
    /// pre-vote grants. `None`: a majority of the voters.
    ///
    /// Paxos needs only that every phase-1 quorum meet every phase-2
    /// quorum: on five voters, `phase2_quorum = Some(2)` with
    /// `phase1_quorum = Some(4)` commits with two acknowledgements and
    /// pays at elections, which need four. `validate` refuses a pair whose
    /// sum does not exceed the voters. The sizes are the cluster's: give
    /// every member the same ones, as with `voters`. They travel in the
    /// membership ([`crate::proto::ConfState`]), snapshots included; once
    /// storage holds a membership, its sizes govern, not these, and these
    /// are not checked. After a membership change the sizes in effect
    /// follow [`crate::proto::Quorums::for_voters`].
    pub phase1_quorum: Option<usize>,
    /// Flexible quorums: acceptances that choose a value, and the
    /// acknowledgements a leader needs to stay (check quorum), to confirm
    /// a read and to hold a lease. `None`: a majority. At least 2 with two
    /// or more voters. See `phase1_quorum`.
    pub phase2_quorum: Option<usize>,
    /// A protocol bug to plant on purpose (simulator self-test only).
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<crate::PlantedBug>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            voters: Vec::new(),
            learners: Vec::new(),
            heartbeat_ticks: 2,
            election_ticks: 10,
            max_inflight_slots: 8192,
            max_inflight_bytes: 64 << 20,
            max_batch_commands: 1024,
            max_batch_bytes: 256 << 10,
            max_msg_entries: 1024,
            max_msg_bytes: 1 << 20,
            max_ready_entries: 4096,
            max_ready_bytes: 8 << 20,
            max_snapshot_bytes: 1 << 30,
            seed: 0,
            applied: 0,
            forward_proposals: false,
            read_lease_ticks: 0,
            phase1_quorum: None,
            phase2_quorum: None,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }
}

impl Config {
    /// A default configuration for node `id` of a new cluster of `voters`.
    pub fn new(id: u64, voters: impl Into<Vec<u64>>) -> Self {
        Config {
            id,
            voters: voters.into(),
            ..Config::default()
        }
    }

    /// Checks every field; a node never starts from an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_except_quorums()?;
        self.validate_quorums()
    }

    /// Every check but the quorum sizes': what a restart needs, since a
    /// membership in storage governs and carries its own sizes (rule M4),
    /// whatever `voters` and the sizes here say.
    pub(crate) fn validate_except_quorums(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        validate_membership(&self.voters, &self.learners)?;
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroLimit("heartbeat_ticks"));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election: self.election_ticks,
                heartbeat: self.heartbeat_ticks,
            });
        }
        if self.read_lease_ticks >= self.election_ticks {
            return Err(ConfigError::LeaseNotBelowElection {
                lease: self.read_lease_ticks,
                election: self.election_ticks,
            });
        }
        for (name, value) in [
            ("max_inflight_slots", self.max_inflight_slots),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_batch_commands", u64::from(self.max_batch_commands)),
            ("max_batch_bytes", self.max_batch_bytes),
            ("max_msg_entries", self.max_msg_entries as u64),
            ("max_msg_bytes", self.max_msg_bytes),
            ("max_ready_entries", self.max_ready_entries as u64),
            ("max_ready_bytes", self.max_ready_bytes),
            ("max_snapshot_bytes", self.max_snapshot_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Rule M4: each configured size within `[1, voters]` (phase 2 at
    /// least 2 with two or more voters), and the two sizes intersecting.
    fn validate_quorums(&self) -> Result<(), ConfigError> {
        let voters = self.voters.len();
        let majority = voters / 2 + 1;
        let min_phase2 = voters.min(2);
        for (which, size, min) in [
            ("phase-1", self.phase1_quorum, 1),
            ("phase-2", self.phase2_quorum, min_phase2),
        ] {
            if let Some(size) = size {
                if size < min || size > voters {
                    return Err(ConfigError::QuorumOutOfRange {
                        which,
                        size,
                        voters,
                    });
                }
            }
        }
        let phase1 = self.phase1_quorum.unwrap_or(majority);
        let phase2 = self.phase2_quorum.unwrap_or(majority);
        if phase1 + phase2 <= voters {
            return Err(ConfigError::QuorumsDoNotIntersect {
                phase1,
                phase2,
                voters,
            });
        }
        Ok(())
    }

    /// The membership a brand-new cluster starts with: the voters, the
    /// learners and the quorum sizes. A host that keeps its own copy of the
    /// membership (to put in its snapshots) starts from this one.
    pub fn initial_conf_state(&self) -> paxos_proto::ConfState {
        let size = |q: Option<usize>| q.and_then(|q| u32::try_from(q).ok()).unwrap_or(0);
        paxos_proto::ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            since: 0,
            phase1_quorum: size(self.phase1_quorum),
            phase2_quorum: size(self.phase2_quorum),
        }
    }
}

/// Checks a membership: non-empty, at most [`MAX_VOTERS`] voters, no zero
/// id, no duplicates, no node both voter and learner.
pub(crate) fn validate_membership(voters: &[u64], learners: &[u64]) -> Result<(), ConfigError> {
    if voters.is_empty() {
        return Err(ConfigError::NoVoters);
    }
    if voters.len() > MAX_VOTERS {
        return Err(ConfigError::TooManyVoters(voters.len()));
    }
    let mut all: Vec<u64> = voters.iter().chain(learners).copied().collect();
    if all.contains(&0) {
        return Err(ConfigError::ZeroId);
    }
    all.sort_unstable();
    if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::DuplicateMember(w[0]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_three_node_config_is_valid() {
        assert_eq!(Config::new(1, [1, 2, 3]).validate(), Ok(()));
    }

    #[test]
    fn flexible_pairs_that_intersect_are_valid() {
        let five = |p1, p2| Config {
            phase1_quorum: p1,
            phase2_quorum: p2,
            ..Config::new(1, [1, 2, 3, 4, 5])
        };
        for (p1, p2) in [
            (Some(4), Some(2)),
            (Some(2), Some(4)),
            (None, Some(3)),
            (Some(5), Some(2)),
        ] {
            assert_eq!(five(p1, p2).validate(), Ok(()), "{p1:?}/{p2:?}");
        }
        let cs = five(Some(4), Some(2)).initial_conf_state();
        assert_eq!((cs.phase1_quorum, cs.phase2_quorum), (4, 2));
        assert_eq!(cs.quorums().phase2, 2);
        assert_eq!(Config::new(1, [1]).initial_conf_state().quorums().phase1, 1);
    }

    #[test]
    fn every_bad_field_is_a_typed_error() {
        let ok = Config::new(1, [1, 2, 3]);
        let cases: Vec<(Config, ConfigError)> = vec![
            (
                Config {
                    id: 0,
                    ..ok.clone()
                },
                ConfigError::ZeroId,
            ),
            (
                Config {
                    voters: vec![],
                    ..ok.clone()
                },
                ConfigError::NoVoters,
            ),
            (
                Config {
                    voters: vec![1, 2, 2],
                    ..ok.clone()
                },
                ConfigError::DuplicateMember(2),
            ),
            (
                Config {
                    learners: vec![3],
                    ..ok.clone()
                },
                ConfigError::DuplicateMember(3),
            ),
            (
                Config {
                    voters: vec![1, 0],
                    ..ok.clone()
                },
                ConfigError::ZeroId,
            ),
            (
                Config {
                    voters: (1..=65).collect(),
                    ..ok.clone()
                },
                ConfigError::TooManyVoters(65),
            ),
            (
                Config {
                    heartbeat_ticks: 0,
                    ..ok.clone()
                },
                ConfigError::ZeroLimit("heartbeat_ticks"),
            ),
            (
                Config {
                    phase1_quorum: Some(1),
                    phase2_quorum: Some(2),
                    ..ok.clone()
                },
                ConfigError::QuorumsDoNotIntersect {
                    phase1: 1,
                    phase2: 2,
                    voters: 3,
                },
            ),
            (
                Config {
                    phase1_quorum: Some(1),
                    ..ok.clone()
                },
                ConfigError::QuorumsDoNotIntersect {
                    phase1: 1,
                    phase2: 2,
                    voters: 3,
                },
            ),
            (
                Config {
                    phase1_quorum: Some(4),
                    ..ok.clone()
                },
                ConfigError::QuorumOutOfRange {
                    which: "phase-1",
                    size: 4,
                    voters: 3,
                },
            ),
            (
                Config {
                    phase1_quorum: Some(0),
                    ..ok.clone()
                },
                ConfigError::QuorumOutOfRange {
                    which: "phase-1",
                    size: 0,
                    voters: 3,
                },
            ),
            (
                Config {
                    phase1_quorum: Some(3),
                    phase2_quorum: Some(1),
                    ..ok.clone()
                },
                ConfigError::QuorumOutOfRange {
                    which: "phase-2",
                    size: 1,
                    voters: 3,
                },
            ),
            (
                Config {
                    id: 1,
                    voters: vec![1],
                    phase2_quorum: Some(2),
                    ..ok.clone()
                },
                ConfigError::QuorumOutOfRange {
                    which: "phase-2",
                    size: 2,
                    voters: 1,
                },
            ),
            (
                Config {
                    election_ticks: 2,
                    heartbeat_ticks: 2,
                    ..ok.clone()
                },
                ConfigError::ElectionNotAboveHeartbeat {
                    election: 2,
                    heartbeat: 2,
                },
            ),
            (
                Config {
                    max_msg_bytes: 0,
                    ..ok.clone()
                },
                ConfigError::ZeroLimit("max_msg_bytes"),
            ),
            (
                Config {
                    max_inflight_slots: 0,
                    ..ok.clone()
                },
                ConfigError::ZeroLimit("max_inflight_slots"),
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(cfg.validate(), Err(want));
        }
    }
}
