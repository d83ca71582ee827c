//! Any bytes from a peer: decoding never panics, and whatever decodes
//! prints and re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paxos_core::proto::{Message, ProstMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = <Message as ProstMessage>::decode(data) {
        let _ = m.to_string();
        let again = m.encode_to_vec();
        let back = <Message as ProstMessage>::decode(again.as_slice()).expect("re-encoded");
        assert_eq!(back, m);
    }
});
