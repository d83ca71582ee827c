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

// Event tags: the second word an event mixes into the trace hash, after the
// time. Message sends are mixed as `message_words` and carry no tag. The
// values are part of every recorded trace hash; changing one changes them.

/// A node (re)started from its storage: `[now, TRACE_START, id]`.
pub const TRACE_START: u64 = 1;
/// A node crashed: `[now, TRACE_CRASH, id]`.
pub const TRACE_CRASH: u64 = 2;
/// A fault was injected: `[now, TRACE_FAULT, fault word]`.
pub const TRACE_FAULT: u64 = 3;
/// A node applied a decided entry: `[now, TRACE_APPLY, id, slot]`.
pub const TRACE_APPLY: u64 = 4;
/// A client's command completed: `[now, TRACE_CLIENT_DONE, client, seq]`.
pub const TRACE_CLIENT_DONE: u64 = 5;
/// A node installed a leader's snapshot: `[now, TRACE_INSTALL, id, slot]`.
pub const TRACE_INSTALL: u64 = 6;
/// The liveness phase began: `[now, TRACE_LIVENESS]`. It shares its value
/// with [`TRACE_INSTALL`] (the word count tells them apart); kept so that
/// recorded trace hashes stay valid.
pub const TRACE_LIVENESS: u64 = 6;
/// A node snapshotted and compacted: `[now, TRACE_SNAPSHOT, id, slot]`.
pub const TRACE_SNAPSHOT: u64 = 7;
/// A replacement step: `[now, TRACE_RECONFIG, new, old]`.
pub const TRACE_RECONFIG: u64 = 8;
/// The host called `campaign()`: `[now, TRACE_HOST_CAMPAIGN, id]`.
pub const TRACE_HOST_CAMPAIGN: u64 = 9;
/// The garbage peer sent a message: `[now, TRACE_GARBAGE, from, to]`.
pub const TRACE_GARBAGE: u64 = 10;

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
