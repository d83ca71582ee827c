//! Everything the simulator proves, one method per violation it can
//! report. Each names the rule of `paxos-core/PROTOCOL.md` it enforces
//! (or says that it checks no protocol rule but the simulator's own
//! bounds and the host API). The checker's own observations and the
//! simulator's probes both report through these, and only through these.

use super::Checker;
use paxos_core::proto::{Ballot, BatchError, Position};
use std::fmt::Display;

impl Checker {
    /// Violations, in the order found.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The first violation found, if any.
    pub fn first_violation(&self) -> Option<&str> {
        self.violations.first().map(String::as_str)
    }

    /// Every violation, in the order found, consuming the checker.
    pub fn into_violations(self) -> Vec<String> {
        self.violations
    }

    fn record(&mut self, what: String) {
        self.violations.push(what);
    }

    // ------------------------------------------------------------ acceptor

    /// Rule A1 (and the word *promised*): a node's persisted promise never
    /// decreases.
    pub(crate) fn promise_regressed(&mut self, node: u64, promised: Ballot, prev: Ballot) {
        self.record(format!(
            "node {node} persisted promise {promised} below {prev}"
        ));
    }

    /// Rule A3: a node restarts with a promise covering every promise its
    /// messages revealed, since replies leave only after persisting.
    pub(crate) fn promise_lost_on_restart(&mut self, node: u64, promised: Ballot, exposed: Ballot) {
        self.record(format!(
            "node {node} restarted with promise {promised} below {exposed} it had acted on"
        ));
    }

    // ------------------------------------------------------------ phase 1

    /// Rule P3 (Paxos P2b): once a value is chosen in a ballot, every
    /// higher ballot proposes that value; caught at the acceptance.
    pub(crate) fn accepted_over_chosen(
        &mut self,
        node: u64,
        value: &bytes::Bytes,
        slot: u64,
        ballot: Ballot,
        chosen: &bytes::Bytes,
        chosen_in: Ballot,
    ) {
        self.record(format!(
            "node {node} accepted {value:?} at slot {slot} in ballot {ballot} after {chosen:?} was chosen in {chosen_in}"
        ));
    }

    /// Rule P3 (Paxos P2b), for acceptances recorded before the choice was
    /// known: no higher ballot carries a different value.
    pub(crate) fn accepted_other_after_choice(&mut self, slot: u64, other: Ballot, ballot: Ballot) {
        self.record(format!(
            "slot {slot}: a different value was accepted in ballot {other} after one was chosen in {ballot}"
        ));
    }

    /// Rule P3 (each value written in the proposer's own ballot; the word
    /// *ballot*: only its owner proposes in it): one ballot carries one
    /// value per slot.
    pub(crate) fn two_values_in_ballot(&mut self, slot: u64, ballot: Ballot) {
        self.record(format!("slot {slot} got two values in ballot {ballot}"));
    }

    /// Rule P3 (a value reported as chosen is the chosen one) with rule A1
    /// (a promise reports the promiser's watermark): a promise reports as
    /// chosen only the value chosen there.
    pub(crate) fn reported_wrong_chosen(
        &mut self,
        node: u64,
        value: &bytes::Bytes,
        slot: u64,
        chosen: &bytes::Bytes,
    ) {
        self.record(format!(
            "node {node} reported {value:?} as chosen at slot {slot} where {chosen:?} was chosen"
        ));
    }

    /// Rule P2 (a quorum of promises, and a ballot's proposer is the node
    /// it names): a node leads only in its own ballots.
    pub(crate) fn leads_in_foreign_ballot(&mut self, node: u64, ballot: Ballot) {
        self.record(format!(
            "node {node} leads in ballot {ballot} of another node"
        ));
    }

    /// Rule P2: quorums intersect, so one ballot has at most one leader.
    pub(crate) fn two_leaders(&mut self, first: u64, second: u64, ballot: Ballot) {
        self.record(format!(
            "two leaders ({first}, {second}) in ballot {ballot}"
        ));
    }

    /// Rule P2: a candidate leads once a phase-1 quorum promised.
    pub(crate) fn led_without_phase1_quorum(
        &mut self,
        node: u64,
        ballot: Ballot,
        promised: usize,
        needed: usize,
        voters: &std::collections::BTreeSet<u64>,
    ) {
        self.record(format!(
            "node {node} leads in ballot {ballot} on {promised} promises, short of a phase-1 quorum of {needed} of voters {voters:?}"
        ));
    }

    // ------------------------------------------------------------ phase 2

