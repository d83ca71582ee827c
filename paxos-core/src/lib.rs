//! A pure, deterministic, embeddable Multi-Paxos state machine.
//!
//! The host feeds a [`RawNode`] ticks, peer messages and proposals; the node
//! hands back a [`Ready`] holding what to persist, what to send once that is
//! durable, and which decided entries to apply, in slot order. There are no
//! threads, clocks, sockets, disk or global randomness inside, so a whole
//! cluster runs in one test thread and replays bit for bit.
//!
//! # The Ready loop
//!
//! A three-node cluster in memory, driven to agree on three commands (in
//! one slot):
//!
//! ```
//! use paxos_core::{Config, MemStorage, RawNode, StateRole};
//! use std::collections::{BTreeMap, VecDeque};
//!
//! let logger = slog::Logger::root(slog::Discard, slog::o!());
//! let mut nodes = BTreeMap::new();
//! let mut disks = BTreeMap::new();
//! for id in 1..=3 {
//!     let disk = MemStorage::new();
//!     let cfg = Config { seed: 7, ..Config::new(id, vec![1, 2, 3]) };
//!     nodes.insert(id, RawNode::new(&cfg, disk.clone(), &logger).unwrap());
//!     disks.insert(id, disk);
//! }
//! let mut applied: BTreeMap<u64, Vec<bytes::Bytes>> = BTreeMap::new();
//! let mut net = VecDeque::new();
//! let mut drive = |nodes: &mut BTreeMap<u64, RawNode<MemStorage>>, net: &mut VecDeque<_>| {
//!     loop {
//!         for (id, node) in nodes.iter_mut() {
//!             while node.has_ready() {
//!                 let mut rd = node.ready();
//!                 // A leader's own traffic may leave at once.
//!                 net.extend(rd.take_messages());
//!                 // 1. Persist: the hard state and the entries.
//!                 let mut disk = disks[id].wl();
//!                 if let Some(hs) = rd.hard_state() {
//!                     disk.set_hard_state(*hs);
//!                 }
//!                 disk.store_entries(rd.entries());
//!                 drop(disk);
//!                 // 2. Then send.
//!                 net.extend(rd.take_persisted_messages());
//!                 // 3. Apply decided commands, in order. Proposals made
//!                 //    between two Readys share a slot: each entry hands
//!                 //    out its commands (none for a leader's no-op).
//!                 for e in rd.take_committed_entries() {
//!                     for cmd in e.commands().expect("a well-framed batch") {
//!                         applied.entry(*id).or_default().push(cmd.data);
//!                     }
//!                 }
//!                 // 4. Tell the node.
//!                 node.advance(rd);
//!             }
//!         }
//!         let Some(msg) = net.pop_front() else { break };
//!         let to = msg.to;
//!         nodes.get_mut(&to).unwrap().step(msg).unwrap();
//!     }
//! };
//!
//! // Time passes until someone's election timeout fires and it wins.
//! while !nodes.values().any(|n| n.status().role == StateRole::Leader) {
//!     for node in nodes.values_mut() {
//!         node.tick();
//!     }
//!     drive(&mut nodes, &mut net);
//! }
//! let leader = *nodes.iter().find(|(_, n)| n.status().role == StateRole::Leader).unwrap().0;
//! for cmd in ["x=1", "y=2", "x=3"] {
//!     nodes.get_mut(&leader).unwrap().propose(cmd.as_bytes().to_vec()).unwrap();
//! }
//! drive(&mut nodes, &mut net);
//! // Followers learn the committed watermark with the next heartbeat.
//! for _ in 0..3 {
//!     for node in nodes.values_mut() {
//!         node.tick();
//!     }
//!     drive(&mut nodes, &mut net);
//! }
//! for id in 1..=3 {
//!     assert_eq!(applied[&id], vec!["x=1", "y=2", "x=3"]);
//! }
//! ```
//!
//! # Safety rules
//!
//! The rules live in [`protocol`] (`PROTOCOL.md`), each with a name the code
//! cites: ballots `(round, node)`; phase 1 once per leadership over every
//! slot above the leader's committed watermark, with highest-ballot adoption
//! and no-op gap filling; pipelined phase 2 in which a slot is chosen only by
//! a quorum of acceptances in one ballot; followers decide a slot only when
//! they accepted it in the leader's ballot; replies leave only after the
//! state they depend on is durable (the `Ready` contract); pre-vote and
//! leader stickiness keep a returning node from deposing a healthy leader.
#![deny(missing_docs)]

// First: its macro is used by the modules below.
#[macro_use]
mod planted;

#[doc = include_str!("../PROTOCOL.md")]
pub mod protocol {}

mod arena;
mod buffers;
mod chunked;
mod config;
mod errors;
mod kinds;
mod log;
mod mem_log;
mod membership;
mod node;
mod progress;
mod raw_node;
mod rng;
mod storage;
mod validate;
mod window;

pub use config::{Config, MAX_VOTERS};
pub use errors::{ConfChangeError, ConfigError, DropReason, Error, Result, StorageError};
pub use node::Proposed;
pub use node::ReadState;
pub use node::StateRole;
pub use node::{PeerProgress, Status};
pub use paxos_proto as proto;
pub use paxos_proto::Position;
#[cfg(feature = "planted-bugs")]
pub use planted::PlantedBug;
pub use progress::ProgressState;
pub use raw_node::{NodeState, RawNode, Ready};
pub use rng::SplitMix64;
pub use storage::{InitialState, MemStorage, MemStorageCore, Storage};
pub use validate::{MAX_ROUND, MAX_ROUND_JUMP, MAX_SLOT};
