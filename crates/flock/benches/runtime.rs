//! Benchmarks 2, 3, 4 and 7 of the runtime:
//! - `scaling`: cost per artifact at 10k, 100k, 1M published artifacts (10M printed
//!   once at the end), with the store keeping every artifact (its growth included)
//!   and, printed after, with retention dropping what was consumed; then each size
//!   again in fresh processes of this benchmark, so that every size faults in the
//!   memory it keeps (in one process the small sizes reuse what the flock before
//!   them freed);
//! - `deadlines`: how late timeouts fire on the real clock with 1 and 1k keyed
//!   batches started together, 100k active keyed batches whose deadlines are spread
//!   over the timeout (keys arriving at a steady rate, as real traffic does), and
//!   100k started in one burst (p50 / p99 / max, printed);
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

/// Whether the command line's filter (criterion's, e.g. `-- deadlines`) selects
/// `name`: the figures printed outside criterion's groups obey it too.
fn selected(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|filter| name.contains(filter.as_str()))
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

async fn publish_batched(n: u64, retention: bool) -> Duration {
    let mut builder = Flock::builder().no_trace();
    if retention {
        builder = builder.retention(flock::Retention::new().drop_consumed());
    }
    let flock = builder.build();
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

/// Set in a child process of [`fresh_process_cost`]: `N:kept` or `N:retention`.
const SCALING_CHILD: &str = "FLOCK_BENCH_SCALING_CHILD";

/// The cost per artifact of one flock of `n` artifacts in a new process of this
/// benchmark, median of `runs` processes: every size starts on a fresh heap and
/// faults in the memory it keeps, as a process that has just started does. In one
/// process, the small sizes reuse the memory the flock before them freed.
fn fresh_process_cost(n: u64, retention: bool, runs: usize) -> f64 {
    let mut costs: Vec<f64> = (0..runs)
        .map(|_| {
            let mode = if retention { "retention" } else { "kept" };
            let output = std::process::Command::new(std::env::current_exe().expect("the bench"))
                .arg("--bench")
                .env(SCALING_CHILD, format!("{n}:{mode}"))
                .output()
                .expect("a child process of the bench");
            assert!(
                output.status.success(),
                "the child process failed: {output:?}"
            );
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find_map(|line| line.strip_prefix("ns per artifact: "))
                .and_then(|ns| ns.trim().parse().ok())
                .expect("the child prints its cost")
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    costs[costs.len() / 2]
}

/// In a child process of [`fresh_process_cost`]: runs its one flock, prints the cost
/// per artifact and exits.
fn scaling_child() {
    let Ok(spec) = std::env::var(SCALING_CHILD) else {
        return;
    };
    let (n, mode) = spec.split_once(':').expect("N:mode");
    let n: u64 = n.parse().expect("N");
    let elapsed = current_thread().block_on(publish_batched(n, mode == "retention"));
    println!("ns per artifact: {}", elapsed.as_nanos() as f64 / n as f64);
    std::process::exit(0);
}

/// Prints benchmark 2: the cost per artifact at each size, as `cost(n, retention)`
/// measures it (with a note for the size's line), and max/min, for the store
/// keeping every artifact and then with retention. `how` names the measure.
fn print_scaling(how: &str, mut cost: impl FnMut(u64, bool) -> (f64, String)) {
    for retention in [false, true] {
        let label = if retention {
            "retention drop_consumed"
        } else {
            "every artifact kept"
        };
        let mut per_artifact = Vec::new();
        for n in [10_000_u64, 100_000, 1_000_000, 10_000_000] {
            let (ns, note) = cost(n, retention);
            per_artifact.push(ns);
            println!("scaling ({label}{how}{note}): {n:>10} artifacts: {ns:7.1} ns per artifact");
        }
        let (lo, hi) = per_artifact
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "scaling ({label}{how}): max/min cost per artifact = {:.2}",
            hi / lo
        );
    }
}

fn scaling(c: &mut Criterion) {
    scaling_child();
    let rt = current_thread();
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    for n in [10_000_u64, 100_000, 1_000_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(publish_batched(n, false)))
                    .sum()
            });
        });
    }
    group.finish();
    if !selected("scaling") {
        return;
    }
    // Best of three for the small sizes, one run of 10M (a few seconds).
    print_scaling("", |n, retention| {
        let runs = if n >= 10_000_000 { 1 } else { 3 };
        let best = (0..runs)
            .map(|_| rt.block_on(publish_batched(n, retention)))
            .min()
            .expect("a run");
        (best.as_nanos() as f64 / n as f64, String::new())
    });
    print_scaling(", each size in a fresh process", |n, retention| {
        let runs = if n >= 10_000_000 { 3 } else { 7 };
        let ns = fresh_process_cost(n, retention, runs);
        (ns, format!(", median of {runs}"))
    });
}

