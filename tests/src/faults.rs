//! What can go wrong in a run: the fault mix (swarm testing picks one per
//! seed) and fault schedules, random or scripted.

use crate::rng::Rng;
use std::fmt;

/// Which faults a run injects, and how hard. Each seed draws its own mix.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    /// Chance that a message is dropped (0–0.3).
    pub drop: f64,
    /// Chance that a message is delivered twice (0–0.5).
    pub duplicate: f64,
    /// Message delay bounds, in time units (a tick is 100 units).
    pub min_delay: u64,
    /// Upper delay bound; a wide range reorders messages.
    pub max_delay: u64,
    /// Chance of a delay ten times the maximum (a long tail).
    pub tail: f64,
    /// Partitions of every kind (symmetric, one-way, isolate-one, partial).
    pub partitions: bool,
    /// Temporary clogging of single links.
    pub clogs: bool,
    /// Leadership transfers (often during partitions).
    pub transfers: bool,
    /// Node crashes between events.
    pub crashes: bool,
    /// Crashes inside the Ready cycle (between persist, send, apply, advance).
    pub ready_crashes: bool,
    /// Per-node tick skew: each node's tick period is drawn from `skew_range`.
    pub skew: bool,
    /// Tick period bounds in time units (a nominal tick is 100): up to 4x
    /// between nodes, so clocks disagree far beyond any lease's tolerance.
    pub skew_range: (u64, u64),
    /// Concurrent clients.
    pub clients: u64,
    /// Keys the clients use.
    pub keys: u64,
    /// Ticks a client waits for an answer before trying another node.
    pub client_timeout: u64,
    /// Mean ticks between fault actions.
    pub chaos_every: u64,
    /// Node tuning drawn per seed too, so odd configurations get tested:
    /// heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Election timeout base in ticks (> heartbeat).
    pub election_ticks: u32,
    /// Entries per Accept/Promise message.
    pub msg_entries: usize,
    /// In-flight window in slots.
    pub inflight_slots: u64,
    /// Each node snapshots its state and compacts its log once it applied
    /// this many slots past its last snapshot (0: never).
    pub compact_every: u64,
    /// Slots kept below the snapshot when compacting.
    pub compact_keep: u64,
    /// Per-message byte budget (small values split snapshots into chunks).
    pub msg_bytes: u64,
    /// Ticks between steps of membership churn (0: none): voters are
    /// replaced one at a time by new empty nodes.
    pub reconfig_every: u64,
    /// New nodes available to replace voters.
    pub spares: u64,
    /// Lease reads (`Config::read_lease_ticks`; 0: off). With them on,
    /// clocks keep within the 2x drift the lease tolerates: 70-140% tick
    /// periods, and no stalled clocks.
    pub read_lease_ticks: u32,
    /// Chance that a client sends a read to any node rather than to the
    /// leader it knows of, as a client near a partitioned old leader would:
    /// the read that a lease outliving an election serves stale.
    pub read_anywhere: f64,
}

impl FaultMix {
    /// No faults at all: a healthy network.
    pub fn calm() -> Self {
        FaultMix {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: 5,
            max_delay: 20,
            tail: 0.0,
            partitions: false,
            clogs: false,
            transfers: false,
            crashes: false,
            ready_crashes: false,
            skew: false,
            skew_range: (100, 100),
            clients: 3,
            keys: 3,
            client_timeout: 40,
            chaos_every: 0,
            heartbeat_ticks: 2,
            election_ticks: 10,
            msg_entries: 8,
            inflight_slots: 64,
            compact_every: 0,
            compact_keep: 0,
            msg_bytes: 1 << 20,
            reconfig_every: 0,
            spares: 0,
            read_lease_ticks: 0,
            read_anywhere: 0.0,
        }
    }

    /// Draws lease reads for about a third of the seeds (own stream). The
    /// lease is the longest the 2x drift allows: a tick's phase is unknown,
    /// so `lease * slowest period <= (election - 1) * fastest period`.
    pub fn draw_lease(&mut self, seed: u64) {
        let mut rng = Rng::new(seed ^ 0x1e_a5e0_5eed);
        if rng.chance(0.35) {
            let election = self.election_ticks.max(self.heartbeat_ticks + 1);
            self.read_lease_ticks = ((election - 1) / 2).max(1);
            self.skew_range = (70, 140);
            self.read_anywhere = 0.3;
        }
    }

