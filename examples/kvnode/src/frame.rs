//! Peer framing: a 4-byte big-endian length, then a prost-encoded
//! [`PeerFrame`] carrying the cluster id and one protocol message.
//!
//! The decoder is incremental (a partial frame waits for more bytes) and
//! strict: an oversize or undecodable frame is an error for which the caller
//! closes that connection only; a frame from another cluster or an unknown
//! node is rejected (and counted) without touching the node.

use bytes::{Buf, BufMut, BytesMut};
use paxos_core::proto::Message;
use prost::Message as _;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// The envelope of every peer frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerFrame {
    /// Frames of another cluster are refused.
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    /// The protocol message.
    #[prost(message, optional, tag = "2")]
    pub message: Option<Message>,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the limit: close the connection.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame's bytes are not a `PeerFrame`: close the connection.
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A frame of another cluster.
    #[error("frame of cluster {got}, this is cluster {want}")]
    WrongCluster {
        /// The frame's cluster.
        got: u64,
        /// Ours.
        want: u64,
    },
    /// A frame whose sender is not a member, or addressed elsewhere.
    #[error("frame from unknown node {from} to {to}")]
    UnknownNode {
        /// The claimed sender.
        from: u64,
        /// The addressee.
        to: u64,
    },
    /// A frame without a message.
    #[error("frame carries no message")]
    Empty,
    /// A frame claiming a sender other than the member the connection's
    /// certificate names.
    #[error("frame claims to be from node {claimed}, not the member this connection's certificate names")]
    Impersonation {
        /// The claimed sender.
        claimed: u64,
    },
}

/// How much a partial frame's buffer grows at a time: memory follows the
/// bytes that arrived, not the length a prefix announces.
const READ_CHUNK: usize = 64 << 10;

/// Encodes and decodes peer frames up to `max_frame` bytes.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }

    /// Appends `frame` to `dst`.
    pub fn encode(&self, frame: &PeerFrame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = frame.encoded_len();
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        dst.reserve(PREFIX + len);
        dst.put_u32(len as u32);
        // Capacity was reserved above, so encoding cannot run out of room.
        frame.encode(dst).map_err(|_| FrameError::TooLarge {
            len,
            max: self.max_frame,
        })?;
        Ok(())
    }

    /// Takes the next whole frame from `src`: `Ok(None)` until enough bytes
    /// arrived. Refuses an oversize length before buffering its body.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<PeerFrame>, FrameError> {
        if src.len() < PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        // `len <= max_frame`, so the sum does not overflow.
        if src.len() < PREFIX + len {
            src.reserve((PREFIX + len - src.len()).min(READ_CHUNK));
            return Ok(None);
        }
        src.advance(PREFIX);
        let body = src.split_to(len).freeze();
        Ok(Some(PeerFrame::decode(body)?))
    }
}

/// Accepts a decoded frame for node `me` of cluster `cluster_id`, from a
/// sender `is_member` knows: returns its message, or why it is refused.
pub fn admit(
    frame: PeerFrame,
    cluster_id: u64,
    me: u64,
    is_member: impl Fn(u64) -> bool,
) -> Result<Message, FrameError> {
    if frame.cluster_id != cluster_id {
        return Err(FrameError::WrongCluster {
            got: frame.cluster_id,
            want: cluster_id,
        });
    }
    let message = frame.message.ok_or(FrameError::Empty)?;
    if message.to != me || message.from == me || !is_member(message.from) {
        return Err(FrameError::UnknownNode {
            from: message.from,
            to: message.to,
        });
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::proto::{Ballot, Body, Heartbeat};

    fn frame(cluster_id: u64, from: u64, to: u64) -> PeerFrame {
        let body = Body::Heartbeat(Heartbeat {
            ballot: Some(Ballot::new(2, from)),
            committed: 7,
            seq: 1,
        });
        PeerFrame {
            cluster_id,
            message: Some(Message::new(from, to, body)),
        }
    }

    #[test]
    fn frames_round_trip_even_when_split_anywhere() {
        let codec = FrameCodec::new(1 << 20);
        let mut wire = BytesMut::new();
        for to in [2, 3] {
            codec.encode(&frame(9, 1, to), &mut wire).expect("encode");
        }
        let all = wire.freeze();
        for cut in 0..all.len() {
            let mut src = BytesMut::from(&all[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut src).expect("valid") {
                got.push(f);
            }
            src.extend_from_slice(&all[cut..]);
            while let Some(f) = codec.decode(&mut src).expect("valid") {
                got.push(f);
            }
            assert_eq!(got, vec![frame(9, 1, 2), frame(9, 1, 3)], "split at {cut}");
            assert!(src.is_empty());
        }
    }

    #[test]
    fn a_length_prefix_reserves_no_more_than_what_arrives() {
        let codec = FrameCodec::new(8 << 20);
        // Announces 8 MiB, sends four bytes of it.
        let mut src = BytesMut::new();
        src.extend_from_slice(&(8u32 << 20).to_be_bytes());
        src.extend_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(codec.decode(&mut src), Ok(None)));
        assert!(src.capacity() <= 2 * READ_CHUNK, "{}", src.capacity());
    }

    #[test]
    fn oversize_and_garbage_are_typed_errors() {
        let codec = FrameCodec::new(64);
        let mut src = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(
            matches!(codec.decode(&mut src), Err(FrameError::TooLarge { .. })),
            "refused before buffering"
        );
        let mut src = BytesMut::new();
        src.put_u32(3);
        src.put_slice(&[0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::Malformed(_))
        ));
        let mut big = frame(9, 1, 2);
        if let Some(Message {
            body: Some(Body::Heartbeat(h)),
            ..
        }) = big.message.as_mut()
        {
            h.seq = u64::MAX;
            h.committed = u64::MAX;
        }
        let tiny = FrameCodec::new(8);
        assert!(matches!(
            tiny.encode(&big, &mut BytesMut::new()),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn admission_checks_cluster_sender_and_recipient() {
        let members = [1, 2, 3];
        assert!(admit(frame(9, 1, 2), 9, 2, |id| members.contains(&id)).is_ok());
        assert!(matches!(
            admit(frame(8, 1, 2), 9, 2, |id| members.contains(&id)),
            Err(FrameError::WrongCluster { got: 8, want: 9 })
        ));
        assert!(matches!(
            admit(frame(9, 7, 2), 9, 2, |id| members.contains(&id)),
            Err(FrameError::UnknownNode { from: 7, .. })
        ));
        assert!(matches!(
            admit(frame(9, 1, 3), 9, 2, |id| members.contains(&id)),
            Err(FrameError::UnknownNode { to: 3, .. })
        ));
        assert!(matches!(
            admit(frame(9, 2, 2), 9, 2, |id| members.contains(&id)),
            Err(FrameError::UnknownNode { .. })
        ));
        let empty = PeerFrame {
            cluster_id: 9,
            message: None,
        };
        assert!(matches!(
            admit(empty, 9, 2, |id| members.contains(&id)),
            Err(FrameError::Empty)
        ));
    }
}
