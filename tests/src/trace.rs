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

fn b(ballot: &Option<Ballot>) -> String {
    ballot.map_or_else(|| "-".to_string(), |b| b.to_string())
}

/// Words identifying a message, for the trace hash.
pub fn message_words(m: &Message) -> [u64; 6] {
    let (kind, ballot, x, y) = match &m.body {
        None => (0, None, 0, 0),
        Some(Body::PrePrepare(p)) => (1, p.ballot, u64::from(p.transfer), 0),
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
    };
    let ballot = ballot.unwrap_or(Ballot::ZERO);
    [m.from << 32 | m.to, kind, ballot.round, ballot.node, x, y]
}

/// One readable line describing a message.
pub fn describe(m: &Message) -> String {
    let body = match &m.body {
        None => "Empty".to_string(),
        Some(Body::PrePrepare(p)) => format!(
            "PrePrepare b={}{}",
            b(&p.ballot),
            if p.transfer { " transfer" } else { "" }
        ),
        Some(Body::PrePrepareReply(r)) => {
            format!(
                "PrePrepareReply b={} granted={} promised={}",
                b(&r.ballot),
                r.granted,
                b(&r.promised)
            )
        }
        Some(Body::Prepare(p)) => {
            let transfer = if p.transfer { " transfer" } else { "" };
            format!(
                "Prepare b={} from_slot={}{transfer}",
                b(&p.ballot),
                p.from_slot
            )
        }
        Some(Body::Promise(p)) => format!(
            "Promise b={} entries={} committed={} next={}",
            b(&p.ballot),
            p.entries.len(),
            p.committed,
            p.next_slot
        ),
        Some(Body::Accept(a)) => {
            let slots = match (a.entries.first(), a.entries.last()) {
                (Some(f), Some(l)) => format!("{}..={}", f.slot, l.slot),
                _ => "none".to_string(),
            };
            format!(
                "Accept b={} slots={slots} committed={}",
                b(&a.ballot),
                a.committed
            )
        }
        Some(Body::Accepted(a)) => format!(
            "Accepted b={} matched={} last={}",
            b(&a.ballot),
            a.matched,
            a.last_slot
        ),
        Some(Body::Reject(r)) => format!("Reject b={} promised={}", b(&r.ballot), b(&r.promised)),
        Some(Body::Heartbeat(h)) => format!(
            "Heartbeat b={} committed={} seq={}",
            b(&h.ballot),
            h.committed,
            h.seq
        ),
        Some(Body::HeartbeatReply(h)) => format!(
            "HeartbeatReply b={} matched={} seq={}",
            b(&h.ballot),
            h.matched,
            h.seq
        ),
        Some(Body::Propose(p)) => format!("Propose entries={}", p.entries.len()),
        Some(Body::Decide(d)) => format!("Decide b={} committed={}", b(&d.ballot), d.committed),
        Some(Body::TimeoutNow(t)) => format!("TimeoutNow b={}", b(&t.ballot)),
    };
    format!("{}->{} {body}", m.from, m.to)
}
