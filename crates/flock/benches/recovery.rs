//! Recovery time: a flock on a SQLite file holding 100,000 accepted artifacts that
//! wait in a batch (never flushed: size 1,000,000, timeout one hour) is dropped as a
//! crash would drop it; each iteration opens the file in a new process-like runtime
//! and recovers, collecting all 100,000 into the batch again. Recovery only reads
//! the file, so every iteration recovers the same state.
//!
//! `cargo xtask cargo bench -p flock-rs --no-default-features --features sqlite --bench recovery`

use std::{path::Path, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use flock::{prelude::*, sqlite::SqliteStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Item {
    n: u64,
}

const WAITING: u64 = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A flock on `db` with the one batch agent.
fn flock(db: &Path) -> Flock {
    let store = SqliteStore::open(db).expect("open the store");
    let flock = Flock::builder().no_trace().store(Arc::new(store)).build();
    flock
        .agent("collector")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(1_000_000).timeout(Duration::from_secs(3600))),
        )
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Item>>| {
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .expect("register");
    flock
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("blackboard.db");
    // The crashed process: 100,000 accepted, all waiting, then dropped without
    // shutdown. Published by 500 concurrent publishers (each durable publish waits
    // for its group commit).
    runtime().block_on(async {
        let flock = flock(&db);
        let publishers: Vec<_> = (0..500u64)
            .map(|p| {
                let flock = flock.clone();
                tokio::spawn(async move {
                    for n in (p..WAITING).step_by(500) {
                        flock.publish(Item { n }).await.expect("publish");
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.expect("publisher");
        }
    });
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.bench_function("100k_waiting_items", |b| {
        b.iter(|| {
            runtime().block_on(async {
                let flock = flock(&db);
                let report = flock.recover().await.expect("recover");
                assert_eq!(report.artifacts as u64, WAITING);
            })
        });
    });
    group.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
