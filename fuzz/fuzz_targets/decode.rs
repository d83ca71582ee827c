//! Any bytes from a peer: decoding never panics, whatever decodes prints
//! and re-encodes, and every entry's commands read back exactly its payload
//! (or the batch is refused as a whole).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paxos_core::proto::{framed_len, Body, Entry, EntryKind, Message, ProstMessage};

/// A batch that checks out frames its whole payload, command by command;
/// one that does not is refused by every reader alike.
fn commands_cover_the_payload(e: &Entry) {
    match e.commands() {
        Ok(commands) => {
            let lens: Vec<usize> = commands.map(|c| c.data.len()).collect();
            let slices = e.command_slices().expect("as commands()").count();
            assert_eq!(slices, lens.len());
            if e.kind == EntryKind::Batch as i32 {
                assert!(!lens.is_empty());
                let framed: usize = lens.iter().map(|&l| framed_len(l)).sum();
                // The count, then a fixed-width length per command: a
                // batch that checks out is exactly that long.
                assert_eq!(4 + framed, e.data.len());
            }
        }
        Err(_) => {
            assert_eq!(e.kind, EntryKind::Batch as i32);
            assert!(e.check_batch().is_err());
            assert!(e.command_slices().is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = <Message as ProstMessage>::decode(data) {
        let _ = m.to_string();
        let again = m.encode_to_vec();
        let back = <Message as ProstMessage>::decode(again.as_slice()).expect("re-encoded");
        assert_eq!(back, m);
        let entries = match &m.body {
            Some(Body::Accept(a)) => &a.entries[..],
            Some(Body::Promise(p)) => &p.entries[..],
            Some(Body::Propose(p)) => &p.entries[..],
            _ => &[][..],
        };
        entries.iter().for_each(commands_cover_the_payload);
    }
});
