//! An artifact reaches an agent at most once: not through two subscriptions, not
//! through retries, not when published again.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use flock::{ArtifactId, PublishError, StoreError, prelude::*};
use parking_lot::Mutex;

use crate::{Item, publish_ids, spec};

/// Counts, per artifact id, the runs that received it (attempts of one run count once).
#[derive(Default, Clone)]
struct Deliveries(Arc<Mutex<HashMap<ArtifactId, Vec<u32>>>>);

impl Deliveries {
    fn record(&self, ctx: &EngineContext, artifacts: &[Arc<Artifact>]) {
        let mut seen = self.0.lock();
        for a in artifacts {
            let attempts = seen.entry(a.id).or_default();
            attempts.push(ctx.attempt);
        }
    }

    /// Every artifact's runs: a new run starts at attempt 1.
    fn runs_per_artifact(&self) -> Vec<usize> {
        self.0
            .lock()
            .values()
            .map(|attempts| attempts.iter().filter(|&&a| a == 1).count())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn two_matching_subscriptions_deliver_once() {
    let flock = Flock::new();
    let counter = Arc::new(AtomicU32::new(0));
    let count = counter.clone();
    flock
        .agent("greedy")
        .consumes::<Item>(Subscribe::new().filter(|i: &Item| i.id > 0))
        .consumes::<Item>(Subscribe::new().filter(|i: &Item| i.id < 100))
        .with_engine(map_fn(move |_: &EngineContext, _: Arc<Item>| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    publish_ids(&flock, 1..=5).await;
    flock.run_until_idle().await;
    assert_eq!(counter.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn retries_and_failures_never_deliver_an_artifact_twice() {
    let flock = Flock::new();
    let deliveries = Deliveries::default();
    let sink = deliveries.clone();
    let calls = AtomicU32::new(0);
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(3).timeout(Duration::from_secs(10))))
        .with_engine(batch_fn_async(
            move |ctx: EngineContext, items: Vec<Arc<Item>>| {
                let fail = calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
                let _ = items;
                async move {
                    let _ = ctx;
                    if fail {
                        Err("transient")
                    } else {
                        Ok(Outputs::none())
                    }
                }
            },
        ))
        .with_component(Spy(sink))
        .retry(RetryPolicy::fixed(2, Duration::from_secs(1)).unwrap())
        .register()
        .unwrap();
    publish_ids(&flock, 1..=10).await;
    flock.run_until_idle().await; // three size flushes, each failing once then passing
    tokio::time::advance(Duration::from_secs(10)).await;
    flock.run_until_idle().await; // the timeout flush of item 10
    flock.shutdown().await;

    let runs = deliveries.runs_per_artifact();
    assert_eq!(runs.len(), 10, "every artifact delivered");
    assert!(runs.iter().all(|&n| n == 1), "runs per artifact: {runs:?}");
    assert!(flock.failed_runs().is_empty());
}

/// Records the inputs of every attempt.
struct Spy(Deliveries);

#[async_trait::async_trait]
impl AgentComponent for Spy {
    async fn before_evaluate(
        &self,
        ctx: &EngineContext,
        inputs: &[Arc<Artifact>],
    ) -> Result<(), EngineError> {
        self.0.record(ctx, inputs);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn publishing_an_artifact_again_does_not_deliver_it_again() {
    let flock = Flock::new();
    let counter = Arc::new(AtomicU32::new(0));
    let count = counter.clone();
    flock
        .agent("once")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(move |_: &EngineContext, _: Arc<Item>| {
            count.fetch_add(1, Ordering::SeqCst);
            Err::<Outputs, _>("always fails")
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1]).await;
    flock.run_until_idle().await;
    assert_eq!(counter.load(Ordering::SeqCst), 1);

    // Republishing the failed run's input (same id) is refused by the store...
    let input = flock.failed_runs()[0].inputs[0].clone();
    let error = flock.publish_artifact(input.clone()).await.unwrap_err();
    assert!(
        matches!(error, PublishError::Store(StoreError::Duplicate(id)) if id == input.id),
        "{error}"
    );
    flock.run_until_idle().await;
    assert_eq!(counter.load(Ordering::SeqCst), 1, "not delivered again");

    // ...while an artifact that is new to the board is delivered, once.
    let mut fresh = Artifact::new(input.payload.clone(), "forwarder");
    fresh.set_correlation_id(input.correlation_id());
    flock.publish_artifact(Arc::new(fresh)).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(counter.load(Ordering::SeqCst), 2);
}
