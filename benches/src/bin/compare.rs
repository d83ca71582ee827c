//! W1 and W2 on paxos-core and, with `--features peers`, on raft-rs 0.7 and
//! OmniPaxos 0.2 in the same process: median of 5 interleaved runs per
//! library and workload, then the ratios us/peer and the rate of the
//! harness alone (no replication: the ceiling for any library), then each
//! library's peak RSS per workload, measured in a child process that runs
//! only that.
//!
//! Each peer is compared at its best setting for the workload. A quick
//! sweep (best of 3 runs per setting, interleaved, after one warm-up) picks
//! it, then that setting alone takes part in the median of 5 and the peak
//! memory run:
//!
//! - OmniPaxos: `ServerConfig::batch_size` in 1, 64, 256, 1024
//!   ([`paxos_bench::peers::omni::BATCH_SIZES`]); a partial batch is flushed
//!   by a tick as soon as the cluster is otherwise idle.
//! - raft-rs: `max_size_per_msg` in {unlimited, 1 MiB, 16 KiB} ×
//!   `max_inflight_msgs` in {256, 4096} × `batch_append` on/off
//!   ([`paxos_bench::peers::raft::Knobs::sweep`]).
//!
//! Then W1 on 5 nodes, paxos-core only, interleaved: with majorities
//! (3 and 3) and with flexible quorums Q1 = 4, Q2 = 2, and the ratio of the
//! two. Every node still applies every command in both.
//!
//! ```text
//! cargo run --release -p paxos-bench --bin compare
//! cargo run --release -p paxos-bench --features peers --bin compare
//! cargo run --release -p paxos-bench --bin compare -- W1-batched-5   # only the 5-node runs
//! ```
//!
//! An argument runs only the workloads whose name contains it.

use paxos_bench::{run_workload, Cluster, HarnessOnly, Replicated};

/// The argument that makes the binary a child measuring one library's
/// peak memory on one workload at one setting:
/// `compare __peak LIB WORKLOAD SETTING`.
const PEAK_CHILD: &str = "__peak";

/// (name, commands proposed per round, commands in all).
const WORKLOADS: [(&str, u64, u64); 2] =
    [("W1-batched", 64, 200_000), ("W2-one-at-a-time", 1, 20_000)];

/// The reference peers harness keeps freed heap mapped (glibc `mallopt`:
/// no mmap, no trimming) so first-touch page faults do not depend on run
/// order. The same settings, as glibc tunables, without unsafe code: the
/// binary re-runs itself once with them set.
const TUNABLES: &str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647";

fn keep_heap_warm() {
    if cfg!(all(target_os = "linux", target_env = "gnu"))
        && std::env::var_os("PAXOS_BENCH_WARM").is_none()
    {
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let status = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", TUNABLES)
            .env("PAXOS_BENCH_WARM", "1")
            .status();
        match status {
            Ok(s) => std::process::exit(s.code().unwrap_or(1)),
            Err(e) => eprintln!(
                "compare: cannot re-run with heap tunables ({e}); expect page-fault noise"
            ),
        }
    }
}

/// Builds a fresh, elected cluster.
type Build = Box<dyn Fn() -> Box<dyn Replicated>>;

/// One library at one setting.
struct Candidate {
    lib: &'static str,
    /// The settings, as printed; empty for paxos-core.
    setting: String,
    build: Build,
}

fn candidate(lib: &'static str, setting: String, build: Build) -> Candidate {
    Candidate {
        lib,
        setting,
        build,
    }
}

