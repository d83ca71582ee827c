//! The one router for outgoing messages: every message a node sends goes
//! through [`Outbox::send`], which files it by its kind (rule D2) and keeps
//! the node's replies to itself until their `Ready` is advanced (rule A3).

use crate::kinds;
use paxos_proto::{Body, Message};

/// A node's outgoing messages since the last `Ready`, in three queues.
#[derive(Clone, Debug, Hash, Default)]
pub(super) struct Outbox {
    /// Messages that wait for the persist of the `Ready` carrying them
    /// (rule A3): replies, a candidate's Prepare.
    pub(super) persisted: Vec<Message>,
    /// Messages that depend on nothing the node has yet to persist
    /// (`kinds::may_leave_before_persist`): the host may send them at once,
    /// so the leader's disk write overlaps the round trip to the followers.
    pub(super) immediate: Vec<Message>,
    /// Replies to the node itself (its own promise and acceptance): they
    /// count only once durable, so `RawNode::advance` delivers them.
    pub(super) to_self: Vec<Message>,
}

impl Outbox {
    /// Files a message from `from` to `to` by its kind.
    ///
    /// Always inlined: a call took the body by pointer and copied it twice
    /// (into a Message, then into the queue), and the callers mostly know
    /// the kind, so the filing folds away.
    #[inline(always)]
    pub(super) fn send(&mut self, from: u64, to: u64, body: Body) {
        let immediate = kinds::may_leave_before_persist(&body);
        let m = Message::new(from, to, body);
        if to == from {
            // Rule A3: a reply to oneself counts only once durable. Every
            // kind a node sends itself (Promise, Accepted) waits.
            debug_assert!(!immediate, "a message to oneself would skip the persist");
            self.to_self.push(m);
        } else if immediate {
            self.immediate.push(m);
        } else {
            self.persisted.push(m);
        }
    }

    /// Whether any queue holds a message.
    pub(super) fn is_empty(&self) -> bool {
        self.persisted.is_empty() && self.immediate.is_empty() && self.to_self.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_proto::{Accepted, Ballot, Heartbeat, Promise};

    #[test]
    fn each_kind_goes_to_its_queue() {
        let b = Some(Ballot::new(1, 1));
        let mut o = Outbox::default();
        assert!(o.is_empty());
        o.send(
            1,
            2,
            Body::Heartbeat(Heartbeat {
                ballot: b,
                ..Default::default()
            }),
        );
        o.send(
            1,
            2,
            Body::Promise(Promise {
                ballot: b,
                ..Default::default()
            }),
        );
        o.send(
            1,
            1,
            Body::Accepted(Accepted {
                ballot: b,
                ..Default::default()
            }),
        );
        assert_eq!(o.immediate.len(), 1);
        assert_eq!(o.persisted.len(), 1);
        assert_eq!(o.to_self.len(), 1);
        assert!(!o.is_empty());
    }
}
