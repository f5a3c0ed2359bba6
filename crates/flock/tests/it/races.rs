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

/// Publishers loop while an agent registers: it receives every artifact whose
/// publish began after its registration returned, and no artifact twice; the agent
/// registered before them receives every accepted artifact once. A publish routes
/// under the core's lock while no subscription calls user code and outside it once
/// one does (ADR 0016), so the late agent is tried both ways: plain, and with a
/// predicate.
fn an_agent_registered_while_publishing_receives_what_follows(with_predicate: bool) {
    let runtime = multi_thread();
    for round in 0..100 {
        runtime.block_on(async {
            let flock = Flock::builder().no_trace().build();
            let batch =
                || Subscribe::new().batch(BatchSpec::size(5).timeout(Duration::from_secs(60)));
            let (first_runs, engine) = recorder();
            flock
                .agent("first")
                .consumes::<Item>(batch())
                .with_engine(engine)
                .register()
                .unwrap();
            let registered = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let accepted = Arc::new(Mutex::new(Vec::new()));
            let after = Arc::new(Mutex::new(Vec::new()));
            let publishers: Vec<_> = (0..3)
                .map(|p: i64| {
                    let (flock, registered) = (flock.clone(), registered.clone());
                    let (accepted, after) = (accepted.clone(), after.clone());
                    tokio::spawn(async move {
                        for i in 0..300 {
                            let id = p * 1_000_000 + i;
                            let late = registered.load(Ordering::Acquire);
                            flock.publish(Item { id }).await.unwrap();
                            accepted.lock().push(id);
                            if late {
                                after.lock().push(id);
                            }
                        }
                    })
                })
                .collect();
            while accepted.lock().len() < 50 + 7 * (round % 20) {
                tokio::task::yield_now().await;
            }
            let subscription = if with_predicate {
                batch().filter(|item: &Item| item.id >= 0)
            } else {
                batch()
            };
            let (late_runs, engine) = recorder();
            flock
                .agent("late")
                .consumes::<Item>(subscription)
                .with_engine(engine)
                .register()
                .unwrap();
            registered.store(true, Ordering::Release);
            for publisher in publishers {
                publisher.await.unwrap();
            }
            flock.shutdown().await;
            let ids = |runs: &crate::Runs| {
                let mut ids: Vec<i64> = runs.lock().iter().flat_map(|r| r.ids.clone()).collect();
                ids.sort_unstable();
                ids
            };
            let mut accepted = accepted.lock().clone();
            accepted.sort_unstable();
            assert_eq!(ids(&first_runs), accepted, "round {round}: the first agent");
            let late = ids(&late_runs);
            assert!(
                late.windows(2).all(|w| w[0] < w[1]),
                "round {round}: the late agent received an artifact twice"
            );
            let missed: Vec<i64> = after
                .lock()
                .iter()
                .copied()
                .filter(|id| late.binary_search(id).is_err())
                .collect();
            assert!(
                missed.is_empty(),
                "round {round}: published after the registration, never delivered to it: {missed:?}"
            );
        });
    }
}

#[test]
fn a_plain_agent_registered_while_publishing_receives_what_follows() {
    an_agent_registered_while_publishing_receives_what_follows(false);
}

#[test]
fn an_agent_with_a_predicate_registered_while_publishing_receives_what_follows() {
    an_agent_registered_while_publishing_receives_what_follows(true);
}
