//! Instance batching: the commands one slot holds, and each command's place.
//!
//! A leader puts the commands proposed between two `Ready`s into one slot
//! (up to its configured limits), so the per-slot work of the protocol (an
//! `Accept` per peer, an `Accepted` back, a log record, a commit step) is
//! paid once for all of them. A slot of one command is an
//! [`EntryKind::Normal`] entry whose payload is the command; a slot of
//! several is an [`EntryKind::Batch`] entry whose payload frames each
//! command as a varint length and its bytes. [`Entry::commands`] reads
//! both, and hands every command out as a slice of the entry's buffer: no
//! payload is copied.

use crate::{Entry, EntryKind};
use bytes::{BufMut, Bytes};
use std::fmt;

/// Where a command sits in the log: its slot, and its index among the
/// commands that slot holds (0 for a slot of one command).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The slot holding the command.
    pub slot: u64,
    /// The command's index within the slot, in proposal order.
    pub index: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.index)
    }
}

/// A batch entry whose payload does not frame its commands. A peer or a
/// disk that hands one out is faulty; nothing is read from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// A length prefix is not a valid varint, or claims more bytes than
    /// remain (at the command of this index).
    Truncated {
        /// The index of the command that does not fit.
        index: u32,
    },
    /// The batch holds no command.
    Empty,
    /// More commands than a [`Position`] can index.
    TooMany,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { index } => {
                write!(f, "batch truncated at command {index}")
            }
            BatchError::Empty => f.write_str("batch holds no command"),
            BatchError::TooMany => f.write_str("batch holds more commands than can be indexed"),
        }
    }
}

impl std::error::Error for BatchError {}

/// One command of a decided entry, with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Where the command sits.
    pub position: Position,
    /// The command as proposed: a slice of the entry's payload.
    pub data: Bytes,
}

/// Where an iteration over an entry's commands stands.
#[derive(Clone, Debug)]
struct Cursor {
    /// The next command's first byte (its length prefix, in a batch).
    offset: usize,
    framed: bool,
    slot: u64,
    next: u32,
    count: u32,
}

impl Cursor {
    /// The next command's position and byte range within `data`, the
    /// entry's payload, which `frames` checked.
    #[inline]
    fn step(&mut self, data: &[u8]) -> Option<(Position, std::ops::Range<usize>)> {
        if self.next >= self.count {
            return None;
        }
        let range = if self.framed {
            let (len, prefix) = read_len(data.get(self.offset..)?)?;
            let start = self.offset + prefix;
            let end = start.checked_add(len).filter(|&e| e <= data.len())?;
            self.offset = end;
            start..end
        } else {
            0..data.len()
        };
        let position = Position {
            slot: self.slot,
            index: self.next,
        };
        self.next += 1;
        Some((position, range))
    }

    fn left(&self) -> usize {
        (self.count - self.next) as usize
    }
}

/// The commands of one entry, in proposal order, each a [`Bytes`] slice of
/// the entry's payload. Made by [`Entry::commands`], which checks the
/// framing first, so iterating cannot fail.
#[derive(Clone, Debug)]
pub struct Commands {
    data: Bytes,
    cursor: Cursor,
}

impl Iterator for Commands {
    type Item = Command;

    fn next(&mut self) -> Option<Command> {
        let (position, range) = self.cursor.step(&self.data)?;
        Some(Command {
            position,
            data: self.data.slice(range),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.cursor.left(), Some(self.cursor.left()))
    }
}

impl ExactSizeIterator for Commands {}

/// The commands of one entry, in proposal order, borrowed: for an
/// application that reads each command in place and keeps none (no
/// reference count is touched). Made by [`Entry::command_slices`].
#[derive(Clone, Debug)]
pub struct CommandSlices<'a> {
    data: &'a [u8],
    cursor: Cursor,
}

