//! Retention: the in-memory store lets go of what no batch, join group, deferral,
//! run or failed run holds any more, and never of what still waits.

use std::{sync::Arc, time::Duration};

use flock::{PublishOptions, Retention, prelude::*};

use crate::{Item, recorder};

#[tokio::test(start_paused = true)]
async fn consumed_artifacts_go_and_waiting_ones_stay() {
    let flock = Flock::builder()
        .no_trace()
        .retention(Retention::new().drop_consumed())
        .build();
    let (runs, engine) = recorder();
    flock
        .agent("batches")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| i.id >= 0)
                .batch(BatchSpec::size(100)),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    flock
        .agent("fails")
        .consumes::<Item>(Subscribe::new().filter(|i: &Item| i.id < 0))
        .with_engine(map_fn(|_: &EngineContext, _: Arc<Item>| {
            Err::<Outputs, _>("refused")
        }))
        .register()
        .unwrap();
    let failing = flock.publish(Item { id: -1 }).await.unwrap();
    let hidden = Visibility::after(Duration::from_secs(3600), None);
    let deferred = flock
        .publish_with(
            Item { id: 1_000_000 },
            PublishOptions::new().visibility(hidden),
        )
        .await
        .unwrap();
    let mut last = Vec::new();
    for id in 0..5_050 {
        let published = flock.publish(Item { id }).await.unwrap();
        if id >= 5_000 {
            last.push(published);
        }
    }
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 50, "every full batch ran");
    let kept = flock.store().count().await.unwrap();
    assert!(kept < 1_200, "{kept} artifacts kept of 5,052");
    // Still waiting in the partial batch, deferred, or held by a failed run: kept.
    for id in last.iter().chain([&deferred, &failing]) {
        assert!(flock.get(*id).await.unwrap().is_some());
    }
    flock.shutdown().await;
    assert_eq!(
        runs.lock().last().unwrap().ids,
        (5_000..5_050).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn without_retention_the_blackboard_keeps_everything() {
    let flock = Flock::builder().no_trace().build();
    let (_runs, engine) = recorder();
    flock
        .agent("batches")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(engine)
        .register()
        .unwrap();
    for id in 0..3_000 {
        flock.publish(Item { id }).await.unwrap();
    }
    flock.run_until_idle().await;
    assert_eq!(flock.store().count().await.unwrap(), 3_000);
    flock.shutdown().await;
}
