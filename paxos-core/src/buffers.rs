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

    /// Keeps `v` for reuse.
    ///
    /// Most vectors a `Ready` brings back are empty: never allocated (a
    /// `Ready` without that kind of output), or drained by the host. Both
    /// skip the elements' drop, an out-of-line call even for no element,
    /// made several times per `Ready` otherwise: an unallocated vector
    /// owns nothing and is forgotten, a drained one needs no `clear`.
    #[inline]
    pub(crate) fn give_messages(&mut self, v: Vec<Message>) {
        keep(&mut self.messages, v);
    }

    /// Keeps `v` for reuse (see [`Buffers::give_messages`]).
    #[inline]
    pub(crate) fn give_entries(&mut self, v: Vec<Entry>) {
        keep(&mut self.entries, v);
    }
}

#[inline]
fn keep<T>(pool: &mut Vec<Vec<T>>, mut v: Vec<T>) {
    if v.capacity() == 0 {
        std::mem::forget(v);
    } else if pool.len() < KEEP {
        if !v.is_empty() {
            v.clear();
        }
        pool.push(v);
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
