//! Phase 1 of a leadership: gather promises from a quorum, then adopt, for
//! every slot above the committed watermark, the chosen value if one is
//! reported, else the value accepted in the highest ballot, else a no-op.

use super::leader::LeaderState;
use super::{malformed, Node, Role};
use crate::errors::Result;
use crate::membership::Membership;
use crate::progress::Progress;
use crate::storage::Storage;
use paxos_proto::{Ballot, Body, Entry, EntryKind, Prepare, Promise};
use std::collections::btree_map::{BTreeMap, Entry as MapEntry};
use std::collections::BTreeSet;

/// How far above its committed watermark a promise may report an accepted
/// slot, in units of `max_inflight_slots`. Leaders never run further ahead
/// than one window, so a report beyond this many is garbage, and counting it
/// would make the new leader fill a gap of no-ops without bound.
const MAX_REPORT_SPAN_WINDOWS: u64 = 64;

#[derive(Clone, Debug, Hash)]
struct Report {
    entry: Entry,
    chosen: bool,
}

#[derive(Clone, Debug, Hash)]
pub(super) struct Phase1 {
    /// The candidate.
    me: u64,
    pub(super) ballot: Ballot,
    pub(super) from_slot: u64,
    /// The leadership that asked for this campaign (a transfer).
    pub(super) transfer: Option<Ballot>,
    /// Voters whose whole report arrived.
    complete: Vec<u64>,
    /// Per slot, the best value reported so far.
    reports: BTreeMap<u64, Report>,
    /// Each promiser's committed watermark: where its progress starts.
    peer_committed: Vec<(u64, u64)>,
    /// Per voter, the `from_slot` of the last Prepare sent to it. Only the
    /// Promise answering it counts: a duplicated chunk must not ask for the
    /// next chunk again, or duplicates multiply with every round trip.
    asked: Vec<(u64, u64)>,
    /// Slots whose best report is a membership change.
    conf_reports: BTreeSet<u64>,
    /// Voters that will not promise: they compacted slots we lack, up to
    /// `refused_at`.
    refused: Vec<u64>,
    pub(super) refused_at: u64,
    /// The membership at `from_slot`, then the one after each change
    /// reported, in slot order: phase 1 needs a quorum of each.
    configs: Vec<Membership>,
    /// The quorum phase 1 counts in a membership: its phase-1 size (rule
    /// M4), or a planted bug's phase-2 size.
    quorum: fn(&Membership) -> usize,
}

impl Phase1 {
    pub(super) fn new(
        me: u64,
        ballot: Ballot,
        from_slot: u64,
        transfer: Option<Ballot>,
        members: &Membership,
        quorum: fn(&Membership) -> usize,
    ) -> Self {
        Phase1 {
            quorum,
            me,
            asked: members.voters.iter().map(|&v| (v, from_slot)).collect(),
            ballot,
            from_slot,
            transfer,
            complete: Vec::new(),
            reports: BTreeMap::new(),
            peer_committed: Vec::new(),
            conf_reports: BTreeSet::new(),
            refused: Vec::new(),
            refused_at: 0,
            configs: vec![members.clone()],
        }
    }

    /// Whether `id` was asked to promise (its replies count).
    pub(super) fn asked(&self, id: u64) -> bool {
        self.asked.iter().any(|(v, _)| *v == id)
    }

    /// The peers that promised, once the candidate's own promise is durable
    /// (before that, nothing may vouch for the ballot): they are told the
    /// candidate is alive while phase 1 goes on (see `Node::tick`).
    pub(super) fn promisers(&self) -> Vec<u64> {
        if !self.complete.contains(&self.me) {
            return Vec::new();
        }
        self.peer_committed
            .iter()
            .map(|&(id, _)| id)
            .filter(|&id| id != self.me)
            .collect()
    }

