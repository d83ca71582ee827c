//! A read-only view of a node, for monitoring and tests.

use super::{Node, Role, StateRole};
use crate::progress::ProgressState;
use crate::storage::Storage;
use paxos_proto::Ballot;

/// What the leader knows of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    /// The peer.
    pub id: u64,
    /// Whether it votes.
    pub voter: bool,
    /// Every slot <= matched is decided on it or accepted in our ballot.
    pub matched: u64,
    /// The next slot to send it.
    pub next: u64,
    /// How the leader is sending to it.
    pub state: ProgressState,
}

/// A node's state at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: u64,
    /// Its role.
    pub role: StateRole,
    /// The leader it knows (itself when leading).
    pub leader: Option<u64>,
    /// Its promised ballot.
    pub promised: Ballot,
    /// Every slot <= committed is known chosen here.
    pub committed: u64,
    /// The last slot the application confirmed applied.
    pub applied: u64,
    /// The highest slot held.
    pub last_slot: u64,
    /// The voters.
    pub voters: Vec<u64>,
    /// The learners.
    pub learners: Vec<u64>,
    /// Per-peer progress (leaders only; empty otherwise).
    pub progress: Vec<PeerProgress>,
    /// The quorum sizes in effect for the voters (rule M4).
    pub quorums: paxos_proto::Quorums,
}

impl Status {
    pub(super) fn of<S: Storage>(n: &Node<S>, applied: u64) -> Status {
        let progress = match &n.role {
            Role::Leader(ls) => ls
                .progress
                .iter()
                .map(|p| PeerProgress {
                    id: p.id,
                    voter: p.voter,
                    matched: p.matched,
                    next: p.next,
                    state: p.state,
                })
                .collect(),
            _ => Vec::new(),
        };
        Status {
            id: n.id,
            role: n.state_role(),
            leader: n.leader,
            promised: n.promised,
            committed: n.log.committed,
            applied,
            last_slot: n.log.last(),
            voters: n.members.voters.clone(),
            learners: n.members.learners.clone(),
            progress,
            quorums: n.members.quorums(),
        }
    }
}
