//! The strongest peers, driven exactly like paxos-core (built only with the
//! `peers` feature): raft-rs 0.7 and OmniPaxos 0.2, 3 nodes, in memory,
//! messages delivered in one global FIFO, no ticks while timed.

pub mod omni;
pub mod raft;