/// A keyed batch agent whose engine records, for each flush, how long after its
/// deadline it fired (`wait - timeout`, as the runtime measures the flush), with
/// the key.
fn lateness_agent(flock: &Flock, timeout: Duration) -> Arc<Mutex<Vec<(u32, Duration)>>> {
    let late: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
    let sink = late.clone();
    flock
        .agent("keyed")
        .consumes::<Event>(
            Subscribe::new()
                .batch(BatchSpec::size(1_000_000).timeout(timeout))
                .keyed_by(|e: &Event| e.tenant),
        )
        .max_concurrency(64)
        .with_engine(batch_fn(
            move |ctx: &EngineContext, batch: Vec<Arc<Event>>| {
                let metrics = ctx.batch.as_ref().expect("batch");
                sink.lock()
                    .push((batch[0].tenant, metrics.wait.saturating_sub(timeout)));
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    late
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Publishes one event per key at once (a burst) and returns each flush's lateness.
fn deadline_lateness(keys: u32, timeout: Duration) -> Vec<Duration> {
    multi_thread().block_on(async move {
        let flock = Flock::builder().no_trace().build();
        let late = lateness_agent(&flock, timeout);
        for tenant in 0..keys {
            flock
                .publish(Event { n: 0, tenant })
                .await
                .expect("publish");
        }
        tokio::time::sleep(timeout * 2).await;
        flock.run_until_idle().await;
        flock.shutdown().await;
        let mut late: Vec<Duration> = late.lock().iter().map(|&(_, d)| d).collect();
        late.sort_unstable();
        late
    })
}

/// `active` keyed batches whose deadlines are spread over the timeout: a new key
/// every `timeout / active`, for twice the timeout, so from the first deadline on
/// about `active` batches wait at every moment. Returns the lateness of the
/// batches whose deadline fell while the keys kept arriving (the first `active`).
fn spread_lateness(active: u32, timeout: Duration) -> Vec<Duration> {
    multi_thread().block_on(async move {
        let flock = Flock::builder().no_trace().build();
        let late = lateness_agent(&flock, timeout);
        let total = 2 * active;
        let rate = f64::from(active) / timeout.as_secs_f64();
        let start = tokio::time::Instant::now();
        let mut published = 0;
        while published < total {
            // Catch up with the schedule, then sleep for the next millisecond.
            let due = ((start.elapsed().as_secs_f64() * rate) as u32).min(total);
            while published < due {
                flock
                    .publish(Event {
                        n: 0,
                        tenant: published,
                    })
                    .await
                    .expect("publish");
                published += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(timeout + timeout / 2).await;
        flock.run_until_idle().await;
        flock.shutdown().await;
        let late = late.lock();
        assert_eq!(late.len(), total as usize, "every keyed batch flushed once");
        let mut late: Vec<Duration> = late
            .iter()
            .filter(|&&(key, _)| key < active)
            .map(|&(_, d)| d)
            .collect();
        late.sort_unstable();
        late
    })
}

fn print_lateness(what: &str, late: &[Duration]) {
    let at = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
    println!(
        "deadlines: {what}: lateness p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        late[late.len() - 1]
    );
}

fn deadlines(c: &mut Criterion) {
    if !selected("deadlines") {
        return;
    }
    let timeout = Duration::from_millis(300);
    for keys in [1_u32, 1_000] {
        let late = deadline_lateness(keys, timeout);
        assert_eq!(late.len(), keys as usize, "every keyed batch flushed once");
        print_lateness(&format!("{keys:>6} active keyed batches"), &late);
    }
    let late = spread_lateness(100_000, Duration::from_secs(1));
    print_lateness(
        "100000 active keyed batches, deadlines spread over a 1 s timeout",
        &late,
    );
    let late = deadline_lateness(100_000, timeout);
    assert_eq!(late.len(), 100_000, "every keyed batch flushed once");
    print_lateness(
        "100000 keyed batches started in one burst (all due within the burst)",
        &late,
    );
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
