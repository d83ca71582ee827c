//! Verifying a chain: every hash and link checked, and the KV state it
//! derives compared with a replica's (`kvnode chain verify`).

use super::*;

/// Why a chain or a replica failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A block's hash does not match its content.
    #[error("block {height}: hash does not match its content")]
    BadHash {
        /// The block.
        height: u64,
    },
    /// A block does not point at its predecessor.
    #[error("block {height}: prev_hash does not match block {}", height.saturating_sub(1))]
    BrokenLink {
        /// The block.
        height: u64,
    },
    /// Heights or slots are not consecutive.
    #[error("block {height}: expected height {expected_height} for slot {slot}")]
    OutOfOrder {
        /// The block's height.
        height: u64,
        /// The height it should have.
        expected_height: u64,
        /// Its slot.
        slot: u64,
    },
    /// Replaying the chain gives a different KV state than the replica holds.
    #[error("the KV state differs from the one the chain derives")]
    StateMismatch,
}

/// Checks every hash and link of `chain`, replays it into a fresh state
/// machine, and compares the result with `replica` (`chain verify`).
pub fn verify_chain(chain: &[Block], replica: &StateMachine) -> Result<(), ChainError> {
    let replay = replay_chain(chain)?;
    if replay.kv != replica.kv {
        return Err(ChainError::StateMismatch);
    }
    Ok(())
}

/// Checks every hash and link of `chain`, whose first block follows
/// `base` (height 0 and zeros for a whole chain): heights and slots
/// consecutive, each hash matching its block, each block pointing at the
/// one before.
pub fn check_links(chain: &[Block], base: &ChainHead) -> Result<(), ChainError> {
    let mut prev = (base.height, &base.hash);
    for block in chain {
        // A base from another member may claim any height: one at the top
        // of `u64` has no successor.
        let height = prev.0.checked_add(1).ok_or(ChainError::OutOfOrder {
            height: block.height,
            expected_height: u64::MAX,
            slot: block.slot,
        })?;
        if block.height != height {
            return Err(ChainError::OutOfOrder {
                height: block.height,
                expected_height: height,
                slot: block.slot,
            });
        }
        if block.compute_hash() != block.hash {
            return Err(ChainError::BadHash { height });
        }
        if block.prev_hash != *prev.1 {
            return Err(ChainError::BrokenLink { height });
        }
        // One block per decided slot, from slot 1: a gap is a forgery (and
        // must not reach `apply`, which asserts slot order).
        if block.slot != height {
            return Err(ChainError::OutOfOrder {
                height,
                expected_height: height,
                slot: block.slot,
            });
        }
        prev = (height, &block.hash);
    }
    Ok(())
}

/// Checks every hash and link of `chain` and replays it into a fresh state
/// machine: the state every replica holding this chain must have.
pub fn replay_chain(chain: &[Block]) -> Result<StateMachine, ChainError> {
    let mut replay = StateMachine::default();
    check_links(chain, &replay.base)?;
    for block in chain {
        replay.apply(&block.to_entry());
        // Only the head matters here: drop the block, or a replay of a
        // long chain would hold all of it twice.
        replay.unsaved.clear();
        if replay.head.hash != block.hash {
            return Err(ChainError::BadHash {
                height: block.height,
            });
        }
    }
    replay.take_changes();
    Ok(replay)
}
