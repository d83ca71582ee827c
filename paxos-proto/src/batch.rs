//! Instance batching: the commands one slot holds, and each command's place.
//!
//! A leader puts the commands proposed between two `Ready`s into one slot
//! (up to its configured limits), so the per-slot work of the protocol (an
//! `Accept` per peer, an `Accepted` back, a log record, a commit step) is
//! paid once for all of them. A slot of one command is an
//! [`EntryKind::Normal`] entry whose payload is the command; a slot of
//! several is an [`EntryKind::Batch`] entry whose payload is a header,
//! the number of commands and each command's length (4-byte little-endian
//! integers), followed by the commands back to back. [`Entry::commands`]
//! reads both kinds, and hands every command out as a slice of the entry's
//! buffer: no payload is copied.
//!
//! Lengths first, and of fixed width: every reader checks a batch (each
//! follower on receipt, each node at apply), and checking reads only the
//! header, summing its lengths in a loop without branches. Varint lengths
//! between the commands made the same check a chain of dependent loads
//! across every cache line of the payload. [`BatchBuilder`] writes the
//! format.

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
    /// The header ends before this command's length, or the lengths up to
    /// this command's claim more bytes than the payload holds.
    Truncated {
        /// The index of the command that does not fit.
        index: u32,
    },
    /// The batch holds no command.
    Empty,
    /// More commands than a [`Position`] can index.
    TooMany,
    /// Bytes follow the last command.
    Trailing,
    /// A command too long for a 4-byte length (building only).
    CommandTooLong,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { index } => {
                write!(f, "batch truncated at command {index}")
            }
            BatchError::Empty => f.write_str("batch holds no command"),
            BatchError::TooMany => f.write_str("batch holds more commands than can be indexed"),
            BatchError::Trailing => f.write_str("bytes follow the batch's last command"),
            BatchError::CommandTooLong => f.write_str("command too long for a batch"),
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
    /// The next command's length in the header (a batch only).
    length_at: usize,
    /// The next command's first byte.
    offset: usize,
    framed: bool,
    slot: u64,
    next: u32,
    count: u32,
}

impl Cursor {
    /// The next command's position and byte range within `data`, the
    /// entry's payload, which `Header::read` checked.
    #[inline]
    fn step(&mut self, data: &[u8]) -> Option<(Position, std::ops::Range<usize>)> {
        if self.next >= self.count {
            return None;
        }
        let range = if self.framed {
            let len = read_u32(data, self.length_at)?;
            self.length_at += LEN_BYTES;
            let start = self.offset;
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

/// Bytes of the count and of each length in a batch's header.
const LEN_BYTES: usize = 4;

/// The 4-byte little-endian integer at `at`, as a length.
#[inline]
fn read_u32(data: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(LEN_BYTES)?;
    let b: [u8; LEN_BYTES] = data.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

/// A batch payload's header, checked against the payload.
struct Header {
    /// Commands in the batch.
    count: u32,
    /// Where the lengths start.
    lengths_at: usize,
    /// Where the first command starts.
    commands_at: usize,
}

impl Header {
    /// Reads the header and checks that the lengths it gives cover the
    /// rest of the payload exactly. Reads nothing past the header.
    fn read(data: &[u8]) -> Result<Header, BatchError> {
        if data.is_empty() {
            return Err(BatchError::Empty);
        }
        let count = read_u32(data, 0).ok_or(BatchError::Truncated { index: 0 })?;
        if count == 0 {
            return Err(BatchError::Empty);
        }
        let table = LEN_BYTES..count.saturating_mul(LEN_BYTES).saturating_add(LEN_BYTES);
        let Some(lengths) = data.get(table.clone()) else {
            // The index of the first length missing from the header.
            let whole = (data.len() - LEN_BYTES) / LEN_BYTES;
            return Err(truncated_at(whole));
        };
        let room = data.len() - table.end;
        // At most 2^32 lengths below 2^32 each: the sum fits in a u64.
        let total: u64 = lengths
            .chunks_exact(LEN_BYTES)
            .map(|l| u64::from(u32::from_le_bytes([l[0], l[1], l[2], l[3]])))
            .sum();
        match usize::try_from(total) {
            Ok(t) if t == room => {}
            Ok(t) if t < room => return Err(BatchError::Trailing),
            _ => return Err(first_past(lengths, room)),
        }
        Ok(Header {
            count: u32::try_from(count).map_err(|_| BatchError::TooMany)?,
            lengths_at: table.start,
            commands_at: table.end,
        })
    }
}

/// [`BatchError::Truncated`] at command `index`.
fn truncated_at(index: usize) -> BatchError {
    BatchError::Truncated {
        index: u32::try_from(index).unwrap_or(u32::MAX),
    }
}

/// The error for lengths that claim more than the `room` after the
/// header: truncated at the first command that does not fit.
#[cold]
fn first_past(lengths: &[u8], room: usize) -> BatchError {
    let mut total: u64 = 0;
    for (index, l) in lengths.chunks_exact(LEN_BYTES).enumerate() {
        total += u64::from(u32::from_le_bytes([l[0], l[1], l[2], l[3]]));
        if usize::try_from(total).map_or(true, |t| t > room) {
            return truncated_at(index);
        }
    }
    truncated_at(lengths.len() / LEN_BYTES)
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
            Ok(EntryKind::Batch) => {
                let h = Header::read(&self.data)?;
                return Ok(Cursor {
                    length_at: h.lengths_at,
                    offset: h.commands_at,
                    framed: true,
                    slot: self.slot,
                    next: 0,
                    count: h.count,
                });
            }
            Ok(EntryKind::Noop | EntryKind::ConfChange) | Err(_) => (false, 0),
        };
        Ok(Cursor {
            length_at: 0,
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
            Header::read(&self.data)?;
        }
        Ok(())
    }
}

/// The bytes a command adds to a batch payload: its length in the header,
/// and itself. A batch payload is 4 bytes (the count) and these.
pub fn framed_len(command_len: usize) -> usize {
    LEN_BYTES.saturating_add(command_len)
}

/// Builds a batch payload, one command at a time.
///
/// The lengths and the commands are kept apart until the payload is
/// written, so adding a command is two appends and the payload costs one
/// copy of each command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchBuilder {
    count: u32,
    lengths: Vec<u8>,
    commands: Vec<u8>,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        BatchBuilder::default()
    }

    /// Adds a command. Fails, adding nothing, with
    /// [`BatchError::TooMany`] once the batch holds as many commands as a
    /// [`Position`] can index, or [`BatchError::CommandTooLong`] for a
    /// command of 4 GiB or more.
    #[inline]
    pub fn push(&mut self, command: &[u8]) -> Result<(), BatchError> {
        let len = u32::try_from(command.len()).map_err(|_| BatchError::CommandTooLong)?;
        self.count = self.count.checked_add(1).ok_or(BatchError::TooMany)?;
        self.lengths.extend_from_slice(&len.to_le_bytes());
        self.commands.extend_from_slice(command);
        Ok(())
    }

    /// Commands added.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// No command added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The commands added, back to back (for a batch of one, the command).
    pub fn commands(&self) -> &[u8] {
        &self.commands
    }

    /// The payload's size in bytes.
    pub fn encoded_len(&self) -> usize {
        LEN_BYTES + self.lengths.len() + self.commands.len()
    }

    /// Writes the payload.
    pub fn write_to(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.count);
        buf.put_slice(&self.lengths);
        buf.put_slice(&self.commands);
    }

