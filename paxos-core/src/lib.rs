//! A pure, deterministic, embeddable Multi-Paxos state machine.
//!
//! The host feeds a [`RawNode`] ticks, peer messages and proposals; the node
//! hands back a [`Ready`] holding what to persist, what to send once that is
//! durable, and which decided entries to apply, in slot order. There are no
//! threads, clocks, sockets, disk or global randomness inside, so a whole
//! cluster runs in one test thread and replays bit for bit.
#![deny(missing_docs)]

mod acceptor;
mod config;
mod election;
mod errors;
mod leader;
mod log;
mod membership;
mod node;
mod phase1;
mod progress;
mod raw_node;
mod rng;
mod status;
mod storage;
#[cfg(test)]
mod testutil;
mod window;

pub use config::{Config, MAX_VOTERS};
pub use errors::{ConfigError, DropReason, Error, Result, StorageError};
pub use leader::Proposed;
pub use node::StateRole;
pub use paxos_proto as proto;
pub use progress::ProgressState;
pub use raw_node::{RawNode, Ready};
pub use status::{PeerProgress, Status};
pub use storage::{InitialState, MemStorage, MemStorageCore, Storage};
