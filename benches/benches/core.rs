//! Criterion benches of paxos-core through its public API. Every workload
//! verifies, outside the timed region, that every node applied exactly the
//! commands proposed, in order.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use paxos_bench::{payload, run_workload, verify, Cluster};
use paxos_core::proto::{Accept, Ballot, Body, Entry, EntryKind, Message};
use prost::Message as _;
use std::time::{Duration, Instant};

fn workload(c: &mut Criterion, name: &str, nodes: u64, batch: u64, n: u64) {
    let mut g = c.benchmark_group("throughput");
    g.sample_size(10).throughput(Throughput::Elements(n));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| run_workload(&mut Cluster::elected(nodes), batch, n).elapsed)
                .sum()
        })
    });
    g.finish();
}

fn w1(c: &mut Criterion) {
    workload(c, "W1-3-nodes-64x128B", 3, 64, 200_000);
}

fn w2(c: &mut Criterion) {
    workload(c, "W2-3-nodes-1x128B", 3, 1, 20_000);
}

fn w1_five(c: &mut Criterion) {
    workload(c, "W1-5-nodes-64x128B", 5, 64, 200_000);
}

/// Ticks (and time) from a fresh cluster to a stable leader.
fn election(c: &mut Criterion) {
    let mut g = c.benchmark_group("election");
    g.bench_function("3-nodes-to-stable-leader", |b| {
        b.iter_batched(
            || Cluster::new(3),
            |mut cl| {
                let ticks = cl.elect_by_ticks();
                assert!(ticks > 0);
                cl
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A follower 100,000 entries behind rejoins; time until it applied them all.
fn catch_up(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut g = c.benchmark_group("catch-up");
    g.sample_size(10).throughput(Throughput::Elements(N));
    g.bench_function("follower-100k-behind", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut cl = Cluster::elected(3);
                let lagging = (cl.leader + 1) % 3;
                cl.down[lagging] = true;
                let mut seq = 0;
                while seq < N {
                    let end = (seq + 64).min(N);
                    while seq < end {
                        cl.propose(&payload(seq));
                        seq += 1;
                    }
                    while cl.applied[cl.leader].count < seq {
                        assert!(cl.pump(), "idle with two of three nodes up");
                    }
                }
                cl.down[lagging] = false;
                let start = Instant::now();
                while cl.applied[lagging].count < N {
                    cl.nodes[cl.leader].tick(); // heartbeats find the returning node
                    while cl.pump() {}
                }
                total += start.elapsed();
                verify(&cl, N);
            }
            total
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let entries: Vec<Entry> = (1..=64)
        .map(|slot| Entry {
            slot,
            ballot: Some(Ballot::new(3, 1)),
            kind: EntryKind::Normal as i32,
            data: payload(slot),
        })
        .collect();
    let msg = Message::new(
        1,
        2,
        Body::Accept(Accept {
            ballot: Some(Ballot::new(3, 1)),
            entries,
            committed: 10,
        }),
    );
    let wire = msg.encode_to_vec();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("encode-accept-64x128B", |b| {
        let mut buf = Vec::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            msg.encode(&mut buf).expect("capacity");
            buf.len()
        })
    });
    let bytes = bytes::Bytes::from(wire);
    g.bench_function("decode-accept-64x128B", |b| {
        b.iter(|| {
            let m = Message::decode(bytes.clone()).expect("valid");
            assert_eq!(m.to, 2);
            m
        })
    });
    g.finish();
}

/// The cost of a `Ready` when there is nothing to do.
fn empty_ready(c: &mut Criterion) {
    let mut cl = Cluster::elected(3);
    let node = &mut cl.nodes[cl.leader];
    assert!(!node.has_ready());
    c.bench_function("empty-ready", |b| {
        b.iter(|| {
            let rd = node.ready();
            assert!(
                rd.entries().is_empty()
                    && rd.persisted_messages().is_empty()
                    && rd.messages().is_empty()
            );
            node.advance(rd);
        })
    });
}

criterion_group!(
    benches,
    w1,
    w2,
    w1_five,
    election,
    catch_up,
    codec,
    empty_ready
);
criterion_main!(benches);