/// Per library (paxos-core first), the settings to sweep.
fn libraries() -> Vec<Vec<Candidate>> {
    let ours = vec![candidate(
        "paxos-core",
        String::new(),
        Box::new(|| Box::new(Cluster::elected(3))),
    )];
    #[cfg(feature = "peers")]
    {
        use paxos_bench::peers::{omni, raft};
        let raft = raft::Knobs::sweep()
            .into_iter()
            .map(|k| {
                let build: Build = Box::new(move || Box::new(raft::RaftCluster::elected_with(k)));
                candidate("raft-rs", k.to_string(), build)
            })
            .collect();
        let omni = omni::BATCH_SIZES
            .into_iter()
            .map(|b| {
                let build: Build =
                    Box::new(move || Box::new(omni::OmniCluster::elected_with_batch(b)));
                candidate("omnipaxos", format!("batch_size={b}"), build)
            })
            .collect();
        vec![ours, raft, omni]
    }
    #[cfg(not(feature = "peers"))]
    vec![ours]
}

/// Runs in the sweep per setting (the best counts).
const SWEEP_RUNS: usize = 3;

/// The fastest of `settings` on one workload: a warm-up, then
/// `SWEEP_RUNS` runs of each, interleaved. Prints every setting's rate.
fn pick<'a>(settings: &'a [Candidate], workload: &str, batch: u64, n: u64) -> &'a Candidate {
    if settings.len() == 1 {
        return &settings[0];
    }
    run_workload(&mut *(settings[0].build)(), batch, n);
    let mut best = vec![0.0f64; settings.len()];
    for _ in 0..SWEEP_RUNS {
        for (i, c) in settings.iter().enumerate() {
            best[i] = best[i].max(run_workload(&mut *(c.build)(), batch, n).ops_per_sec);
        }
    }
    for (c, rate) in settings.iter().zip(&best) {
        println!(
            "sweep {} {workload} {} ops_per_sec={rate:.0}",
            c.lib, c.setting
        );
    }
    let top = (0..settings.len())
        .max_by(|&a, &b| best[a].total_cmp(&best[b]))
        .expect("at least one setting");
    println!(
        "{} {workload} best_setting={}",
        settings[top].lib, settings[top].setting
    );
    &settings[top]
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// In a child: runs `workload` once on library `lib` at `setting` and
/// prints the process's peak RSS, which then holds nothing of any other
/// library.
fn peak_child(lib: &str, workload: &str, setting: &str) {
    let libs = libraries();
    let found = libs
        .iter()
        .flatten()
        .find(|c| c.lib == lib && c.setting == setting);
    let spec = WORKLOADS.iter().find(|(name, _, _)| *name == workload);
    let (Some(c), Some((_, batch, n))) = (found, spec) else {
        eprintln!("compare: unknown library {lib} at {setting:?} or workload {workload}");
        std::process::exit(2);
    };
    run_workload(&mut *(c.build)(), *batch, *n);
    match peak_rss_kib() {
        Some(kib) => println!("peak_rss_kib={kib}"),
        None => std::process::exit(1),
    }
}

/// Each library's peak RSS on each workload, at the setting chosen for it,
/// from a child process apiece.
fn peak_memory(chosen: &[(&'static str, Vec<&Candidate>)]) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    for (workload, cands) in chosen {
        let mut ours = None;
        for c in cands {
            let name = c.lib;
            let out = std::process::Command::new(&exe)
                .args([PEAK_CHILD, name, workload, &c.setting])
                .output();
            let kib = out.ok().and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .strip_prefix("peak_rss_kib=")?
                    .parse::<u64>()
                    .ok()
            });
            let Some(kib) = kib else {
                eprintln!("compare: no peak RSS for {name} {workload}");
                continue;
            };
            println!("{name} {workload} peak_rss_kib={kib}");
            match ours {
                None => ours = Some(kib),
                Some(us) => println!(
                    "ratio peak RSS paxos-core/{name} {workload} = {:.2}",
                    us as f64 / kib as f64
                ),
            }
        }
    }
}

/// The 5-node workload: paxos-core with majorities and with Q1 = 4, Q2 = 2.
const FIVE_NODES: &str = "W1-batched-5-nodes";

