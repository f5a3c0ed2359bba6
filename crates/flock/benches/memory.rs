//! Benchmark 5: memory per waiting artifact, counted with a counting allocator.
//!
//! Three figures, each live bytes per artifact after publishing N artifacts into a
//! batch that never flushes: the payload alone (`Arc<Event>`), the blackboard's
//! record of the artifact (store, ids, indexes: a flock with no agent), and what
//! waiting in a batch adds on top (a flock whose agent batches them all).

use std::{alloc::System, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use flock::prelude::*;
use serde::{Deserialize, Serialize};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Event {
    n: u64,
    level: u32,
}

const N: u64 = 200_000;

/// Bytes allocated and not yet freed.
fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

fn per_artifact(with_agent: bool) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let flock = Flock::builder().no_trace().build();
        if with_agent {
            flock
                .agent("waiting")
                .consumes::<Event>(Subscribe::new().batch(BatchSpec::size(N as usize + 1)))
                .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Event>>| {
                    Ok::<_, String>(Outputs::none())
                }))
                .register()
                .expect("register");
        }
        flock
            .publish(Event { n: 0, level: 0 })
            .await
            .expect("warm-up");
        let before = live();
        for n in 1..=N {
            flock.publish(Event { n, level: 1 }).await.expect("publish");
        }
        let bytes = (live() - before) as f64 / N as f64;
        flock.shutdown().await;
        bytes
    })
}

fn memory(c: &mut Criterion) {
    let payload = (std::mem::size_of::<Event>() + 16) as f64; // Arc header + value
    let store = per_artifact(false);
    let batched = per_artifact(true);
    println!("memory: payload (Arc<Event>)                  {payload:6.1} bytes per artifact");
    println!(
        "memory: blackboard record beyond the payload  {:6.1} bytes per artifact",
        store - payload
    );
    println!(
        "memory: waiting in a batch, beyond the store  {:6.1} bytes per artifact",
        batched - store
    );
    c.bench_function("memory/publish_into_waiting_batch_200k", |b| {
        b.iter(|| per_artifact(true));
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = memory
}
criterion_main!(benches);
