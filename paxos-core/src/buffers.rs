//! Vectors for the node's replies to itself, which `RawNode` keeps from
//! `ready` to `advance`: delivered there, they come back empty but with
//! capacity, and are kept for the next `Ready`s. (A `Ready`'s own vectors
//! are reused with the `Ready`'s parts, see `RawNode::spare_parts`.)

use paxos_proto::Message;

/// Vectors kept at most: a few `Ready`s may be outstanding.
const KEEP: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct Buffers {
    messages: Vec<Vec<Message>>,
}

impl Buffers {
    /// An empty message vector, with room for `room` when none is kept.
    #[inline]
    pub(crate) fn messages(&mut self, room: usize) -> Vec<Message> {
        self.messages
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(room))
    }

    /// Keeps `v` for reuse.
    ///
    /// Most vectors brought back are empty: never allocated (no reply to
    /// ourselves in that `Ready`), or delivered. Both skip the elements'
    /// drop, an out-of-line call even for no element: an unallocated
    /// vector owns nothing and is forgotten, a delivered one needs no
    /// `clear`.
    #[inline]
    pub(crate) fn give_messages(&mut self, mut v: Vec<Message>) {
        if v.capacity() == 0 {
            std::mem::forget(v);
        } else if self.messages.len() < KEEP {
            if !v.is_empty() {
                v.clear();
            }
            self.messages.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_buffer_comes_back_empty_and_the_pool_stays_small() {
        let mut b = Buffers::default();
        let mut v = b.messages(8);
        assert!(v.capacity() >= 8 && v.is_empty());
        v.push(Message::default());
        let cap = v.capacity();
        b.give_messages(v);
        let again = b.messages(0);
        assert!(again.is_empty(), "a stale message would be sent twice");
        assert_eq!(again.capacity(), cap, "the buffer itself is reused");
        for _ in 0..2 * KEEP {
            b.give_messages(Vec::with_capacity(1));
        }
        assert_eq!(b.messages.len(), KEEP);
        let mut b = Buffers::default();
        b.give_messages(Vec::new());
        assert!(
            b.messages.is_empty(),
            "nothing to reuse in an unallocated vector"
        );
    }
}
