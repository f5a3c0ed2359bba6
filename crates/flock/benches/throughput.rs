//! Benchmark 1: publish → `BatchSpec::size(100)` → no-op engine, against a raw
//! baseline measured in the same run (tokio mpsc + `Vec` accumulator flushing every
//! 100). Reports artifacts per second; the ratio is printed at the end.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flock::prelude::*;
#[cfg(feature = "duckdb-prebuilt")]
use proc_cpu::stat_cpu;
use serde::{Deserialize, Serialize};
#[cfg(feature = "duckdb-prebuilt")]
use tracing_subscriber::layer::SubscriberExt;

#[cfg(feature = "duckdb-prebuilt")]
#[path = "support/proc_cpu.rs"]
mod proc_cpu;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    n: u64,
}

const PER_ITER: u64 = 100_000;

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_time().build().expect("runtime")
}

/// Publishes `n` events through a flock with one batching agent; returns the time.
async fn flock_run(n: u64) -> Duration {
    let flock = Flock::builder().no_trace().build();
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    flock
        .agent("sink")
        .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(100)))
        .max_concurrency(4)
        .with_engine(batch_fn(
            move |_: &EngineContext, batch: Vec<Arc<Event>>| {
                sink.fetch_add(batch.len(), Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    let start = Instant::now();
    for i in 0..n {
        flock.publish(Event { n: i }).await.expect("publish");
    }
    flock.run_until_idle().await;
    let elapsed = start.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed) as u64, n);
    flock.shutdown().await;
    elapsed
}

/// The floor: an mpsc channel into a task that collects 100 at a time.
async fn baseline_run(n: u64) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Arc<Event>>();
    let consumer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(100);
        let mut seen = 0u64;
        while let Some(e) = rx.recv().await {
            batch.push(e);
            if batch.len() == 100 {
                seen += std::hint::black_box(std::mem::take(&mut batch)).len() as u64;
            }
        }
        seen + batch.len() as u64
    });
    let start = Instant::now();
    for i in 0..n {
        tx.send(Arc::new(Event { n: i })).expect("send");
    }
    drop(tx);
    let seen = consumer.await.expect("consumer");
    let elapsed = start.elapsed();
    assert_eq!(seen, n);
    elapsed
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(PER_ITER));
    group.sample_size(10);
    for multi in [false, true] {
        let flavor = if multi {
            "multi_thread"
        } else {
            "current_thread"
        };
        let rt = runtime(multi);
        group.bench_function(format!("flock_batch100/{flavor}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(flock_run(PER_ITER))).sum());
        });
        group.bench_function(format!("baseline_mpsc_vec100/{flavor}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(baseline_run(PER_ITER)))
                    .sum()
            });
        });
    }
    group.finish();

    // The ratio, from the flock and the floor run in turn (each first in turn), so
    // that a change of the machine's speed during the run hits both: the floor
    // alone moves by a third between runs of the same hour. Per round the two rates
    // and their ratio; then the median ratio, at 100k (criterion's size) and 1M.
    for multi in [false, true] {
        let rt = runtime(multi);
        let flavor = if multi {
            "multi_thread"
        } else {
            "current_thread"
        };
        for n in [PER_ITER, 1_000_000] {
            let mut ratios = Vec::new();
            for round in 1..=5 {
                let (flock, base) = if round % 2 == 1 {
                    let flock = rt.block_on(flock_run(n));
                    (flock, rt.block_on(baseline_run(n)))
                } else {
                    let base = rt.block_on(baseline_run(n));
                    (rt.block_on(flock_run(n)), base)
                };
                let rate = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
                let ratio = rate(flock) / rate(base);
                ratios.push(ratio);
                println!(
                    "{n} artifacts, {flavor}, round {round}: flock {:.2} M/s, baseline {:.2} M/s, \
                     ratio {ratio:.2}",
                    rate(flock),
                    rate(base),
                );
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "{n} artifacts, {flavor}: median ratio {:.2} (five rounds, {:.2} to {:.2})",
                ratios[2], ratios[0], ratios[4]
            );
        }
    }
}

/// Benchmark 6: the same workload with every span exported into DuckDB, against
/// tracing off, on a current-thread runtime (the subscriber is thread-local).
#[cfg(feature = "duckdb-prebuilt")]
fn tracing_overhead(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("flock-bench-traces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = flock::TraceConfig::new(dir.join("traces.duckdb"))
        .service_name("bench")
        .build()
        .expect("trace pipeline");
    let rt = runtime(false);
    let mut group = c.benchmark_group("tracing");
    group.throughput(Throughput::Elements(PER_ITER));
    group.sample_size(10);
    group.bench_function("flock_batch100_traced/current_thread", |b| {
        let subscriber = tracing_subscriber::registry().with(guard.layer());
        let _default = tracing::subscriber::set_default(subscriber);
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(flock_run(PER_ITER))).sum());
    });
    group.finish();

    // Off and on alternate, five times, each going first in turn, so that a change
    // of load on the machine (or of the allocator's state) hits both; the median
    // ratio is the figure. Beside the wall clock, the CPU time of this thread (the
    // runtime's) and of the trace writer's threads: on a busy machine the writer
    // competes with the workload for the cores, which the wall clock shows and
    // the runtime thread's CPU time does not.
    let run = |traced: bool| {
        let subscriber = tracing_subscriber::registry().with(guard.layer());
        let _default = traced.then(|| tracing::subscriber::set_default(subscriber));
        let (cpu, writer) = (thread_cpu(), writer_cpu());
        let wall = rt.block_on(flock_run(1_000_000));
        (wall, thread_cpu() - cpu, writer_cpu() - writer)
    };
    let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    for round in 1..=5 {
        let (off, on) = if round % 2 == 1 {
            let off = run(false);
            (off, run(true))
        } else {
            let on = run(true);
            (run(false), on)
        };
        let ratio = off.0.as_secs_f64() / on.0.as_secs_f64();
        let cpu_ratio = off.1.as_secs_f64() / on.1.as_secs_f64();
        ratios.push(ratio);
        cpu_ratios.push(cpu_ratio);
        println!(
            "1M artifacts, current_thread, round {round}: tracing off {:.2} M/s, on {:.2} M/s \
             ({:.0}% of off); runtime thread CPU {:.2} s off, {:.2} s on ({:.0}%); trace writer \
             CPU {:.2} s",
            1.0 / off.0.as_secs_f64(),
            1.0 / on.0.as_secs_f64(),
            100.0 * ratio,
            off.1.as_secs_f64(),
            on.1.as_secs_f64(),
            100.0 * cpu_ratio,
            on.2.as_secs_f64(),
        );
    }
    ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    let report = guard.shutdown();
    println!(
        "tracing on: {:.0}% of off (median of 5; by the runtime thread's CPU time {:.0}%); \
         spans: {report}",
        100.0 * ratios[2],
        100.0 * cpu_ratios[2],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "duckdb-prebuilt")]
criterion_group!(benches, throughput, tracing_overhead);

/// CPU time (user and system) of the calling thread, from `/proc` (Linux).
#[cfg(feature = "duckdb-prebuilt")]
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/stat")
        .map(|stat| stat_cpu(&stat))
        .unwrap_or_default()
}

/// CPU time of the trace writer's threads (named `flock-traces`) so far.
#[cfg(feature = "duckdb-prebuilt")]
fn writer_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "flock-traces")
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| stat_cpu(&stat))
        .sum()
}

#[cfg(not(feature = "duckdb-prebuilt"))]
criterion_group!(benches, throughput);
criterion_main!(benches);
