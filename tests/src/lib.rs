//! A deterministic cluster simulator for `paxos-core`.
//!
//! Whole clusters run in one thread from one seed: per-link delay, drop,
//! duplication, reordering and clogging; symmetric, one-way, isolate-one and
//! partial partitions; crashes between events and inside the Ready cycle,
//! and failed disk syncs that stop the node, each restarting from durable
//! storage alone; per-node clock skew; clients that retry. After every event the checker verifies the safety invariants; at
//! the end a liveness phase heals everything and requires every command to be
//! applied everywhere, and the client history must be linearizable.
//!
//! Same seed, same run: [`sim::Outcome::trace_hash`] proves it.
#![deny(missing_docs)]

pub mod checker;
pub mod diagram;
pub mod disk;
pub mod explore;
pub mod faults;
pub mod garbage;
pub mod host;
pub mod kv;
pub mod linearizability;
pub mod net;
pub mod quorums;
pub mod reconfig;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod trace;

pub use faults::{Fault, FaultMix, Schedule};
pub use sim::{run, Outcome, SimOptions};

/// A planted bug by its name (`PlantedBug`'s variant, any case), as the
/// binaries' `--bug` flags take it.
pub fn parse_bug(s: &str) -> Result<paxos_core::PlantedBug, String> {
    use paxos_core::PlantedBug;
    PlantedBug::ALL
        .into_iter()
        .find(|b| format!("{b:?}").eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown bug {s:?}; one of {:?}", PlantedBug::ALL))
}