    /// Rebuilds the chain of memberships from the changes reported so far,
    /// and returns the voters of any new one not yet asked to promise.
    /// A value chosen past a change was chosen by a quorum of the new
    /// membership, which the first one's quorum may not intersect after two
    /// changes: so each must promise too (PROTOCOL.md rule P2, "a quorum of the new
    /// configuration").
    fn refresh_chain(&mut self) -> Vec<u64> {
        self.configs.truncate(1);
        for slot in &self.conf_reports {
            // Each change applies to the one before it, as deciding will
            // apply them: a void one brings in no membership.
            let Some(prev) = self.configs.last() else {
                break;
            };
            let m = self
                .reports
                .get(slot)
                .and_then(|r| match r.entry.conf_change() {
                    Some(Ok(cc)) => prev.after(*slot, &cc),
                    _ => None,
                });
            if let Some(m) = m {
                self.configs.push(m);
            }
        }
        let mut fresh = Vec::new();
        for m in &self.configs[1..] {
            for &v in &m.voters {
                if !self.asked.iter().any(|(a, _)| *a == v) && !fresh.contains(&v) {
                    fresh.push(v);
                }
            }
        }
        for &v in &fresh {
            self.asked.push((v, self.from_slot));
        }
        fresh
    }

    /// `id` refused to promise, having compacted slots up to `compacted`.
    pub(super) fn refused_by(&mut self, id: u64, compacted: u64) {
        if self.asked(id) && !self.refused.contains(&id) {
            self.refused.push(id);
            self.refused_at = self.refused_at.max(compacted);
        }
    }

    /// Whether the voters that did not refuse can no longer make a quorum
    /// of every membership in the chain.
    pub(super) fn hopeless(&self) -> bool {
        !self.refused.is_empty()
            && self.configs.iter().any(|m| {
                let left = m
                    .voters
                    .iter()
                    .filter(|v| !self.refused.contains(v))
                    .count();
                left < (self.quorum)(m)
            })
    }

    /// Rule P2: a quorum of every membership in the chain promised in full, the
    /// candidate's own durable promise among them. Without its own report a
    /// candidate could hold entries above every reported slot that it never
    /// rewrites in its ballot, yet its own `Accepted` would claim them (its
    /// own Promise reaches it only once persisted, and a host may step
    /// peers' Promises before that).
    fn won(&self, only_first: bool, own_needed: bool) -> bool {
        if own_needed && !self.complete.contains(&self.me) {
            return false;
        }
        let chain = if only_first {
            &self.configs[..1]
        } else {
            &self.configs[..]
        };
        chain
            .iter()
            .all(|m| self.complete.iter().filter(|&&id| m.is_voter(id)).count() >= (self.quorum)(m))
    }

    /// A chosen report always wins (any report of a chosen slot carries the
    /// chosen value); otherwise the highest accepted ballot wins. Returns
    /// false when two reports claim different chosen values: a peer is
    /// broken, and the first claim is kept.
    fn merge(&mut self, entry: Entry, chosen: bool, skip_adoption: bool) -> bool {
        if skip_adoption && !chosen {
            return true;
        }
        let (slot, is_conf) = (entry.slot, entry.kind == EntryKind::ConfChange as i32);
        let replaced = match self.reports.entry(entry.slot) {
            MapEntry::Vacant(v) => {
                v.insert(Report { entry, chosen });
                true
            }
            MapEntry::Occupied(mut o) => {
                let cur = o.get();
                if cur.chosen
                    && chosen
                    && (cur.entry.kind, &cur.entry.data) != (entry.kind, &entry.data)
                {
                    return false;
                }
                if !cur.chosen && (chosen || entry.ballot() > cur.entry.ballot()) {
                    o.insert(Report { entry, chosen });
                    true
                } else {
                    false
                }
            }
        };
        if replaced {
            if is_conf {
                self.conf_reports.insert(slot);
            } else {
                self.conf_reports.remove(&slot);
            }
        }
        true
    }
}

