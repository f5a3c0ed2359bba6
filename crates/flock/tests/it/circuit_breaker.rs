//! The circuit breaker (`max_iterations`): at most N runs per agent between idles; a
//! refused run is kept as a failed run with a `WorkflowError`, never silently dropped.

use std::sync::Arc;

use flock::{FailureKind, RegistrationError, prelude::*};
use serde::{Deserialize, Serialize};

use crate::{Item, publish_ids, recorder, spec};

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Ping {
    n: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, FlockType)]
struct Pong {
    n: u32,
}

#[tokio::test(start_paused = true)]
async fn a_feedback_loop_stops_at_max_iterations() {
    let flock = Flock::new();
    flock
        .agent("pinger")
        .consumes::<Pong>(Subscribe::new())
        .publishes::<Ping>()
        .with_engine(map_fn(|_: &EngineContext, p: Arc<Pong>| {
            Ok::<_, String>(Ping { n: p.n + 1 })
        }))
        .max_iterations(10)
        .register()
        .unwrap();
    flock
        .agent("ponger")
        .consumes::<Ping>(Subscribe::new())
        .publishes::<Pong>()
        .with_engine(map_fn(|_: &EngineContext, p: Arc<Ping>| {
            Ok::<_, String>(Pong { n: p.n + 1 })
        }))
        .register()
        .unwrap();
    flock.publish(Pong { n: 0 }).await.unwrap();
    // Without the breaker this never returns.
    flock.run_until_idle().await;

    let pings = flock.get_by_type::<Ping>().await.unwrap();
    assert_eq!(pings.len(), 10, "pinger ran exactly max_iterations times");
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].kind, FailureKind::CircuitOpen);
    assert_eq!(failed[0].agent, "pinger");
    assert_eq!(failed[0].attempts, 0);
    assert_eq!(failed[0].inputs[0].get::<Pong>().map(|p| p.n), Some(20));
    assert!(
        failed[0]
            .error
            .starts_with("circuit breaker open: agent 'pinger' reached max_iterations 10"),
        "{}",
        failed[0].error
    );
    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].input_ids, failed[0].input_ids());
}

#[tokio::test(start_paused = true)]
async fn the_breaker_counts_runs_not_artifacts_and_resets_when_idle() {
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("batcher")
        .consumes::<Item>(Subscribe::new().batch(spec(10)))
        .with_engine(engine)
        .max_iterations(2)
        .register()
        .unwrap();
    // 30 artifacts, 3 runs before the flock is idle: the third is refused.
    publish_ids(&flock, 1..=30).await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 2);
    let failed = flock.failed_runs();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].inputs.len(),
        10,
        "the refused batch keeps all its items"
    );
    assert_eq!(failed[0].flush_reason, Some(FlushReason::Size));

    // The flock was idle: the count starts again, and the refused run can be retried.
    flock.retry_failed_run(failed[0].id).await.unwrap();
    publish_ids(&flock, 31..=40).await;
    flock.run_until_idle().await;
    let ids: Vec<i64> = runs.lock().iter().flat_map(|r| r.ids.clone()).collect();
    assert_eq!(
        ids,
        (1..=40).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    assert!(flock.failed_runs().is_empty());
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn runs_one_at_a_time_never_trip_the_breaker() {
    let flock = Flock::new();
    let (runs, engine) = recorder();
    flock
        .agent("steady")
        .consumes::<Item>(Subscribe::new().batch(spec(1)))
        .with_engine(engine)
        .max_iterations(1)
        .register()
        .unwrap();
    for id in 1..=5 {
        publish_ids(&flock, [id]).await;
        flock.run_until_idle().await;
    }
    assert_eq!(runs.lock().len(), 5);
    assert!(flock.failed_runs().is_empty());
}

#[test]
fn zero_iterations_is_a_registration_error() {
    let flock = Flock::new();
    let (_, engine) = recorder();
    let error = flock
        .agent("a")
        .consumes::<Item>(Subscribe::new())
        .with_engine(engine)
        .max_iterations(0)
        .register()
        .unwrap_err();
    assert!(matches!(error, RegistrationError::ZeroIterations(_)));
    assert_eq!(
        error.to_string(),
        "agent 'a': max_iterations must be at least 1, got 0"
    );
}
