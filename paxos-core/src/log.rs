//! The node's view of its log: every slot above `applied` in memory, older
//! slots read back from [`Storage`] on demand, plus the entries written since
//! the last `Ready` (to be persisted).

use crate::errors::{Result, StorageError};
use crate::storage::{take_bounded, Storage};
use crate::window::SlotWindow;
use paxos_proto::{Entry, EntryKind};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Hash)]
pub(crate) struct Log {
    /// Slots above `mem.base()` (the release point, <= applied) live here.
    mem: SlotWindow,
    /// The highest slot held, in memory or storage.
    last: u64,
    /// Every slot <= committed is known chosen on this node, and held.
    pub(crate) committed: u64,
    /// Entries written since the last `Ready`, in write order.
    unstable: Vec<Entry>,
    /// The lowest slot among `unstable` (u64::MAX when empty).
    unstable_min: u64,
    /// Undecided slots holding a membership change: each takes effect once
    /// decided, so deciding must stop at them.
    conf_slots: BTreeSet<u64>,
    /// Slots <= this are covered by a snapshot (storage's compacted prefix
    /// at restore, or a snapshot installed since): they are never read from
    /// storage, which may still hold older values for them until the
    /// installed snapshot is persisted.
    snapshot_floor: u64,
}

impl Log {
    /// Restores the log from storage: slots above `applied` are loaded into
    /// memory (they are the ones still to be applied or decided).
    /// `committed` is the persisted watermark; the log's covers the
    /// compacted prefix too, which is decided even when a crash lost the
    /// hard state persisted after its snapshot (rule D3).
    pub(crate) fn restore<S: Storage>(storage: &S, committed: u64, applied: u64) -> Result<Log> {
        // Storage is outside the process: its answers are checked too.
        let first = storage.first_slot()?;
        let compacted = first
            .checked_sub(1)
            .filter(|&c| c <= crate::validate::MAX_SLOT)
            .ok_or_else(|| StorageError::Corrupt(format!("first slot {first} out of range")))?;
        let committed = committed.max(compacted);
        let last = storage.last_slot()?.max(compacted);
        if last > crate::validate::MAX_SLOT {
            return Err(StorageError::Corrupt(format!("last slot {last} beyond MAX_SLOT")).into());
        }
        let base = applied.max(compacted);
        let mut mem = SlotWindow::new(base);
        let mut conf_slots = BTreeSet::new();
        if base < last {
            for e in storage.entries(base + 1, last, usize::MAX, u64::MAX)? {
                if e.slot <= base || e.slot > last {
                    return Err(StorageError::Corrupt(format!(
                        "storage returned slot {} outside {}..={last}",
                        e.slot,
                        base + 1
                    ))
                    .into());
                }
                if e.slot > committed && e.kind == EntryKind::ConfChange as i32 {
                    conf_slots.insert(e.slot);
                }
                mem.insert(e);
            }
        }
        if committed > last {
            return Err(StorageError::Corrupt(format!(
                "committed slot {committed} is beyond the last stored slot {last}"
            ))
            .into());
        }
        Ok(Log {
            mem,
            last,
            committed,
            unstable: Vec::new(),
            unstable_min: u64::MAX,
            conf_slots,
            snapshot_floor: compacted,
        })
    }

    /// Slots at or below this are covered by a snapshot (rule S2).
    pub(crate) fn snapshot_floor(&self) -> u64 {
        self.snapshot_floor
    }

    /// The highest ballot among the entries held in memory (restore only).
    pub(crate) fn highest_ballot(&self) -> paxos_proto::Ballot {
        self.mem
            .values(self.mem.base().saturating_add(1), self.last)
            .map(Entry::ballot)
            .max()
            .unwrap_or(paxos_proto::Ballot::ZERO)
    }

    /// The lowest undecided slot holding a membership change.
    #[inline]
    pub(crate) fn next_conf_slot(&self) -> Option<u64> {
        if self.conf_slots.is_empty() {
            return None; // the hot path: no change in flight
        }
        self.next_pending_conf_slot()
    }

    fn next_pending_conf_slot(&self) -> Option<u64> {
        // Deciding removes every change it passes (`decide_up_to`), and a
        // snapshot every change it covers (`install`).
        debug_assert!(
            self.conf_slots.first().is_some_and(|&s| s > self.committed),
            "a decided membership change still counted as pending"
        );
        self.conf_slots.range(self.committed + 1..).next().copied()
    }

    /// Whether an undecided slot holds a membership change.
    pub(crate) fn has_conf_slots(&self) -> bool {
        !self.conf_slots.is_empty()
    }

