//! Typed errors. Nothing from outside the process makes the node panic: every
//! bad input ends here.

use thiserror::Error;

/// A configuration the node refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Node ids must be non-zero (zero means "none" on the wire).
    #[error("node id 0 is reserved")]
    ZeroId,
    /// A cluster needs at least one voter.
    #[error("the voter set is empty")]
    NoVoters,
    /// More voters than [`crate::MAX_VOTERS`].
    #[error("{0} voters exceed the limit of {max}", max = crate::config::MAX_VOTERS)]
    TooManyVoters(usize),
    /// A node listed twice (or both as voter and learner).
    #[error("node {0} is listed more than once")]
    DuplicateMember(u64),
    /// A limit or interval that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroLimit(&'static str),
    /// Elections must be slower than heartbeats, or leaders flap.
    #[error("election_ticks ({election}) must exceed heartbeat_ticks ({heartbeat})")]
    ElectionNotAboveHeartbeat {
        /// The configured election ticks.
        election: u32,
        /// The configured heartbeat ticks.
        heartbeat: u32,
    },
    /// `read_lease_ticks` must be below `election_ticks`, the followers'
    /// stickiness window that makes the lease safe.
    #[error("read_lease_ticks ({lease}) must be below election_ticks ({election})")]
    LeaseNotBelowElection {
        /// The configured lease.
        lease: u32,
        /// The configured election ticks.
        election: u32,
    },
    /// A configured quorum size is outside `[1, voters]`, or a phase-2
    /// size below 2 with two or more voters (a leader must not choose
    /// alone: deciding its own removal, it would leave the others no trace
    /// of it).
    #[error("{which} quorum of {size} is out of range for {voters} voters")]
    QuorumOutOfRange {
        /// "phase-1" or "phase-2".
        which: &'static str,
        /// The configured size.
        size: usize,
        /// The number of voters.
        voters: usize,
    },
    /// Phase-1 and phase-2 quorums of these sizes need not intersect, so
    /// two values could be chosen for one slot (rule M4).
    #[error("quorums of {phase1} (phase 1) and {phase2} (phase 2) need not intersect among {voters} voters: their sum must exceed the voters")]
    QuorumsDoNotIntersect {
        /// The phase-1 size.
        phase1: usize,
        /// The phase-2 size.
        phase2: usize,
        /// The number of voters.
        voters: usize,
    },
    /// `Config::applied` is below storage's compacted prefix: the
    /// application's state must come from the snapshot first.
    #[error("applied slot {applied} is below the compacted prefix (slots <= {compacted}): restore the application from the storage's snapshot first")]
    AppliedBelowCompacted {
        /// `Config::applied`.
        applied: u64,
        /// The end of storage's compacted prefix.
        compacted: u64,
    },
    /// `Config::applied` is beyond what storage says is committed.
    #[error("applied slot {applied} is beyond the committed slot {committed} in storage")]
    AppliedBeyondCommitted {
        /// The configured applied slot.
        applied: u64,
        /// The committed slot found in storage.
        committed: u64,
    },
}

/// An error from a [`crate::Storage`] implementation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorageError {
    /// The requested slots were compacted into a snapshot.
    #[error("slots up to {0} are compacted")]
    Compacted(u64),
    /// The storage could not serve the request now; the node retries later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Storage content is inconsistent (for example committed entries missing).
    #[error("storage corrupt: {0}")]
    Corrupt(String),
}

/// Why a membership change was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfChangeError {
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    ZeroId,
    /// Adding a node that is already a voter or learner.
    #[error("node {0} is already a member")]
    AlreadyMember(u64),
    /// Promoting a node that is not a learner.
    #[error("node {0} is not a learner")]
    NotLearner(u64),
    /// Removing a node that is not a member.
    #[error("node {0} is not a member")]
    NotMember(u64),
    /// Removing the only voter.
    #[error("the last voter cannot be removed")]
    LastVoter,
    /// An unknown change type on the wire.
    #[error("unknown change type {0}")]
    UnknownType(i32),
    /// The resulting membership breaks a limit.
    #[error("resulting membership is invalid: {0}")]
    Invalid(ConfigError),
    /// Promoting a learner that is not caught up would stall commits.
    #[error("learner {0} is not caught up yet")]
    LearnerBehind(u64),
}

/// Why a leader refused a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DropReason {
    /// `max_inflight_slots` undecided slots are already in flight.
    #[error("too many undecided slots in flight")]
    TooManyInflightSlots,
    /// `max_inflight_bytes` undecided bytes are already in flight.
    #[error("too many undecided bytes in flight")]
    TooManyInflightBytes,
    /// A single entry larger than `max_inflight_bytes`.
    #[error("entry larger than max_inflight_bytes")]
    EntryTooLarge,
    /// `max_inflight_slots` reads are already waiting for confirmation.
    #[error("too many reads waiting for confirmation")]
    TooManyReads,
    /// A leadership transfer is in progress: retry at the new leader.
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    /// A membership change is not chosen yet: nothing is proposed past it
    /// until it is (PROTOCOL.md rule L3). Retry shortly.
    #[error("a membership change is not decided yet")]
    ConfChangePending,
}

/// Every error the node returns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The proposal was made at a node that is not the leader. `leader` is
    /// the leader this node knows of, if any: send the proposal there.
    #[error("not the leader (known leader: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from.
        leader: Option<u64>,
    },
    /// The leader cannot take the proposal now; retry later.
    #[error("proposal dropped: {0}")]
    ProposalDropped(DropReason),
    /// A message from a node that is not a member.
    #[error("message from unknown node {0}")]
    UnknownPeer(u64),
    /// A message addressed to another node.
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient {
        /// The addressee.
        to: u64,
        /// This node.
        me: u64,
    },
    /// A message that breaks the protocol's shape (missing ballot, ballot not
    /// owned by its sender, non-contiguous slots, ...). Nothing was changed.
    #[error("malformed message from {from}: {reason}")]
    Malformed {
        /// The sender.
        from: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// `campaign()` with lease reads on, at a node that may count toward a
    /// leader's lease: it heard from `leader` (or restarted) within
    /// `election_ticks`. Campaigning would clear the stickiness that keeps
    /// a second leader from being elected while the first reads from its
    /// lease.
    #[error("a leader's read lease may still count on this node (leader: {leader:?}); retry after election_ticks")]
    LeaseHeld {
        /// The leader this node follows, if known.
        leader: Option<u64>,
    },
    /// A learner was asked to do something only voters do.
    #[error("node {0} is not a voter")]
    NotVoter(u64),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    ConfChange(#[from] ConfChangeError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
