//! Durable storage on redb: the hard state and every accepted entry, written
//! per `Ready` in one transaction that is synced (fsync) before it commits.
//! A node that is killed at any point reopens with exactly the `Ready`s whose
//! `persist` returned, and nothing else.

use paxos_core::proto::{ConfState, Entry, HardState, ProstMessage};
use paxos_core::{InitialState, Storage, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

/// slot -> encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// name -> encoded value (hard state, membership).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";

/// What went wrong opening or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened (missing directory, not a redb
    /// file, truncated, another process holds it, ...).
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A write failed; nothing of it is durable.
    #[error("write failed: {0}")]
    Write(String),
}

/// A node's durable state in one redb file. Clones share the database.
#[derive(Clone, Debug)]
pub struct RedbStorage {
    db: Arc<Database>,
}

fn unavailable(e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

fn write_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(e.to_string())
}

impl RedbStorage {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let db = Database::create(path).map_err(|e| open_err(e.to_string()))?;
        // Create the tables once, so that readers never meet a missing table.
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        txn.open_table(ENTRIES)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(META).map_err(|e| open_err(e.to_string()))?;
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(RedbStorage { db: Arc::new(db) })
    }

    /// Persists one `Ready`: its hard state (if any) and entries (each
    /// replacing what its slot held), atomically and synced before this
    /// returns. Only then may the `Ready`'s messages be sent.
    pub fn persist(
        &self,
        hard_state: Option<&HardState>,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(Durability::Immediate)
            .map_err(write_err)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(write_err)?;
            let mut buf = Vec::new();
            for e in entries {
                buf.clear();
                e.encode(&mut buf).map_err(write_err)?;
                table.insert(e.slot, buf.as_slice()).map_err(write_err)?;
            }
            if let Some(hs) = hard_state {
                let mut meta = txn.open_table(META).map_err(write_err)?;
                meta.insert(HARD_STATE, hs.encode_to_vec().as_slice())
                    .map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)
    }

    /// Persists the membership.
    pub fn set_conf_state(&self, cs: &ConfState) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert(CONF_STATE, cs.encode_to_vec().as_slice())
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    fn meta<M: ProstMessage + Default>(&self, key: &str) -> Result<M, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(META).map_err(unavailable)?;
        match table.get(key).map_err(unavailable)? {
            None => Ok(M::default()),
            Some(v) => {
                M::decode(v.value()).map_err(|e| StorageError::Corrupt(format!("{key}: {e}")))
            }
        }
    }
}

impl Storage for RedbStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.meta(HARD_STATE)?,
            conf_state: self.meta(CONF_STATE)?,
        })
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        if lo > hi {
            return Ok(out);
        }
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(ENTRIES).map_err(unavailable)?;
        let mut bytes = 0u64;
        for item in table.range(lo..=hi).map_err(unavailable)? {
            let (slot, value) = item.map_err(unavailable)?;
            let e = Entry::decode(value.value())
                .map_err(|err| StorageError::Corrupt(format!("slot {}: {err}", slot.value())))?;
            if e.slot != slot.value() {
                return Err(StorageError::Corrupt(format!(
                    "slot {} holds slot {}",
                    slot.value(),
                    e.slot
                )));
            }
            if out.len() >= max_entries || (!out.is_empty() && bytes + e.size() > max_bytes) {
                break;
            }
            bytes += e.size();
            out.push(e);
        }
        Ok(out)
    }

    fn first_slot(&self) -> Result<u64, StorageError> {
        // Nothing is compacted yet: the log starts at slot 1.
        Ok(1)
    }

    fn last_slot(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(ENTRIES).map_err(unavailable)?;
        let last = table.last().map_err(unavailable)?;
        Ok(last.map_or(0, |(k, _)| k.value()))
    }
}
