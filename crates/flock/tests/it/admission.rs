//! Admission control: bounded waiting items, with backpressure or rejection.

use std::{sync::Arc, time::Duration};

use flock::{Admission, OnFull, Payload, PublishError, prelude::*};
use tokio::time::advance;

use crate::{Item, publish_ids, recorder};

fn bounded(admission: Admission) -> (Flock, crate::Runs) {
    let flock = Flock::builder().admission(admission).build();
    let (runs, engine) = recorder();
    flock
        .agent("slow_batches")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_secs(1))),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    (flock, runs)
}

async fn stored(flock: &Flock) -> usize {
    flock
        .query(&ArtifactFilter::new().type_name("Item"))
        .await
        .unwrap()
        .len()
}

#[tokio::test(start_paused = true)]
async fn reject_refuses_before_storing_and_admits_again_after_a_flush() {
    let admission = Admission::new()
        .max_waiting_per_subscription(3)
        .unwrap()
        .on_full(OnFull::Reject);
    let (flock, runs) = bounded(admission);
    publish_ids(&flock, 1..=3).await;
    let err = flock.publish(Item { id: 4 }).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Full {
                waiting: 3,
                limit: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "admission limit reached: 3 items waiting in agent 'slow_batches', subscription 0, limit 3; publish later, raise the limit, or configure OnFull::Wait for backpressure"
    );
    assert_eq!(stored(&flock).await, 3, "a refused artifact is not stored");
    advance(Duration::from_secs(1)).await;
    flock.run_until_idle().await;
    assert_eq!(runs.lock().len(), 1);
    flock.publish(Item { id: 4 }).await.unwrap();
    assert_eq!(stored(&flock).await, 4);
}

