//! A [`SlotWindow`](crate::window::SlotWindow) for a log that only grows
//! at the back and is cut at the front: `MemStorage`'s, which keeps every
//! slot until compaction.
//!
//! Its slots live in fixed-size chunks. Growing allocates one more chunk
//! instead of moving every held payload into a buffer twice as large, as
//! a ring does: over a long run that copy was the whole log again and
//! again, and for a moment both buffers were held.

/// Slots per chunk (a power of two).
const CHUNK: usize = 512;

use std::fmt;

/// Slot `base + 1 + i` is at position `head + i` of the chunks laid end to
/// end; positions before `head` in the first chunk are empty.
pub(crate) struct ChunkedWindow<T> {
    /// Slots <= base are not held.
    base: u64,
    /// Where slot `base + 1` sits in the first chunk (< CHUNK).
    head: usize,
    /// Slots `base + 1 ..= base + len` are covered (each held or a hole);
    /// the last one is held, or `len` is 0.
    len: usize,
    /// A plain vector: indexed on every access, and its front is removed
    /// once per CHUNK slots compacted. Each chunk is a vector of up to
    /// CHUNK positions, filled only as far as a slot was written: a
    /// position past its length is empty, so a short log neither fills
    /// nor copies nor drops a whole chunk of empty positions.
    chunks: Vec<Vec<Option<T>>>,
}

impl<T> Default for ChunkedWindow<T> {
    fn default() -> Self {
        ChunkedWindow {
            base: 0,
            head: 0,
            len: 0,
            chunks: Vec::new(),
        }
    }
}

impl<T> ChunkedWindow<T> {
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// The highest slot held, or `base` when empty.
    pub(crate) fn last_slot(&self) -> u64 {
        self.base + self.len as u64
    }

    /// The chunk and the index in it of the slot `i` after `base`.
    #[inline]
    fn at(&self, i: usize) -> (usize, usize) {
        let p = self.head + i;
        (p / CHUNK, p % CHUNK)
    }

    /// Index after `base` of `slot`, if it is above `base`.
    fn index(&self, slot: u64) -> Option<usize> {
        let i = slot.checked_sub(self.base + 1)?;
        usize::try_from(i).ok()
    }

    pub(crate) fn get(&self, slot: u64) -> Option<&T> {
        let i = self.index(slot)?;
        if i >= self.len {
            return None;
        }
        let (c, o) = self.at(i);
        self.chunks[c].get(o)?.as_ref()
    }

    /// Stores `value` at `slot`, replacing what was there. Returns false
    /// (and stores nothing) for a slot at or below `base`.
    pub(crate) fn put(&mut self, slot: u64, value: T) -> bool {
        let Some(i) = self.index(slot) else {
            return false;
        };
        if i >= self.len {
            // Covered up to `i`: the slots in between are holes, already
            // empty in their chunks (a chunk is born empty, and
            // `truncate_prefix` empties what it gives up).
            let (c, _) = self.at(i);
            while self.chunks.len() <= c {
                self.chunks.push(empty_chunk());
            }
            self.len = i + 1;
        }
        let (c, o) = self.at(i);
        set(&mut self.chunks[c], o, value);
        true
    }

    /// Stores `value` at the slot after the last held one.
    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        let (c, o) = self.at(self.len);
        if c == self.chunks.len() {
            self.chunks.push(empty_chunk());
        }
        set(&mut self.chunks[c], o, value);
        self.len += 1;
    }

    /// Forgets every slot <= `slot`.
    pub(crate) fn truncate_prefix(&mut self, slot: u64) {
        if slot <= self.base {
            return;
        }
        let n = usize::try_from(slot - self.base)
            .unwrap_or(usize::MAX)
            .min(self.len);
        for i in 0..n {
            let (c, o) = self.at(i);
            if let Some(position) = self.chunks[c].get_mut(o) {
                *position = None;
            }
        }
        self.head += n;
        self.len -= n;
        self.base = slot;
        // Chunks wholly before `head` hold nothing now.
        let spent = self.head / CHUNK;
        if spent > 0 {
            self.chunks.drain(..spent);
            self.head -= spent * CHUNK;
        }
        if self.len == 0 {
            // `base` may have moved past everything covered: start afresh
            // (the chunks kept are empty).
            self.head = 0;
        }
    }

    /// Present values with `lo <= slot <= hi` and their slots, in slot order.
    pub(crate) fn slots(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, &T)> {
        let lo = lo.max(self.base + 1);
        let hi = hi.min(self.last_slot());
        (lo..=hi).filter_map(move |slot| Some((slot, self.get(slot)?)))
    }
}