impl<S: Storage> Node<S> {
    pub(super) fn on_promise(&mut self, from: u64, p: Promise) -> Result<()> {
        let window = self.cfg.max_inflight_slots;
        let Role::Candidate(ph) = &mut self.role else {
            return Ok(());
        };
        if p.ballot != Some(ph.ballot) {
            return Ok(()); // stale
        }
        let Some(asked) = ph.asked.iter().position(|(v, _)| *v == from) else {
            return Ok(());
        };
        if p.from_slot != ph.asked[asked].1 {
            return Ok(()); // a duplicate or an answer to an older request
        }
        // Validate the whole report before using any of it. Everything is
        // bounded from where our phase 1 starts, never from the promiser's
        // own claims: a watermark or a slot far beyond it would make us fill
        // a gap of no-ops without bound.
        let span = window.saturating_mul(MAX_REPORT_SPAN_WINDOWS);
        let reach = ph.from_slot.saturating_add(span);
        if p.committed > reach {
            // This promiser decided far more than we did: a node that knows
            // as much should lead (pre-vote prefers it), so stand down as if
            // refused for compaction.
            slog::info!(self.logger, "a promiser is far ahead";
                "from" => from, "committed" => p.committed, "from_slot" => ph.from_slot);
            self.stand_down_behind(p.committed);
            return Ok(());
        }
        // A promiser's log runs at most one window past its watermark.
        let limit = reach.saturating_add(window);
        if p.entries.windows(2).any(|w| w[1].slot <= w[0].slot)
            || p.entries
                .iter()
                .any(|e| e.slot < p.from_slot || e.slot > limit)
            || (p.next_slot != 0 && p.next_slot <= p.from_slot)
        {
            return Err(malformed(
                from,
                "promise entries out of order or out of range",
            ));
        }
        let from_slot = ph.from_slot;
        let skip_adoption = planted!(self.cfg, SkipHighestBallotAdoption);
        for e in p.entries {
            if e.slot >= from_slot {
                let chosen = e.slot <= p.committed;
                let slot = e.slot;
                if !ph.merge(e, chosen, skip_adoption) {
                    slog::error!(self.logger, "peers report different chosen values";
                        "slot" => slot, "from" => from);
                }
            }
        }
        let (ballot, transfer, from_slot) = (ph.ballot, ph.transfer, ph.from_slot);
        for v in ph.refresh_chain() {
            slog::info!(self.logger, "phase 1 asks a voter of a reported membership"; "voter" => v);
            if v == self.id {
                self.on_prepare(self.id, ballot, from_slot, transfer)?;
            } else {
                self.send(
                    v,
                    Body::Prepare(Prepare {
                        ballot: Some(ballot),
                        from_slot,
                        transfer,
                    }),
                );
            }
        }
        let Role::Candidate(ph) = &mut self.role else {
            return Ok(());
        };
        if ph.hopeless() {
            // The report revealed a membership that the voters which
            // compacted past us leave without a quorum.
            let behind = ph.refused_at;
            self.stand_down_behind(behind);
            return Ok(());
        }
        match ph.peer_committed.iter_mut().find(|(id, _)| *id == from) {
            Some((_, c)) => *c = (*c).max(p.committed),
            None => ph.peer_committed.push((from, p.committed)),
        }
        if p.next_slot != 0 {
            // The report was split: ask for the rest, same ballot. Phase 1
            // is making progress, so the election timer must not cut it
            // short and restart it from scratch in a higher ballot.
            self.timer.heard();
            ph.asked[asked].1 = p.next_slot;
            let (ballot, transfer) = (ph.ballot, ph.transfer);
            if from == self.id {
                return self.on_prepare(self.id, ballot, p.next_slot, transfer);
            }
            self.send(
                from,
                Body::Prepare(Prepare {
                    ballot: Some(ballot),
                    from_slot: p.next_slot,
                    transfer,
                }),
            );
            return Ok(());
        }
        if !ph.complete.contains(&from) {
            ph.complete.push(from);
        }
        let first_only = planted!(self.cfg, SkipNewMembershipQuorum);
        let own_needed = !planted!(self.cfg, LeadWithoutOwnPromise);
        if ph.won(first_only, own_needed) || planted!(self.cfg, LeadWithoutQuorum) {
            self.become_leader();
        }
        Ok(())
    }

