//! Live events: what a subscriber of `Flock::events` sees, in order.

use std::{sync::Arc, time::Duration};

use flock::{FlockEvent, PublishOptions, prelude::*};
use tokio::{sync::broadcast::error::TryRecvError, time::advance};

use crate::{Item, SignalA, SignalB};

fn drain(receiver: &mut tokio::sync::broadcast::Receiver<FlockEvent>) -> Vec<FlockEvent> {
    let mut events = Vec::new();
    loop {
        match receiver.try_recv() {
            Ok(event) => events.push(event),
            Err(TryRecvError::Empty) => return events,
            Err(other) => panic!("{other}"),
        }
    }
}

/// The events' kinds, as their JSON `type` tags.
fn kinds(events: &[FlockEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_fills_flushes_and_runs_as_events_say() {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("payments")
        .tenant("acme")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(2).timeout(Duration::from_secs(30))),
        )
        .publishes::<BatchSummary>()
        .with_engine(batch_fn(|_: &EngineContext, items: Vec<Arc<Item>>| {
            Ok::<_, String>(BatchSummary {
                batch_size: items.len(),
                values: items.iter().map(|i| i.id).collect(),
            })
        }))
        .register()
        .unwrap();
    // Nothing is built before someone subscribes.
    flock.publish(Item { id: 0 }).await.unwrap();
    let mut events = flock.events();
    let tenant = Visibility::tenant("acme");
    flock
        .publish_with(
            Item { id: 1 },
            PublishOptions::new().visibility(tenant.clone()),
        )
        .await
        .unwrap();
    flock.run_until_idle().await;
    let seen = drain(&mut events);
    assert_eq!(
        kinds(&seen),
        [
            "artifact_published",
            "batch_item_added",
            "batch_flushed",
            "run_started",
            "artifact_published",
            "run_finished"
        ]
    );
    match &seen[1] {
        FlockEvent::BatchItemAdded {
            agent,
            collected,
            target,
            visibility,
            ..
        } => {
            assert_eq!(
                (agent.as_str(), *collected, *target),
                ("payments", 2, Some(2))
            );
            assert_eq!(visibility, &tenant);
        }
        other => panic!("{other:?}"),
    }
    match &seen[2] {
        FlockEvent::BatchFlushed {
            reason,
            size,
            visibility,
            ..
        } => {
            assert_eq!((*reason, *size), (FlushReason::Size, 2));
            // One public item, one of tenant acme: whoever sees both.
            assert_eq!(visibility, &tenant);
        }
        other => panic!("{other:?}"),
    }
    // The summary derived from a tenant's input is that tenant's.
    assert_eq!(seen[4].visibility(), &tenant);

    let second = flock.publish(Item { id: 2 }).await.unwrap();
    let added = drain(&mut events);
    match &added[1] {
        FlockEvent::BatchItemAdded {
            collected,
            time_left,
            ..
        } => {
            assert_eq!((*collected, *time_left), (1, Some(Duration::from_secs(30))));
        }
        other => panic!("{other:?}"),
    }
    advance(Duration::from_secs(30)).await;
    flock.run_until_idle().await;
    let timed = drain(&mut events);
    assert!(matches!(
        &timed[0],
        FlockEvent::BatchFlushed {
            reason: FlushReason::Timeout,
            size: 1,
            ..
        }
    ));
    let json = serde_json::to_value(&timed[0]).unwrap();
    assert_eq!(json["wait_ms"], 30_000);
    // Stamped on the flock's clock: the deadline, 30 s after the item's creation.
    let created = flock.get(second).await.unwrap().unwrap().created_at;
    match &timed[0] {
        FlockEvent::BatchFlushed { at, .. } => {
            assert_eq!(*at - created, chrono::TimeDelta::seconds(30));
        }
        other => panic!("{other:?}"),
    }
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failures_and_joins_are_events_too() {
    let flock = Flock::builder().no_trace().build();
    flock
        .agent("pairs")
        .consumes_all(
            AllOf::new().of::<SignalA>().of::<SignalB>().join(
                JoinSpec::by(|a: &SignalA| a.correlation_id.clone())
                    .by(|b: &SignalB| b.correlation_id.clone())
                    .within(Duration::from_secs(10)),
            ),
        )
        .with_engine(group_fn(|_: &EngineContext, _: Inputs| {
            Err::<Outputs, _>("cannot pair")
        }))
        .register()
        .unwrap();
    let mut events = flock.events();
    flock.publish(SignalA::new("k1", "a")).await.unwrap();
    flock.publish(SignalB::new("k1", "b")).await.unwrap();
    flock.publish(SignalA::new("k2", "alone")).await.unwrap();
    flock.run_until_idle().await;
    advance(Duration::from_secs(10)).await;
    flock.run_until_idle().await;
    let seen = drain(&mut events);
    let failed = flock.failed_runs();
    assert!(seen.iter().any(
        |e| matches!(e, FlockEvent::JoinCompleted { key, group_size: 2, .. } if key.contains("k1"))
    ));
    assert!(seen.iter().any(|e| matches!(
        e,
        FlockEvent::RunFailed { error, failed_run, .. } if error == "cannot pair" && *failed_run == failed[0].id
    )));
    assert!(seen.iter().any(|e| matches!(
        e,
        FlockEvent::JoinDiscarded {
            reason: "window",
            artifacts: 1,
            ..
        }
    )));
    flock.shutdown().await;
}
