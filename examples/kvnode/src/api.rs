//! The JSON shapes of the HTTP API, shared by the server and the client
//! commands so the two cannot drift apart.

use crate::state::Block;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Request headers carrying a client's session: a retry with the same pair
/// is applied at most once.
pub(crate) const CLIENT_ID_HEADER: &str = "x-client-id";
pub(crate) const SEQ_HEADER: &str = "x-seq";

/// `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatusJson {
    pub(crate) id: u64,
    pub(crate) role: String,
    pub(crate) leader: Option<u64>,
    /// The leader's HTTP address, when known.
    pub(crate) leader_http: Option<String>,
    /// The promised ballot, `round.node`.
    pub(crate) ballot: String,
    pub(crate) committed: u64,
    pub(crate) applied: u64,
    pub(crate) last_slot: u64,
    pub(crate) height: u64,
    /// The chain head's hash, hex.
    pub(crate) head: String,
    pub(crate) voters: Vec<u64>,
    #[serde(default)]
    pub(crate) learners: Vec<u64>,
    /// The lowest slot the log holds: slots below it were compacted into
    /// a snapshot.
    #[serde(default)]
    pub(crate) first_slot: u64,
    /// Promises an election needs (flexible quorums; a majority unless
    /// `--phase1-quorum` set it).
    #[serde(default)]
    pub(crate) phase1_quorum: usize,
    /// Acknowledgements that commit a write (a majority unless
    /// `--phase2-quorum` set it).
    #[serde(default)]
    pub(crate) phase2_quorum: usize,
}

/// One block of `GET /chain`; byte fields are hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockJson {
    pub(crate) height: u64,
    pub(crate) slot: u64,
    pub(crate) kind: i32,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
    /// Encoded commands, hex.
    pub(crate) commands: Vec<String>,
}

/// `GET /chain?from=H&limit=L`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChainJson {
    /// The member's chain height when the page was read.
    pub(crate) height: u64,
    /// The member holds no block at or below this height: it installed a
    /// snapshot there ("pruned below"). 0 when it holds the whole chain.
    #[serde(default)]
    pub(crate) base_height: u64,
    /// The hash of the block at `base_height` (hex), which the first block
    /// held must point at.
    #[serde(default)]
    pub(crate) base_hash: String,
    pub(crate) blocks: Vec<BlockJson>,
}

/// `GET /state/digest`: the member's KV map, summarized at one height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DigestJson {
    pub(crate) applied: u64,
    pub(crate) height: u64,
    pub(crate) head: String,
    pub(crate) keys: u64,
    /// SHA-256 over the sorted map (`StateMachine::kv_digest`), hex.
    pub(crate) kv_sha256: String,
}

/// `POST /kv/{key}/cas` body: swap to `new` if the key holds `expected`
/// (absent or `null`: if the key is unset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CasRequest {
    #[serde(default)]
    pub(crate) expected: Option<String>,
    pub(crate) new: String,
}

/// `POST /kv/{key}/cas` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CasResponse {
    pub(crate) swapped: bool,
    /// The value found before (lossy UTF-8), `null` if unset.
    pub(crate) found: Option<String>,
}

/// A write's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WriteResponse {
    pub(crate) ok: bool,
    pub(crate) client: u64,
    pub(crate) seq: u64,
}

/// `POST /members`: a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberRequest {
    pub(crate) op: MemberOp,
    pub(crate) id: u64,
    /// The new node's peer address (`add` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) peer: Option<String>,
    /// The new node's HTTP address (`add` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<String>,
}

/// What a membership change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MemberOp {
    /// Add a new node as a learner.
    Add,
    /// Make a caught-up learner a voter.
    Promote,
    /// Remove a voter or learner.
    Remove,
}

/// `POST /members` answer: the membership after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembersResponse {
    pub(crate) ok: bool,
    pub(crate) voters: Vec<u64>,
    pub(crate) learners: Vec<u64>,
}

/// Every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorJson {
    pub(crate) error: String,
    /// The leader to ask instead (redirects and "not leader" answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) leader: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) leader_http: Option<String>,
    /// Why a membership change was refused, as a stable word
    /// (`learner_behind`, `conf_change_pending`, `already_member`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl From<&Block> for BlockJson {
    fn from(b: &Block) -> Self {
        BlockJson {
            height: b.height,
            slot: b.slot,
            kind: b.kind,
            prev_hash: hex(&b.prev_hash),
            hash: hex(&b.hash),
            commands: b.commands.iter().map(|c| hex(c)).collect(),
        }
    }
}

impl TryFrom<&BlockJson> for Block {
    type Error = String;

    fn try_from(b: &BlockJson) -> Result<Self, String> {
        Ok(Block {
            height: b.height,
            slot: b.slot,
            kind: b.kind,
            prev_hash: unhex(&b.prev_hash)?,
            hash: unhex(&b.hash)?,
            commands: b
                .commands
                .iter()
                .map(|c| unhex(c))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of a hex string.
pub(crate) fn unhex(s: &str) -> Result<Bytes, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd-length hex `{s}`"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("bad hex digit in `{s}`")),
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Result<Vec<u8>, String>>()
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(
            unhex("0001ABff").expect("valid"),
            Bytes::copy_from_slice(&bytes)
        );
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn blocks_survive_json() {
        let mut b = Block {
            height: 1,
            slot: 1,
            prev_hash: Bytes::from_static(&[0; 32]),
            kind: 0,
            commands: vec![Bytes::from_static(b"cmd")],
            hash: Bytes::new(),
        };
        b.hash = b.compute_hash();
        let json = serde_json::to_string(&BlockJson::from(&b)).expect("encode");
        let back: BlockJson = serde_json::from_str(&json).expect("decode");
        assert_eq!(Block::try_from(&back), Ok(b));
    }
}
