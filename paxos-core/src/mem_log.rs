//! `MemStorage`'s log: per slot only the payload handle; the slot is the
//! position in a [`ChunkedWindow`], and ballots and kinds are kept as runs
//! (every slot a leader writes shares its ballot, and most share a kind:
//! all batches under load, all single commands when idle). An entry costs
//! 32 bytes here
//! instead of a whole `Entry`'s 72, which is most of an in-memory cluster's
//! footprint.
//!
//! Slots reach it only through the core, which refuses any past
//! [`crate::MAX_SLOT`] at the edge (rule V1), so `slot + 1` here cannot
//! overflow; `insert` asserts the bound in debug builds.

use crate::chunked::ChunkedWindow;
use bytes::Bytes;
use paxos_proto::{Ballot, Entry, EntryKind};
use std::collections::BTreeMap;

/// The kind of a slot no run reaches (none is held there).
const NORMAL: i32 = EntryKind::Normal as i32;

/// What a run of slots shares: the ballot and the kind.
type Run = (Option<Ballot>, i32);

#[derive(Clone, Debug, Hash, Default)]
pub(crate) struct MemLog {
    /// Each held slot's payload.
    slots: ChunkedWindow<Bytes>,
    /// Run start -> the ballot and kind of every held slot from there up to
    /// the next start. Every held slot has a start at or below it.
    runs: BTreeMap<u64, Run>,
}

impl MemLog {
    pub(crate) fn base(&self) -> u64 {
        self.slots.base()
    }

    /// The highest slot held, or `base` when empty.
    pub(crate) fn last_slot(&self) -> u64 {
        self.slots.last_slot()
    }

    /// The run `slot` falls in (None: no run reaches it).
    fn run_at(&self, slot: u64) -> Option<Run> {
        self.runs.range(..=slot).next_back().map(|(_, b)| *b)
    }

    /// Stores `entry` at its slot, replacing what was there; a slot at or
    /// below `base` is ignored.
    pub(crate) fn insert(&mut self, entry: Entry) {
        debug_assert!(entry.slot <= crate::MAX_SLOT, "slot {}", entry.slot);
        if entry.slot <= self.base() {
            return;
        }
        self.set_run(entry.slot, (entry.ballot, entry.kind));
        self.slots.put(entry.slot, entry.data);
    }

