//! Durable storage on redb: the hard state and every accepted entry, written
//! per `Ready` in one transaction that is synced (fsync) before it commits.
//! A node that is killed at any point reopens with exactly the `Ready`s whose
//! `persist` returned, and nothing else.

use crate::state::{Block, Changes, StateMachine, StoredSession};
use bytes::Bytes;
use paxos_core::proto::{ConfState, Entry, HardState, ProstMessage};
use paxos_core::{InitialState, Storage, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// slot -> encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// name -> encoded value (hard state, membership).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// key -> value: the replicated KV map.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// client -> encoded `StoredSession`.
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// height -> encoded `Block`.
const CHAIN: TableDefinition<u64, &[u8]> = TableDefinition::new("chain");
const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
const APPLIED: &str = "applied";

/// What one `Ready` writes, in one durable transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadyWrite<'a> {
    /// `Ready::hard_state`.
    pub hard_state: Option<&'a HardState>,
    /// `Ready::conf_state`.
    pub conf_state: Option<&'a ConfState>,
    /// `Ready::entries`.
    pub entries: &'a [Entry],
    /// What applying the Ready's decided entries changed.
    pub changes: Option<&'a Changes>,
}

impl ReadyWrite<'_> {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.conf_state.is_none()
            && self.entries.is_empty()
            && self.changes.is_none()
    }
}

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
        txn.open_table(KV).map_err(|e| open_err(e.to_string()))?;
        txn.open_table(SESSIONS)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(CHAIN).map_err(|e| open_err(e.to_string()))?;
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
        self.persist_ready(ReadyWrite {
            hard_state,
            entries,
            ..ReadyWrite::default()
        })
    }

    /// Like [`RedbStorage::persist`], and in the same transaction (one sync
    /// per Ready: group commit) what the state machine changed by applying
    /// the Ready's decided entries: applied slot, keys, sessions, blocks.
    /// Applying before persisting is sound because decided entries are
    /// chosen already; nothing is acknowledged before this returns.
    pub fn persist_ready(&self, w: ReadyWrite<'_>) -> Result<(), StoreError> {
        let ReadyWrite {
            hard_state,
            conf_state,
            entries,
            changes,
        } = w;
        if w.is_empty() {
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
            let mut meta = txn.open_table(META).map_err(write_err)?;
            if let Some(hs) = hard_state {
                meta.insert(HARD_STATE, hs.encode_to_vec().as_slice())
                    .map_err(write_err)?;
            }
            // With the hard state, atomically: a restart restores the pair.
            if let Some(cs) = conf_state {
                meta.insert(CONF_STATE, cs.encode_to_vec().as_slice())
                    .map_err(write_err)?;
            }
            if let Some(c) = changes {
                meta.insert(APPLIED, c.applied.to_be_bytes().as_slice())
                    .map_err(write_err)?;
                let mut kv = txn.open_table(KV).map_err(write_err)?;
                for (k, v) in &c.kv {
                    match v {
                        Some(v) => kv.insert(k.as_ref(), v.as_ref()).map(|_| ()),
                        None => kv.remove(k.as_ref()).map(|_| ()),
                    }
                    .map_err(write_err)?;
                }
                let mut sessions = txn.open_table(SESSIONS).map_err(write_err)?;
                for (client, seq, outcome) in &c.sessions {
                    let stored = StoredSession::from_outcome(*seq, outcome).encode_to_vec();
                    sessions
                        .insert(*client, stored.as_slice())
                        .map_err(write_err)?;
                }
                let mut chain = txn.open_table(CHAIN).map_err(write_err)?;
                for b in &c.blocks {
                    chain
                        .insert(b.height, b.encode_to_vec().as_slice())
                        .map_err(write_err)?;
                }
            }
        }
        txn.commit().map_err(write_err)
    }

    /// The state machine as last persisted (empty for a new node). Start the
    /// node with `Config::applied` set to its `applied()`.
    pub fn load_state_machine(&self) -> Result<StateMachine, StorageError> {
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| StorageError::Corrupt(format!("{what}: {e}"));
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let applied = match meta.get(APPLIED).map_err(unavailable)? {
            None => 0,
            Some(v) => {
                let raw: [u8; 8] = v
                    .value()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("applied slot".into()))?;
                u64::from_be_bytes(raw)
            }
        };
        let mut kv = BTreeMap::new();
        for item in txn
            .open_table(KV)
            .map_err(unavailable)?
            .iter()
            .map_err(unavailable)?
        {
            let (k, v) = item.map_err(unavailable)?;
            kv.insert(
                Bytes::copy_from_slice(k.value()),
                Bytes::copy_from_slice(v.value()),
            );
        }
        let mut sessions = BTreeMap::new();
        for item in txn
            .open_table(SESSIONS)
            .map_err(unavailable)?
            .iter()
            .map_err(unavailable)?
        {
            let (client, v) = item.map_err(unavailable)?;
            let stored = StoredSession::decode(v.value()).map_err(|e| corrupt("session", &e))?;
            let session = stored
                .to_outcome()
                .ok_or_else(|| StorageError::Corrupt("session kind".into()))?;
            sessions.insert(client.value(), session);
        }
        let mut chain: Vec<Block> = Vec::new();
        for item in txn
            .open_table(CHAIN)
            .map_err(unavailable)?
            .iter()
            .map_err(unavailable)?
        {
            let (height, v) = item.map_err(unavailable)?;
            let block = Block::decode(v.value()).map_err(|e| corrupt("block", &e))?;
            if block.height != height.value() || block.height != chain.len() as u64 + 1 {
                return Err(StorageError::Corrupt(format!(
                    "block at height {} out of place",
                    height.value()
                )));
            }
            chain.push(block);
        }
        if chain.last().map_or(0, |b| b.slot) != applied {
            return Err(StorageError::Corrupt(
                "chain head and applied slot disagree".into(),
            ));
        }
        Ok(StateMachine::from_parts(applied, kv, sessions, chain))
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

    fn snapshot(&self) -> Result<paxos_core::proto::Snapshot, StorageError> {
        // This store never compacts (first_slot is 1), so no peer ever needs
        // a snapshot from it: the snapshot covering nothing is exact.
        Ok(paxos_core::proto::Snapshot {
            metadata: Some(paxos_core::proto::SnapshotMetadata {
                slot: 0,
                conf_state: Some(self.meta(CONF_STATE)?),
            }),
            data: bytes::Bytes::new(),
        })
    }
}
