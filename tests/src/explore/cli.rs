//! `sim explore`: the explorer's command line. Searches every state within
//! the bounds its flags set, or replays one trace a search printed.
//!
//! ```text
//! sim explore                                   # the CI bound
//! sim explore --depth 12 --crashes 0            # deeper, without crashes
//! sim explore --bug CommitWithoutQuorum         # a planted bug's shortest trace
//! sim explore --replay campaign:1,deliver:0     # replay a trace, show what it did
//! ```

use super::{explore_from, first_disallowed, parse_trace, replay, show_trace, Action, Bounds};
use paxos_core::PlantedBug;
use std::process::ExitCode;

/// The flags of `sim explore`: the bounds of a search, a planted bug,
/// and a trace to replay instead of searching.
#[derive(clap::Args, Debug, Clone)]
pub struct ExploreArgs {
    /// Voters.
    #[arg(long, default_value_t = Bounds::default().nodes)]
    nodes: u64,
    /// Actions from the start.
    #[arg(long, default_value_t = Bounds::default().depth)]
    depth: usize,
    /// Host `campaign()` calls.
    #[arg(long, default_value_t = Bounds::default().campaigns)]
    campaigns: u32,
    /// Proposals.
    #[arg(long, default_value_t = Bounds::default().proposals)]
    proposals: u32,
    /// Reads asked of a leader (`read_index`).
    #[arg(long, default_value_t = Bounds::default().reads)]
    reads: u32,
    /// Leadership transfers asked of a leader.
    #[arg(long, default_value_t = Bounds::default().transfers)]
    transfers: u32,
    /// Removals of a voter proposed at a leader.
    #[arg(long, default_value_t = Bounds::default().removals)]
    removals: u32,
    /// Forged messages, each a Prepare from another member in a ballot
    /// past the highest round allowed, which must be refused.
    #[arg(long, default_value_t = Bounds::default().forgeries)]
    forgeries: u32,
    /// Ticks.
    #[arg(long, default_value_t = Bounds::default().ticks)]
    ticks: u32,
    /// Waits: every node ticks `--election-ticks` times at once.
    #[arg(long, default_value_t = Bounds::default().waits)]
    waits: u32,
    /// Election timeout and stickiness window, in ticks.
    #[arg(long, default_value_t = Bounds::default().election_ticks)]
    election_ticks: u32,
    /// Lease reads: each node's `read_lease_ticks` (0: off).
    #[arg(long, default_value_t = Bounds::default().lease_ticks)]
    lease_ticks: u32,
    /// Flexible quorums as PHASE1,PHASE2 (each node's `phase1_quorum` and
    /// `phase2_quorum`); majorities without it.
    #[arg(long, value_name = "Q1,Q2", value_parser = parse_quorums)]
    quorums: Option<(usize, usize)>,
    /// Each node's `max_msg_entries` (entries per Accept or Promise); the
    /// configuration's default without it.
    #[arg(long, value_parser = parse_positive)]
    max_msg_entries: Option<usize>,
    /// Lagging hosts: a node's host takes `Ready`s and holds them
    /// unpersisted until a flush (a crash meanwhile loses them).
    #[arg(long, default_value_t = Bounds::default().lags)]
    lags: u32,
    /// With `--lags`: the lagging host applies decided entries (and keeps
    /// confirmed reads) when it takes a `Ready`, before the persist.
    #[arg(long)]
    early_apply: bool,
    /// Compactions: a node's host snapshots its application at its applied
    /// slot and compacts its log up to there.
    #[arg(long, default_value_t = Bounds::default().compactions)]
    compactions: u32,
    /// Crashes.
    #[arg(long, default_value_t = Bounds::default().crashes)]
    crashes: u32,
    /// Messages lost.
    #[arg(long, default_value_t = Bounds::default().drops)]
    drops: u32,
    /// Messages delivered twice.
    #[arg(long, default_value_t = Bounds::default().duplicates)]
    duplicates: u32,
    /// Give up after this many distinct states.
    #[arg(long, default_value_t = Bounds::default().max_states)]
    max_states: usize,
    /// FIFO links (as TCP): only each link's oldest message moves.
    #[arg(long)]
    fifo: bool,
    /// With `--fifo`: deliveries of a message ahead of an older one on its
    /// link.
    #[arg(long, default_value_t = Bounds::default().reorders)]
    reorders: u32,
    /// Plant a protocol bug (one of `PlantedBug::ALL`).
    #[arg(long, value_parser = crate::parse_bug)]
    bug: Option<PlantedBug>,
    /// Replay this trace (as printed with a violation) instead of searching.
    #[arg(long, value_name = "TRACE", conflicts_with = "from")]
    replay: Option<String>,
    /// Search from the state this trace reaches instead of from the start:
    /// its actions spend the budgets and count toward `--depth`, and a
    /// counterexample is this trace and a shortest continuation of it.
    #[arg(long, value_name = "TRACE")]
    from: Option<String>,
    /// Write the replayed trace, or the counterexample found, to FILE as a
    /// space-time diagram (one action per tick).
    #[arg(long, value_name = "FILE")]
    diagram: Option<std::path::PathBuf>,
}

