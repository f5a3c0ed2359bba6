//! The PostgreSQL store, measured against the server `FLOCK_TEST_POSTGRES_URL` names
//! (`cargo xtask bench --bench postgres` starts a throw-away one): durable
//! publishes per second with 1 to 32 concurrent publishers (one transaction each,
//! committed before `publish` returns), `publish_all` of 100 per transaction, and
//! feed throughput (pages of 500 read back in store order). Prints a summary line
//! per figure after criterion's report.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flock_core::{Artifact, BlackboardStore, ClusterStore, Payload, TypeRegistry};
use flock_store_postgres::PostgresStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, flock_core::FlockType)]
#[flock(crate = "flock_core", name = "bench.Order")]
struct Order {
    id: u64,
    customer: String,
    amount: f64,
}

/// Publishes per measured iteration.
const PUBLISHES: usize = 512;
/// Artifacts in the store the feed benchmark reads.
const FEED_SIZE: usize = 20_000;
const PAGE: usize = 500;

fn order(id: u64) -> Arc<Artifact> {
    let order = Order {
        id,
        customer: format!("customer-{}", id % 97),
        amount: 12.5,
    };
    Arc::new(Artifact::new(Payload::new(order), "external"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(pool: usize) -> PostgresStore {
    let url = std::env::var("FLOCK_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "FLOCK_TEST_POSTGRES_URL is not set: run `cargo xtask bench --bench postgres` \
             (it starts a throw-away PostgreSQL), or start one with \
             `export FLOCK_TEST_POSTGRES_URL=$(cargo xtask postgres start)`"
        )
    });
    let types = TypeRegistry::new();
    types.register::<Order>().expect("register");
    PostgresStore::builder(&url)
        .schema(format!("bench_{}", uuid::Uuid::now_v7().simple()))
        .types(types)
        .max_connections(pool.try_into().expect("a pool of at least one"))
        .connect()
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at FLOCK_TEST_POSTGRES_URL: {err}"))
}

/// `PUBLISHES` publishes, one artifact per transaction, from `publishers` tasks.
async fn publish_run(store: &Arc<PostgresStore>, publishers: usize) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (p..PUBLISHES).step_by(publishers) {
                    store.publish(order(i as u64)).await.expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher");
    }
    start.elapsed()
}

/// `PUBLISHES` artifacts as `publish_all` calls of 100 (the last shorter).
async fn publish_all_run(store: &PostgresStore) -> Duration {
    let batches: Vec<Vec<_>> = (0..PUBLISHES as u64)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|ids| ids.iter().map(|&i| order(i)).collect())
        .collect();
    let start = Instant::now();
    for batch in &batches {
        store.publish_all(batch).await.expect("publish_all");
    }
    start.elapsed()
}

/// Reads the whole feed in pages; returns the time and the artifacts read.
async fn feed_run(store: &PostgresStore) -> (Duration, usize) {
    let start = Instant::now();
    let (mut after, mut read) = (0, 0);
    loop {
        let page = store.feed(after, PAGE).await.expect("feed");
        let Some(&(last, _)) = page.last() else {
            break;
        };
        read += page.len();
        after = last;
    }
    (start.elapsed(), read)
}

fn publishes(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("postgres_publish");
    group.throughput(Throughput::Elements(PUBLISHES as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let mut summary = Vec::new();
    for publishers in [1, 4, 16, 32] {
        let store = Arc::new(rt.block_on(connect(publishers)));
        group.bench_function(format!("durable_publish/{publishers}_publishers"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(publish_run(&store, publishers)))
                    .sum()
            });
        });
        let elapsed = rt.block_on(publish_run(&store, publishers));
        summary.push(format!(
            "durable publishes, {publishers} publishers: {:.0}/s",
            PUBLISHES as f64 / elapsed.as_secs_f64()
        ));
    }
    let store = rt.block_on(connect(1));
    group.bench_function("publish_all_100", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(publish_all_run(&store)))
                .sum()
        });
    });
    let elapsed = rt.block_on(publish_all_run(&store));
    summary.push(format!(
        "publish_all of 100, 1 publisher: {:.0} artifacts/s",
        PUBLISHES as f64 / elapsed.as_secs_f64()
    ));
    group.finish();
    for line in summary {
        println!("{line}");
    }
}

fn feed(c: &mut Criterion) {
    let rt = runtime();
    let store = rt.block_on(async {
        let store = connect(4).await;
        let orders: Vec<_> = (0..FEED_SIZE as u64).map(order).collect();
        for chunk in orders.chunks(1_000) {
            store.publish_all(chunk).await.expect("fill");
        }
        store
    });
    let mut group = c.benchmark_group("postgres_feed");
    group.throughput(Throughput::Elements(FEED_SIZE as u64));
    group.sample_size(10);
    group.bench_function(format!("feed_{FEED_SIZE}_pages_of_{PAGE}"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (elapsed, read) = rt.block_on(feed_run(&store));
                    assert_eq!(read, FEED_SIZE);
                    elapsed
                })
                .sum()
        });
    });
    group.finish();
    let (elapsed, read) = rt.block_on(feed_run(&store));
    println!(
        "feed: {:.0} artifacts/s ({read} in pages of {PAGE}, decoded typed)",
        read as f64 / elapsed.as_secs_f64()
    );
}

criterion_group!(benches, publishes, feed);
criterion_main!(benches);