    /// Stores each entry as [`MemLog::insert`] does. An entry that appends
    /// right after the last slot in the last run's ballot and kind (a
    /// leader's stream, one entry per write or many) only pushes its
    /// payload: no run changes for it.
    pub(crate) fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            if e.slot == self.last_slot() + 1 && self.tail_run_is((e.ballot, e.kind)) {
                self.slots.push(e.data);
                continue;
            }
            self.insert(e);
        }
    }

    /// Whether the last run is `r`: an appended slot then falls in it
    /// (every run starts at or below the slot after the last held one).
    fn tail_run_is(&self, r: Run) -> bool {
        matches!(self.runs.last_key_value(), Some((_, &last)) if last == r)
    }

    /// Makes `b` the run of `s` alone, leaving every other slot's as it
    /// was. Runs that end up equal to their neighbour merge.
    fn set_run(&mut self, s: u64, b: Run) {
        // The common case first: a leader appending in its ballot.
        if let Some((&start, &last)) = self.runs.last_key_value() {
            if s >= start && last == b {
                return;
            }
        }
        let current = self.run_at(s);
        if current == Some(b) {
            return;
        }
        // The slots after `s` keep the run they were in.
        if let Some(c) = current {
            if s < self.last_slot() {
                self.runs.entry(s + 1).or_insert(c);
            }
        }
        self.runs.insert(s, b);
        if self.runs.range(..s).next_back().map(|(_, p)| *p) == Some(b) {
            self.runs.remove(&s);
        }
        if self.runs.get(&(s + 1)) == Some(&b) {
            self.runs.remove(&(s + 1));
        }
    }

    /// Forgets every slot <= `slot`.
    pub(crate) fn truncate_prefix(&mut self, slot: u64) {
        if slot <= self.base() {
            return;
        }
        self.slots.truncate_prefix(slot);
        let first = self.run_at(slot + 1);
        self.runs = self.runs.split_off(&(slot + 1));
        if let Some(b) = first {
            self.runs.entry(slot + 1).or_insert(b);
        }
    }

    /// Present entries with `lo <= slot <= hi`, in slot order. The runs are
    /// walked alongside the slots: one map step per run, not a lookup per
    /// entry.
    pub(crate) fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = Entry> + '_ {
        let (mut ballot, mut kind) = self.run_at(lo).unwrap_or((None, NORMAL));
        let mut next_runs = self.runs.range(lo.saturating_add(1)..).peekable();
        self.slots.slots(lo, hi).map(move |(slot, data)| {
            while let Some((_, r)) = next_runs.next_if(|(start, _)| **start <= slot) {
                (ballot, kind) = *r;
            }
            Entry {
                slot,
                ballot,
                kind,
                data: data.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the plain window the node's own log uses: random writes in
    /// random ballots (holes, rewrites, out of order) and truncations, and
    /// every entry read back whole after each step.
    #[test]
    fn reads_back_exactly_what_a_plain_window_holds() {
        use crate::window::SlotWindow;
        let mut rng = crate::rng::SplitMix64::for_node(11, 1);
        let mut below = |n: u64| rng.range(0, n);
        let mut log = MemLog::default();
        let mut plain = SlotWindow::new(0);
        for step in 0..20_000u64 {
            if below(12) == 0 {
                let to = log.base() + below(6);
                log.truncate_prefix(to);
                plain.truncate_prefix(to);
            } else {
                let slot = log.base() + 1 + below(log.last_slot() - log.base() + 4);
                let ballot = match below(4) {
                    0 => None,
                    r => Some(Ballot::new(r + step / 5000, r % 3)),
                };
                let e = Entry {
                    slot,
                    ballot,
                    kind: below(3) as i32,
                    data: step.to_le_bytes().to_vec().into(),
                };
                log.insert(e.clone());
                plain.insert(e);
            }
            assert_eq!(log.base(), plain.base());
            assert_eq!(log.last_slot(), plain.last_slot(), "step {step}");
            let got: Vec<Entry> = log.range(0, u64::MAX).collect();
            let want: Vec<Entry> = plain.values(0, u64::MAX).cloned().collect();
            assert_eq!(got, want, "step {step}");
            let (lo, hi) = (log.base() + below(4), log.base() + below(8));
            let got: Vec<Entry> = log.range(lo, hi).collect();
            let want: Vec<Entry> = plain.values(lo, hi).cloned().collect();
            assert_eq!(got, want, "step {step}: range {lo}..={hi}");
        }
        assert!(log.runs.len() < 64, "runs merge: {}", log.runs.len());
    }

    /// `extend` takes a shortcut for appends: it must store exactly what
    /// one `insert` per entry stores, appends, rewrites and holes alike.
    #[test]
    fn extend_stores_what_inserting_one_by_one_stores() {
        let mut rng = crate::rng::SplitMix64::for_node(12, 1);
        let mut below = |n: u64| rng.range(0, n);
        let (mut batched, mut single) = (MemLog::default(), MemLog::default());
        for step in 0..3_000u64 {
            let mut slot = batched.base() + 1 + below(batched.last_slot() - batched.base() + 3);
            let run: Vec<Entry> = (0..below(6))
                .map(|_| {
                    let e = Entry {
                        slot,
                        ballot: (below(5) != 0).then(|| Ballot::new(1 + below(2), 1)),
                        kind: if below(8) == 0 { 1 } else { NORMAL },
                        data: step.to_le_bytes().to_vec().into(),
                    };
                    slot += 1 + u64::from(below(6) == 0);
                    e
                })
                .collect();
            batched.extend(run.clone());
            for e in run {
                single.insert(e);
            }
            if below(10) == 0 {
                let to = batched.base() + below(4);
                batched.truncate_prefix(to);
                single.truncate_prefix(to);
            }
            let got: Vec<Entry> = batched.range(0, u64::MAX).collect();
            let want: Vec<Entry> = single.range(0, u64::MAX).collect();
            assert_eq!(got, want, "step {step}");
        }
    }

    #[test]
    fn one_leader_appending_keeps_one_run() {
        let mut log = MemLog::default();
        for slot in 1..=1000 {
            log.insert(Entry {
                slot,
                ballot: Some(Ballot::new(3, 1)),
                ..Entry::default()
            });
        }
        assert_eq!(log.runs.len(), 1);
        log.truncate_prefix(500);
        assert_eq!(log.runs.len(), 1);
        assert_eq!(
            log.range(501, 501).next().map(|e| e.ballot),
            Some(Some(Ballot::new(3, 1)))
        );
        // A stream of batches is one run as well.
        let batch = EntryKind::Batch as i32;
        log.extend((1001..=2000).map(|slot| Entry {
            slot,
            ballot: Some(Ballot::new(3, 1)),
            kind: batch,
            ..Entry::default()
        }));
        assert_eq!(log.runs.len(), 2);
        assert_eq!(log.range(1500, 1500).next().map(|e| e.kind), Some(batch));
    }
}
