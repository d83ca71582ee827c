//! Copybreak for small proposals: the leader copies a payload of at most
//! [`COPYBREAK`] bytes into a shared chunk and drops the caller's buffer.
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

/// Bytes per chunk: 64 payloads at the threshold. A chunk is freed once
/// every entry sliced from it is dropped; entries are compacted in slot
/// order, so chunks go in the order they were filled.
const CHUNK: usize = 16 * 1024;

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
    pub(crate) fn intern(&mut self, data: Bytes) -> Bytes {
        if data.is_empty() || data.len() > COPYBREAK {
            return data;
        }
        if self.chunk.capacity() - self.chunk.len() < data.len() {
            self.chunk = BytesMut::with_capacity(CHUNK);
        }
        self.chunk.extend_from_slice(&data);
        self.chunk.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_copied_into_shared_chunks_large_ones_kept() {
        let mut arena = Arena::default();
        let a = arena.intern(Bytes::from(vec![1u8; 100]));
        let b = arena.intern(Bytes::from(vec![2u8; 100]));
        assert_eq!((&a[..], &b[..]), (&[1u8; 100][..], &[2u8; 100][..]));
        // Adjacent in one chunk: the second starts where the first ends.
        assert_eq!(a.as_ptr().wrapping_add(100), b.as_ptr());
        let big = Bytes::from(vec![3u8; COPYBREAK + 1]);
        let ptr = big.as_ptr();
        assert_eq!(
            arena.intern(big).as_ptr(),
            ptr,
            "large payloads are not copied"
        );
        assert!(arena.intern(Bytes::new()).is_empty());
    }

    #[test]
    fn a_full_chunk_is_replaced_and_earlier_slices_stay_valid() {
        let mut arena = Arena::default();
        let kept: Vec<Bytes> = (0..3 * CHUNK / COPYBREAK)
            .map(|i| arena.intern(Bytes::from(vec![i as u8; COPYBREAK])))
            .collect();
        for (i, b) in kept.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8), "slice {i} intact");
        }
        assert!(arena.chunk.capacity() <= CHUNK);
    }
}
