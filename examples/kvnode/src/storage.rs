//! Durable storage on redb: the hard state and every accepted entry, written
//! per `Ready` in one transaction that is synced (fsync) before it commits.
//! A node that is killed at any point reopens with exactly the `Ready`s whose
//! `persist` returned, and nothing else.
//!
//! The state machine: every Ready stores the blocks it applied (with their
//! commands) and the applied slot; the KV and session tables are brought up
//! to date at checkpoints, and `load_state_machine` redoes the blocks above
//! the last one. The state is as durable as the chain, while a key written
//! many times between checkpoints costs one page write, not one per Ready.
//!
//! Compaction: the latest snapshot is kept in the store, and the entries it
//! covers are dropped but for a tail (so a peer lagging a little catches up
//! from the log, not a whole snapshot), a chunk per transaction so that no
//! one sync stalls on it; `first_slot` is one past the compacted prefix.

use crate::state::{
    Block, ChainHead, Changes, MemberAddress, Sessions, SnapshotData, StateMachine, StoredClient,
};
use bytes::Bytes;
use paxos_core::proto::{ConfState, Entry, HardState, ProstMessage, Snapshot, SnapshotMetadata};
use paxos_core::{InitialState, Storage, StorageError, MAX_SLOT};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Page cache of a store opened with [`RedbStorage::open`]: the pages a
/// Ready rewrites (the log's tail, the chain's tail, the hot KV leaves) stay
/// cached, while memory stays bounded however large the file grows. 16 MiB
/// holds those with room to spare (10,000 keys of 128 B take about 2 MiB):
/// measured with 256 clients putting, a member's resident memory was
/// 61-70 MB with 16 MiB and 161-170 MB with 128 MiB, at the same rate.
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

mod reads;
pub use reads::{ChainPage, StateDigest};

/// slot -> encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// name -> encoded value (hard state, membership).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// key -> value: the replicated KV map.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// client -> encoded `StoredSession`: the single-outcome sessions of
/// earlier versions; a store holding any is refused.
const LEGACY_SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// client -> encoded `StoredClient`: the client sessions.
const CLIENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("client_sessions");
/// height -> encoded `Block`.
const CHAIN: TableDefinition<u64, &[u8]> = TableDefinition::new("chain");
const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
const APPLIED: &str = "applied";
/// The applied slot the KV and session tables reflect (the last
/// checkpoint): blocks above it are redone on load.
const STATE_APPLIED: &str = "state_applied";
/// The end of the compacted prefix: no entry at or below it is held.
const COMPACTED: &str = "compacted";
/// Where compaction is headed: entries in (`COMPACTED`, `COMPACT_TO`] are
/// dropped [`COMPACT_CHUNK`] per transaction, so that a snapshot does not
/// stall one sync with deleting thousands of entries.
const COMPACT_TO: &str = "compact_to";
/// Entries dropped per transaction while compaction catches up.
const COMPACT_CHUNK: u64 = 32;
/// The latest snapshot (encoded `Snapshot`), covering the compacted prefix.
const SNAPSHOT: &str = "snapshot";
/// How entries carry commands: [`ENTRY_FORMAT`] since a batch entry's
/// lengths and count follow its commands (a trailer); absent in stores of
/// earlier kvnodes, whose normal entries held a batch encoding of kvnode's
/// own.
const FORMAT: &str = "entry_format";
const ENTRY_FORMAT: &[u8] = b"batch-trailer";
/// The format before: the library's batches framed each command with a
/// varint length in front of it.
const LENGTH_PREFIXED_FORMAT: &[u8] = b"library-batches";
/// The membership after the applied slot (the persisted `conf_state` is the
/// one after the committed slot, which may be ahead).
const SM_CONF_STATE: &str = "sm_conf_state";
/// Addresses learned from membership changes (encoded `AddressBook`).
const ADDRESSES: &str = "addresses";
/// The head below the first block held, on a member that installed a
/// snapshot (encoded `ChainHead`).
const CHAIN_BASE: &str = "chain_base";

