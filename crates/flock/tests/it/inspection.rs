//! Inspecting active batches.

use std::time::Duration;

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
    let before = chrono::Utc::now();
    publish_ids(&flock, 1..=3).await;
    advance(Duration::from_secs(10)).await;
    let active = flock.active_batches();
    assert_eq!(active.len(), 1);
    let batch = &active[0];
    assert_eq!(batch.agent, "payments");
    assert_eq!(batch.subscription_index, 1);
    assert_eq!(batch.items_waiting, 3);
    assert_eq!(batch.spec, spec);
    assert_eq!(batch.time_left, Some(Duration::from_secs(20)));
    assert!(batch.created_at >= before);
}
