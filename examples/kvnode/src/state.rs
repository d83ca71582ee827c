//! The replicated state machine: a key-value map with exactly-once client
//! sessions, and a hash-chained block log with one block per decided slot.
//!
//! Every replica applies the same decided entries in slot order, so every
//! replica holds a byte-identical chain; [`verify_chain`] re-derives the KV
//! state from the chain alone and checks every hash link.

use bytes::Bytes;
use paxos_core::proto::{Entry, EntryKind};
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

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
        Bytes::from(
            Command {
                client,
                seq,
                op: Some(op),
            }
            .encode_to_vec(),
        )
    }
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
}

/// A replica's KV map, client sessions and chain.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    kv: BTreeMap<Bytes, Bytes>,
    /// Per client: the last sequence applied and its outcome.
    sessions: BTreeMap<u64, (u64, Outcome)>,
    chain: Vec<Block>,
    applied: u64,
    /// What changed since the last `take_changes` (to persist).
    dirty_keys: BTreeSet<Bytes>,
    dirty_sessions: BTreeSet<u64>,
    unsaved_blocks: usize,
}

impl PartialEq for StateMachine {
    /// Replicas are equal when their state is: what is not yet saved is
    /// bookkeeping, not state.
    fn eq(&self, o: &Self) -> bool {
        (self.applied, &self.kv, &self.sessions, &self.chain)
            == (o.applied, &o.kv, &o.sessions, &o.chain)
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
    /// Sessions updated: client -> (seq, outcome).
    pub sessions: Vec<(u64, u64, Outcome)>,
    /// Blocks appended.
    pub blocks: Vec<Block>,
}

/// A session's outcome as stored.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StoredSession {
    /// The last sequence applied.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// 0 done, 1 value, 2 cas, 3 invalid.
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
            _ => return None,
        };
        Some((self.seq, o))
    }
}

/// Why a chain or a replica failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A block's hash does not match its content.
    #[error("block {height}: hash does not match its content")]
    BadHash {
        /// The block.
        height: u64,
    },
    /// A block does not point at its predecessor.
    #[error("block {height}: prev_hash does not match block {}", height - 1)]
    BrokenLink {
        /// The block.
        height: u64,
    },
    /// Heights or slots are not consecutive.
    #[error("block {height}: expected height {expected_height} for slot {slot}")]
    OutOfOrder {
        /// The block's height.
        height: u64,
        /// The height it should have.
        expected_height: u64,
        /// Its slot.
        slot: u64,
    },
    /// Replaying the chain gives a different KV state than the replica holds.
    #[error("the KV state differs from the one the chain derives")]
    StateMismatch,
}

impl StateMachine {
    /// A state machine restored from saved parts (nothing unsaved).
    pub fn from_parts(
        applied: u64,
        kv: BTreeMap<Bytes, Bytes>,
        sessions: BTreeMap<u64, (u64, Outcome)>,
        chain: Vec<Block>,
    ) -> Self {
        StateMachine {
            kv,
            sessions,
            chain,
            applied,
            ..StateMachine::default()
        }
    }

    /// Takes what changed since the last call, to persist with the `Ready`.
    pub fn take_changes(&mut self) -> Changes {
        let kv = std::mem::take(&mut self.dirty_keys)
            .into_iter()
            .map(|k| {
                let v = self.kv.get(&k).cloned();
                (k, v)
            })
            .collect();
        let sessions = std::mem::take(&mut self.dirty_sessions)
            .into_iter()
            .filter_map(|c| self.sessions.get(&c).map(|(seq, o)| (c, *seq, o.clone())))
            .collect();
        let blocks = self.chain[self.chain.len() - self.unsaved_blocks..].to_vec();
        self.unsaved_blocks = 0;
        Changes {
            applied: self.applied,
            kv,
            sessions,
            blocks,
        }
    }

    /// The last decided slot applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The chain so far.
    pub fn chain(&self) -> &[Block] {
        &self.chain
    }

    /// The head: (height, hash).
    pub fn head(&self) -> (u64, Bytes) {
        self.chain
            .last()
            .map_or((0, Bytes::from_static(&[0; 32])), |b| {
                (b.height, b.hash.clone())
            })
    }