/// The addresses learned from membership changes, as stored.
#[derive(Clone, PartialEq, Eq, prost::Message)]
struct AddressBook {
    #[prost(message, repeated, tag = "1")]
    members: Vec<MemberAddress>,
}

/// A snapshot this node took, and how far to compact the log behind it.
#[derive(Clone, Debug)]
pub struct Compaction {
    /// The snapshot (its slot is the applied slot it was taken at).
    pub snapshot: Snapshot,
    /// Drop entries up to this slot (at most the snapshot's).
    pub compact_to: u64,
}

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
    /// `Ready::snapshot`, installed: it replaces the state and the entries
    /// it covers, before everything else here.
    pub installed: Option<(&'a Snapshot, &'a SnapshotData)>,
    /// A snapshot taken after applying this Ready, with its compaction.
    pub created: Option<&'a Compaction>,
}

impl ReadyWrite<'_> {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.conf_state.is_none()
            && self.entries.is_empty()
            && self.changes.is_none()
            && self.installed.is_none()
            && self.created.is_none()
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
    /// The file is damaged: its pages fail redb's checks, or reading them
    /// made redb panic (contained).
    #[error("{path} is damaged: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
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

fn corrupt(what: &str, e: &dyn std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {e}"))
}

/// The block at `height` of the chain table, which must hold it.
fn block_at(
    chain: &impl ReadableTable<u64, &'static [u8]>,
    height: u64,
) -> Result<Block, StorageError> {
    let v = chain
        .get(height)
        .map_err(unavailable)?
        .ok_or_else(|| StorageError::Corrupt(format!("no block at height {height}")))?;
    stored_block(height, v.value())
}

/// The block stored under `height`, which must be its own.
fn stored_block(height: u64, bytes: &[u8]) -> Result<Block, StorageError> {
    let block = Block::decode(bytes).map_err(|e| corrupt("block", &e))?;
    if block.height != height {
        return Err(StorageError::Corrupt(format!(
            "block at height {height} out of place"
        )));
    }
    Ok(block)
}

/// Refuses a store whose client sessions are in the single-outcome form
/// of earlier versions. Converting it would not be deterministic: replicas
/// checkpoint at different slots, and the blocks above a checkpoint were
/// applied under the old rules, so two replicas could convert the same
/// history into different tables. The file is left as it is.
fn refuse_legacy_sessions(db: &Database) -> Result<(), String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let held = match txn.open_table(LEGACY_SESSIONS) {
        Ok(t) => t.len().map_err(|e| e.to_string())?,
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(e.to_string()),
    };
    if held > 0 {
        return Err(format!(
            "it holds {held} client sessions in the format of an earlier kvnode, which this \
             version does not convert (replicas could convert them differently); serve it \
             with the kvnode that wrote it, or start this member from an empty data \
             directory and let it catch up from the others"
        ));
    }
    Ok(())
}

