//! Deliberate protocol bugs, for proving that the simulator catches them.
//!
//! Compiled only with the `planted-bugs` feature; without it `planted!`
//! expands to `false` and every planted branch is dead code.

/// A protocol rule to break on purpose.
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// Acceptors report slots accepted in earlier ballots as accepted in the
    /// current one, so leaders count acceptances across ballots.
    /// Breaks rule L1.
    CountAcrossBallots,
    /// The promise is not persisted before the replies that depend on it.
    /// Breaks rule A3.
    ReplyBeforePersist,
    /// Phase 1 skips adopting accepted values: a slot not reported chosen
    /// gets a no-op even when a promiser reported a value accepted in it.
    /// Breaks rule P3.
    SkipHighestBallotAdoption,
    /// Followers decide up to the leader's watermark even over holes and
    /// stale values, and decided entries are handed out past gaps.
    /// Breaks rule F1.
    ApplyPastGap,
    /// A candidate leads after its own promise, without a quorum.
    /// Breaks rule P2.
    LeadWithoutQuorum,
    /// The leader decides a slot as soon as any one acceptor accepted it.
    /// Breaks rule L1.
    CommitWithoutQuorum,
    /// Acceptors promise to candidates while they still hear from a live leader.
    /// Breaks rule E2.
    IgnoreStickiness,
    /// The leader confirms reads without a quorum round in its ballot.
    /// Breaks rule R1.
    ReadWithoutQuorum,
    /// Phase 1 ends with a quorum of the membership at its start only,
    /// ignoring the memberships that reported changes bring in.
    /// Breaks rule P2.
    SkipNewMembershipQuorum,
    /// The leader proposes and decides past an undecided membership
    /// change, counting later slots with the old membership's quorum.
    /// Breaks rule L3.
    ProposePastConfChange,
    /// A read lease lasts four times `read_lease_ticks`: past the point
    /// where the followers may elect another leader.
    /// Breaks rule R2.
    LeaseOutlivesElection,
    /// A transfer-flagged request skips stickiness at every voter, not only
    /// at those following the leadership that asked for the transfer.
    /// Breaks rule E3.
    StaleTransferExempt,
    /// A candidate wins phase 1 on peers' promises before its own promise
    /// (and report) is durable and counted.
    /// Breaks rule P2.
    LeadWithoutOwnPromise,
    /// An acceptor reports slots under a snapshot it installed but has not
    /// persisted yet, reading storage's older values for them.
    /// Breaks rule S2.
    ReportUnpersistedSnapshot,
    /// A decided membership change adopts the result its proposer computed,
    /// even when a change decided at a lower slot altered its base.
    /// Breaks rule M3.
    AdoptStaleConfChange,
    /// `campaign()` is allowed inside a lease this node acknowledged.
    /// Breaks rule E2.
    CampaignInsideLease,
    /// Phase 1 counts phase-2 quorums (visible only with flexible quorums
    /// where phase 2 is the smaller).
    /// Breaks rule M4.
    PhaseOneQuorumOfPhaseTwo,
    /// Reads are confirmed, and leases granted, by one acknowledgement
    /// fewer than a phase-2 quorum: a set some phase-1 quorum can miss.
    /// Breaks rule R1.
    ConfirmWithTooFew,
    /// The edge does not bound ballot rounds: a forged round near
    /// `u64::MAX` is promised.
    /// Breaks rule V1.
    UncheckedRound,
}

#[cfg(feature = "planted-bugs")]
impl PlantedBug {
    /// Every planted bug.
    pub const ALL: [PlantedBug; 19] = [
        PlantedBug::CountAcrossBallots,
        PlantedBug::ReplyBeforePersist,
        PlantedBug::SkipHighestBallotAdoption,
        PlantedBug::ApplyPastGap,
        PlantedBug::LeadWithoutQuorum,
        PlantedBug::CommitWithoutQuorum,
        PlantedBug::IgnoreStickiness,
        PlantedBug::ReadWithoutQuorum,
        PlantedBug::SkipNewMembershipQuorum,
        PlantedBug::ProposePastConfChange,
        PlantedBug::LeaseOutlivesElection,
        PlantedBug::StaleTransferExempt,
        PlantedBug::LeadWithoutOwnPromise,
        PlantedBug::ReportUnpersistedSnapshot,
        PlantedBug::AdoptStaleConfChange,
        PlantedBug::CampaignInsideLease,
        PlantedBug::UncheckedRound,
        PlantedBug::PhaseOneQuorumOfPhaseTwo,
        PlantedBug::ConfirmWithTooFew,
    ];

    /// The rule of [`crate::protocol`] this bug breaks.
    pub fn rule(self) -> &'static str {
        match self {
            PlantedBug::CountAcrossBallots => "L1",
            PlantedBug::ReplyBeforePersist => "A3",
            PlantedBug::SkipHighestBallotAdoption => "P3",
            PlantedBug::ApplyPastGap => "F1",
            PlantedBug::LeadWithoutQuorum => "P2",
            PlantedBug::CommitWithoutQuorum => "L1",
            PlantedBug::IgnoreStickiness => "E2",
            PlantedBug::ReadWithoutQuorum => "R1",
            PlantedBug::SkipNewMembershipQuorum => "P2",
            PlantedBug::ProposePastConfChange => "L3",
            PlantedBug::LeaseOutlivesElection => "R2",
            PlantedBug::StaleTransferExempt => "E3",
            PlantedBug::LeadWithoutOwnPromise => "P2",
            PlantedBug::ReportUnpersistedSnapshot => "S2",
            PlantedBug::AdoptStaleConfChange => "M3",
            PlantedBug::CampaignInsideLease => "E2",
            PlantedBug::UncheckedRound => "V1",
            PlantedBug::PhaseOneQuorumOfPhaseTwo => "M4",
            PlantedBug::ConfirmWithTooFew => "R1",
        }
    }
}

/// `planted!(cfg, Bug)`: whether `cfg` (a `Config`) plants `Bug`. Always
/// `false` without the `planted-bugs` feature.
macro_rules! planted {
    ($cfg:expr, $bug:ident) => {{
        #[cfg(feature = "planted-bugs")]
        let on = $cfg.planted_bug == Some($crate::PlantedBug::$bug);
        #[cfg(not(feature = "planted-bugs"))]
        let on = false;
        on
    }};
}

/// `planted_any!(cfg, A, B, ...)`: whether `cfg` plants any of these bugs.
macro_rules! planted_any {
    ($cfg:expr, $($bug:ident),+) => {{
        #[cfg(feature = "planted-bugs")]
        let on = [$($crate::PlantedBug::$bug),+].iter().any(|b| $cfg.planted_bug == Some(*b));
        #[cfg(not(feature = "planted-bugs"))]
        let on = false;
        on
    }};
}