    /// Draws membership churn for about a third of the seeds, from its own
    /// stream like compaction (seeds without churn replay unchanged). Churn
    /// comes with compaction most of the time, so new nodes often start
    /// from a snapshot.
    pub fn draw_reconfig(&mut self, seed: u64) {
        let mut rng = Rng::new(seed ^ 0x6e_c0f1_65ee);
        if rng.chance(0.35) {
            self.reconfig_every = rng.pick(&[2, 5, 10, 20]);
            self.spares = rng.range_inclusive(1, 4);
        }
    }

    /// Draws compaction for about half the seeds. Its own stream (from the
    /// seed alone) leaves every other draw as it was before snapshots
    /// existed, so a seed that draws no compaction replays unchanged.
    pub fn draw_compaction(&mut self, seed: u64) {
        let mut rng = Rng::new(seed ^ 0xc0_4ac7_5eed);
        self.compact_every = rng.pick(&[0, 0, 0, 2, 5, 20, 60]);
        if self.compact_every > 0 {
            self.compact_keep = rng.pick(&[0, 0, 1, 8]);
            self.msg_bytes = rng.pick(&[40, 100, 1 << 20]);
        }
    }

    /// Every fault switched on at once, with random intensities.
    pub fn everything(rng: &mut Rng) -> Self {
        FaultMix {
            drop: 0.02 + rng.unit() * 0.28,
            duplicate: 0.02 + rng.unit() * 0.48,
            tail: 0.001 + rng.unit() * 0.04,
            partitions: true,
            clogs: true,
            transfers: true,
            crashes: true,
            ready_crashes: true,
            skew: true,
            ..FaultMix::swarm(rng)
        }
    }

    /// A random mix with every kind of fault possible (swarm testing: each
    /// seed switches each fault on or off, and draws its intensity).
    pub fn swarm(rng: &mut Rng) -> Self {
        let on = |rng: &mut Rng| rng.chance(0.6);
        let max_delay = rng.pick(&[10, 30, 80, 200]);
        FaultMix {
            drop: if on(rng) { rng.unit() * 0.3 } else { 0.0 },
            duplicate: if on(rng) { rng.unit() * 0.5 } else { 0.0 },
            min_delay: rng.range_inclusive(1, 10),
            max_delay,
            tail: if on(rng) { rng.unit() * 0.05 } else { 0.0 },
            partitions: on(rng),
            clogs: on(rng),
            transfers: on(rng),
            crashes: on(rng),
            ready_crashes: on(rng),
            skew: on(rng),
            skew_range: if rng.chance(0.5) {
                (70, 140)
            } else {
                (50, 200)
            },
            clients: rng.range_inclusive(1, 5),
            keys: rng.range_inclusive(1, 4),
            client_timeout: rng.pick(&[5, 10, 20, 40, 40]),
            chaos_every: rng.range_inclusive(5, 60),
            heartbeat_ticks: rng.pick(&[1, 2, 2, 3, 5]),
            election_ticks: rng.pick(&[6, 10, 10, 15, 25]),
            msg_entries: rng.pick(&[1, 3, 8, 8, 64]),
            inflight_slots: rng.pick(&[4, 16, 64, 64, 1024]),
            ..FaultMix::calm()
        }
    }
}

/// One fault action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Crash a node; it restarts from its storage after `down` ticks.
    Crash {
        /// The node.
        node: u64,
        /// Ticks it stays down.
        down: u64,
    },
    /// Cut a node off from everyone, both ways.
    Isolate(u64),
    /// Cut the nodes in `mask` (bit i = node i+1) off from the rest, both ways.
    Split(u64),
    /// Cut one direction only: messages from `from` to `to` are lost.
    OneWay {
        /// Sender side.
        from: u64,
        /// Receiver side.
        to: u64,
    },
    /// Partial connectivity: only the link a–b is down (both ways).
    CutPair(u64, u64),
    /// Messages on a–>b wait `ticks` before delivery.
    Clog {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// How long.
        ticks: u64,
    },
    /// Ask the current leader to hand leadership to this node.
    Transfer(u64),
    /// Cut a node off and run its clock 4x slower until the next heal: a
    /// leader so treated keeps believing it leads while the rest moves on.
    Stall(u64),
    /// The host calls `campaign()` at this node (scripted schedules only;
    /// random hosts draw their own, see `HostMix::campaign_every`).
    Campaign(u64),
    /// Restore every link.
    Heal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Crash { node, down } => write!(f, "crash{node}/{down}"),
            Fault::Isolate(n) => write!(f, "isolate{n}"),
            Fault::Split(mask) => write!(f, "split{mask:x}"),
            Fault::OneWay { from, to } => write!(f, "oneway{from}>{to}"),
            Fault::CutPair(a, b) => write!(f, "cut{a}-{b}"),
            Fault::Clog { from, to, ticks } => write!(f, "clog{from}>{to}/{ticks}"),
            Fault::Transfer(n) => write!(f, "transfer{n}"),
            Fault::Stall(n) => write!(f, "stall{n}"),
            Fault::Campaign(n) => write!(f, "campaign{n}"),
            Fault::Heal => write!(f, "heal"),
        }
    }
}

