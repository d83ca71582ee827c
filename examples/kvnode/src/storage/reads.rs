//! Reads served beside the driver: `/chain` pages and `/state/digest`
//! come from one read transaction of the store (redb readers run beside
//! the writer), on a blocking thread of the HTTP side, so no client request
//! makes the consensus thread do work that grows with the chain or the map.

use super::*;
use crate::state::{zero_head, KvDigest};

/// A page of the chain as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPage {
    /// The blocks, from the first one asked for.
    pub blocks: Vec<Block>,
    /// The height of the last block stored.
    pub height: u64,
    /// The head below the first block held (height 0: the chain is whole).
    pub base: ChainHead,
}

/// The state tables' summary at their last checkpoint: consistent with
/// one another and with the chain at that height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDigest {
    /// The slot (and chain height) the state tables are at.
    pub height: u64,
    /// The hash of the block at that height (or of the base below the
    /// chain, or zeros).
    pub head: Bytes,
    /// Keys held.
    pub keys: u64,
    /// [`KvDigest`] over the map.
    pub kv: Bytes,
}

impl RedbStorage {
    /// Blocks from height `from`: at most `limit` of them and, past the
    /// first, at most `max_bytes` of encoded blocks.
    pub fn chain_page(
        &self,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ChainPage, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let base: ChainHead = meta_msg(&meta, CHAIN_BASE)?.unwrap_or_else(zero_head);
        let chain = txn.open_table(CHAIN).map_err(unavailable)?;
        let height = chain
            .last()
            .map_err(unavailable)?
            .map_or(base.height, |(h, _)| h.value());
        let (mut blocks, mut bytes) = (Vec::new(), 0usize);
        for item in chain.range(from..).map_err(unavailable)?.take(limit) {
            let (h, v) = item.map_err(unavailable)?;
            bytes = bytes.saturating_add(v.value().len());
            if !blocks.is_empty() && bytes > max_bytes {
                break;
            }
            blocks.push(stored_block(h.value(), v.value())?);
        }
        Ok(ChainPage {
            blocks,
            height,
            base,
        })
    }

    /// The digest of the state tables as of their last checkpoint.
    pub fn digest(&self) -> Result<StateDigest, StorageError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let meta = txn.open_table(META).map_err(unavailable)?;
        let base: ChainHead = meta_msg(&meta, CHAIN_BASE)?.unwrap_or_else(zero_head);
        let height = meta_slot(&meta, STATE_APPLIED)?;
        let head = if height == base.height {
            base.hash
        } else {
            let chain = txn.open_table(CHAIN).map_err(unavailable)?;
            block_at(&chain, height)?.hash
        };
        let kv = txn.open_table(KV).map_err(unavailable)?;
        let mut d = KvDigest::default();
        for item in kv.iter().map_err(unavailable)? {
            let (k, v) = item.map_err(unavailable)?;
            d.add(k.value(), v.value());
        }
        Ok(StateDigest {
            height,
            head,
            keys: kv.len().map_err(unavailable)?,
            kv: d.finish(),
        })
    }
}
