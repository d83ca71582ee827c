//! Client sessions: exactly-once writes for clients with several writes in
//! flight, in bounded memory.
//!
//! A command carries its client's id and a sequence number. Per client the
//! table keeps the outcomes of its last [`WINDOW`] applied sequences, above
//! a *floor*:
//! - a sequence among them is a retry: it gets the recorded outcome and
//!   changes nothing;
//! - a sequence above the floor that is not among them has not happened:
//!   it is applied, in whatever order the slots decide (a write whose
//!   first slot became a no-op is applied when its retry is decided);
//! - a sequence at or below the floor is *forgotten*: it may have been
//!   applied before its outcome was dropped, so it is neither applied nor
//!   answered as refused; its client learns that the outcome is unknown.
//!
//! Recording a sequence past the window drops the lowest one and raises
//! the floor to it. The table holds at most [`MAX_CLIENTS`] clients and
//! [`MAX_BYTES`] of recorded values; past either bound, the client whose
//! last command was applied longest ago is evicted. Every replica applies
//! the same slots in the same order, so every replica keeps and evicts the
//! same sessions at the same slot (snapshots carry the table).
//!
//! The price of the bound: a client that was evicted (because
//! [`MAX_CLIENTS`] other clients wrote since its last write, or the
//! values recorded outgrew [`MAX_BYTES`]) and then retries a write it
//! already made has it applied again, as a client without a session would.

use super::{Outcome, StoredSession};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};

/// Outcomes kept per client: the writes a client may have in flight at
/// once and still retry exactly once.
pub const WINDOW: usize = 32;
/// Clients kept.
pub const MAX_CLIENTS: usize = 16_384;
/// Bytes of recorded values (a CAS's found value, a read's) kept.
pub const MAX_BYTES: usize = 64 << 20;

/// One client's session as stored and snapshotted.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct StoredClient {
    /// The client.
    #[prost(uint64, tag = "1")]
    pub client: u64,
    /// Every sequence at or below it is forgotten.
    #[prost(uint64, tag = "2")]
    pub floor: u64,
    /// The slot that applied its last command (the eviction order).
    #[prost(uint64, tag = "3")]
    pub last_slot: u64,
    /// The outcome of each recorded sequence above the floor.
    #[prost(message, repeated, tag = "4")]
    pub outcomes: Vec<StoredSession>,
}

/// What the table says about one (client, sequence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Applied before, with this outcome.
    Applied(Outcome),
    /// Not applied yet: apply it.
    New,
    /// At or below the client's floor: whether it was applied is no longer
    /// known.
    Forgotten,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Client {
    floor: u64,
    last_slot: u64,
    outcomes: BTreeMap<u64, Outcome>,
}

fn value_bytes(o: &Outcome) -> usize {
    match o {
        Outcome::Value(Some(v)) | Outcome::Cas { found: Some(v), .. } => v.len(),
        _ => 0,
    }
}

/// The sessions table.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    clients: BTreeMap<u64, Client>,
    /// (last_slot, client) of every client: the eviction order.
    by_age: BTreeSet<(u64, u64)>,
    /// Bytes of values recorded.
    bytes: usize,
}

impl PartialEq for Sessions {
    fn eq(&self, other: &Self) -> bool {
        // `by_age` and `bytes` follow from `clients`.
        self.clients == other.clients
    }
}

impl Sessions {
    /// What is known of `client`'s sequence `seq`.
    pub fn lookup(&self, client: u64, seq: u64) -> Lookup {
        let Some(c) = self.clients.get(&client) else {
            return Lookup::New;
        };
        if let Some(o) = c.outcomes.get(&seq) {
            return Lookup::Applied(o.clone());
        }
        if seq <= c.floor {
            Lookup::Forgotten
        } else {
            Lookup::New
        }
    }

    /// Clients held.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is held.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Records `client`'s `seq` applied at `slot` with `outcome`; returns
    /// the clients evicted to stay within the bounds.
    pub fn record(&mut self, client: u64, seq: u64, outcome: Outcome, slot: u64) -> Vec<u64> {
        let c = self.clients.entry(client).or_default();
        self.by_age.remove(&(c.last_slot, client));
        c.last_slot = slot;
        self.by_age.insert((slot, client));
        self.bytes += value_bytes(&outcome);
        if let Some(old) = c.outcomes.insert(seq, outcome) {
            self.bytes -= value_bytes(&old);
        }
        if c.outcomes.len() > WINDOW {
            if let Some((lowest, o)) = c.outcomes.pop_first() {
                self.bytes -= value_bytes(&o);
                c.floor = c.floor.max(lowest);
            }
        }
        let mut evicted = Vec::new();
        while self.clients.len() > MAX_CLIENTS || self.bytes > MAX_BYTES {
            // The client just recorded is the youngest; it goes last, and
            // never (its own window bounds what it holds).
            let Some(&(s, oldest)) = self.by_age.first() else {
                break;
            };
            if oldest == client {
                break;
            }
            self.by_age.remove(&(s, oldest));
            if let Some(gone) = self.clients.remove(&oldest) {
                self.bytes -= gone.outcomes.values().map(value_bytes).sum::<usize>();
            }
            evicted.push(oldest);
        }
        evicted
    }

