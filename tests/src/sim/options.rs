//! What a run is asked to do, and what it reports.

use crate::disk::Disk;
use crate::faults::{FaultMix, Schedule};
use crate::host::HostMix;
use paxos_core::PlantedBug;

/// What to run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed: every choice of the run derives from it.
    pub seed: u64,
    /// Voters; drawn from {3, 5, 7} when unset.
    pub nodes: Option<u64>,
    /// Learners (receive decided entries, never vote); drawn when unset.
    pub learners: Option<u64>,
    /// Ticks of the fault phase.
    pub ticks: u64,
    /// After the fault phase everything heals: every submitted command must
    /// then be applied on every node within this many ticks.
    pub liveness_ticks: u64,
    /// The fault mix; drawn from the seed (swarm testing) when unset.
    pub mix: Option<FaultMix>,
    /// Scripted faults instead of random ones.
    pub schedule: Option<Schedule>,
    /// How the host drives the Ready cycle; drawn from the seed when unset.
    pub host: Option<HostMix>,
    /// Mean ticks between garbage messages (0: none); drawn when unset.
    pub garbage_every: Option<u64>,
    /// Flexible quorum sizes (rule M4); drawn from the seed when unset.
    pub quorums: Option<crate::quorums::Sizes>,
    /// A protocol bug to plant in every node.
    pub bug: Option<PlantedBug>,
    /// The disk; drawn from the seed when unset (half the seeds fail
    /// syncs).
    pub disk: Option<Disk>,
    /// A planted host bug: send each `Ready`'s persisted messages before
    /// its sync (and answer clients, which rule D5 allows), and leave them
    /// out when it fails.
    pub ack_before_sync: bool,
    /// Print every event.
    pub trace: bool,
    /// Record a space-time diagram of the run into [`Outcome::diagram`]
    /// (see [`crate::diagram`]); the run itself is the same either way.
    pub record: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            nodes: None,
            learners: None,
            ticks: 500,
            liveness_ticks: 1500,
            mix: None,
            schedule: None,
            host: None,
            garbage_every: None,
            quorums: None,
            bug: None,
            disk: None,
            ack_before_sync: false,
            trace: false,
            record: false,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Voters.
    pub nodes: u64,
    /// Learners.
    pub learners: u64,
    /// Ticks simulated.
    pub steps: u64,
    /// Events processed.
    pub events: u64,
    /// Slots chosen.
    pub decided: u64,
    /// Of those, slots holding several commands (instance batching).
    pub batched: u64,
    /// Client operations invoked / completed.
    pub ops: (usize, usize),
    /// Leaderships won.
    pub elections: usize,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Voters replaced by new nodes (added, caught up, promoted, removed).
    pub replaced: u64,
    /// Every invariant violation, in order.
    pub violations: Vec<String>,
    /// Hash of every event: equal for equal runs.
    pub trace_hash: u64,
    /// Linearizability checks that ran out of budget (not violations, but
    /// not passes either).
    pub undecided_keys: Vec<u64>,
    /// The fault mix used.
    pub mix: FaultMix,
    /// The host behaviours used.
    pub host: HostMix,
    /// The configured quorum sizes used.
    pub quorums: crate::quorums::Sizes,
    /// The disk used.
    pub disk: Disk,
    /// Syncs that failed (each stopped its node).
    pub sync_failures: u64,
    /// The run's space-time diagram, when `SimOptions::record` was set;
    /// [`crate::diagram::render`] draws it.
    pub diagram: Option<Box<crate::diagram::Diagram>>,
}

impl Outcome {
    /// The closing line of a run.
    pub fn summary_line(&self) -> String {
        format!(
            "seed={} steps={} decided={} batched={} violations={} trace_hash={:016x}",
            self.seed,
            self.steps,
            self.decided,
            self.batched,
            self.violations.len(),
            self.trace_hash
        )
    }

    /// The command that replays this run.
    pub fn replay_command(&self, opts: &SimOptions) -> String {
        let mut cmd = format!(
            "cargo run --release -p paxos-sim --bin sim -- --seed {} --nodes {} --learners {} --steps {}",
            self.seed, self.nodes, self.learners, opts.ticks
        );
        if let Some(s) = &opts.schedule {
            cmd.push_str(&format!(" --schedule '{s}'"));
        }
        if let Some(b) = opts.bug {
            cmd.push_str(&format!(" --bug {b:?}"));
        }
        if let Some(d) = opts.disk {
            cmd.push_str(&format!(" --disk-fail {}", d.fail_rate));
        }
        if opts.ack_before_sync {
            cmd.push_str(" --ack-before-sync");
        }
        if opts.host == Some(HostMix::kind()) {
            cmd.push_str(" --kind-host");
        }
        // The sizes are drawn for the drawn voter count: printed, so a
        // replay with other overrides keeps them.
        cmd.push_str(&format!(
            " --quorums {}",
            crate::quorums::show(self.quorums)
        ));
        cmd + " --trace"
    }
}