    /// Marks every slot <= `slot` decided; returns the membership-change
    /// entries among the newly decided ones, in slot order.
    pub(crate) fn decide_up_to(&mut self, slot: u64) -> Vec<Entry> {
        if slot <= self.committed {
            return Vec::new();
        }
        self.committed = slot;
        debug_assert!(
            slot <= self.last,
            "deciding slot {slot} beyond the last held"
        );
        let mut changes = Vec::new();
        while let Some(s) = self.conf_slots.first().copied().filter(|&s| s <= slot) {
            self.conf_slots.remove(&s);
            if let Some(e) = self.mem.get(s) {
                changes.push(e.clone());
            }
        }
        changes
    }

    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// The in-memory entry at `slot` (None when absent or released).
    pub(crate) fn get(&self, slot: u64) -> Option<&Entry> {
        self.mem.get(slot)
    }

    /// Writes an entry (this node accepted it). Slots at or below the release
    /// point are decided and never rewritten.
    pub(crate) fn write(&mut self, entry: Entry) {
        debug_assert!(
            entry.slot > self.committed,
            "rewriting decided slot {}",
            entry.slot
        );
        if entry.slot <= self.mem.base() {
            return;
        }
        self.last = self.last.max(entry.slot);
        self.unstable_min = self.unstable_min.min(entry.slot);
        if entry.kind == EntryKind::ConfChange as i32 {
            self.conf_slots.insert(entry.slot);
        } else if !self.conf_slots.is_empty() {
            self.conf_slots.remove(&entry.slot);
        }
        self.unstable.push(entry.clone());
        if entry.slot == self.mem.last_slot() + 1 {
            // Appending, as a leader and its followers do: no hole to fill.
            self.mem.push(entry);
        } else {
            self.mem.insert(entry);
        }
    }

    pub(crate) fn has_unstable(&self) -> bool {
        !self.unstable.is_empty()
    }

    /// Swaps the entries to persist into `into` (empty; left as it is when
    /// there are none), which leaves its room to the next writes, and
    /// returns the lowest slot among them.
    pub(crate) fn take_unstable(&mut self, into: &mut Vec<Entry>) -> u64 {
        let min = std::mem::replace(&mut self.unstable_min, u64::MAX);
        if !self.unstable.is_empty() {
            debug_assert!(into.is_empty(), "entries to persist overwritten");
            std::mem::swap(&mut self.unstable, into);
        }
        min
    }

    /// Moves the next decided entry out of memory (no clone) when it is the
    /// first slot held and every write to it is durable (`slot <
    /// durable_floor`): the caller hands it to the application, and from now
    /// on storage serves that slot, exactly as after `release`.
    pub(crate) fn take_decided_front(&mut self, next: u64, durable_floor: u64) -> Option<Entry> {
        let slot = self.mem.base() + 1;
        if slot != next || slot > self.committed || slot >= durable_floor {
            return None;
        }
        self.mem.pop_front()
    }