impl<'a> Iterator for CommandSlices<'a> {
    type Item = (Position, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(Position, &'a [u8])> {
        let (position, range) = self.cursor.step(self.data)?;
        Some((position, self.data.get(range)?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.cursor.left(), Some(self.cursor.left()))
    }
}

impl ExactSizeIterator for CommandSlices<'_> {}

/// Reads a command's length prefix, a protobuf varint: the length and the
/// bytes the prefix took. `None` for a prefix that runs past the data or
/// past ten bytes, or whose tenth byte would overflow 64 bits (as prost
/// refuses it). Lengths below 16 KiB take one or two bytes: those first.
#[inline]
fn read_len(data: &[u8]) -> Option<(usize, usize)> {
    match *data {
        [b0, ..] if b0 < 0x80 => Some((usize::from(b0), 1)),
        [b0, b1, ..] if b1 < 0x80 => Some((usize::from(b0 & 0x7f) | usize::from(b1) << 7, 2)),
        _ => read_long_len(data),
    }
}

/// `read_len` for prefixes of three bytes or more.
#[cold]
fn read_long_len(data: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in data.iter().take(10).enumerate() {
        if i == 9 && b > 1 {
            return None;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return usize::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

/// Counts the commands of a framed payload, checking that each length
/// prefix decodes and fits.
fn frames(mut data: &[u8]) -> Result<u32, BatchError> {
    let mut count: u32 = 0;
    while !data.is_empty() {
        let truncated = BatchError::Truncated { index: count };
        let (len, prefix) = read_len(data).ok_or(truncated)?;
        // The prefix is within `data`: `read_len` read it there.
        let rest = &data[prefix..];
        if len > rest.len() {
            return Err(truncated);
        }
        data = &rest[len..];
        count = count.checked_add(1).ok_or(BatchError::TooMany)?;
    }
    match count {
        0 => Err(BatchError::Empty),
        n => Ok(n),
    }
}

impl Entry {
    /// The application commands this entry holds, each with its
    /// [`Position`]: one for a normal entry, each framed one for a batch,
    /// none for a no-op or a membership change. Fails only for a batch
    /// whose payload does not frame its commands.
    pub fn commands(&self) -> Result<Commands, BatchError> {
        Ok(Commands {
            data: self.data.clone(),
            cursor: self.cursor()?,
        })
    }

    /// [`Entry::commands`], borrowed from the entry: each command as a
    /// byte slice of its payload.
    pub fn command_slices(&self) -> Result<CommandSlices<'_>, BatchError> {
        Ok(CommandSlices {
            data: &self.data,
            cursor: self.cursor()?,
        })
    }

    // Inlined: a host applies every decided entry through it, and for
    // a normal entry (one command) it is a handful of instructions.
    #[inline]
    fn cursor(&self) -> Result<Cursor, BatchError> {
        let (framed, count) = match EntryKind::try_from(self.kind) {
            Ok(EntryKind::Normal) => (false, 1),
            Ok(EntryKind::Batch) => (true, frames(&self.data)?),
            Ok(EntryKind::Noop | EntryKind::ConfChange) | Err(_) => (false, 0),
        };
        Ok(Cursor {
            offset: 0,
            framed,
            slot: self.slot,
            next: 0,
            count,
        })
    }

    /// Checks a batch entry's framing (any other entry passes).
    pub fn check_batch(&self) -> Result<(), BatchError> {
        if self.kind == EntryKind::Batch as i32 {
            frames(&self.data)?;
        }
        Ok(())
    }
}

/// The bytes a command adds to a batch payload: its length prefix and
/// itself.
pub fn framed_len(command_len: usize) -> usize {
    prost::encoding::encoded_len_varint(command_len as u64) + command_len
}

/// Appends one command to a batch payload being built.
pub fn put_framed(buf: &mut impl BufMut, command: &[u8]) {
    prost::encoding::encode_varint(command.len() as u64, buf);
    buf.put_slice(command);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn batch(commands: &[&[u8]]) -> Entry {
        let mut buf = BytesMut::new();
        for c in commands {
            put_framed(&mut buf, c);
        }
        Entry {
            slot: 7,
            ballot: None,
            kind: EntryKind::Batch as i32,
            data: buf.freeze(),
        }
    }

    #[test]
    fn a_batch_hands_out_each_command_in_order_without_copying() {
        let long = vec![9u8; 300]; // a two-byte length prefix
        let e = batch(&[b"a", b"", &long, b"xyz"]);
        let commands: Vec<Command> = e.commands().expect("framed").collect();
        let datas: Vec<&[u8]> = commands.iter().map(|c| &c.data[..]).collect();
        assert_eq!(datas, vec![&b"a"[..], b"", &long[..], b"xyz"]);
        let positions: Vec<String> = commands.iter().map(|c| c.position.to_string()).collect();
        assert_eq!(positions, ["7.0", "7.1", "7.2", "7.3"]);
        // Slices of the entry's own buffer.
        let base = e.data.as_ptr() as usize;
        let at = commands[2].data.as_ptr() as usize;
        assert!(at > base && at < base + e.data.len());
        assert_eq!(e.commands().expect("framed").len(), 4);
        let slices: Vec<(Position, &[u8])> = e.command_slices().expect("framed").collect();
        let owned: Vec<(Position, &[u8])> =
            commands.iter().map(|c| (c.position, &c.data[..])).collect();
        assert_eq!(slices, owned, "borrowed and owned agree");
        assert_eq!(
            e.data.len(),
            [1, 0, 300, 3].iter().map(|&l| framed_len(l)).sum::<usize>()
        );
    }

    #[test]
    fn other_kinds_hold_one_command_or_none() {
        let mut e = Entry {
            slot: 3,
            ballot: None,
            kind: EntryKind::Normal as i32,
            data: Bytes::from_static(b"put"),
        };
        let one: Vec<Command> = e.commands().expect("framed").collect();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].position, Position { slot: 3, index: 0 });
        assert_eq!(&one[0].data[..], b"put");
        for kind in [EntryKind::Noop, EntryKind::ConfChange] {
            e.kind = kind as i32;
            assert_eq!(e.commands().expect("framed").count(), 0);
        }
        e.kind = 99;
        assert_eq!(
            e.commands().expect("framed").count(),
            0,
            "an unknown kind holds none"
        );
    }

    #[test]
    fn a_malformed_batch_is_a_typed_error() {
        let mut e = batch(&[b"ok", b"fine"]);
        assert_eq!(e.check_batch(), Ok(()));
        // Cut inside the second command.
        e.data = e.data.slice(..e.data.len() - 1);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
        assert!(e.commands().is_err());
        e.data = Bytes::new();
        assert_eq!(e.check_batch(), Err(BatchError::Empty));
        // A length prefix that never ends, and one past the end of memory.
        e.data = Bytes::from_static(&[0xff; 11]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 0 }));
        e.data = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 0 }));
        // A tenth byte past 64 bits, which would wrap to a small length.
        e.data = Bytes::from_static(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 0 }));
    }

    #[test]
    fn length_prefixes_read_as_prost_writes_them() {
        for len in [0u64, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(len, &mut buf);
            let want = usize::try_from(len).ok().map(|l| (l, buf.len()));
            assert_eq!(read_len(&buf), want, "{len}");
            assert_eq!(read_len(&buf[..buf.len() - 1]), None, "{len} cut short");
        }
    }
}