    /// Rule L1 (with L3 for the quorum's membership): a slot is chosen
    /// once, with one value.
    pub(crate) fn chosen_twice(
        &mut self,
        slot: u64,
        first: &bytes::Bytes,
        then: &bytes::Bytes,
        ballot: Ballot,
    ) {
        self.record(format!(
            "slot {slot} chosen twice: {first:?} then {then:?} (ballot {ballot})"
        ));
    }

    /// Rule L1: a chosen slot stays chosen; an acknowledged command is never
    /// lost from its slot.
    pub(crate) fn acknowledged_lost(&mut self, at: Position) {
        self.record(format!("acknowledged command at {at} (slot.index) lost"));
    }

    // ------------------------------------------------------------ learning

    /// Rule F2: decided entries are applied in slot order, each once,
    /// never past a gap.
    pub(crate) fn applied_out_of_order(&mut self, node: u64, slot: u64, last: u64) {
        self.record(format!("node {node} applied slot {slot} after {last}"));
    }

    /// Rule F1: a node learns only the value chosen in a slot.
    pub(crate) fn applied_unchosen_value(
        &mut self,
        node: u64,
        value: &bytes::Bytes,
        slot: u64,
        chosen: &bytes::Bytes,
    ) {
        self.record(format!(
            "node {node} applied {value:?} at slot {slot} where {chosen:?} was chosen"
        ));
    }

