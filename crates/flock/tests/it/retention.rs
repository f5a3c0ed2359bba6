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

/// Sets its flag when dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// An engine that keeps the view of the blackboard its run was given does not keep
/// the flock alive: dropping the flock frees its agents, their engines, and so the
/// blackboard (the default store lives under the core's lock, ADR 0016). A view
/// kept past its flock reads nothing and says why.
#[tokio::test(start_paused = true)]
async fn a_view_kept_by_an_engine_does_not_keep_the_flock_alive() {
    let flock = Flock::builder().no_trace().build();
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let kept: Arc<parking_lot::Mutex<Option<flock::BlackboardView>>> = Arc::default();
    let keep = kept.clone();
    flock
        .agent("keeper")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn(move |ctx: &EngineContext, _: Arc<Item>| {
            let _ = &flag;
            // The engine holds `keep`, and so the view: engine → view → store.
            *keep.lock() = ctx.blackboard.clone();
            Ok::<_, String>(Outputs::none())
        }))
        .register()
        .unwrap();
    flock.publish(Item { id: 1 }).await.unwrap();
    flock.run_until_idle().await;
    flock.shutdown().await;
    drop(flock);
    assert!(
        dropped.load(std::sync::atomic::Ordering::Acquire),
        "the flock's engine was never dropped: a view it keeps holds the flock"
    );
    let view = kept.lock().take().expect("the runtime sets the view");
    let error = view.get_by_type::<Item>().await.unwrap_err();
    assert!(error.to_string().contains("dropped"), "{error}");
}
