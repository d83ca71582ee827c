//! Buffers a `Ready` brings back to `advance`, kept for the next `Ready`s:
//! a host that drains messages and reads decided entries in place hands
//! their vectors back empty but with capacity, and the steady state then
//! allocates no vector per `Ready`.

use paxos_proto::{Entry, Message};

/// Vectors of each kind kept at most: a `Ready` needs a few of each.
const KEEP: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct Buffers {
    messages: Vec<Vec<Message>>,
    entries: Vec<Vec<Entry>>,
}

impl Buffers {
    /// An empty message vector, with room for `room` when none is kept.
    #[inline]
    pub(crate) fn messages(&mut self, room: usize) -> Vec<Message> {
        self.messages
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(room))
    }

    /// An empty entry vector, with room for `room` when none is kept.
    #[inline]
    pub(crate) fn entries(&mut self, room: usize) -> Vec<Entry> {
        self.entries
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(room))
    }

    #[inline]
    pub(crate) fn give_messages(&mut self, mut v: Vec<Message>) {
        if v.capacity() > 0 && self.messages.len() < KEEP {
            v.clear();
            self.messages.push(v);
        }
    }

    #[inline]
    pub(crate) fn give_entries(&mut self, mut v: Vec<Entry>) {
        if v.capacity() > 0 && self.entries.len() < KEEP {
            v.clear();
            self.entries.push(v);
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
        let mut e = b.entries(0);
        e.push(Entry::default());
        b.give_entries(e);
        assert!(b.entries(0).is_empty());
        for _ in 0..2 * KEEP {
            b.give_messages(Vec::with_capacity(1));
        }
        assert_eq!(b.messages.len(), KEEP);
        b.give_entries(Vec::new());
        assert!(
            b.entries.is_empty(),
            "nothing to reuse in an unallocated vector"
        );
    }
}
