//! What the scripted clusters of [`crate::scenario`] need from the checker
//! beyond what the simulator uses: proposals of plain bytes, and a window
//! that keeps long runs in constant memory.

use super::Checker;
use paxos_core::proto::Ballot;

impl Checker {
    /// A payload of plain bytes (not an encoded client command) was handed
    /// to a node for proposal: applying it is no violation. The checker
    /// keeps a copy, never a handle on the caller's buffer.
    pub fn on_propose_bytes(&mut self, data: &[u8]) {
        if !self.payloads.contains(data) {
            self.payloads.insert(bytes::Bytes::copy_from_slice(data));
        }
    }

    /// Forgets what was accepted, chosen and snapshotted below `slot`. Only
    /// for slots no node will accept, apply or install again: every node's
    /// durable snapshot covers them.
    pub fn forget_below(&mut self, slot: u64) {
        self.accepted = self.accepted.split_off(&(slot, Ballot::ZERO));
        self.chosen = self.chosen.split_off(&slot);
        self.states = self.states.split_off(&slot);
    }
}
