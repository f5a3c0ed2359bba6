//! Failure policy: retries with backoff on tokio's clock, then a `WorkflowError` and a
//! failed run that keeps the inputs (the dead-letter query), and retrying it later.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use flock::{FailureKind, RetryFailedRunError, prelude::*};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{Item, publish_ids, spec};

/// A batch engine failing its first `failures` calls, recording when each call came.
fn flaky(failures: u32, calls: &Arc<Mutex<Vec<Instant>>>) -> impl Engine {
    let count = AtomicU32::new(0);
    let calls = calls.clone();
    batch_fn(move |_: &EngineContext, items: Vec<Arc<Item>>| {
        calls.lock().push(Instant::now());
        if count.fetch_add(1, Ordering::SeqCst) < failures {
            return Err("upstream unavailable".to_owned());
        }
        Ok(Item {
            id: items.iter().map(|i| i.id).sum(),
        })
    })
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_is_retried_with_exponential_backoff() {
    let calls = Arc::default();
    let flock = Flock::new();
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(2)))
        .publishes::<Item>()
        .with_engine(flaky(2, &calls))
        .retry(RetryPolicy::exponential(3, Duration::from_secs(1)).unwrap())
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;

    let calls = calls.lock().clone();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1] - calls[0], Duration::from_secs(1));
    assert_eq!(calls[2] - calls[1], Duration::from_secs(2));
    let outputs = flock
        .query(&ArtifactFilter::new().produced_by("flaky"))
        .await
        .unwrap();
    assert_eq!(outputs.len(), 1, "one output, no WorkflowError");
    assert_eq!(outputs[0].get::<Item>(), Some(&Item { id: 3 }));
    assert!(flock.failed_runs().is_empty());
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_publish_a_workflow_error_and_keep_the_inputs() {
    let calls = Arc::default();
    let flock = Flock::new();
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(3)))
        .publishes::<Item>()
        .with_engine(flaky(u32::MAX, &calls))
        .retry(RetryPolicy::fixed(4, Duration::from_millis(250)).unwrap())
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2, 3]).await;
    flock.run_until_idle().await;
    assert_eq!(calls.lock().len(), 4);

    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    let inputs = flock
        .query(
            &ArtifactFilter::new()
                .type_name("Item")
                .produced_by("external"),
        )
        .await
        .unwrap();
    let input_ids: Vec<_> = inputs.iter().map(|a| a.id).collect();
    assert_eq!(errors[0].agent, "flaky");
    assert_eq!(errors[0].error, "upstream unavailable");
    assert_eq!(errors[0].attempts, 4);
    assert_eq!(errors[0].input_ids, input_ids);
    assert_eq!(errors[0].flush_reason, Some(FlushReason::Size));

    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    let run = &failed[0];
    assert_eq!(
        (
            run.agent.as_str(),
            run.kind,
            run.attempts,
            run.error.as_str()
        ),
        ("flaky", FailureKind::Failed, 4, "upstream unavailable")
    );
    assert_eq!(run.input_ids(), input_ids);
    let values: Vec<i64> = run
        .inputs
        .iter()
        .filter_map(|a| a.get::<Item>())
        .map(|i| i.id)
        .collect();
    assert_eq!(values, [1, 2, 3]);
    let error_artifact = flock.get(run.workflow_error).await.unwrap().unwrap();
    assert_eq!(error_artifact.get::<WorkflowError>(), Some(&*errors[0]));
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_engine_is_retried_then_reported() {
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let flock = Flock::new();
    flock
        .agent("panicky")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(move |ctx: &EngineContext, _: Arc<Item>| {
            seen.fetch_add(1, Ordering::SeqCst);
            assert!(ctx.attempt > 5, "attempt {} blew up", ctx.attempt);
            Ok::<_, String>(Outputs::none())
        }))
        .retry(RetryPolicy::fixed(2, Duration::from_secs(5)).unwrap())
        .register()
        .unwrap();
    publish_ids(&flock, [7]).await;
    flock.run_until_idle().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error, "engine panicked: attempt 2 blew up");
    assert_eq!(failed[0].attempts, 2);
    assert_eq!(failed[0].inputs[0].get::<Item>(), Some(&Item { id: 7 }));
    assert_eq!(flock.get_by_type::<WorkflowError>().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_can_be_retried_once_the_cause_is_fixed() {
    let calls = Arc::default();
    let flock = Flock::new();
    flock
        .agent("flaky")
        .consumes::<Item>(Subscribe::new().batch(spec(2)))
        .publishes::<Item>()
        .with_engine(flaky(1, &calls))
        .register()
        .unwrap();
    publish_ids(&flock, [4, 5]).await;
    flock.run_until_idle().await;
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);

    flock.retry_failed_run(failed[0].id).await.unwrap();
    flock.run_until_idle().await;
    assert!(flock.failed_runs().is_empty());
    assert_eq!(
        flock
            .get_by_type::<Item>()
            .await
            .unwrap()
            .last()
            .map(|i| i.id),
        Some(9)
    );
    assert_eq!(
        flock.retry_failed_run(failed[0].id).await,
        Err(RetryFailedRunError::NotFound(failed[0].id)),
        "a failed run is retried at most once"
    );
    flock.shutdown().await;
    assert!(matches!(
        flock.retry_failed_run(failed[0].id).await,
        Err(RetryFailedRunError::Closed(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn take_failed_runs_drains_the_dead_letters() {
    let flock = Flock::new();
    flock
        .agent("broken")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
            Err::<Outputs, _>("nope")
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1, 2]).await;
    flock.run_until_idle().await;
    assert_eq!(flock.take_failed_runs().len(), 2);
    assert!(flock.failed_runs().is_empty());
}

#[test]
fn retry_policies_are_validated() {
    assert_eq!(
        RetryPolicy::fixed(0, Duration::from_secs(1))
            .unwrap_err()
            .to_string(),
        "max attempts must be at least 1, got 0"
    );
    assert!(
        RetryPolicy::exponential(3, chrono::TimeDelta::seconds(-1))
            .unwrap_err()
            .to_string()
            .contains("must not be negative")
    );
    assert_eq!(
        RetryPolicy::exponential(3, Duration::from_secs(2))
            .unwrap()
            .max_delay(Duration::from_secs(1))
            .unwrap_err()
            .to_string(),
        "max delay must be at least the initial delay 2s, got 1s"
    );
    let policy = RetryPolicy::exponential(10, chrono::TimeDelta::milliseconds(100))
        .unwrap()
        .max_delay(Duration::from_millis(300))
        .unwrap();
    let delays: Vec<_> = (1..=4).map(|a| policy.delay_after(a)).collect();
    assert_eq!(
        delays,
        [100, 200, 300, 300].map(Duration::from_millis).to_vec()
    );
    assert_eq!(RetryPolicy::default().max_attempts(), 1);
}
