//! Wire and persistent types of the `paxos` Multi-Paxos library.
//!
//! `proto/paxos.proto` is the source of truth; this crate compiles it with
//! prost at build time (no system `protoc` needed) and adds a few helpers.
//! Every `bytes` field is a [`bytes::Bytes`], so cloning an [`Entry`] or a
//! [`Message`] never copies a payload.
#![deny(missing_docs)]

use std::fmt;

mod batch;
mod display;
mod quorums;

pub use batch::{
    batch_payload, framed_len, BatchBuilder, BatchError, Command, CommandSlices, Commands, Position,
};
pub use quorums::Quorums;

#[allow(missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/paxos.rs"));
}

pub use generated::message::Body;
pub use generated::*;

/// Re-exported so users encode and decode without naming prost themselves.
pub use prost::{DecodeError, EncodeError, Message as ProstMessage};

impl Ballot {
    /// The zero ballot: below every real ballot, meaning "none".
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// A ballot of `round` owned by `node`.
    pub const fn new(round: u64, node: u64) -> Self {
        Ballot { round, node }
    }

    /// Whether this is the zero ballot.
    pub const fn is_zero(&self) -> bool {
        self.round == 0 && self.node == 0
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

impl Entry {
    /// The ballot this entry was accepted in (zero when unset on the wire).
    pub fn ballot(&self) -> Ballot {
        self.ballot.unwrap_or(Ballot::ZERO)
    }

    /// The membership change this entry carries: `None` for other kinds,
    /// `Some(Err)` when the payload does not decode.
    pub fn conf_change(&self) -> Option<Result<ConfChange, DecodeError>> {
        (self.kind == EntryKind::ConfChange as i32)
            .then(|| <ConfChange as prost::Message>::decode(self.data.clone()))
    }

    /// The payload size counted against byte limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

impl ConfChange {
    /// The membership in effect after this change is decided at `slot`, when
    /// `current` is the one in effect before it: its `result` (made at
    /// `slot`) if the change was computed on `current`, or `None` when it is
    /// void (another change replaced its base first) or carries no result.
    /// Every replica, and every application that tracks membership, applies
    /// decided changes through this one rule, so all agree.
    pub fn outcome(&self, current: &ConfState, slot: u64) -> Option<ConfState> {
        if self.base.is_some_and(|b| b != current.since) {
            return None;
        }
        let result = self.result.as_ref()?;
        // The result carries the quorum sizes too, as its proposer's
        // membership had them (rule M4): every replica takes the same ones
        // from the same log.
        Some(ConfState {
            since: slot,
            ..result.clone()
        })
    }
}

impl HardState {
    /// The promised ballot (zero when unset).
    pub fn promised(&self) -> Ballot {
        self.promised.unwrap_or(Ballot::ZERO)
    }
}

impl Message {
    /// A message from `from` to `to` carrying `body`.
    pub fn new(from: u64, to: u64, body: Body) -> Self {
        Message {
            from,
            to,
            body: Some(body),
        }
    }

    /// A short name of the message's kind, for logs and traces.
    pub fn kind_name(&self) -> &'static str {
        self.body.as_ref().map_or("Empty", Body::name)
    }
}

/// Properties of each message kind. Every one is an exhaustive match with
/// no catch-all arm, so a new kind does not compile until it is classified.
impl Body {
    /// The kind's name, for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Body::PrePrepare(_) => "PrePrepare",
            Body::PrePrepareReply(_) => "PrePrepareReply",
            Body::Prepare(_) => "Prepare",
            Body::Promise(_) => "Promise",
            Body::Accept(_) => "Accept",
            Body::Accepted(_) => "Accepted",
            Body::Reject(_) => "Reject",
            Body::Heartbeat(_) => "Heartbeat",
            Body::HeartbeatReply(_) => "HeartbeatReply",
            Body::Propose(_) => "Propose",
            Body::Decide(_) => "Decide",
            Body::TimeoutNow(_) => "TimeoutNow",
            Body::InstallSnapshot(_) => "InstallSnapshot",
            Body::SnapshotReply(_) => "SnapshotReply",
        }
    }

    /// The ballot the message is about: the one a request is made in, or
    /// the one a reply answers. `None` for a forwarded proposal, which
    /// carries none, and where the sender left it out.
    pub fn ballot(&self) -> Option<Ballot> {
        match self {
            Body::PrePrepare(m) => m.ballot,
            Body::PrePrepareReply(m) => m.ballot,
            Body::Prepare(m) => m.ballot,
            Body::Promise(m) => m.ballot,
            Body::Accept(m) => m.ballot,
            Body::Accepted(m) => m.ballot,
            Body::Reject(m) => m.ballot,
            Body::Heartbeat(m) => m.ballot,
            Body::HeartbeatReply(m) => m.ballot,
            Body::Decide(m) => m.ballot,
            Body::TimeoutNow(m) => m.ballot,
            Body::InstallSnapshot(m) => m.ballot,
            Body::SnapshotReply(m) => m.ballot,
            Body::Propose(_) => None,
        }
    }

    /// For a campaign's request (pre-vote or Prepare), the ballot of the
    /// leader whose transfer asked for it; `None` for every other kind.
    pub fn transfer(&self) -> Option<Ballot> {
        match self {
            Body::PrePrepare(m) => m.transfer,
            Body::Prepare(m) => m.transfer,
            Body::PrePrepareReply(_)
            | Body::Promise(_)
            | Body::Accept(_)
            | Body::Accepted(_)
            | Body::Reject(_)
            | Body::Heartbeat(_)
            | Body::HeartbeatReply(_)
            | Body::Propose(_)
            | Body::Decide(_)
            | Body::TimeoutNow(_)
            | Body::InstallSnapshot(_)
            | Body::SnapshotReply(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(Ballot::new(1, 9) < Ballot::new(2, 1));
        assert!(Ballot::new(2, 1) < Ballot::new(2, 2));
        assert!(Ballot::ZERO < Ballot::new(0, 1));
        assert!(Ballot::ZERO.is_zero());
        assert_eq!(Ballot::new(3, 2).to_string(), "3.2");
    }

    #[test]
    fn message_round_trips_and_clone_shares_payload() {
        let data = Bytes::from(vec![7u8; 1024]);
        let msg = Message::new(
            1,
            2,
            Body::Accept(Accept {
                ballot: Some(Ballot::new(4, 1)),
                entries: vec![Entry {
                    slot: 9,
                    ballot: Some(Ballot::new(4, 1)),
                    kind: EntryKind::Normal as i32,
                    data: data.clone(),
                }],
                committed: 8,
            }),
        );
        let copy = msg.clone();
        let Some(Body::Accept(a)) = &copy.body else {
            panic!("body lost in clone")
        };
        assert_eq!(
            a.entries[0].data.as_ptr(),
            data.as_ptr(),
            "clone copied the payload"
        );
        let wire = msg.encode_to_vec();
        let back = Message::decode(wire.as_slice()).expect("decode");
        assert_eq!(back, msg);
        assert_eq!(back.kind_name(), "Accept");
        let body = back.body.as_ref().expect("a body");
        assert_eq!(body.ballot(), Some(Ballot::new(4, 1)));
        assert_eq!(body.transfer(), None);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(Message::decode(&[0xff, 0xff, 0xff][..]).is_err());
        assert_eq!(Entry::default().ballot(), Ballot::ZERO);
    }
}
