//! A three-node cluster in one thread: elect a leader, replicate commands,
//! crash the leader, elect another, restart the crashed node from its storage
//! and watch it catch up. Prints what happens.
//!
//! Run: `cargo run --release -p paxos-core --example three_nodes`

use paxos_core::proto::Message;
use paxos_core::{Config, MemStorage, RawNode, StateRole};
use std::collections::{BTreeMap, VecDeque};

struct Cluster {
    nodes: BTreeMap<u64, RawNode<MemStorage>>,
    disks: BTreeMap<u64, MemStorage>,
    applied: BTreeMap<u64, u64>,
    net: VecDeque<Message>,
    logger: slog::Logger,
}

impl Cluster {
    fn start(&mut self, id: u64) -> Result<(), paxos_core::Error> {
        let cfg = Config {
            seed: 2026,
            ..Config::new(id, vec![1, 2, 3])
        };
        let node = RawNode::new(&cfg, self.disks[&id].clone(), &self.logger)?;
        self.nodes.insert(id, node);
        self.applied.insert(id, 0);
        Ok(())
    }

    fn drive(&mut self) -> Result<(), paxos_core::Error> {
        loop {
            for (id, node) in self.nodes.iter_mut() {
                while node.has_ready() {
                    let mut rd = node.ready();
                    let mut disk = self.disks[id].wl();
                    if let Some(hs) = rd.hard_state() {
                        disk.set_hard_state(*hs);
                    }
                    disk.store_entries(rd.entries());
                    drop(disk);
                    self.net.extend(rd.take_messages());
                    self.net.extend(rd.take_persisted_messages());
                    if let Some(last) = rd.committed_entries().last() {
                        self.applied.insert(*id, last.slot);
                    }
                    node.advance(rd);
                }
            }
            let Some(msg) = self.net.pop_front() else {
                return Ok(());
            };
            if let Some(node) = self.nodes.get_mut(&msg.to) {
                node.step(msg)?;
            }
        }
    }

    fn tick(&mut self, n: u32) -> Result<(), paxos_core::Error> {
        for _ in 0..n {
            self.nodes.values_mut().for_each(RawNode::tick);
            self.drive()?;
        }
        Ok(())
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, n)| n.status().role == StateRole::Leader)
            .map(|(id, _)| *id)
    }

    fn await_leader(&mut self) -> Result<u64, paxos_core::Error> {
        let mut ticks = 0;
        loop {
            if let Some(l) = self.leader() {
                println!(
                    "  node {l} leads after {ticks} ticks (ballot {})",
                    self.nodes[&l].status().promised
                );
                return Ok(l);
            }
            self.tick(1)?;
            ticks += 1;
        }
    }

    fn report(&self) {
        for (id, applied) in &self.applied {
            let st = self.nodes.get(id).map(|n| format!("{:?}", n.status().role));
            println!(
                "  node {id}: applied up to slot {applied:>5}  {}",
                st.unwrap_or_else(|| "down".into())
            );
        }
    }
}

fn main() -> Result<(), paxos_core::Error> {
    let mut c = Cluster {
        nodes: BTreeMap::new(),
        disks: (1..=3).map(|id| (id, MemStorage::new())).collect(),
        applied: BTreeMap::new(),
        net: VecDeque::new(),
        logger: slog::Logger::root(slog::Discard, slog::o!()),
    };
    for id in 1..=3 {
        c.start(id)?;
    }
    println!("electing a leader");
    let leader = c.await_leader()?;
    println!("replicating 1000 commands through node {leader}");
    for i in 0..1000u32 {
        c.nodes
            .get_mut(&leader)
            .map(|n| n.propose(i.to_be_bytes().to_vec()))
            .transpose()?;
    }
    c.drive()?;
    c.tick(3)?;
    c.report();
    println!("crashing the leader, node {leader}");
    c.nodes.remove(&leader);
    let next = c.await_leader()?;
    for i in 1000..1500u32 {
        c.nodes
            .get_mut(&next)
            .map(|n| n.propose(i.to_be_bytes().to_vec()))
            .transpose()?;
    }
    c.drive()?;
    c.tick(3)?;
    c.report();
    println!("restarting node {leader} from its storage");
    c.start(leader)?;
    c.tick(10)?;
    c.report();
    let slots: Vec<u64> = c.applied.values().copied().collect();
    if slots.iter().all(|&s| s == slots[0]) {
        println!("all three nodes applied the same {} slots", slots[0]);
        Ok(())
    } else {
        eprintln!("nodes disagree: {slots:?}");
        std::process::exit(1);
    }
}
