//! Inspecting active batches.

use std::{sync::Arc, time::Duration};

use flock::{Admission, OnFull, prelude::*};
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

/// A server shows an identity a batch only when it may see every artifact in it:
/// the batch reports whoever may see all of its items.
#[tokio::test(start_paused = true)]
async fn active_batches_and_pending_joins_carry_the_visibility_of_all_their_artifacts() {
    let flock = Flock::builder().no_trace().build();
    let (_runs, engine) = recorder();
    flock
        .agent("batches")
        .labels(["pii"])
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(10)))
        .with_engine(engine)
        .register()
        .unwrap();
    flock
        .agent("pairs")
        .labels(["pii"])
        .consumes_all(
            AllOf::new()
                .of::<crate::SignalA>()
                .of::<crate::SignalB>()
                .join(
                    JoinSpec::by(|a: &crate::SignalA| a.correlation_id.clone())
                        .by(|b: &crate::SignalB| b.correlation_id.clone())
                        .within(Duration::from_secs(60)),
                ),
        )
        .with_engine(crate::gate_recorder().1)
        .register()
        .unwrap();
    flock.publish(Item { id: 1 }).await.unwrap();
    assert_eq!(flock.active_batches()[0].visibility, Visibility::Public);
    let pii = PublishOptions::new().visibility(Visibility::labelled(["pii"]));
    flock
        .publish_with(Item { id: 2 }, pii.clone())
        .await
        .unwrap();
    assert_eq!(
        flock.active_batches()[0].visibility,
        Visibility::labelled(["pii"])
    );
    flock
        .publish_with(crate::SignalA::new("k", "a"), pii)
        .await
        .unwrap();
    let joins = flock.pending_joins();
    assert_eq!(joins[0].visibility, Visibility::labelled(["pii"]));
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiting_with_correlation_counts_what_batches_and_joins_hold_of_a_correlation() {
    let flock = Flock::builder().no_trace().build();
    let (_runs, engine) = recorder();
    flock
        .agent("batches")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(3)))
        .with_engine(engine)
        .register()
        .unwrap();
    let correlation = uuid::Uuid::now_v7();
    let options = PublishOptions::new().correlation_id(correlation);
    flock
        .publish_with(Item { id: 1 }, options.clone())
        .await
        .unwrap();
    flock.publish(Item { id: 2 }).await.unwrap();
    assert_eq!(flock.waiting_with_correlation(correlation), 1);
    flock.publish_with(Item { id: 3 }, options).await.unwrap();
    flock.run_until_idle().await;
    assert_eq!(flock.waiting_with_correlation(correlation), 0, "flushed");
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn runs_in_flight_counts_runs_until_they_finish() {
    let flock = Flock::builder().no_trace().build();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    flock
        .agent("slow")
        .consumes::<Item>(Subscribe::new())
        .with_engine(map_fn_async(move |_: EngineContext, _: Arc<Item>| {
            let held = held.clone();
            async move {
                let _permit = held.acquire().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(Outputs::none())
            }
        }))
        .register()
        .unwrap();
    assert_eq!(flock.runs_in_flight(), 0);
    flock.publish(Item { id: 1 }).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(flock.runs_in_flight(), 1);
    gate.add_permits(1);
    flock.run_until_idle().await;
    assert_eq!(flock.runs_in_flight(), 0);
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn admission_rejections_count_publishes_refused_at_a_bound() {
    let admission = Admission::new()
        .max_waiting(1)
        .unwrap()
        .on_full(OnFull::Reject);
    let flock = Flock::builder().no_trace().admission(admission).build();
    let (_runs, engine) = recorder();
    flock
        .agent("batches")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(5).timeout(Duration::from_secs(1))),
        )
        .with_engine(engine)
        .register()
        .unwrap();
    flock.publish(Item { id: 1 }).await.unwrap();
    assert_eq!(flock.admission_rejections(), 0);
    flock.publish(Item { id: 2 }).await.unwrap_err();
    flock.publish(Item { id: 3 }).await.unwrap_err();
    assert_eq!(flock.admission_rejections(), 2);
    flock.shutdown().await;
}

#[tokio::test]
async fn agents_report_their_declarations() {
    let flock = Flock::builder().no_trace().build();
    let (_runs, engine) = recorder();
    flock
        .agent("payments")
        .description("batches payments")
        .consumes::<Item>(Subscribe::new().batch(BatchSpec::size(25)))
        .publishes::<BatchSummary>()
        .with_engine(engine)
        .register()
        .unwrap();
    let agents = flock.agents();
    assert_eq!(agents.len(), 1);
    let agent = &agents[0];
    assert_eq!(agent.name, "payments");
    assert_eq!(agent.description.as_deref(), Some("batches payments"));
    assert_eq!(agent.subscriptions[0].type_name(), "Item");
    assert_eq!(
        agent.subscriptions[0].batch().and_then(|b| b.max_size()),
        std::num::NonZeroUsize::new(25)
    );
    assert_eq!(
        agent.outputs,
        vec![("BatchSummary", flock::OutputCount::ExactlyOne)]
    );
    flock.shutdown().await;
}
