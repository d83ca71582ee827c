//! A readable one-line form of every message, for traces and verbose logs.

use crate::{Ballot, Body, Message};
use std::fmt;

fn b(ballot: &Option<Ballot>) -> String {
    ballot.map_or_else(|| "-".to_string(), |b| b.to_string())
}

/// `from->to Kind field=value ...`: enough to follow a protocol run by eye,
/// without payloads.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self;
        let body = match &m.body {
            None => "Empty".to_string(),
            Some(Body::PrePrepare(p)) => format!(
                "PrePrepare b={}{}",
                b(&p.ballot),
                p.transfer
                    .map_or_else(String::new, |t| format!(" transfer={t}"))
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
                let transfer = p
                    .transfer
                    .map_or_else(String::new, |t| format!(" transfer={t}"));
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
            Some(Body::Reject(r)) => {
                format!("Reject b={} promised={}", b(&r.ballot), b(&r.promised))
            }
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
            Some(Body::InstallSnapshot(i)) => format!(
                "InstallSnapshot b={} slot={} offset={} bytes={}{}",
                b(&i.ballot),
                i.metadata.as_ref().map_or(0, |m| m.slot),
                i.offset,
                i.data.len(),
                if i.done { " done" } else { "" }
            ),
            Some(Body::SnapshotReply(r)) => format!(
                "SnapshotReply b={} slot={} received={} matched={}",
                b(&r.ballot),
                r.slot,
                r.received,
                r.matched
            ),
        };
        write!(f, "{}->{} {body}", m.from, m.to)
    }
}
