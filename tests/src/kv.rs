//! The replicated state machine the simulator runs on every node: a small
//! key-value map with exactly-once client sessions.

use crate::linearizability::{Op, Ret};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// A client command: who sent it, its sequence number, and the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// The client.
    pub client: u64,
    /// Increases by one per operation of that client; retries reuse it.
    pub seq: u64,
    /// What to do.
    pub op: Op,
}

const ENCODED_LEN: usize = 33;

impl Command {
    /// The command's bytes, as proposed.
    pub fn encode(&self) -> Bytes {
        let (tag, key, value) = match self.op {
            Op::Put { key, value } => (1u8, key, value),
            Op::Get { key } => (2, key, 0),
            Op::Delete { key } => (3, key, 0),
        };
        let mut b = BytesMut::with_capacity(ENCODED_LEN);
        b.put_u64(self.client);
        b.put_u64(self.seq);
        b.put_u8(tag);
        b.put_u64(key);
        b.put_u64(value);
        b.freeze()
    }

    /// Parses a command; `None` for anything else.
    pub fn decode(data: &[u8]) -> Option<Command> {
        if data.len() != ENCODED_LEN {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(data[i..i + 8].try_into().unwrap_or_default());
        let (key, value) = (word(17), word(25));
        let op = match data[16] {
            1 => Op::Put { key, value },
            2 => Op::Get { key },
            3 => Op::Delete { key },
            _ => return None,
        };
        Some(Command {
            client: word(0),
            seq: word(8),
            op,
        })
    }
}

/// The key-value state of one replica.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    map: BTreeMap<u64, u64>,
    /// Per client: the last sequence applied and its result (exactly-once).
    sessions: BTreeMap<u64, (u64, Ret)>,
}

impl KvState {
    /// The value of `key` now (a read served outside the log).
    pub fn get(&self, key: u64) -> Option<u64> {
        self.map.get(&key).copied()
    }

    /// Applies a command; a retried command returns its first result and
    /// changes nothing. `None` for a stale duplicate of an older command.
    pub fn apply(&mut self, cmd: &Command) -> Option<Ret> {
        if let Some(&(seq, ret)) = self.sessions.get(&cmd.client) {
            if cmd.seq == seq {
                return Some(ret);
            }
            if cmd.seq < seq {
                return None;
            }
        }
        let ret = match cmd.op {
            Op::Put { key, value } => {
                self.map.insert(key, value);
                Ret::Ok
            }
            Op::Get { key } => Ret::Value(self.map.get(&key).copied()),
            Op::Delete { key } => {
                self.map.remove(&key);
                Ret::Ok
            }
        };
        self.sessions.insert(cmd.client, (cmd.seq, ret));
        Some(ret)
    }

    /// The state as snapshot bytes (deterministic: maps are ordered).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(16 + 16 * self.map.len() + 25 * self.sessions.len());
        b.put_u64(self.map.len() as u64);
        for (&k, &v) in &self.map {
            b.put_u64(k);
            b.put_u64(v);
        }
        b.put_u64(self.sessions.len() as u64);
        for (&client, &(seq, ret)) in &self.sessions {
            b.put_u64(client);
            b.put_u64(seq);
            let (tag, v) = match ret {
                Ret::Ok => (0, 0),
                Ret::Value(None) => (1, 0),
                Ret::Value(Some(v)) => (2, v),
            };
            b.put_u8(tag);
            b.put_u64(v);
        }
        b.freeze()
    }

    /// Parses snapshot bytes; `None` for anything else (a torn or
    /// misassembled snapshot must not pass for a state).
    pub fn decode(mut data: &[u8]) -> Option<KvState> {
        use bytes::Buf;
        fn u64_of(d: &mut &[u8]) -> Option<u64> {
            (d.remaining() >= 8).then(|| d.get_u64())
        }
        let mut kv = KvState::default();
        for _ in 0..u64_of(&mut data)? {
            let k = u64_of(&mut data)?;
            kv.map.insert(k, u64_of(&mut data)?);
        }
        for _ in 0..u64_of(&mut data)? {
            let client = u64_of(&mut data)?;
            let seq = u64_of(&mut data)?;
            let tag = (data.remaining() >= 1).then(|| data.get_u8())?;
            let v = u64_of(&mut data)?;
            let ret = match tag {
                0 => Ret::Ok,
                1 => Ret::Value(None),
                2 => Ret::Value(Some(v)),
                _ => return None,
            };
            kv.sessions.insert(client, (seq, ret));
        }
        data.is_empty().then_some(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_torn_bytes_are_rejected() {
        let mut kv = KvState::default();
        for (client, seq, op) in [
            (1, 1, Op::Put { key: 3, value: 9 }),
            (2, 1, Op::Get { key: 3 }),
            (2, 2, Op::Get { key: 4 }),
            (1, 2, Op::Delete { key: 7 }),
        ] {
            kv.apply(&Command { client, seq, op });
        }
        let bytes = kv.encode();
        let back = KvState::decode(&bytes).expect("round trip");
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.get(3), Some(9));
        assert!(KvState::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(KvState::decode(&longer).is_none());
    }

    #[test]
    fn commands_round_trip_and_garbage_is_rejected() {
        for op in [
            Op::Put { key: 3, value: 9 },
            Op::Get { key: 1 },
            Op::Delete { key: 2 },
        ] {
            let c = Command {
                client: 7,
                seq: 11,
                op,
            };
            assert_eq!(Command::decode(&c.encode()), Some(c));
        }
        assert_eq!(Command::decode(b"nope"), None);
        let mut bad = Command {
            client: 1,
            seq: 1,
            op: Op::Get { key: 1 },
        }
        .encode()
        .to_vec();
        bad[16] = 9;
        assert_eq!(Command::decode(&bad), None);
    }

    #[test]
    fn retries_apply_once() {
        let mut kv = KvState::default();
        let put = Command {
            client: 1,
            seq: 1,
            op: Op::Put { key: 1, value: 5 },
        };
        assert_eq!(kv.apply(&put), Some(Ret::Ok));
        let get = Command {
            client: 2,
            seq: 1,
            op: Op::Get { key: 1 },
        };
        assert_eq!(kv.apply(&get), Some(Ret::Value(Some(5))));
        let put2 = Command {
            client: 1,
            seq: 2,
            op: Op::Put { key: 1, value: 6 },
        };
        assert_eq!(kv.apply(&put2), Some(Ret::Ok));
        assert_eq!(
            kv.apply(&get),
            Some(Ret::Value(Some(5))),
            "retry returns the first result"
        );
        assert_eq!(kv.apply(&put), None, "stale duplicate ignored");
        let get2 = Command {
            client: 2,
            seq: 2,
            op: Op::Get { key: 1 },
        };
        assert_eq!(kv.apply(&get2), Some(Ret::Value(Some(6))));
    }
}
