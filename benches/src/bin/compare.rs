//! W1 and W2 on paxos-core and, with `--features peers`, on raft-rs 0.7 and
//! OmniPaxos 0.2 in the same process: median of 5 interleaved runs per
//! library and workload, then the ratios us/peer, then peak RSS.
//!
//! ```text
//! cargo run --release -p paxos-bench --bin compare
//! cargo run --release -p paxos-bench --features peers --bin compare
//! ```

use paxos_bench::{run_workload, Cluster, Replicated};

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

fn main() {
    keep_heap_warm();
    let runs = 5;
    let libs = libraries();
    // `compare W2` runs only the workloads whose name contains "W2".
    let only = std::env::args().nth(1).unwrap_or_default();
    for (workload, batch, n) in [("W1-batched", 64, 200_000), ("W2-one-at-a-time", 1, 20_000)] {
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
    }
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
        println!("peak_rss_kib={kib}");
    }
}
