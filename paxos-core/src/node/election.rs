//! Timers, pre-vote, campaigns and back-off. All time is ticks; every random
//! timeout comes from the node's seeded PRNG.

use super::phase1::Phase1;
use super::{Node, Role};
use crate::errors::{Error, Result};
use crate::membership::Membership;
use crate::rng::SplitMix64;
use crate::storage::Storage;
use paxos_proto::{Ballot, Body, Heartbeat, PrePrepare, Prepare};

/// The node's clocks, in ticks, and the seeded generator that draws its
/// election timeouts: the one source of randomness in the node.
#[derive(Clone, Debug, Hash)]
pub(super) struct Timer {
    /// Ticks since the leader was last heard from (or the last campaign).
    elapsed: u32,
    /// This round's randomized election timeout, in [election, 2 * election).
    timeout: u32,
    /// Ticks since the last heartbeat round (leaders, and candidates to
    /// their promisers).
    heartbeat_elapsed: u32,
    /// Ticks since a leader last checked that it hears from a quorum
    /// (rule E4).
    quorum_elapsed: u32,
    rng: SplitMix64,
}

impl Timer {
    /// A timer drawing from `rng`; the first timeout is drawn by `reset`.
    pub(super) fn new(rng: SplitMix64) -> Self {
        Timer {
            elapsed: 0,
            timeout: 0,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            rng,
        }
    }

    /// Restarts the election clock with a fresh timeout drawn from
    /// `[election_ticks, 2 * election_ticks)`. Drawing anew after every
    /// failed attempt is the back-off that keeps dueling proposers from
    /// livelocking.
    pub(super) fn reset(&mut self, election_ticks: u32) {
        let e = u64::from(election_ticks);
        self.elapsed = 0;
        // Below 2 * election_ticks, so within u32 unless that overflows.
        self.timeout = u32::try_from(self.rng.range(e, 2 * e)).unwrap_or(u32::MAX);
    }

    /// Heard from a live leader, or a phase 1 made progress: the election
    /// clock starts over (the timeout stays).
    pub(super) fn heard(&mut self) {
        self.elapsed = 0;
    }

    /// Whether fewer than `ticks` passed since `heard` or `reset`.
    pub(super) fn within(&self, ticks: u32) -> bool {
        self.elapsed < ticks
    }

    /// One tick of the election clock.
    pub(super) fn tick_election(&mut self) {
        self.elapsed = self.elapsed.saturating_add(1);
    }

    /// Whether the drawn election timeout has passed.
    pub(super) fn timed_out(&self) -> bool {
        self.elapsed >= self.timeout
    }

    /// One tick of the heartbeat clock: true, and the clock starts over,
    /// once `heartbeat_ticks` passed.
    pub(super) fn heartbeat_due(&mut self, heartbeat_ticks: u32) -> bool {
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        if self.heartbeat_elapsed < heartbeat_ticks {
            return false;
        }
        self.heartbeat_elapsed = 0;
        true
    }

    /// One tick of the check-quorum clock (rule E4): true, and the clock
    /// starts over, once `election_ticks` passed.
    pub(super) fn quorum_check_due(&mut self, election_ticks: u32) -> bool {
        self.quorum_elapsed = self.quorum_elapsed.saturating_add(1);
        if self.quorum_elapsed < election_ticks {
            return false;
        }
        self.quorum_elapsed = 0;
        true
    }

    /// A new leadership: its heartbeat and check-quorum clocks start now.
    pub(super) fn start_leading(&mut self) {
        self.heartbeat_elapsed = 0;
        self.quorum_elapsed = 0;
    }

    /// Sets the election clock, for tests of what time allows.
    #[cfg(test)]
    pub(super) fn set_elapsed(&mut self, ticks: u32) {
        self.elapsed = ticks;
    }
}

/// A pre-vote in progress.
#[derive(Clone, Debug, Hash)]
pub(super) struct PreVote {
    pub(super) ballot: Ballot,
    pub(super) granted: Vec<u64>,
    /// The ballot of the leader whose `TimeoutNow` asked for this campaign.
    pub(super) transfer: Option<Ballot>,
}

