//! The replicated state machine: a key-value map with exactly-once client
//! sessions, and a hash-chained block log with one block per decided slot.
//!
//! Every replica applies the same decided entries in slot order, so every
//! replica holds a byte-identical chain; [`verify_chain`] re-derives the KV
//! state from the chain alone and checks every hash link.

use bytes::Bytes;
use paxos_core::proto::{ConfChangeType, ConfState, Entry, EntryKind};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

mod chain;
mod sessions;
mod snapshot;

pub use chain::{check_links, replay_chain, verify_chain, ChainError};
pub use sessions::{Lookup, Sessions, StoredClient, MAX_BYTES, MAX_CLIENTS, WINDOW};

/// A client's request, as proposed (encoded with prost).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Command {
    /// The client's id: with `seq`, makes retries idempotent.
    #[prost(uint64, tag = "1")]
    pub client: u64,
    /// Increases by one per request of that client; a retry reuses it.
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    /// The operation.
    #[prost(oneof = "Op", tags = "3, 4, 5, 6")]
    pub op: Option<Op>,
}

impl Command {
    /// The bytes to propose for `op` by `client` at sequence `seq`.
    pub fn encode_op(client: u64, seq: u64, op: Op) -> Bytes {
        let mut buf = Vec::new();
        Command::encode_op_into(client, seq, op, &mut buf);
        Bytes::from(buf)
    }

    /// [`Command::encode_op`], appended to `buf`.
    pub fn encode_op_into(client: u64, seq: u64, op: Op, buf: &mut Vec<u8>) {
        let command = Command {
            client,
            seq,
            op: Some(op),
        };
        buf.reserve(command.encoded_len());
        command.encode_raw(buf);
    }
}

/// The commands a decided entry carries, in the order they apply: the
/// library batches the writes proposed between two of its `Ready`s into one
/// slot (one log row and one block per slot, not per command), and hands
/// each out again. A batch that does not decode (a faulty store; the core
/// refuses one from a peer) is kept whole as one command, which applies as
/// [`Outcome::Invalid`]: it is recorded, never dropped.
pub fn commands_of(entry: &Entry) -> Vec<Bytes> {
    match entry.commands() {
        Ok(commands) => commands.map(|c| c.data).collect(),
        Err(_) => vec![entry.data.clone()],
    }
}

/// The entry data carrying `commands`, as the library frames a batch
/// (one command is carried as itself, in a normal entry).
pub fn batch_data(commands: &[Bytes]) -> Bytes {
    // A block holds no more commands than the slot it records, which a
    // position indexes. Were it more, the empty payload never decodes: it
    // applies as one invalid command, and the replayed hash differs.
    paxos_core::proto::batch_payload(commands).unwrap_or_default()
}

impl Op {
    /// A put of `value` at `key`.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Op {
        Op::Put(Put {
            key: key.into(),
            value: value.into(),
        })
    }
}

/// What a command does.
#[derive(Clone, PartialEq, Eq, prost::Oneof)]
pub enum Op {
    /// Set `key` to `value`.
    #[prost(message, tag = "3")]
    Put(Put),
    /// Read `key` (through the log: linearizable without a read index).
    #[prost(bytes = "bytes", tag = "4")]
    Get(Bytes),
    /// Remove `key`.
    #[prost(bytes = "bytes", tag = "5")]
    Delete(Bytes),
    /// Set `key` to `new` only if it currently holds `expected` (absent when unset).
    #[prost(message, tag = "6")]
    Cas(Cas),
}

/// A put.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Put {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// A compare-and-swap.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Cas {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value the key must hold for the swap to happen.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub expected: Option<Bytes>,
    /// The value to store.
    #[prost(bytes = "bytes", tag = "3")]
    pub new: Bytes,
}

/// The result of a command, returned to its client (and to every retry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put or delete took effect.
    Done,
    /// A get's value.
    Value(Option<Bytes>),
    /// A compare-and-swap: whether it swapped, and the value it found.
    Cas {
        /// Whether the swap happened.
        swapped: bool,
        /// The value before.
        found: Option<Bytes>,
    },
    /// The entry was not a command (a malformed proposal): it is recorded in
    /// the chain like every decided entry, and changes nothing.
    Invalid,
    /// The command's sequence is at or below its client's floor: whether
    /// it was applied is no longer known, and it changed nothing now
    /// (`sessions`). Never recorded.
    Forgotten,
}