    /// Phase 1 is won: write the adopted value of every slot in
    /// [from_slot, highest reported] in our ballot (our own acceptance), and
    /// start phase 2 for all of them.
    fn become_leader(&mut self) {
        let Role::Candidate(ph) = std::mem::replace(&mut self.role, Role::Follower) else {
            return;
        };
        let ballot = ph.ballot;
        let highest = ph.reports.keys().next_back().copied().unwrap_or(0);
        let last = highest.max(ph.from_slot - 1);
        let mut chosen_prefix = self.log.committed;
        let mut uncommitted_bytes = 0u64;
        let mut reports = ph.reports.into_iter().peekable();
        for slot in ph.from_slot..=last {
            let (mut entry, chosen) = match reports.next_if(|(s, _)| *s == slot) {
                Some((_, r)) => (r.entry, r.chosen),
                None => (noop(slot), false), // gap filling
            };
            if chosen && slot == chosen_prefix + 1 {
                chosen_prefix = slot;
            }
            if slot <= self.log.committed {
                continue;
            }
            if !chosen {
                uncommitted_bytes += entry.size();
            }
            entry.ballot = Some(ballot);
            self.log.write(entry);
        }
        // A candidate learns nothing decided during phase 1 (any leader
        // that could tell it makes it a follower), so the reports start
        // right after its decided prefix.
        debug_assert_eq!(ph.from_slot, self.log.committed + 1);
        self.decide(chosen_prefix);
        if !self.members.is_voter(self.id) {
            // Phase 1 revealed our own removal as chosen (we had accepted it
            // but not learned it): a node outside the membership must not
            // lead. Giving up the ballot is always safe; what we wrote in it
            // counts for nothing, as no acceptor has it.
            slog::info!(self.logger, "phase 1 revealed our removal: not leading"; "ballot" => %ballot);
            self.become_follower(None);
            return;
        }
        let committed = self.log.committed;
        let progress = self
            .members
            .others(self.id)
            .map(|id| {
                let known = ph
                    .peer_committed
                    .iter()
                    .find(|(p, _)| *p == id)
                    .map(|(_, c)| *c);
                // A promiser's decided prefix is held; others are probed from
                // our own committed watermark.
                let matched = known.unwrap_or(ph.from_slot - 1);
                Progress::starting_after(id, self.members.is_voter(id), matched)
            })
            .collect();
        slog::info!(self.logger, "became leader";
            "ballot" => %ballot, "from_slot" => ph.from_slot, "recovered_up_to" => last,
            "committed" => committed);
        self.role = Role::Leader(LeaderState::new(
            ballot,
            progress,
            committed,
            last,
            uncommitted_bytes,
        ));
        self.leader = Some(self.id);
        // Our own complete report covered every slot we held, so each one
        // up to `last` was just rewritten in our ballot: our own `Accepted`
        // for them (sent at the next flush) claims nothing we did not write.
        debug_assert!(
            self.log.last() <= last
                || planted_any!(
                    self.cfg,
                    LeadWithoutOwnPromise,
                    LeadWithoutQuorum,
                    SkipHighestBallotAdoption
                ),
            "own entries above the recovered range: last {} > {last}",
            self.log.last()
        );
        self.accept_prefix = self.log.last();
        self.timer.start_leading();
        self.broadcast_heartbeat();
    }
}