#[tokio::test(start_paused = true)]
async fn artifacts_that_enter_no_full_batch_are_never_held_back() {
    let admission = Admission::new()
        .max_waiting_per_subscription(1)
        .unwrap()
        .on_full(OnFull::Reject);
    let (flock, _runs) = bounded(admission);
    publish_ids(&flock, [1]).await;
    for value in 0..5 {
        flock.publish(BatchItem { value }).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn wait_applies_backpressure_until_flushes_make_room() {
    let admission = Admission::new()
        .max_waiting(2)
        .unwrap()
        .on_full(OnFull::Wait);
    let (flock, runs) = bounded(admission);
    let publisher = {
        let flock = flock.clone();
        tokio::spawn(async move { publish_ids(&flock, 1..=5).await })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        stored(&flock).await,
        2,
        "the third publish must wait for room"
    );
    assert!(!publisher.is_finished());
    // Each timeout flush makes room for two more.
    for _ in 0..3 {
        advance(Duration::from_secs(1)).await;
        flock.run_until_idle().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    publisher.await.unwrap();
    flock.shutdown().await;
    let batches: Vec<Vec<i64>> = runs.lock().iter().map(|r| r.ids.clone()).collect();
    assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_waiting_publishers_with_closed() {
    let admission = Admission::new().max_waiting(1).unwrap();
    let (flock, _runs) = bounded(admission);
    publish_ids(&flock, [1]).await;
    let waiting = {
        let flock = flock.clone();
        tokio::spawn(async move { flock.publish(Item { id: 2 }).await })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished());
    flock.shutdown().await;
    let result = waiting.await.unwrap();
    assert!(matches!(result, Err(PublishError::Closed)), "{result:?}");
    assert_eq!(stored(&flock).await, 1);
}

#[tokio::test(start_paused = true)]
async fn agent_outputs_are_never_held_back() {
    let admission = Admission::new()
        .max_waiting(1)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().admission(admission).build();
    flock
        .agent("fan_out")
        .consumes::<BatchItem>(Subscribe::new())
        .publishes_many::<Item>()
        .with_engine(map_fn(|_: &EngineContext, b: Arc<BatchItem>| {
            Ok::<_, String>((0..b.value).map(|id| Item { id }).collect::<Outputs>())
        }))
        .register()
        .unwrap();
    let (runs, engine) = recorder();
    flock
        .agent("collector")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(engine)
        .register()
        .unwrap();
    flock.publish(BatchItem { value: 5 }).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(flock.active_batches()[0].items_waiting, 5);
    flock.shutdown().await;
    assert_eq!(runs.lock()[0].ids, vec![0, 1, 2, 3, 4]);
}

#[test]
fn zero_limits_are_rejected() {
    assert_eq!(
        Admission::new().max_waiting(0).unwrap_err().to_string(),
        "max_waiting must be at least 1, got 0; leave the limit unset for no limit"
    );
    assert!(Admission::new().max_waiting_per_subscription(0).is_err());
}

#[tokio::test(start_paused = true)]
async fn only_the_subscription_that_takes_the_artifact_is_checked() {
    let admission = Admission::new()
        .max_waiting_per_subscription(2)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().admission(admission).build();
    let (runs, engine) = recorder();
    flock
        .agent("two_ways")
        .consumes::<Item>(
            Subscribe::new()
                .filter(|i: &Item| i.id % 2 == 0)
                .batch(BatchSpec::size(100)),
        )
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(100)))
        .with_engine(engine)
        .register()
        .unwrap();
    publish_ids(&flock, [1, 3]).await; // odd: subscription 1, now full
    assert!(flock.publish(Item { id: 5 }).await.is_err());
    // Even: subscription 0 takes it first, so subscription 1's bound does not apply.
    flock.publish(Item { id: 2 }).await.unwrap();
    flock.shutdown().await;
    let mut batches: Vec<Vec<i64>> = runs.lock().iter().map(|r| r.ids.clone()).collect();
    batches.sort();
    assert_eq!(batches, vec![vec![1, 3], vec![2]]);
}

/// Regression: items left the admission count when their batch flushed, not when
/// their run finished, so a slow engine let runs (and their items) pile up without a
/// publisher ever waiting: `max_waiting(100)` queued thousands of items. Now an item
/// counts until its run finishes: accepted minus processed never exceeds the bound.
#[tokio::test(start_paused = true)]
async fn items_count_until_their_run_finishes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let admission = Admission::new().max_waiting(100).unwrap();
    let flock = Flock::builder().no_trace().admission(admission).build();
    let finished = Arc::new(AtomicUsize::new(0));
    let sink = finished.clone();
    flock
        .agent("slow")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(10).timeout(Duration::from_secs(1))),
        )
        .with_engine(batch_fn_async(
            move |_: EngineContext, items: Vec<Arc<Item>>| {
                let sink = sink.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    sink.fetch_add(items.len(), Ordering::SeqCst);
                    Ok::<_, String>(Outputs::none())
                }
            },
        ))
        .register()
        .unwrap();
    let mut most = 0;
    for id in 0..2_000 {
        flock.publish(Item { id }).await.unwrap();
        let outstanding = (id as usize + 1) - finished.load(Ordering::SeqCst);
        most = most.max(outstanding);
    }
    assert!(
        most <= 100,
        "up to {most} items were accepted and not yet processed"
    );
    flock.shutdown().await;
    assert_eq!(finished.load(Ordering::SeqCst), 2_000);
}

/// Regression: `Flock::publish_artifact` bypassed admission altogether.
#[tokio::test(start_paused = true)]
async fn publish_artifact_is_held_to_the_bounds_too() {
    let admission = Admission::new()
        .max_waiting(5)
        .unwrap()
        .on_full(OnFull::Reject);
    let (flock, _runs) = bounded(admission);
    let mut accepted = 0;
    let mut full = 0;
    for id in 0..1_000 {
        let artifact = Arc::new(Artifact::new(Payload::new(Item { id }), "forwarder"));
        match flock.publish_artifact(artifact).await {
            Ok(()) => accepted += 1,
            Err(PublishError::Full { .. }) => full += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((accepted, full), (5, 995));
    flock.shutdown().await;
}
