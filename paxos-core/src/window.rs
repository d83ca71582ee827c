//! A sparse run of log slots held in memory: O(1) lookup and append by slot.
//!
//! Paxos acceptors may hold holes (a slot accepted out of order, an earlier
//! one still missing), so a slot maps to `Option<Entry>`. Slots at or below
//! `base` are not held (applied, or compacted).

use paxos_proto::Entry;
use std::collections::VecDeque;

/// Slot `base + 1 + i` holds `slots[i]`; the log keeps whole entries, and
/// `MemStorage` a smaller per-slot record.
#[derive(Clone, Debug, Hash)]
pub(crate) struct SlotWindow<T = Entry> {
    /// Slots <= base are not held.
    base: u64,
    /// `slots[i]` is slot `base + 1 + i`. Never ends in `None`.
    slots: VecDeque<Option<T>>,
}

impl<T> Default for SlotWindow<T> {
    fn default() -> Self {
        SlotWindow::new(0)
    }
}

impl<T> SlotWindow<T> {
    pub(crate) fn new(base: u64) -> Self {
        SlotWindow {
            base,
            slots: VecDeque::new(),
        }
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// The highest slot held, or `base` when empty.
    pub(crate) fn last_slot(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub(crate) fn get(&self, slot: u64) -> Option<&T> {
        let i = slot.checked_sub(self.base + 1)?;
        self.slots.get(usize::try_from(i).ok()?)?.as_ref()
    }

    /// Stores `value` at `slot`, replacing what was there. Returns false
    /// (and stores nothing) for a slot at or below `base`.
    #[inline]
    pub(crate) fn put(&mut self, slot: u64, value: T) -> bool {
        let Some(i) = slot.checked_sub(self.base + 1) else {
            return false;
        };
        let Ok(i) = usize::try_from(i) else {
            return false;
        };
        if i >= self.slots.len() {
            self.slots.resize_with(i, || None);
            self.slots.push_back(Some(value));
        } else {
            self.slots[i] = Some(value);
        }
        true
    }

    /// Stores `value` at the slot after the last held one.
    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.slots.push_back(Some(value));
    }

    /// Moves the first held slot's value out, advancing `base` past it.
    /// None (and nothing changes) when the window is empty or starts with a hole.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if !matches!(self.slots.front(), Some(Some(_))) {
            return None;
        }
        self.base += 1;
        self.slots.pop_front().flatten()
    }

    /// Forgets every slot <= `slot`.
    pub(crate) fn truncate_prefix(&mut self, slot: u64) {
        if slot <= self.base {
            return;
        }
        let n = (slot - self.base).min(self.slots.len() as u64) as usize;
        self.slots.drain(..n);
        self.base = slot;
    }

    /// The positions in `slots` of `lo..=hi`, clamped to what is held.
    fn positions(&self, lo: u64, hi: u64) -> std::ops::Range<usize> {
        let lo = lo.max(self.base + 1);
        let hi = hi.min(self.last_slot());
        if lo > hi {
            0..0
        } else {
            (lo - self.base - 1) as usize..(hi - self.base) as usize
        }
    }

    /// Present values with `lo <= slot <= hi` and their slots, in slot order.
    #[cfg(test)]
    pub(crate) fn slots(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, &T)> {
        let at = self.positions(lo, hi);
        let first = self.base + 1 + at.start as u64;
        self.slots
            .range(at)
            .zip(first..)
            .filter_map(|(v, slot)| Some((slot, v.as_ref()?)))
    }

    /// Present values with `lo <= slot <= hi`, in slot order.
    pub(crate) fn values(&self, lo: u64, hi: u64) -> impl Iterator<Item = &T> {
        self.slots.range(self.positions(lo, hi)).flatten()
    }
}

impl SlotWindow<Entry> {
    /// Stores `entry` at its slot (see [`SlotWindow::put`]).
    #[inline]
    pub(crate) fn insert(&mut self, entry: Entry) -> bool {
        self.put(entry.slot, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(slot: u64) -> Entry {
        Entry {
            slot,
            ..Entry::default()
        }
    }

    #[test]
    fn holes_appends_and_truncation() {
        let mut w = SlotWindow::new(10);
        assert!(!w.insert(e(10)), "at base is refused");
        assert!(w.insert(e(13)));
        assert_eq!(w.last_slot(), 13);
        assert!(w.get(11).is_none() && w.get(13).is_some() && w.get(99).is_none());
        assert!(w.insert(e(11)));
        let slots: Vec<u64> = w.values(0, 100).map(|x| x.slot).collect();
        assert_eq!(slots, vec![11, 13]);
        w.truncate_prefix(11);
        assert_eq!(w.base(), 11);
        assert!(w.get(11).is_none());
        assert_eq!(w.values(12, 13).count(), 1);
        w.truncate_prefix(20);
        assert_eq!((w.base(), w.last_slot()), (20, 20));
        assert_eq!(w.values(0, u64::MAX).count(), 0);
    }
}