/// One block of the chain: the decided slot and the commands it carried.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Block {
    /// 1 for the first block.
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// The decided slot.
    #[prost(uint64, tag = "2")]
    pub slot: u64,
    /// The previous block's hash (zeros for the first).
    #[prost(bytes = "bytes", tag = "3")]
    pub prev_hash: Bytes,
    /// The entry kind (normal, no-op, membership change).
    #[prost(int32, tag = "4")]
    pub kind: i32,
    /// The commands, as decided.
    #[prost(bytes = "bytes", repeated, tag = "5")]
    pub commands: Vec<Bytes>,
    /// SHA-256 of this block encoded with an empty `hash`.
    #[prost(bytes = "bytes", tag = "6")]
    pub hash: Bytes,
}

impl Block {
    /// The hash this block must carry: SHA-256 over its encoding without it.
    pub fn compute_hash(&self) -> Bytes {
        let unsealed = Block {
            hash: Bytes::new(),
            ..self.clone()
        };
        Bytes::copy_from_slice(&Sha256::digest(unsealed.encode_to_vec()))
    }

    /// The decided entry this block records: its commands re-framed apply
    /// exactly as the entry's did. (A membership change's block keeps no
    /// data: its effect is stored apart from the chain.)
    fn to_entry(&self) -> Entry {
        let data = match EntryKind::try_from(self.kind) {
            Ok(EntryKind::Normal) => self.commands.first().cloned().unwrap_or_default(),
            Ok(EntryKind::Batch) => batch_data(&self.commands),
            _ => Bytes::new(),
        };
        Entry {
            slot: self.slot,
            ballot: None,
            kind: self.kind,
            data,
        }
    }
}

/// Where a member listens: carried in the `context` of the membership
/// change that adds it, so every member learns the new node's addresses.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct MemberAddress {
    /// The node.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Its peer transport address, `host:port`.
    #[prost(string, tag = "2")]
    pub peer: String,
    /// Its HTTP API address, `host:port`.
    #[prost(string, tag = "3")]
    pub http: String,
}

/// A chain head: the height and hash of the last block.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ChainHead {
    /// Its height (0 before the first block).
    #[prost(uint64, tag = "1")]
    pub height: u64,
    /// Its hash (zeros before the first block).
    #[prost(bytes = "bytes", tag = "2")]
    pub hash: Bytes,
}

/// One key and its value.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct KvPair {
    /// The key.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// The value.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// One client's session.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SessionRecord {
    /// The client.
    #[prost(uint64, tag = "1")]
    pub client: u64,
    /// Its last sequence and outcome.
    #[prost(message, optional, tag = "2")]
    pub session: Option<StoredSession>,
}

/// A snapshot's data: the state after applying every slot up to `applied`.
/// The chain travels as its head only: a member that installs a snapshot
/// holds the chain from that height on (it is pruned below it).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotData {
    /// The last slot applied.
    #[prost(uint64, tag = "1")]
    pub applied: u64,
    /// The chain head at `applied`.
    #[prost(message, optional, tag = "2")]
    pub head: Option<ChainHead>,
    /// The KV map, in key order.
    #[prost(message, repeated, tag = "3")]
    pub kv: Vec<KvPair>,
    /// The client sessions in the single-outcome form of earlier versions:
    /// never written; a snapshot carrying any is refused.
    #[prost(message, repeated, tag = "4")]
    pub sessions: Vec<SessionRecord>,
    /// Addresses learned from membership changes.
    #[prost(message, repeated, tag = "5")]
    pub addresses: Vec<MemberAddress>,
    /// The client sessions, in client order.
    #[prost(message, repeated, tag = "6")]
    pub clients: Vec<StoredClient>,
}

/// Why snapshot data was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not decode.
    #[error("snapshot data does not decode: {0}")]
    Decode(String),
    /// The data contradicts itself or its metadata.
    #[error("snapshot data is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// A replica's KV map, client sessions, chain and membership.
