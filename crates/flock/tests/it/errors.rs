//! Failures of user code never lose inputs: they become `WorkflowError` artifacts.

use std::sync::Arc;

use flock::prelude::*;
use flock::{BlackboardStore, InMemoryStore};

use crate::{Item, publish_ids, recorder, spec};

async fn workflow_errors(flock: &Flock) -> Vec<Arc<WorkflowError>> {
    flock.get_by_type::<WorkflowError>().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn engine_error_becomes_a_workflow_error_with_input_ids() {
    let flock = Flock::new();
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(2)))
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Item>>| {
            Err::<Outputs, _>("payment gateway unavailable")
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].agent, "flaky");
    assert_eq!(errors[0].error, "payment gateway unavailable");
    assert_eq!(errors[0].flush_reason, Some(FlushReason::Size));
    let items = flock
        .query(&ArtifactFilter::new().type_name("Item"))
        .await
        .unwrap();
    let ids: Vec<_> = items.iter().map(|a| a.id).collect();
    assert_eq!(errors[0].input_ids, ids);

    // The process keeps running: the next batch is processed as usual.
    publish_ids(&flock, [3, 4]).await;
    flock.run_until_idle().await;
    assert_eq!(workflow_errors(&flock).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn engine_panic_is_contained_and_reported() {
    let flock = Flock::new();
    flock
        .agent("panicky")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, item: Arc<Item>| {
            assert!(item.id != 2, "cannot handle item 2");
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    let (runs, engine) = recorder();
    flock
        .agent("bystander")
        .consumes::<Item>(Subscribe::new().batch(spec(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(&flock, 1..=3).await;
    flock.run_until_idle().await;
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].agent, "panicky");
    assert!(
        errors[0]
            .error
            .contains("engine panicked: cannot handle item 2"),
        "{}",
        errors[0].error
    );
    assert_eq!(runs.lock().len(), 1, "other agents keep working");
}

#[tokio::test(start_paused = true)]
async fn undeclared_output_type_fails_the_run() {
    let flock = Flock::new();
    flock
        .agent("sloppy")
        .consumes::<Item>(Subscribe::new())
        .publishes::<BatchSummary>()
        .with_engine(map_fn(|_: &EngineContext, i: Arc<Item>| {
            Ok::<_, String>(BatchItem { value: i.id })
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1]).await;
    flock.run_until_idle().await;
    assert!(flock.get_by_type::<BatchItem>().await.unwrap().is_empty());
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .error
            .contains("output of type 'BatchItem', which agent 'sloppy' does not declare"),
        "{}",
        errors[0].error
    );
}

#[tokio::test(start_paused = true)]
async fn panicking_predicate_is_a_non_match_and_runtime_continues() {
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("picky")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| {
                    assert!(i.id != 3, "predicate bug");
                    true
                })
                .batch(spec(2)),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(&flock, 1..=5).await;
    flock.run_until_idle().await;
    let ids: Vec<Vec<i64>> = runs.lock().iter().map(|r| r.ids.clone()).collect();
    assert_eq!(ids, vec![vec![1, 2], vec![4, 5]]);
}

/// An engine whose `name()` panics: the runtime calls it for the engine's span when
/// a subscriber records spans.
struct NamePanics;

#[async_trait::async_trait]
impl Engine for NamePanics {
    fn name(&self) -> &str {
        panic!("[induced] the engine's name panics")
    }

    async fn evaluate(&self, _: &EngineContext, _: Inputs) -> Result<Outputs, EngineError> {
        Ok(Outputs::none())
    }
}

/// Regression: a panic in user code outside the engine's future (here `Engine::name`,
/// evaluated for the span) skipped handing the agent's slot to its next queued run:
/// `run_until_idle` and `shutdown` hung, and no failed run was recorded.
#[test]
fn a_panic_outside_the_engine_future_releases_the_slot_and_becomes_a_failed_run() {
    crate::finishes_within(std::time::Duration::from_secs(60), "run_until_idle", || {
        // Spans must be recorded for the runtime to ask the engine for its name.
        let (_spans, _guard) = flock_test_support::Capture::install();
        crate::paused_runtime().block_on(async {
            let flock = Flock::builder().no_trace().build();
            flock
                .agent("nameless")
                .consumes::<Item>(Subscribe::new())
                .with_engine(NamePanics)
                .register()
                .unwrap();
            publish_ids(&flock, [1, 2, 3]).await;
            flock.run_until_idle().await;
            let failed = flock.failed_runs();
            assert_eq!(failed.len(), 3, "{failed:?}");
            for run in &failed {
                assert!(
                    run.error.contains("the engine's name panics"),
                    "{}",
                    run.error
                );
            }
            assert_eq!(workflow_errors(&flock).await.len(), 3);
            flock.shutdown().await;
        });
    });
}

/// A store that refuses artifacts of one type, as a full disk would.
struct RefusingStore {
    inner: InMemoryStore,
    refuse: &'static str,
}

#[async_trait::async_trait]
impl BlackboardStore for RefusingStore {
    async fn publish(&self, artifact: Arc<Artifact>) -> Result<(), flock::StoreError> {
        if artifact.type_name() == self.refuse {
            return Err(flock::StoreError::Backend("disk full".into()));
        }
        self.inner.publish(artifact).await
    }

    async fn get(&self, id: flock::ArtifactId) -> Result<Option<Arc<Artifact>>, flock::StoreError> {
        self.inner.get(id).await
    }

    async fn query(
        &self,
        filter: &ArtifactFilter,
    ) -> Result<Vec<Arc<Artifact>>, flock::StoreError> {
        self.inner.query(filter).await
    }

    async fn count(&self) -> Result<usize, flock::StoreError> {
        self.inner.count().await
    }
}

/// Regression: a store error on an agent's output was a log line; the run counted
/// as a success with nothing stored. Now it fails the attempt: retried under the
/// agent's policy, then a failed run and a `WorkflowError`.
#[tokio::test(start_paused = true)]
async fn a_store_error_on_an_output_fails_the_attempt() {
    let store = Arc::new(RefusingStore {
        inner: InMemoryStore::new(),
        refuse: "BatchSummary",
    });
    let flock = Flock::builder().no_trace().store(store).build();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = attempts.clone();
    flock
        .agent("summarizer")
        .consumes::<Item>(Subscribe::new().batch(spec(2)))
        .publishes::<BatchSummary>()
        .retry(RetryPolicy::fixed(2, std::time::Duration::from_millis(10)).unwrap())
        .with_engine(batch_fn(move |_: &EngineContext, items: Vec<Arc<Item>>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(BatchSummary {
                batch_size: items.len(),
                values: items.iter().map(|i| i.id).collect(),
            })
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].error.contains("disk full"), "{}", failed[0].error);
    assert_eq!(failed[0].attempts, 2);
    let errors = workflow_errors(&flock).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].input_ids.len(), 2);
    flock.shutdown().await;
}
