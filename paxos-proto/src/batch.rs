//! Instance batching: the commands one slot holds, and each command's place.
//!
//! A leader puts the commands proposed between two `Ready`s into one slot
//! (up to its configured limits), so the per-slot work of the protocol (an
//! `Accept` per peer, an `Accepted` back, a log record, a commit step) is
//! paid once for all of them. A slot of one command is an
//! [`EntryKind::Normal`] entry whose payload is the command; a slot of
//! several is an [`EntryKind::Batch`] entry whose payload is the commands
//! back to back, then a trailer: each command's length, then the number of
//! commands (4-byte little-endian integers). [`Entry::commands`] reads both
//! kinds, and hands every command out as a slice of the entry's buffer: no
//! payload is copied.
//!
//! Lengths apart from the commands, and of fixed width: every reader checks
//! a batch (each follower on receipt, each node at apply), and checking
//! reads only the trailer, summing its lengths in a loop without branches.
//! Varint lengths between the commands made the same check a chain of
//! dependent loads across every cache line of the payload. The trailer
//! comes last so that a writer can put each command in place as it comes
//! and the lengths once the count is known (as a block of a sorted-string
//! table ends with its restart offsets and their count). [`BatchBuilder`]
//! writes the format.

use crate::{Entry, EntryKind};
use bytes::{BufMut, Bytes, BytesMut};
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
    /// The trailer is too short to hold this command's length, or the
    /// lengths up to this command's claim more bytes than the payload
    /// holds before its trailer.
    Truncated {
        /// The index of the command that does not fit.
        index: u32,
    },
    /// The batch holds no command.
    Empty,
    /// More commands than a [`Position`] can index.
    TooMany,
    /// Bytes follow the last command, before the trailer.
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
    /// The next command's length in the trailer (a batch only).
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
    /// entry's payload, which `Trailer::read` checked.
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
    /// The commands not handed out yet, back to back (a normal entry: its
    /// one command).
    rest: &'a [u8],
    /// Their lengths, from a batch's trailer (none for a normal entry).
    lengths: std::slice::ChunksExact<'a, u8>,
    framed: bool,
    slot: u64,
    next: u32,
    count: u32,
}

impl<'a> Iterator for CommandSlices<'a> {
    type Item = (Position, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(Position, &'a [u8])> {
        if self.next >= self.count {
            return None;
        }
        let command = if self.framed {
            let l = self.lengths.next()?;
            let len = usize::try_from(u32::from_le_bytes([l[0], l[1], l[2], l[3]])).ok()?;
            let (command, rest) = self.rest.split_at_checked(len)?;
            self.rest = rest;
            command
        } else {
            self.rest
        };
        let position = Position {
            slot: self.slot,
            index: self.next,
        };
        self.next += 1;
        Some((position, command))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count - self.next) as usize;
        (left, Some(left))
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

/// A batch payload's trailer, checked against the payload.
struct Trailer {
    /// Commands in the batch.
    count: u32,
    /// Where the lengths start (the commands end).
    lengths_at: usize,
}

impl Trailer {
    /// Reads the trailer and checks that the lengths it gives cover the
    /// payload before it exactly. Reads nothing but the trailer.
    fn read(data: &[u8]) -> Result<Trailer, BatchError> {
        let Some(count_at) = data.len().checked_sub(LEN_BYTES) else {
            return Err(match data.len() {
                0 => BatchError::Empty,
                _ => BatchError::Truncated { index: 0 },
            });
        };
        let count = read_u32(data, count_at).ok_or(BatchError::Truncated { index: 0 })?;
        if count == 0 {
            return Err(BatchError::Empty);
        }
        let Some(lengths_at) = count
            .checked_mul(LEN_BYTES)
            .and_then(|table| count_at.checked_sub(table))
        else {
            // The index of the first length the trailer has no room for.
            return Err(truncated_at(count_at / LEN_BYTES));
        };
        let lengths = &data[lengths_at..count_at];
        // At most 2^32 lengths below 2^32 each: the sum fits in a u64.
        let total: u64 = lengths
            .chunks_exact(LEN_BYTES)
            .map(|l| u64::from(u32::from_le_bytes([l[0], l[1], l[2], l[3]])))
            .sum();
        match usize::try_from(total) {
            Ok(t) if t == lengths_at => {}
            Ok(t) if t < lengths_at => return Err(BatchError::Trailing),
            _ => return Err(first_past(lengths, lengths_at)),
        }
        Ok(Trailer {
            count: u32::try_from(count).map_err(|_| BatchError::TooMany)?,
            lengths_at,
        })
    }
}

/// [`BatchError::Truncated`] at command `index`.
fn truncated_at(index: usize) -> BatchError {
    BatchError::Truncated {
        index: u32::try_from(index).unwrap_or(u32::MAX),
    }
}

/// The error for lengths that claim more than the `room` before the
/// trailer: truncated at the first command that does not fit.
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
        let c = self.cursor()?;
        let (rest, lengths) = match self.data.split_at_checked(c.length_at) {
            Some((commands, trailer)) if c.framed => (commands, trailer),
            _ => (&self.data[..], &[][..]),
        };
        Ok(CommandSlices {
            rest,
            lengths: lengths.chunks_exact(LEN_BYTES),
            framed: c.framed,
            slot: c.slot,
            next: 0,
            count: c.count,
        })
    }

