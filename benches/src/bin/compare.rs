//! W1 and W2 on paxos-core: median of 5 runs each, plus peak RSS.
//!
//! `cargo run --release -p paxos-bench --bin compare`

use paxos_bench::{run_workload, Cluster};

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

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

fn main() {
    keep_heap_warm();
    let runs = 5;
    for (name, nodes, batch, n) in [
        ("W1-batched", 3, 64, 200_000),
        ("W2-one-at-a-time", 3, 1, 20_000),
        ("W1-batched-5-nodes", 5, 64, 200_000),
    ] {
        // One untimed warm-up so first-touch page faults do not skew run 1.
        run_workload(&mut Cluster::elected(nodes), batch, n);
        let mut rates = Vec::new();
        let mut msgs = 0.0;
        for run in 0..runs {
            let mut c = Cluster::elected(nodes);
            let r = run_workload(&mut c, batch, n);
            eprintln!(
                "paxos-core {name} run {run}: {:.0} ops/s, {:.2} msgs/cmd",
                r.ops_per_sec, r.msgs_per_cmd
            );
            rates.push(r.ops_per_sec);
            msgs = r.msgs_per_cmd;
        }
        let (med, min, max) = median(rates);
        println!("paxos-core {name} ops_per_sec_median={med:.0} min={min:.0} max={max:.0} msgs_per_cmd={msgs:.2}");
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak_rss_kib={kib}");
    }
}
