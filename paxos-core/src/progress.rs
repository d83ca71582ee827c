//! What the leader knows of each peer's log, and what to send it next.

/// How the leader sends to a peer.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ProgressState {
    /// One `Accept` at a time, waiting for its reply: the peer's position is
    /// uncertain (new leadership, or a gap was reported).
    Probe,
    /// Stream `Accept`s up to the in-flight window: the peer keeps up.
    Replicate,
    /// The peer needs slots the leader has compacted: it is sent the
    /// snapshot, one chunk at a time.
    Snapshot,
}

/// A snapshot being sent to a peer. The leader keeps its own handle on the
/// data, so a newer local snapshot cannot change the bytes mid-transfer.
#[derive(Clone, Debug, Hash)]
pub(crate) struct SnapshotSend {
    pub(crate) snapshot: paxos_proto::Snapshot,
    /// Bytes the peer acknowledged holding.
    pub(crate) acked: u64,
    /// A chunk is out and unanswered (stop-and-wait: a peer assembling
    /// chunks holds at most one unacknowledged one).
    pub(crate) chunk_sent: bool,
    /// `acked` at the previous heartbeat reply: no movement means the chunk
    /// or its reply was lost.
    pub(crate) hb_acked: u64,
    /// The peer reported holding less than `acked` (it restarted): resend
    /// from here on the next stall.
    pub(crate) resume_at: Option<u64>,
}

impl SnapshotSend {
    pub(crate) fn slot(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.slot)
    }
}

#[derive(Clone, Debug, Hash)]
pub(crate) struct Progress {
    pub(crate) id: u64,
    pub(crate) voter: bool,
    /// Every slot <= matched is decided on the peer or accepted by it in the
    /// leader's ballot.
    pub(crate) matched: u64,
    /// The next slot to send.
    pub(crate) next: u64,
    /// The highest slot this leadership sent the peer, or knew it held when
    /// it began: no reply may claim more (rule L2) (a forged or garbled `matched`
    /// would otherwise count as acceptances that never happened).
    pub(crate) sent: u64,
    pub(crate) state: ProgressState,
    /// In `Probe`: the probe is out and unanswered.
    pub(crate) probe_sent: bool,
    /// Heard from since the last quorum check.
    pub(crate) recent_active: bool,
    /// `matched` at the previous heartbeat reply: no movement between two
    /// means what was sent is lost.
    pub(crate) hb_matched: u64,
    /// The highest heartbeat round it acknowledged in our ballot.
    pub(crate) acked_seq: u64,
    /// In `Snapshot`: the transfer.
    pub(crate) snapshot: Option<Box<SnapshotSend>>,
}

impl Progress {
    pub(crate) fn new(id: u64, voter: bool, matched: u64) -> Self {
        Progress {
            id,
            voter,
            matched,
            next: matched.saturating_add(1),
            sent: matched,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            hb_matched: matched,
            acked_seq: 0,
            snapshot: None,
        }
    }

    /// A peer known to hold (decided) every slot <= `held`: sending starts
    /// after it.
    pub(crate) fn starting_after(id: u64, voter: bool, held: u64) -> Self {
        let mut p = Progress::new(id, voter, 0);
        p.next = held.saturating_add(1);
        p.sent = held;
        p
    }

    /// Start over from what the peer is known to hold.
    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.snapshot = None;
    }

    /// Switch to sending `snapshot`.
    pub(crate) fn become_snapshot(&mut self, snapshot: paxos_proto::Snapshot) {
        self.state = ProgressState::Snapshot;
        self.snapshot = Some(Box::new(SnapshotSend {
            snapshot,
            acked: 0,
            chunk_sent: false,
            hb_acked: 0,
            resume_at: None,
        }));
    }

    /// Records an `Accepted(matched, last_slot)` reply.
    #[inline]
    pub(crate) fn on_accepted(&mut self, matched: u64, last_slot: u64) {
        let (matched, last_slot) = (matched.min(self.sent), last_slot.min(self.sent));
        self.recent_active = true;
        let answers_probe = self.state == ProgressState::Probe
            && (last_slot.saturating_add(1) >= self.next || matched.saturating_add(1) >= self.next);
        if answers_probe && matched < self.matched {
            // An honest peer's prefix never shrinks within a ballot, so an
            // answer to our probe below what we credited means the credit
            // was wrong (a forged or garbled reply): trust the answer, or
            // the probe would repeat at the same slot for ever.
            self.matched = matched;
        }
        self.matched = self.matched.max(matched);
        match self.state {
            // A gap behind the acknowledged run: something sent was lost.
            ProgressState::Replicate if matched < last_slot => self.become_probe(),
            ProgressState::Replicate => {}
            // The reply to the outstanding probe (or a later one).
            ProgressState::Probe
                if last_slot.saturating_add(1) >= self.next
                    || self.matched.saturating_add(1) >= self.next =>
            {
                self.probe_sent = false;
                self.next = self.matched + 1;
                if matched >= last_slot {
                    self.state = ProgressState::Replicate;
                }
            }
            ProgressState::Probe => {}
            // Only a SnapshotReply ends a transfer.
            ProgressState::Snapshot => {}
        }
    }

    /// Records a heartbeat reply; returns whether to resend from `matched`.
    pub(crate) fn on_heartbeat_reply(&mut self, matched: u64, leader_last: u64) -> bool {
        let matched = matched.min(self.sent);
        self.recent_active = true;
        self.matched = self.matched.max(matched);
        if let Some(snap) = &mut self.snapshot {
            // The transfer stalled: resend the chunk after what is held.
            let stalled = snap.acked == snap.hb_acked;
            snap.hb_acked = snap.acked;
            if stalled {
                snap.chunk_sent = false;
                if let Some(at) = snap.resume_at.take() {
                    snap.acked = at;
                }
                snap.hb_acked = snap.acked;
            }
            return stalled;
        }
        let stalled = self.matched < leader_last && self.matched == self.hb_matched;
        self.hb_matched = self.matched;
        if stalled {
            self.become_probe();
        }
        stalled
    }
}

