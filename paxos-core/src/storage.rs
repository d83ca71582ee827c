//! The read side of durable state, and an in-memory implementation.
//!
//! The node never writes storage: the host persists what each `Ready` hands
//! it, then calls `advance`. The node reads storage when it starts (to
//! restore) and when it needs entries it no longer holds in memory (old
//! slots for a lagging peer or a new leader's phase 1).

use crate::errors::StorageError;
use crate::mem_log::MemLog;
use paxos_proto::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// What a node restores from when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The persisted promise and committed watermark.
    pub hard_state: HardState,
    /// The persisted membership; empty voters for a brand-new node, which
    /// then takes its membership from [`crate::Config`].
    pub conf_state: ConfState,
}

/// Read access to a node's durable state. Implementations must return what
/// was persisted from earlier `Ready`s, and nothing that was not.
pub trait Storage {
    /// The state to restore from.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// The entries held with `lo <= slot <= hi`, in slot order (slots with no
    /// entry are skipped). Stops after `max_entries`, or once the payload
    /// bytes reach `max_bytes` (always returning at least one entry if any is
    /// held). Returns [`StorageError::Compacted`] when `lo` is compacted.
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    /// The lowest slot that may still be held (one past the compacted prefix).
    fn first_slot(&self) -> Result<u64, StorageError>;

    /// The highest slot held, or the compacted prefix's end when none is.
    fn last_slot(&self) -> Result<u64, StorageError>;

    /// The latest snapshot: the application's state after applying every
    /// slot <= its `metadata.slot`. The leader sends it to a peer that needs
    /// compacted slots, so it must cover the compacted prefix
    /// (`metadata.slot >= first_slot() - 1`). Storage that never compacts
    /// returns an empty snapshot at slot 0.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

/// The state inside a [`MemStorage`].
#[derive(Clone, Debug, Hash, Default)]
pub struct MemStorageCore {
    hard_state: HardState,
    conf_state: ConfState,
    entries: MemLog,
    snapshot: Snapshot,
}

impl MemStorageCore {
    /// Persists a hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Persists a membership.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Persists entries, each replacing whatever its slot held. Entries in the
    /// compacted prefix are ignored (they are decided and covered by it).
    pub fn store_entries(&mut self, entries: &[Entry]) {
        self.entries.extend(entries.iter().cloned());
    }

    /// Like [`MemStorageCore::store_entries`], taking ownership (no clone):
    /// pass `Ready::drain_entries()` (or `Ready::take_entries()`).
    pub fn store_owned_entries(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.entries.extend(entries);
    }

    /// Discards every slot <= `slot`. Compact only up to the latest
    /// snapshot's slot: a peer that needs a discarded slot is sent the
    /// snapshot instead, so it must cover what is gone.
    pub fn compact(&mut self, slot: u64) {
        self.entries.truncate_prefix(slot);
    }

    /// Records the application's snapshot at `slot`: its state after
    /// applying every slot <= `slot`, and the membership in effect there
    /// (each decided change applied through
    /// [`paxos_proto::ConfChange::outcome`], which also skips void ones, so
    /// its `since` is right; the initial one if none). Then
    /// [`MemStorageCore::compact`] may discard up to `slot`.
    pub fn create_snapshot(
        &mut self,
        slot: u64,
        conf_state: ConfState,
        data: impl Into<bytes::Bytes>,
    ) {
        self.snapshot = Snapshot {
            metadata: Some(SnapshotMetadata {
                slot,
                conf_state: Some(conf_state),
            }),
            data: data.into(),
        };
    }

    /// Persists a snapshot received from the leader (`Ready::snapshot`):
    /// it replaces every slot it covers and becomes the latest snapshot.
    /// Older snapshots than the one held change nothing.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if meta.slot <= self.snapshot_slot() {
            return;
        }
        self.entries.truncate_prefix(meta.slot);
        if let Some(cs) = meta.conf_state.filter(|cs| !cs.voters.is_empty()) {
            self.conf_state = cs;
        }
        self.snapshot = snapshot;
    }

    /// The slot the latest snapshot covers (0 when there is none).
    pub fn snapshot_slot(&self) -> u64 {
        self.snapshot.metadata.as_ref().map_or(0, |m| m.slot)
    }

    /// The number of slots between the compacted prefix and the last held one.
    pub fn retained_slots(&self) -> u64 {
        self.entries.last_slot() - self.entries.base()
    }
}

/// An in-memory [`Storage`] for tests, simulations and benchmarks. Clones
/// share one state, so the host keeps a handle to persist into while the node
/// reads through its own.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    core: Arc<RwLock<MemStorageCore>>,
}

