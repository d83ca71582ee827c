//! Readable one-line descriptions of events, and the run's trace hash.

use paxos_core::proto::{Ballot, Body, Message};

/// FNV-1a over the words of every event: equal hashes mean equal runs.
#[derive(Clone, Debug)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Mixes words into the hash.
    pub fn mix(&mut self, words: &[u64]) {
        for w in words {
            for b in w.to_le_bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// Words identifying a message, for the trace hash.
pub fn message_words(m: &Message) -> [u64; 6] {
    let (kind, ballot, x, y) = match &m.body {
        None => (0, None, 0, 0),
        Some(Body::PrePrepare(p)) => (1, p.ballot, u64::from(p.transfer.is_some()), 0),
        Some(Body::PrePrepareReply(r)) => (2, r.ballot, u64::from(r.granted), 0),
        Some(Body::Prepare(p)) => (3, p.ballot, p.from_slot, 0),
        Some(Body::Promise(p)) => (4, p.ballot, p.entries.len() as u64, p.committed),
        Some(Body::Accept(a)) => (
            5,
            a.ballot,
            a.entries.first().map_or(0, |e| e.slot),
            a.entries.len() as u64,
        ),
        Some(Body::Accepted(a)) => (6, a.ballot, a.matched, a.last_slot),
        Some(Body::Reject(r)) => (7, r.promised, 0, 0),
        Some(Body::Heartbeat(h)) => (8, h.ballot, h.committed, 0),
        Some(Body::HeartbeatReply(h)) => (9, h.ballot, h.matched, 0),
        Some(Body::Propose(p)) => (10, None, p.entries.len() as u64, 0),
        Some(Body::Decide(d)) => (11, d.ballot, d.committed, 0),
        Some(Body::TimeoutNow(t)) => (12, t.ballot, 0, 0),
        Some(Body::InstallSnapshot(i)) => (
            13,
            i.ballot,
            i.metadata.as_ref().map_or(0, |m| m.slot),
            i.offset,
        ),
        Some(Body::SnapshotReply(r)) => (14, r.ballot, r.received, r.matched),
    };
    let ballot = ballot.unwrap_or(Ballot::ZERO);
    [m.from << 32 | m.to, kind, ballot.round, ballot.node, x, y]
}

/// One readable line describing a message.
pub fn describe(m: &Message) -> String {
    m.to_string()
}
