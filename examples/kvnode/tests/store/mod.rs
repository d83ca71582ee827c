//! What the storage tests share: entries, puts applied to a state
//! machine, a Ready persisted with what applying changed, and writes to a
//! store's file behind its back.
#![allow(dead_code)]

use bytes::Bytes;
use kvnode::state::StateMachine;
use kvnode::storage::{ReadyWrite, RedbStorage};
use paxos_core::proto::{Ballot, Entry, EntryKind};

pub fn entry(slot: u64, data: &str) -> Entry {
    Entry {
        slot,
        ballot: Some(Ballot::new(1, 1)),
        kind: EntryKind::Normal as i32,
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

pub fn put(client: u64, seq: u64, k: &str, v: &str) -> Bytes {
    use kvnode::state::{Command, Op};
    Command::encode_op(client, seq, Op::put(k.to_owned(), v.to_owned()))
}

/// `n` slots each putting key `k{slot}`, applied to `sm`.
pub fn apply_puts(sm: &mut StateMachine, slots: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    apply_slots(sm, slots, |slot| put(1, slot, &format!("k{slot}"), "v"))
}

/// Persists a Ready's entries with what applying them changed.
pub fn persist_applied(s: &RedbStorage, entries: &[Entry], changes: &kvnode::state::Changes) {
    s.persist_ready(ReadyWrite {
        entries,
        changes: Some(changes),
        ..ReadyWrite::default()
    })
    .expect("persist");
}

/// One entry per slot carrying `data(slot)`, applied to `sm`.
pub fn apply_slots(
    sm: &mut StateMachine,
    slots: std::ops::RangeInclusive<u64>,
    data: impl Fn(u64) -> Bytes,
) -> Vec<Entry> {
    let entries: Vec<Entry> = slots
        .map(|slot| Entry {
            data: data(slot),
            ..entry(slot, "")
        })
        .collect();
    for e in &entries {
        sm.apply(e);
    }
    entries
}

/// Runs `f` in one committed transaction on the redb file at `path`,
/// behind the store's back (the store must be closed).
pub fn write_behind(path: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(path).expect("raw open");
    let txn = db.begin_write().expect("txn");
    f(&txn);
    txn.commit().expect("commit");
}
