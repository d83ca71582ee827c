//! When a leader proposes the writes of a turn: at once, unless the slot
//! it proposed last is still undecided and the batch is small. Then it
//! holds them back, for at most [`HOLD_WRITES`], so the writes arriving
//! meanwhile join them in one slot. Every slot costs each member one
//! synced transaction, so under load the hold trades a little waiting for
//! fewer syncs per write; a lone client never waits, as nothing of its own
//! is undecided when it writes again.

use std::time::{Duration, Instant};

/// The longest a turn's writes are held back.
pub(crate) const HOLD_WRITES: Duration = Duration::from_millis(2);
/// A batch this large is proposed at once: waiting would add little to it.
pub(crate) const HOLD_MAX_COMMANDS: usize = 256;

/// What the hold looks at, each turn.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Turn {
    /// The member leads (a member that does not refuses its writes at once).
    pub(crate) leader: bool,
    /// A slot proposed here is above the committed watermark.
    pub(crate) undecided: bool,
    /// Writes waiting to be proposed.
    pub(crate) writes: usize,
}

/// The writes held back, if any: since when.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    since: Option<Instant>,
}

impl Hold {
    /// Whether the writes waiting at `now` stay back for a later turn.
    pub(crate) fn holds(&mut self, turn: Turn, now: Instant) -> bool {
        if turn.writes == 0 {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        let hold = turn.leader
            && turn.undecided
            && turn.writes < HOLD_MAX_COMMANDS
            && now.saturating_duration_since(since) < HOLD_WRITES;
        if !hold {
            self.since = None;
        }
        hold
    }

    /// When the writes held back are due: at once once the slot they wait
    /// for is decided (`undecided` false), else at the hold's end. `None`
    /// when nothing is held.
    pub(crate) fn due(&self, undecided: bool) -> Option<Instant> {
        let since = self.since?;
        Some(if undecided {
            since + HOLD_WRITES
        } else {
            since
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(leader: bool, undecided: bool, writes: usize) -> Turn {
        Turn {
            leader,
            undecided,
            writes,
        }
    }

    #[test]
    fn writes_go_at_once_unless_a_leader_waits_on_its_last_slot() {
        let now = Instant::now();
        let mut h = Hold::default();
        assert!(!h.holds(turn(true, false, 5), now), "nothing undecided");
        assert!(!h.holds(turn(false, true, 5), now), "not the leader");
        assert!(!h.holds(turn(true, true, HOLD_MAX_COMMANDS), now), "full");
        assert!(!h.holds(turn(true, true, 0), now), "no writes");
        assert_eq!(h.due(true), None, "nothing held");
        assert!(h.holds(turn(true, true, 5), now));
    }

    #[test]
    fn a_hold_ends_at_its_deadline_or_once_the_slot_is_decided() {
        let start = Instant::now();
        let mut h = Hold::default();
        assert!(h.holds(turn(true, true, 1), start));
        assert_eq!(h.due(true), Some(start + HOLD_WRITES));
        assert_eq!(h.due(false), Some(start), "decided: due at once");
        // More writes join; the deadline stays the first write's.
        let later = start + HOLD_WRITES / 2;
        assert!(h.holds(turn(true, true, 40), later));
        assert_eq!(h.due(true), Some(start + HOLD_WRITES));
        assert!(!h.holds(turn(true, true, 41), start + HOLD_WRITES));
        assert_eq!(h.due(true), None, "proposed: nothing held");
        // A new hold starts its own clock.
        let next = start + HOLD_WRITES * 3;
        assert!(h.holds(turn(true, true, 1), next));
        assert_eq!(h.due(true), Some(next + HOLD_WRITES));
    }
}
