//! Join + batch throughput: temperature and pressure readings of 1,000 devices,
//! correlated by device id within 30 s and batched 100 pairs at a time (the guide's
//! smart factory at volume), against the plain `BatchSpec::size(100)` path on the
//! same number of artifacts. Reports artifacts per second; the ratio is printed at
//! the end.

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
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Temperature {
    device: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Pressure {
    device: u32,
}

/// Artifacts per iteration (half temperatures, half pressures).
const PER_ITER: u64 = 100_000;
const DEVICES: u64 = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Publishes `n / 2` correlated pairs (temperatures of 1,000 devices, then their
/// pressures, round after round); returns the time.
async fn join_run(n: u64) -> Duration {
    let flock = Flock::builder().no_trace().build();
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    flock
        .agent("qc")
        .consumes_all(
            AllOf::new()
                .of::<Temperature>()
                .of::<Pressure>()
                .join(
                    JoinSpec::by(|t: &Temperature| t.device)
                        .by(|p: &Pressure| p.device)
                        .within(Duration::from_secs(30)),
                )
                .batch(BatchSpec::size(100)),
        )
        .with_engine(group_batch_fn(
            move |_: &EngineContext, groups: Vec<Inputs>| {
                sink.fetch_add(groups.len() * 2, Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    let start = Instant::now();
    for _round in 0..n / (2 * DEVICES) {
        for device in 0..DEVICES as u32 {
            flock
                .publish(Temperature { device })
                .await
                .expect("publish");
        }
        for device in 0..DEVICES as u32 {
            flock.publish(Pressure { device }).await.expect("publish");
        }
    }
    flock.run_until_idle().await;
    let elapsed = start.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed) as u64, n);
    flock.shutdown().await;
    elapsed
}

/// The same number of artifacts through a plain `BatchSpec::size(100)`.
async fn plain_run(n: u64) -> Duration {
    let flock = Flock::builder().no_trace().build();
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    flock
        .agent("sink")
        .consumes::<Temperature>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(batch_fn(
            move |_: &EngineContext, batch: Vec<Arc<Temperature>>| {
                sink.fetch_add(batch.len(), Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    let start = Instant::now();
    for i in 0..n {
        flock
            .publish(Temperature {
                device: (i % DEVICES) as u32,
            })
            .await
            .expect("publish");
    }
    flock.run_until_idle().await;
    let elapsed = start.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed) as u64, n);
    flock.shutdown().await;
    elapsed
}

fn joins(c: &mut Criterion) {
    let mut group = c.benchmark_group("joins");
    group.throughput(Throughput::Elements(PER_ITER));
    group.sample_size(10);
    let rt = runtime();
    group.bench_function("join_by_device_batch100/current_thread", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(join_run(PER_ITER))).sum());
    });
    group.bench_function("plain_batch100/current_thread", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(plain_run(PER_ITER))).sum());
    });
    group.finish();

    let join = rt.block_on(join_run(1_000_000));
    let plain = rt.block_on(plain_run(1_000_000));
    let rate = |d: Duration| 1_000_000.0 / d.as_secs_f64();
    println!(
        "1M artifacts, current_thread: join+batch {:.2} M/s, plain batch {:.2} M/s, ratio {:.2}",
        rate(join) / 1e6,
        rate(plain) / 1e6,
        rate(join) / rate(plain)
    );
}

criterion_group!(benches, joins);
criterion_main!(benches);