impl Fault {
    /// The same fault with every node id passed through `f` (split masks
    /// stay positional: the simulator maps them itself).
    pub fn map_nodes(self, f: impl Fn(u64) -> u64) -> Fault {
        match self {
            Fault::Crash { node, down } => Fault::Crash {
                node: f(node),
                down,
            },
            Fault::Isolate(n) => Fault::Isolate(f(n)),
            Fault::OneWay { from, to } => Fault::OneWay {
                from: f(from),
                to: f(to),
            },
            Fault::CutPair(a, b) => Fault::CutPair(f(a), f(b)),
            Fault::Clog { from, to, ticks } => Fault::Clog {
                from: f(from),
                to: f(to),
                ticks,
            },
            Fault::Transfer(n) => Fault::Transfer(f(n)),
            Fault::Stall(n) => Fault::Stall(f(n)),
            Fault::Campaign(n) => Fault::Campaign(f(n)),
            Fault::Split(mask) => Fault::Split(mask),
            Fault::Heal => Fault::Heal,
        }
    }

    /// Draws a random fault allowed by `mix` for a cluster of `nodes`. Half
    /// the crashes and isolations hit the current `leader`: leader changes
    /// with half-replicated slots are where phase-1 bugs hide.
    pub fn random(rng: &mut Rng, mix: &FaultMix, nodes: u64, leader: Option<u64>) -> Option<Fault> {
        let mut kinds: Vec<u8> = Vec::new();
        if mix.partitions {
            kinds.extend([0, 1, 2, 3, 4, 4, 8]);
        }
        if mix.clogs {
            kinds.push(5);
        }
        if mix.transfers {
            kinds.push(7);
        }
        if mix.crashes {
            kinds.extend([6, 6]);
        }
        if kinds.is_empty() {
            return None;
        }
        let node = |rng: &mut Rng| match leader {
            Some(l) if rng.chance(0.5) => l,
            _ => rng.range_inclusive(1, nodes),
        };
        let pair = |rng: &mut Rng| {
            let a = rng.range_inclusive(1, nodes);
            let b = (a + rng.range_inclusive(0, nodes - 2)) % nodes + 1;
            (a, b)
        };
        Some(match rng.pick(&kinds) {
            0 => Fault::Isolate(node(rng)),
            1 => Fault::Split(rng.range_inclusive(1, (1 << nodes) - 2)),
            2 => {
                let (from, to) = pair(rng);
                Fault::OneWay { from, to }
            }
            3 => {
                let (a, b) = pair(rng);
                Fault::CutPair(a, b)
            }
            4 => Fault::Heal,
            7 => Fault::Transfer(rng.range_inclusive(1, nodes)),
            // A stalled clock breaks the bounded drift leases assume.
            8 if mix.read_lease_ticks > 0 => Fault::Isolate(node(rng)),
            8 => Fault::Stall(node(rng)),
            5 => {
                let (from, to) = pair(rng);
                Fault::Clog {
                    from,
                    to,
                    ticks: rng.range_inclusive(1, 30),
                }
            }
            _ => Fault::Crash {
                node: node(rng),
                down: rng.range_inclusive(1, 60),
            },
        })
    }

