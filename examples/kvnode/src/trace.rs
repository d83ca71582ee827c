//! One readable line per protocol message, for `serve -v`:
//! `1→2 Accept b=3.1 slots=5..9 committed=4`.

use paxos_core::proto::{Ballot, Body, Entry, Message};
use std::fmt::Write as _;

fn ballot(b: &Option<Ballot>) -> String {
    b.unwrap_or(Ballot::ZERO).to_string()
}

fn slots(entries: &[Entry]) -> String {
    match (entries.first(), entries.last()) {
        (Some(a), Some(z)) if a.slot == z.slot => a.slot.to_string(),
        (Some(a), Some(z)) => format!("{}..{}", a.slot, z.slot),
        _ => "-".into(),
    }
}

/// Describes `m` on one line: sender→receiver, kind, ballot, slots.
pub(crate) fn describe(m: &Message) -> String {
    let mut s = format!("{}→{} {}", m.from, m.to, m.kind_name());
    let _ = match &m.body {
        None => Ok(()),
        Some(Body::PrePrepare(p)) => write!(
            s,
            " b={} committed={} transfer={}",
            ballot(&p.ballot),
            p.committed,
            p.transfer
        ),
        Some(Body::PrePrepareReply(p)) => write!(
            s,
            " b={} granted={} promised={}",
            ballot(&p.ballot),
            p.granted,
            ballot(&p.promised)
        ),
        Some(Body::Prepare(p)) => write!(
            s,
            " b={} from_slot={} transfer={}",
            ballot(&p.ballot),
            p.from_slot,
            p.transfer
        ),
        Some(Body::Promise(p)) => write!(
            s,
            " b={} from_slot={} slots={} committed={} next_slot={}",
            ballot(&p.ballot),
            p.from_slot,
            slots(&p.entries),
            p.committed,
            p.next_slot
        ),
        Some(Body::Accept(a)) => write!(
            s,
            " b={} slots={} committed={}",
            ballot(&a.ballot),
            slots(&a.entries),
            a.committed
        ),
        Some(Body::Accepted(a)) => write!(
            s,
            " b={} matched={} last_slot={}",
            ballot(&a.ballot),
            a.matched,
            a.last_slot
        ),
        Some(Body::Reject(r)) => write!(
            s,
            " b={} promised={}",
            ballot(&r.ballot),
            ballot(&r.promised)
        ),
        Some(Body::Heartbeat(h)) => write!(
            s,
            " b={} committed={} seq={}",
            ballot(&h.ballot),
            h.committed,
            h.seq
        ),
        Some(Body::HeartbeatReply(h)) => write!(
            s,
            " b={} matched={} seq={}",
            ballot(&h.ballot),
            h.matched,
            h.seq
        ),
        Some(Body::Propose(p)) => write!(s, " entries={}", p.entries.len()),
        Some(Body::Decide(d)) => write!(s, " b={} committed={}", ballot(&d.ballot), d.committed),
        Some(Body::TimeoutNow(t)) => write!(s, " b={}", ballot(&t.ballot)),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::proto::{Accept, EntryKind};

    #[test]
    fn an_accept_reads_as_one_line() {
        let e = |slot| Entry {
            slot,
            ballot: None,
            kind: EntryKind::Normal as i32,
            data: Default::default(),
        };
        let m = Message::new(
            1,
            2,
            Body::Accept(Accept {
                ballot: Some(Ballot::new(3, 1)),
                entries: vec![e(5), e(6), e(7)],
                committed: 4,
            }),
        );
        assert_eq!(describe(&m), "1→2 Accept b=3.1 slots=5..7 committed=4");
    }
}
