pub use paxos_proto;