/// W1 on 5 nodes, majorities and flexible quorums interleaved, median of
/// `runs` each, and the ratio.
fn five_nodes(runs: usize) {
    // (name suffix, phase-1 quorum, phase-2 quorum)
    let variants: [(&str, Option<usize>, Option<usize>); 2] =
        [("", None, None), ("-q1=4-q2=2", Some(4), Some(2))];
    for (_, q1, q2) in variants {
        run_workload(&mut Cluster::elected_with_quorums(5, q1, q2), 64, 200_000);
    }
    let mut rates = vec![Vec::new(); variants.len()];
    for run in 0..runs {
        for (i, (suffix, q1, q2)) in variants.iter().enumerate() {
            let r = run_workload(&mut Cluster::elected_with_quorums(5, *q1, *q2), 64, 200_000);
            eprintln!(
                "paxos-core {FIVE_NODES}{suffix} run {run}: {:.0} ops/s, {:.2} msgs/cmd",
                r.ops_per_sec, r.msgs_per_cmd
            );
            rates[i].push(r.ops_per_sec);
        }
    }
    let mut medians = Vec::new();
    for ((suffix, _, _), r) in variants.iter().zip(rates) {
        let (med, min, max) = median(r);
        println!(
            "paxos-core {FIVE_NODES}{suffix} ops_per_sec_median={med:.0} min={min:.0} max={max:.0}"
        );
        medians.push(med);
    }
    println!(
        "ratio Q2=2/majorities {FIVE_NODES} = {:.2}",
        medians[1] / medians[0]
    );
}

fn main() {
    keep_heap_warm();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, lib, workload, setting] = args.as_slice() {
        if mode == PEAK_CHILD {
            peak_child(lib, workload, setting);
            return;
        }
    }
    let runs = 5;
    let libs = libraries();
    // `compare W2` runs only the workloads whose name contains "W2".
    let only = args.first().cloned().unwrap_or_default();
    let mut chosen = Vec::new();
    for (workload, batch, n) in WORKLOADS {
        if !workload.contains(&only) {
            continue;
        }
        // Each peer at its fastest setting for this workload.
        let best: Vec<&Candidate> = libs
            .iter()
            .map(|settings| pick(settings, workload, batch, n))
            .collect();
        // One untimed warm-up per library, then runs interleaved across
        // libraries so drift on a shared machine hits all of them alike.
        for c in &best {
            run_workload(&mut *(c.build)(), batch, n);
        }
        let mut rates = vec![Vec::new(); best.len()];
        for run in 0..runs {
            for (i, c) in best.iter().enumerate() {
                let r = run_workload(&mut *(c.build)(), batch, n);
                eprintln!(
                    "{} {workload} run {run}: {:.0} ops/s, {:.2} msgs/cmd",
                    c.lib, r.ops_per_sec, r.msgs_per_cmd
                );
                rates[i].push(r.ops_per_sec);
            }
        }
        let medians: Vec<f64> = rates.into_iter().map(|r| median(r).0).collect();
        for (i, c) in best.iter().enumerate() {
            println!("{} {workload} ops_per_sec_median={:.0}", c.lib, medians[i]);
        }
        for (i, c) in best.iter().enumerate().skip(1) {
            println!(
                "ratio paxos-core/{} {workload} = {:.2}",
                c.lib,
                medians[0] / medians[i]
            );
        }
        // The ceiling: the same workload with no library in the way.
        let floor: Vec<f64> = (0..runs)
            .map(|_| run_workload(&mut HarnessOnly::new(), batch, n).ops_per_sec)
            .collect();
        println!(
            "harness-only {workload} ops_per_sec_median={:.0} (no replication: no library can go faster here)",
            median(floor).0
        );
        chosen.push((workload, best));
    }
    peak_memory(&chosen);
    if !FIVE_NODES.contains(&only) {
        return;
    }
    five_nodes(runs);
    if let Some(kib) = peak_rss_kib() {
        println!("peak_rss_kib={kib} (this whole process: every library and workload)");
    }
}
