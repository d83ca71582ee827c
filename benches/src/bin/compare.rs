//! W1 and W2 on paxos-core and, with `--features peers`, on raft-rs 0.7 and
//! OmniPaxos 0.2 in the same process: median of 5 interleaved runs per
//! library and workload, then the ratios us/peer and the rate of the
//! harness alone (no replication: the ceiling for any library), then each
//! library's peak RSS per workload, measured in a child process that runs
//! only that.
//!
//! ```text
//! cargo run --release -p paxos-bench --bin compare
//! cargo run --release -p paxos-bench --features peers --bin compare
//! ```

use paxos_bench::{run_workload, Cluster, HarnessOnly, Replicated};

/// The argument that makes the binary a child measuring one library's
/// peak memory on one workload: `compare __peak LIB WORKLOAD`.
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

type Build = fn() -> Box<dyn Replicated>;

fn libraries() -> Vec<(&'static str, Build)> {
    let ours: (&'static str, Build) = ("paxos-core", || Box::new(Cluster::elected(3)));
    #[cfg(feature = "peers")]
    return vec![
        ours,
        ("raft-rs", || {
            Box::new(paxos_bench::peers::raft::RaftCluster::elected())
        }),
        ("omnipaxos", || {
            Box::new(paxos_bench::peers::omni::OmniCluster::elected())
        }),
    ];
    #[cfg(not(feature = "peers"))]
    vec![ours]
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

/// In a child: runs `workload` once on library `lib` and prints the
/// process's peak RSS, which then holds nothing of any other library.
fn peak_child(lib: &str, workload: &str) {
    let build = libraries().into_iter().find(|(name, _)| *name == lib);
    let spec = WORKLOADS.iter().find(|(name, _, _)| *name == workload);
    let (Some((_, build)), Some((_, batch, n))) = (build, spec) else {
        eprintln!("compare: unknown library {lib} or workload {workload}");
        std::process::exit(2);
    };
    run_workload(&mut *build(), *batch, *n);
    match peak_rss_kib() {
        Some(kib) => println!("peak_rss_kib={kib}"),
        None => std::process::exit(1),
    }
}

/// Each library's peak RSS on each workload, from a child process apiece.
fn peak_memory(libs: &[(&'static str, Build)], only: &str) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    for (workload, _, _) in WORKLOADS.iter().filter(|(w, _, _)| w.contains(only)) {
        let mut ours = None;
        for (name, _) in libs {
            let out = std::process::Command::new(&exe)
                .args([PEAK_CHILD, name, workload])
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

fn main() {
    keep_heap_warm();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, lib, workload] = args.as_slice() {
        if mode == PEAK_CHILD {
            peak_child(lib, workload);
            return;
        }
    }
    let runs = 5;
    let libs = libraries();
    // `compare W2` runs only the workloads whose name contains "W2".
    let only = args.first().cloned().unwrap_or_default();
    for (workload, batch, n) in WORKLOADS {
        if !workload.contains(&only) {
            continue;
        }
        // One untimed warm-up per library, then runs interleaved across
        // libraries so drift on a shared machine hits all of them alike.
        for (_, build) in &libs {
            run_workload(&mut *build(), batch, n);
        }
        let mut rates = vec![Vec::new(); libs.len()];
        for run in 0..runs {
            for (i, (name, build)) in libs.iter().enumerate() {
                let r = run_workload(&mut *build(), batch, n);
                eprintln!(
                    "{name} {workload} run {run}: {:.0} ops/s, {:.2} msgs/cmd",
                    r.ops_per_sec, r.msgs_per_cmd
                );
                rates[i].push(r.ops_per_sec);
            }
        }
        let medians: Vec<f64> = rates.into_iter().map(|r| median(r).0).collect();
        for (i, (name, _)) in libs.iter().enumerate() {
            println!("{name} {workload} ops_per_sec_median={:.0}", medians[i]);
        }
        for (i, (name, _)) in libs.iter().enumerate().skip(1) {
            println!(
                "ratio paxos-core/{name} {workload} = {:.2}",
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
    }
    peak_memory(&libs, &only);
    if !"W1-batched-5-nodes".contains(&only) {
        return;
    }
    // Five nodes: paxos-core only (the peers harness measures three).
    let rates: Vec<f64> = (0..runs)
        .map(|_| run_workload(&mut Cluster::elected(5), 64, 200_000).ops_per_sec)
        .collect();
    let (med, min, max) = median(rates);
    println!("paxos-core W1-batched-5-nodes ops_per_sec_median={med:.0} min={min:.0} max={max:.0}");
    if let Some(kib) = peak_rss_kib() {
        println!("peak_rss_kib={kib} (this whole process: every library and workload)");
    }
}
