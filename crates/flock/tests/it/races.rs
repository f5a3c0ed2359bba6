//! Races between publishers, deadlines, `run_until_idle` and `shutdown`, where they
//! happen: on a multi-thread runtime with the real clock, many rounds, the racing
//! calls started together. The paused clock proves timing; these prove concurrency.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use flock::prelude::*;
use flock::{ArtifactId, BlackboardStore, InMemoryStore, PublishError, StoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{Item, recorder};

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// The in-memory store behind an insert that awaits (as a database's would).
#[derive(Default)]
pub(crate) struct AwaitingStore(InMemoryStore);

#[async_trait]
impl BlackboardStore for AwaitingStore {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.publish(artifact).await
    }

    async fn get(&self, id: ArtifactId) -> Result<Option<Arc<Artifact>>, StoreError> {
        self.0.get(id).await
    }

    async fn query(&self, filter: &ArtifactFilter) -> Result<Vec<Arc<Artifact>>, StoreError> {
        self.0.query(filter).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.0.count().await
    }
}

/// Publishers loop while `shutdown` runs: every publish that returned `Ok` reached
/// the agent. Before the fix, `shutdown` could finish its last flush between a
/// publish's `closed` check and its dispatch, leaving the artifact in a batch no one
/// would ever flush.
fn publishes_racing_shutdown_fail_or_are_delivered(
    store: impl Fn() -> Option<Arc<dyn BlackboardStore>>,
) {
    let runtime = multi_thread();
    for round in 0..150 {
        runtime.block_on(async {
            let builder = Flock::builder().no_trace();
            let flock = match store() {
                Some(store) => builder.store(store).build(),
                None => builder.build(),
            };
            let (runs, engine) = recorder();
            flock
                .agent("collector")
                .consumes::<Item>(
                    Subscribe::new().batch(BatchSpec::size(7).timeout(Duration::from_secs(60))),
                )
                .with_engine(engine)
                .register()
                .unwrap();
            let accepted = Arc::new(Mutex::new(Vec::new()));
            let publishers: Vec<_> = (0..4)
                .map(|p: i64| {
                    let flock = flock.clone();
                    let accepted = accepted.clone();
                    tokio::spawn(async move {
                        for i in 0.. {
                            let id = p * 1_000_000 + i;
                            match flock.publish(Item { id }).await {
                                Ok(_) => accepted.lock().push(id),
                                Err(PublishError::Closed) => break,
                                Err(other) => panic!("unexpected error: {other}"),
                            }
                        }
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_micros(200 + 37 * (round % 20))).await;
            flock.shutdown().await;
            for publisher in publishers {
                publisher.await.unwrap();
            }
            let delivered: HashSet<i64> = runs.lock().iter().flat_map(|r| r.ids.clone()).collect();
            let lost: Vec<i64> = accepted
                .lock()
                .iter()
                .copied()
                .filter(|id| !delivered.contains(id))
                .collect();
            assert!(
                lost.is_empty(),
                "round {round}: {} accepted artifacts were never delivered: {lost:?}",
                lost.len()
            );
        });
    }
}

#[test]
fn publishes_racing_shutdown_fail_or_are_delivered_with_the_in_memory_store() {
    publishes_racing_shutdown_fail_or_are_delivered(|| None);
}

#[test]
fn publishes_racing_shutdown_fail_or_are_delivered_with_a_store_that_awaits() {
    publishes_racing_shutdown_fail_or_are_delivered(|| {
        Some(Arc::new(AwaitingStore::default()) as Arc<dyn BlackboardStore>)
    });
}

/// What the big batch's engine publishes.
#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Tally {
    items: usize,
}

/// A flock with a timeout batch that will hold `items` items, whose engine publishes
/// a `Tally` that a downstream agent records.
fn big_timeout_batch(timeout: Duration) -> (Flock, Arc<AtomicUsize>) {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("big_batch")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(1_000_000).timeout(timeout)))
        .publishes::<Tally>()
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Ok::<_, String>(Tally { items: items.len() })
        }))
        .register()
        .unwrap();
    let tallied = Arc::new(AtomicUsize::new(0));
    let sink = tallied.clone();
    flock
        .agent("downstream")
        .consumes::<Tally>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, tally: Arc<Tally>| {
            sink.fetch_add(tally.items, Ordering::SeqCst);
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    (flock, tallied)
}

const BIG: usize = 50_000;

/// Spins until the timer has taken the due batch out of the batcher, so that the
/// next call races the moment between "taken" and "running" (the caller that
/// wakes at the deadline first would otherwise flush the batch itself).
fn wait_until_taken(flock: &Flock) {
    while !flock.active_batches().is_empty() {
        std::hint::spin_loop();
    }
}
const BIG_TIMEOUT: Duration = Duration::from_millis(250);

/// `run_until_idle` woken at the deadline of a large timeout batch returns only once
/// the batch's run, and the run its output triggers, have finished: every item is
/// then counted downstream or waits in a batch that is not due. Before the fix, the
/// timer task took the batch out of the batcher and built the run's input before
/// counting it in flight: a caller waking at the same deadline saw nothing due and
/// nothing running.
#[test]
fn run_until_idle_at_a_deadline_never_returns_before_the_due_batch_ran() {
    let runtime = multi_thread();
    for round in 0..15 {
        runtime.block_on(async {
            let (flock, tallied) = big_timeout_batch(BIG_TIMEOUT);
            flock.publish(Item { id: 0 }).await.unwrap();
            // After the first item's arrival: the batch is due when this sleep ends.
            let start = tokio::time::Instant::now();
            for id in 1..BIG {
                flock.publish(Item { id: id as i64 }).await.unwrap();
            }
            tokio::time::sleep_until(start + BIG_TIMEOUT).await;
            wait_until_taken(&flock);
            flock.run_until_idle().await;
            let active = flock.active_batches();
            let waiting: usize = active.iter().map(|b| b.items_waiting).sum();
            assert!(
                active.iter().all(|b| b.time_left > Some(Duration::ZERO)),
                "round {round}: run_until_idle returned with a due batch: {active:?}"
            );
            assert_eq!(
                tallied.load(Ordering::SeqCst) + waiting,
                BIG,
                "round {round}: run_until_idle returned before the due batch and its output ran"
            );
            flock.shutdown().await;
        });
    }
}

/// `shutdown` racing the deadline of a large timeout batch: when it returns, the
/// batch ran and so did the run its output triggers (nothing lost downstream).
#[test]
fn shutdown_at_a_deadline_never_returns_before_the_due_batch_ran() {
    let runtime = multi_thread();
    for round in 0..15 {
        runtime.block_on(async {
            let (flock, tallied) = big_timeout_batch(BIG_TIMEOUT);
            flock.publish(Item { id: 0 }).await.unwrap();
            // After the first item's arrival: the batch is due when this sleep ends.
            let start = tokio::time::Instant::now();
            for id in 1..BIG {
                flock.publish(Item { id: id as i64 }).await.unwrap();
            }
            tokio::time::sleep_until(start + BIG_TIMEOUT).await;
            wait_until_taken(&flock);
            flock.shutdown().await;
            assert_eq!(
                tallied.load(Ordering::SeqCst),
                BIG,
                "round {round}: shutdown returned before the due batch and its output ran"
            );
        });
    }
}