#[derive(Clone, Debug)]
pub struct StateMachine {
    /// The keys, hashed: applying a put looks one up, where an ordered map
    /// compared it with a dozen others through as many cache misses. What
    /// leaves in key order (snapshots, digests, checkpoints) is sorted on
    /// the way out. The hasher is keyed at random: keys come from clients.
    kv: HashMap<Bytes, Bytes>,
    /// The client sessions.
    sessions: Sessions,
    /// The last block's height and hash. The blocks themselves live in the
    /// store: memory holds only those not saved yet, so it does not grow
    /// with the chain.
    head: ChainHead,
    /// Blocks appended since the last `take_changes`.
    unsaved: Vec<Block>,
    /// The head below the first block held: a member that installed a
    /// snapshot holds no block at or below it. Height 0 for a full chain.
    base: ChainHead,
    applied: u64,
    /// The membership after `applied`: what a snapshot taken now carries.
    conf_state: ConfState,
    /// Addresses learned from membership changes, by node.
    addresses: BTreeMap<u64, MemberAddress>,
    membership_dirty: bool,
    /// What changed since the last `take_changes` (to persist).
    dirty_keys: HashSet<Bytes>,
    dirty_sessions: BTreeSet<u64>,
    /// Commands applied since the last checkpoint (what a restart redoes).
    since_checkpoint: u64,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine {
            kv: HashMap::new(),
            sessions: Sessions::default(),
            head: zero_head(),
            unsaved: Vec::new(),
            base: zero_head(),
            applied: 0,
            conf_state: ConfState::default(),
            addresses: BTreeMap::new(),
            membership_dirty: false,
            dirty_keys: HashSet::new(),
            dirty_sessions: BTreeSet::new(),
            since_checkpoint: 0,
        }
    }
}

impl PartialEq for StateMachine {
    /// Replicas are equal when their state is: what is not yet saved is
    /// bookkeeping, not state.
    fn eq(&self, o: &Self) -> bool {
        (
            self.applied,
            &self.kv,
            &self.sessions,
            &self.head,
            &self.base,
        ) == (o.applied, &o.kv, &o.sessions, &o.head, &o.base)
    }
}

impl Eq for StateMachine {}

/// Everything a replica's state machine changed since it last saved: what
/// the host writes in the same transaction as the `Ready` that decided it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The last slot applied.
    pub applied: u64,
    /// Keys set (Some) or removed (None).
    pub kv: Vec<(Bytes, Option<Bytes>)>,
    /// Sessions updated (Some) or evicted (None), by client.
    pub sessions: Vec<(u64, Option<StoredClient>)>,
    /// Blocks appended.
    pub blocks: Vec<Block>,
    /// The membership and the address book, when a change was applied.
    pub membership: Option<(ConfState, Vec<MemberAddress>)>,
    /// `kv` and `sessions` hold every change up to `applied` (a checkpoint
    /// of the state tables). Otherwise they are empty and the changes stay
    /// pending: the blocks, durable in the same transaction, carry the
    /// commands that redo them after a restart.
    pub checkpoint: bool,
}

/// One sequence's outcome as stored.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StoredSession {
    /// The sequence.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// 0 done, 1 value, 2 cas, 3 invalid, 4 forgotten.
    #[prost(uint32, tag = "2")]
    pub kind: u32,
    /// The value read or found.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub value: Option<Bytes>,
    /// Whether a CAS swapped.
    #[prost(bool, tag = "4")]
    pub swapped: bool,
}

impl StoredSession {
    /// Encodes a session.
    pub fn from_outcome(seq: u64, o: &Outcome) -> Self {
        let (kind, value, swapped) = match o {
            Outcome::Done => (0, None, false),
            Outcome::Value(v) => (1, v.clone(), false),
            Outcome::Cas { swapped, found } => (2, found.clone(), *swapped),
            Outcome::Invalid => (3, None, false),
            Outcome::Forgotten => (4, None, false),
        };
        StoredSession {
            seq,
            kind,
            value,
            swapped,
        }
    }

    /// Decodes a session; `None` for an unknown kind.
    pub fn to_outcome(&self) -> Option<(u64, Outcome)> {
        let o = match self.kind {
            0 => Outcome::Done,
            1 => Outcome::Value(self.value.clone()),
            2 => Outcome::Cas {
                swapped: self.swapped,
                found: self.value.clone(),
            },
            3 => Outcome::Invalid,
            4 => Outcome::Forgotten,
            _ => return None,
        };
        Some((self.seq, o))
    }
}

/// The KV map's digest, computed pair by pair in key order (the same from
/// memory and from the store's table).
#[derive(Default)]
pub struct KvDigest(Sha256);

impl KvDigest {
    /// Adds the next pair.
    pub fn add(&mut self, k: &[u8], v: &[u8]) {
        self.0.update((k.len() as u64).to_be_bytes());
        self.0.update(k);
        self.0.update((v.len() as u64).to_be_bytes());
        self.0.update(v);
    }

    /// The digest of every pair added.
    pub fn finish(self) -> Bytes {
        Bytes::copy_from_slice(&self.0.finalize())
    }
}

impl std::fmt::Debug for KvDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KvDigest")
    }
}

pub(crate) fn zero_head() -> ChainHead {
    ChainHead {
        height: 0,
        hash: Bytes::from_static(&[0; 32]),
    }
}