    // Inlined: a host applies every decided entry through it, and for
    // a normal entry (one command) it is a handful of instructions.
    #[inline]
    fn cursor(&self) -> Result<Cursor, BatchError> {
        let (framed, count) = match EntryKind::try_from(self.kind) {
            Ok(EntryKind::Normal) => (false, 1),
            Ok(EntryKind::Batch) => {
                let t = Trailer::read(&self.data)?;
                return Ok(Cursor {
                    length_at: t.lengths_at,
                    offset: 0,
                    framed: true,
                    slot: self.slot,
                    next: 0,
                    count: t.count,
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
            Trailer::read(&self.data)?;
        }
        Ok(())
    }
}

/// The bytes a command adds to a batch payload: itself, and its length in
/// the trailer. A batch payload is these and 4 bytes (the count).
pub fn framed_len(command_len: usize) -> usize {
    LEN_BYTES.saturating_add(command_len)
}

/// Builds batch payloads, one command at a time.
///
/// Each command is written in place at the end of the builder's buffer,
/// and its length set aside; [`BatchBuilder::finish`] appends the trailer
/// and splits the payload off. Payloads built one after another share the
/// buffer's allocation (see [`BatchBuilder::with_capacity`]), so a batch
/// costs one copy of each command and no allocation of its own.
#[derive(Clone, Debug, Default, Hash)]
pub struct BatchBuilder {
    count: u32,
    lengths: Vec<u8>,
    buf: BytesMut,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        BatchBuilder::default()
    }

    /// An empty builder whose buffer holds `capacity` bytes; when payloads
    /// split off it fill the buffer, the next one starts a fresh buffer of
    /// that size (up to 128 KiB).
    pub fn with_capacity(capacity: usize) -> Self {
        BatchBuilder {
            buf: BytesMut::with_capacity(capacity),
            ..BatchBuilder::default()
        }
    }

    /// Adds a command. Fails, adding nothing, with
    /// [`BatchError::TooMany`] once the batch holds as many commands as a
    /// [`Position`] can index, or [`BatchError::CommandTooLong`] for a
    /// command of 4 GiB or more.
    #[inline]
    pub fn push(&mut self, command: &[u8]) -> Result<(), BatchError> {
        let len = u32::try_from(command.len()).map_err(|_| BatchError::CommandTooLong)?;
        self.count = self.count.checked_add(1).ok_or(BatchError::TooMany)?;
        self.buf.extend_from_slice(command);
        self.lengths.extend_from_slice(&len.to_le_bytes());
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

    /// The commands added, back to back.
    pub fn commands(&self) -> &[u8] {
        &self.buf
    }

    /// The payload's size in bytes, once finished.
    pub fn encoded_len(&self) -> usize {
        self.buf.len() + self.lengths.len() + LEN_BYTES
    }

    /// The batch payload of the commands added; the builder is empty
    /// again. (A batch of no command is one no reader accepts.)
    pub fn finish(&mut self) -> Bytes {
        self.buf.reserve(self.lengths.len() + LEN_BYTES);
        self.buf.extend_from_slice(&self.lengths);
        self.buf.put_u32_le(self.count);
        self.reset();
        self.buf.split().freeze()
    }

    /// For a builder holding one command: the command itself, as the
    /// payload of a normal entry; the builder is empty again. `None`, and
    /// nothing changes, for any other count.
    pub fn finish_one(&mut self) -> Option<Bytes> {
        if self.count != 1 {
            return None;
        }
        self.reset();
        Some(self.buf.split().freeze())
    }

    fn reset(&mut self) {
        self.count = 0;
        self.lengths.clear();
    }
}

/// A batch payload holding `commands`.
pub fn batch_payload<C: AsRef<[u8]>>(commands: &[C]) -> Result<Bytes, BatchError> {
    let mut b = BatchBuilder::new();
    for c in commands {
        b.push(c.as_ref())?;
    }
    Ok(b.finish())
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
            "each command and its length, and the count"
        );
        // The commands first, then the trailer: the lengths 1, 0, 300 and
        // 3, and the count 4.
        assert_eq!(&e.data[..1], b"a");
        let trailer: Vec<u32> = e.data[e.data.len() - 20..]
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        assert_eq!(trailer, [1, 0, 300, 3, 4]);
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
        // The second command one byte short (its length still says 4).
        let mut short = b"okfin".to_vec();
        short.extend([2u32, 4, 2].iter().flat_map(|w| w.to_le_bytes()));
        e.data = short.into();
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
        assert!(e.commands().is_err());
        assert!(e.command_slices().is_err());
        e.data = Bytes::new();
        assert_eq!(e.check_batch(), Err(BatchError::Empty));
        // Commands, then the trailer's words.
        let payload = |commands: &[u8], words: &[u32]| -> Bytes {
            let mut d = commands.to_vec();
            d.extend(words.iter().flat_map(|w| w.to_le_bytes()));
            d.into()
        };
        // A count cut short, and no command at all.
        e.data = Bytes::from_static(&[2, 0, 0]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 0 }));
        e.data = payload(b"", &[0]);
        assert_eq!(e.check_batch(), Err(BatchError::Empty));
        // Room for two lengths only before a count of three.
        e.data = payload(b"", &[1, 1, 3]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 2 }));
        // A byte after the last command.
        e.data = payload(b"ok!", &[2, 1]);
        assert_eq!(e.check_batch(), Err(BatchError::Trailing));
        // Lengths whose sum passes the payload (and would wrap 32 bits).
        e.data = payload(b"abc", &[1, u32::MAX, u32::MAX, 3]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
        // A claimed count far beyond the payload: refused from the
        // payload's size alone, without reading or allocating per claimed
        // command.
        e.data = payload(b"abc", &[3, u32::MAX]);
        assert_eq!(e.check_batch(), Err(BatchError::Truncated { index: 1 }));
    }

    #[test]
    fn the_builder_writes_what_the_readers_read() {
        let mut b = BatchBuilder::with_capacity(1 << 10);
        assert!(b.is_empty());
        let long = vec![7u8; 200];
        for c in [&b"x"[..], &long, b""] {
            b.push(c).expect("few commands");
        }
        assert_eq!((b.count(), b.commands().len()), (3, 201));
        let len = b.encoded_len();
        let e = Entry {
            slot: 9,
            ballot: None,
            kind: EntryKind::Batch as i32,
            data: b.finish(),
        };
        assert_eq!(e.data.len(), len);
        let got: Vec<&[u8]> = e.command_slices().expect("built").map(|(_, c)| c).collect();
        assert_eq!(got, vec![&b"x"[..], &long[..], b""]);
        assert!(b.is_empty());
        // The next payload follows in the same buffer, and the first stays
        // intact.
        b.push(b"next").expect("one");
        assert_eq!(b.finish_one().as_deref(), Some(&b"next"[..]));
        assert_eq!(e.command_slices().expect("built").count(), 3);
        assert_eq!(b.finish_one(), None, "no command: nothing to hand out");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn entry(data: Vec<u8>) -> Entry {
            Entry {
                slot: 5,
                ballot: None,
                kind: EntryKind::Batch as i32,
                data: data.into(),
            }
        }

        proptest! {
            /// What the builder writes, both readers hand back exactly.
            #[test]
            fn built_batches_read_back(commands in prop::collection::vec(
                prop::collection::vec(any::<u8>(), 0..300), 1..40)) {
                let e = entry(batch_payload(&commands).expect("few").to_vec());
                let owned: Vec<Vec<u8>> = e.commands().expect("built").map(|c| c.data.to_vec()).collect();
                let borrowed: Vec<&[u8]> = e.command_slices().expect("built").map(|(_, c)| c).collect();
                prop_assert_eq!(&owned, &commands);
                prop_assert_eq!(borrowed.len(), commands.len());
                prop_assert_eq!(e.commands().expect("built").len(), commands.len());
            }

            /// Any bytes at all: the check never panics, and a payload it
            /// accepts is covered exactly by the commands it yields.
            #[test]
            fn any_payload_is_checked_without_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
                let e = entry(data);
                match e.command_slices() {
                    Ok(slices) => {
                        let lens: Vec<usize> = slices.map(|(_, c)| c.len()).collect();
                        prop_assert!(!lens.is_empty());
                        let framed: usize = lens.iter().map(|&l| framed_len(l)).sum();
                        prop_assert_eq!(framed + LEN_BYTES, e.data.len());
                    }
                    Err(_) => prop_assert!(e.check_batch().is_err() && e.commands().is_err()),
                }
            }

            /// A built batch with one byte changed, cut or added is either
            /// refused or read without a panic.
            #[test]
            fn a_damaged_batch_is_refused_or_read(
                commands in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..10),
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                how in 0..3u8,
            ) {
                let mut data = batch_payload(&commands).expect("few").to_vec();
                let i = at.index(data.len());
                match how {
                    0 => data[i] = byte,
                    1 => data.truncate(i),
                    _ => data.insert(i, byte),
                }
                let e = entry(data);
                if let Ok(c) = e.commands() {
                    let n = c.count();
                    prop_assert_eq!(n, e.command_slices().expect("as commands").count());
                }
            }
        }
    }
}