    /// A key's value.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.kv.get(key)
    }

    /// Blocks from height `from` (1-based), at most `limit` of them.
    pub fn blocks(&self, from: u64, limit: usize) -> &[Block] {
        let start = usize::try_from(from.max(1) - 1)
            .unwrap_or(usize::MAX)
            .min(self.chain.len());
        let end = start.saturating_add(limit).min(self.chain.len());
        &self.chain[start..end]
    }

    /// A client's session: the last sequence applied and its outcome.
    pub fn session(&self, client: u64) -> Option<&(u64, Outcome)> {
        self.sessions.get(&client)
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
        let mut h = Sha256::new();
        for (k, v) in &self.kv {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        Bytes::copy_from_slice(&h.finalize())
    }

    /// Applies one decided entry (the next slot): appends its block and
    /// returns the outcome of each command it carried, with its client and
    /// sequence. A retried command returns its first outcome and changes
    /// nothing; a stale duplicate of an older one returns nothing.
    pub fn apply(&mut self, entry: &Entry) -> Vec<(u64, u64, Outcome)> {
        debug_assert_eq!(
            entry.slot,
            self.applied + 1,
            "decided entries apply in slot order"
        );
        let commands = if entry.kind == EntryKind::Normal as i32 {
            vec![entry.data.clone()]
        } else {
            Vec::new()
        };
        let mut outcomes = Vec::new();
        for data in &commands {
            if let Some(o) = self.execute(data) {
                outcomes.push(o);
            }
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
        self.chain.push(block);
        self.unsaved_blocks += 1;
        self.applied = entry.slot;
        outcomes
    }

    fn execute(&mut self, data: &Bytes) -> Option<(u64, u64, Outcome)> {
        let Ok(cmd) = Command::decode(data.clone()) else {
            return Some((0, 0, Outcome::Invalid));
        };
        if let Some((seq, outcome)) = self.sessions.get(&cmd.client) {
            if cmd.seq == *seq {
                return Some((cmd.client, cmd.seq, outcome.clone()));
            }
            if cmd.seq < *seq {
                return None;
            }
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
        self.sessions.insert(cmd.client, (cmd.seq, outcome.clone()));
        Some((cmd.client, cmd.seq, outcome))
    }
}

/// Checks every hash and link of `chain`, replays it into a fresh state
/// machine, and compares the result with `replica` (`chain verify`).
pub fn verify_chain(chain: &[Block], replica: &StateMachine) -> Result<(), ChainError> {
    let replay = replay_chain(chain)?;
    if replay.kv != replica.kv {
        return Err(ChainError::StateMismatch);
    }
    Ok(())
}

/// Checks every hash and link of `chain` and replays it into a fresh state
/// machine: the state every replica holding this chain must have.
pub fn replay_chain(chain: &[Block]) -> Result<StateMachine, ChainError> {
    let mut replay = StateMachine::default();
    for (i, block) in chain.iter().enumerate() {
        let height = i as u64 + 1;
        if block.height != height {
            return Err(ChainError::OutOfOrder {
                height: block.height,
                expected_height: height,
                slot: block.slot,
            });
        }
        if block.compute_hash() != block.hash {
            return Err(ChainError::BadHash { height });
        }
        if block.prev_hash != replay.head().1 {
            return Err(ChainError::BrokenLink { height });
        }
        // One block per decided slot, from slot 1: a gap is a forgery (and
        // must not reach `apply`, which asserts slot order).
        if block.slot != replay.applied + 1 {
            return Err(ChainError::OutOfOrder {
                height,
                expected_height: height,
                slot: block.slot,
            });
        }
        let data = block.commands.first().cloned().unwrap_or_default();
        replay.apply(&Entry {
            slot: block.slot,
            ballot: None,
            kind: block.kind,
            data,
        });
        if replay.chain.last().map(|b| &b.hash) != Some(&block.hash) {
            return Err(ChainError::BadHash { height });
        }
    }
    replay.take_changes();
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(sm.chain().len(), 7, "one block per decided slot");
        let stale = normal(8, cmd(1, 1, put("x", "9")));
        assert!(
            sm.apply(&stale).is_empty(),
            "a stale duplicate changes nothing"
        );
        assert_eq!(sm.get(b"x"), None);
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
            sm.chain()
                .iter()
                .map(|b| b.encode_to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(encode(&a), encode(&b), "byte-identical chains");
        assert_eq!(verify_chain(a.chain(), &b), Ok(()));
    }

    #[test]
    fn verification_catches_tampering() {
        let mut sm = StateMachine::default();
        for e in history() {
            sm.apply(&e);
        }
        let good = sm.chain().to_vec();
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
}