impl StateMachine {
    /// A state machine restored from saved parts (nothing unsaved): `head`
    /// is the last block's (`None`: no block, the head is `base`); `base`
    /// the head below the first block held (`None`: the chain is whole).
    pub fn from_parts(
        applied: u64,
        kv: BTreeMap<Bytes, Bytes>,
        sessions: Sessions,
        head: Option<ChainHead>,
        base: Option<ChainHead>,
    ) -> Self {
        let base = base.unwrap_or_else(zero_head);
        StateMachine {
            kv: kv.into_iter().collect(),
            sessions,
            head: head.unwrap_or_else(|| base.clone()),
            base,
            applied,
            ..StateMachine::default()
        }
    }

    /// Sets the membership after `applied` and the known addresses (as
    /// restored; nothing to save).
    pub fn set_membership(&mut self, conf_state: ConfState, addresses: Vec<MemberAddress>) {
        self.conf_state = conf_state;
        self.addresses = addresses.into_iter().map(|a| (a.id, a)).collect();
    }

    /// The membership after the last applied slot.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Addresses learned from membership changes (and snapshots).
    pub fn addresses(&self) -> impl Iterator<Item = &MemberAddress> {
        self.addresses.values()
    }

    /// The head below the first block held (height 0: the chain is whole).
    pub fn base(&self) -> &ChainHead {
        &self.base
    }

    /// Takes what changed since the last call, to persist with the `Ready`:
    /// a checkpoint, with every pending KV and session change.
    pub fn take_changes(&mut self) -> Changes {
        let mut changes = self.take_chain_changes();
        // In key order: the store writes them as a sorted run.
        let mut keys: Vec<Bytes> = self.dirty_keys.drain().collect();
        keys.sort_unstable();
        changes.kv = keys
            .into_iter()
            .map(|k| {
                let v = self.kv.get(&k).cloned();
                (k, v)
            })
            .collect();
        changes.sessions = std::mem::take(&mut self.dirty_sessions)
            .into_iter()
            .map(|c| (c, self.sessions.stored(c)))
            .collect();
        changes.checkpoint = true;
        self.since_checkpoint = 0;
        changes
    }

    /// Takes the new blocks, the applied slot and any membership change,
    /// leaving the KV and session changes pending for a later checkpoint.
    /// The blocks alone make the state durable (a restart redoes their
    /// commands), and a key written by many commands between checkpoints
    /// is stored once rather than once per `Ready`.
    pub fn take_chain_changes(&mut self) -> Changes {
        let blocks = std::mem::take(&mut self.unsaved);
        let membership = std::mem::take(&mut self.membership_dirty).then(|| {
            (
                self.conf_state.clone(),
                self.addresses.values().cloned().collect(),
            )
        });
        Changes {
            applied: self.applied,
            kv: Vec::new(),
            sessions: Vec::new(),
            blocks,
            membership,
            checkpoint: false,
        }
    }

    /// KV keys and sessions changed since the last checkpoint.
    pub fn pending_changes(&self) -> usize {
        self.dirty_keys.len() + self.dirty_sessions.len()
    }

    /// Commands applied since the last checkpoint.
    pub fn commands_since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// Redoes a stored block on the state as of the block before it (a
    /// restart catching the state tables up with the chain): its entry is
    /// applied again, and the block it yields must be the stored one, hash
    /// and link included. Its changes are pending until the next
    /// checkpoint; the block itself is stored already. After an error the
    /// state is unusable.
    pub fn redo(&mut self, block: &Block) -> Result<(), ChainError> {
        let height = self.head.height + 1;
        if block.height != height || block.slot != self.applied + 1 {
            return Err(ChainError::OutOfOrder {
                height: block.height,
                expected_height: height,
                slot: block.slot,
            });
        }
        if block.prev_hash != self.head.hash {
            return Err(ChainError::BrokenLink { height });
        }
        self.apply(&block.to_entry());
        match self.unsaved.pop() {
            Some(redone) if redone.hash == block.hash => Ok(()),
            _ => Err(ChainError::BadHash { height }),
        }
    }

    /// The last decided slot applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Blocks applied but not yet taken by [`StateMachine::take_changes`].
    pub fn unsaved_blocks(&self) -> &[Block] {
        &self.unsaved
    }

    /// The head: (height, hash).
    pub fn head(&self) -> (u64, Bytes) {
        (self.head.height, self.head.hash.clone())
    }

