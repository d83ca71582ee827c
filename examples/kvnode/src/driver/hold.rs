//! When a leader proposes the writes of a turn, or starts the `read_index`
//! round for its reads: at once, unless the slot it proposed last is still
//! undecided (for writes) or its last round is unconfirmed (for reads) and
//! the batch is small. Then it holds them back, for at most
//! [`MAX_HOLD`], so those arriving meanwhile join them. Every slot costs
//! each member one synced transaction, every round a heartbeat to and from
//! each member, so under load the hold trades a little waiting for fewer
//! of them per request; a lone client never waits, as nothing of its own
//! is in flight when it asks again.

use std::time::{Duration, Instant};

/// The longest a turn's writes or reads are held back.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(2);
/// A batch this large is proposed at once: waiting would add little to it.
pub(crate) const MAX_HELD: usize = 256;

/// What the hold looks at, each turn.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Turn {
    /// The member leads (a member that does not refuses its writes at once).
    pub(crate) leader: bool,
    /// What the batch would follow is still out: a slot proposed here
    /// above the committed watermark, or a `read_index` round unconfirmed.
    pub(crate) in_flight: bool,
    /// Requests waiting in the batch.
    pub(crate) queued: usize,
}

/// The batch held back, if any: since when.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    since: Option<Instant>,
}

impl Hold {
    /// Whether the batch waiting at `now` stays back for a later turn.
    pub(crate) fn holds(&mut self, turn: Turn, now: Instant) -> bool {
        if turn.queued == 0 {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        let hold = turn.leader
            && turn.in_flight
            && turn.queued < MAX_HELD
            && now.saturating_duration_since(since) < MAX_HOLD;
        if !hold {
            self.since = None;
        }
        hold
    }

    /// When the batch held back is due: at once once what it waits for is
    /// no longer `in_flight`, else at the hold's end. `None` when nothing
    /// is held.
    pub(crate) fn due(&self, in_flight: bool) -> Option<Instant> {
        let since = self.since?;
        Some(if in_flight { since + MAX_HOLD } else { since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(leader: bool, in_flight: bool, queued: usize) -> Turn {
        Turn {
            leader,
            in_flight,
            queued,
        }
    }

    #[test]
    fn a_batch_goes_at_once_unless_a_leader_waits_on_an_earlier_one() {
        let now = Instant::now();
        let mut h = Hold::default();
        assert!(!h.holds(turn(true, false, 5), now), "nothing in flight");
        assert!(!h.holds(turn(false, true, 5), now), "not the leader");
        assert!(!h.holds(turn(true, true, MAX_HELD), now), "full");
        assert!(!h.holds(turn(true, true, 0), now), "nothing queued");
        assert_eq!(h.due(true), None, "nothing held");
        assert!(h.holds(turn(true, true, 5), now));
    }

    #[test]
    fn a_hold_ends_at_its_deadline_or_once_the_earlier_batch_is_done() {
        let start = Instant::now();
        let mut h = Hold::default();
        assert!(h.holds(turn(true, true, 1), start));
        assert_eq!(h.due(true), Some(start + MAX_HOLD));
        assert_eq!(h.due(false), Some(start), "decided: due at once");
        // More requests join; the deadline stays the first one's.
        let later = start + MAX_HOLD / 2;
        assert!(h.holds(turn(true, true, 40), later));
        assert_eq!(h.due(true), Some(start + MAX_HOLD));
        assert!(!h.holds(turn(true, true, 41), start + MAX_HOLD));
        assert_eq!(h.due(true), None, "proposed: nothing held");
        // A new hold starts its own clock.
        let next = start + MAX_HOLD * 3;
        assert!(h.holds(turn(true, true, 1), next));
        assert_eq!(h.due(true), Some(next + MAX_HOLD));
    }
}
