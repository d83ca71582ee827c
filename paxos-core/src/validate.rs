//! Validation at the edge (PROTOCOL.md rule V1): every field of a message from the network is
//! checked against the bounds below before any state changes. A message
//! that breaks one is a typed [`Error::Malformed`] and changes nothing.
//!
//! The bounds are far beyond anything an honest cluster reaches, and they
//! keep every sum the node forms from a message's fields (a slot plus a
//! window, a round plus one) inside `u64`.

use crate::errors::{Error, Result};
use paxos_proto::{Ballot, Body, Entry, EntryKind};

/// The highest round a ballot may carry. A round grows by one per
/// campaign, so at a million campaigns a second an honest cluster reaches
/// it after 146,000 years; and `round + 1` never overflows.
pub const MAX_ROUND: u64 = 1 << 62;

/// How far above the highest round this node has seen a message may bid.
/// Honest rounds grow one campaign at a time, and pre-vote keeps a node cut
/// off from the quorum from inflating its own, so no honest message is ever
/// 2^32 campaigns ahead of a live member; a forged one cannot push the
/// cluster's rounds towards [`MAX_ROUND`] in one step.
pub const MAX_ROUND_JUMP: u64 = 1 << 32;

/// The highest slot a message may name (a billion slots a second for 146
/// years); slot arithmetic (a slot plus a window, plus one) then stays in
/// `u64`.
pub const MAX_SLOT: u64 = 1 << 62;

fn malformed(from: u64, reason: &'static str) -> Error {
    Error::Malformed { from, reason }
}

/// The highest round a message may carry at a node that has seen rounds up
/// to `seen_round`.
pub(crate) fn round_limit(seen_round: u64) -> u64 {
    MAX_ROUND.min(seen_round.saturating_add(MAX_ROUND_JUMP))
}

fn check_ballot(from: u64, b: &Option<Ballot>, round_limit: u64) -> Result<()> {
    match b {
        Some(b) if b.round > round_limit => Err(malformed(
            from,
            "ballot round beyond what this node has seen by more than MAX_ROUND_JUMP",
        )),
        _ => Ok(()),
    }
}

fn check_slot(from: u64, s: u64) -> Result<()> {
    if s > MAX_SLOT {
        return Err(malformed(from, "slot beyond MAX_SLOT"));
    }
    Ok(())
}

/// Checks every field of `body` from `from`, with ballot rounds up to
/// `round_limit`.
///
/// The replies and announcements of steady replication (Accepted,
/// Decide, heartbeats) have two or three scalar fields: they are checked
/// inline, every other kind out of line.
#[inline]
pub(crate) fn check(from: u64, body: &Body, round_limit: u64) -> Result<()> {
    match body {
        Body::Accepted(a) => {
            check_ballot(from, &a.ballot, round_limit)?;
            check_slot(from, a.matched)?;
            check_slot(from, a.last_slot)
        }
        Body::Decide(d) => {
            check_ballot(from, &d.ballot, round_limit)?;
            check_slot(from, d.committed)
        }
        Body::Heartbeat(h) => {
            check_ballot(from, &h.ballot, round_limit)?;
            check_slot(from, h.committed)
        }
        Body::HeartbeatReply(h) => {
            check_ballot(from, &h.ballot, round_limit)?;
            check_slot(from, h.matched)
        }
        _ => check_other(from, body, round_limit),
    }
}

/// Checks each entry of a message; `slotted`: whether they must carry a
/// slot (forwarded proposals carry none yet). Inlined into `check_other`,
/// where an Accept's one entry is the common case.
#[inline]
fn check_entries(from: u64, es: &[Entry], slotted: bool, round_limit: u64) -> Result<()> {
    for e in es {
        if slotted && (e.slot == 0 || e.slot > MAX_SLOT) {
            return Err(malformed(from, "entry slot outside 1..=MAX_SLOT"));
        }
        if EntryKind::try_from(e.kind).is_err() {
            return Err(malformed(from, "unknown entry kind"));
        }
        if e.check_batch().is_err() {
            return Err(malformed(from, "batch entry does not frame its commands"));
        }
        check_ballot(from, &e.ballot, round_limit)?;
    }
    Ok(())
}