impl<T: Clone> Clone for ChunkedWindow<T> {
    /// Copies the positions written only (a short log's chunks are
    /// short), keeping the layout chunk for chunk.
    fn clone(&self) -> Self {
        ChunkedWindow {
            base: self.base,
            head: self.head,
            len: self.len,
            chunks: self.chunks.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ChunkedWindow<T> {
    /// `base` and the held slots with their values: what the window holds,
    /// not how its chunks lay it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Held<'a, T>(&'a ChunkedWindow<T>);
        impl<T: fmt::Debug> fmt::Debug for Held<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.slots(0, u64::MAX)).finish()
            }
        }
        f.debug_struct("ChunkedWindow")
            .field("base", &self.base)
            .field("held", &Held(self))
            .finish()
    }
}

impl<T: std::hash::Hash> std::hash::Hash for ChunkedWindow<T> {
    /// What `Debug` shows: `base` and the held slots with their values.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.base.hash(h);
        for (slot, value) in self.slots(0, u64::MAX) {
            (slot, value).hash(h);
        }
    }
}

/// A chunk with room for CHUNK positions, none written.
fn empty_chunk<T>() -> Vec<Option<T>> {
    Vec::with_capacity(CHUNK)
}

/// Writes position `o` of `chunk` (< CHUNK), filling the positions before
/// it that were never written with empty ones.
#[inline]
fn set<T>(chunk: &mut Vec<Option<T>>, o: usize, value: T) {
    if let Some(position) = chunk.get_mut(o) {
        *position = Some(value);
    } else {
        chunk.resize_with(o, || None);
        chunk.push(Some(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::SlotWindow;

    /// Against the plain window: random appends, writes with holes,
    /// rewrites and truncations (within and past what is held), across
    /// many chunk boundaries.
    #[test]
    fn holds_exactly_what_a_plain_window_holds() {
        let mut rng = crate::rng::SplitMix64::for_node(21, 1);
        let mut below = |n: u64| rng.range(0, n);
        let mut chunked = ChunkedWindow::default();
        let mut plain = SlotWindow::new(0);
        for step in 0..60_000u64 {
            match below(20) {
                0 => {
                    let to = chunked.base() + below(CHUNK as u64 * 3);
                    chunked.truncate_prefix(to);
                    plain.truncate_prefix(to);
                }
                1..=3 => {
                    let span = chunked.last_slot() - chunked.base() + CHUNK as u64;
                    let slot = chunked.base() + below(span + 1);
                    assert_eq!(chunked.put(slot, step), plain.put(slot, step));
                }
                _ => {
                    chunked.push(step);
                    let slot = plain.last_slot() + 1;
                    assert!(plain.put(slot, step));
                }
            }
            assert_eq!(chunked.base(), plain.base(), "step {step}");
            assert_eq!(chunked.last_slot(), plain.last_slot(), "step {step}");
            if step % 97 == 0 {
                let got: Vec<(u64, u64)> =
                    chunked.slots(0, u64::MAX).map(|(s, v)| (s, *v)).collect();
                let want: Vec<(u64, u64)> =
                    plain.slots(0, u64::MAX).map(|(s, v)| (s, *v)).collect();
                assert_eq!(got, want, "step {step}");
                let (lo, hi) = (chunked.base() + below(9), chunked.base() + below(700));
                let got: Vec<(u64, u64)> = chunked.slots(lo, hi).map(|(s, v)| (s, *v)).collect();
                let want: Vec<(u64, u64)> = plain.slots(lo, hi).map(|(s, v)| (s, *v)).collect();
                assert_eq!(got, want, "step {step}: {lo}..={hi}");
            }
            if step % 1_009 == 0 {
                let copy = chunked.clone();
                let all = |w: &ChunkedWindow<u64>| -> Vec<(u64, u64)> {
                    w.slots(0, u64::MAX).map(|(s, v)| (s, *v)).collect()
                };
                assert_eq!(all(&copy), all(&chunked), "step {step}");
                assert_eq!(
                    (copy.base, copy.head, copy.len, copy.chunks.len()),
                    (
                        chunked.base,
                        chunked.head,
                        chunked.len,
                        chunked.chunks.len()
                    )
                );
                assert_eq!(format!("{copy:?}"), format!("{chunked:?}"));
            }
            let probe = chunked.base() + below(40);
            assert_eq!(chunked.get(probe), plain.get(probe), "step {step}");
            assert!(chunked.chunks.len() <= (chunked.head + chunked.len) / CHUNK + 1);
        }
    }
}
