//! `kvnode bench`: closed-loop load. Each of `concurrency` clients keeps one
//! request in flight (a put with its own session, or a read), retrying
//! through redirects and failures like any client. Prints a progress line
//! each second and a summary with latency percentiles from an HDR histogram.

use crate::api::{CLIENT_ID_HEADER, SEQ_HEADER};
use crate::client::Client;
use crate::commands::kv_path;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::{Method, StatusCode};
use paxos_core::SplitMix64;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past the end a request may still finish.
const GRACE: Duration = Duration::from_secs(1);

/// What `bench` is told on the command line.
#[derive(Clone, Debug)]
pub(crate) struct BenchOptions {
    pub(crate) endpoints: Vec<String>,
    pub(crate) concurrency: u64,
    pub(crate) duration: Duration,
    pub(crate) value_size: usize,
    pub(crate) read_ratio: f64,
    pub(crate) stale_reads: bool,
    pub(crate) keys: u64,
    /// Writes rotate through this many client ids (0: one per worker).
    pub(crate) clients: u64,
    /// The first of those ids.
    pub(crate) session_base: u64,
}

/// Counters every client bumps.
#[derive(Debug, Default)]
struct Totals {
    writes: AtomicU64,
    reads: AtomicU64,
    errors: AtomicU64,
    /// Requests still unanswered when the run ended.
    unfinished: AtomicU64,
    /// Microseconds since the start at the last completion, and the longest
    /// gap between two completions: the cluster's longest stall (a
    /// failover shows up here).
    last_done: AtomicU64,
    longest_gap: AtomicU64,
    /// Writes started, for `--clients`: write k goes out as client
    /// k mod N, sequence k / N + 1.
    started: AtomicU64,
}

impl Totals {
    fn done(&self, start: Instant) {
        let now = start.elapsed().as_micros() as u64;
        let prev = self.last_done.swap(now, Relaxed);
        self.longest_gap
            .fetch_max(now.saturating_sub(prev), Relaxed);
    }
}

/// A float in `[0, 1)` from the generator's top 53 bits.
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 3 significant digits; grows to fit any latency.
    let mut h = Histogram::new(3).expect("3 significant digits are in range");
    h.auto(true);
    h
}

/// Runs the load and prints the summary.
pub(crate) fn run(opts: BenchOptions) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(bench(opts))
}

async fn bench(opts: BenchOptions) -> Result<(), String> {
    // Generous: a request may span a failover.
    let client =
        Client::new(&opts.endpoints, Duration::from_secs(15)).map_err(|e| e.to_string())?;
    let totals = Arc::new(Totals::default());
    let start = Instant::now();
    let end = start + opts.duration;
    println!(
        "bench: {} clients for {:?}, {}-byte values, read ratio {:.2}{}, {} keys, endpoints {}",
        opts.concurrency,
        opts.duration,
        opts.value_size,
        opts.read_ratio,
        if opts.stale_reads { " (stale)" } else { "" },
        opts.keys,
        client.endpoints().join(",")
    );
    let mut workers = Vec::new();
    for w in 0..opts.concurrency {
        let (client, totals, opts) = (client.clone(), totals.clone(), opts.clone());
        workers.push(tokio::spawn(async move {
            worker(w, client, &opts, &totals, start, end).await
        }));
    }
    let progress = tokio::spawn(progress(totals.clone(), start, end));
    let mut hist = histogram();
    for w in workers {
        let h = w.await.map_err(|e| e.to_string())?;
        hist.add(&h).map_err(|e| e.to_string())?;
    }
    progress.abort();
    let took = start.elapsed().as_secs_f64();
    let (writes, reads, errors) = (
        totals.writes.load(Relaxed),
        totals.reads.load(Relaxed),
        totals.errors.load(Relaxed),
    );
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!("summary:");
    println!(
        "  ops        {} (puts {writes}, gets {reads}), errors {errors}, unfinished {}",
        writes + reads,
        totals.unfinished.load(Relaxed)
    );
    println!(
        "  throughput {:.0} ops/s ({:.0} puts/s)",
        (writes + reads) as f64 / took,
        writes as f64 / took
    );
    println!(
        "  latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1000.0
    );
    println!(
        "  longest gap between completions {:.1} ms",
        totals.longest_gap.load(Relaxed) as f64 / 1000.0
    );
    if writes + reads == 0 {
        return Err("no request succeeded".into());
    }
    Ok(())
}

async fn worker(
    w: u64,
    client: Client,
    opts: &BenchOptions,
    totals: &Totals,
    start: Instant,
    end: Instant,
) -> Histogram<u64> {
    let mut hist = histogram();
    let mut rng = SplitMix64::new(crate::ids::random_u64());
    let session = crate::ids::random_u64();
    let mut seq = 0u64;
    let session_base = opts.session_base;
    let value: Bytes = (0..opts.value_size)
        .map(|i| b'a' + ((i as u64 + w) % 26) as u8)
        .collect::<Vec<u8>>()
        .into();
    while Instant::now() < end {
        let key = format!("bench-{}", rng.range(0, opts.keys));
        let read = unit(&mut rng) < opts.read_ratio;
        let (method, mut path, headers, body) = if read {
            (Method::GET, kv_path(&key), Vec::new(), Bytes::new())
        } else {
            let (client, s) = if opts.clients == 0 {
                seq += 1;
                (session, seq)
            } else {
                let k = totals.started.fetch_add(1, Relaxed);
                (
                    session_base.wrapping_add(k % opts.clients),
                    k / opts.clients + 1,
                )
            };
            let headers = vec![
                (CLIENT_ID_HEADER, client.to_string()),
                (SEQ_HEADER, s.to_string()),
            ];
            (Method::PUT, kv_path(&key), headers, value.clone())
        };
        if read && opts.stale_reads {
            path.push_str("?stale=true");
        }
        let began = Instant::now();
        // A request still retrying well after the end is abandoned, not
        // waited for: the run ends on time even without a leader.
        let cutoff = tokio::time::Instant::from_std(end + GRACE);
        let Ok(result) =
            tokio::time::timeout_at(cutoff, client.call(method, &path, &headers, body)).await
        else {
            totals.unfinished.fetch_add(1, Relaxed);
            break;
        };
        let ok = matches!(&result, Ok(r) if r.status == StatusCode::OK
            || (read && r.status == StatusCode::NOT_FOUND));
        if ok {
            let _ = hist.record(began.elapsed().as_micros().max(1) as u64);
            let counter = if read { &totals.reads } else { &totals.writes };
            counter.fetch_add(1, Relaxed);
            totals.done(start);
        } else {
            totals.errors.fetch_add(1, Relaxed);
            // Back off a little so a broken cluster is not hammered.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    hist
}

async fn progress(totals: Arc<Totals>, start: Instant, end: Instant) {
    let mut last = 0;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    while Instant::now() < end {
        tick.tick().await;
        let ops = totals.writes.load(Relaxed) + totals.reads.load(Relaxed);
        println!(
            "  [{:>4.0}s] {:>8} ops/s  total {:>9}  errors {}",
            start.elapsed().as_secs_f64(),
            ops - last,
            ops,
            totals.errors.load(Relaxed)
        );
        last = ops;
    }
}
