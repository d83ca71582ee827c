//! `kvnode`: a replicated key-value store on paxos-core.
//!
//! Every member runs `kvnode serve`: a driver thread owning the
//! [`paxos_core::RawNode`] and its durable [`storage::RedbStorage`], a TCP
//! peer transport carrying [`frame::PeerFrame`]s, and an HTTP/JSON API.
//! Every replica applies the decided slots to the same
//! [`state::StateMachine`] — a KV map with exactly-once client sessions and
//! a SHA-256 hash-chained block log, one block per slot (a slot carries a
//! batch of commands) — so `kvnode chain verify` can re-derive each
//! member's state from its chain and compare the chains across members.
//! The same binary is the client (`put`, `get`, `delete`, `cas`,
//! `status`), a local cluster launcher (`cluster`) and a load generator
//! (`bench`); [`cli::run`] is its entry point.
#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod frame;
pub mod state;
pub mod storage;
pub mod tls;

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod bench;
pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod commands;
pub(crate) mod contain;
pub(crate) mod driver;
pub(crate) mod http;
pub(crate) mod http_errors;
pub(crate) mod http_server;
pub(crate) mod ids;
pub(crate) mod metrics;
pub(crate) mod server;
pub(crate) mod transport;
pub(crate) mod verify;