/// Marks a new store with the entry format, and refuses one an earlier
/// kvnode wrote: its entries would apply as garbage here, and two
/// replicas must never read one history two ways. The file is left as it
/// is (the transaction is not committed).
fn check_format(txn: &redb::WriteTransaction) -> Result<(), String> {
    let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
    let held = meta.get(FORMAT).map_err(|e| e.to_string())?;
    match held.map(|v| v.value().to_vec()) {
        Some(f) if f == ENTRY_FORMAT => Ok(()),
        Some(f) if f == LENGTH_PREFIXED_FORMAT => Err("it was written by an earlier kvnode, \
            whose batch entries frame each command with its length in front, a format this \
            version does not read; serve it with the kvnode that wrote it, or start this \
            member from an empty data directory and let it catch up from the others"
            .into()),
        Some(f) => Err(format!(
            "its entries are in format {:?}, which this kvnode does not read",
            String::from_utf8_lossy(&f)
        )),
        None => {
            let entries = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
            let chain = txn.open_table(CHAIN).map_err(|e| e.to_string())?;
            let empty = entries.is_empty().map_err(|e| e.to_string())?
                && chain.is_empty().map_err(|e| e.to_string())?
                && meta.get(SNAPSHOT).map_err(|e| e.to_string())?.is_none();
            if !empty {
                return Err("it was written by an earlier kvnode, whose entries carry \
                    commands in a format this version does not read; serve it with the \
                    kvnode that wrote it, or start this member from an empty data \
                    directory and let it catch up from the others"
                    .into());
            }
            meta.insert(FORMAT, ENTRY_FORMAT)
                .map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

fn slot_of(snapshot: &Snapshot) -> u64 {
    snapshot.metadata.as_ref().map_or(0, |m| m.slot)
}

/// A slot stored big-endian in the meta table (0 when absent). A slot
/// above [`MAX_SLOT`] is corruption (no node ever reaches one), and the
/// bound makes `+ 1` on any stored slot safe.
fn meta_slot(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u64, StorageError> {
    match meta.get(key).map_err(unavailable)? {
        None => Ok(0),
        Some(v) => {
            let raw: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StorageError::Corrupt(key.to_owned()))?;
            let slot = u64::from_be_bytes(raw);
            if slot > MAX_SLOT {
                return Err(StorageError::Corrupt(format!(
                    "{key}: slot {slot} past the limit {MAX_SLOT}"
                )));
            }
            Ok(slot)
        }
    }
}

/// A message stored in the meta table (`None` when absent).
fn meta_msg<M: ProstMessage + Default>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<M>, StorageError> {
    match meta.get(key).map_err(unavailable)? {
        None => Ok(None),
        Some(v) => M::decode(v.value()).map(Some).map_err(|e| corrupt(key, &e)),
    }
}

impl RedbStorage {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store, caching at most `cache_bytes` of its
    /// pages in memory. Every page's checksum is verified first: a damaged
    /// file is [`StoreError::Corrupt`], also where redb would panic on it.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self, StoreError> {
        let path = path.as_ref();
        crate::contain::contained(|| Self::open_checked(path, cache_bytes)).unwrap_or_else(|what| {
            Err(StoreError::Corrupt {
                path: path.display().to_string(),
                what,
            })
        })
    }

    fn open_checked(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => {
                    StoreError::Corrupt {
                        path: path.display().to_string(),
                        what,
                    }
                }
                e => open_err(e.to_string()),
            })?;
        // Create the tables once, so that readers never meet a missing table.
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        txn.open_table(ENTRIES)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(META).map_err(|e| open_err(e.to_string()))?;
        txn.open_table(KV).map_err(|e| open_err(e.to_string()))?;
        txn.open_table(CLIENTS)
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(CHAIN).map_err(|e| open_err(e.to_string()))?;
        check_format(&txn).map_err(open_err)?;
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        refuse_legacy_sessions(&db).map_err(open_err)?;
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
    /// chosen already (and so is answering their clients, PROTOCOL.md rule
    /// D5); no reply that depends on this write leaves before it returns.
    /// A snapshot in `created` starts a compaction that proceeds
    /// [`COMPACT_CHUNK`] entries per call.
    pub fn persist_ready(&self, w: ReadyWrite<'_>) -> Result<(), StoreError> {
        let ReadyWrite {
            hard_state,
            conf_state,
            entries,
            changes,
            installed,
            created,
        } = w;
        if w.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(write_err)?;
        txn.set_durability(Durability::Immediate)
            .map_err(write_err)?;
        {
            let mut table = txn.open_table(ENTRIES).map_err(write_err)?;
            let mut meta = txn.open_table(META).map_err(write_err)?;
            let mut compacted = meta_slot(&meta, COMPACTED).map_err(write_err)?;
            if let Some((snapshot, data)) = installed {
                compacted = compacted.max(slot_of(snapshot));
                Self::install(&txn, &mut meta, &mut table, compacted, snapshot, data)?;
            }
            let mut buf = Vec::new();
            for e in entries.iter().filter(|e| e.slot > compacted) {
                buf.clear();
                e.encode(&mut buf).map_err(write_err)?;
                table.insert(e.slot, buf.as_slice()).map_err(write_err)?;
            }
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
                Self::write_changes(&txn, &mut meta, c)?;
            }
            let mut compact_to = meta_slot(&meta, COMPACT_TO).map_err(write_err)?;
            if let Some(c) = created {
                meta.insert(SNAPSHOT, c.snapshot.encode_to_vec().as_slice())
                    .map_err(write_err)?;
                // Never past the snapshot: a peer needing a dropped slot is
                // sent the snapshot instead, so it must cover them all.
                let to = c.compact_to.min(slot_of(&c.snapshot));
                if to > compact_to {
                    compact_to = to;
                    meta.insert(COMPACT_TO, to.to_be_bytes().as_slice())
                        .map_err(write_err)?;
                }
            }
            // A chunk of the compaction under way, if any: the entries are
            // dropped in slot order, and the prefix is compacted only as
            // far as they are gone. Never past the applied slot, whatever
            // the file says: only applied slots are covered by a snapshot
            // (looked up only while a compaction is under way).
            if compact_to > compacted {
                let applied = meta_slot(&meta, APPLIED).map_err(write_err)?;
                let to = compact_to
                    .min(applied)
                    .min(compacted.saturating_add(COMPACT_CHUNK));
                if to > compacted {
                    table
                        .retain_in(compacted.saturating_add(1)..=to, |_, _| false)
                        .map_err(write_err)?;
                    meta.insert(COMPACTED, to.to_be_bytes().as_slice())
                        .map_err(write_err)?;
                }
            }
        }
        txn.commit().map_err(write_err)
    }

    /// A snapshot from the leader replaces the whole state: every entry it
    /// covers, the KV map, the sessions and the chain (held from its head on).
    fn install(
        txn: &redb::WriteTransaction,
        meta: &mut redb::Table<&str, &[u8]>,
        entries: &mut redb::Table<u64, &[u8]>,
        compacted: u64,
        snapshot: &Snapshot,
        data: &SnapshotData,
    ) -> Result<(), StoreError> {
        entries
            .retain_in(..=compacted, |_, _| false)
            .map_err(write_err)?;
        meta.insert(COMPACTED, compacted.to_be_bytes().as_slice())
            .map_err(write_err)?;
        meta.insert(SNAPSHOT, snapshot.encode_to_vec().as_slice())
            .map_err(write_err)?;
        for key in [APPLIED, STATE_APPLIED] {
            meta.insert(key, data.applied.to_be_bytes().as_slice())
                .map_err(write_err)?;
        }
        let head = data.head.clone().unwrap_or_default();
        meta.insert(CHAIN_BASE, head.encode_to_vec().as_slice())
            .map_err(write_err)?;
        let cs = snapshot
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.clone())
            .unwrap_or_default();
        meta.insert(SM_CONF_STATE, cs.encode_to_vec().as_slice())
            .map_err(write_err)?;
        let book = AddressBook {
            members: data.addresses.clone(),
        };
        meta.insert(ADDRESSES, book.encode_to_vec().as_slice())
            .map_err(write_err)?;
        let mut kv = txn.open_table(KV).map_err(write_err)?;
        kv.retain(|_, _| false).map_err(write_err)?;
        for p in &data.kv {
            kv.insert(p.key.as_ref(), p.value.as_ref())
                .map_err(write_err)?;
        }
        let mut sessions = txn.open_table(CLIENTS).map_err(write_err)?;
        sessions.retain(|_, _| false).map_err(write_err)?;
        // Checked by `decode_snapshot`.
        let table = StateMachine::from_snapshot(data, ConfState::default());
        for s in table.stored_sessions() {
            sessions
                .insert(s.client, s.encode_to_vec().as_slice())
                .map_err(write_err)?;
        }
        let mut chain = txn.open_table(CHAIN).map_err(write_err)?;
        chain.retain(|_, _| false).map_err(write_err)?;
        Ok(())
    }

    /// What the state machine changed applying a Ready's decided entries.
    fn write_changes(
        txn: &redb::WriteTransaction,
        meta: &mut redb::Table<&str, &[u8]>,
        c: &Changes,
    ) -> Result<(), StoreError> {
        meta.insert(APPLIED, c.applied.to_be_bytes().as_slice())
            .map_err(write_err)?;
        if c.checkpoint {
            meta.insert(STATE_APPLIED, c.applied.to_be_bytes().as_slice())
                .map_err(write_err)?;
        }
        if let Some((cs, addresses)) = &c.membership {
            meta.insert(SM_CONF_STATE, cs.encode_to_vec().as_slice())
                .map_err(write_err)?;
            let book = AddressBook {
                members: addresses.clone(),
            };
            meta.insert(ADDRESSES, book.encode_to_vec().as_slice())
                .map_err(write_err)?;
        }
        let mut kv = txn.open_table(KV).map_err(write_err)?;
        for (k, v) in &c.kv {
            match v {
                Some(v) => kv.insert(k.as_ref(), v.as_ref()).map(|_| ()),
                None => kv.remove(k.as_ref()).map(|_| ()),
            }
            .map_err(write_err)?;
        }
        let mut sessions = txn.open_table(CLIENTS).map_err(write_err)?;
        for (client, stored) in &c.sessions {
            match stored {
                Some(s) => sessions.insert(*client, s.encode_to_vec().as_slice()),
                None => sessions.remove(*client),
            }
            .map_err(write_err)?;
        }
        let mut chain = txn.open_table(CHAIN).map_err(write_err)?;
        for b in &c.blocks {
            chain
                .insert(b.height, b.encode_to_vec().as_slice())
                .map_err(write_err)?;
        }
        Ok(())
    }

    /// The state machine as last persisted (empty for a new node). Start the
    /// node with `Config::applied` set to its `applied()`.
    pub fn load_state_machine(&self) -> Result<StateMachine, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let applied = meta_slot(&meta, APPLIED)?;
        let base: Option<ChainHead> = meta_msg(&meta, CHAIN_BASE)?;
        let conf_state = match meta_msg(&meta, SM_CONF_STATE)? {
            Some(cs) => cs,
            None => meta_msg(&meta, CONF_STATE)?.unwrap_or_default(),
        };
        let addresses = meta_msg::<AddressBook>(&meta, ADDRESSES)?
            .map(|b| b.members)
            .unwrap_or_default();
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
        let mut stored = Vec::new();
        for item in txn
            .open_table(CLIENTS)
            .map_err(unavailable)?
            .iter()
            .map_err(unavailable)?
        {
            let (client, v) = item.map_err(unavailable)?;
            let s = StoredClient::decode(v.value()).map_err(|e| corrupt("session", &e))?;
            if s.client != client.value() {
                return Err(StorageError::Corrupt(format!(
                    "session of client {} stored under {}",
                    s.client,
                    client.value()
                )));
            }
            stored.push(s);
        }
        let sessions = Sessions::from_stored(stored)
            .ok_or_else(|| StorageError::Corrupt("inconsistent client sessions".into()))?;
        // The blocks stay in the store (`blocks` pages through them), so
        // memory does not grow with the chain. The held range must be
        // contiguous from just above the base; the blocks above the last
        // checkpoint are redone, which checks their hashes and links (every
        // other link is `chain verify`'s to check).
        let base_height = base.as_ref().map_or(0, |b| b.height);
        if base_height > applied {
            return Err(StorageError::Corrupt(format!(
                "chain base at height {base_height}, above applied slot {applied}"
            )));
        }
        let state_applied = meta_slot(&meta, STATE_APPLIED)?;
        let chain = txn.open_table(CHAIN).map_err(unavailable)?;
        let held = chain.len().map_err(unavailable)?;
        let first = chain.first().map_err(unavailable)?.map(|(h, _)| h.value());
        let last = chain.last().map_err(unavailable)?.map(|(h, _)| h.value());
        let contiguous = match (first, last) {
            (Some(first), Some(last)) => {
                Some(first) == base_height.checked_add(1)
                    && last.checked_sub(first).and_then(|d| d.checked_add(1)) == Some(held)
            }
            _ => held == 0,
        };
        if !contiguous || last.unwrap_or(base_height) != applied {
            return Err(StorageError::Corrupt(format!(
                "blocks {first:?}..={last:?} held, {held} of them, above height \
                 {base_height}, for applied slot {applied}"
            )));
        }
        if state_applied < base_height || state_applied > applied {
            return Err(StorageError::Corrupt(format!(
                "state tables at slot {state_applied}, outside {base_height}..={applied}"
            )));
        }
        let head = if state_applied == base_height {
            None
        } else {
            let b = block_at(&chain, state_applied)?;
            Some(ChainHead {
                height: b.height,
                hash: b.hash,
            })
        };
        let mut sm = StateMachine::from_parts(state_applied, kv, sessions, head, base);
        // `state_applied <= applied <= MAX_SLOT`: the successor exists.
        for item in chain.range(state_applied + 1..).map_err(unavailable)? {
            let (height, v) = item.map_err(unavailable)?;
            let block = stored_block(height.value(), v.value())?;
            sm.redo(&block)
                .map_err(|e| StorageError::Corrupt(format!("redoing the chain: {e}")))?;
        }
        sm.set_membership(conf_state, addresses);
        Ok(sm)
    }

    /// Up to `limit` blocks from height `from` on, as persisted (none below
    /// the first block held, after a snapshot was installed).
    pub fn blocks(&self, from: u64, limit: usize) -> Result<Vec<Block>, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let chain = txn.open_table(CHAIN).map_err(unavailable)?;
        let mut blocks = Vec::new();
        for item in chain.range(from..).map_err(unavailable)?.take(limit) {
            let (height, v) = item.map_err(unavailable)?;
            blocks.push(stored_block(height.value(), v.value())?);
        }
        Ok(blocks)
    }

    /// A brand-new node's membership: both the protocol's and the state
    /// machine's (the one a snapshot at the applied slot carries).
    pub fn init_membership(&self, cs: &ConfState) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            for key in [CONF_STATE, SM_CONF_STATE] {
                meta.insert(key, cs.encode_to_vec().as_slice())
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
        Ok(meta_msg(&table, key)?.unwrap_or_default())
    }

    /// The end of the compacted prefix (0: nothing compacted).
    pub fn compacted(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        meta_slot(&txn.open_table(META).map_err(unavailable)?, COMPACTED)
    }

    /// The slot of the latest snapshot (0: none).
    pub fn snapshot_slot(&self) -> Result<u64, StorageError> {
        Ok(slot_of(&self.snapshot()?))
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
        let compacted = meta_slot(&txn.open_table(META).map_err(unavailable)?, COMPACTED)?;
        if lo <= compacted {
            return Err(StorageError::Compacted(compacted));
        }
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
            let total = bytes.saturating_add(e.size());
            if out.len() >= max_entries || (!out.is_empty() && total > max_bytes) {
                break;
            }
            bytes = total;
            out.push(e);
        }
        Ok(out)
    }

    fn first_slot(&self) -> Result<u64, StorageError> {
        // A stored slot is at most MAX_SLOT (`meta_slot`).
        Ok(self.compacted()? + 1)
    }

    fn last_slot(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(ENTRIES).map_err(unavailable)?;
        let last = table.last().map_err(unavailable)?;
        let compacted = meta_slot(&txn.open_table(META).map_err(unavailable)?, COMPACTED)?;
        Ok(last.map_or(0, |(k, _)| k.value()).max(compacted))
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        if let Some(snapshot) = meta_msg(&meta, SNAPSHOT)? {
            return Ok(snapshot);
        }
        // Nothing compacted yet, so no peer needs a snapshot from this
        // store: the one covering nothing is exact.
        Ok(Snapshot {
            metadata: Some(SnapshotMetadata {
                slot: 0,
                conf_state: Some(meta_msg(&meta, CONF_STATE)?.unwrap_or_default()),
            }),
            data: Bytes::new(),
        })
    }
}
