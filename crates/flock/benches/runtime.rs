//! Benchmarks 2, 3, 4 and 7 of the runtime:
//! - `scaling`: cost per artifact at 10k, 100k, 1M published artifacts (10M printed
//!   once at the end): the blackboard keeps every artifact, so this includes the
//!   in-memory store's growth;
//! - `deadlines`: how late timeouts fire on the real clock with 1, 1k and 100k
//!   active keyed batches (p50 / p99 / max, printed);
//! - `idle`: `run_until_idle` on an idle flock;
//! - `subscriptions`: 10 agents with predicates over artifacts with visibility.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flock::{PublishOptions, prelude::*};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    n: u64,
    tenant: u32,
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn counting_agent(flock: &Flock, name: &str, sub: Subscribe<Event>) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    flock
        .agent(name)
        .consumes(sub)
        .max_concurrency(4)
        .with_engine(batch_fn(
            move |_: &EngineContext, batch: Vec<Arc<Event>>| {
                sink.fetch_add(batch.len(), Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    seen
}

async fn publish_batched(n: u64) -> Duration {
    let flock = Flock::builder().no_trace().build();
    let seen = counting_agent(&flock, "sink", Subscribe::new().batch(BatchSpec::size(100)));
    let start = Instant::now();
    for i in 0..n {
        flock
            .publish(Event { n: i, tenant: 0 })
            .await
            .expect("publish");
    }
    flock.run_until_idle().await;
    let elapsed = start.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed) as u64, n);
    flock.shutdown().await;
    elapsed
}

fn scaling(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    for n in [10_000_u64, 100_000, 1_000_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(publish_batched(n))).sum());
        });
    }
    group.finish();
    let mut per_artifact = Vec::new();
    for n in [10_000_u64, 100_000, 1_000_000, 10_000_000] {
        // Best of three for the small sizes, one run of 10M (a few seconds, ~3 GB).
        let runs = if n >= 10_000_000 { 1 } else { 3 };
        let best = (0..runs)
            .map(|_| rt.block_on(publish_batched(n)))
            .min()
            .expect("a run");
        let ns = best.as_nanos() as f64 / n as f64;
        per_artifact.push(ns);
        println!("scaling: {n:>10} artifacts: {ns:7.1} ns per artifact");
    }
    let (lo, hi) = per_artifact
        .iter()
        .fold((f64::MAX, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    println!("scaling: max/min cost per artifact = {:.2}", hi / lo);
}

/// Publishes one event per key at once and records, for each flush, how long after
/// its deadline it fired (`wait - timeout`, as the runtime measures the flush).
fn deadline_lateness(keys: u32, timeout: Duration) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let flock = Flock::builder().no_trace().build();
        let late: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let sink = late.clone();
        flock
            .agent("keyed")
            .consumes::<Event>(
                Subscribe::new()
                    .batch(BatchSpec::size(1_000_000).timeout(timeout))
                    .keyed_by(|e: &Event| e.tenant),
            )
            .max_concurrency(64)
            .with_engine(batch_fn(move |ctx: &EngineContext, _: Vec<Arc<Event>>| {
                let metrics = ctx.batch.as_ref().expect("batch");
                sink.lock().push(metrics.wait.saturating_sub(timeout));
                Ok::<_, String>(Outputs::none())
            }))
            .register()
            .expect("register");
        for tenant in 0..keys {
            flock
                .publish(Event { n: 0, tenant })
                .await
                .expect("publish");
        }
        tokio::time::sleep(timeout * 2).await;
        flock.run_until_idle().await;
        flock.shutdown().await;
        let mut late = late.lock().clone();
        late.sort_unstable();
        late
    })
}

fn deadlines(c: &mut Criterion) {
    let timeout = Duration::from_millis(300);
    for keys in [1_u32, 1_000, 100_000] {
        let late = deadline_lateness(keys, timeout);
        assert_eq!(late.len(), keys as usize, "every keyed batch flushed once");
        let at = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
        println!(
            "deadlines: {keys:>6} active keyed batches: lateness p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            late[late.len() - 1]
        );
    }
    // Criterion needs one measured function per group; time the 1k case.
    c.bench_function("deadlines/1k_keyed_batches_300ms", |b| {
        b.iter(|| deadline_lateness(1_000, Duration::from_millis(20)));
    });
}

fn idle(c: &mut Criterion) {
    let rt = current_thread();
    let flock = Flock::builder().no_trace().build();
    let _seen = counting_agent(
        &flock,
        "idle",
        Subscribe::new().batch(BatchSpec::size(100).timeout(Duration::from_secs(3600))),
    );
    rt.block_on(flock.publish(Event { n: 0, tenant: 0 }))
        .expect("publish");
    c.bench_function("idle/run_until_idle", |b| {
        b.iter(|| rt.block_on(flock.run_until_idle()));
    });
}

fn subscriptions(c: &mut Criterion) {
    const N: u64 = 100_000;
    let rt = current_thread();
    let mut group = c.benchmark_group("subscriptions");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("10_agents_predicates_visibility", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    rt.block_on(async {
                        let flock = Flock::builder().no_trace().build();
                        let mut seen = Vec::new();
                        for i in 0..10_u32 {
                            let sub = Subscribe::new()
                                .filter(move |e: &Event| e.n % 10 == u64::from(i))
                                .batch(BatchSpec::size(100));
                            let name = format!("agent_{i}");
                            let builder = flock.agent(name.as_str()).tenant(format!("t{}", i % 2));
                            let counter = Arc::new(AtomicUsize::new(0));
                            let sink = counter.clone();
                            builder
                                .consumes(sub)
                                .with_engine(batch_fn(
                                    move |_: &EngineContext, b: Vec<Arc<Event>>| {
                                        sink.fetch_add(b.len(), Ordering::Relaxed);
                                        Ok::<_, String>(Outputs::none())
                                    },
                                ))
                                .register()
                                .expect("register");
                            seen.push(counter);
                        }
                        let start = Instant::now();
                        for n in 0..N {
                            // Half public, half visible to tenant t0 only.
                            let visibility = if n % 2 == 0 {
                                Visibility::Public
                            } else {
                                Visibility::tenant("t0")
                            };
                            flock
                                .publish_with(
                                    Event { n, tenant: 0 },
                                    PublishOptions::new().visibility(visibility),
                                )
                                .await
                                .expect("publish");
                        }
                        flock.run_until_idle().await;
                        let elapsed = start.elapsed();
                        flock.shutdown().await;
                        let delivered: usize = seen.iter().map(|s| s.load(Ordering::Relaxed)).sum();
                        assert!(delivered > 0);
                        elapsed
                    })
                })
                .sum()
        });
    });
    group.finish();
}

criterion_group!(benches, scaling, deadlines, idle, subscriptions);
criterion_main!(benches);
