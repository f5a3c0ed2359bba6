//! The guide's BatchMetrics pattern: a batch engine reports its batch's figures in one
//! line (`ctx.batch_metrics()?`), as an artifact a monitoring agent consumes.

use std::{sync::Arc, time::Duration};

use flock::prelude::*;
use tokio::time::advance;

use crate::{Item, publish_ids};

/// An agent batching `Item`s by 4 or 10 s that publishes each batch's metrics.
fn metrics_agent(flock: &Flock) {
    flock
        .agent("metered")
        .consumes::<Item>(
            Subscribe::new().batch(BatchSpec::size(4).timeout(Duration::from_secs(10))),
        )
        .publishes::<BatchMetrics>()
        .with_engine(batch_fn(|ctx: &EngineContext, _items: Vec<Arc<Item>>| {
            Ok::<_, EngineError>(ctx.batch_metrics()?.clone())
        }))
        .register()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn batch_engines_publish_their_metrics_in_one_line() {
    let flock = Flock::new();
    metrics_agent(&flock);
    publish_ids(&flock, 1..=5).await;
    flock.run_until_idle().await;
    advance(Duration::from_secs(3)).await;
    flock.run_until_idle().await;
    advance(Duration::from_secs(7)).await; // the fifth item's deadline: 10 s after it
    flock.run_until_idle().await;

    let metrics = flock.get_by_type::<BatchMetrics>().await.unwrap();
    let figures: Vec<_> = metrics
        .iter()
        .map(|m| {
            (
                m.batch_size,
                m.flush_reason,
                m.configured_size,
                m.efficiency,
            )
        })
        .collect();
    assert_eq!(
        figures,
        vec![
            (4, FlushReason::Size, Some(4), 1.0),
            (1, FlushReason::Timeout, Some(4), 0.25),
        ]
    );
    assert!(metrics.iter().all(
        |m| m.configured_timeout == Some(Duration::from_secs(10)) && m.subscription_index == 0
    ));
    assert_eq!(metrics[1].wait, Duration::from_secs(10));
    assert_eq!(
        metrics[1].to_string(),
        "1 items, timeout flush, 25% of size 4, waited 10.0 s"
    );
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn metrics_travel_as_json_with_millisecond_durations() {
    let flock = Flock::new();
    metrics_agent(&flock);
    publish_ids(&flock, 1..=4).await;
    flock.run_until_idle().await;
    let artifacts = flock
        .query(&ArtifactFilter::new().type_name("BatchMetrics"))
        .await
        .unwrap();
    let json = artifacts[0].payload.to_json().unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "batch_size": 4, "flush_reason": "size", "configured_size": 4,
            "configured_timeout_ms": 10_000, "efficiency": 1.0, "wait_ms": 0,
            "subscription_index": 0,
        })
    );
    let back: BatchMetrics = serde_json::from_value(json).unwrap();
    assert_eq!(back, *flock.get_by_type::<BatchMetrics>().await.unwrap()[0]);
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn asking_for_metrics_outside_a_batch_fails_the_run_naming_the_agent() {
    let flock = Flock::new();
    flock
        .agent("unbatched")
        .consumes::<Item>(Subscribe::new())
        .publishes::<BatchMetrics>()
        .with_engine(map_fn(|ctx: &EngineContext, _item: Arc<Item>| {
            Ok::<_, EngineError>(ctx.batch_metrics()?.clone())
        }))
        .register()
        .unwrap();
    publish_ids(&flock, [1]).await;
    flock.run_until_idle().await;

    let errors = flock.get_by_type::<WorkflowError>().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .error
            .contains("agent `unbatched` asked for batch metrics in a run that is not a batch"),
        "{}",
        errors[0].error
    );
    assert!(
        flock
            .get_by_type::<BatchMetrics>()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        flock.failed_runs().len(),
        1,
        "the input is kept as a failed run"
    );
    flock.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn keyed_batches_report_their_key() {
    let flock = Flock::new();
    flock
        .agent("parity")
        .consumes::<Item>(
            Subscribe::new()
                .batch(BatchSpec::size(2))
                .keyed_by(|i: &Item| if i.id % 2 == 0 { "even" } else { "odd" }),
        )
        .publishes::<BatchMetrics>()
        .with_engine(batch_fn(|ctx: &EngineContext, _items: Vec<Arc<Item>>| {
            Ok::<_, EngineError>(ctx.batch_metrics()?.clone())
        }))
        .register()
        .unwrap();
    publish_ids(&flock, 1..=4).await;
    flock.run_until_idle().await;

    let mut keys: Vec<_> = flock
        .get_by_type::<BatchMetrics>()
        .await
        .unwrap()
        .iter()
        .map(|m| (m.key.clone(), m.batch_size, m.to_string()))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (
                Some("even".into()),
                2,
                "key even: 2 items, size flush, 100% of size 2, waited 0.0 s".into()
            ),
            (
                Some("odd".into()),
                2,
                "key odd: 2 items, size flush, 100% of size 2, waited 0.0 s".into()
            ),
        ]
    );
    flock.shutdown().await;
}
