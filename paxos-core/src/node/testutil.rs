//! Helpers for the modules' unit tests: a node on `MemStorage` and
//! hand-made messages.

use super::Node;
use crate::config::Config;
use crate::storage::MemStorage;
use bytes::Bytes;
use paxos_proto::{Accept, Ballot, Body, Entry, EntryKind, Message, PrePrepareReply};

pub(crate) fn node(id: u64, voters: &[u64]) -> Node<MemStorage> {
    node_with(Config::new(id, voters.to_vec()), MemStorage::new())
}

pub(crate) fn node_with(cfg: Config, storage: MemStorage) -> Node<MemStorage> {
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    Node::new(&cfg, storage, logger).expect("valid test node")
}

pub(crate) fn entry(slot: u64, ballot: Ballot, data: &str) -> Entry {
    Entry {
        slot,
        ballot: Some(ballot),
        kind: EntryKind::Normal as i32,
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

pub(crate) fn accept(ballot: Ballot, entries: Vec<Entry>, committed: u64) -> Body {
    Body::Accept(Accept {
        ballot: Some(ballot),
        entries,
        committed,
    })
}

/// Takes the outbox.
pub(crate) fn drain(n: &mut Node<MemStorage>) -> Vec<Message> {
    let mut out = std::mem::take(&mut n.outbox.immediate);
    out.append(&mut n.outbox.persisted);
    out
}

/// Delivers the node's replies to itself (as `advance` does once durable)
/// and returns the rest of the outbox.
pub(crate) fn settle_self(n: &mut Node<MemStorage>) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        out.extend(drain(n));
        let mine = std::mem::take(&mut n.outbox.to_self);
        if mine.is_empty() {
            return out;
        }
        for m in mine {
            let body = m.body.expect("own messages have bodies");
            n.dispatch(m.from, body).expect("own reply");
        }
    }
}

/// Makes `n` a candidate: pre-vote granted by `granters`, Prepares out.
pub(crate) fn make_candidate(n: &mut Node<MemStorage>, granters: &[u64]) -> Ballot {
    n.campaign(None).expect("voter");
    let b = match &n.role {
        crate::node::Role::PreCandidate(pv) => pv.ballot,
        _ => panic!("not pre-candidate"),
    };
    drain(n);
    for &g in granters {
        let reply = Body::PrePrepareReply(PrePrepareReply {
            ballot: Some(b),
            granted: true,
            promised: None,
        });
        n.dispatch(g, reply).expect("grant");
    }
    assert!(
        matches!(n.role, crate::node::Role::Candidate(_)),
        "pre-vote not won"
    );
    n.promised
}
