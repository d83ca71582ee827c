//! Replays one seed, or sweeps a range of seeds.
//!
//! ```text
//! sim --seed 42 --trace              # one run, every event on its own line
//! sim --seeds 0..1000                # a sweep with a progress line and a summary
//! sim --seed 7 --bug ApplyPastGap    # plant a protocol bug and watch it get caught
//! sim --seed 7 --diagram run.html    # the run as a space-time diagram
//! sim explore --bug ApplyPastGap ... # every state within bounds (see `sim explore --help`)
//! ```

use clap::Parser;
use paxos_core::PlantedBug;
use paxos_sim::disk::Disk;
use paxos_sim::host::HostMix;
use paxos_sim::trace::TraceHash;
use paxos_sim::{run, Schedule, SimOptions};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "Deterministic Multi-Paxos cluster simulator",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweep seeds A..B (B excluded).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Cluster size (3, 5, 7, ...); drawn from the seed when unset.
    #[arg(long)]
    nodes: Option<u64>,
    /// Learners besides the voters; drawn from the seed when unset.
    #[arg(long)]
    learners: Option<u64>,
    /// Ticks of the fault phase.
    #[arg(long, default_value_t = 500)]
    steps: u64,
    /// Ticks allowed for the liveness phase after healing.
    #[arg(long, default_value_t = 1500)]
    liveness: u64,
    /// Print every message, crash, partition and decision.
    #[arg(long)]
    trace: bool,
    /// Scripted faults instead of random ones, e.g. "50:crash2/10,80:heal".
    #[arg(long, value_parser = Schedule::parse)]
    schedule: Option<Schedule>,
    /// Plant a protocol bug (one of `PlantedBug::ALL`, e.g.
    /// SkipHighestBallotAdoption, LeadWithoutOwnPromise).
    #[arg(long, value_parser = paxos_sim::parse_bug)]
    bug: Option<PlantedBug>,
    /// Drive every Ready the kind way (one at a time, persisted whole)
    /// instead of the host behaviours the seed draws.
    #[arg(long)]
    kind_host: bool,
    /// Quorum sizes Q1/Q2 (`4/2`; `m` for a majority, or `majority`);
    /// drawn from the seed when unset.
    #[arg(long, value_parser = paxos_sim::quorums::parse)]
    quorums: Option<paxos_sim::quorums::Sizes>,
    /// Chance that a sync fails (0: a healthy disk); drawn from the seed
    /// when unset (half the seeds get a failing disk).
    #[arg(long)]
    disk_fail: Option<f64>,
    /// Plant a host bug: send replies before each sync (answering
    /// clients too, which rule D5 allows), and leave them out when it fails.
    #[arg(long)]
    ack_before_sync: bool,
    /// Write a space-time diagram of the run to FILE: one self-contained
    /// HTML page with a lane per node, an arrow per delivered message
    /// (kind and ballot), drops, duplicates, crashes, faults, each node's
    /// committed slot and the first violation. Works with every other
    /// option of a single run; the run itself is unchanged.
    #[arg(long, value_name = "FILE", conflicts_with = "seeds")]
    diagram: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Explore every state of a small cluster within bounds, breadth first
    /// (a violation comes with a shortest trace), or replay an explored
    /// trace.
    Explore(paxos_sim::explore::cli::ExploreArgs),
}

/// Prints a line; a closed pipe (`sim ... | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B")?;
    let a: u64 = a.parse().map_err(|_| "bad start")?;
    let b: u64 = b.parse().map_err(|_| "bad end")?;
    if b <= a {
        return Err("empty range".into());
    }
    Ok((a, b))
}

fn options(args: &Args, seed: u64) -> SimOptions {
    SimOptions {
        seed,
        nodes: args.nodes,
        learners: args.learners,
        ticks: args.steps,
        liveness_ticks: args.liveness,
        schedule: args.schedule.clone(),
        bug: args.bug,
        trace: args.trace,
        host: args.kind_host.then(HostMix::kind),
        quorums: args.quorums,
        disk: args.disk_fail.map(Disk::failing),
        ack_before_sync: args.ack_before_sync,
        record: args.diagram.is_some(),
        ..SimOptions::default()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Explore(e)) = &args.command {
        return paxos_sim::explore::cli::run(e);
    }
    if let Some((a, b)) = args.seeds {
        return sweep(&args, a, b);
    }
    let opts = options(&args, args.seed.unwrap_or(0));
    let out = run(opts.clone());
    say!(
        "nodes={} learners={} quorums={} ops={}/{} elections={} events={} mix={:?} host={:?} disk={:?} sync_failures={}",
        out.nodes,
        out.learners,
        paxos_sim::quorums::show(out.quorums),
        out.ops.1,
        out.ops.0,
        out.elections,
        out.events,
        out.mix,
        out.host,
        out.disk,
        out.sync_failures
    );
    for v in &out.violations {
        say!("VIOLATION {v}");
    }
    if !out.undecided_keys.is_empty() {
        say!(
            "linearizability undecided (budget) on keys {:?}",
            out.undecided_keys
        );
    }
    if let Some(path) = &args.diagram {
        let html = paxos_sim::diagram::render(&out).unwrap_or_default();
        if let Err(e) = std::fs::write(path, html) {
            eprintln!("cannot write the diagram to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("diagram written to {}", path.display());
    }
    say!("{}", out.summary_line());
    if out.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn sweep(args: &Args, a: u64, b: u64) -> ExitCode {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let (mut steps, mut decided, mut violations, mut undecided) = (0u64, 0u64, 0usize, 0usize);
    let mut batched = 0u64;
    let mut failing = Vec::new();
    // Every seed's trace hash folded in seed order: one number for the sweep.
    let mut sweep_hash = TraceHash::default();
    for seed in a..b {
        let opts = options(args, seed);
        let out = run(opts.clone());
        sweep_hash.mix(&[seed, out.trace_hash]);
        steps += out.steps;
        decided += out.decided;
        batched += out.batched;
        undecided += out.undecided_keys.len();
        if !out.violations.is_empty() {
            violations += out.violations.len();
            eprintln!(
                "seed {seed}: {} — replay: {}",
                out.violations[0],
                out.replay_command(&opts)
            );
            failing.push(seed);
        }
        if last_progress.elapsed().as_secs() >= 2 || seed + 1 == b {
            last_progress = Instant::now();
            let done = seed + 1 - a;
            eprintln!(
                "progress: {done}/{} seeds, {:.1} seeds/s, {violations} violations",
                b - a,
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    say!(
        "elapsed={secs:.1}s seeds_per_sec={:.1} failing_seeds={failing:?} lin_undecided={undecided}",
        (b - a) as f64 / secs
    );
    say!(
        "seeds={} steps={steps} decided={decided} batched={batched} violations={violations} trace_hash={:016x}",
        b - a,
        sweep_hash.value()
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