/// [`check`] for the kinds it does not check inline.
fn check_other(from: u64, body: &Body, round_limit: u64) -> Result<()> {
    let ballot = |b: &Option<Ballot>| check_ballot(from, b, round_limit);
    let slot = |s: u64| check_slot(from, s);
    let entries = |es: &[Entry], slotted: bool| check_entries(from, es, slotted, round_limit);
    match body {
        Body::PrePrepare(p) => {
            ballot(&p.ballot)?;
            ballot(&p.transfer)?;
            slot(p.committed)
        }
        Body::PrePrepareReply(r) => {
            ballot(&r.ballot)?;
            ballot(&r.promised)
        }
        Body::Prepare(p) => {
            ballot(&p.ballot)?;
            ballot(&p.transfer)?;
            slot(p.from_slot)
        }
        Body::Promise(p) => {
            ballot(&p.ballot)?;
            slot(p.from_slot)?;
            slot(p.committed)?;
            slot(p.next_slot)?;
            entries(&p.entries, true)
        }
        Body::Accept(a) => {
            ballot(&a.ballot)?;
            slot(a.committed)?;
            entries(&a.entries, true)?;
            // A contiguous run: each slot one past the one before (no slot
            // can wrap, all are within MAX_SLOT). Most Accepts carry one
            // entry: nothing to compare, and no call to the windows walk.
            if a.entries.len() > 1
                && a.entries
                    .windows(2)
                    .any(|w| w[0].slot.checked_add(1) != Some(w[1].slot))
            {
                return Err(malformed(
                    from,
                    "accept entries are not a contiguous run of slots",
                ));
            }
            Ok(())
        }
        Body::Reject(r) => {
            ballot(&r.ballot)?;
            ballot(&r.promised)?;
            slot(r.compacted)
        }
        Body::Propose(p) => entries(&p.entries, false),
        // Checked inline by `check`.
        Body::Accepted(_) | Body::Decide(_) | Body::Heartbeat(_) | Body::HeartbeatReply(_) => {
            check(from, body, round_limit)
        }
        Body::TimeoutNow(t) => ballot(&t.ballot),
        Body::InstallSnapshot(s) => {
            ballot(&s.ballot)?;
            if let Some(m) = &s.metadata {
                slot(m.slot)?;
                if let Some(cs) = &m.conf_state {
                    slot(cs.since)?;
                }
            }
            Ok(())
        }
        Body::SnapshotReply(r) => {
            ballot(&r.ballot)?;
            slot(r.slot)?;
            slot(r.matched)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_proto::{Accept, Prepare};

    fn prepare(round: u64) -> Body {
        Body::Prepare(Prepare {
            ballot: Some(Ballot::new(round, 2)),
            from_slot: 1,
            transfer: None,
        })
    }

    #[test]
    fn rounds_are_bounded_by_what_was_seen_and_by_the_cap() {
        let limit = round_limit(5);
        assert!(check(2, &prepare(5 + MAX_ROUND_JUMP), limit).is_ok());
        assert!(check(2, &prepare(6 + MAX_ROUND_JUMP), limit).is_err());
        assert!(check(2, &prepare(u64::MAX), round_limit(u64::MAX)).is_err());
        assert!(check(2, &prepare(MAX_ROUND), round_limit(MAX_ROUND)).is_ok());
    }

    #[test]
    fn a_wrapping_accept_run_is_refused() {
        let e = |slot| Entry {
            slot,
            ..Entry::default()
        };
        let accept = |entries| {
            Body::Accept(Accept {
                ballot: Some(Ballot::new(1, 2)),
                entries,
                committed: 0,
            })
        };
        assert!(check(2, &accept(vec![e(u64::MAX), e(0)]), round_limit(1)).is_err());
        assert!(check(2, &accept(vec![e(MAX_SLOT + 1)]), round_limit(1)).is_err());
        assert!(check(2, &accept(vec![e(3), e(5)]), round_limit(1)).is_err());
        assert!(check(2, &accept(vec![e(3), e(4)]), round_limit(1)).is_ok());
    }
}