impl<S: Storage> Node<S> {
    /// A fresh randomized timeout ([`Timer::reset`]).
    pub(super) fn reset_election_timer(&mut self) {
        self.timer.reset(self.cfg.election_ticks);
    }

    pub(super) fn become_follower(&mut self, leader: Option<u64>) {
        if matches!(self.role, Role::Leader(_)) {
            slog::info!(self.logger, "leader stepping down"; "ballot" => %self.promised, "new_leader" => ?leader);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.promised_to = None;
        self.reset_election_timer();
    }

    pub(crate) fn tick(&mut self) {
        if matches!(self.role, Role::Leader(_)) {
            self.tick_leader();
            return;
        }
        self.tick_candidate();
        self.timer.tick_election();
        if self.restart_quiet && !self.timer.within(self.cfg.election_ticks) {
            self.restart_quiet = false;
        }
        if let Some((slot, ticks)) = self.behind {
            self.behind = (self.log.committed < slot && ticks > 1).then(|| (slot, ticks - 1));
        }
        if self.timer.timed_out() && self.members.is_voter(self.id) {
            if self.behind.is_some() {
                // Others can lead and catch us up: leave it to them.
                self.reset_election_timer();
                return;
            }
            self.start_pre_prepare(None);
        }
    }

    /// A phase 1 of many report chunks can outlast the election timeout of
    /// voters whose own report was complete early: the candidate heartbeats
    /// them in its ballot, so they follow it (and refuse rival candidates)
    /// rather than time out and start a campaign that cuts its phase 1 short.
    /// A heartbeat from a candidate teaches nothing decided: nothing is
    /// accepted in its ballot yet.
    fn tick_candidate(&mut self) {
        let Role::Candidate(ph) = &self.role else {
            return;
        };
        if !self.timer.heartbeat_due(self.cfg.heartbeat_ticks) {
            return;
        }
        let (ballot, promisers) = (ph.ballot, ph.promisers());
        let committed = self.log.committed;
        for id in promisers {
            self.send(
                id,
                Body::Heartbeat(Heartbeat {
                    ballot: Some(ballot),
                    committed,
                    seq: 0,
                }),
            );
        }
    }

    /// Starts an election now (pre-vote first, then phase 1). `transfer`
    /// is the ballot of the leader that asked for it (`TimeoutNow`).
    ///
    /// With lease reads on, a host's campaign is refused while this node
    /// may count toward a leader's lease (it heard from that leader within
    /// `election_ticks`, or it restarted within them): campaigning clears
    /// the stickiness the lease relies on, so another leader could be
    /// elected while the first still serves reads from its lease.
    pub(crate) fn campaign(&mut self, transfer: Option<Ballot>) -> Result<()> {
        if !self.members.is_voter(self.id) {
            return Err(Error::NotVoter(self.id));
        }
        if transfer.is_none()
            && self.cfg.read_lease_ticks > 0
            && !matches!(self.role, Role::Leader(_))
            && self.lease_blocks(self.id)
            && !planted!(self.cfg, CampaignInsideLease)
        {
            return Err(Error::LeaseHeld {
                leader: self.leader,
            });
        }
        if !matches!(self.role, Role::Leader(_)) {
            self.start_pre_prepare(transfer);
        }
        Ok(())
    }

    fn next_ballot(&self) -> Ballot {
        Ballot::new(self.max_round.max(self.promised.round) + 1, self.id)
    }

    /// Pre-vote: ask whether voters would promise, without raising anyone's
    /// promise. A node cut off from the quorum thus never inflates its round,
    /// and cannot disrupt the leader when it returns (Raft's pre-vote).
    fn start_pre_prepare(&mut self, transfer: Option<Ballot>) {
        self.reset_election_timer();
        self.leader = None;
        self.promised_to = None;
        let ballot = self.next_ballot();
        let committed = self.log.committed;
        slog::info!(self.logger, "starting pre-vote"; "ballot" => %ballot, "transfer" => ?transfer);
        self.role = Role::PreCandidate(PreVote {
            ballot,
            granted: vec![self.id],
            transfer,
        });
        // The candidate alone is a phase-1 quorum: no one to ask.
        if self.members.phase1_quorum() <= 1 {
            self.start_prepare();
            return;
        }
        self.send_to_other_voters(Body::PrePrepare(PrePrepare {
            ballot: Some(ballot),
            transfer,
            committed,
        }));
    }

    pub(super) fn on_pre_prepare_reply(
        &mut self,
        from: u64,
        b: Ballot,
        granted: bool,
        promised: Ballot,
    ) {
        self.observe_round(promised.round);
        // A pre-vote asks whether phase 1 could succeed (rule E1): it
        // counts a phase-1 quorum.
        let quorum = self.members.phase1_quorum();
        let Role::PreCandidate(pv) = &mut self.role else {
            return;
        };
        if pv.ballot != b || !granted || !self.members.is_voter(from) || pv.granted.contains(&from)
        {
            return;
        }
        pv.granted.push(from);
        if pv.granted.len() >= quorum {
            self.start_prepare();
        }
    }

    /// Phase 1a: promise our own ballot and ask every voter for theirs, over
    /// every slot above our committed watermark at once.
    fn start_prepare(&mut self) {
        let transfer = match &self.role {
            Role::PreCandidate(pv) => pv.transfer,
            _ => None,
        };
        let ballot = self.next_ballot();
        self.promise(ballot);
        self.reset_election_timer();
        let from_slot = self.log.committed + 1;
        slog::info!(self.logger, "starting phase 1"; "ballot" => %ballot, "from_slot" => from_slot);
        // Rule M4: phase 1 counts phase-1 quorums.
        let quorum = if planted!(self.cfg, PhaseOneQuorumOfPhaseTwo) {
            Membership::phase2_quorum
        } else {
            Membership::phase1_quorum
        };
        let phase1 = Phase1::new(self.id, ballot, from_slot, transfer, &self.members, quorum);
        self.role = Role::Candidate(phase1);
        self.send_to_other_voters(Body::Prepare(Prepare {
            ballot: Some(ballot),
            from_slot,
            transfer,
        }));
        // Our own promise goes through the same acceptor code, and its reply
        // reaches us only once the promise is durable.
        if let Err(e) = self.on_prepare(self.id, ballot, from_slot, transfer) {
            slog::error!(self.logger, "cannot read own log for phase 1"; "error" => %e);
            self.become_follower(None);
        }
    }

    /// Rule E5. Stands down from a phase 1 it cannot win: voters that decided more,
    /// up to `slot`, can lead; our election timeout starts no campaign for
    /// two election timeouts or until we decide past `slot`.
    pub(super) fn stand_down_behind(&mut self, slot: u64) {
        slog::info!(self.logger, "behind the voters' compacted prefix: standing down"; "slot" => slot);
        let hold = self.cfg.election_ticks.saturating_mul(2);
        self.behind = Some((slot, hold));
        self.become_follower(None);
    }

    /// A higher promise somewhere: a leader or candidate steps down and
    /// retries only after a fresh randomized timeout. Voters that compacted
    /// slots a candidate has not decided (`compacted`) will not promise it:
    /// once they leave too few voters of some membership its phase 1 needs,
    /// the candidate stands down and holds its campaigns for two election
    /// timeouts, so that a node that knows more leads and sends it the
    /// snapshot rather than being out-bid by it.
    pub(super) fn on_reject(&mut self, from: u64, b: Ballot, promised: Ballot, compacted: u64) {
        self.observe_round(promised.round);
        if let Role::Candidate(ph) = &mut self.role {
            if ph.ballot == b && compacted >= ph.from_slot {
                ph.refused_by(from, compacted);
                if ph.hopeless() {
                    let behind = ph.refused_at;
                    self.stand_down_behind(behind);
                }
                return;
            }
        }
        let mine = match &self.role {
            Role::Leader(ls) => ls.ballot,
            Role::Candidate(ph) => ph.ballot,
            _ => return,
        };
        if b == mine && promised > mine {
            slog::info!(self.logger, "rejected by a higher promise"; "ballot" => %mine, "promised" => %promised);
            self.become_follower(None);
        }
    }
}
