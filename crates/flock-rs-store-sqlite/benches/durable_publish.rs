//! Durable publishes per second into a real SQLite file: many concurrent publishers
//! on a multi-thread runtime, each publish returning once committed, at both
//! durability levels; and the store's part of recovery, reading 100,000 waiting
//! artifacts back with `unconsumed`. Prints the figures after criterion's report.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flock_core::{Artifact, BlackboardStore, FlockType, Payload, TypeRegistry};
use flock_store_sqlite::{Durability, SqliteStore};
use serde::{Deserialize, Serialize};

/// A small, typical artifact: an order with a customer and an amount.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
#[flock(crate = "flock_core", name = "bench.Order")]
struct Order {
    id: u64,
    customer: String,
    amount: f64,
}

fn order(id: u64) -> Arc<Artifact> {
    Arc::new(Artifact::new(
        Payload::new(Order {
            id,
            customer: format!("customer-{}", id % 1000),
            amount: id as f64 * 0.5,
        }),
        "external",
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(dir: &tempfile::TempDir, name: &str, durability: Durability) -> Arc<SqliteStore> {
    let types = TypeRegistry::new();
    types.register::<Order>().expect("register");
    Arc::new(
        SqliteStore::options()
            .durability(durability)
            .types(types)
            .open(dir.path().join(name))
            .expect("open"),
    )
}

/// `total` publishes by `publishers` concurrent tasks (each publishing one after
/// the other, as an agent's outputs or an ingest loop would); the time until the
/// last returned.
async fn publish(store: &Arc<SqliteStore>, publishers: u64, total: u64) -> Duration {
    let per_task = total / publishers;
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    store
                        .publish(order(task * per_task + i))
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher");
    }
    start.elapsed()
}

/// `total` artifacts published by `publishers` concurrent tasks, each storing
/// `chunk` at a time with one `publish_all` (an ingest loop, or a run's outputs);
/// the time until the last returned.
async fn publish_all(
    store: &Arc<SqliteStore>,
    publishers: u64,
    chunk: u64,
    total: u64,
) -> Duration {
    let per_task = total / publishers;
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let ids: Vec<u64> = (task * per_task..(task + 1) * per_task).collect();
                for ids in ids.chunks(chunk as usize) {
                    let artifacts: Vec<_> = ids.iter().map(|&id| order(id)).collect();
                    store.publish_all(&artifacts).await.expect("publish_all");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher");
    }
    start.elapsed()
}

fn label(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => "full",
        _ => "normal",
    }
}

/// Publishes per criterion iteration: a multiple of every publisher count, so each
/// task publishes the same number and the count is exact.
const PER_ITER: u64 = 51_200;

fn durable_publish(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut group = c.benchmark_group("durable_publish");
    group.throughput(Throughput::Elements(PER_ITER));
    group.sample_size(10);
    for durability in [Durability::Full, Durability::Normal] {
        for publishers in [64, 512] {
            let name = format!("{}/{publishers}_publishers", label(durability));
            let store = open(
                &dir,
                &format!("{}-{publishers}.db", label(durability)),
                durability,
            );
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| rt.block_on(publish(&store, publishers, PER_ITER)))
                        .sum()
                });
            });
        }
    }
    // Batched: 10 tasks, each storing 100 artifacts per publish_all.
    let store = open(&dir, "full-publish-all.db", Durability::Full);
    group.bench_function("full/publish_all_100/10_publishers", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(publish_all(&store, 10, 100, PER_ITER)))
                .sum()
        });
    });
    group.finish();

    // The figures in plain lines, each from one more run into a fresh file.
    for durability in [Durability::Full, Durability::Normal] {
        for (publishers, total) in [(1, 2_000), (64, 204_800), (512, 204_800)] {
            let store = open(
                &dir,
                &format!("figure-{}-{publishers}.db", label(durability)),
                durability,
            );
            let elapsed = rt.block_on(publish(&store, publishers, total));
            println!(
                "durable publishes, synchronous={}, {publishers} publishers: {:.0}/s ({total} in {:.2} s)",
                label(durability).to_uppercase(),
                total as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
        }
    }
    let store = open(&dir, "figure-full-publish-all.db", Durability::Full);
    let total = 204_800;
    let elapsed = rt.block_on(publish_all(&store, 10, 100, total));
    println!(
        "durable publishes, synchronous=FULL, publish_all of 100 by 10 publishers: {:.0} artifacts/s ({total} in {:.2} s)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

const WAITING: u64 = 100_000;

/// The store's part of recovery: every artifact an agent has not consumed, read
/// back and decoded (typed) in arrival order.
fn unconsumed(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir, "waiting.db", Durability::Normal);
    store.register_agent("agent").expect("register");
    rt.block_on(async {
        let batch: Vec<_> = (0..WAITING).map(order).collect();
        for chunk in batch.chunks(10_000) {
            store.publish_all(chunk).await.expect("publish_all");
        }
    });
    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Elements(WAITING));
    group.sample_size(10);
    group.bench_function("unconsumed_100k", |b| {
        b.iter(|| {
            let waiting = rt.block_on(store.unconsumed("agent")).expect("unconsumed");
            assert_eq!(waiting.len() as u64, WAITING);
            waiting
        });
    });
    group.finish();

    // Reopened, as a restarted process reads it (cold page cache of SQLite's own).
    let path = store.path().to_owned();
    drop(store);
    let types = TypeRegistry::new();
    types.register::<Order>().expect("register");
    let start = Instant::now();
    let store = SqliteStore::options()
        .types(types)
        .open(&path)
        .expect("reopen");
    let waiting = rt.block_on(store.unconsumed("agent")).expect("unconsumed");
    let elapsed = start.elapsed();
    assert_eq!(waiting.len() as u64, WAITING);
    assert!(waiting[0].get::<Order>().is_some(), "decoded typed");
    println!(
        "recovery, store part: open + unconsumed of {WAITING} waiting artifacts: {:.0} ms",
        elapsed.as_secs_f64() * 1e3
    );
}

criterion_group!(benches, durable_publish, unconsumed);
criterion_main!(benches);