/// The state held now (what `Debug` shows of it).
impl std::hash::Hash for MemStorage {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.rl().hash(h);
    }
}

impl MemStorage {
    /// An empty storage: a brand-new node takes its membership from `Config`.
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// An empty storage holding an initial membership.
    pub fn new_with_conf_state(voters: &[u64], learners: &[u64]) -> Self {
        let s = MemStorage::default();
        s.wl().set_conf_state(ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            since: 0,
            ..Default::default()
        });
        s
    }

    /// An independent storage holding the same state now (a clone shares
    /// one state instead).
    pub fn deep_copy(&self) -> Self {
        MemStorage {
            core: Arc::new(RwLock::new(self.rl().clone())),
        }
    }

    /// Read access. A poisoned lock is recovered: the state is plain data.
    pub fn rl(&self) -> RwLockReadGuard<'_, MemStorageCore> {
        self.core.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access.
    pub fn wl(&self) -> RwLockWriteGuard<'_, MemStorageCore> {
        self.core.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let core = self.rl();
        Ok(InitialState {
            hard_state: core.hard_state,
            conf_state: core.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let core = self.rl();
        if lo <= core.entries.base() {
            return Err(StorageError::Compacted(core.entries.base()));
        }
        let span = hi.saturating_sub(lo).saturating_add(1);
        Ok(take_bounded(core.entries.range(lo, hi), span, max_entries, max_bytes).0)
    }

    fn first_slot(&self) -> Result<u64, StorageError> {
        Ok(self.rl().entries.base() + 1)
    }

    fn last_slot(&self) -> Result<u64, StorageError> {
        Ok(self.rl().entries.last_slot())
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.rl().snapshot.clone())
    }
}

/// Takes entries from `iter` until `max_entries`, or until the payload bytes
/// reach `max_bytes` (the first entry always goes, so progress never stalls
/// on one large entry). Also returns the slot of the first entry left out.
pub(crate) fn take_bounded(
    iter: impl Iterator<Item = Entry>,
    span: u64,
    max_entries: usize,
    max_bytes: u64,
) -> (Vec<Entry>, Option<u64>) {
    // Sized for the slots asked for, not the limit: one command per
    // message must not allocate room for a thousand.
    let cap = usize::try_from(span)
        .unwrap_or(usize::MAX)
        .min(max_entries)
        .min(1024);
    let mut out = Vec::with_capacity(cap);
    let mut bytes = 0u64;
    for e in iter {
        if out.len() >= max_entries || (!out.is_empty() && bytes + e.size() > max_bytes) {
            return (out, Some(e.slot));
        }
        bytes += e.size();
        out.push(e);
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn e(slot: u64, len: usize) -> Entry {
        Entry {
            slot,
            data: Bytes::from(vec![0u8; len]),
            ..Entry::default()
        }
    }

    #[test]
    fn entries_are_bounded_and_sparse() {
        let s = MemStorage::new();
        s.wl()
            .store_entries(&[e(1, 10), e(2, 10), e(4, 10), e(5, 100)]);
        let got = s.entries(1, 10, 100, 1000).expect("read");
        assert_eq!(
            got.iter().map(|x| x.slot).collect::<Vec<_>>(),
            vec![1, 2, 4, 5]
        );
        assert_eq!(s.entries(1, 10, 2, 1000).expect("read").len(), 2);
        assert_eq!(s.entries(1, 10, 100, 25).expect("read").len(), 2);
        assert_eq!(
            s.entries(5, 5, 100, 1).expect("read").len(),
            1,
            "one oversize entry still goes"
        );
        assert_eq!(s.last_slot(), Ok(5));
    }

    #[test]
    fn compaction_is_reported() {
        let s = MemStorage::new();
        s.wl().store_entries(&[e(1, 1), e(2, 1), e(3, 1)]);
        s.wl().compact(2);
        assert_eq!(s.first_slot(), Ok(3));
        assert_eq!(s.entries(1, 3, 10, 10), Err(StorageError::Compacted(2)));
        assert_eq!(s.entries(3, 3, 10, 10).expect("read").len(), 1);
        assert_eq!(s.rl().retained_slots(), 1);
    }

    #[test]
    fn clones_share_state() {
        let a = MemStorage::new_with_conf_state(&[1, 2, 3], &[]);
        let b = a.clone();
        a.wl().set_hard_state(HardState {
            promised: None,
            committed: 7,
        });
        let st = b.initial_state().expect("state");
        assert_eq!(st.hard_state.committed, 7);
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    }
}
