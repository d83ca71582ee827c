//! A garbage peer: well-formed messages (they decode) with extreme field
//! values, under random claimed senders, each broken in one way the node
//! must refuse at its edge. Drawn per seed from a stream of its own, so a
//! seed without garbage replays as before.

use crate::rng::Rng;
use paxos_core::proto::{
    Accept, Accepted, Ballot, Body, Decide, Entry, Heartbeat, HeartbeatReply, InstallSnapshot,
    Message, PrePrepare, PrePrepareReply, Prepare, Promise, Propose, Reject, SnapshotMetadata,
    SnapshotReply, TimeoutNow,
};
use paxos_core::{MAX_ROUND, MAX_SLOT};

/// Mean ticks between garbage messages for the seeds that draw it (0: none).
pub fn draw_every(seed: u64) -> u64 {
    let mut rng = Rng::new(seed ^ 0x6a4b_a6e0_5eed);
    if rng.chance(0.3) {
        rng.pick(&[1, 5, 20])
    } else {
        0
    }
}

/// The stream a run's garbage comes from.
pub fn stream(seed: u64) -> Rng {
    Rng::new(seed ^ 0x6a4b_d1ce_5eed)
}

/// A value from the edges of `u64` and of the protocol's bounds.
fn extreme(rng: &mut Rng) -> u64 {
    match rng.range_inclusive(0, 7) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => u64::MAX - 1,
        4 => MAX_SLOT,
        5 => MAX_SLOT + 1,
        6 => rng.range_inclusive(2, 1000),
        _ => rng.next_u64(),
    }
}

/// How a message is broken: each is refused at the edge.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// A ballot round beyond `MAX_ROUND`.
    Round,
    /// No ballot at all.
    NoBallot,
    /// A ballot owned by another node than the sender (for bodies a
    /// proposer sends) or a zero one.
    Foreign,
    /// A slot beyond `MAX_SLOT` (or an entry run that wraps).
    Slot,
}

/// One garbage message to `to`, claiming to come from `from` (never `to`).
pub fn message(rng: &mut Rng, from: u64, to: u64) -> Message {
    let kind = rng.range_inclusive(0, 13);
    let brk = match rng.range_inclusive(0, 3) {
        0 => Break::Round,
        1 => Break::NoBallot,
        2 => Break::Foreign,
        // Bodies without a slot field are broken in their ballot instead.
        _ if matches!(kind, 1 | 9) => Break::Round,
        _ => Break::Slot,
    };
    // The broken ballot, or a plausible-looking one (with the slot broken).
    let ballot = |rng: &mut Rng, owned: bool| -> Option<Ballot> {
        match brk {
            Break::Round => Some(Ballot::new(
                MAX_ROUND + 1 + rng.range_inclusive(0, 1 << 20),
                from,
            )),
            Break::NoBallot => None,
            Break::Foreign if owned => Some(Ballot::new(extreme(rng).max(1), from + 1)),
            Break::Foreign => Some(Ballot::new(0, 0)),
            Break::Slot => Some(Ballot::new(rng.range_inclusive(1, 50), from)),
        }
    };
    let slot = |rng: &mut Rng| match brk {
        Break::Slot => MAX_SLOT + 1 + rng.range_inclusive(0, 1 << 20),
        _ => extreme(rng),
    };
    let entries = |rng: &mut Rng, slot0: u64| -> Vec<Entry> {
        let n = rng.range_inclusive(0, 3);
        let wraps = matches!(brk, Break::Slot) && rng.chance(0.5);
        (0..n)
            .map(|i| Entry {
                slot: if wraps {
                    u64::MAX.wrapping_add(i)
                } else {
                    slot0.wrapping_add(i)
                },
                ballot: Some(Ballot::new(extreme(rng), extreme(rng))),
                kind: rng.range_inclusive(0, 2) as i32,
                data: bytes::Bytes::from(vec![0xAB; rng.range_inclusive(0, 64) as usize]),
            })
            .collect()
    };
    let body = match kind {
        0 => Body::PrePrepare(PrePrepare {
            ballot: ballot(rng, true),
            transfer: Some(Ballot::new(extreme(rng), extreme(rng))),
            committed: slot(rng),
        }),
        1 => Body::PrePrepareReply(PrePrepareReply {
            ballot: ballot(rng, false),
            granted: true,
            promised: Some(Ballot::new(extreme(rng), extreme(rng))),
        }),
        2 => Body::Prepare(Prepare {
            ballot: ballot(rng, true),
            from_slot: slot(rng),
            transfer: Some(Ballot::new(extreme(rng), extreme(rng))),
        }),
        3 => {
            let from_slot = slot(rng);
            Body::Promise(Promise {
                ballot: ballot(rng, false),
                from_slot,
                entries: entries(rng, from_slot),
                committed: slot(rng),
                next_slot: slot(rng),
            })
        }
        4 => {
            let first = slot(rng);
            Body::Accept(Accept {
                ballot: ballot(rng, true),
                entries: entries(rng, first),
                committed: slot(rng),
            })
        }
        5 => Body::Accepted(Accepted {
            ballot: ballot(rng, false),
            matched: slot(rng),
            last_slot: slot(rng),
        }),
        6 => Body::Reject(Reject {
            ballot: ballot(rng, false),
            promised: ballot(rng, false),
            compacted: slot(rng),
        }),
        7 => Body::Heartbeat(Heartbeat {
            ballot: ballot(rng, true),
            committed: slot(rng),
            seq: extreme(rng),
        }),
        8 => Body::HeartbeatReply(HeartbeatReply {
            ballot: ballot(rng, false),
            matched: slot(rng),
            seq: extreme(rng),
        }),
        9 => Body::TimeoutNow(TimeoutNow {
            ballot: ballot(rng, true),
        }),
        10 => Body::InstallSnapshot(Box::new(InstallSnapshot {
            ballot: ballot(rng, true),
            metadata: Some(SnapshotMetadata {
                slot: slot(rng),
                conf_state: None,
            }),
            offset: extreme(rng),
            data: bytes::Bytes::from(vec![0xCD; rng.range_inclusive(0, 64) as usize]),
            done: rng.chance(0.5),
        })),
        11 => Body::SnapshotReply(SnapshotReply {
            ballot: ballot(rng, false),
            slot: slot(rng),
            received: extreme(rng),
            matched: slot(rng),
        }),
        12 => Body::Decide(Decide {
            ballot: ballot(rng, true),
            committed: slot(rng),
        }),
        _ => Body::Propose(Propose {
            // Only unknown kinds: a forwarded proposal is otherwise a
            // client's command, and members may forward those.
            entries: vec![Entry {
                kind: 7 + rng.range_inclusive(0, 100) as i32,
                ..Entry::default()
            }],
        }),
    };
    Message::new(from, to, body)
}
