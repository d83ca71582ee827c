//! Copybreak for small proposals: the leader copies a payload of at most
//! [`COPYBREAK`] bytes into a shared chunk and drops the caller's buffer.
//! The open batch is built the same way, in a chunk of its own (see
//! `paxos_proto::BatchBuilder`), so a slot of many commands costs no
//! allocation of its own either.
//!
//! Why: a payload is shared by the leader's log, its storage and one
//! `Accept` per peer. Sharing a `Bytes` built from a `Vec` allocates a
//! reference-count header on its first clone, so every small command cost
//! one more allocation (and 16 + 32 bytes of allocator overhead beside its
//! own data) for as long as storage held it. Copying 128 bytes is cheaper
//! than that allocation; slices of one chunk share one header. Payloads
//! above the threshold stay zero-copy, as network stacks do for large
//! packets (the "copybreak" rule).

use bytes::{Bytes, BytesMut};

/// Payloads up to this many bytes are copied into the chunk.
pub(crate) const COPYBREAK: usize = 256;

/// Bytes per chunk: 256 payloads at the threshold, or several batches (a
/// batch that outgrows what is left moves to a new chunk, so a smaller
/// chunk would waste more of its tail and copy more). A chunk is freed once
/// every entry sliced from it is dropped; entries are compacted in slot
/// order, so chunks go in the order they were filled.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The chunk being filled.
#[derive(Default)]
pub(crate) struct Arena {
    chunk: BytesMut,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("room", &(self.chunk.capacity() - self.chunk.len()))
            .finish()
    }
}

impl Arena {
    /// The payload to keep: a slice of the chunk holding a copy of `data`
    /// when it is small, else `data` itself.
    pub(crate) fn intern(&mut self, data: Payload<'_>) -> Bytes {
        match data {
            Payload::Owned(b) if b.is_empty() || b.len() > COPYBREAK => b,
            Payload::Borrowed(s) if s.is_empty() || s.len() > COPYBREAK => {
                Bytes::copy_from_slice(s)
            }
            small => {
                let data = small.as_slice();
                if self.chunk.capacity() - self.chunk.len() < data.len() {
                    self.chunk = BytesMut::with_capacity(CHUNK);
                }
                self.chunk.extend_from_slice(data);
                self.chunk.split().freeze()
            }
        }
    }
}

/// A proposed command, as the caller handed it over.
#[derive(Debug)]
pub(crate) enum Payload<'a> {
    /// Ours to keep: a large one is stored without a copy.
    Owned(Bytes),
    /// The caller's: copied wherever it is kept.
    Borrowed(&'a [u8]),
}

impl Payload<'_> {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Its bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Owned(b) => b,
            Payload::Borrowed(s) => s,
        }
    }

    /// A handle of its own (a copy of a borrowed payload).
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Payload::Owned(b) => b,
            Payload::Borrowed(s) => Bytes::copy_from_slice(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_copied_into_shared_chunks_large_ones_kept() {
        let mut arena = Arena::default();
        let a = arena.intern(Payload::Owned(Bytes::from(vec![1u8; 100])));
        let b = arena.intern(Payload::Owned(Bytes::from(vec![2u8; 100])));
        assert_eq!((&a[..], &b[..]), (&[1u8; 100][..], &[2u8; 100][..]));
        // Adjacent in one chunk: the second starts where the first ends.
        assert_eq!(a.as_ptr().wrapping_add(100), b.as_ptr());
        let big = Bytes::from(vec![3u8; COPYBREAK + 1]);
        let ptr = big.as_ptr();
        assert_eq!(
            arena.intern(Payload::Owned(big)).as_ptr(),
            ptr,
            "large payloads are not copied"
        );
        assert!(arena.intern(Payload::Owned(Bytes::new())).is_empty());
    }

    #[test]
    fn borrowed_payloads_are_copied_small_into_the_chunk_large_alone() {
        let mut arena = Arena::default();
        let caller = vec![4u8; 100];
        let a = arena.intern(Payload::Borrowed(&caller));
        let b = arena.intern(Payload::Borrowed(&caller[..10]));
        assert_eq!((&a[..], &b[..]), (&caller[..], &caller[..10]));
        assert_ne!(a.as_ptr(), caller.as_ptr(), "a copy, not the caller's");
        assert_eq!(a.as_ptr().wrapping_add(100), b.as_ptr(), "one chunk");
        let big = vec![5u8; COPYBREAK + 1];
        let room = arena.chunk.capacity() - arena.chunk.len();
        let c = arena.intern(Payload::Borrowed(&big));
        assert_eq!(&c[..], &big[..]);
        assert_ne!(c.as_ptr(), big.as_ptr(), "a copy, not the caller's");
        assert_eq!(
            arena.chunk.capacity() - arena.chunk.len(),
            room,
            "a large one takes no room in the chunk"
        );
        assert!(arena.intern(Payload::Borrowed(&[])).is_empty());
    }

    #[test]
    fn a_full_chunk_is_replaced_and_earlier_slices_stay_valid() {
        let mut arena = Arena::default();
        let kept: Vec<Bytes> = (0..3 * CHUNK / COPYBREAK)
            .map(|i| arena.intern(Payload::Owned(Bytes::from(vec![i as u8; COPYBREAK]))))
            .collect();
        for (i, b) in kept.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8), "slice {i} intact");
        }
        assert!(arena.chunk.capacity() <= CHUNK);
    }
}