    /// A snapshot covers every slot <= `slot`: they are decided, and no
    /// longer held as entries (pending writes to them are dropped too, so the
    /// host never stores an entry inside the snapshot).
    pub(crate) fn install(&mut self, slot: u64) {
        self.snapshot_floor = self.snapshot_floor.max(slot);
        self.mem.truncate_prefix(slot);
        self.last = self.last.max(slot);
        self.committed = self.committed.max(slot);
        self.unstable.retain(|e| e.slot > slot);
        self.conf_slots = self.conf_slots.split_off(&(slot + 1));
        self.unstable_min = self
            .unstable
            .iter()
            .map(|e| e.slot)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Planted bug `ReportUnpersistedSnapshot`: forget that an installed
    /// snapshot covers slots storage may still hold older values for.
    #[cfg(feature = "planted-bugs")]
    pub(crate) fn forget_snapshot_floor(&mut self, floor: u64) {
        self.snapshot_floor = floor;
    }

    /// Drops slots <= `slot` from memory: the host has persisted and applied
    /// them, so storage serves them from now on.
    #[inline]
    pub(crate) fn release(&mut self, slot: u64) {
        // Every advance releases, mostly what is released already (decided
        // entries move out of memory as they are handed out): that case
        // is answered inline.
        let slot = slot.min(self.committed);
        if slot > self.mem.base() {
            self.mem.truncate_prefix(slot);
        }
    }

    /// Held entries with `lo <= slot <= hi`, bounded like a message. Returns
    /// them and, when it stopped early, the slot to continue from.
    pub(crate) fn fetch<S: Storage>(
        &self,
        storage: &S,
        lo: u64,
        hi: u64,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<(Vec<Entry>, Option<u64>)> {
        if lo > hi {
            return Ok((Vec::new(), None));
        }
        // Rule S2. A snapshot installed but not yet persisted covers these slots,
        // while storage may still hold older, unchosen values there: an
        // acceptor reporting them beside a committed watermark past them
        // would hand a candidate a stale value as chosen.
        if lo <= self.snapshot_floor {
            return Err(StorageError::Compacted(self.snapshot_floor).into());
        }
        let base = self.mem.base();
        if lo <= base {
            let stored_hi = hi.min(base);
            let got = storage.entries(lo, stored_hi, max_entries, max_bytes)?;
            // Storage does not say whether a limit cut the run short (a byte
            // limit stops *before* the entry that would exceed it), so any
            // run ending below `stored_hi` continues after its last entry.
            // Promise chunking depends on this: a chunk that silently ended
            // early would hide accepted values from a new leader's phase 1.
            let next = match got.last() {
                Some(e) if e.slot < stored_hi => Some(e.slot + 1),
                // The stored part is done; memory continues it next time.
                _ if stored_hi < hi => Some(stored_hi + 1),
                _ => None,
            };
            return Ok((got, next.filter(|&n| n <= hi)));
        }
        if lo == hi {
            // One slot, what a leader keeping up sends each peer per Accept:
            // no bounded walk over the window.
            return Ok(match self.mem.get(lo) {
                None => (Vec::new(), None),
                Some(_) if max_entries == 0 => (Vec::new(), Some(lo)),
                Some(e) => (vec![e.clone()], None),
            });
        }
        let span = hi - lo + 1;
        Ok(take_bounded(
            self.mem.values(lo, hi).cloned(),
            span,
            max_entries,
            max_bytes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn e(slot: u64) -> Entry {
        Entry {
            slot,
            ..Entry::default()
        }
    }

    #[test]
    fn restore_loads_unapplied_and_fetch_spans_storage_and_memory() {
        let s = MemStorage::new();
        s.wl().store_entries(&(1..=10).map(e).collect::<Vec<_>>());
        let log = Log::restore(&s, 8, 5).expect("restore");
        assert_eq!(log.last(), 10);
        assert!(log.get(5).is_none() && log.get(6).is_some());
        // From storage, stopping at the release point.
        let (v, next) = log.fetch(&s, 2, 10, 100, 1 << 20).expect("fetch");
        assert_eq!(v.len(), 4);
        assert_eq!(next, Some(6));
        let (v, next) = log.fetch(&s, 6, 10, 3, 1 << 20).expect("fetch");
        assert_eq!(v.iter().map(|x| x.slot).collect::<Vec<_>>(), vec![6, 7, 8]);
        assert_eq!(next, Some(9));
        let (v, next) = log.fetch(&s, 9, 10, 3, 1 << 20).expect("fetch");
        assert_eq!((v.len(), next), (2, None));
    }

    /// Regression (simulator seed 11622): a byte limit stops storage before
    /// the entry that would exceed it; the fetch must still say where to
    /// continue, or a promise chunk hides accepted values from phase 1.
    #[test]
    fn a_byte_limited_fetch_from_storage_continues() {
        let s = MemStorage::new();
        let big = |slot| Entry {
            slot,
            data: bytes::Bytes::from(vec![1u8; 33]),
            ..Entry::default()
        };
        s.wl().store_entries(&(1..=5).map(big).collect::<Vec<_>>());
        let log = Log::restore(&s, 5, 5).expect("restore");
        let (v, next) = log.fetch(&s, 2, 5, 100, 40).expect("fetch");
        assert_eq!((v.len(), next), (1, Some(3)));
        let (v, next) = log.fetch(&s, 5, 5, 100, 40).expect("fetch");
        assert_eq!((v.len(), next), (1, None));
    }

    #[test]
    fn committed_beyond_storage_is_corrupt() {
        let s = MemStorage::new();
        assert!(Log::restore(&s, 3, 0).is_err());
    }

    #[test]
    fn writes_are_unstable_until_taken_and_release_keeps_undecided() {
        let s = MemStorage::new();
        let mut log = Log::restore(&s, 0, 0).expect("restore");
        log.write(e(1));
        log.write(e(3));
        assert_eq!(log.last(), 3);
        let mut taken = Vec::new();
        let min = log.take_unstable(&mut taken);
        assert_eq!((taken.len(), min), (2, 1));
        assert!(!log.has_unstable());
        log.committed = 1;
        log.release(3);
        assert!(log.get(1).is_none(), "decided and applied slot released");
        assert!(log.get(3).is_some(), "undecided slot kept");
    }
}