    /// A key's value.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.kv.get(key)
    }

    /// What the sessions say of `client`'s sequence `seq`.
    pub fn lookup(&self, client: u64, seq: u64) -> Lookup {
        self.sessions.lookup(client, seq)
    }

    /// The number of client sessions held.
    pub fn sessions_len(&self) -> usize {
        self.sessions.len()
    }

    /// Every client session as stored, in client order.
    pub fn stored_sessions(&self) -> Vec<StoredClient> {
        self.sessions.all_stored()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.kv.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.kv.is_empty()
    }

    /// SHA-256 over every key and value in key order, each prefixed by its
    /// length: two replicas with the same map have the same digest, so
    /// `chain verify` compares maps without downloading them.
    pub fn kv_digest(&self) -> Bytes {
        let mut d = KvDigest::default();
        for (k, v) in self.sorted_kv() {
            d.add(k, v);
        }
        d.finish()
    }

    /// Every key and value, in key order.
    pub(crate) fn sorted_kv(&self) -> Vec<(&Bytes, &Bytes)> {
        let mut pairs: Vec<_> = self.kv.iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        pairs
    }

    /// Applies one decided entry (the next slot): appends its block and
    /// returns the outcome of each command it carried, with its client and
    /// sequence. A retried command returns its first outcome and changes
    /// nothing; a forgotten one returns [`Outcome::Forgotten`] and changes
    /// nothing.
    pub fn apply(&mut self, entry: &Entry) -> Vec<(u64, u64, Outcome)> {
        debug_assert_eq!(
            entry.slot,
            self.applied + 1,
            "decided entries apply in slot order"
        );
        let commands = commands_of(entry);
        if let Some(Ok(cc)) = entry.conf_change() {
            self.apply_conf_change(entry.slot, cc);
        }
        let mut outcomes = Vec::new();
        for data in &commands {
            outcomes.push(self.execute(data, entry.slot));
        }
        let (height, prev_hash) = self.head();
        let mut block = Block {
            height: height + 1,
            slot: entry.slot,
            prev_hash,
            kind: entry.kind,
            commands,
            hash: Bytes::new(),
        };
        block.hash = block.compute_hash();
        self.head = ChainHead {
            height: block.height,
            hash: block.hash.clone(),
        };
        self.unsaved.push(block);
        self.applied = entry.slot;
        outcomes
    }

    /// Tracks the membership (a snapshot carries the one at its slot) and
    /// the addresses of added nodes. A void change (computed on a
    /// membership another change replaced first) changes nothing, as in the
    /// protocol.
    fn apply_conf_change(&mut self, slot: u64, cc: paxos_core::proto::ConfChange) {
        let Some(cs) = cc.outcome(&self.conf_state, slot) else {
            return;
        };
        self.conf_state = cs;
        if cc.change_type == ConfChangeType::RemoveNode as i32 {
            self.addresses.remove(&cc.node_id);
        } else if let Ok(mut a) = MemberAddress::decode(cc.context) {
            if cc.change_type == ConfChangeType::AddLearner as i32 && !a.peer.is_empty() {
                a.id = cc.node_id;
                self.addresses.insert(a.id, a);
            }
        }
        self.membership_dirty = true;
    }

    fn execute(&mut self, data: &Bytes, slot: u64) -> (u64, u64, Outcome) {
        let Ok(cmd) = Command::decode(data.clone()) else {
            return (0, 0, Outcome::Invalid);
        };
        match self.sessions.lookup(cmd.client, cmd.seq) {
            Lookup::New => {}
            Lookup::Applied(outcome) => return (cmd.client, cmd.seq, outcome),
            Lookup::Forgotten => return (cmd.client, cmd.seq, Outcome::Forgotten),
        }
        let outcome = match cmd.op {
            None => Outcome::Invalid,
            Some(Op::Put(p)) => {
                self.dirty_keys.insert(p.key.clone());
                self.kv.insert(p.key, p.value);
                Outcome::Done
            }
            Some(Op::Get(key)) => Outcome::Value(self.kv.get(&key).cloned()),
            Some(Op::Delete(key)) => {
                self.kv.remove(&key);
                self.dirty_keys.insert(key);
                Outcome::Done
            }
            Some(Op::Cas(c)) => {
                let found = self.kv.get(&c.key).cloned();
                let swapped = found == c.expected;
                if swapped {
                    self.dirty_keys.insert(c.key.clone());
                    self.kv.insert(c.key, c.new);
                }
                Outcome::Cas { swapped, found }
            }
        };
        self.dirty_sessions.insert(cmd.client);
        self.since_checkpoint += 1;
        let evicted = self
            .sessions
            .record(cmd.client, cmd.seq, outcome.clone(), slot);
        self.dirty_sessions.extend(evicted);
        (cmd.client, cmd.seq, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A normal entry's data: one command.
    fn cmd(client: u64, seq: u64, op: Op) -> Bytes {
        Command::encode_op(client, seq, op)
    }

    fn normal(slot: u64, data: Bytes) -> Entry {
        Entry {
            slot,
            ballot: None,
            kind: EntryKind::Normal as i32,
            data,
        }
    }

    fn put(k: &str, v: &str) -> Op {
        Op::put(k.to_owned(), v.to_owned())
    }

    fn history() -> Vec<Entry> {
        vec![
            normal(1, cmd(1, 1, put("x", "1"))),
            Entry {
                slot: 2,
                ballot: None,
                kind: EntryKind::Noop as i32,
                data: Bytes::new(),
            },
            normal(
                3,
                cmd(
                    2,
                    1,
                    Op::Cas(Cas {
                        key: "x".into(),
                        expected: Some("1".into()),
                        new: "2".into(),
                    }),
                ),
            ),
            normal(4, cmd(1, 1, put("x", "1"))), // a retry: must not undo the swap
            normal(5, cmd(1, 2, Op::Get("x".into()))),
            normal(6, cmd(2, 2, Op::Delete("x".into()))),
            normal(7, Bytes::from_static(b"\xff\xff not a command")),
        ]
    }

    #[test]
    fn a_batch_applies_in_order_as_one_block_and_replays_alike() {
        let mut sm = StateMachine::default();
        let batch = batch_data(&[
            Command::encode_op(1, 1, put("x", "1")),
            Command::encode_op(2, 1, put("y", "2")),
            // A retry inside the same batch gets the first outcome back.
            Command::encode_op(1, 1, put("x", "other")),
            Bytes::from_static(b"\xff\xff garbage"),
            Command::encode_op(1, 2, Op::Get("x".into())),
        ]);
        let outs = sm.apply(&Entry {
            kind: EntryKind::Batch as i32,
            ..normal(1, batch)
        });
        assert_eq!(
            outs,
            vec![
                (1, 1, Outcome::Done),
                (2, 1, Outcome::Done),
                (1, 1, Outcome::Done),
                (0, 0, Outcome::Invalid),
                (1, 2, Outcome::Value(Some("1".into()))),
            ]
        );
        assert_eq!(sm.get(b"x"), Some(&Bytes::from("1")));
        assert_eq!(
            sm.unsaved_blocks().len(),
            1,
            "one block for the whole batch"
        );
        assert_eq!(sm.unsaved_blocks()[0].commands.len(), 5);
        verify_chain(sm.unsaved_blocks(), &sm).expect("the chain replays to the same state");
        // A batch that does not decode is recorded whole and changes nothing.
        let outs = sm.apply(&Entry {
            kind: EntryKind::Batch as i32,
            ..normal(2, Bytes::from_static(b"\xff\xff"))
        });
        assert_eq!(outs, vec![(0, 0, Outcome::Invalid)]);
        assert_eq!(sm.unsaved_blocks()[1].commands.len(), 1);
        verify_chain(sm.unsaved_blocks(), &sm).expect("still replays");
    }

    #[test]
    fn commands_apply_exactly_once_with_their_first_outcome() {
        let mut sm = StateMachine::default();
        let outs: Vec<_> = history().iter().map(|e| sm.apply(e)).collect();
        assert_eq!(outs[0], vec![(1, 1, Outcome::Done)]);
        assert!(outs[1].is_empty(), "a no-op carries no command");
        assert_eq!(
            outs[2],
            vec![(
                2,
                1,
                Outcome::Cas {
                    swapped: true,
                    found: Some("1".into())
                }
            )]
        );
        assert_eq!(
            outs[3],
            vec![(1, 1, Outcome::Done)],
            "the retry returns its first outcome"
        );
        assert_eq!(
            outs[4],
            vec![(1, 2, Outcome::Value(Some("2".into())))],
            "the retry did not undo the swap"
        );
        assert_eq!(outs[5], vec![(2, 2, Outcome::Done)]);
        assert_eq!(outs[6], vec![(0, 0, Outcome::Invalid)]);
        assert_eq!(sm.get(b"x"), None);
        assert_eq!(sm.applied(), 7);
        assert_eq!(sm.unsaved_blocks().len(), 7, "one block per decided slot");
        let again = normal(8, cmd(1, 1, put("x", "9")));
        assert_eq!(
            sm.apply(&again),
            vec![(1, 1, Outcome::Done)],
            "a duplicate of a recorded sequence returns its outcome"
        );
        assert_eq!(sm.get(b"x"), None, "and changes nothing");
        // Client 5 moves a whole window past its first sequence: that one
        // is forgotten, neither applied nor refused.
        let mut slot = 8;
        let mut next = |c: u64, seq: u64, v: &str| {
            slot += 1;
            normal(
                slot,
                cmd(c, seq, put(if c == 5 && seq == 1 { "x" } else { "w" }, v)),
            )
        };
        for seq in 2..=(WINDOW as u64) {
            sm.apply(&next(5, seq, "1"));
        }
        assert_eq!(
            sm.apply(&next(5, 1, "late")),
            vec![(5, 1, Outcome::Done)],
            "1 was never applied: it still is"
        );
        sm.apply(&next(5, WINDOW as u64 + 1, "2"));
        assert_eq!(
            sm.apply(&next(5, 1, "again")),
            vec![(5, 1, Outcome::Forgotten)]
        );
        assert_eq!(sm.get(b"x"), Some(&Bytes::from("late")));
    }

    #[test]
    fn a_failed_cas_swaps_nothing() {
        let mut sm = StateMachine::default();
        sm.apply(&normal(1, cmd(1, 1, put("k", "a"))));
        let out = sm.apply(&normal(
            2,
            cmd(
                1,
                2,
                Op::Cas(Cas {
                    key: "k".into(),
                    expected: Some("b".into()),
                    new: "c".into(),
                }),
            ),
        ));
        assert_eq!(
            out,
            vec![(
                1,
                2,
                Outcome::Cas {
                    swapped: false,
                    found: Some("a".into())
                }
            )]
        );
        let out = sm.apply(&normal(
            3,
            cmd(
                1,
                3,
                Op::Cas(Cas {
                    key: "new".into(),
                    expected: None,
                    new: "v".into(),
                }),
            ),
        ));
        assert_eq!(
            out,
            vec![(
                1,
                3,
                Outcome::Cas {
                    swapped: true,
                    found: None
                }
            )],
            "absent means unset"
        );
        assert_eq!(sm.get(b"k"), Some(&Bytes::from("a")));
    }

    #[test]
    fn replicas_applying_the_same_slots_hold_identical_chains() {
        let (mut a, mut b) = (StateMachine::default(), StateMachine::default());
        for e in history() {
            a.apply(&e);
            b.apply(&e);
        }
        assert_eq!(a.head(), b.head());
        let encode = |sm: &StateMachine| {
            sm.unsaved_blocks()
                .iter()
                .map(|b| b.encode_to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(encode(&a), encode(&b), "byte-identical chains");
        assert_eq!(verify_chain(a.unsaved_blocks(), &b), Ok(()));
    }

    #[test]
    fn verification_catches_tampering() {
        let mut sm = StateMachine::default();
        for e in history() {
            sm.apply(&e);
        }
        let good = sm.unsaved_blocks().to_vec();
        let mut forged = good.clone();
        forged[2].commands = vec![cmd(2, 1, put("x", "evil"))];
        assert_eq!(
            verify_chain(&forged, &sm),
            Err(ChainError::BadHash { height: 3 })
        );
        let mut resealed = forged.clone();
        resealed[2].hash = resealed[2].compute_hash();
        assert_eq!(
            verify_chain(&resealed, &sm),
            Err(ChainError::BrokenLink { height: 4 })
        );
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify_chain(&reordered, &sm),
            Err(ChainError::OutOfOrder { .. })
        ));
        let mut other = sm.clone();
        other.apply(&normal(8, cmd(9, 1, put("y", "1"))));
        assert_eq!(verify_chain(&good, &other), Err(ChainError::StateMismatch));
    }

    #[test]
    fn a_snapshot_carries_the_state_and_continues_the_same_chain() {
        use paxos_core::proto::{ConfChange, ConfChangeType};
        let mut sm = StateMachine::default();
        sm.set_membership(
            ConfState {
                voters: vec![1, 2, 3],
                learners: vec![],
                since: 0,
                ..Default::default()
            },
            Vec::new(),
        );
        for e in history() {
            sm.apply(&e);
        }
        let address = MemberAddress {
            id: 0,
            peer: "127.0.0.1:7004".into(),
            http: "127.0.0.1:8004".into(),
        };
        let after = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            since: 8,
            ..Default::default()
        };
        let cc = ConfChange {
            change_type: ConfChangeType::AddLearner as i32,
            node_id: 4,
            context: address.encode_to_vec().into(),
            result: Some(after.clone()),
            base: Some(0),
        };
        let conf_entry = |slot: u64, cc: &ConfChange| Entry {
            slot,
            ballot: None,
            kind: EntryKind::ConfChange as i32,
            data: cc.encode_to_vec().into(),
        };
        sm.apply(&conf_entry(8, &cc));
        assert_eq!(sm.conf_state(), &after);
        let changes = sm.take_changes();
        let (cs, addresses) = changes.membership.expect("membership changed");
        assert_eq!((cs, addresses[0].id), (after.clone(), 4));
        let bytes = sm.snapshot_data().encode_to_vec();
        let data = StateMachine::decode_snapshot(8, &bytes).expect("decode");
        let mut copy = StateMachine::from_snapshot(&data, sm.conf_state().clone());
        assert_eq!(copy.head(), sm.head());
        assert_eq!(copy.kv_digest(), sm.kv_digest());
        assert_eq!(copy.stored_sessions(), sm.stored_sessions());
        assert!(!copy.stored_sessions().is_empty());
        assert_eq!(copy.addresses().count(), 1);
        assert!(copy.unsaved_blocks().is_empty() && copy.base().height == 8);
        let next = normal(9, cmd(3, 1, put("z", "1")));
        sm.apply(&next);
        copy.apply(&next);
        assert_eq!(copy.head(), sm.head(), "both go on with the same chain");
        assert_eq!(copy.unsaved_blocks(), sm.unsaved_blocks());
        assert_eq!(check_links(copy.unsaved_blocks(), copy.base()), Ok(()));

        // Bad data is a typed error, never a panic.
        assert!(matches!(
            StateMachine::decode_snapshot(8, b"\xff\xff\xff"),
            Err(SnapshotError::Decode(_))
        ));
        assert!(matches!(
            StateMachine::decode_snapshot(7, &bytes),
            Err(SnapshotError::Inconsistent(_))
        ));
        let headless = SnapshotData {
            head: None,
            ..data.clone()
        };
        assert!(StateMachine::decode_snapshot(8, &headless.encode_to_vec()).is_err());
        let mut bad_session = data.clone();
        bad_session.clients[0].outcomes[0] = StoredSession {
            kind: 9,
            ..StoredSession::default()
        };
        assert!(StateMachine::decode_snapshot(8, &bad_session.encode_to_vec()).is_err());
        // A snapshot in the single-outcome form of earlier versions is
        // refused, not converted.
        let legacy = SnapshotData {
            clients: Vec::new(),
            sessions: data
                .clients
                .iter()
                .map(|c| SessionRecord {
                    client: c.client,
                    session: c.outcomes.last().cloned(),
                })
                .collect(),
            ..data
        };
        assert!(StateMachine::decode_snapshot(8, &legacy.encode_to_vec()).is_err());
    }

    /// The map is hashed, but what leaves it is in key order: two replicas
    /// that wrote the same keys in different orders have byte-identical
    /// snapshots and digests, and a checkpoint writes its keys sorted.
    #[test]
    fn snapshots_digests_and_checkpoints_are_in_key_order() {
        let keys = ["m", "a", "z", "b", "y", "c", "k0", "k1", "k10", "k2"];
        let fill = |order: &mut dyn Iterator<Item = &&str>| {
            let mut sm = StateMachine::default();
            for (i, k) in order.enumerate() {
                let slot = u64::try_from(i).expect("small") + 1;
                sm.apply(&normal(slot, cmd(7, slot, put(k, "v"))));
            }
            sm
        };
        let mut a = fill(&mut keys.iter());
        let mut b = fill(&mut keys.iter().rev());
        let (sa, sb) = (a.snapshot_data(), b.snapshot_data());
        assert_eq!(sa.kv, sb.kv);
        let snapshot_keys: Vec<&[u8]> = sa.kv.iter().map(|p| p.key.as_ref()).collect();
        let mut sorted = snapshot_keys.clone();
        sorted.sort_unstable();
        assert_eq!(snapshot_keys, sorted);
        assert_eq!(snapshot_keys.len(), keys.len());
        assert_eq!(a.kv_digest(), b.kv_digest());
        let checkpoint: Vec<Bytes> = a.take_changes().kv.into_iter().map(|(k, _)| k).collect();
        let mut sorted = checkpoint.clone();
        sorted.sort_unstable();
        assert_eq!(checkpoint, sorted);
        assert_eq!(checkpoint.len(), keys.len());
        assert_eq!(b.take_changes().kv.len(), keys.len());
    }
}