/// The highest value that at least `quorum` of `values` reach (one value
/// per voter): the `quorum`-th highest. Commit counts voters' accepted
/// prefixes with it (rule L1), reads and leases their acknowledged
/// heartbeat rounds (rules R1, R2). Sorts `values` in place; 0 when there
/// are fewer than `quorum` values, or `quorum` is 0.
///
/// With prefixes `[2, 5, 2, 4, 2]` and a quorum of 3, it is 2: three
/// voters hold slot 2, only two hold slot 4.
pub(crate) fn quorum_value(values: &mut [u64], quorum: usize) -> u64 {
    values.sort_unstable_by(|a, b| b.cmp(a));
    quorum
        .checked_sub(1)
        .and_then(|i| values.get(i))
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_value_is_the_quorum_th_highest() {
        assert_eq!(quorum_value(&mut [2, 5, 2, 4, 2], 3), 2);
        assert_eq!(quorum_value(&mut [2, 5, 2, 4, 3], 3), 3);
        // Even voter counts: 4 voters, a majority of 3.
        assert_eq!(quorum_value(&mut [7, 1, 9, 8], 3), 7);
        assert_eq!(quorum_value(&mut [7, 1, 9, 8], 2), 8);
        assert_eq!(quorum_value(&mut [4], 1), 4);
        assert_eq!(quorum_value(&mut [4, 4], 3), 0);
        assert_eq!(quorum_value(&mut [4, 4], 0), 0);
    }

    #[test]
    fn probe_then_replicate_then_gap_rewinds() {
        let mut p = Progress::new(2, true, 0);
        assert_eq!((p.state, p.next), (ProgressState::Probe, 1));
        p.probe_sent = true;
        (p.next, p.sent) = (11, 10); // probe carried 1..=10
        p.on_accepted(10, 10);
        assert_eq!(
            (p.state, p.next, p.matched),
            (ProgressState::Replicate, 11, 10)
        );
        (p.next, p.sent) = (31, 30); // streamed 11..=30
        p.on_accepted(10, 30); // 11..=20 lost
        assert_eq!(
            (p.state, p.next, p.probe_sent),
            (ProgressState::Probe, 11, false)
        );
    }

    #[test]
    fn stale_reply_does_not_answer_the_probe() {
        let mut p = Progress::new(2, true, 5);
        p.probe_sent = true;
        (p.next, p.sent) = (21, 20); // probe carried 6..=20
        p.on_accepted(5, 8); // an older message's reply
        assert!(p.probe_sent);
        assert_eq!(p.state, ProgressState::Probe);
    }

    /// A reply claims at most what was sent: a forged `matched = u64::MAX`
    /// must not count as the peer's acceptance of slots it never received.
    #[test]
    fn no_reply_claims_more_than_was_sent() {
        let mut p = Progress::starting_after(2, true, 4);
        (p.next, p.sent) = (11, 10);
        p.on_accepted(u64::MAX, u64::MAX);
        assert_eq!(p.matched, 10);
        p.on_heartbeat_reply(u64::MAX, 100);
        assert_eq!(p.matched, 10);
    }

    #[test]
    fn heartbeat_without_progress_triggers_resend() {
        let mut p = Progress::new(2, true, 0);
        p.state = ProgressState::Replicate;
        (p.next, p.sent) = (50, 49);
        assert!(!p.on_heartbeat_reply(10, 49), "moved since last time");
        assert!(p.on_heartbeat_reply(10, 49), "stalled at 10");
        assert_eq!((p.state, p.next), (ProgressState::Probe, 11));
        assert!(!p.on_heartbeat_reply(49, 49), "caught up");
    }
}
