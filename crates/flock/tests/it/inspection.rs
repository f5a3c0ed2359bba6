//! Inspecting active batches.

use std::{sync::Arc, time::Duration};

use flock::prelude::*;
use tokio::time::advance;

use crate::{Item, publish_ids, recorder};

#[tokio::test(start_paused = true)]
async fn active_batches_report_agent_subscription_items_spec_and_time_left() {
    let flock = Flock::new();
    let (_runs, engine) = recorder();
    let spec = BatchSpec::size(25)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    flock
        .agent("payments")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| i.id < 0)
                .batch(BatchSpec::size(2)),
        )
        .consumes::<Item>(Subscribe::new().batch(spec))
        .with_engine(engine)
        .register()
        .unwrap();
    let first = flock.publish(Item { id: 1 }).await.unwrap();
    publish_ids(&flock, 2..=3).await;
    advance(Duration::from_secs(10)).await;
    let active = flock.active_batches();
    assert_eq!(active.len(), 1);
    let batch = &active[0];
    assert_eq!(batch.agent, "payments");
    assert_eq!(batch.subscription_index, 1);
    assert_eq!(batch.items_waiting, 3);
    assert_eq!(batch.spec, spec);
    assert_eq!(batch.time_left, Some(Duration::from_secs(20)));
    // The first item's arrival, on the flock's clock.
    let first = flock.get(first).await.unwrap().unwrap();
    assert_eq!(batch.created_at, first.created_at);
}

/// Regression: the batcher stamped `created_at` with the system's wall clock, which
/// disagrees with the runtime's clock (here: tokio's paused clock, an hour ahead):
/// inspection must report the runtime's time, like the artifacts' `created_at`.
#[tokio::test(start_paused = true)]
async fn batch_and_failure_times_come_from_the_runtime_clock() {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("failing")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(2).timeout(Duration::from_secs(7200))),
        )
        .with_engine(batch_fn(|_: &EngineContext, _: Vec<Arc<Item>>| {
            Err::<Outputs, _>("always fails")
        }))
        .register()
        .unwrap();
    advance(Duration::from_secs(3600)).await;
    let id = flock.publish(Item { id: 1 }).await.unwrap();
    let published = flock.get(id).await.unwrap().unwrap().created_at;
    let batch = flock.active_batches().remove(0);
    assert_eq!(batch.created_at, published);
    advance(Duration::from_secs(60)).await;
    flock.publish(Item { id: 2 }).await.unwrap();
    flock.run_until_idle().await;
    let failed = flock.failed_runs().remove(0);
    let error = flock.get(failed.workflow_error).await.unwrap().unwrap();
    assert_eq!(failed.failed_at, error.created_at);
    assert_eq!(failed.failed_at - published, chrono::TimeDelta::seconds(60));
    flock.shutdown().await;
}
