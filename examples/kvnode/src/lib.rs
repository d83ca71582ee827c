//! `kvnode`: a replicated key-value store on paxos-core.
//!
//! This crate grows into the full node (TCP transport, HTTP API, block
//! chain, CLI). Its foundation is here: [`storage::RedbStorage`], the durable
//! [`paxos_core::Storage`] every member keeps its log and promises in, and
//! [`state::StateMachine`], the replicated KV map and hash-chained block log
//! that every replica derives identically from the decided slots.
#![deny(missing_docs)]

pub mod frame;
pub mod state;
pub mod storage;