    /// `client`'s session as stored (`None`: not held).
    pub fn stored(&self, client: u64) -> Option<StoredClient> {
        let c = self.clients.get(&client)?;
        Some(StoredClient {
            client,
            floor: c.floor,
            last_slot: c.last_slot,
            outcomes: c
                .outcomes
                .iter()
                .map(|(seq, o)| StoredSession::from_outcome(*seq, o))
                .collect(),
        })
    }

    /// Every session as stored, in client order.
    pub fn all_stored(&self) -> Vec<StoredClient> {
        self.clients
            .keys()
            .filter_map(|c| self.stored(*c))
            .collect()
    }

    /// The table from stored sessions; `None` if one is inconsistent (an
    /// unknown outcome kind, a sequence at or below its floor or twice,
    /// more than the window, a client twice).
    pub fn from_stored(stored: impl IntoIterator<Item = StoredClient>) -> Option<Self> {
        let mut t = Sessions::default();
        for s in stored {
            if s.outcomes.len() > WINDOW || t.clients.contains_key(&s.client) {
                return None;
            }
            let mut c = Client {
                floor: s.floor,
                last_slot: s.last_slot,
                outcomes: BTreeMap::new(),
            };
            for o in &s.outcomes {
                let (seq, outcome) = o.to_outcome()?;
                if seq <= s.floor {
                    return None;
                }
                t.bytes = t.bytes.saturating_add(value_bytes(&outcome));
                if c.outcomes.insert(seq, outcome).is_some() {
                    return None;
                }
            }
            t.by_age.insert((c.last_slot, s.client));
            t.clients.insert(s.client, c);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn writes_in_flight_apply_once_in_any_order_and_old_ones_are_forgotten() {
        let mut t = Sessions::default();
        // Sequences 2 and 3 decided before 1 (1's first slot became a no-op).
        assert_eq!(t.lookup(7, 2), Lookup::New);
        t.record(7, 2, Outcome::Done, 10);
        t.record(7, 3, Outcome::Done, 11);
        assert_eq!(t.lookup(7, 1), Lookup::New, "1 never happened: apply it");
        t.record(7, 1, Outcome::Done, 12);
        assert_eq!(t.lookup(7, 1), Lookup::Applied(Outcome::Done));
        assert_eq!(t.lookup(7, 3), Lookup::Applied(Outcome::Done));
        // Past the window the lowest outcomes go, and what is below the
        // floor is unknown, never "new".
        for seq in 4..=(WINDOW as u64 + 3) {
            t.record(7, seq, Outcome::Done, 12 + seq);
        }
        assert_eq!(t.lookup(7, 1), Lookup::Forgotten);
        assert_eq!(t.lookup(7, 3), Lookup::Forgotten);
        assert_eq!(t.lookup(7, 4), Lookup::Applied(Outcome::Done));
        assert_eq!(t.lookup(7, WINDOW as u64 + 4), Lookup::New);
        let back = Sessions::from_stored(t.all_stored()).expect("round trip");
        assert_eq!(back, t);
        assert_eq!(back.lookup(7, 1), Lookup::Forgotten);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_applied() {
        let mut t = Sessions::default();
        let mut evicted = Vec::new();
        for client in 1..=(MAX_CLIENTS as u64 + 10) {
            evicted.extend(t.record(client, 1, Outcome::Done, client));
        }
        assert_eq!(t.len(), MAX_CLIENTS);
        assert_eq!(evicted, (1..=10).collect::<Vec<u64>>());
        // A client that writes again is young again.
        t.record(11, 2, Outcome::Done, 1_000_000);
        let next = t.record(999_999, 1, Outcome::Done, 1_000_001);
        assert_eq!(next, vec![12]);
        // Bytes: large recorded values evict too.
        let mut t = Sessions::default();
        let big = Bytes::from(vec![0u8; 1 << 20]);
        for client in 1..=80u64 {
            t.record(client, 1, Outcome::Value(Some(big.clone())), client);
        }
        assert!(t.bytes <= MAX_BYTES);
        assert_eq!(t.len(), MAX_BYTES / (1 << 20));
    }

    #[test]
    fn inconsistent_stored_sessions_are_refused() {
        let ok = StoredSession::from_outcome(5, &Outcome::Done);
        let s = |floor, outcomes: Vec<StoredSession>| StoredClient {
            client: 1,
            floor,
            last_slot: 1,
            outcomes,
        };
        assert!(Sessions::from_stored([s(4, vec![ok.clone()])]).is_some());
        assert!(Sessions::from_stored([s(5, vec![ok.clone()])]).is_none());
        assert!(Sessions::from_stored([s(0, vec![ok.clone(); WINDOW + 1])]).is_none());
        assert!(Sessions::from_stored([s(0, vec![ok.clone(), ok.clone()])]).is_none());
        assert!(Sessions::from_stored([s(0, vec![ok.clone()]), s(0, vec![ok])]).is_none());
        let bad = StoredSession {
            kind: 9,
            ..StoredSession::default()
        };
        assert!(Sessions::from_stored([s(0, vec![bad])]).is_none());
    }
}
