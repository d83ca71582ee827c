//! RedbStorage and hostile files: what is not a database, stores of
//! earlier formats, corrupt entries and damaged pages are typed errors,
//! never a panic, and a store refused is kept as it was.

mod store;

use kvnode::state::StateMachine;
use kvnode::storage::RedbStorage;
use paxos_core::proto::{Ballot, HardState, ProstMessage};
use paxos_core::{Storage, StorageError};

use store::*;

#[test]
fn a_file_that_is_not_a_database_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB; 10_000]).expect("write");
    let err = RedbStorage::open(&path).expect_err("garbage must not open");
    assert!(err.to_string().contains("cannot open"), "{err}");
    let missing = dir.path().join("no/such/dir/node.redb");
    assert!(RedbStorage::open(missing).is_err());
}

#[test]
fn a_stored_slot_past_the_limit_is_corruption_not_an_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    // The compacted prefix and the applied slot set to the top of `u64`
    // behind the store's back: `first_slot` would be `u64::MAX + 1`.
    write_behind(&path, |txn| {
        let mut t = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .expect("table");
        for key in ["compacted", "applied"] {
            t.insert(key, u64::MAX.to_be_bytes().as_slice())
                .expect("insert");
        }
    });
    let s = RedbStorage::open(&path).expect("reopen");
    for got in [s.first_slot(), s.last_slot(), s.compacted()] {
        assert!(
            matches!(&got, Err(StorageError::Corrupt(why)) if why.contains("past the limit")),
            "{got:?}"
        );
    }
    assert!(matches!(
        s.load_state_machine(),
        Err(StorageError::Corrupt(_))
    ));
}

#[test]
fn a_store_with_sessions_of_the_single_outcome_form_is_refused_and_kept() {
    use kvnode::state::{Outcome, StoredSession};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    write_behind(&path, |txn| {
        let mut t = txn
            .open_table(redb::TableDefinition::<u64, &[u8]>::new("sessions"))
            .expect("table");
        let old = StoredSession::from_outcome(5, &Outcome::Done).encode_to_vec();
        t.insert(9u64, old.as_slice()).expect("insert");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("earlier kvnode"), "{err}");
    // The old sessions are still there, for the kvnode that wrote them.
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::open(&path).expect("raw open");
    let txn = db.begin_read().expect("txn");
    let t = txn
        .open_table(redb::TableDefinition::<u64, &[u8]>::new("sessions"))
        .expect("table");
    assert_eq!(t.len().expect("len"), 1);
}

/// A store an earlier kvnode wrote (entries, no format mark) is refused
/// and left as it was; a store marked with another format too.
#[test]
fn a_store_of_an_earlier_entry_format_is_refused_and_kept() {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    drop(RedbStorage::open(&path).expect("open"));
    let raw = |f: &dyn Fn(&redb::WriteTransaction)| write_behind(&path, f);
    let meta = redb::TableDefinition::<&str, &[u8]>::new("meta");
    let entries = redb::TableDefinition::<u64, &[u8]>::new("entries");
    raw(&|txn| {
        txn.open_table(meta)
            .expect("meta")
            .remove("entry_format")
            .expect("unmark");
        let old = entry(1, "a batch of an earlier kvnode").encode_to_vec();
        let mut t = txn.open_table(entries).expect("entries");
        t.insert(1u64, old.as_slice()).expect("insert");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("earlier kvnode"), "{err}");
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_read().expect("txn");
        assert_eq!(
            txn.open_table(entries)
                .expect("entries")
                .len()
                .expect("len"),
            1
        );
        let t = txn.open_table(meta).expect("meta");
        assert!(
            t.get("entry_format").expect("get").is_none(),
            "left unmarked"
        );
    }
    raw(&|txn| {
        let mut t = txn.open_table(meta).expect("meta");
        t.insert("entry_format", b"v9".as_slice()).expect("mark");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("does not read"), "{err}");
    // The format before batch trailers: its batches would read as garbage.
    raw(&|txn| {
        let mut t = txn.open_table(meta).expect("meta");
        t.insert("entry_format", b"library-batches".as_slice())
            .expect("mark");
    });
    let err = RedbStorage::open(&path).expect_err("refused");
    assert!(err.to_string().contains("length in front"), "{err}");
}

#[test]
fn a_corrupt_entry_is_reported_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.redb");
    let s = RedbStorage::open(&path).expect("open");
    s.persist(None, &[entry(1, "ok"), entry(2, "ok")])
        .expect("persist");
    drop(s);
    // Written behind the store's back: slot 3 holding another slot's entry,
    // and slot 5 holding bytes that are no entry at all.
    write_behind(&path, |txn| {
        let mut t = txn
            .open_table(redb::TableDefinition::<u64, &[u8]>::new("entries"))
            .expect("table");
        use paxos_core::proto::ProstMessage;
        t.insert(3u64, entry(7, "misplaced").encode_to_vec().as_slice())
            .expect("insert");
        t.insert(5u64, [0xFFu8, 0xFF, 0xFF].as_slice())
            .expect("insert");
    });
    let s = RedbStorage::open(&path).expect("reopen");
    assert!(matches!(
        s.entries(3, 3, 10, 1 << 20),
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        s.entries(5, 5, 10, 1 << 20),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(
        s.entries(1, 2, 10, 1 << 20).expect("healthy slots").len(),
        2
    );
}

/// SplitMix64, for the damaged-file test's flips.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_damaged_file_is_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.redb");
    {
        let s = RedbStorage::open(&good).expect("open");
        let mut sm = StateMachine::default();
        let entries = apply_puts(&mut sm, 1..=40);
        s.persist(
            Some(&HardState {
                promised: Some(Ballot::new(2, 1)),
                committed: 40,
            }),
            &[],
        )
        .expect("hard state");
        persist_applied(&s, &entries, &sm.take_changes());
    }
    let bytes = std::fs::read(&good).expect("read");
    // Flips land where the file holds something: zeroed free space is
    // not worth a try.
    let used: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
    let (mut state, mut refused, mut opened) = (7u64, 0, 0);
    for round in 0..400 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + splitmix(&mut state) % 8 {
            let i = usize::try_from(splitmix(&mut state) % used.len() as u64).expect("index");
            damaged[used[i]] ^= 1 << (splitmix(&mut state) % 8);
        }
        let path = dir.path().join(format!("damaged-{round}.redb"));
        std::fs::write(&path, &damaged).expect("write");
        // Every read a restart makes: each answers or is a typed error.
        let outcome = std::panic::catch_unwind(|| match RedbStorage::open(&path) {
            Err(e) => Err(e.to_string()),
            Ok(s) => {
                let _ = s.initial_state();
                let _ = s.load_state_machine();
                let _ = s.entries(1, 40, 100, 1 << 20);
                let _ = (s.first_slot(), s.last_slot(), s.snapshot_slot());
                Ok(())
            }
        });
        match outcome {
            Ok(Ok(())) => opened += 1,
            Ok(Err(e)) => {
                assert!(e.contains("damaged") || e.contains("cannot open"), "{e}");
                refused += 1;
            }
            Err(_) => panic!("round {round}: the store panicked"),
        }
        let _ = std::fs::remove_file(&path);
    }
    eprintln!("{refused} damaged files refused at open, {opened} opened");
    assert!(refused > 0);
}
