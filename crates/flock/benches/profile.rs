//! A fixed workload for instruction counting (`valgrind --tool=callgrind`), not a
//! criterion benchmark: benchmark 1's work (publish → `BatchSpec::size(100)` → a
//! no-op engine, current-thread runtime) on exactly `FLOCK_PROFILE_N` artifacts
//! (default 200,000), then benchmark 7's (10 agents with predicates, half the
//! artifacts tenant-visible) on as many. `FLOCK_PROFILE_RETENTION=drop_consumed` runs
//! the first with retention on. Instruction counts do not depend on what
//! else the machine does, so two builds compare on a busy machine too:
//!
//! ```sh
//! cargo xtask cargo bench -p flock-rs --no-default-features --bench profile --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/deps/profile-*
//! callgrind_annotate /tmp/cg.out | head -30
//! ```
//!
//! Two builds also compare by the wall clock, run in turn: `FLOCK_PROFILE_ROUNDS=15
//! FLOCK_PROFILE_WORK=batch100 FLOCK_PROFILE_N=100000` builds fifteen flocks one
//! after the other (the later ones reuse the memory of the earlier, as criterion's
//! iterations do) and prints the median rate of benchmark 1's timed span.

#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use flock::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    n: u64,
    tenant: u8,
}

async fn batch100(n: u64) -> std::time::Duration {
    let mut builder = Flock::builder().no_trace();
    // `FLOCK_PROFILE_RETENTION=drop_consumed`: the store keeps only what still waits
    // (resident memory stays bounded; measure it with `/usr/bin/time -v`).
    if std::env::var("FLOCK_PROFILE_RETENTION").as_deref() == Ok("drop_consumed") {
        builder = builder.retention(flock::Retention::new().drop_consumed());
    }
    let flock = builder.build();
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    flock
        .agent("sink")
        .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(batch_fn(
            move |_: &EngineContext, batch: Vec<Arc<Event>>| {
                sink.fetch_add(batch.len(), Ordering::Relaxed);
                Ok::<_, String>(Outputs::none())
            },
        ))
        .register()
        .expect("register");
    let start = std::time::Instant::now();
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

async fn ten_agents(n: u64) {
    let flock = Flock::builder().no_trace().build();
    let seen = Arc::new(AtomicUsize::new(0));
    for agent in 0..10u64 {
        let sink = seen.clone();
        flock
            .agent(format!("agent{agent}"))
            .tenant(if agent % 2 == 0 { "a" } else { "b" })
            .consumes::<Event>(
                Subscribe::new()
                    .filter(move |e: &Event| e.n % 10 != agent)
                    .batch(BatchSpec::size(100)),
            )
            .with_engine(batch_fn(
                move |_: &EngineContext, batch: Vec<Arc<Event>>| {
                    sink.fetch_add(batch.len(), Ordering::Relaxed);
                    Ok::<_, String>(Outputs::none())
                },
            ))
            .register()
            .expect("register");
    }
    for i in 0..n {
        let visibility = if i % 2 == 0 {
            Visibility::Public
        } else {
            Visibility::tenant("a")
        };
        flock
            .publish_with(
                Event { n: i, tenant: 0 },
                PublishOptions::new().visibility(visibility),
            )
            .await
            .expect("publish");
    }
    flock.shutdown().await;
}

fn main() {
    let n: u64 = std::env::var("FLOCK_PROFILE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // `FLOCK_PROFILE_WORK=batch100` or `ten_agents` runs one workload only.
    let work = std::env::var("FLOCK_PROFILE_WORK").unwrap_or_default();
    if work != "ten_agents" {
        // `FLOCK_PROFILE_ROUNDS`: that many flocks in turn, each timed from the first
        // publish to idle (benchmark 1's span) and printed with the median.
        let rounds: usize = std::env::var("FLOCK_PROFILE_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut rates: Vec<f64> = (0..rounds)
            .map(|_| n as f64 / runtime.block_on(batch100(n)).as_secs_f64() / 1e6)
            .collect();
        rates.sort_by(f64::total_cmp);
        if let Some(median) = rates.get(rounds / 2) {
            eprintln!("batch100: {n} artifacts, {rounds} rounds, median {median:.3} M/s");
        }
    }
    if work != "batch100" {
        runtime.block_on(ten_agents(n));
    }
}