/// Writes `trace` as a diagram page to `path`.
fn draw(path: &std::path::Path, bounds: &Bounds, bug: Option<PlantedBug>, trace: &[Action]) {
    let d = super::diagram(bounds, bug, trace);
    let bug = bug.map_or(String::new(), |b| format!(", planted {b:?}"));
    let heading = format!("explored trace — {} voters{bug}", bounds.nodes);
    let page = crate::diagram::render_page(&d, "explored trace", &heading, &show_trace(trace));
    match std::fs::write(path, page) {
        Ok(()) => println!("diagram: {}", path.display()),
        Err(e) => eprintln!("sim explore: cannot write {}: {e}", path.display()),
    }
}

/// A count of at least one.
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_quorums(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("quorums {s:?}: expected Q1,Q2"))?;
    let n = |x: &str| x.trim().parse().map_err(|e| format!("quorums {s:?}: {e}"));
    Ok((n(a)?, n(b)?))
}

/// The flags that make `--replay` rebuild the cluster this search used,
/// with the budgets it had.
fn replay_flags(b: &Bounds, bug: Option<PlantedBug>) -> String {
    let mut f = format!(" --nodes {} --election-ticks {}", b.nodes, b.election_ticks);
    if let Some(bug) = bug {
        f += &format!(" --bug {bug:?}");
    }
    if b.fifo {
        f += &format!(" --fifo --reorders {}", b.reorders);
    }
    if b.early_apply {
        f += " --early-apply";
    }
    if b.lease_ticks > 0 {
        f += &format!(" --lease-ticks {}", b.lease_ticks);
    }
    if let (Some(q1), Some(q2)) = (b.phase1, b.phase2) {
        f += &format!(" --quorums {q1},{q2}");
    }
    if let Some(n) = b.max_msg_entries {
        f += &format!(" --max-msg-entries {n}");
    }
    for (flag, n) in [
        ("campaigns", b.campaigns),
        ("proposals", b.proposals),
        ("reads", b.reads),
        ("transfers", b.transfers),
        ("removals", b.removals),
        ("forgeries", b.forgeries),
        ("ticks", b.ticks),
        ("waits", b.waits),
        ("lags", b.lags),
        ("compactions", b.compactions),
        ("crashes", b.crashes),
        ("drops", b.drops),
        ("duplicates", b.duplicates),
    ] {
        f += &format!(" --{flag} {n}");
    }
    f
}

impl ExploreArgs {
    /// The bounds these flags set.
    pub fn bounds(&self) -> Bounds {
        let a = self;
        Bounds {
            nodes: a.nodes,
            depth: a.depth,
            campaigns: a.campaigns,
            proposals: a.proposals,
            reads: a.reads,
            transfers: a.transfers,
            removals: a.removals,
            forgeries: a.forgeries,
            ticks: a.ticks,
            waits: a.waits,
            election_ticks: a.election_ticks,
            lease_ticks: a.lease_ticks,
            phase1: a.quorums.map(|q| q.0),
            phase2: a.quorums.map(|q| q.1),
            max_msg_entries: a.max_msg_entries,
            lags: a.lags,
            early_apply: a.early_apply,
            compactions: a.compactions,
            crashes: a.crashes,
            drops: a.drops,
            duplicates: a.duplicates,
            max_states: a.max_states,
            fifo: a.fifo,
            reorders: a.reorders,
        }
    }
}

/// Searches the bounds `a` sets, or replays its trace. Exit status 0: no
/// violation; 1: a violation (with a shortest trace and the command that
/// replays it); 2: a trace that does not parse, or takes an action the
/// bounds do not allow where it comes.
pub fn run(a: &ExploreArgs) -> ExitCode {
    let bounds = a.bounds();
    if let Some(text) = &a.replay {
        let trace = match parse_trace(text) {
            Ok(trace) => trace,
            Err(e) => {
                eprintln!("sim explore: --replay: {e}");
                return ExitCode::from(2);
            }
        };
        let trace = &trace;
        if let Some((i, action)) = first_disallowed(&bounds, a.bug, trace) {
            eprintln!(
                "sim explore: --replay: action {} ({action}) is not allowed there within these bounds",
                i + 1
            );
            return ExitCode::from(2);
        }
        if let Some(path) = &a.diagram {
            draw(path, &bounds, a.bug, trace);
        }
        let (violations, lines) = replay(&bounds, a.bug, trace);
        for line in lines {
            println!("{line}");
        }
        for v in &violations {
            println!("VIOLATION {v}");
        }
        return if violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let prefix = match a.from.as_deref().map(parse_trace).transpose() {
        Ok(prefix) => prefix.unwrap_or_default(),
        Err(e) => {
            eprintln!("sim explore: --from: {e}");
            return ExitCode::from(2);
        }
    };
    let searched = explore_from(&bounds, a.bug, &prefix, |depth, states, new| {
        eprintln!("depth {depth}: {states} states, {new} new");
    });
    let r = match searched {
        Ok(r) => r,
        Err((i, action)) => {
            eprintln!(
                "sim explore: --from: action {} ({action}) is not allowed there within these bounds",
                i + 1
            );
            return ExitCode::from(2);
        }
    };
    println!("{bounds:?}");
    println!("{r}");
    match &r.counterexample {
        Some((trace, _)) => {
            if let Some(path) = &a.diagram {
                draw(path, &bounds, a.bug, trace);
            }
            println!(
                "replay: cargo run --release -p paxos-sim --bin sim -- explore{} --replay {}",
                replay_flags(&bounds, a.bug),
                show_trace(trace)
            );
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