    /// Rule F1: a node never guesses; it applies a slot only once chosen.
    pub(crate) fn applied_before_chosen(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} applied slot {slot} before it was chosen"
        ));
    }

    /// Rule P3 (a candidate takes only reported values, else a no-op): every
    /// command applied is one a client proposed.
    pub(crate) fn applied_unproposed(&mut self, node: u64, position: Position) {
        self.record(format!(
            "node {node} applied command {position} (slot.index), which no client proposed"
        ));
    }

    /// Rule V1 (the core's edge checks what it takes in): a batch entry
    /// handed out to apply frames its commands.
    pub(crate) fn applied_malformed_batch(&mut self, node: u64, slot: u64, err: BatchError) {
        self.record(format!(
            "node {node} was handed slot {slot} to apply, a batch that does not decode: {err}"
        ));
    }

    /// Rule F2: replicas applying the same slots in the same order reach
    /// the same state.
    pub(crate) fn replica_state_diverged(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node}'s state after slot {slot} differs from another replica's"
        ));
    }

    /// Rule F2, once healed (liveness): every acknowledged slot is applied
    /// by every member.
    pub(crate) fn acknowledged_not_applied(&mut self, slot: u64) {
        self.record(format!("acknowledged slot {slot} not applied everywhere"));
    }

    // ------------------------------------------------------------ elections

    /// Rule E2: a leader never promises (transfers aside, rule E3).
    pub(crate) fn leader_promised(&mut self, leader: u64, candidate: u64) {
        self.record(format!("leader {leader} promised candidate {candidate}"));
    }

    /// Rule E2 (stickiness, with E1 for pre-votes and E3 for transfers): a
    /// voter that heard from a live leader within `election_ticks` grants
    /// no one else.
    pub(crate) fn stickiness_broken(
        &mut self,
        node: u64,
        candidate: u64,
        kind: &str,
        leader: u64,
        ago: u64,
    ) {
        self.record(format!(
            "node {node} granted candidate {candidate} ({kind}) while hearing from leader {leader} {ago} ticks ago"
        ));
    }

    // ------------------------------------------------------------ membership

    /// Rule M1: a chosen membership change carries the membership it
    /// results in.
    pub(crate) fn change_without_result(&mut self, slot: u64) {
        self.record(format!(
            "slot {slot}: chosen membership change without a result"
        ));
    }

    /// Rule M1: a decided membership change decodes, with its result.
    pub(crate) fn garbled_change_applied(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} applied a garbled membership change at slot {slot}"
        ));
    }

    /// Rules S1 and M2: a snapshot records the membership in effect at its
    /// slot, which an installing node takes on.
    pub(crate) fn snapshot_without_membership(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} installed a snapshot at slot {slot} without its membership"
        ));
    }

    /// Rule M2: a leader removed from the voters steps down; only voters
    /// lead.
    pub(crate) fn non_voter_leads(&mut self, node: u64, ballot: Ballot) {
        self.record(format!("node {node} leads in {ballot} though not a voter"));
    }

    /// Rules M2 and M3: once everything decided is applied, a node's
    /// membership is the one its decided log yields.
    pub(crate) fn membership_diverged(
        &mut self,
        node: u64,
        slot: u64,
        has: (&[u64], &[u64]),
        yields: (&[u64], &[u64]),
    ) {
        self.record(format!(
            "node {node} at slot {slot} has membership {:?}/{:?}, but its decided log yields {:?}/{:?}",
            has.0, has.1, yields.0, yields.1
        ));
    }

    // ------------------------------------------------------------ reads

    /// Rule R1: a read index covers every slot decided before the read
    /// began (a slot some node had applied is decided).
    pub(crate) fn read_below_floor(&mut self, node: u64, index: u64, floor: u64) {
        self.record(format!(
            "node {node} confirmed a read at index {index}, below slot {floor} applied before it was asked"
        ));
    }

    /// Rules R1 and L1, over the whole client history: it is linearizable.
    pub(crate) fn not_linearizable(&mut self, key: u64, ops: usize) {
        self.record(format!(
            "history not linearizable on key {key} ({ops} operations)"
        ));
    }

    // ------------------------------------------------------------ snapshots

    /// Rule S1 (a snapshot covers decided slots; the log continues after
    /// it): an installed snapshot moves the node forward.
    pub(crate) fn snapshot_behind(&mut self, node: u64, slot: u64, last: u64) {
        self.record(format!(
            "node {node} installed a snapshot at slot {slot} after applying {last}"
        ));
    }

    /// Rule S1: an installed snapshot is exactly the replicas' state after
    /// its slot.
    pub(crate) fn snapshot_differs(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} installed a snapshot at slot {slot} that differs from the replicas' state"
        ));
    }

    /// Rule S1: an installed snapshot is a state some replica reached by
    /// applying the decided slots.
    pub(crate) fn snapshot_unknown(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} installed a snapshot at slot {slot} no replica took"
        ));
    }

    /// Rules S1 and S3: a snapshot from the leader is a replica's whole
    /// state, so the application decodes it.
    pub(crate) fn snapshot_undecodable(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} got an undecodable snapshot at slot {slot}"
        ));
    }

    // ------------------------------------------------------------ durability

    /// Rule D3: after a crash, a node restores from what it persisted,
    /// including its own snapshot.
    pub(crate) fn own_snapshot_undecodable(&mut self, node: u64, slot: u64) {
        self.record(format!(
            "node {node} cannot decode its own snapshot at slot {slot}"
        ));
    }

    /// Rule D3: after a crash at any point D1 allows, a node restarts from
    /// its storage.
    pub(crate) fn restart_failed(&mut self, node: u64, error: impl Display) {
        self.record(format!("node {node} failed to restart: {error}"));
    }

    /// Rules D1 and D2 (the `Ready` contract): a node whose Readys are
    /// persisted, sent and advanced goes quiet; it does not produce them
    /// forever.
    pub(crate) fn endless_readies(&mut self, node: u64, limit: usize) {
        self.record(format!(
            "node {node} still has a Ready after {limit} in a row"
        ));
    }

    // ------------------------------------------------------------ the edge

    /// Rule V1: a message from a cluster member is well formed, so it is
    /// never refused (replies from non-members under churn aside).
    pub(crate) fn refused_cluster_message(&mut self, node: u64, error: impl Display) {
        self.record(format!("node {node} refused a cluster message: {error}"));
    }

    /// Rule V1: every malformed peer message is refused with a typed error.
    pub(crate) fn accepted_garbage(&mut self, node: u64, shown: &str) {
        self.record(format!("node {node} accepted garbage: {shown}"));
    }

    // ------------------------------------------------------------ the host API

    /// No PROTOCOL.md rule; the host API's contract: a proposal fails only
    /// with `NotLeader` or `ProposalDropped`.
    pub(crate) fn proposal_failed(&mut self, node: u64, error: impl Display) {
        self.record(format!("node {node} failed a proposal: {error}"));
    }

    // ------------------------------------------------------------ liveness

    /// No PROTOCOL.md rule (a safety rule set); the simulator's liveness
    /// bound: after healing, the cluster settles within `liveness_ticks`.
    pub(crate) fn not_settled(&mut self, ticks: u64, pending: usize, applied: &[String]) {
        self.record(format!(
            "liveness: not settled {ticks} ticks after healing ({pending} clients waiting, applied/committed {applied:?})"
        ));
    }

    /// No PROTOCOL.md rule; the simulator's bound on a run's events: more
    /// means a message storm, itself a bug.
    pub(crate) fn message_storm(&mut self, limit: u64, tick: u64) {
        self.record(format!("message storm: over {limit} events by tick {tick}"));
    }
}