    /// The payload, in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut buf);
        Bytes::from(buf)
    }

    /// Empties the builder, keeping up to `keep` bytes of its buffers'
    /// capacity.
    pub fn clear(&mut self, keep: usize) {
        self.count = 0;
        self.lengths.clear();
        self.commands.clear();
        self.lengths.shrink_to(keep);
        self.commands.shrink_to(keep);
    }
}

/// A batch payload holding `commands`.
pub fn batch_payload<C: AsRef<[u8]>>(commands: &[C]) -> Result<Bytes, BatchError> {
    let mut b = BatchBuilder::new();
    for c in commands {
        b.push(c.as_ref())?;
    }
    Ok(b.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(commands: &[&[u8]]) -> Entry {
        Entry {
            slot: 7,
            ballot: None,
            kind: EntryKind::Batch as i32,
            data: batch_payload(commands).expect("few commands"),
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
            4 + [1, 0, 300, 3].iter().map(|&l| framed_len(l)).sum::<usize>(),
            "the count, then each length and command"
        );
        // The header first: 4 commands of 1, 0, 300 and 3 bytes.
        let header: Vec<u32> = e.data[..20]
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        assert_eq!(header, [4, 1, 0, 300, 3]);
        assert_eq!(&e.data[20..21], b"a");
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
        assert!(e.command_slices().is_err());
        e.data = Bytes::new();
        assert_eq!(e.check_batch(), Err(BatchError::Empty));
        let le = |words: &[u32]| -> Bytes { words.iter().flat_map(|w| w.to_le_bytes()).collect() };
        // A count cut short, and no command at all.
        e.data = Bytes::from_static(&[2, 0, 0]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 0 }));
        e.data = le(&[0]);
        assert_eq!(e.check_batch(), Err(BatchError::Empty));
        // The header ends inside the third length.
        let mut d = le(&[3, 1, 1]).to_vec();
        d.extend_from_slice(&[1, 0]);
        e.data = d.into();
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 2 }));
        // A byte after the last command.
        let mut d = le(&[1, 2]).to_vec();
        d.extend_from_slice(b"ok!");
        e.data = d.into();
        assert_eq!(e.check_batch(), Err(BatchError::Trailing));
        // Lengths whose sum passes the payload (and would wrap 32 bits).
        let mut d = le(&[3, 1, u32::MAX, u32::MAX]).to_vec();
        d.extend_from_slice(b"abc");
        e.data = d.into();
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
        // A claimed count far beyond the header: refused from the header's
        // size alone, without reading or allocating per claimed command.
        let mut d = le(&[u32::MAX, 3]).to_vec();
        d.extend_from_slice(b"abc");
        e.data = d.into();
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
    }

    #[test]
    fn the_builder_writes_what_the_readers_read() {
        let mut b = BatchBuilder::new();
        assert!(b.is_empty());
        let long = vec![7u8; 200];
        for c in [&b"x"[..], &long, b""] {
            b.push(c).expect("few commands");
        }
        assert_eq!((b.count(), b.commands().len()), (3, 201));
        let e = Entry {
            slot: 9,
            ballot: None,
            kind: EntryKind::Batch as i32,
            data: b.to_bytes(),
        };
        assert_eq!(e.data.len(), b.encoded_len());
        let got: Vec<&[u8]> = e.command_slices().expect("built").map(|(_, c)| c).collect();
        assert_eq!(got, vec![&b"x"[..], &long[..], b""]);
        b.clear(0);
        assert!(b.is_empty());
        assert_eq!(b.encoded_len(), 4);
    }
}