fn noop(slot: u64) -> Entry {
    Entry {
        slot,
        ballot: None,
        kind: EntryKind::Noop as i32,
        data: bytes::Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::node::testutil::{drain, entry, make_candidate, node, settle_self};
    use crate::node::Role;
    use paxos_proto::{Ballot, Body, EntryKind, Promise};

    fn promise(
        b: Ballot,
        entries: Vec<paxos_proto::Entry>,
        committed: u64,
        next_slot: u64,
    ) -> Body {
        Body::Promise(Promise {
            ballot: Some(b),
            from_slot: 1,
            entries,
            committed,
            next_slot,
        })
    }

    #[test]
    fn adopts_chosen_then_highest_ballot_and_fills_gaps_with_noops() {
        let mut n = node(1, &[1, 2, 3, 4, 5]);
        let b = make_candidate(&mut n, &[2, 3]);
        settle_self(&mut n); // our own promise (empty log)
        let (lo, hi) = (Ballot::new(1, 2), Ballot::new(1, 3));
        // Node 2: slot 1 chosen (its committed is 1), slot 3 at a low ballot.
        n.dispatch(
            2,
            promise(b, vec![entry(1, lo, "one"), entry(3, lo, "low")], 1, 0),
        )
        .expect("ok");
        assert!(
            matches!(n.role, Role::Candidate(_)),
            "two promises of five are no quorum"
        );
        // Node 3: slot 3 at a higher ballot, slot 5; slot 2 and 4 nobody has.
        n.dispatch(
            3,
            promise(b, vec![entry(3, hi, "high"), entry(5, lo, "five")], 0, 0),
        )
        .expect("ok");
        let Role::Leader(_) = &n.role else {
            panic!("quorum of 3 promises should win")
        };
        let data = |s: u64| n.log.get(s).map(|e| (e.kind, e.data.clone(), e.ballot()));
        assert_eq!(data(1), Some((EntryKind::Normal as i32, "one".into(), b)));
        assert_eq!(
            data(2).map(|d| d.0),
            Some(EntryKind::Noop as i32),
            "gap filled with a no-op"
        );
        assert_eq!(
            data(3).map(|d| d.1),
            Some("high".into()),
            "highest ballot adopted"
        );
        assert_eq!(data(4).map(|d| d.0), Some(EntryKind::Noop as i32));
        assert_eq!(data(5).map(|d| d.1), Some("five".into()));
        assert_eq!(n.log.committed, 1, "reported-chosen slot adopted as chosen");
        assert_eq!(n.log.last(), 5);
    }

    /// While phase 1 goes on, the voters that promised hear from the
    /// candidate at the heartbeat cadence (and only once its own promise is
    /// durable), so they do not time out and campaign against it.
    #[test]
    fn a_long_phase_1_keeps_its_promisers_following() {
        let mut n = node(1, &[1, 2, 3, 4, 5]);
        let b = make_candidate(&mut n, &[2, 3]);
        n.dispatch(2, promise(b, vec![], 0, 0)).expect("ok");
        let beats = |n: &mut crate::node::Node<crate::MemStorage>| {
            for _ in 0..n.cfg.heartbeat_ticks {
                n.tick();
            }
            drain(n)
                .into_iter()
                .filter(|m| matches!(m.body, Some(Body::Heartbeat(_))))
                .map(|m| m.to)
                .collect::<Vec<_>>()
        };
        assert!(
            beats(&mut n).is_empty(),
            "vouched for a ballot not yet durable"
        );
        settle_self(&mut n); // our own promise is durable now
        assert!(matches!(n.role, Role::Candidate(_)), "2 of 5 are no quorum");
        assert_eq!(beats(&mut n), vec![2]);
    }

    #[test]
    fn split_promise_asks_for_the_rest_and_counts_only_when_complete() {
        let mut n = node(1, &[1, 2, 3]);
        let b = make_candidate(&mut n, &[2]);
        settle_self(&mut n);
        let lo = Ballot::new(1, 2);
        n.dispatch(2, promise(b, vec![entry(1, lo, "a")], 0, 2))
            .expect("ok");
        assert!(
            matches!(n.role, Role::Candidate(_)),
            "an incomplete report is not a promise yet"
        );
        let out = drain(&mut n);
        let Some(Body::Prepare(p)) = &out[0].body else {
            panic!("{out:?}")
        };
        assert_eq!((out[0].to, p.from_slot, p.ballot), (2, 2, Some(b)));
        n.dispatch(
            2,
            Body::Promise(Promise {
                ballot: Some(b),
                from_slot: 2,
                entries: vec![entry(2, lo, "b")],
                committed: 0,
                next_slot: 0,
            }),
        )
        .expect("ok");
        assert!(matches!(n.role, Role::Leader(_)));
        assert_eq!(n.log.last(), 2);
    }

    #[test]
    fn stale_and_malformed_promises_are_not_counted() {
        let mut n = node(1, &[1, 2, 3]);
        let b = make_candidate(&mut n, &[2]);
        settle_self(&mut n);
        let other = Ballot::new(b.round, 2);
        n.dispatch(2, promise(other, vec![], 0, 0))
            .expect("an answer to another ballot is ignored");
        assert!(
            n.dispatch(2, promise(Ballot::ZERO, vec![], 0, 0)).is_err(),
            "a promise without a ballot is malformed"
        );
        assert!(matches!(n.role, Role::Candidate(_)));
        let lo = Ballot::new(1, 2);
        let bad = promise(b, vec![entry(3, lo, "x"), entry(2, lo, "y")], 0, 0);
        assert!(n.dispatch(2, bad).is_err());
        let far = promise(b, vec![entry(u64::MAX / 2, lo, "x")], 0, 0);
        assert!(
            n.dispatch(2, far).is_err(),
            "absurd slot would force unbounded no-ops"
        );
        assert!(matches!(n.role, Role::Candidate(_)));
    }

    /// Regression (simulator seed 88): a duplicated split Promise asked for
    /// the next chunk once per copy, and the copies multiplied each round
    /// trip until the run drowned in messages.
    #[test]
    fn duplicated_promise_chunks_ask_for_the_rest_once() {
        let mut n = node(1, &[1, 2, 3]);
        let b = make_candidate(&mut n, &[2]);
        settle_self(&mut n);
        let lo = Ballot::new(1, 2);
        for _ in 0..3 {
            n.dispatch(2, promise(b, vec![entry(1, lo, "a")], 0, 2))
                .expect("ok");
        }
        let asks = drain(&mut n)
            .into_iter()
            .filter(|m| matches!(m.body, Some(Body::Prepare(_))))
            .count();
        assert_eq!(
            asks, 1,
            "one continuation request, however many copies arrive"
        );
        // A late copy of the first chunk after the last one does not count either.
        let last = Body::Promise(Promise {
            ballot: Some(b),
            from_slot: 2,
            entries: vec![],
            committed: 0,
            next_slot: 0,
        });
        n.dispatch(2, last).expect("ok");
        assert!(matches!(n.role, Role::Leader(_)));
    }

    /// PROTOCOL.md rule R1: a new leader confirms reads only after its own
    /// phase-2 re-proposals are chosen.
    #[test]
    fn reads_wait_for_the_new_leaders_re_proposals() {
        let mut n = node(1, &[1, 2, 3]);
        let b = make_candidate(&mut n, &[2]);
        settle_self(&mut n);
        let lo = Ballot::new(1, 2);
        n.dispatch(
            2,
            promise(b, vec![entry(1, lo, "a"), entry(2, lo, "b")], 0, 0),
        )
        .expect("ok");
        assert!(matches!(n.role, Role::Leader(_)));
        n.read_index("r".into()).expect("leader");
        // Everyone answers the heartbeat round, but slot 2 is not chosen yet.
        let seq = match &n.role {
            Role::Leader(ls) => ls.reads_pending_seq_for_test(),
            _ => unreachable!(),
        };
        n.dispatch(
            2,
            Body::HeartbeatReply(paxos_proto::HeartbeatReply {
                ballot: Some(b),
                matched: 0,
                seq: seq + 5,
            }),
        )
        .expect("ok");
        assert!(
            n.read_states.is_empty(),
            "read confirmed before the re-proposals were chosen"
        );
        // Our own acceptance and node 2's choose slots 1..=2.
        settle_self(&mut n);
        n.flush();
        settle_self(&mut n);
        n.dispatch(
            2,
            Body::Accepted(paxos_proto::Accepted {
                ballot: Some(b),
                matched: 2,
                last_slot: 2,
            }),
        )
        .expect("ok");
        assert_eq!(n.log.committed, 2);
        let seq = match &n.role {
            Role::Leader(ls) => ls.reads_pending_seq_for_test(),
            _ => unreachable!(),
        };
        assert!(
            n.read_states.is_empty(),
            "needs a heartbeat round after the read was released"
        );
        n.dispatch(
            2,
            Body::HeartbeatReply(paxos_proto::HeartbeatReply {
                ballot: Some(b),
                matched: 2,
                seq,
            }),
        )
        .expect("ok");
        assert_eq!(n.read_states.len(), 1);
        assert_eq!(n.read_states[0].index, 2);
    }

    /// A promise reports a change that promotes learner 4 (voters become
    /// 1..=4, quorum 3): a quorum of the old voters is no longer enough,
    /// the new voter is asked, and phase 1 ends with a quorum of both.
    #[test]
    fn a_reported_change_needs_a_quorum_of_the_new_membership_too() {
        use crate::{Config, MemStorage};
        use paxos_proto::{ConfChange, ConfChangeType, ConfState, ProstMessage};
        let mut cfg = Config::new(1, vec![1, 2, 3]);
        cfg.learners = vec![4];
        let mut n = crate::node::testutil::node_with(cfg, MemStorage::new());
        let b = make_candidate(&mut n, &[2]);
        settle_self(&mut n);
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
        let mut e = entry(1, Ballot::new(1, 2), "");
        e.kind = EntryKind::ConfChange as i32;
        e.data = change.encode_to_vec().into();
        n.dispatch(
            2,
            promise(b, vec![e, entry(2, Ballot::new(1, 2), "x")], 0, 0),
        )
        .expect("ok");
        assert!(
            matches!(n.role, Role::Candidate(_)),
            "2 of the old 3 voters are no quorum of the new 4"
        );
        let out = drain(&mut n);
        assert!(
            out.iter()
                .any(|m| m.to == 4 && matches!(m.body, Some(Body::Prepare(_)))),
            "the new voter was not asked: {out:?}"
        );
        n.dispatch(4, promise(b, vec![], 0, 0)).expect("ok");
        assert!(
            matches!(n.role, Role::Leader(_)),
            "quorum of both memberships"
        );
        assert_eq!(n.log.get(2).map(|e| e.data.clone()), Some("x".into()));
    }
}