    /// Parses one fault as `Display` writes it.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let bad = || format!("bad fault {s:?}");
        let num = |t: &str| t.parse::<u64>().map_err(|_| bad());
        let two = |t: &str, sep: char| -> Result<(u64, u64), String> {
            let (a, b) = t.split_once(sep).ok_or_else(bad)?;
            Ok((num(a)?, num(b)?))
        };
        if s == "heal" {
            Ok(Fault::Heal)
        } else if let Some(t) = s.strip_prefix("crash") {
            let (node, down) = two(t, '/')?;
            Ok(Fault::Crash { node, down })
        } else if let Some(t) = s.strip_prefix("stall") {
            Ok(Fault::Stall(num(t)?))
        } else if let Some(t) = s.strip_prefix("transfer") {
            Ok(Fault::Transfer(num(t)?))
        } else if let Some(t) = s.strip_prefix("campaign") {
            Ok(Fault::Campaign(num(t)?))
        } else if let Some(t) = s.strip_prefix("isolate") {
            Ok(Fault::Isolate(num(t)?))
        } else if let Some(t) = s.strip_prefix("split") {
            Ok(Fault::Split(u64::from_str_radix(t, 16).map_err(|_| bad())?))
        } else if let Some(t) = s.strip_prefix("oneway") {
            let (from, to) = two(t, '>')?;
            Ok(Fault::OneWay { from, to })
        } else if let Some(t) = s.strip_prefix("cut") {
            let (a, b) = two(t, '-')?;
            Ok(Fault::CutPair(a, b))
        } else if let Some(t) = s.strip_prefix("clog") {
            let (link, ticks) = t.split_once('/').ok_or_else(bad)?;
            let (from, to) = two(link, '>')?;
            Ok(Fault::Clog {
                from,
                to,
                ticks: num(ticks)?,
            })
        } else {
            Err(bad())
        }
    }
}

/// Faults at given ticks: `"50:crash2/10,80:heal"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<(u64, Fault)>);

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tick, fault)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{tick}:{fault}")?;
        }
        Ok(())
    }
}

impl Schedule {
    /// Parses a schedule as `Display` writes it.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let mut out = Vec::new();
        for item in s.split(',').filter(|t| !t.is_empty()) {
            let (tick, fault) = item
                .split_once(':')
                .ok_or_else(|| format!("bad item {item:?}"))?;
            let tick = tick.parse().map_err(|_| format!("bad tick in {item:?}"))?;
            out.push((tick, Fault::parse(fault)?));
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(Schedule(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip() {
        let s = Schedule(vec![
            (1, Fault::Crash { node: 2, down: 9 }),
            (2, Fault::Campaign(3)),
            (3, Fault::Isolate(1)),
            (4, Fault::Split(0b101)),
            (5, Fault::OneWay { from: 1, to: 3 }),
            (6, Fault::CutPair(1, 3)),
            (
                7,
                Fault::Clog {
                    from: 2,
                    to: 1,
                    ticks: 4,
                },
            ),
            (8, Fault::Heal),
            (9, Fault::Transfer(3)),
            (10, Fault::Stall(2)),
        ]);
        assert_eq!(Schedule::parse(&s.to_string()), Ok(s));
        assert!(Schedule::parse("x:heal").is_err());
        assert!(Schedule::parse("3:explode").is_err());
    }

    #[test]
    fn random_faults_respect_the_mix_and_cluster() {
        let mut rng = Rng::new(1);
        assert_eq!(Fault::random(&mut rng, &FaultMix::calm(), 3, None), None);
        let mix = FaultMix {
            partitions: true,
            clogs: true,
            crashes: true,
            transfers: true,
            ..FaultMix::calm()
        };
        for _ in 0..1000 {
            match Fault::random(&mut rng, &mix, 3, Some(2)).expect("some fault") {
                Fault::Crash { node, .. }
                | Fault::Isolate(node)
                | Fault::Transfer(node)
                | Fault::Stall(node) => {
                    assert!((1..=3).contains(&node))
                }
                Fault::OneWay { from: a, to: b }
                | Fault::CutPair(a, b)
                | Fault::Clog { from: a, to: b, .. } => {
                    assert!(a != b && (1..=3).contains(&a) && (1..=3).contains(&b));
                }
                Fault::Split(mask) => assert!(mask > 0 && mask < 0b111),
                Fault::Heal => {}
                Fault::Campaign(n) => panic!("campaign{n} is scripted only"),
            }
        }
    }
}
